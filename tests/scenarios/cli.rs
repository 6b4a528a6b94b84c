//! The CLI's other verbs: `list`, `matrix`, `replay --trace`.

use crate::common::mqcheck;
use serde_json::Value;

#[test]
fn list_names_each_broker_with_its_keys_and_defaults() {
    let out = mqcheck(&["list"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("kafka"), "{}", out.stdout);
    for key in [
        "acks",
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "log.truncation",
        "enable.idempotence",
        "consumer.commit",
    ] {
        assert!(out.stdout.contains(key), "list names {key}");
    }
    assert!(out.stdout.contains("default all; allowed: 0, 1, all, -1"));
}

#[test]
fn matrix_writes_a_row_per_configuration_with_evidence() {
    let dir = std::env::temp_dir().join(format!("mqcheck-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, md) = (dir.join("m.json"), dir.join("m.md"));
    let out = mqcheck(&[
        "matrix",
        "--seeds",
        "4",
        "--messages",
        "20",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let kafka_rows = rows.iter().filter(|r| r["broker"] == "kafka").count();
    assert!(kafka_rows >= 10, "one row per named Kafka configuration");
    for row in &rows {
        let broker = row["broker"].as_str().unwrap();
        assert_eq!(row["report"]["stats"]["runs"], 4);
        for inv in ["at-least-once", "at-most-once", "ordering"] {
            let entry = &row["report"]["invariants"][inv];
            assert_eq!(
                entry["checked"], true,
                "{inv} checked in {}",
                row["configuration"]
            );
            if entry["held"] == false {
                let replay = entry["first_violation"]["replay"].as_str().unwrap();
                assert!(replay.starts_with(&format!("mqcheck replay --broker {broker}")));
            }
        }
    }
    // acks=0 loses records to the loss fault even in four seeds.
    let acks0 = rows
        .iter()
        .find(|r| r["configuration"] == "acks=0")
        .unwrap();
    assert_eq!(
        acks0["report"]["invariants"]["at-least-once"]["held"],
        false
    );
    let table = std::fs::read_to_string(&md).unwrap();
    assert_eq!(table, out.stdout, "--markdown writes what is printed");
    assert!(table.contains("| kafka | acks=0:"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_writes_its_timeline_as_json_lines() {
    let path = std::env::temp_dir().join(format!("mqcheck-trace-{}.jsonl", std::process::id()));
    let out = mqcheck(&[
        "replay",
        "--broker",
        "kafka",
        "--faults",
        "none",
        "--messages",
        "5",
        "--seed",
        "1",
        "--trace",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "a clean run exits 0: {}", out.stdout);
    assert!(out
        .stdout
        .contains("clean: at-least-once, at-most-once, ordering held"));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["text"] == "app: ack p0:4"));
    assert!(lines
        .iter()
        .any(|l| l["node"] == "c0" && l["text"] == "app: deliver p0:4 to group 0 from position 4"));
    let times: Vec<u64> = lines
        .iter()
        .map(|l| l["time_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "a timeline");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn sim_json_reports_the_effective_configuration() {
    // Kafka silently turns idempotence off when acks=1 is set without asking for idempotence.
    let (code, json) = crate::common::sim("--broker kafka --set acks=1 --faults none --seeds 1");
    assert_eq!(code, 0);
    assert_eq!(json["config"]["acks"], "1");
    assert_eq!(json["config"]["enable.idempotence"], "false");
    let (_, json) = crate::common::sim("--broker kafka --faults none --seeds 1");
    assert_eq!(json["config"]["enable.idempotence"], "true");
    assert_eq!(json["config"]["min.insync.replicas"], "1");
}
