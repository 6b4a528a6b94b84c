//! Kafka's transactions through the `mqcheck` binary: what `read_committed` and
//! `read_uncommitted` consumers see of committed and aborted transactions, with and without
//! KIP-890's two parts (3.6's partition verification, 4.0's epoch bump per transaction).

use serde_json::Value;
use std::process::Command;

/// `mqcheck ARGS --json`: the exit code and the report.
fn run(args: &str) -> (i32, Value) {
    let mut words: Vec<&str> = args.split_whitespace().collect();
    words.push("--json");
    let out = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(&words)
        .output()
        .expect("mqcheck runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "mqcheck panicked: {stderr}");
    let json =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}{stderr}"));
    (out.status.code().expect("exited"), json)
}

/// A transactional producer (4 records a transaction, every fifth aborted) and one consumer, with
/// timeouts short enough that a send expires during a fault window: the expired send is what can
/// reach its leader after its transaction ended.
const TXN: &str = "sim --broker kafka --set transactional.id=producer \
    --set delivery.timeout.ms=3000 --set request.timeout.ms=1000 --messages 40";

/// The faults that delay and kill, without a power loss: with the default `flush.messages` a
/// power loss on every replica loses committed records, which is no transaction's business.
const FAULTS: &str = "--faults partition,crash,pause,loss";

fn verdict<'a>(json: &'a Value, invariant: &str) -> &'a Value {
    &json["invariants"][invariant]
}

fn held(args: &str, invariants: &[&str]) {
    let (code, json) = run(&format!("{args} --check {}", invariants.join(",")));
    for i in invariants {
        assert_eq!(
            verdict(&json, i)["held"],
            Value::Bool(true),
            "{i} should hold for `mqcheck {args}`: {}",
            verdict(&json, i)
        );
        assert_eq!(verdict(&json, i)["tested"], Value::Bool(true), "{i} tested");
    }
    assert_eq!(code, 0);
}

/// The first violation of `invariant`, which must be violated.
fn violated(args: &str, invariant: &str) -> Value {
    let (code, json) = run(&format!("{args} --check {invariant}"));
    let v = verdict(&json, invariant);
    assert_eq!(
        v["held"],
        Value::Bool(false),
        "{invariant} should be violated by `mqcheck {args}`: {v}"
    );
    assert_eq!(code, 1);
    v["first_violation"].clone()
}

/// Kafka's default `isolation.level=read_uncommitted` reads below the high watermark, aborted
/// records included, as the consumer documentation says: atomicity is violated, correctly, with
/// no fault at all.
#[test]
fn read_uncommitted_reads_the_records_of_aborted_transactions() {
    let first = violated(&format!("{TXN} --faults none --seeds 3"), "atomicity");
    assert_eq!(first["kind"], "aborted-read", "{first}");
    assert!(
        first["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("which the producer aborted")),
        "{first}"
    );
}

/// `read_committed` stops at the last stable offset and drops what the aborted-transaction
/// list names: with KIP-890 (4.1) no aborted or partial transaction is read under crashes,
/// partitions, pauses and loss, and every committed record arrives.
#[test]
fn read_committed_with_kip_890_never_sees_an_aborted_or_partial_transaction() {
    held(
        &format!("{TXN} --set isolation.level=read_committed {FAULTS} --seeds 300"),
        &["at-least-once", "atomicity"],
    );
}

/// Without the leader's verification (`transaction.partition.verification.enable=false`, as
/// every broker before 3.6 was), a produce request read after its transaction was aborted
/// opens a transaction no coordinator knows; the producer's next transaction to add that
/// partition commits it: a `read_committed` consumer reads records of an aborted transaction
/// (KIP-890's hanging transaction). Seed 77 of this run is one.
#[test]
fn without_verification_a_late_produce_makes_an_aborted_read_before_kip_890_part_2() {
    let args = format!(
        "{TXN} --set isolation.level=read_committed --set version=3.9 \
         --set transaction.partition.verification.enable=false {FAULTS} --seed 70 --seeds 10"
    );
    let first = violated(&args, "atomicity");
    assert_eq!(first["kind"], "aborted-read", "{first}");
    assert_eq!(first["seed"], 77, "{first}");
}

/// The same seeds with the epoch bumped per transaction (4.1): the late record carries the
/// aborted transaction's epoch, the abort marker the next one, and the leader fences it.
#[test]
fn the_epoch_bump_per_transaction_fences_the_late_produce_even_without_verification() {
    held(
        &format!(
            "{TXN} --set isolation.level=read_committed --set version=4.1 \
             --set transaction.partition.verification.enable=false {FAULTS} --seed 70 --seeds 10"
        ),
        &["atomicity"],
    );
}

/// 3.6's verification (KIP-890 part 1, on by default) closes the same window in 3.9: the leader
/// asks the coordinator, which has bumped the epoch after the failed transaction (KIP-360).
#[test]
fn partition_verification_closes_the_window_in_3_9() {
    held(
        &format!(
            "{TXN} --set isolation.level=read_committed --set version=3.9 {FAULTS} --seed 70 --seeds 10"
        ),
        &["atomicity"],
    );
}

/// Kafka refuses a `transactional.id` without the idempotent producer.
#[test]
fn a_transactional_id_needs_idempotence() {
    let out = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args([
            "sim",
            "--broker",
            "kafka",
            "--set",
            "transactional.id=producer",
            "--set",
            "enable.idempotence=false",
        ])
        .output()
        .expect("mqcheck runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("transactional.id") && stderr.contains("idempotence"),
        "{stderr}"
    );
}
