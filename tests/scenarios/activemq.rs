//! ActiveMQ Classic fault scenarios: each documented anomaly is found, each documented guarantee
//! holds, through the same code path as the CLI (`mqcheck sim … --json`, `mqcheck replay`,
//! `mqcheck check`).

use crate::common::{assert_deterministic, check, held, mqcheck, replay, reproduce, sim, violated};
use mqcheck_brokers::activemq::ActiveMq;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::{ordering, MsgId, Op, OrderingPromise};
use mqcheck_sim::{run, schedule_for, FaultSet};
use std::collections::BTreeMap;

const AMQ: &str = "--broker activemq";

fn explanation(v: &serde_json::Value) -> &str {
    v["explanation"].as_str().expect("an explanation")
}

#[test]
fn non_persistent_and_async_sends_are_lost_to_a_broker_crash() {
    let v = violated(
        &format!("{AMQ} --set deliveryMode=NON_PERSISTENT --faults crash --seeds 60"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    reproduce(&v);
    violated(
        &format!("{AMQ} --set useAsyncSend=true --faults crash --seeds 60"),
        "at-least-once",
    );
    // Persistent synchronous sends keep every acknowledged message.
    held(
        &format!("{AMQ} --faults crash --seeds 60"),
        &["at-least-once"],
    );
}

#[test]
fn periodic_and_never_lose_on_power_loss_and_always_does_not() {
    for strategy in ["periodic", "never"] {
        let v = violated(
            &format!("{AMQ} --set journalDiskSyncStrategy={strategy} --faults power --seeds 60"),
            "at-least-once",
        );
        reproduce(&v);
    }
    let json = held(
        &format!("{AMQ} --set journalDiskSyncStrategy=always --faults power --seeds 60"),
        &["at-least-once"],
    );
    assert!(json["stats"]["messages_delivered"].as_u64().unwrap() >= 60 * 90);
}

/// Acks are one-way, never fsynced: after a power loss, even with `always`, consumed messages
/// come back.
#[test]
fn consumed_messages_come_back_after_a_power_loss() {
    let v = violated(
        &format!("{AMQ} --set journalDiskSyncStrategy=always --faults power --seeds 60"),
        "at-most-once",
    );
    assert_eq!(v["kind"], "duplicate");
}

#[test]
fn auto_acknowledge_listener_duplicates_and_receive_loses_after_a_consumer_crash() {
    let v = violated(&format!("{AMQ} --faults crash --seeds 60"), "at-most-once");
    assert_eq!(v["kind"], "duplicate");
    let v = violated(
        &format!("{AMQ} --set consumer.api=receive --faults crash --seeds 100"),
        "at-least-once",
    );
    assert!(!explanation(&v).contains("discarded"), "{v}");
    reproduce(&v);
}

/// Over the timelines of some seeds under crashes, per message: whether each delivery was
/// flagged redelivered; returns (messages delivered again unflagged, messages delivered again).
fn unflagged_repeats(persist: &str) -> (usize, usize) {
    let (mut unflagged, mut repeated) = (0, 0);
    for seed in 0..40 {
        let seed = seed.to_string();
        let set = format!("persistJMSRedelivered={persist}");
        let r = mqcheck(&[
            "replay",
            "--full",
            "--broker",
            "activemq",
            "--set",
            &set,
            "--faults",
            "crash",
            "--messages",
            "40",
            "--check",
            "at-most-once",
            "--seed",
            &seed,
        ]);
        let mut flags: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for line in r.stdout.lines() {
            if let Some(rest) = line.split("app: deliver ").nth(1) {
                let m = rest.split_whitespace().next().unwrap().to_string();
                flags
                    .entry(m)
                    .or_default()
                    .push(rest.contains("(redelivered)"));
            }
        }
        for f in flags.values().filter(|f| f.len() > 1) {
            repeated += 1;
            unflagged += usize::from(!f[1..].iter().all(|x| *x));
        }
    }
    (unflagged, repeated)
}

/// The redelivered flag lives in the broker's memory: a broker restart loses it, unless
/// `persistJMSRedelivered` journals it before the first dispatch.
#[test]
fn the_redelivered_flag_survives_a_broker_restart_only_with_persist_jms_redelivered() {
    let (unflagged, repeated) = unflagged_repeats("false");
    assert!(unflagged > 0, "{unflagged} of {repeated}");
    let (unflagged, repeated) = unflagged_repeats("true");
    assert!(repeated > 0 && unflagged == 0, "{unflagged} of {repeated}");
}

#[test]
fn seven_failures_dead_letter_a_message() {
    let v = violated(
        &format!("{AMQ} --set consumer.fail=every-tenth --faults none --seeds 2 --messages 20"),
        "at-least-once",
    );
    let why = explanation(&v);
    assert!(
        why.contains("redelivery 7 exceeded maximumRedeliveries=6") && why.contains("ActiveMQ.DLQ"),
        "{v}"
    );
    assert_eq!(v["kind"], "dead-lettered", "{v}");
    // A non-persistent message past the limit is dropped by the dead-letter strategy.
    let v = violated(
        &format!(
            "{AMQ} --set consumer.fail=every-tenth --set deliveryMode=NON_PERSISTENT --faults none --seeds 2 --messages 20"
        ),
        "at-least-once",
    );
    assert!(
        explanation(&v).contains("processNonPersistent=false"),
        "{v}"
    );
    assert_eq!(v["kind"], "dead-lettered", "{v}");
    // One redelivery more and the eighth delivery succeeds.
    held(
        &format!(
            "{AMQ} --set consumer.fail=every-tenth --set maximumRedeliveries=7 --faults none --seeds 2 --messages 20"
        ),
        &["at-least-once"],
    );
}

#[test]
fn client_acknowledge_acks_a_failed_message_away_where_individual_does_not() {
    let v = violated(
        &format!(
            "{AMQ} --set acknowledgeMode=CLIENT_ACKNOWLEDGE --set consumer.fail=every-tenth --faults none --seeds 2 --messages 20"
        ),
        "at-least-once",
    );
    assert!(explanation(&v).contains("CLIENT_ACKNOWLEDGE"), "{v}");
    held(
        &format!(
            "{AMQ} --set acknowledgeMode=INDIVIDUAL_ACKNOWLEDGE --set consumer.fail=every-tenth \
             --set maximumRedeliveries=-1 --faults crash,partition --seeds 40 --messages 40"
        ),
        &["at-least-once"],
    );
}

/// A paused consumer's connection is closed by the broker's inactivity monitor, its prefetched
/// messages go to the other consumer, and when it resumes it handles them too.
#[test]
fn a_stalled_consumer_handles_messages_that_went_elsewhere() {
    let v = violated(
        &format!("{AMQ} --consumers 2 --faults pause --seeds 60"),
        "at-most-once",
    );
    reproduce(&v);
}

#[test]
fn always_with_synchronous_sends_keeps_every_acknowledged_message() {
    let json = held(
        &format!(
            "{AMQ} --set journalDiskSyncStrategy=always --faults crash,pause,partition,loss --seeds 100"
        ),
        &["at-least-once"],
    );
    assert!(json["stats"]["messages_delivered"].as_u64().unwrap() >= 100 * 90);
    held(
        &format!("{AMQ} --faults tcp --seeds 60 --producers 2 --consumers 2"),
        &["at-least-once", "ordering"],
    );
}

#[test]
fn an_exclusive_consumer_keeps_order_across_a_consumer_crash() {
    held(
        &format!(
            "{AMQ} --set consumer.exclusive=true --consumers 2 --faults crash,pause --seeds 60"
        ),
        &["at-least-once", "ordering"],
    );
}

/// Seeds (of `seeds`) whose run reorders some key across consumers: two consumers, three keys,
/// consumer crashes; each delivery judged by the ordering checker in the scope of its message's
/// key, over every consumer and session, redeliveries aside — what message groups promise beyond
/// JMS's per-session order.
fn per_key_reorderings(sets: &[&str], seeds: u64) -> usize {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse(ActiveMq::NAME, &ActiveMq::keys(), &sets).expect("valid keys");
    let mut workload = Workload::new(100, 1, 2);
    workload.keys = Some(3);
    let system = ActiveMq::build(&config, workload);
    let faults: FaultSet = "crash".parse().expect("a fault set");
    let per_key = OrderingPromise {
        excludes_redelivered: true,
        ..OrderingPromise::default()
    };
    (0..seeds)
        .filter(|seed| {
            let r = run(
                &system,
                *seed,
                &schedule_for(&system, *seed, &faults),
                false,
            );
            assert!(r.complete, "seed {seed} ran to its end");
            let mut history = r.history;
            let keys: BTreeMap<MsgId, u32> = history
                .events
                .iter()
                .filter_map(|e| match e.op {
                    Op::Send { msg, key, .. } => Some((msg, key.expect("keyed workload"))),
                    _ => None,
                })
                .collect();
            for e in &mut history.events {
                if let Op::Deliver { msg, scope, .. } = &mut e.op {
                    *scope = keys[msg];
                }
            }
            !ordering(&history, &per_key).is_empty()
        })
        .count()
}

#[test]
fn message_groups_keep_per_key_order_across_consumer_crashes_where_round_robin_does_not() {
    assert!(per_key_reorderings(&[], 20) > 0, "round robin splits a key");
    assert_eq!(per_key_reorderings(&["messageGroups=true"], 20), 0);
    held(
        &format!("{AMQ} --set messageGroups=true --keys 3 --consumers 2 --faults crash --seeds 60"),
        &["at-least-once", "ordering"],
    );
}

#[test]
fn bad_values_are_refused_naming_the_key_and_the_allowed_values() {
    for (set, key, allowed) in [
        (
            "journalDiskSyncStrategy=sometimes",
            "journalDiskSyncStrategy",
            "always, periodic, never",
        ),
        (
            "acknowledgeMode=AUTO",
            "acknowledgeMode",
            "AUTO_ACKNOWLEDGE",
        ),
        (
            "maximumRedeliveries=-2",
            "maximumRedeliveries",
            "-1 to 1000",
        ),
        ("consumer.api=poll", "consumer.api", "listener, receive"),
        (
            "producer.transacted=yes",
            "producer.transacted",
            "true, false",
        ),
        ("locker=jdbc", "locker", "shared-file, lease"),
        (
            "lockAcquireSleepInterval=0",
            "lockAcquireSleepInterval",
            "1 to 600000",
        ),
    ] {
        let out = mqcheck(&["sim", "--broker", "activemq", "--set", set]);
        assert_eq!(out.code, 2, "{set}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            out.stderr.contains(key) && out.stderr.contains(allowed),
            "{set}: {}",
            out.stderr
        );
    }
}

#[test]
fn master_slave_refuses_clients_that_know_one_broker() {
    // Over tcp://amq1 the clients never reach amq2 as master: its messages would read as lost.
    for args in [
        &["--set", "failover=true"][..],
        &["--set", "failover=true", "--set", "transport=tcp"][..],
    ] {
        let out = mqcheck(&[&["sim", "--broker", "activemq"][..], args].concat());
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            out.stderr.contains("transport") && out.stderr.contains("failover"),
            "{}",
            out.stderr
        );
    }
    held(
        &format!("{AMQ} --set failover=true --set transport=failover --faults crash --seeds 20"),
        &["at-least-once"],
    );
}

#[test]
fn activemq_runs_are_deterministic() {
    assert_deterministic(AMQ);
}

#[test]
fn check_keeps_one_lock_owner_and_finds_the_redelivery_after_a_consumer_crash() {
    let (code, json) = check(&format!("{AMQ} --faults crash"));
    assert_eq!(code, 1, "at-most-once is violated");
    assert_eq!(json["properties"]["OneLockOwner"]["held"], true, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["held"], true, "{json}");
    assert_eq!(json["properties"]["at-most-once"]["held"], false, "{json}");
}

/// Lines of `replay` timelines, over some seeds under partitions: (application-visible send
/// failures, sends the broker received twice, messages delivered twice unflagged — stored twice).
fn failures_replays_and_stored_twice(transport: &str) -> (usize, usize, usize) {
    let (mut failures, mut replays, mut twice) = (0, 0, 0);
    for seed in 0..30 {
        let seed = seed.to_string();
        let set = format!("transport={transport}");
        let r = mqcheck(&[
            "replay",
            "--full",
            "--broker",
            "activemq",
            "--set",
            &set,
            "--faults",
            "partition",
            "--messages",
            "40",
            "--check",
            "at-least-once",
            "--seed",
            &seed,
        ]);
        failures += r
            .stdout
            .lines()
            .filter(|l| l.contains("app: fail "))
            .count();
        let mut received: BTreeMap<&str, usize> = BTreeMap::new();
        for line in r.stdout.lines() {
            if let Some(rest) = line.split("<- p0: MessageSend ").nth(1) {
                *received
                    .entry(rest.split_whitespace().next().unwrap())
                    .or_default() += 1;
            }
        }
        replays += received.values().filter(|n| **n > 1).count();
        let mut first: BTreeMap<String, usize> = BTreeMap::new();
        for line in r.stdout.lines() {
            if let Some(rest) = line.split("app: deliver ").nth(1) {
                if !rest.contains("(redelivered)") {
                    let m = rest.split_whitespace().next().unwrap().to_string();
                    *first.entry(m).or_default() += 1;
                }
            }
        }
        twice += first.values().filter(|n| **n > 1).count();
    }
    (failures, replays, twice)
}

/// A plain `tcp://` producer's synchronous send fails when its connection is lost; the
/// `failover:` transport replays it instead, and the broker's producer audit keeps the replay
/// of a send it had already stored from being stored twice.
#[test]
fn the_failover_transport_replays_sends_without_storing_them_twice() {
    let (failures, replays, twice) = failures_replays_and_stored_twice("tcp");
    assert!(failures > 0, "tcp: sends fail with their connection");
    assert_eq!((replays, twice), (0, 0));
    let (failures, replays, twice) = failures_replays_and_stored_twice("failover");
    assert!(replays > 0, "failover: sends are replayed");
    assert_eq!((failures, twice), (0, 0), "and stored once");
    held(
        &format!("{AMQ} --set transport=failover --faults crash,pause,partition,loss --seeds 60"),
        &["at-least-once"],
    );
}

/// `checkForDuplicates`: under `failover:` the consumer's connection, and its audit, outlive a
/// partition, so the broker's redelivery of a message whose ack the partition lost is
/// poison-acked to the DLQ instead of reaching the application again. Without the check, with
/// a `tcp://` client's new connection (a new audit), or once the audit's window has moved past
/// the message, it is delivered twice.
#[test]
fn check_for_duplicates_dead_letters_a_redelivery_on_the_same_connection() {
    let faults = "--faults partition,loss --seeds 100";
    held(
        &format!("{AMQ} --set transport=failover {faults}"),
        &["at-least-once", "at-most-once"],
    );
    let v = violated(
        &format!("{AMQ} --set transport=failover --set checkForDuplicates=false {faults}"),
        "at-most-once",
    );
    assert!(explanation(&v).contains("the broker redelivered it"), "{v}");
    // The same seed with the check: the redelivery is the duplicate the audit suppresses.
    let with_check = v["replay"]
        .as_str()
        .unwrap()
        .replace("--set checkForDuplicates=false ", "");
    let r = replay(&with_check);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let msg = explanation(&v)
        .split("delivered ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the duplicated message");
    assert!(
        r.stdout.lines().any(|l| l.contains(&format!(
            "app: dead-letter {msg}: its connection had been dispatched it before"
        ))),
        "{}",
        r.stdout
    );
    violated(
        &format!("{AMQ} --set transport=tcp {faults}"),
        "at-most-once",
    );
    violated(
        &format!("{AMQ} --set transport=failover --set auditDepth=16 {faults}"),
        "at-most-once",
    );
}

const TRANSACTED: &str = "--broker activemq --set producer.transacted=true";

/// A commit in flight when the failover transport reconnects is answered with
/// `TransactionRolledBackException` (`ConnectionStateTracker.restoreTransactions`), though the
/// broker may have committed it before the connection went: the consumer reads a transaction
/// its producer was told was rolled back.
#[test]
fn failover_tells_a_committed_transaction_rolled_back_an_aborted_read() {
    let v = violated(
        &format!("{TRANSACTED} --set transport=failover --faults partition,loss --seeds 10"),
        "atomicity",
    );
    assert_eq!(v["kind"], "aborted-read");
    assert_eq!(v["seed"], 3, "{v}");
    let e = explanation(&v);
    assert!(
        e.contains("the client was told: transaction aborted: TransactionRolledBackException"),
        "{e}"
    );
    reproduce(&v);
}

/// Over `tcp://` the same lost commit fails with a `JMSException` the application cannot read
/// an outcome from: in doubt, and whatever the broker did is atomic. Without transactions
/// atomicity has nothing to judge.
#[test]
fn over_tcp_a_lost_commit_is_in_doubt_and_transactions_stay_atomic() {
    held(
        &format!("{TRANSACTED} --faults partition,loss --seeds 100"),
        &["atomicity", "at-least-once"],
    );
    held(
        &format!("{TRANSACTED} --faults tcp --producer-crashes --seeds 100"),
        &["atomicity", "at-least-once"],
    );
    let (code, json) =
        crate::common::sim(&format!("{AMQ} --faults none --seeds 3 --check atomicity"));
    assert_eq!(
        code, 3,
        "nothing to judge is inconclusive: {}",
        json["invariants"]
    );
}

const PAIR: &str = "--set failover=true --set transport=failover";
const LEASE: &str = "--set locker=lease --set lockKeepAlivePeriod=5000";

/// Shared-store master/slave keeps every acknowledged persistent message across the master's
/// crashes and power losses: the slave takes the lock, replays the shared journal and serves
/// the clients that failed over. Non-persistent messages die with the master that held them.
#[test]
fn failover_over_a_shared_store_keeps_persistent_messages() {
    let json = held(
        &format!("{AMQ} {PAIR} --faults crash,power --seeds 100"),
        &["at-least-once"],
    );
    assert!(
        json["coverage"]["leader_elections"].as_u64().unwrap() > 0,
        "the slave took over: {}",
        json["coverage"]
    );
    violated(
        &format!("{AMQ} {PAIR} --set deliveryMode=NON_PERSISTENT --faults crash --seeds 60"),
        "at-least-once",
    );
    // The shared-file lock is held while the master is paused or cut off: no second master.
    held(
        &format!("{AMQ} {PAIR} --faults pause,partition --seeds 100"),
        &["at-least-once"],
    );
}

/// A lease expires by the brokers' clocks while its holder is paused: the slave becomes a
/// second master and recovers the journal, the old master resumes and acknowledges sends into
/// the journal until its keep-alive fails — sends the new master never reads.
#[test]
fn a_paused_lease_master_is_a_second_master_and_loses_acknowledged_sends() {
    let v = violated(
        &format!("{AMQ} {PAIR} {LEASE} --faults pause --seed 200 --seeds 100"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    reproduce(&v);
}

#[test]
fn check_keeps_one_master_under_the_shared_file_lock() {
    for faults in ["crash", "pause"] {
        let (_, json) = check(&format!("{AMQ} {PAIR} --faults {faults}"));
        assert_eq!(json["properties"]["OneMaster"]["held"], true, "{json}");
        assert_eq!(json["properties"]["at-least-once"]["held"], true, "{json}");
        assert_eq!(json["depth_limit_reached"], false, "{json}");
    }
}

/// The queue cursor's audit (`enableAudit`): in seed 217 a partition cuts the master (and a
/// consumer) off from the shared store; the producer's failover replay of p0:19, whose first
/// copy had left the index, passes the producer audit and is caught by the cursor audit
/// ("cursor got duplicate send", poison-acked by `duplicateFromStore`): at-most-once holds.
/// With `enableAudit=false` the same seed ends with a message delivered twice.
#[test]
fn the_cursor_audit_keeps_a_replayed_send_from_being_dispatched_again() {
    let run = format!("{AMQ} {PAIR} {LEASE} --faults partition --consumers 2 --seed 217 --seeds 1");
    held(&run, &["at-least-once", "at-most-once"]);
    let v = violated(&format!("{run} --set enableAudit=false"), "at-most-once");
    assert_eq!(v["kind"], "duplicate");
    reproduce(&v);
}

/// Runs of `mqcheck sim ARGS` that delivered some message twice.
fn duplicating_runs(args: &str) -> u64 {
    let (_, json) = sim(&format!("{args} --check at-most-once"));
    json["invariants"]["at-most-once"]["violations"]
        .as_u64()
        .unwrap_or_else(|| panic!("at-most-once judged: {json}"))
}

#[test]
fn optimize_acknowledge_widens_the_window_a_consumer_crash_redelivers() {
    // `optimizeAcknowledge` acknowledges once 65 % of the prefetch is consumed
    // (`ActiveMQMessageConsumer.afterMessageIsConsumed`), so a crashed consumer leaves more
    // handled but unacknowledged messages to be redelivered than one acknowledging each.
    let base = format!("{AMQ} --faults crash --seeds 60");
    let each = duplicating_runs(&base);
    let optimized = duplicating_runs(&format!("{base} --set optimizeAcknowledge=true"));
    assert!(
        each > 0,
        "AUTO_ACKNOWLEDGE duplicates after a consumer crash"
    );
    assert!(optimized > each, "optimized {optimized} <= each {each}");
}

#[test]
fn dups_ok_acknowledge_on_a_queue_acknowledges_as_auto_does() {
    // `isAutoAcknowledgeBatch()` is DUPS_OK on a topic only: on a queue each message is
    // acknowledged after it is consumed, as with AUTO_ACKNOWLEDGE, so the runs are the same.
    let base = format!("{AMQ} --faults crash --seeds 60");
    let (_, auto) = sim(&format!("{base} --check at-least-once,at-most-once"));
    let (_, dups_ok) = sim(&format!(
        "{base} --set acknowledgeMode=DUPS_OK_ACKNOWLEDGE --check at-least-once,at-most-once"
    ));
    assert!(auto["invariants"]["at-most-once"]["violations"].as_u64() > Some(0));
    for invariant in ["at-least-once", "at-most-once"] {
        let (a, d) = (
            &auto["invariants"][invariant],
            &dups_ok["invariants"][invariant],
        );
        assert_eq!(a["violations"], d["violations"], "{invariant}");
        assert_eq!(
            a["first_violation"]["seed"], d["first_violation"]["seed"],
            "{invariant}"
        );
    }
}
