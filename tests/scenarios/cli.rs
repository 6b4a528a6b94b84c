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
fn matrix_writes_cells_by_fault_class_with_evidence_and_compares_deterministically() {
    let dir = std::env::temp_dir().join(format!("mqcheck-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, md) = (dir.join("m.json"), dir.join("m.md"));
    let args = [
        "matrix",
        "--broker",
        "kafka",
        "--row",
        "acks=0",
        "--faults",
        "crash,tcp",
        "--seeds",
        "3",
        "--messages",
        "20",
    ];
    let mut words = args.to_vec();
    words.extend([
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    let out = mqcheck(&words);
    assert_eq!(
        out.code, 1,
        "acks=0 violates, so the matrix exits 1: {}",
        out.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(m["schema"], "mqcheck-matrix/1");
    let rows = m["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "--row selects one row");
    let row = &rows[0];
    assert_eq!(row["configuration"], "acks=0");
    for inv in ["at-least-once", "at-most-once", "ordering"] {
        let classes: Vec<&String> = row["cells"][inv].as_object().unwrap().keys().collect();
        assert_eq!(classes, ["crash", "tcp"], "{inv}: one cell per class asked");
        for cell in row["cells"][inv].as_object().unwrap().values() {
            assert_eq!(cell["runs"], 3);
            if cell["verdict"] == "broken" {
                let x = &cell["counterexample"];
                assert!(x["replay"]
                    .as_str()
                    .unwrap()
                    .starts_with("mqcheck replay --broker kafka"));
                assert!(!x["kind"].as_str().unwrap().is_empty());
            }
        }
    }
    // acks=0 loses records to a process crash alone, and the shrunk schedule says so.
    let crash = &row["cells"]["at-least-once"]["crash"];
    assert_eq!(crash["verdict"], "broken", "{crash}");
    assert_eq!(
        crash["counterexample"]["broken_by"],
        serde_json::json!(["crash"])
    );
    assert_eq!(crash["counterexample"]["kind"], "lost");
    let claims = m["claims"].as_array().unwrap();
    assert!(claims
        .iter()
        .any(|c| c["guarantee"] == "at-least-once" && c["broker"] == "kafka"));
    let page = std::fs::read_to_string(&md).unwrap();
    assert!(page.starts_with("# The claims matrix"));
    assert!(page.contains("| acks=0 | at-least-once | broken by process crash: lost ("));
    assert!(out
        .stdout
        .contains("kafka · acks=0: at-least-once broken — crash: lost"));
    // The same arguments again: nothing changed, byte for byte.
    let mut again = args.to_vec();
    again.extend(["--compare", json.to_str().unwrap()]);
    let out = mqcheck(&again);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("no change since the matrix compared with"),
        "{}",
        out.stdout
    );
    // A bounded check that changed its verdict is a change too.
    let check = &row["check"]["guarantees"]["at-least-once"];
    assert!(check.is_object(), "the row's bounded check: {row}");
    let mut edited = m.clone();
    let g = &mut edited["rows"][0]["check"]["guarantees"]["at-least-once"];
    let was_held = g["counterexample"].is_null();
    if was_held {
        g["verdict"] = "violated".into();
        g["counterexample"] = serde_json::json!({"steps": 3, "story": [], "why": ["made up"], "schedule": [], "reproduced_by_seed": null});
    } else {
        g["verdict"] = "held".into();
        g.as_object_mut().unwrap().remove("counterexample");
    }
    let old = dir.join("old.json");
    std::fs::write(&old, serde_json::to_string(&edited).unwrap()).unwrap();
    let mut again = args.to_vec();
    again.extend(["--compare", old.to_str().unwrap()]);
    let out = mqcheck(&again);
    assert!(
        out.stdout
            .contains("kafka · acks=0 · at-least-once · bounded check: "),
        "{}",
        out.stdout
    );
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

/// The simulated time of the first delivery in a replay's JSON-lines trace.
fn first_delivery_ms(args: &[&str]) -> u64 {
    let path = std::env::temp_dir().join(format!(
        "mqcheck-first-{}-{}.jsonl",
        std::process::id(),
        args.join("_").replace(['/', ' '], "")
    ));
    let mut words = vec!["replay"];
    words.extend(args);
    words.extend(["--trace", path.to_str().unwrap()]);
    let out = mqcheck(&words);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["text"].as_str().unwrap().starts_with("app: deliver"))
        .map(|l| l["time_ms"].as_u64().unwrap())
        .expect("something was delivered")
}

#[test]
fn consumer_delay_makes_the_first_delivery_later() {
    for broker in ["kafka", "rabbitmq", "zeromq"] {
        let base = [
            "--broker",
            broker,
            "--faults",
            "none",
            "--messages",
            "20",
            "--seed",
            "1",
        ];
        let early = first_delivery_ms(&base);
        let mut late_args = base.to_vec();
        late_args.extend(["--consumer-delay-ms", "5000"]);
        let late = first_delivery_ms(&late_args);
        assert!(early < 5000, "{broker}: first delivery at {early} ms");
        assert!(
            late >= 5000,
            "{broker}: delayed consumer delivered at {late} ms"
        );
    }
}

#[test]
fn rate_sets_how_long_the_producers_take() {
    // 200 messages at 1 per second take 200 s of simulated time; at 100 per second, far less.
    let (slow_code, slow) =
        crate::common::sim("--broker kafka --faults none --seeds 1 --messages 200 --rate 1");
    let (fast_code, fast) =
        crate::common::sim("--broker kafka --faults none --seeds 1 --messages 200 --rate 100");
    assert_eq!((slow_code, fast_code), (0, 0));
    let (slow, fast) = (
        slow["stats"]["simulated_ms"].as_u64().unwrap(),
        fast["stats"]["simulated_ms"].as_u64().unwrap(),
    );
    assert!(slow >= 200_000, "{slow} ms");
    assert!(fast < 100_000, "{fast} ms");
}

#[test]
fn handler_time_sets_how_long_the_consumer_takes() {
    let (code, json) = crate::common::sim(
        "--broker rabbitmq --faults none --seeds 1 --messages 50 --rate 1000 --handler-ms 1000",
    );
    assert_eq!(code, 0);
    assert!(json["stats"]["simulated_ms"].as_u64().unwrap() >= 50_000);
    assert_eq!(json["verdict"], "held");
}

#[test]
fn keys_show_in_the_trace_and_partition_kafka() {
    let out = mqcheck(&[
        "replay",
        "--full",
        "--broker",
        "kafka",
        "--set",
        "partitions=3",
        "--faults",
        "none",
        "--messages",
        "6",
        "--keys",
        "3",
        "--seed",
        "1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("app: send p0:4 (scope 0) key 1"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("app: send p0:5 (scope 2) key 2"));
    for broker in ["rabbitmq", "zeromq"] {
        let out = mqcheck(&[
            "replay",
            "--full",
            "--broker",
            broker,
            "--faults",
            "none",
            "--messages",
            "4",
            "--keys",
            "2",
            "--seed",
            "1",
        ]);
        assert_eq!(out.code, 0, "{}", out.stdout);
        assert!(out.stdout.contains("key 1"), "{broker}: {}", out.stdout);
    }
    // Without --keys, no key is recorded.
    let out = mqcheck(&[
        "replay",
        "--full",
        "--broker",
        "kafka",
        "--faults",
        "none",
        "--messages",
        "3",
        "--seed",
        "1",
    ]);
    assert!(!out.stdout.contains(" key "));
}

#[test]
fn workload_flags_are_validated_and_replayed() {
    for (flag, value) in [
        ("--rate", "0"),
        ("--rate", "1001"),
        ("--handler-ms", "10001"),
        ("--consumer-delay-ms", "600001"),
        ("--keys", "0"),
    ] {
        for verb in ["sim", "replay", "check"] {
            let mut words = vec![verb, "--broker", "kafka", flag, value];
            if verb == "replay" {
                words.extend(["--seed", "1"]);
            }
            let out = mqcheck(&words);
            assert_eq!(out.code, 2, "{verb} {flag} {value}: {}", out.stderr);
            assert!(out.stderr.contains(flag), "{}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        }
    }
    let out = mqcheck(&["matrix", "--seeds", "1", "--keys", "0"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--keys"), "{}", out.stderr);
    // A violation's replay command carries the workload flags and reproduces it.
    let v = crate::common::violated(
        "--broker kafka --set acks=0 --set enable.idempotence=false --faults crash --seeds 50 --rate 50 --keys 4 --handler-ms 3",
        "at-least-once",
    );
    let replay = v["replay"].as_str().unwrap();
    assert!(
        replay.contains("--rate 50 --handler-ms 3 --keys 4"),
        "{replay}"
    );
    crate::common::reproduce(&v);
}

#[test]
fn bad_input_is_one_line_naming_the_flag_or_key_with_exit_2_before_any_work() {
    let dir = std::env::temp_dir().join("mqcheck-no-such-dir");
    let nowhere = |name: &str| dir.join(name).display().to_string();
    let (json, svg, trace) = (nowhere("m.json"), nowhere("c.svg"), nowhere("t.jsonl"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["sim", "--broker", "kafka", "--seeds", "0"], "--seeds"),
        (vec!["sim", "--broker", "kafka", "--seeds", "-1"], "--seeds"),
        (vec!["sim", "--broker", "kafka", "--seeds", "1x"], "--seeds"),
        (vec!["matrix", "--seeds", "0"], "--seeds"),
        (
            vec![
                "sim",
                "--broker",
                "kafka",
                "--seed",
                "18446744073709551615",
                "--seeds",
                "2",
            ],
            "--seeds",
        ),
        (
            vec![
                "sim",
                "--broker",
                "kafka",
                "--messages",
                "18446744073709551615",
            ],
            "--messages",
        ),
        (
            vec!["check", "--broker", "kafka", "--messages", "6"],
            "--messages",
        ),
        (
            vec!["check", "--broker", "kafka", "--threads", "0"],
            "--threads",
        ),
        (
            vec!["check", "--broker", "kafka", "--max-depth", "0"],
            "--max-depth",
        ),
        (
            vec!["check", "--broker", "kafka", "--max-states", "0"],
            "--max-states",
        ),
        (
            vec!["check", "--broker", "kafka", "--strategy", "x"],
            "--strategy",
        ),
        (vec!["sim", "--broker", "kafka", "--rate", "+5"], "--rate"),
        (
            vec!["sim", "--broker", "kafka", "--set", "nodes=+3"],
            "nodes",
        ),
        (
            vec!["sim", "--broker", "kafka", "--set", "nodes=03"],
            "nodes",
        ),
        (
            vec!["sim", "--broker", "kafka", "--set", "acks= all"],
            "acks",
        ),
        (
            vec!["sim", "--broker", "kafka", "--faults", "none,crash"],
            "none",
        ),
        (vec!["sim", "--broker", "kafka", "--bogus"], "--bogus"),
        (vec!["sim"], "--broker"),
        (vec!["matrix", "--json", &json], "--json"),
        (vec!["matrix", "--broker", "kafkaa"], "broker"),
        (vec!["matrix", "--broker", "kafka", "--row", "nope"], "row"),
        (vec!["matrix", "--faults", "crash,lightning"], "--faults"),
        (vec!["matrix", "--compare", &json], "--compare"),
        (vec!["matrix", "--check", "exactly-once"], "exactly-once"),
        (vec!["matrix", "--set", "acks=1"], "--set"),
        (vec!["check", "--broker", "kafka", "--svg", &svg], "--svg"),
        (
            vec![
                "replay", "--broker", "kafka", "--seed", "1", "--trace", &trace,
            ],
            "--trace",
        ),
    ];
    for (words, names) in cases {
        let started = std::time::Instant::now();
        crate::common::bad_input(&words, names);
        // Before any work: not after a sweep or a search.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{words:?} took {:?}",
            started.elapsed()
        );
    }
    // Numbers outside the range say which are allowed.
    let out = mqcheck(&["sim", "--broker", "kafka", "--seeds", "-1"]);
    assert!(
        out.stderr.contains("allowed: an integer from 1 to"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failed_write_to_stdout_is_bad_input_and_help_is_not() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(["sim", "--broker", "zeromq", "--seeds", "2", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write to stdout"));
    let help = mqcheck(&["sim", "--help"]);
    assert_eq!(help.code, 0, "{}", help.stderr);
    assert!(help.stdout.contains("--seeds"), "{}", help.stdout);
}

#[test]
fn nothing_acknowledged_or_delivered_is_inconclusive() {
    // In Kafka 3.6 three replicas can never satisfy min.insync.replicas=4 (from 3.7 it is
    // capped at the replication factor): nothing is acknowledged.
    let (code, json) = crate::common::sim(
        "--broker kafka --set version=3.6 --set min.insync.replicas=4 --faults none --seeds 2 --messages 5",
    );
    assert_eq!(code, 3);
    assert_eq!(json["verdict"], "inconclusive");
    assert!(json["reason"]
        .as_str()
        .unwrap()
        .contains("nothing was acknowledged"));
    assert_eq!(json["coverage"]["acknowledged"], 0);
    for inv in ["at-least-once", "at-most-once", "ordering"] {
        assert_eq!(
            json["invariants"][inv]["held"],
            Value::Null,
            "{inv} untested"
        );
        assert_eq!(json["invariants"][inv]["tested"], false);
    }
    let (code, json) = crate::common::sim("--broker kafka --consumers 0 --seeds 2 --messages 5");
    assert_eq!(code, 3);
    assert!(json["reason"]
        .as_str()
        .unwrap()
        .contains("nothing was delivered"));
    let out = mqcheck(&[
        "sim",
        "--broker",
        "kafka",
        "--consumers",
        "0",
        "--seeds",
        "1",
        "--messages",
        "5",
    ]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout.contains("inconclusive: nothing was delivered"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_run_cut_short_is_inconclusive() {
    // A REQ sends its next request only after the reply, so at one request a second handled in
    // a second each the workload takes twice the time its pace gives: the limit cuts it short,
    // with the Lazy Pirate client's last request awaiting its reply.
    let args = "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults none --messages 200 --rate 1 --handler-ms 1000";
    let (code, json) = crate::common::sim(&format!("{args} --seeds 1"));
    assert_eq!(code, 3);
    assert_eq!(json["coverage"]["incomplete_runs"], 1);
    assert!(json["reason"].as_str().unwrap().contains("cut short"));
    let mut words = vec!["replay"];
    words.extend(args.split_whitespace());
    words.extend(["--seed", "0"]);
    let out = mqcheck(&words);
    assert_eq!(out.code, 3);
    assert!(out.stdout.contains("cut short"), "{}", out.stdout);
}

#[test]
fn sim_reports_coverage() {
    let (code, json) = crate::common::sim("--broker kafka --faults crash --seeds 4 --messages 20");
    assert_eq!(code, 0);
    assert_eq!(json["verdict"], "held");
    let c = &json["coverage"];
    assert_eq!(c["runs"], 4);
    assert_eq!(c["sends"], 80);
    assert!(c["acknowledged"].as_u64().unwrap() > 0);
    assert_eq!(c["delivered"], json["stats"]["messages_delivered"]);
    assert!(c["faults_applied"].as_u64().unwrap() > 0);
}

#[test]
fn atomicity_is_judged_where_the_workload_has_atomic_units_and_untested_elsewhere() {
    let (code, json) = crate::common::sim(
        "--broker zeromq --set pattern=push-pull --set frames=3 --faults crash --seeds 5 --check atomicity",
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["invariants"]["atomicity"]["held"], true);
    assert!(json["coverage"]["atomic_units"].as_u64().unwrap() > 0);
    // Single-frame messages: nothing to judge atomicity on, so it is not held but untested.
    let (code, json) = crate::common::sim(
        "--broker zeromq --set pattern=push-pull --faults crash --seeds 5 --check atomicity",
    );
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["invariants"]["atomicity"]["tested"], false);
    assert!(json["reason"]
        .as_str()
        .unwrap()
        .contains("not tested: atomicity"));
}

#[test]
fn jsonl_streams_one_line_per_seed_that_adds_up_to_the_report() {
    let path = std::env::temp_dir().join(format!("mqcheck-{}.jsonl", std::process::id()));
    let (code, json) = crate::common::sim(&format!(
        "--broker kafka --set acks=1 --set enable.idempotence=false --faults crash --seeds 12 --messages 20 --jsonl {}",
        path.display()
    ));
    assert_eq!(code, 1, "{json}");
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let mut seeds: Vec<u64> = lines.iter().map(|l| l["seed"].as_u64().unwrap()).collect();
    seeds.sort();
    assert_eq!(seeds, (0..12).collect::<Vec<_>>());
    for inv in ["at-least-once", "at-most-once", "ordering"] {
        let violating: Vec<&Value> = lines
            .iter()
            .filter(|l| l["verdicts"][inv] == "violated")
            .collect();
        assert_eq!(
            json["invariants"][inv]["violations"],
            violating.len() as u64
        );
        if let Some(lowest) = violating.iter().map(|l| l["seed"].as_u64().unwrap()).min() {
            assert_eq!(json["invariants"][inv]["first_violation"]["seed"], lowest);
            let line = violating.iter().find(|l| l["seed"] == lowest).unwrap();
            assert!(line["first_violation"]["explanation"].is_string(), "{line}");
        }
    }
    let sends: u64 = lines.iter().map(|l| l["sends"].as_u64().unwrap()).sum();
    assert_eq!(json["coverage"]["sends"], sends);
}

#[test]
fn ctrl_c_reports_the_seeds_finished_as_interrupted_and_exits_3() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args([
            "sim",
            "--broker",
            "kafka",
            "--seeds",
            "1000000",
            "--messages",
            "20",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SAFETY: signals the child this test spawned and has not waited for.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let json: Value = serde_json::from_slice(&out.stdout).expect("a report");
    assert_eq!(json["interrupted"], true);
    assert_eq!(json["verdict"], "inconclusive");
    let runs = json["stats"]["runs"].as_u64().unwrap();
    assert!(runs > 0 && runs < 1_000_000, "{runs}");
    assert_eq!(json["coverage"]["runs"], runs);
    assert!(json["reason"].as_str().unwrap().contains("interrupted"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

#[test]
fn merged_shards_print_what_one_sweep_prints_but_for_wall_time() {
    let args = "sim --broker kafka --set acks=1 --set enable.idempotence=false --faults crash --seed 5 --seeds 30 --messages 20 --json";
    let run = |extra: &[&str]| {
        let mut words: Vec<&str> = args.split_whitespace().collect();
        words.extend(extra);
        mqcheck(&words)
    };
    let without_wall_time = |text: &str| {
        text.lines()
            .filter(|l| !l.contains("\"wall_ms\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let whole = run(&[]);
    assert_eq!(whole.code, 1, "{}", whole.stderr);
    let dir = std::env::temp_dir().join(format!("mqcheck-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    // Uneven shares, one of them empty: 30 seeds over 4 shards, and one more shard than seeds
    // would still cover the range exactly once.
    for i in 0..4 {
        let shard = run(&["--shard", &format!("{i}/4")]);
        let file = dir.join(format!("{i}.json"));
        std::fs::write(&file, &shard.stdout).unwrap();
        files.push(file.display().to_string());
    }
    files.reverse();
    let mut words = vec!["merge", "--json"];
    words.extend(files.iter().map(String::as_str));
    let merged = mqcheck(&words);
    assert_eq!(merged.code, whole.code, "{}", merged.stderr);
    assert_eq!(
        without_wall_time(&merged.stdout),
        without_wall_time(&whole.stdout)
    );
    // Shards that leave a gap, or come from another sweep, are refused.
    let gap = mqcheck(&["merge", &files[0], &files[2]]);
    assert_eq!(gap.code, 2, "{}", gap.stderr);
    assert!(gap.stderr.contains("was due"), "{}", gap.stderr);
    let other = mqcheck(&[
        "sim",
        "--broker",
        "kafka",
        "--seeds",
        "2",
        "--messages",
        "5",
        "--json",
    ]);
    let other_file = dir.join("other.json");
    std::fs::write(&other_file, &other.stdout).unwrap();
    let mixed = mqcheck(&["merge", &files[3], other_file.to_str().unwrap()]);
    assert_eq!(mixed.code, 2, "{}", mixed.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conform_refuses_in_one_line_what_it_cannot_run() {
    crate::common::bad_input(&["conform", "--broker", "kafka"], "--broker");
    crate::common::bad_input(
        &["conform", "--broker", "rabbitmq", "--scenario", "no-such"],
        if cfg!(feature = "real-brokers") {
            "--scenario"
        } else {
            "--features real-brokers"
        },
    );
    if !cfg!(feature = "real-brokers") {
        // Without the clients, one line before any model sweep, not one error per scenario.
        crate::common::bad_input(
            &["conform", "--broker", "zeromq"],
            "--features real-brokers",
        );
    }
}
