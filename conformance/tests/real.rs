//! The conformance suite: every scenario on the real broker, beside the model.
//!
//! `cargo test --release -p mqcheck-conformance --features real-brokers`. RabbitMQ and ActiveMQ come
//! from the Debian packages `rabbitmq-server` and `activemq`; without them these tests fail,
//! naming the package. The
//! real runs take turns (one broker at a time): two cores do not start two RabbitMQ nodes
//! quickly.

use mqcheck_conformance::network::Hole;
use mqcheck_conformance::plan::Act;
use mqcheck_conformance::scenario::{attempt, compare, Case, Comparison, SCENARIOS, SEEDS};
use mqcheck_invariants::{Kind, Op};
use mqcheck_sim::ScheduleFile;
use std::collections::BTreeSet;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> Vec<Comparison> {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let s = SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    let runs = attempt(s, SEEDS).unwrap_or_else(|e| panic!("{}: {e}", s.name));
    for c in &runs {
        println!("{}", c.render());
    }
    let seen: BTreeSet<Kind> = runs.iter().flat_map(|c| c.real_kinds()).collect();
    for c in &runs {
        assert!(
            c.inconclusive().is_none(),
            "{}: {:?}",
            s.name,
            c.inconclusive()
        );
        assert!(
            c.divergences().is_empty(),
            "{}: the real broker showed {:?}, which the model never produced",
            s.name,
            c.divergences()
        );
        assert!(
            c.broken_guarantees().is_empty(),
            "{}: the real broker broke {:?}",
            s.name,
            c.broken_guarantees()
        );
    }
    for claim in s.claims {
        assert!(
            seen.contains(claim),
            "{}: the model's {} was not seen on the real broker in {} attempts",
            s.name,
            claim.name(),
            runs.len()
        );
    }
    runs
}

#[test]
fn zeromq_push_pull_consumer_crash() {
    scenario("push-pull, consumer crash");
}

#[test]
fn zeromq_push_pull_push_connects_consumer_crash() {
    scenario("push-pull, PUSH connects, consumer crash");
}

#[test]
fn zeromq_pub_sub_slow_joiner() {
    scenario("pub-sub, slow joiner");
}

#[test]
fn zeromq_pub_sub_subscriber_crash() {
    scenario("pub-sub, subscriber crash");
}

#[test]
fn zeromq_lazy_pirate_server_crash() {
    scenario("req-rep, Lazy Pirate, server crash");
}

#[test]
fn rabbitmq_classic_broker_crash() {
    scenario("classic queue, confirms, manual acks, broker crash");
}

#[test]
fn rabbitmq_quorum_broker_crash() {
    scenario("quorum queue, confirms, manual acks, broker crash");
}

#[test]
fn rabbitmq_quorum_three_nodes_leader_crash() {
    scenario("quorum queue on three nodes, confirms, manual acks, leader crash");
}

/// No confirm or receipt reaches the producer between `from` and `to` (ms since the run's
/// start), and acknowledgements arrive again after `to`.
fn assert_silent_between(runs: &[Comparison], from: u64, to: u64) {
    for c in runs {
        let acks: Vec<u64> = c
            .real
            .history
            .events
            .iter()
            .filter(|e| matches!(e.op, Op::Ack { .. }))
            .map(|e| e.time_ms)
            .collect();
        assert!(
            !acks.iter().any(|t| (from..to).contains(t)),
            "an acknowledgement arrived between {from} and {to} ms: {acks:?}"
        );
        assert!(
            acks.iter().any(|t| *t >= to),
            "nothing acknowledged after {to} ms"
        );
    }
}

/// The partition took effect: while the broker's link drops everything, no confirm or receipt
/// reaches the producer (the first 300 ms let what was already on its way land), and
/// acknowledgements arrive again after the heal.
fn assert_silent_while_cut(runs: &[Comparison]) {
    assert_silent_between(runs, 1_500 + 300, 4_500);
}

#[test]
fn rabbitmq_partition() {
    let runs =
        scenario("classic queue, confirms, manual acks, broker partitioned from its clients");
    assert_silent_while_cut(&runs);
}

#[test]
fn rabbitmq_quorum_three_nodes_leader_partitioned() {
    let runs = scenario("quorum queue on three nodes, confirms, manual acks, leader partitioned from the other nodes and the clients");
    // The clients are on n0, cut off with it: no confirm while the cut lasts.
    assert_silent_between(&runs, 2_000 + 300, 8_000);
}

#[test]
fn rabbitmq_loss() {
    scenario("classic queue, confirms, manual acks, 20% packet loss");
}

#[test]
fn activemq_partition() {
    let runs = scenario(
        "persistent, synchronous sends, listener acks, broker partitioned from its clients",
    );
    assert_silent_while_cut(&runs);
}

#[test]
fn rabbitmq_auto_ack_consumer_crash() {
    scenario("classic queue, automatic acks, consumer crash");
}

#[test]
fn rabbitmq_transient_broker_crash() {
    scenario("transient messages, broker crash");
}

#[test]
fn activemq_persistent_broker_crash() {
    scenario("persistent, synchronous sends, listener acks, broker crash");
}

#[test]
fn activemq_non_persistent_broker_crash() {
    scenario("non-persistent, broker crash");
}

#[test]
fn activemq_prefetch_consumer_crash() {
    scenario("listener acks, queuePrefetch=50, consumer crash");
}

#[test]
fn activemq_receive_consumer_crash() {
    scenario("receive(), AUTO_ACKNOWLEDGE, consumer crash");
}

/// The slave took over: it became master while the old one was down, and receipts came from it
/// before the old master's restart (due at 22 s), which only the lock's holder could send.
#[test]
fn activemq_master_slave_master_crash() {
    let runs = scenario("master/slave on a shared KahaDB, failover clients, master crash");
    for c in &runs {
        assert_eq!(c.real.masters, [1, 1], "{:?}", c.real.notes);
        let taken_over =
            c.real.history.events.iter().any(|e| {
                matches!(e.op, Op::Ack { .. }) && (2_000 + 300..22_000).contains(&e.time_ms)
            });
        assert!(
            taken_over,
            "no receipt while the master was down: {:?}",
            c.real.notes
        );
    }
}

/// A stopped master keeps its lock (`SharedFileLocker`: the OS lock is the process's): the slave
/// never becomes master, and no receipt comes until the master resumes.
#[test]
fn activemq_master_slave_master_paused() {
    let runs = scenario("master/slave on a shared KahaDB, failover clients, master paused");
    for c in &runs {
        assert_eq!(c.real.masters, [1, 0], "{:?}", c.real.notes);
    }
    assert_silent_between(&runs, 2_000 + 300, 14_000);
}

/// The model-to-real round trip: a schedule file as `replay --schedule-out` writes it, replayed
/// on the real broker.
#[test]
fn a_model_schedule_file_replays_on_real_rabbitmq() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let schedule = mqcheck_sim::Schedule {
        window_ms: 6_000,
        faults: vec![
            mqcheck_sim::ScheduledFault {
                at_ms: 1_500,
                for_ms: 1_000,
                op: mqcheck_sim::FaultOp::Crash {
                    target: mqcheck_sim::Target::Leader,
                },
            },
            mqcheck_sim::ScheduledFault {
                at_ms: 4_000,
                for_ms: 1_000,
                op: mqcheck_sim::FaultOp::Partition {
                    split: mqcheck_sim::Split::IsolateLeader,
                },
            },
        ],
    };
    let text = serde_json::json!({
        "broker": "rabbitmq",
        "sets": ["nodes=1", "auto_ack=true"],
        "seed": 3,
        "messages": 150,
        "schedule": schedule,
    })
    .to_string();
    let path = std::env::temp_dir().join(format!("mqcheck-schedule-{}.json", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let file = ScheduleFile::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let case = Case::from_file(&file).unwrap();
    let c = compare(&case, SEEDS).unwrap_or_else(|e| panic!("{e}"));
    println!("{}", c.render());
    let acts: Vec<Act> = c.plan.actions.iter().map(|a| a.act).collect();
    assert_eq!(
        acts,
        [
            Act::Crash,
            Act::Restart,
            Act::Open(Hole::Partition),
            Act::Close(Hole::Partition)
        ],
        "the crash and the partition are both done: {:?}",
        c.plan
    );
    assert!(c.plan.skipped.is_empty(), "{:?}", c.plan.skipped);
    assert!(c.inconclusive().is_none());
    assert!(c.divergences().is_empty(), "{}", c.render());
}
