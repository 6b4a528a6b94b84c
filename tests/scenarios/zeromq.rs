//! ZeroMQ fault scenarios: what PUB/SUB, PUSH/PULL and REQ/REP lose, duplicate and keep in order,
//! through the same code path as the CLI (`mqcheck sim … --json`); multipart atomicity through
//! the simulator and the atomicity checker directly.

use crate::common::{assert_deterministic, check, held, mqcheck, reproduce, sim, violated};
use mqcheck_brokers::zeromq::ZeroMq;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::{at_least_once, atomicity, Op};
use mqcheck_sim::{
    run, schedule_for, Fault, FaultOp, FaultSet, Run, Schedule, ScheduledFault, Split, Target,
};

#[test]
fn pub_drops_at_the_high_water_mark_for_a_paused_subscriber() {
    // 64 KiB messages: the kernels' buffers hold two, the pipe five.
    let v = violated(
        "--broker zeromq --set pattern=pub-sub --set syncpub=true --set ZMQ_SNDHWM=5 --set message.bytes=65536 --faults pause --messages 100 --seeds 200",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("ZMQ_SNDHWM reached"), "{why}");
    let r = reproduce(&v);
    let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
    assert!(minimal.contains("pause sub0"), "{minimal}");
    // Small messages: the kernels' buffers absorb the same pauses, and so does the default
    // mark (1000) with large ones. It was the mark, once the buffers were full.
    for sets in ["--set ZMQ_SNDHWM=5", "--set message.bytes=65536"] {
        held(
            &format!("--broker zeromq --set pattern=pub-sub --set syncpub=true {sets} --faults pause --messages 100 --seeds 200"),
            &["at-least-once"],
        );
    }
}

/// A subscriber that falls behind without any fault: the publisher sends 100 messages in a
/// second, the subscriber's application takes 100 ms over each.
const BEHIND: &str = "--set ZMQ_SNDHWM=5 --set ZMQ_RCVHWM=5 --faults none --rate 100 --handler-ms 100 --messages 100 --seeds 5";

#[test]
fn small_messages_wait_in_the_kernels_buffers_where_large_ones_reach_the_high_water_mark() {
    // libzmq 4.3.5 on loopback held 161–452 small messages in the kernels' buffers before
    // ZMQ_SNDHWM=5 bit: a subscriber that falls behind gets all 100.
    let json = held(
        &format!("--broker zeromq --set pattern=pub-sub --set syncpub=true {BEHIND}"),
        &["at-least-once", "at-most-once", "ordering"],
    );
    assert_eq!(
        json["stats"]["messages_delivered"], 500,
        "{}",
        json["stats"]
    );
    // 64 KiB and 1 MiB messages: the buffers hold two and one, and the PUB drops the rest.
    for bytes in [65_536, 1_048_576] {
        let v = violated(
            &format!("--broker zeromq --set pattern=pub-sub --set syncpub=true --set message.bytes={bytes} {BEHIND}"),
            "at-least-once",
        );
        let why = v["explanation"].as_str().unwrap();
        assert!(why.contains("ZMQ_SNDHWM reached"), "{bytes}: {why}");
        // PUSH blocks at the same mark instead.
        held(
            &format!(
                "--broker zeromq --set pattern=push-pull --set message.bytes={bytes} {BEHIND}"
            ),
            &["at-least-once", "at-most-once", "ordering"],
        );
    }
}

#[test]
fn conflate_keeps_only_the_last_message_and_loses_the_rest_by_design() {
    // A consumer that falls behind: with ZMQ_CONFLATE=1 each pipe holds one message, a newer one
    // replaces it (ypipe_conflate_t), and the high-water marks no longer apply.
    for pattern in ["pub-sub", "push-pull"] {
        let v = violated(
            &format!("--broker zeromq --set pattern={pattern} --set ZMQ_CONFLATE=1 {BEHIND}"),
            "at-least-once",
        );
        assert_eq!(v["kind"], "lost", "{pattern}");
        let why = v["explanation"].as_str().unwrap();
        assert!(
            why.contains("ZMQ_CONFLATE: a newer message replaced it"),
            "{pattern}: {why}"
        );
        // The same consumer without ZMQ_CONFLATE gets everything (the kernels' buffers and the
        // marks hold it, or PUSH blocks).
        let start = if pattern == "pub-sub" {
            "--set syncpub=true"
        } else {
            ""
        };
        held(
            &format!("--broker zeromq --set pattern={pattern} {start} {BEHIND}"),
            &["at-least-once"],
        );
    }
    // A consumer that keeps up reads every message before the next arrives: nothing replaced.
    held(
        "--broker zeromq --set pattern=push-pull --set ZMQ_CONFLATE=1 --faults none --rate 10 --handler-ms 1 --messages 20 --seeds 5",
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn pub_drops_only_for_the_subscriber_in_the_mute_state() {
    let sets: Vec<String> = [
        "pattern=pub-sub",
        "syncpub=true",
        "ZMQ_SNDHWM=5",
        "message.bytes=65536",
    ]
    .map(String::from)
    .to_vec();
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
fn out_of_the_box_a_publisher_drops_what_it_publishes_before_the_subscription_arrives() {
    let v = violated(
        "--broker zeromq --set pattern=pub-sub --faults none --seeds 50",
        "at-least-once",
    );
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("PUB drops what nobody subscribed to"), "{why}");
    // A subscriber that connects late loses what was published before it came.
    violated(
        "--broker zeromq --set pattern=pub-sub --faults none --consumer-delay-ms 500 --seeds 5",
        "at-least-once",
    );
    // The zguide's node coordination: publish only once every subscriber subscribed.
    held(
        "--broker zeromq --set pattern=pub-sub --set syncpub=true --faults none --seeds 50",
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn a_process_crash_loses_what_was_queued_for_or_inside_it() {
    for pattern in ["push-pull", "pub-sub --set syncpub=true"] {
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
    // The server applies a request when it receives it and replies after its work: a crash in
    // between makes the client's retry a second application.
    let w = violated(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults crash --seeds 100",
        "at-most-once",
    );
    assert_eq!(w["kind"], "duplicate");
    let r = reproduce(&w);
    let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
    assert!(
        minimal.contains("crash") && minimal.contains("rep0 down"),
        "{minimal}"
    );
    // The server remembers what it handled in memory: a crash forgets it (a client that keeps
    // retrying long enough to outlast the restart shows it often).
    violated(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --set lazy-pirate.retries=10 --set server.dedup=true --faults crash --seeds 200",
        "at-most-once",
    );
}

/// The Lazy Pirate client under server crashes, 200 seeds, with `sets`.
const LAZY_PIRATE_CRASHES: &str =
    "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults crash --seeds 200";

#[test]
fn a_relaxed_req_resends_on_its_socket_and_duplicates_what_its_pipes_held() {
    // ZMQ_REQ_RELAXED=1: the client resends on the same socket, and every attempt queued in the
    // pipe to a crashed server goes out when it is back (measured: 191 of 200 seeds against 15
    // when each timeout closes the socket). Nothing acknowledged is lost.
    let count = |sets: &str| {
        let (_, json) = sim(&format!(
            "{LAZY_PIRATE_CRASHES} {sets} --check at-least-once,at-most-once"
        ));
        assert_eq!(json["invariants"]["at-least-once"]["held"], true, "{sets}");
        json["invariants"]["at-most-once"]["violations"]
            .as_u64()
            .unwrap()
    };
    let (strict, relaxed) = (count(""), count("--set ZMQ_REQ_RELAXED=1"));
    assert!(strict > 0, "the duplicate window of a server crash");
    assert!(relaxed > 4 * strict, "strict {strict}, relaxed {relaxed}");
}

#[test]
fn without_lpclients_check_a_late_reply_acknowledges_the_next_request_and_it_can_be_lost() {
    // Relaxed, the client goes on with its next request on the same socket after abandoning one;
    // the abandoned request's late reply comes through the next request's pipe and, taken as
    // its reply, acknowledges a request the crashed server never handled (measured: 4 of 200
    // seeds).
    let relaxed = format!("{LAZY_PIRATE_CRASHES} --set ZMQ_REQ_RELAXED=1");
    let v = violated(
        &format!("{relaxed} --set lazy-pirate.check-reply=false"),
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    let r = reproduce(&v);
    let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
    assert!(minimal.contains("crash"), "{minimal}");
    // lpclient's sequence check: the late reply is malformed, and the client waits on.
    held(&relaxed, &["at-least-once"]);
    // ZMQ_REQ_CORRELATE=1: the socket drops the late reply by its request id. Nothing is lost,
    // but lpclient's poll woke for the dropped reply and its zstr_recv blocks, with no timeout,
    // for the request's own: when the server crashed with that request, the client waits for
    // ever (measured: 3 of 200 seeds cut short, inconclusive).
    let (code, json) = sim(&format!(
        "{relaxed} --set lazy-pirate.check-reply=false --set ZMQ_REQ_CORRELATE=1 --check at-least-once"
    ));
    assert_eq!(code, 3, "{}", json["verdict"]);
    assert_eq!(json["invariants"]["at-least-once"]["violations"], 0);
    assert!(
        json["coverage"]["incomplete_runs"].as_u64().unwrap() > 0,
        "{}",
        json["coverage"]
    );
    // Strict, each timeout closes the socket, and a late reply has nowhere to arrive: the check
    // changes nothing.
    held(
        &format!("{LAZY_PIRATE_CRASHES} --set lazy-pirate.check-reply=false"),
        &["at-least-once"],
    );
}

#[test]
fn the_same_seed_replays_byte_for_byte() {
    assert_deterministic(
        "--broker zeromq --set pattern=pub-sub --set ZMQ_SNDHWM=5 --producers 2 --consumers 2",
    );
    // Reconnection draws its jitter from the seed.
    assert_deterministic(
        "--broker zeromq --set pattern=req-rep --set client=lazy-pirate --producers 2 --consumers 2",
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
        ("--set pattern=pub-sub --set bind=pull", "bind"),
        ("--set pattern=req-rep --set bind=push", "bind"),
        ("--set bind=sub", "bind"),
        ("--set message.bytes=-1", "message.bytes"),
        ("--set message.bytes=2000000000", "message.bytes"),
        ("--set pattern=req-rep --set ZMQ_CONFLATE=1", "ZMQ_CONFLATE"),
        ("--set ZMQ_CONFLATE=1 --set frames=2", "ZMQ_CONFLATE"),
        ("--set ZMQ_CONFLATE=yes", "ZMQ_CONFLATE"),
        ("--set ZMQ_HEARTBEAT_IVL=-1", "ZMQ_HEARTBEAT_IVL"),
        ("--set ZMQ_HEARTBEAT_IVL=1.5", "ZMQ_HEARTBEAT_IVL"),
        ("--set ZMQ_HEARTBEAT_TIMEOUT=-1", "ZMQ_HEARTBEAT_TIMEOUT"),
        ("--set ZMQ_HEARTBEAT_TTL=6553600", "ZMQ_HEARTBEAT_TTL"),
        (
            "--set pattern=req-rep --set ZMQ_HEARTBEAT_IVL=1000",
            "ZMQ_HEARTBEAT_IVL",
        ),
        (
            "--set pattern=push-pull --set ZMQ_REQ_RELAXED=1",
            "ZMQ_REQ_RELAXED",
        ),
        (
            "--set pattern=pub-sub --set ZMQ_REQ_CORRELATE=0",
            "ZMQ_REQ_CORRELATE",
        ),
        (
            "--set pattern=req-rep --set client=lazy-pirate --set ZMQ_REQ_RELAXED=-1",
            "ZMQ_REQ_RELAXED",
        ),
        (
            "--set pattern=req-rep --set ZMQ_REQ_RELAXED=1",
            "ZMQ_REQ_RELAXED",
        ),
        (
            "--set pattern=req-rep --set lazy-pirate.check-reply=false",
            "lazy-pirate.check-reply",
        ),
        (
            "--set pattern=req-rep --set client=lazy-pirate --set lazy-pirate.check-reply=1",
            "lazy-pirate.check-reply",
        ),
        (
            "--set pattern=push-pull --set ZMQ_ROUTER_MANDATORY=1",
            "ZMQ_ROUTER_MANDATORY",
        ),
        (
            "--set pattern=dealer-router --set ZMQ_ROUTER_MANDATORY=-1",
            "ZMQ_ROUTER_MANDATORY",
        ),
        (
            "--set pattern=dealer-router --set ZMQ_CONFLATE=1 --set frames=2",
            "ZMQ_CONFLATE",
        ),
        (
            "--set pattern=push-pull --set ZMQ_ROUTING_ID=client",
            "ZMQ_ROUTING_ID",
        ),
        (
            "--set pattern=dealer-router --set ZMQ_ROUTING_ID=dealer0",
            "ZMQ_ROUTING_ID",
        ),
        (
            "--set pattern=req-rep --set ZMQ_ROUTER_HANDOVER=1",
            "ZMQ_ROUTER_HANDOVER",
        ),
        (
            "--set pattern=dealer-router --set ZMQ_ROUTER_HANDOVER=-1",
            "ZMQ_ROUTER_HANDOVER",
        ),
        (
            "--set pattern=dealer-router --set ZMQ_HEARTBEAT_IVL=1000",
            "ZMQ_HEARTBEAT_IVL",
        ),
        (
            "--set pattern=dealer-router --set client=lazy-pirate",
            "client",
        ),
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

#[test]
fn check_finds_the_lazy_pirate_duplicate_window_of_a_server_crash() {
    // The exhaustive search: the server applies the request, crashes before its reply, and the
    // client's retry is applied again; nothing acknowledged is lost.
    let (code, json) =
        check("--broker zeromq --set pattern=req-rep --set client=lazy-pirate --faults crash");
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["held"], true, "{json}");
    let amo = &json["properties"]["at-most-once"];
    assert_eq!(amo["held"], false, "{amo}");
    let steps = amo["counterexample"].as_array().expect("a counterexample");
    let crash = steps
        .iter()
        .position(|s| s["kind"] == "crash")
        .expect("a crash");
    let requests = |range: &[serde_json::Value]| {
        range
            .iter()
            .filter(|s| s["text"].as_str().unwrap_or("").contains("Request [p0:0]"))
            .count()
    };
    assert_eq!(requests(&steps[..crash]), 1, "{steps:#?}");
    assert_eq!(
        requests(&steps[crash..]),
        1,
        "resent after the crash: {steps:#?}"
    );
}

/// A ZeroMQ system with `sets`, one producer and one consumer sending `messages` at ten a
/// second.
fn zeromq(sets: &[&str], messages: u32, producer_crashes: bool) -> ZeroMq {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse("zeromq", &ZeroMq::keys(), &sets).unwrap();
    ZeroMq::build(
        &config,
        Workload {
            messages,
            producers: 1,
            consumers: 1,
            rate: Some(10),
            producer_crashes,
            ..Workload::default()
        },
    )
}

/// One fault, `op`, from `at_ms` for `for_ms`.
fn only(at_ms: u64, for_ms: u64, op: FaultOp) -> Schedule {
    Schedule {
        window_ms: at_ms + for_ms,
        faults: vec![ScheduledFault { at_ms, for_ms, op }],
    }
}

/// Was the last of `messages` delivered: did the consumer get messages again after the fault?
fn last_delivered(r: &Run, messages: u32) -> bool {
    r.history.events.iter().any(|e| {
        matches!(&e.op, Op::Deliver { msg, .. } if msg.producer == 0 && msg.seq == messages - 1)
    })
}

#[test]
fn heartbeats_end_a_partitioned_connection_and_its_pipe_goes_with_what_it_held() {
    // 64 KiB messages: the kernels' buffers hold two, so what is sent during the partition
    // waits in the producer's pipe to the consumer (node 1).
    let cut = only(
        1_000,
        6_000,
        FaultOp::Partition {
            split: Split::Halves(vec![1]),
        },
    );
    for pattern in ["pattern=push-pull", "pattern=pub-sub"] {
        let base = [pattern, "syncpub=true", "message.bytes=65536"];
        let base = if pattern == "pattern=pub-sub" {
            &base[..]
        } else {
            &[base[0], base[2]][..]
        };
        // Without heartbeats nobody notices: TCP retransmits after the heal and all arrives.
        let off = run(&zeromq(base, 80, false), 1, &cut, false);
        assert!(
            at_least_once(&off.history).is_empty(),
            "{pattern}: {:#?}",
            at_least_once(&off.history)
        );
        assert_eq!(off.history.deliveries(), 80, "{pattern}");
        // With them, both ends time the connection out within IVL + TIMEOUT (2 s): the
        // producer's pipe to the consumer is terminated with what it held, and the consumer
        // reconnects after the heal and gets what is sent then.
        let mut sets = base.to_vec();
        sets.push("ZMQ_HEARTBEAT_IVL=1000");
        let on = run(&zeromq(&sets, 80, false), 1, &cut, false);
        let lost = at_least_once(&on.history);
        assert!(!lost.is_empty(), "{pattern}: nothing lost");
        assert!(
            lost.iter().any(|v| v.explanation.contains(
                "ZMQ_HEARTBEAT_TIMEOUT: nothing heard from pull0 for 1000 ms after a PING: the pipe to it was terminated"
            ) || v.explanation.contains(
                "ZMQ_HEARTBEAT_TIMEOUT: nothing heard from sub0 for 1000 ms after a PING: the pipe to it was terminated"
            )),
            "{pattern}: {lost:#?}"
        );
        assert!(
            last_delivered(&on, 80),
            "{pattern}: the consumer did not reconnect"
        );
        // A partition shorter than the timeout is only a delay.
        let short = only(
            1_000,
            300,
            FaultOp::Partition {
                split: Split::Halves(vec![1]),
            },
        );
        let brief = run(&zeromq(&sets, 80, false), 1, &short, false);
        assert!(
            at_least_once(&brief.history).is_empty(),
            "{pattern}: {:#?}",
            at_least_once(&brief.history)
        );
    }
}

#[test]
fn heartbeats_notice_a_producer_that_lost_power_and_the_consumer_reconnects() {
    // The PUSH machine loses power: nothing tells the PULL, whose end of the connection stays
    // open. The restarted PUSH binds anew and waits for a peer.
    let power = only(
        2_000,
        2_000,
        FaultOp::Power {
            target: Target::Node(0),
        },
    );
    let off = run(&zeromq(&["pattern=push-pull"], 60, true), 1, &power, false);
    assert!(
        !last_delivered(&off, 60),
        "the PULL reconnected without heartbeats"
    );
    // With heartbeats the PULL times the dead connection out, dials again, and once the PUSH
    // is back gets everything it sends.
    let on = run(
        &zeromq(&["pattern=push-pull", "ZMQ_HEARTBEAT_IVL=500"], 60, true),
        1,
        &power,
        false,
    );
    assert!(on.complete, "cut short");
    assert!(last_delivered(&on, 60), "the PULL did not reconnect");
}

#[test]
fn a_consumer_behind_a_full_pipe_reads_no_heartbeats_and_times_its_connection_out() {
    // ZMQ_RCVHWM=1 and an application that takes 3 s per message: the engine stops decoding
    // behind the message it cannot push, PINGs and PONGs included, and the consumer's own
    // heartbeat times out (libzmq issues 3937, 4767); what was on the connection and in the
    // PUSH's pipe to it is lost.
    let slow = "--set pattern=push-pull --set ZMQ_RCVHWM=1 --set message.bytes=65536 --faults none --rate 10 --handler-ms 3000 --messages 10 --seeds 3";
    violated(
        &format!("--broker zeromq --set ZMQ_HEARTBEAT_IVL=1000 {slow}"),
        "at-least-once",
    );
    let sets = [
        "pattern=push-pull",
        "ZMQ_RCVHWM=1",
        "message.bytes=65536",
        "ZMQ_HEARTBEAT_IVL=1000",
    ];
    let mut system = zeromq(&sets, 10, false);
    system.settings.workload.handler_ms = Some(3000);
    let r = run(&system, 0, &Schedule::default(), false);
    let lost = at_least_once(&r.history);
    assert!(
        lost.iter().any(|v| v
            .explanation
            .contains("pull0 closed the connection, its heartbeat having timed out")),
        "{lost:#?}"
    );
    // Without heartbeats the PUSH blocks at the mark and nothing is lost; with a timeout longer
    // than the handling time, neither.
    held(&format!("--broker zeromq {slow}"), &["at-least-once"]);
    held(
        &format!(
            "--broker zeromq --set ZMQ_HEARTBEAT_IVL=1000 --set ZMQ_HEARTBEAT_TIMEOUT=5000 {slow}"
        ),
        &["at-least-once"],
    );
}

#[test]
fn heartbeats_off_by_default_and_on_without_faults_change_nothing() {
    for pattern in ["push-pull", "pub-sub --set syncpub=true"] {
        for hb in [
            "",
            "--set ZMQ_HEARTBEAT_IVL=1000",
            "--set ZMQ_HEARTBEAT_IVL=200 --set ZMQ_HEARTBEAT_TTL=1000",
        ] {
            held(
                &format!("--broker zeromq --set pattern={pattern} {hb} --faults none --producers 2 --consumers 2 --seeds 30"),
                &["at-least-once", "at-most-once", "ordering"],
            );
        }
    }
    // libzmq's largest TTL, 2^16-1 deciseconds.
    held(
        "--broker zeromq --set ZMQ_HEARTBEAT_IVL=1000 --set ZMQ_HEARTBEAT_TTL=6553599 --faults none --seeds 3",
        &["at-least-once"],
    );
}

/// One PUSH connecting to two PULLs (`bind=pull`) with `sets`, sending `messages` at ten a
/// second.
fn connecting_push(sets: &[&str], messages: u32) -> ZeroMq {
    let sets: Vec<String> = ["pattern=push-pull", "bind=pull"]
        .iter()
        .chain(sets)
        .map(|s| s.to_string())
        .collect();
    let config = Config::parse("zeromq", &ZeroMq::keys(), &sets).unwrap();
    ZeroMq::build(
        &config,
        Workload {
            messages,
            producers: 1,
            consumers: 2,
            rate: Some(10),
            ..Workload::default()
        },
    )
}

/// The messages `zmq_send` returned for between `from_ms` and `to_ms`.
fn acked_between(r: &Run, from_ms: u64, to_ms: u64) -> Vec<mqcheck_invariants::MsgId> {
    r.history
        .events
        .iter()
        .filter(|e| e.time_ms > from_ms && e.time_ms < to_ms)
        .filter_map(|e| match e.op {
            Op::Ack { msg } => Some(msg),
            _ => None,
        })
        .collect()
}

/// Which consumer's application got `m`, and when.
fn delivered_to(r: &Run, m: mqcheck_invariants::MsgId) -> Vec<(u32, u64)> {
    r.history
        .events
        .iter()
        .filter_map(|e| match e.op {
            Op::Deliver { msg, consumer, .. } if msg == m => Some((consumer, e.time_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_connecting_push_keeps_its_pipe_to_a_crashed_pull_and_sends_it_after_the_restart_unless_zmq_immediate(
) {
    // pull0 (node 1) is down from 1 s to 3 s.
    let crash = only(
        1_000,
        2_000,
        FaultOp::Crash {
            target: Target::Node(1),
        },
    );
    // ZMQ_IMMEDIATE=0: round robin goes on putting every other message in pull0's pipe, and
    // zmq_send returns; the restarted pull0 gets them after the PUSH reconnected.
    let keep = run(&connecting_push(&[], 60), 1, &crash, false);
    assert!(keep.complete);
    let sent_while_down = acked_between(&keep, 1_050, 3_000);
    assert!(sent_while_down.len() >= 15, "{sent_while_down:?}");
    let mut kept = 0;
    for m in &sent_while_down {
        match delivered_to(&keep, *m)[..] {
            [(0, at)] => {
                assert!(at > 3_000, "{m} reached pull0 while it was down");
                kept += 1;
            }
            [(1, _)] => {}
            ref other => panic!("{m}: {other:?}"),
        }
    }
    assert!(
        kept * 3 >= sent_while_down.len(),
        "about half waited for pull0: {kept} of {}",
        sent_while_down.len()
    );
    // ZMQ_IMMEDIATE=1: pull0's pipe went with its connection, and round robin knows only
    // pull1 until pull0 is back.
    let immediate = run(&connecting_push(&["ZMQ_IMMEDIATE=1"], 60), 1, &crash, false);
    assert!(immediate.complete);
    let sent_while_down = acked_between(&immediate, 1_050, 3_000);
    assert!(sent_while_down.len() >= 15, "{sent_while_down:?}");
    for m in &sent_while_down {
        assert!(
            matches!(delivered_to(&immediate, *m)[..], [(1, _)]),
            "{m}: {:?}",
            delivered_to(&immediate, *m)
        );
    }
}

#[test]
fn a_connecting_push_loses_what_a_crashed_pull_held_and_never_delivers_twice() {
    // What the PUSH had written to the connection (the kernels' buffers) and what the PULL's
    // pipe held die with the PULL: libzmq resends nothing.
    for immediate in ["0", "1"] {
        let pattern =
            format!("--set pattern=push-pull --set bind=pull --set ZMQ_IMMEDIATE={immediate}");
        let v = violated(
            &format!("--broker zeromq {pattern} --faults crash --seeds 100"),
            "at-least-once",
        );
        assert_eq!(v["kind"], "lost");
        let r = reproduce(&v);
        let minimal = r.stdout.split("minimal fault schedule").nth(1).unwrap();
        assert!(minimal.contains("crash pull0"), "{immediate}: {minimal}");
        // ZeroMQ never sends a message twice, and one connection's messages arrive in order.
        held(
            &format!("--broker zeromq {pattern} --faults crash,power,partition,loss,pause --producers 2 --consumers 2 --seeds 150"),
            &["at-most-once", "ordering"],
        );
    }
    // Without faults everything arrives.
    held(
        "--broker zeromq --set pattern=push-pull --set bind=pull --faults none --consumers 2 --seeds 50",
        &["at-least-once", "at-most-once", "ordering"],
    );
}

#[test]
fn zmq_immediate_drops_a_slow_pulls_queue_when_its_connection_goes_and_the_kept_pipe_delivers_it() {
    // 64 KiB messages at 20 a second to a PULL that takes 100 ms over each, with room for 5 in
    // its pipe and 2 in the kernels' buffers: the backlog waits in the PUSH's pipe when the
    // PULL crashes. A kept pipe delivers it to the restarted PULL; ZMQ_IMMEDIATE=1 terminates
    // it, as the binding PUSH drops its pipe with the connection.
    let slow = "--set pattern=push-pull --set message.bytes=65536 --set ZMQ_RCVHWM=5 --faults crash --rate 20 --handler-ms 100 --seeds 200";
    let delivered = |sets: &str| -> u64 {
        let (_, json) = sim(&format!(
            "--broker zeromq {slow} {sets} --check at-least-once"
        ));
        assert_eq!(json["invariants"]["at-least-once"]["held"], false, "{sets}");
        json["stats"]["messages_delivered"].as_u64().unwrap()
    };
    let kept = delivered("--set bind=pull");
    let immediate = delivered("--set bind=pull --set ZMQ_IMMEDIATE=1");
    let binding = delivered("--set bind=push");
    assert!(
        kept > immediate + 1000 && kept > binding + 1000,
        "kept {kept}, ZMQ_IMMEDIATE=1 {immediate}, bind=push {binding}"
    );
    // The losses ZMQ_IMMEDIATE=1 adds are the terminated pipe's, noted with their reason.
    let sets: Vec<String> = [
        "pattern=push-pull",
        "bind=pull",
        "ZMQ_IMMEDIATE=1",
        "message.bytes=65536",
        "ZMQ_RCVHWM=5",
    ]
    .map(String::from)
    .to_vec();
    let config = Config::parse("zeromq", &ZeroMq::keys(), &sets).unwrap();
    let system = ZeroMq::build(
        &config,
        Workload {
            messages: 100,
            producers: 1,
            consumers: 1,
            rate: Some(20),
            handler_ms: Some(100),
            ..Workload::default()
        },
    );
    let crash = FaultSet([Fault::Crash].into_iter().collect());
    let noted = (0..20).any(|seed| {
        let r = run(&system, seed, &schedule_for(&system, seed, &crash), false);
        at_least_once(&r.history).iter().any(|v| {
            v.explanation
                .contains("ZMQ_IMMEDIATE=1: the connection to pull")
                && v.explanation
                    .contains("the pipe to it was terminated with what it held")
        })
    });
    assert!(noted, "no loss explained by the terminated pipe");
}

#[test]
fn after_a_heartbeat_timeout_a_connecting_push_keeps_what_it_queued_where_a_binding_one_drops_it() {
    // A 6 s partition of pull0 with heartbeats on (IVL 1000): both ends time the connection
    // out. 64 KiB messages, so what is sent meanwhile waits in the PUSH's pipe to pull0.
    let cut = only(
        1_000,
        6_000,
        FaultOp::Partition {
            split: Split::Halves(vec![1]),
        },
    );
    let sets = ["message.bytes=65536", "ZMQ_HEARTBEAT_IVL=1000"];
    let lost = |bind: &str| {
        let mut all = sets.to_vec();
        all.push(bind);
        let r = run(&zeromq(&all, 80, false), 1, &cut, false);
        assert!(r.complete, "{bind}");
        assert!(last_delivered(&r, 80), "{bind}: no reconnect");
        at_least_once(&r.history)
    };
    let binding = lost("bind=push");
    let connecting = lost("bind=pull");
    // The binding PUSH terminated its pipe with the partition's messages in it; the connecting
    // one kept it, and after the heal sent what waited there: it loses only what was on the
    // wire when the connection was timed out.
    assert!(
        binding
            .iter()
            .any(|v| v.explanation.contains("the pipe to it was terminated")),
        "{binding:#?}"
    );
    assert!(
        connecting.len() <= 2 && connecting.len() + 5 <= binding.len(),
        "connecting {connecting:#?}, binding {}",
        binding.len()
    );
}

/// A DEALER/ROUTER system with `sets`: `servers` ROUTERs, one DEALER sending `messages` at
/// `rate` a second, each server taking `handler_ms` per request (drawn when `None`).
fn dealer_router(
    sets: &[&str],
    servers: u32,
    messages: u32,
    rate: u32,
    handler_ms: Option<u32>,
) -> ZeroMq {
    let mut all = vec!["pattern=dealer-router".to_string()];
    all.extend(sets.iter().map(|s| s.to_string()));
    let config = Config::parse("zeromq", &ZeroMq::keys(), &all).unwrap();
    ZeroMq::build(
        &config,
        Workload {
            messages,
            producers: 1,
            consumers: servers,
            rate: Some(rate),
            handler_ms,
            producer_crashes: true,
            ..Workload::default()
        },
    )
}

/// (time, seq) of each frame of producer 0 delivered in `group` by consumer `consumer`, in
/// the order they were delivered.
fn delivered(r: &Run, group: u32, consumer: u32) -> Vec<(u64, u32)> {
    r.history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Deliver {
                msg,
                group: g,
                consumer: c,
                ..
            } if *g == group && *c == consumer => Some((e.time_ms, msg.seq)),
            _ => None,
        })
        .collect()
}

/// The explanations of the at-least-once violations that quote the model's note `note`.
fn lost_with(r: &Run, note: &str) -> Vec<String> {
    at_least_once(&r.history)
        .into_iter()
        .map(|v| v.explanation)
        .filter(|why| why.contains(note))
        .collect()
}

#[test]
fn dealer_round_robins_over_its_routers_and_replies_are_ordered_per_connection_only() {
    held(
        "--broker zeromq --set pattern=dealer-router --faults none --consumers 2 --rate 100 --seeds 20",
        &["at-least-once", "at-most-once", "ordering"],
    );
    let system = dealer_router(&[], 2, 40, 100, None);
    let none = Schedule {
        window_ms: 0,
        faults: vec![],
    };
    let mut crossed = 0;
    for seed in 0..10 {
        let r = run(&system, seed, &none, false);
        // lb_t: request n goes to server n mod 2, every one of them.
        for server in 0..2 {
            let seqs: Vec<u32> = delivered(&r, 0, server).iter().map(|d| d.1).collect();
            let expected: Vec<u32> = (0..40).filter(|n| n % 2 == server).collect();
            assert_eq!(seqs, expected, "seed {seed}, router{server}");
        }
        // The replies come back as each server gets through its own queue: a slow server's
        // replies arrive after a fast one's later replies.
        let replies: Vec<u32> = delivered(&r, 1, 0).iter().map(|d| d.1).collect();
        assert_eq!(replies.len(), 40, "seed {seed}");
        crossed += usize::from(replies.windows(2).any(|w| w[0] > w[1]));
    }
    assert!(crossed > 0, "replies cross between servers");
}

#[test]
fn a_departed_dealers_replies_are_dropped_silently_and_router_mandatory_only_tells_the_server() {
    // The server takes 200 ms a request, the client sends 20 a second: when the client crashes
    // at 1 s, some 15 of its requests wait in the server's in pipe. The server still receives
    // and handles them (the terminated pipe is read to its delimiter) and its replies have no
    // pipe: the client's new socket is a new routing id.
    let crash = only(
        1_000,
        500,
        FaultOp::Crash {
            target: Target::Node(0),
        },
    );
    let mut lost = Vec::new();
    for (sets, note) in [
        (
            &[][..],
            "ROUTER drops the reply silently (ZMQ_ROUTER_MANDATORY=0)",
        ),
        (&["ZMQ_ROUTER_MANDATORY=1"][..], "failed with EHOSTUNREACH"),
    ] {
        let r = run(&dealer_router(sets, 1, 30, 20, Some(200)), 0, &crash, false);
        let replies = lost_with(&r, note);
        assert!(replies.len() >= 10, "{sets:?}: {replies:#?}");
        for why in &replies {
            assert!(
                why.contains("group 1 never delivered it (other groups did)"),
                "{why}"
            );
        }
        // After the restart the new socket's requests are answered.
        let after = delivered(&r, 1, 0).into_iter().filter(|d| d.0 > 1_500);
        assert!(after.count() > 0, "{sets:?}");
        lost.push(replies.len());
    }
    // ZMQ_ROUTER_MANDATORY=1 tells the server, and loses the same replies.
    assert_eq!(lost[0], lost[1]);
}

#[test]
fn a_restarted_dealer_with_zmq_routing_id_is_the_same_peer_and_gets_the_replies_owed_to_it() {
    // As above: the client crashes at 1 s with some 15 requests waiting at the server, which
    // saw the close. With ZMQ_ROUTING_ID=client the restarted client's new connection is
    // dealer0 again, so the replies to the requests the server handles after that reach it;
    // those it handled while the client was down found no pipe.
    let crash = only(
        1_000,
        500,
        FaultOp::Crash {
            target: Target::Node(0),
        },
    );
    let owed = |sets: &[&str]| {
        let r = run(&dealer_router(sets, 1, 30, 20, Some(200)), 0, &crash, false);
        let before: Vec<u32> = r
            .history
            .events
            .iter()
            .filter_map(|e| match &e.op {
                Op::Send { msg, .. } if e.time_ms < 1_000 => Some(msg.seq),
                _ => None,
            })
            .collect();
        let late = delivered(&r, 1, 0)
            .into_iter()
            .filter(|d| d.0 > 1_500 && before.contains(&d.1))
            .count();
        (late, lost_with(&r, "no pipe for routing id").len())
    };
    let (late, lost) = owed(&[]);
    assert_eq!(
        late, 0,
        "a new routing id: no reply owed reaches the new socket"
    );
    for sets in [
        &["ZMQ_ROUTING_ID=client"][..],
        &["ZMQ_ROUTING_ID=client", "ZMQ_ROUTER_HANDOVER=1"][..],
    ] {
        let (late_id, lost_id) = owed(sets);
        assert!(late_id >= 5, "{sets:?}: {late_id} replies owed delivered");
        assert!(
            lost_id > 0 && lost_id + 5 <= lost,
            "{sets:?}: {lost_id} lost, {lost} without a routing id"
        );
    }
}

#[test]
fn zmq_conflate_on_the_dealer_keeps_one_request_in_the_pipe_to_a_crashed_router() {
    // router1 (node 2) is down from 1 s to 2 s. libzmq conflates the DEALER's pipes, not the
    // ROUTER's: round robin goes on putting every other request in the pipe to router1, where
    // each replaces the one before; the restarted server gets the last.
    let crash = only(
        1_000,
        1_000,
        FaultOp::Crash {
            target: Target::Node(2),
        },
    );
    let r = run(
        &dealer_router(&["ZMQ_CONFLATE=1"], 2, 60, 20, Some(1)),
        0,
        &crash,
        false,
    );
    let replaced = lost_with(
        &r,
        "ZMQ_CONFLATE: a newer message replaced it in the pipe to router1",
    );
    assert!(replaced.len() >= 5, "{replaced:#?}");
    // No mark on a conflating pipe: round robin never skips router1's, so router0 applies
    // every even request.
    let even: Vec<u32> = delivered(&r, 0, 0).iter().map(|d| d.1).collect();
    assert_eq!(even, (0..60).step_by(2).collect::<Vec<u32>>());
    let r = run(&dealer_router(&[], 2, 60, 20, Some(1)), 0, &crash, false);
    assert!(lost_with(&r, "ZMQ_CONFLATE").is_empty());
}

#[test]
fn a_router_drops_replies_at_the_high_water_mark_where_router_mandatory_blocks_and_loses_none() {
    // The client is paused for 3 s with some 15 requests waiting at the server: 64 KiB replies,
    // two in the kernels' buffers, five in the pipe (ZMQ_SNDHWM=5), then the pipe is full.
    let pause = only(
        1_000,
        3_000,
        FaultOp::Pause {
            target: Target::Node(0),
        },
    );
    let base = ["ZMQ_SNDHWM=5", "message.bytes=65536"];
    let r = run(&dealer_router(&base, 1, 60, 50, Some(30)), 0, &pause, false);
    let dropped = lost_with(&r, "ZMQ_SNDHWM reached on the pipe to dealer0");
    assert!(!dropped.is_empty(), "{:#?}", at_least_once(&r.history));
    for why in &dropped {
        assert!(why.contains("(other groups did)"), "{why}");
    }
    let mandatory: Vec<&str> = base.into_iter().chain(["ZMQ_ROUTER_MANDATORY=1"]).collect();
    let r = run(
        &dealer_router(&mandatory, 1, 60, 50, Some(30)),
        0,
        &pause,
        false,
    );
    assert_eq!(
        at_least_once(&r.history),
        vec![],
        "the server's zmq_send waited"
    );
    assert_eq!(delivered(&r, 1, 0).len(), 60);
}

#[test]
fn a_dealer_keeps_its_pipe_to_a_crashed_router_and_blocks_when_every_pipe_is_full() {
    // Two servers, router1 (node 2) down from 1 s to 2 s: with ZMQ_IMMEDIATE=0 round robin goes
    // on queueing every other request in its pipe, and the restarted server gets them.
    let crash = only(
        1_000,
        1_000,
        FaultOp::Crash {
            target: Target::Node(2),
        },
    );
    let mut kept = Vec::new();
    for sets in [&[][..], &["ZMQ_IMMEDIATE=1"][..]] {
        let r = run(&dealer_router(sets, 2, 60, 20, Some(1)), 0, &crash, false);
        let sent_while_down: Vec<u32> = r
            .history
            .events
            .iter()
            .filter_map(|e| match &e.op {
                Op::Send { msg, .. } if (1_050..1_950).contains(&e.time_ms) => Some(msg.seq),
                _ => None,
            })
            .collect();
        kept.push(
            delivered(&r, 0, 1)
                .iter()
                .filter(|d| sent_while_down.contains(&d.1))
                .count(),
        );
    }
    assert!(
        kept[0] >= 5,
        "{kept:?}: the kept pipe delivers after the restart"
    );
    assert_eq!(
        kept[1], 0,
        "{kept:?}: ZMQ_IMMEDIATE=1 sends them all to router0"
    );
    // A paused server's in pipe and the client's pipe to it fill (64 KiB messages, marks of
    // 5): the DEALER's zmq_send blocks and nothing is lost.
    held(
        "--broker zeromq --set pattern=dealer-router --set ZMQ_SNDHWM=5 --set ZMQ_RCVHWM=5 --set message.bytes=65536 --faults pause --rate 50 --seeds 50",
        &["at-least-once", "at-most-once", "ordering"],
    );
}
