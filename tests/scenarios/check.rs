//! `mqcheck check` and `mqcheck explore`: the bounded exhaustive check finds each documented
//! anomaly with a counterexample, proves each documented guarantee within its bounds, and turns
//! bad input away with one line.

use crate::common::{bad_input, check, mqcheck, mqcheck_within_20s, Killed};
use crate::drawing::{is_row, labels, render};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Kafka's safe defaults (acks=all, idempotence, leader-epoch truncation, commit after
/// processing) under one crash: several tests compare against it, so it is checked once.
const SAFE_KAFKA: &str = "--broker kafka --faults crash";

fn safe_kafka() -> &'static (i32, Value) {
    static SAFE: OnceLock<(i32, Value)> = OnceLock::new();
    SAFE.get_or_init(|| check(SAFE_KAFKA))
}

const STRUCTURAL: [&str; 4] = [
    "LeaderInIsr",
    "StrongIsr",
    "LeaderCompleteness",
    "LogMatching",
];

fn property<'a>(json: &'a Value, name: &str) -> &'a Value {
    let p = &json["properties"][name];
    assert!(
        p.is_object(),
        "property {name} is reported: {}",
        json["properties"]
    );
    p
}

/// Asserts `name` held.
fn assert_held(json: &Value, name: &str) {
    let p = property(json, name);
    assert_eq!(p["held"], true, "expected {name} held, got {p}");
    assert_eq!(p["verdict"], "held", "a complete search: {p}");
    assert!(p.get("counterexample").is_none(), "{name} held: {p}");
}

/// The step kinds a counterexample may hold.
const KINDS: [&str; 16] = [
    "deliver",
    "timeout",
    "random",
    "crash",
    "power-loss",
    "restart",
    "lose",
    "retransmit",
    "duplicate",
    "reorder",
    "isolate",
    "heal",
    "pause",
    "resume",
    "clock-fast",
    "clock-correct",
];

/// Asserts the always-property `name` was violated, and returns its counterexample's steps, each
/// checked for its structure: numbered from 1, one of [`KINDS`], in time order, told as a line in
/// the broker's words (no Rust `Debug` form such as `FetchResponse { … }` or `Id(2)`).
fn counterexample(code: i32, json: &Value, name: &str) -> Vec<Value> {
    let p = property(json, name);
    assert_eq!(p["expectation"], "always");
    assert_eq!(p["held"], false, "expected {name} violated, got {p}");
    assert_eq!(code, 1, "a violation exits 1");
    let explorer = p["explorer"].as_str().expect("an Explorer link");
    assert!(explorer.starts_with("#/steps/"), "{explorer}");
    let steps = p["counterexample"]
        .as_array()
        .expect("a counterexample")
        .clone();
    assert!(!steps.is_empty(), "{name}: an empty counterexample");
    let mut now = 0;
    for (i, step) in steps.iter().enumerate() {
        assert_eq!(step["index"], i + 1, "{step}");
        assert!(KINDS.contains(&kind(step)), "{step}");
        assert!(!text(step).is_empty(), "{step}");
        assert!(
            !text(step).contains('{') && !text(step).contains("Id("),
            "Debug in the story: {step}"
        );
        let at = step["at_ms"].as_u64().expect("at_ms");
        assert!(at >= now, "steps in time order: {steps:#?}");
        now = at;
    }
    steps
}

/// How many steps a search took: the states it generated and the steps the reduction followed
/// between them without storing theirs.
fn steps_taken(json: &Value) -> u64 {
    assert_eq!(json["reduced"], json["followed_steps"] != 0, "{json}");
    json["states"].as_u64().unwrap() + json["followed_steps"].as_u64().unwrap()
}

fn kind(step: &Value) -> &str {
    step["kind"].as_str().unwrap_or("")
}

fn text(step: &Value) -> &str {
    step["text"].as_str().unwrap_or("")
}

/// The node a step happens to, or the ends of its connection.
fn node(step: &Value) -> &str {
    step["node"].as_str().unwrap_or("")
}

fn src(step: &Value) -> &str {
    step["src"].as_str().unwrap_or("")
}

/// `n1`, `n2`, …: a broker, not a client (`p0`, `c0`) or the controller.
fn is_broker(name: &str) -> bool {
    name.len() > 1 && name.starts_with('n') && name[1..].chars().all(|c| c.is_ascii_digit())
}

/// A broker, not a client, crashed.
fn broker_crash(step: &Value) -> bool {
    kind(step) == "crash" && is_broker(node(step))
}

/// A broker acknowledges the producer's record.
fn produce_ack(step: &Value) -> bool {
    kind(step) == "deliver" && step["dst"] == "p0" && text(step).contains(": ProduceResponse")
}

#[test]
fn check_acks_1_loses_an_acknowledged_record_when_the_leader_crashes() {
    let (code, json) =
        check("--broker kafka --set acks=1 --set enable.idempotence=false --faults crash");
    let steps = counterexample(code, &json, "at-least-once");
    let crash = steps
        .iter()
        .position(broker_crash)
        .unwrap_or_else(|| panic!("a broker crash in the story: {steps:#?}"));
    assert!(
        steps[..crash].iter().any(produce_ack),
        "the record is acknowledged before the crash: {:#?}",
        &steps[..crash]
    );
    // acks=all (the default) under the same faults loses nothing.
    let (_, safe) = safe_kafka();
    assert_held(safe, "at-least-once");
}

#[test]
fn check_acks_0_loses_records_without_any_crash() {
    // A delayed segment is enough: the producer does not wait for an answer, so a record that
    // reaches a broker before it knows it leads is refused and never retried.
    let (code, json) =
        check("--broker kafka --set acks=0 --set enable.idempotence=false --faults loss");
    let steps = counterexample(code, &json, "at-least-once");
    assert!(
        steps.iter().any(|s| kind(s) == "lose"),
        "a lost segment in the story: {steps:#?}"
    );
    assert!(
        !steps
            .iter()
            .any(|s| kind(s) == "crash" || kind(s) == "power-loss"),
        "loss only"
    );
}

#[test]
fn check_committing_before_processing_loses_records_when_the_consumer_crashes() {
    let (code, json) =
        check("--broker kafka --set consumer.commit=before-processing --faults crash");
    let steps = counterexample(code, &json, "at-least-once");
    assert!(
        steps.iter().any(|s| kind(s) == "crash" && node(s) == "c0"),
        "the consumer's crash in the story: {steps:#?}"
    );
    assert!(
        !steps.iter().any(broker_crash),
        "no broker crashes: {steps:#?}"
    );
}

#[test]
fn check_safe_kafka_holds_at_least_once_and_its_structural_invariants() {
    let (_, json) = safe_kafka();
    assert_held(json, "at-least-once");
    for invariant in STRUCTURAL {
        assert_eq!(property(json, invariant)["expectation"], "always");
        assert_held(json, invariant);
    }
    // The search was not trivially small, and went everywhere it was meant to.
    assert!(
        steps_taken(json) > 400_000,
        "only {} steps",
        steps_taken(json)
    );
    assert!(json["states"].as_u64().unwrap() >= json["unique_states"].as_u64().unwrap());
    let coverage: Vec<&str> = json["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p["expectation"] == "sometimes")
        .map(|(name, _)| name.as_str())
        .collect();
    for name in [
        "a record is acknowledged",
        "a consumer reads",
        "a crash happens",
        "a leader changes",
    ] {
        assert!(coverage.contains(&name), "{name} is a coverage property");
    }
    for name in coverage {
        assert_eq!(property(json, name)["held"], true, "{name} reached");
    }
    // The report echoes what was checked.
    assert_eq!(json["broker"], "kafka");
    assert_eq!(json["config"]["acks"], "all");
    assert_eq!(json["config"]["log.truncation"], "leader-epoch");
    let bounds = &json["bounds"];
    assert_eq!(bounds["messages"], 2);
    assert_eq!(bounds["producers"], 1);
    assert_eq!(bounds["consumers"], 1);
    assert_eq!(bounds["faults"], "crash");
    assert_eq!(bounds["max_crashes"], 1);
    assert_eq!(bounds["max_net_faults"], 1);
    assert_eq!(bounds["max_depth"], 3000);
}

#[test]
fn check_high_watermark_truncation_breaks_strong_isr_but_leader_epochs_keep_it() {
    let (code, json) = check("--broker kafka --set log.truncation=high-watermark --faults crash");
    assert_eq!(json["config"]["log.truncation"], "high-watermark");
    counterexample(code, &json, "StrongIsr");
    let (_, safe) = safe_kafka();
    assert_held(safe, "StrongIsr");
}

/// Kafka with its idle chatter slowed (long-poll waits, heartbeats) and its session timeouts
/// shortened, so two faults fit in a test's time: each run has fewer steps to place a fault at
/// and a shorter drain. Every value is a real setting Kafka accepts; none changes the rules of
/// replication, acknowledgement or truncation, only their timing (docs/model-checking.md,
/// "Bounds").
const QUIET_KAFKA: &str = "--broker kafka --set broker.heartbeat.interval.ms=4000 \
    --set replica.fetch.wait.max.ms=5000 --set fetch.max.wait.ms=5000 \
    --set heartbeat.interval.ms=5000 --set session.timeout.ms=15000 \
    --set request.timeout.ms=10000";

/// Two brokers, one record, two crashes: the chains of faults behind Kafka's election losses,
/// searched on both cores.
const TWO_CRASHES: &str = "--set nodes=2 --set replication.factor=2 --faults crash \
    --max-crashes 2 --messages 1 --threads 2";

/// The same bounds with Kafka's default timing, searched depth first on one thread (the same
/// counterexample every run) until the property a loss breaks is violated: the whole space takes
/// minutes, a violation seconds (docs/model-checking.md, "Search order").
const TWO_CRASHES_DEFAULT_TIMING: &str = "--broker kafka --set nodes=2 \
    --set replication.factor=2 --faults crash --max-crashes 2 --messages 1 --strategy dfs";

/// The two-crash check with the default timing and `settings`, stopped once `property` is
/// violated: the counterexample. (Seconds of wall time: docs/model-checking.md, "Measured". What
/// is asserted is the work, which the machine's load does not change: the whole space of the
/// unclean-election check is 3.8 million stored states.)
fn until_violated(settings: &str, property: &str) -> Vec<Value> {
    let (code, json) = check(&format!(
        "{TWO_CRASHES_DEFAULT_TIMING} {settings} --stop-at-violation {property}"
    ));
    let unique = json["unique_states"].as_u64().unwrap();
    assert!(unique < 1_000_000, "{property} found after {unique} states");
    assert_eq!(json["stopped_at_violation"], true, "{json}");
    assert_eq!(
        json["config"]["replica.fetch.wait.max.ms"], "500",
        "default timing"
    );
    counterexample(code, &json, property)
}

/// A two-crash loss story: where the record is acknowledged, which broker did not acknowledge it
/// (the follower), and where each of them crashes.
struct TwoCrashLoss<'a> {
    ack: usize,
    follower: &'a str,
    leader_crash: usize,
    follower_crash: usize,
}

fn two_crash_loss(steps: &[Value]) -> TwoCrashLoss<'_> {
    let ack = steps
        .iter()
        .position(produce_ack)
        .unwrap_or_else(|| panic!("the record is acknowledged: {steps:#?}"));
    let leader = src(&steps[ack]);
    let crashes: Vec<(usize, &str)> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| broker_crash(s))
        .map(|(i, s)| (i, node(s)))
        .collect();
    assert!(
        crashes.len() == 2 && crashes[0].1 != crashes[1].1,
        "both brokers crash once: {steps:#?}"
    );
    let (leader_crash, follower_crash, follower) = if crashes[0].1 == leader {
        (crashes[0].0, crashes[1].0, crashes[1].1)
    } else {
        assert_eq!(
            crashes[1].1, leader,
            "the acknowledging broker crashes: {steps:#?}"
        );
        (crashes[1].0, crashes[0].0, crashes[0].1)
    };
    TwoCrashLoss {
        ack,
        follower,
        leader_crash,
        follower_crash,
    }
}

/// Asserts that, after step `from`, the controller makes `broker` the leader with an ISR of
/// itself alone.
fn assert_elected_alone(steps: &[Value], from: usize, broker: &str) {
    let (leader, isr) = (format!("leader={broker} "), format!("isr=[{broker}]"));
    assert!(
        steps[from..].iter().any(|s| kind(s) == "deliver"
            && text(s).contains("PartitionChange")
            && text(s).contains(&leader)
            && text(s).contains(&isr)),
        "{broker} is elected alone after step {from}: {steps:#?}"
    );
}

/// In these bounds the consumer has a fetch parked at the leader, so it reads the record the
/// moment it is acknowledged, and the TCP connection delivers that response even when the
/// leader dies right after: at-least-once holds for it. The loss is the elected leader's:
/// it lacks a committed record (the TLA+ specification's `LeaderCompleteness`).
#[test]
fn check_unclean_election_elects_a_leader_without_an_acknowledged_record_after_two_crashes() {
    let steps = until_violated(
        "--set unclean.leader.election.enable=true",
        "LeaderCompleteness",
    );
    let loss = two_crash_loss(&steps);
    // The follower is gone and out of the ISR when the leader acknowledges the record alone…
    assert!(
        loss.follower_crash < loss.ack && loss.ack < loss.leader_crash,
        "follower down, ack, leader down: {steps:#?}"
    );
    // …then the follower comes back and is elected without it: an ISR of itself alone.
    assert_elected_alone(&steps, loss.leader_crash, loss.follower);
}

/// A consumer that starts reading 30 s late never gets the record the unclean election lost:
/// at-least-once itself is violated. (The whole search for it took 443 s with the chatter
/// quieted; depth first, stopped at the violation, it takes about a second.)
#[test]
fn check_unclean_election_loses_an_acknowledged_record_for_a_late_reader() {
    let steps = until_violated(
        "--set unclean.leader.election.enable=true --consumer-delay-ms 30000",
        "at-least-once",
    );
    let ack = steps
        .iter()
        .position(produce_ack)
        .unwrap_or_else(|| panic!("the record is acknowledged: {steps:#?}"));
    let leader = src(&steps[ack]).to_string();
    let follower = if leader == "n1" { "n2" } else { "n1" };
    let crashed = |n: &str| {
        steps
            .iter()
            .position(|s| kind(s) == "crash" && node(s) == n)
            .unwrap_or_else(|| panic!("{n} crashes: {steps:#?}"))
    };
    let (leader_crash, follower_crash) = (crashed(&leader), crashed(follower));
    assert!(
        follower_crash < ack && follower_crash < leader_crash,
        "the follower is down first: {steps:#?}"
    );
    assert_elected_alone(&steps, leader_crash, follower);
    assert!(
        !steps.iter().any(|s| kind(s) == "deliver"
            && s["dst"] == "c0"
            && text(s).contains("records=[p0:0]")),
        "the consumer never reads p0:0: {steps:#?}"
    );
}

/// KIP-101's settings, with `log.truncation` set to `truncation`.
fn kip_101(truncation: &str) -> String {
    format!("--set min.insync.replicas=2 --set log.truncation={truncation}")
}

/// KIP-101's window: the follower has fetched the record but not yet the high watermark that
/// covers it, the leader acknowledges it (`min.insync.replicas=2`), the follower bounces and
/// truncates to its stale checkpointed high watermark while it is still in the ISR
/// (`StrongIsr`). The election that would make the truncation a loss comes only after the
/// leader's session times out, and then the only replica that knew the record was committed is
/// the dead one: the consumer read the record at once, so in these bounds at-least-once holds and
/// the truncation is the evidence.
#[test]
fn check_high_watermark_truncation_drops_an_acknowledged_record_from_an_isr_member() {
    let steps = until_violated(&kip_101("high-watermark"), "StrongIsr");
    let ack = steps
        .iter()
        .position(produce_ack)
        .unwrap_or_else(|| panic!("the record is acknowledged: {steps:#?}"));
    let leader = src(&steps[ack]).to_string();
    let follower = if leader == "n1" { "n2" } else { "n1" };
    let fetched = steps
        .iter()
        .position(|s| {
            kind(s) == "deliver"
                && src(s) == leader
                && s["dst"] == follower
                && text(s).contains(": FetchResponse p0 offset=0 records=[p0:0] hw=0")
        })
        .unwrap_or_else(|| panic!("{follower} fetches p0:0 from {leader}: {steps:#?}"));
    let crash = steps
        .iter()
        .position(|s| kind(s) == "crash" && node(s) == follower)
        .unwrap_or_else(|| panic!("{follower} crashes: {steps:#?}"));
    let restart = steps
        .iter()
        .position(|s| kind(s) == "restart" && node(s) == follower)
        .unwrap_or_else(|| panic!("{follower} restarts: {steps:#?}"));
    // The follower's next fetch, which tells the leader it has the record, may already be on
    // its way when it crashes: the acknowledgement can come before or after the crash, but
    // before the restart whose truncation breaks StrongIsr.
    assert!(
        fetched < ack && fetched < crash && ack < restart && crash < restart,
        "fetch with hw=0, ack, the follower bounces: {steps:#?}"
    );
    assert!(
        !steps
            .iter()
            .any(|s| kind(s) == "crash" && node(s) == leader),
        "the leader stays up: {steps:#?}"
    );
}

#[test]
fn check_leader_epoch_truncation_keeps_the_record_under_the_same_two_crashes() {
    // The whole space, so with the chatter quieted (depth first is twice as fast when only the
    // verdict matters).
    let (_, json) = check(&format!(
        "{QUIET_KAFKA} {TWO_CRASHES} {} --strategy dfs",
        kip_101("leader-epoch")
    ));
    assert_eq!(json["config"]["log.truncation"], "leader-epoch");
    assert_held(&json, "at-least-once");
    for invariant in STRUCTURAL {
        assert_held(&json, invariant);
    }
    for coverage in [
        "a record is acknowledged",
        "a consumer reads",
        "a crash happens",
        "a leader changes",
    ] {
        assert_eq!(
            property(&json, coverage)["held"],
            true,
            "{coverage} reached"
        );
    }
    assert!(
        steps_taken(&json) > 1_000_000,
        "only {} steps",
        steps_taken(&json)
    );
}

/// Three records, one crash, retries with 5 in flight, with or without the idempotent producer.
/// The consumer commits before processing, so it never handles a record twice itself (it loses
/// one instead): a duplicate can only come from the log.
fn retries_under_a_crash(idempotence: bool) -> (i32, Value) {
    check(&format!(
        "{QUIET_KAFKA} --set enable.idempotence={idempotence} --set retries=5 \
         --set max.in.flight.requests.per.connection=5 --set consumer.commit=before-processing \
         --faults crash --messages 3"
    ))
}

#[test]
fn check_retries_without_idempotence_reorder_and_duplicate_records() {
    let (code, json) = retries_under_a_crash(false);
    let steps = counterexample(code, &json, "ordering");
    assert!(
        steps.iter().any(broker_crash),
        "a broker crash in the story: {steps:#?}"
    );
    let why = json["properties"]["ordering"]["why"].to_string();
    assert!(why.contains("first delivered"), "a reorder: {why}");
    let duplicate = json["properties"]["at-most-once"]["why"].to_string();
    assert!(
        duplicate.contains("stored more than once"),
        "a retried batch is in the log twice: {duplicate}"
    );
    // The idempotent producer under the same bounds neither reorders nor duplicates.
    let (_, idempotent) = retries_under_a_crash(true);
    assert_held(&idempotent, "ordering");
    assert_held(&idempotent, "at-most-once");
}

#[test]
fn check_idempotent_producer_holds_everything_under_packet_loss() {
    let (code, json) = check("--broker kafka --set enable.idempotence=true --faults loss");
    for (name, p) in json["properties"].as_object().unwrap() {
        assert_eq!(p["held"], true, "{name}: {p}");
    }
    assert!(
        json["properties"].get("a crash happens").is_none(),
        "no crash coverage without crashes"
    );
    assert_eq!(code, 0, "all held exits 0");
}

#[test]
fn check_time_symmetry_merges_shifted_states_and_changes_no_verdict() {
    // Unreduced, so that what is measured is the symmetry alone.
    let args = "--broker kafka --set acks=1 --set enable.idempotence=false --faults crash \
        --strategy dfs --unreduced";
    let (code, plain) = check(args);
    let (reduced_code, reduced) = check(&format!("{args} --symmetry"));
    assert_eq!(plain["symmetry"], false);
    assert_eq!(reduced["symmetry"], true);
    let unique = |j: &Value| j["unique_states"].as_u64().unwrap();
    assert!(
        unique(&reduced) < unique(&plain),
        "time translation merges some states: {} against {}",
        unique(&reduced),
        unique(&plain)
    );
    assert!(unique(&reduced) > 100_000, "a real search");
    // Sound: every property gets the same verdict, counterexamples included.
    assert_eq!(code, reduced_code);
    for (name, p) in plain["properties"].as_object().unwrap() {
        assert_eq!(p["held"], reduced["properties"][name]["held"], "{name}");
    }
    counterexample(reduced_code, &reduced, "at-least-once");
}

/// The reduction (docs/model-checking.md, "Reduction") changes no verdict: each check gets the
/// same exit status and the same verdict for every property with and without `--unreduced`,
/// from fewer stored states.
#[test]
fn check_reduction_changes_no_verdict() {
    for args in [
        SAFE_KAFKA,
        "--broker kafka --set acks=1 --set enable.idempotence=false --faults crash",
        "--broker kafka --set log.truncation=high-watermark --faults crash",
        "--broker kafka --set acks=0 --set enable.idempotence=false --faults loss",
        "--broker rabbitmq --set queue.type=quorum --set publisher.retry=true --faults crash",
        "--broker zeromq --set pattern=push-pull --faults crash",
    ] {
        let (code, reduced) = check(args);
        let (unreduced_code, unreduced) = check(&format!("{args} --unreduced"));
        assert_eq!(reduced["reduced"], true);
        assert_eq!(unreduced["reduced"], false);
        assert_eq!(unreduced["followed_steps"], 0, "{args}");
        assert_eq!(code, unreduced_code, "{args}");
        assert_eq!(
            reduced["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            unreduced["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect::<Vec<_>>()
        );
        for (name, p) in unreduced["properties"].as_object().unwrap() {
            assert_eq!(
                p["verdict"], reduced["properties"][name]["verdict"],
                "{args}: {name}"
            );
        }
        let unique = |j: &Value| j["unique_states"].as_u64().unwrap();
        assert!(
            unique(&reduced) < unique(&unreduced),
            "{args}: {} stored states reduced against {} unreduced",
            unique(&reduced),
            unique(&unreduced)
        );
    }
}

/// `--stop-at-violation` only ends a search early: each check gets the exit status of the
/// whole search, every violation it reports is one the whole search reports, a check where
/// everything holds is searched to the end with the same verdicts, and a stopped search says
/// what held only within the part it explored.
#[test]
fn check_stop_at_violation_reports_only_violations_the_whole_search_finds() {
    let whole = [
        (SAFE_KAFKA, safe_kafka().clone()),
        (
            "--broker kafka --set acks=1 --set enable.idempotence=false --faults crash",
            check("--broker kafka --set acks=1 --set enable.idempotence=false --faults crash"),
        ),
        (
            "--broker kafka --set log.truncation=high-watermark --faults crash",
            check("--broker kafka --set log.truncation=high-watermark --faults crash"),
        ),
        (
            "--broker zeromq --set pattern=push-pull --faults crash",
            check("--broker zeromq --set pattern=push-pull --faults crash"),
        ),
    ];
    let verdict = |j: &Value, name: &str| j["properties"][name]["verdict"].clone();
    let mut shorter = false;
    for (args, (code, all)) in &whole {
        for strategy in ["bfs", "dfs"] {
            let (stopped_code, stopped) =
                check(&format!("{args} --strategy {strategy} --stop-at-violation"));
            assert_eq!(*code, stopped_code, "{args} {strategy}");
            let early = stopped["stopped_at_violation"] == true;
            assert_eq!(early, *code == 1, "{args} {strategy}: {stopped}");
            for (name, p) in all["properties"].as_object().unwrap() {
                let (whole, part) = (&p["verdict"], verdict(&stopped, name));
                match part.as_str().unwrap() {
                    "violated" => assert_eq!(whole, "violated", "{args} {strategy}: {name}"),
                    "held within the explored part" => {
                        assert!(early, "{args} {strategy}: {name}");
                        assert!(whole == "held" || whole == "violated", "{name}: {whole}");
                    }
                    _ if !early => assert_eq!(whole, &part, "{args} {strategy}: {name}"),
                    // Coverage, and at-least-once if no run had ended yet.
                    _ => assert!(
                        p["expectation"] == "sometimes" || part == "not judged",
                        "{args} {strategy}: {name}: {part}"
                    ),
                }
            }
            // A search ends at its violation, which breadth first may meet only at the end.
            let (part, whole) = (stopped["states"].as_u64(), all["states"].as_u64());
            assert!(part <= whole, "{args} {strategy}: {part:?} of {whole:?}");
            shorter |= part < whole;
        }
    }
    assert!(shorter, "some search ended before the whole space");
}

#[test]
fn check_stop_at_violation_of_an_unknown_property_is_refused_naming_it() {
    bad_input(
        &[
            "check",
            "--broker",
            "kafka",
            "--stop-at-violation",
            "nosuch",
        ],
        "--stop-at-violation",
    );
    bad_input(
        &[
            "check",
            "--broker",
            "kafka",
            "--stop-at-violation",
            "at-least-once,a crash happens",
        ],
        "--stop-at-violation",
    );
}

#[test]
fn check_unreached_coverage_is_inconclusive_and_exits_3() {
    let (code, json) = check("--broker kafka --faults none --consumers 0");
    assert_held(&json, "at-least-once");
    assert_eq!(property(&json, "a consumer reads")["held"], false);
    assert!(json["properties"].get("a crash happens").is_none());
    assert!(json["properties"].get("a leader changes").is_none());
    assert_eq!(json["verdict"], "inconclusive");
    assert!(json["reason"]
        .as_str()
        .unwrap()
        .contains("coverage unreached: a consumer reads"));
    assert_eq!(code, 3, "unreached coverage exits 3");
}

#[test]
fn check_stopped_by_max_states_is_inconclusive_and_exits_3() {
    let (code, json) = check("--broker kafka --faults tcp --max-states 20000");
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("--max-states 20000 stopped the search"),
        "{json}"
    );
    let states = json["states"].as_u64().unwrap();
    assert!((20_000..200_000).contains(&states), "{states} states");
    assert_eq!(code, 3, "a search the limit stopped exits 3");
}

#[test]
fn check_stopped_by_max_seconds_is_inconclusive_with_every_property_judged_so_far() {
    let started = Instant::now();
    let (code, json) = check("--broker kafka --faults tcp --max-seconds 2");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("--max-seconds 2 stopped the search"),
        "{json}"
    );
    assert_eq!(json["bounds"]["max_seconds"], 2);
    // The default search takes minutes: the limit, not the end of the space, stopped it.
    let states = json["states"].as_u64().unwrap();
    assert!(states > 0 && states < 10_000_000, "{states} states");
    assert!(json["properties"]["at-most-once"].is_object(), "{json}");
}

/// Asserts a search stopped early said so of every property: safety properties held within the
/// explored part (at-least-once not judged if no run ended), coverage reached or not.
fn assert_judged_so_far(json: &Value) {
    for (name, p) in json["properties"].as_object().expect("properties") {
        let verdict = p["verdict"].as_str().expect("a verdict");
        let allowed: &[&str] = match p["expectation"].as_str() {
            Some("sometimes") => &["reached", "unreached"],
            _ if name == "at-least-once" => &["held within the explored part", "not judged"],
            _ => &["held within the explored part"],
        };
        assert!(allowed.contains(&verdict), "{name}: {p}");
        assert_eq!(
            p["held"],
            verdict.starts_with("held") || verdict == "reached"
        );
    }
}

#[test]
fn ctrl_c_stops_a_check_with_every_property_judged_so_far_and_exits_3() {
    let child = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(["check", "--broker", "kafka", "--faults", "tcp", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mqcheck starts");
    let child = Killed(child);
    // The default search takes minutes; give it time to explore some states first.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: signals the child this test spawned and has not waited for.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let interrupted = Instant::now();
    let mut child = child;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waits") {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(20),
            "the check did not stop within 20 s of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("a report");
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    let reason = json["reason"].as_str().unwrap();
    assert!(reason.contains("interrupted (Ctrl-C) after"), "{reason}");
    let states = json["states"].as_u64().unwrap();
    assert!(states > 0 && states < 10_000_000, "{states} states");
    assert_judged_so_far(&json);
    assert!(
        stderr.contains("interrupted: stopping the search"),
        "{stderr}"
    );
}

#[test]
fn the_memory_guard_stops_a_check_at_its_limit_inconclusive() {
    let started = Instant::now();
    let (code, json) = check("--broker kafka --faults tcp --max-memory 1");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(code, 3, "{json}");
    assert_eq!(json["verdict"], "inconclusive", "{json}");
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.contains("the memory guard stopped the search")
            && reason.contains("(--max-memory 1)"),
        "{reason}"
    );
    assert_eq!(json["bounds"]["max_memory"], 1);
    assert_judged_so_far(&json);
    // The text summary says the same in words.
    let (code, text, _) = mqcheck_within_20s(&[
        "check",
        "--broker",
        "kafka",
        "--faults",
        "tcp",
        "--max-memory",
        "1",
    ]);
    assert_eq!(code, 3);
    assert!(
        text.contains("held      at-most-once (within the explored part)"),
        "{text}"
    );
    assert!(text.contains("inconclusive: "), "{text}");
}

#[test]
fn check_zeromq_push_pull_loses_a_message_to_a_crash() {
    let (code, json) = check("--broker zeromq --set pattern=push-pull --faults crash");
    assert_eq!(json["broker"], "zeromq");
    assert_eq!(json["config"]["pattern"], "push-pull");
    let steps = counterexample(code, &json, "at-least-once");
    assert!(steps.iter().any(|s| kind(s) == "crash"), "{steps:#?}");
    assert!(
        json["properties"].get("LeaderInIsr").is_none(),
        "Kafka's invariants are Kafka's"
    );
    assert!(json["properties"].get("a leader changes").is_none());
}

#[test]
fn check_zeromq_connecting_push_loses_what_it_wrote_to_a_pull_that_crashed_and_never_duplicates() {
    let (code, json) =
        check("--broker zeromq --set pattern=push-pull --set bind=pull --faults crash");
    assert_eq!(json["config"]["bind"], "pull");
    assert_held(&json, "at-most-once");
    let steps = counterexample(code, &json, "at-least-once");
    assert!(steps.iter().any(|s| kind(s) == "crash"), "{steps:#?}");
}

/// A client that resends what it has no answer for loses nothing under `fault`, and duplicates:
/// the first copy was not lost, only late, or its answer was. The story holds a step of `kind`.
fn resends_duplicate_but_lose_nothing(args: &str, fault: &str, step: &str) {
    let (code, json) = check(&format!("{args} --faults {fault}"));
    assert_held(&json, "at-least-once");
    let steps = counterexample(code, &json, "at-most-once");
    assert!(steps.iter().any(|s| kind(s) == step), "{steps:#?}");
}

#[test]
fn check_zeromq_lazy_pirate_retries_duplicate_but_lose_nothing() {
    // The request waits out the partition (TCP retransmits it), the client times out first and
    // sends it again: the server handles both.
    resends_duplicate_but_lose_nothing(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate",
        "partition",
        "isolate",
    );
}

#[test]
fn check_rabbitmq_transient_messages_die_with_the_queue_node_but_persistent_ones_survive() {
    let (code, json) =
        check("--broker rabbitmq --set queue.type=classic --set delivery_mode=1 --faults crash");
    let steps = counterexample(code, &json, "at-least-once");
    assert!(
        steps.iter().any(|s| kind(s) == "crash" && node(s) == "n1"),
        "the classic queue's node crashes: {steps:#?}"
    );
    let (_, persistent) =
        check("--broker rabbitmq --set queue.type=classic --set delivery_mode=2 --faults crash");
    assert_held(&persistent, "at-least-once");
}

#[test]
fn check_rabbitmq_publisher_retry_duplicates_after_a_lost_confirm() {
    // The queue leader's node crashes after it stored the message and before the confirm left:
    // the publisher's connection closes and it republishes what was unconfirmed.
    resends_duplicate_but_lose_nothing(
        "--broker rabbitmq --set queue.type=quorum --set publisher.retry=true",
        "crash",
        "crash",
    );
}

#[test]
fn check_text_output_tells_the_story_and_svg_draws_it() {
    let svg = std::env::temp_dir().join(format!("mqcheck-check-{}.svg", std::process::id()));
    let _ = std::fs::remove_file(&svg);
    let out = mqcheck(&[
        "check",
        "--broker",
        "kafka",
        "--set",
        "acks=1",
        "--set",
        "enable.idempotence=false",
        "--faults",
        "crash",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let text = &out.stdout;
    assert!(
        text.lines().any(|l| l.starts_with("Done. states=")),
        "{text}"
    );
    assert!(text.contains("\nheld      LeaderInIsr\n"), "{text}");
    assert!(
        text.contains("\nreached   a crash happens (coverage)\n"),
        "{text}"
    );
    // The at-least-once verdict and its story, up to the next verdict.
    let story: Vec<&str> = text
        .split("\nVIOLATED  at-least-once\n")
        .nth(1)
        .unwrap_or_else(|| panic!("VIOLATED  at-least-once: {text}"))
        .lines()
        .take_while(|l| l.starts_with(' '))
        .collect();
    assert!(
        story
            .iter()
            .any(|l| l.trim_start().split_once(". ").is_some_and(|(_, s)| s
                .split_whitespace()
                .next()
                .is_some_and(is_broker)
                && s.contains(" crashes"))),
        "a numbered broker crash: {story:#?}"
    );
    assert!(story
        .iter()
        .any(|l| l.contains("not shown: timers, heartbeats, empty polls, repeats")));
    assert!(
        story
            .iter()
            .any(|l| l.starts_with("  why: ") && l.contains("acknowledged")),
        "{story:#?}"
    );
    assert!(
        story
            .iter()
            .any(|l| l.contains("open in the Explorer") && l.contains("#/steps/")),
        "{story:#?}"
    );
    let drawing = std::fs::read_to_string(&svg).expect("--svg writes the file");
    assert!(drawing.starts_with("<svg"), "{}", &drawing[..80]);
    assert!(drawing.trim_end().ends_with("</svg>"));
    let labels = labels(&drawing);
    for node in ["ctl", "n1", "n2", "n3", "p0", "c0"] {
        assert!(labels.iter().any(|l| l == node), "names {node}");
    }
    let title = &labels[..4];
    assert_eq!(
        title[0],
        "kafka acks=1 enable.idempotence=false --faults crash"
    );
    assert_eq!(title[1], "VIOLATED at-least-once");
    assert!(title[2].starts_with("why: ") && title[2].contains("acknowledged"));
    assert!(
        labels.iter().any(|l| l.contains(" crashes")),
        "the crash is drawn"
    );
    // The story: a few dozen rows of the run's thousands of steps, the rest folded.
    let steps: usize = story
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix('(')?
                .split_once(" steps;")?
                .0
                .parse()
                .ok()
        })
        .expect("the summary counts the steps");
    let rows = labels.iter().filter(|l| is_row(l)).count();
    assert!(
        rows > 20 && rows * 10 < steps,
        "{rows} rows of {steps} steps"
    );
    assert!(labels.iter().any(|l| l.contains("steps folded: timers")));
    let (width, height) = render(&drawing);
    assert!(height <= 3000, "height bounded by folding: {height} px");
    assert!(width <= 1600, "{width} px wide");
    std::fs::remove_file(&svg).unwrap();
}

/// `--svg-full` draws every step of the counterexample, each labelled in the broker's words.
#[test]
fn check_svg_full_draws_every_step() {
    let svg = std::env::temp_dir().join(format!("mqcheck-full-{}.svg", std::process::id()));
    let args = "--broker zeromq --set pattern=push-pull --faults crash";
    let (code, json) = check(args);
    let steps = counterexample(code, &json, "at-least-once");
    for step in &steps {
        let text = step["text"].as_str().unwrap();
        assert!(
            !text.contains('{') && !text.contains("Id("),
            "Debug in the JSON: {text}"
        );
    }
    let mut words: Vec<&str> = vec!["check"];
    words.extend(args.split_whitespace());
    words.extend(["--svg", svg.to_str().unwrap(), "--svg-full"]);
    assert_eq!(mqcheck(&words).code, 1);
    let drawing = std::fs::read_to_string(&svg).expect("--svg writes the file");
    let labels = labels(&drawing);
    assert_eq!(labels[0], "zeromq pattern=push-pull --faults crash");
    assert_eq!(labels.iter().filter(|l| is_row(l)).count(), steps.len());
    assert!(!labels.iter().any(|l| l.contains("folded")));
    render(&drawing);
    std::fs::remove_file(&svg).unwrap();
}

#[test]
fn check_is_deterministic() {
    // One thread (the default): the same search, so the same counterexamples and Explorer links.
    let one = || check(SAFE_KAFKA);
    let (code_a, a) = one();
    let (code_b, b) = one();
    assert_eq!(code_a, code_b);
    assert_eq!(a["properties"], b["properties"]);
    assert_eq!(a["unique_states"], b["unique_states"]);
    assert_eq!(a["states"], b["states"]);
    assert_eq!(a["followed_steps"], b["followed_steps"]);
    assert_eq!(a["max_depth"], b["max_depth"]);
    // Two threads: the same state space and verdicts.
    let (code_c, c) = check(&format!("{SAFE_KAFKA} --threads 2"));
    assert_eq!(code_a, code_c);
    assert_eq!(a["unique_states"], c["unique_states"]);
    for (name, p) in a["properties"].as_object().unwrap() {
        assert_eq!(p["held"], c["properties"][name]["held"], "{name}");
    }
}

/// `GET path` over HTTP/1.0; the whole response, or `None` if nothing answers yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// Starts `mqcheck explore --broker BROKER` on a free port and returns the names of the
/// properties its status page lists.
fn explored_properties(broker: &str) -> Vec<String> {
    // Port 0: the system picks a free port, and explore says which.
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mqcheck"))
            .args(["explore", "--broker", broker, "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqcheck explore starts"),
    );
    let mut banner = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("explore names its address: {banner}"))
        .to_string();
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_ne!(port, 0, "{banner}");
    assert_eq!(
        banner,
        format!("Stateright Explorer for {broker} on http://{addr}/ (Ctrl-C stops it)\n")
    );
    let started = Instant::now();
    let response = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("mqcheck explore exited ({status}): {stderr}");
        }
        match http_get(port, "/.status") {
            Some(r) if !r.is_empty() => break r,
            _ if started.elapsed() > Duration::from_secs(20) => {
                panic!("no answer on {addr} within 20 s")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP response: {response}"));
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "{head}"
    );
    let status: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON status ({e}): {body}"));
    status["properties"]
        .as_array()
        .unwrap_or_else(|| panic!("properties listed: {status}"))
        .iter()
        .filter_map(|p| p[1].as_str().map(str::to_string))
        .collect()
}

#[test]
fn explore_serves_the_explorer_with_the_model_properties() {
    // Every broker `mqcheck list` names, each with its guarantees and a reachability property.
    for broker in ["kafka", "rabbitmq", "zeromq", "rocketmq", "activemq"] {
        let names = explored_properties(broker);
        for name in ["at-least-once", "a consumer reads"] {
            assert!(
                names.iter().any(|n| n == name),
                "{broker}: {name} in {names:?}"
            );
        }
        if broker == "kafka" {
            assert!(names.iter().any(|n| n == "LeaderInIsr"), "{names:?}");
        }
    }
}

#[test]
fn check_bad_input_is_one_line_and_exit_2() {
    bad_input(&["check", "--broker", "nosuch"], "nosuch");
    bad_input(
        &["check", "--broker", "kafka", "--set", "nosuch.key=1"],
        "nosuch.key",
    );
    bad_input(&["check", "--broker", "kafka", "--set", "acks=7"], "acks");
    bad_input(
        &["check", "--broker", "kafka", "--faults", "bogus"],
        "--faults",
    );
    bad_input(
        &["check", "--broker", "kafka", "--messages", "0"],
        "--messages",
    );
    bad_input(
        &["check", "--broker", "kafka", "--max-crashes", "9"],
        "--max-crashes",
    );
    bad_input(
        &["check", "--broker", "kafka", "--max-net-faults", "9"],
        "--max-net-faults",
    );
    bad_input(
        &["explore", "--broker", "nosuch", "--addr", "127.0.0.1:0"],
        "nosuch",
    );
    bad_input(&["check", "--broker", "kafka", "--symmetry"], "--symmetry");
    // clap's own error: several lines, but exit 2 and no panic.
    let (code, stdout, stderr) =
        mqcheck_within_20s(&["check", "--broker", "kafka", "--strategy", "xyz"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("xyz") && stderr.contains("--strategy"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_unknown_fault_is_refused_naming_faults() {
    bad_input(
        &["check", "--broker", "kafka", "--faults", "pause,slow"],
        "--faults",
    );
}

#[test]
fn check_zero_max_states_is_refused_naming_max_states() {
    bad_input(
        &["check", "--broker", "kafka", "--max-states", "0"],
        "--max-states",
    );
}

#[test]
fn explore_bad_address_is_refused_naming_addr() {
    bad_input(
        &["explore", "--broker", "kafka", "--addr", "nonsense"],
        "--addr",
    );
}

#[test]
fn explore_on_a_port_in_use_is_refused_naming_addr() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    bad_input(&["explore", "--broker", "kafka", "--addr", &addr], "--addr");
    drop(taken);
}

#[test]
fn producer_crashes_put_a_crash_on_the_producer() {
    let out = mqcheck(&[
        "check",
        "--broker",
        "kafka",
        "--producer-crashes",
        "--faults",
        "crash",
    ]);
    assert!(out.stdout.contains("p0 crashes"), "{}", out.stdout);
    assert!(
        !safe_kafka().1.to_string().contains("p0 crashes"),
        "without the flag the producer never crashes"
    );
}
