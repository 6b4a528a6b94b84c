//! ZeroMQ fault scenarios: what PUB/SUB, PUSH/PULL and REQ/REP lose, duplicate and keep in order,
//! through the same code path as the CLI (`mqcheck sim … --json`); multipart atomicity through
//! the simulator and the atomicity checker directly.

use crate::common::{assert_deterministic, held, mqcheck, reproduce, violated};
use mqcheck_brokers::zeromq::ZeroMq;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::{at_least_once, atomicity, Op};
use mqcheck_sim::{run, schedule_for, Fault, FaultSet};

#[test]
fn pub_drops_at_the_high_water_mark_for_a_paused_subscriber() {
    let v = violated(
        "--broker zeromq --set pattern=pub-sub --set ZMQ_SNDHWM=5 --faults pause --messages 100 --seeds 200",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("ZMQ_SNDHWM reached"), "{why}");
    let r = reproduce(&v);
    let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
    assert!(minimal.contains("pause sub0"), "{minimal}");
    // With the default mark (1000) the same pauses lose nothing: it was the mark.
    held(
        "--broker zeromq --set pattern=pub-sub --faults pause --messages 100 --seeds 200",
        &["at-least-once"],
    );
}

#[test]
fn a_slow_consumer_makes_pub_drop_and_push_block() {
    // No fault: a consumer that needs longer per message than the producer's pace fills both
    // pipes (ZMQ_RCVHWM on its side, ZMQ_SNDHWM on the sender's).
    let marks = "--set ZMQ_SNDHWM=5 --set ZMQ_RCVHWM=5 --faults none --seeds 100";
    let v = violated(
        &format!("--broker zeromq --set pattern=pub-sub {marks}"),
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("ZMQ_SNDHWM reached"), "{why}");
    held(
        &format!("--broker zeromq --set pattern=push-pull {marks}"),
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn pub_drops_only_for_the_subscriber_in_the_mute_state() {
    let sets = vec!["pattern=pub-sub".to_string(), "ZMQ_SNDHWM=5".to_string()];
    let config = Config::parse("zeromq", &ZeroMq::keys(), &sets).unwrap();
    let system = ZeroMq::build(
        &config,
        Workload {
            messages: 100,
            producers: 1,
            consumers: 2,
            ..Workload::default()
        },
    );
    let pause = FaultSet([Fault::Pause].into_iter().collect());
    let mut one_sided = 0;
    for seed in 0..40 {
        let r = run(&system, seed, &schedule_for(&system, seed, &pause), false);
        one_sided += at_least_once(&r.history)
            .iter()
            .filter(|v| v.explanation.contains("(other groups did)"))
            .count();
    }
    assert!(one_sided > 0, "a paused subscriber's losses are its own");
}

#[test]
fn a_publisher_drops_what_it_publishes_before_the_subscription_arrives() {
    let v = violated(
        "--broker zeromq --set pattern=pub-sub --set syncpub=false --faults none --seeds 50",
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("PUB drops what nobody subscribed to"), "{why}");
    // The zguide's node coordination: publish only once every subscriber subscribed.
    held(
        "--broker zeromq --set pattern=pub-sub --faults none --seeds 50",
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn a_process_crash_loses_what_was_queued_for_or_inside_it() {
    for pattern in ["push-pull", "pub-sub"] {
        let v = violated(
            &format!("--broker zeromq --set pattern={pattern} --faults crash --seeds 100"),
            "at-least-once",
        );
        let r = reproduce(&v);
        let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
        assert!(minimal.contains("crash"), "{pattern}: {minimal}");
    }
}

#[test]
fn push_pull_without_faults_keeps_every_promise() {
    held(
        "--broker zeromq --set pattern=push-pull --faults none --seeds 50",
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn order_per_connection_holds_under_every_fault_that_keeps_the_connection() {
    let peers = "--producers 2 --consumers 2 --seeds 150";
    for pattern in ["push-pull", "pub-sub"] {
        held(
            &format!("--broker zeromq --set pattern={pattern} --faults crash,power,partition,loss,pause {peers}"),
            &["ordering"],
        );
        // Reordering (and a duplicate overtaking the original) lifts TCP's FIFO, and ZeroMQ has
        // nothing of its own to restore it.
        let v = violated(
            &format!("--broker zeromq --set pattern={pattern} --faults reorder {peers}"),
            "ordering",
        );
        assert_eq!(v["kind"], "reordered");
    }
}

#[test]
fn plain_req_loses_its_request_when_the_server_crashes_and_lazy_pirate_does_not() {
    let v = violated(
        "--broker zeromq --set pattern=req-rep --set client=plain --faults crash --seeds 100",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    let r = reproduce(&v);
    let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
    assert!(minimal.contains("crash"), "{minimal}");
    // The Lazy Pirate client resends until a reply arrives: nothing acknowledged is lost ...
    held(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults crash,partition,loss,pause --seeds 200",
        &["at-least-once"],
    );
    // ... but a lost reply makes the server handle a request twice, unless it detects repeats.
    let d = violated(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults loss --seeds 100",
        "at-most-once",
    );
    assert_eq!(d["kind"], "duplicate");
    held(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --set server.dedup=true --faults loss,partition,pause --seeds 200",
        &["at-least-once", "at-most-once"],
    );
    // The server remembers what it handled in memory: a crash forgets it (a client that keeps
    // retrying long enough to outlast the restart shows it often).
    violated(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --set lazy-pirate.retries=10 --set server.dedup=true --faults crash --seeds 200",
        "at-most-once",
    );
}

#[test]
fn the_same_seed_replays_byte_for_byte() {
    assert_deterministic(
        "--broker zeromq --set pattern=pub-sub --set ZMQ_SNDHWM=5 --producers 2 --consumers 2",
    );
}

#[test]
fn multipart_messages_arrive_whole_or_not_at_all_under_every_fault() {
    for pattern in ["push-pull", "pub-sub", "req-rep"] {
        let sets = vec![format!("pattern={pattern}"), "frames=3".to_string()];
        let config = Config::parse("zeromq", &ZeroMq::keys(), &sets).unwrap();
        let system = ZeroMq::build(
            &config,
            Workload {
                messages: 30,
                producers: 2,
                consumers: 2,
                ..Workload::default()
            },
        );
        for fault in Fault::ALL {
            let faults = FaultSet([fault].into_iter().collect());
            let (mut multiparts, mut deliveries, mut lossy) = (0, 0, 0);
            for seed in 0..20 {
                let r = run(&system, seed, &schedule_for(&system, seed, &faults), false);
                let torn = atomicity(&r.history);
                assert!(
                    torn.is_empty(),
                    "{pattern}, {}, seed {seed}: {torn:#?}",
                    fault.name()
                );
                multiparts += r
                    .history
                    .events
                    .iter()
                    .filter(|e| matches!(e.op, Op::Multipart { .. }))
                    .count();
                deliveries += r.history.deliveries();
                lossy += usize::from(!at_least_once(&r.history).is_empty());
            }
            assert!(
                multiparts > 0 && deliveries > 0,
                "{pattern}: nothing happened"
            );
            // A crash loses what the dead peer's pipes held; loss is only delay under TCP.
            if fault == Fault::Crash && pattern != "req-rep" {
                assert!(
                    lossy > 0,
                    "{pattern}, {}: the faults lost nothing",
                    fault.name()
                );
            }
        }
    }
}

#[test]
fn bad_input_names_the_key() {
    for (args, key) in [
        (
            "--set pattern=pub-sub --set lazy-pirate.retries=3",
            "lazy-pirate.retries",
        ),
        (
            "--set pattern=req-rep --set lazy-pirate.timeout=100",
            "lazy-pirate.timeout",
        ),
        (
            "--set pattern=push-pull --set ZMQ_SUBSCRIBE=A",
            "ZMQ_SUBSCRIBE",
        ),
        ("--set pattern=req-rep --set syncpub=false", "syncpub"),
        ("--set ZMQ_SNDHWM=-1", "ZMQ_SNDHWM"),
        ("--set pattern=router-dealer", "pattern"),
    ] {
        let mut words = vec!["sim", "--broker", "zeromq"];
        words.extend(args.split_whitespace());
        let out = mqcheck(&words);
        assert_eq!(out.code, 2, "{args}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(out.stderr.contains(key), "{args}: {}", out.stderr);
        assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn a_crashed_lazy_pirate_client_resends_its_outbox_and_loses_nothing() {
    held(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --producer-crashes --faults crash --seeds 200",
        &["at-least-once"],
    );
}
