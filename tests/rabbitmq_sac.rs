//! RabbitMQ's single active consumer (`x-single-active-consumer`, issue 12): one consumer of a
//! queue at a time, the others waiting in the order they attached; when the active one's channel
//! goes down its unacknowledged messages are requeued and the first waiting consumer takes over,
//! receiving them again flagged redelivered. Quorum queues (`rabbit_fifo`) driven command by
//! command, a classic queue's node message by message, then both under crash faults in the
//! simulator, and the key's validation through the `mqcheck` binary.

#[path = "scenarios/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../brokers/tests/harness/mod.rs"]
mod harness;

use common::{held, mqcheck, reproduce, sim, violated};
use mqcheck_brokers::rabbitmq::{Command, Fifo, RabbitMq, RabbitMsg, RabbitState, Settings};
use mqcheck_brokers::{System, Workload};
use mqcheck_invariants::{check, History, Invariant, Kind, MsgId, Op};
use mqcheck_sim::{run, schedule_for, FaultSet};
use stateright::actor::Id;

/// Node ids with nodes=3, one publisher and two consumers: n1..n3, p0, c0, c1.
const PUBLISHER: usize = 3;
const C0: usize = 4;
const C1: usize = 5;

fn system(sets: &[&str], workload: Workload) -> RabbitMq {
    harness::system(sets, workload)
}

fn settings(sets: &[&str]) -> Settings {
    system(sets, Workload::new(3, 1, 2)).settings
}

fn msg(seq: u32) -> MsgId {
    MsgId { producer: 0, seq }
}

fn enqueue(seq: u64) -> Command {
    Command::Enqueue {
        publisher: Id::from(PUBLISHER),
        channel: 1,
        seq,
        msg: msg(seq as u32),
    }
}

fn checkout(consumer: usize, prefetch: u32) -> Command {
    Command::Checkout {
        consumer: Id::from(consumer),
        channel: 1,
        prefetch,
        auto_ack: false,
    }
}

/// One `basic.deliver`: (consumer, msg, redelivered, x-delivery-count).
type Delivered = (usize, MsgId, bool, u32);

/// The deliveries among messages sent.
fn delivered<'a>(sent: impl IntoIterator<Item = (usize, &'a RabbitMsg)>) -> Vec<Delivered> {
    sent.into_iter()
        .filter_map(|(to, m)| match m {
            RabbitMsg::Deliver {
                msg,
                redelivered,
                delivery_count,
                ..
            } => Some((to, *msg, *redelivered, *delivery_count)),
            _ => None,
        })
        .collect()
}

fn fifo_delivered(fx: &[(Id, RabbitMsg)]) -> Vec<Delivered> {
    delivered(fx.iter().map(|(to, m)| (usize::from(*to), m)))
}

/// c0 (prefetch 2) and c1 (unlimited) attach in that order, three messages arrive; then c0's
/// channel goes down. The deliveries of each step.
fn quorum_takeover(single_active: bool) -> (Fifo, Vec<Vec<Delivered>>) {
    let sac = format!("x-single-active-consumer={single_active}");
    let s = settings(&["queue.type=quorum", &sac]);
    let mut f = Fifo::default();
    let mut steps = Vec::new();
    f.apply(1, &checkout(C0, 2), &s);
    f.apply(2, &checkout(C1, 0), &s);
    for (index, seq) in [(3, 0), (4, 1), (5, 2)] {
        steps.push(fifo_delivered(&f.apply(index, &enqueue(seq), &s)));
    }
    let down = Command::Down {
        consumer: Id::from(C0),
        checkout: 1,
    };
    steps.push(fifo_delivered(&f.apply(6, &down, &s)));
    (f, steps)
}

#[test]
fn quorum_the_waiting_consumer_takes_over_when_the_active_ones_channel_goes_down() {
    let (f, steps) = quorum_takeover(true);
    // c0 attached first and is active: c1 waits and gets nothing, even with credit to spare.
    assert_eq!(steps[0], vec![(C0, msg(0), false, 0)]);
    assert_eq!(steps[1], vec![(C0, msg(1), false, 0)]);
    assert!(steps[2].is_empty(), "c0 is at its prefetch, c1 waits");
    // c0 goes down: its two messages come back, counted (4.3: a consumer down is a failed
    // delivery), and c1, activated, gets them first, flagged, then the message that waited.
    assert_eq!(
        steps[3],
        vec![
            (C1, msg(0), true, 1),
            (C1, msg(1), true, 1),
            (C1, msg(2), false, 0),
        ]
    );
    assert!(f.waiting.is_empty());
    assert_eq!(
        f.service.iter().copied().collect::<Vec<_>>(),
        vec![Id::from(C1)]
    );

    // Off: the same steps serve both consumers round robin, and the down hands c0's messages
    // to c1, which already had one.
    let (_, steps) = quorum_takeover(false);
    assert_eq!(steps[0], vec![(C0, msg(0), false, 0)]);
    assert_eq!(steps[1], vec![(C1, msg(1), false, 0)]);
    assert_eq!(steps[2], vec![(C0, msg(2), false, 0)]);
    assert_eq!(steps[3], vec![(C1, msg(0), true, 1), (C1, msg(2), true, 1)]);
}

#[test]
fn quorum_a_waiting_consumer_leaves_the_line_and_a_new_one_joins_its_end() {
    let s = settings(&["queue.type=quorum", "x-single-active-consumer=true"]);
    let mut f = Fifo::default();
    f.apply(1, &checkout(C0, 0), &s);
    f.apply(2, &checkout(C1, 0), &s);
    assert_eq!(
        f.waiting.iter().copied().collect::<Vec<_>>(),
        vec![Id::from(C1)]
    );
    // c1's channel goes while it waits: nothing changes for c0.
    let down = Command::Down {
        consumer: Id::from(C1),
        checkout: 2,
    };
    f.apply(3, &down, &s);
    assert!(f.waiting.is_empty() && !f.consumers.contains_key(&Id::from(C1)));
    assert_eq!(
        fifo_delivered(&f.apply(4, &enqueue(0), &s)),
        vec![(C0, msg(0), false, 0)]
    );
    // c1 attaches again and waits; c0 re-attaching (a new channel) gives its message back, and
    // the waiting c1 takes over ahead of c0's new attachment.
    f.apply(5, &checkout(C1, 0), &s);
    let fx = f.apply(6, &checkout(C0, 0), &s);
    assert_eq!(fifo_delivered(&fx), vec![(C1, msg(0), true, 1)]);
    assert_eq!(
        f.waiting.iter().copied().collect::<Vec<_>>(),
        vec![Id::from(C0)]
    );
}

type Cluster = harness::Actors<RabbitMq>;

fn publish(seq: u64) -> RabbitMsg {
    RabbitMsg::Publish {
        channel: 1,
        seq,
        msg: msg(seq as u32),
        persistent: true,
        mandatory: false,
    }
}

fn consume(prefetch: u32) -> RabbitMsg {
    RabbitMsg::Consume {
        channel: 1,
        prefetch,
        auto_ack: false,
    }
}

fn node_delivered(steps: &[harness::Cmd<RabbitMq>]) -> Vec<Delivered> {
    let sent = harness::sends::<RabbitMq>(steps);
    delivered(sent.iter().map(|(to, m)| (*to, m)))
}

/// A classic queue on n1: c0 (prefetch 2) and c1 (unlimited) connect and consume in that order,
/// three messages are published; then c0's connection is reset. The deliveries of each step.
fn classic_takeover(single_active: bool) -> (Cluster, Vec<Vec<Delivered>>) {
    let sac = format!("x-single-active-consumer={single_active}");
    let mut c = Cluster::of(&system(
        &["queue.type=classic", &sac],
        Workload::new(3, 1, 2),
    ));
    assert_eq!(c.actors.len(), 6, "n1..n3, p0, c0, c1");
    c.start(0);
    for client in [PUBLISHER, C0, C1] {
        c.deliver(0, client, RabbitMsg::Open);
    }
    c.deliver(0, C0, consume(2));
    c.deliver(0, C1, consume(0));
    let mut steps = Vec::new();
    for seq in 0..3 {
        steps.push(node_delivered(&c.deliver(0, PUBLISHER, publish(seq))));
    }
    steps.push(node_delivered(&c.deliver(0, C0, RabbitMsg::Disconnected)));
    (c, steps)
}

#[test]
fn classic_the_next_consumer_takes_over_when_the_active_ones_channel_goes_down() {
    let (c, steps) = classic_takeover(true);
    assert_eq!(steps[0], vec![(C0, msg(0), false, 0)]);
    assert_eq!(steps[1], vec![(C0, msg(1), false, 0)]);
    assert!(steps[2].is_empty(), "c0 is at its prefetch, c1 waits");
    // `new_single_active_consumer_after_channel_down`: c1 takes over and receives c0's requeued
    // messages, flagged redelivered, in their order, then the one that waited.
    assert_eq!(
        steps[3],
        vec![
            (C1, msg(0), true, 0),
            (C1, msg(1), true, 0),
            (C1, msg(2), false, 0),
        ]
    );
    let RabbitState::Node(n) = c.state(0) else {
        panic!("n1 is a node")
    };
    assert_eq!(n.classic.active, Some(Id::from(C1)));
    assert!(c
        .show(0)
        .contains("consumer c1 (prefetch unlimited) unacked [p0:0 p0:1 p0:2]"));

    let (_, steps) = classic_takeover(false);
    assert_eq!(steps[0], vec![(C0, msg(0), false, 0)]);
    assert_eq!(steps[1], vec![(C1, msg(1), false, 0)]);
    assert_eq!(steps[2], vec![(C0, msg(2), false, 0)]);
    assert_eq!(steps[3], vec![(C1, msg(0), true, 0), (C1, msg(2), true, 0)]);
}

#[test]
fn classic_a_waiting_consumer_is_shown_waiting() {
    let (mut c, _) = classic_takeover(true);
    c.deliver(0, C0, RabbitMsg::Open);
    c.deliver(0, C0, consume(2));
    assert!(
        c.show(0)
            .contains("consumer c0 (prefetch 2, waiting) unacked []"),
        "{}",
        c.show(0)
    );
}

/// Deliveries in the order the consumers' applications handled them: (consumer, msg,
/// redelivered).
fn deliveries(h: &History) -> Vec<(u32, MsgId, bool)> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Deliver {
                consumer,
                msg,
                redelivered,
                ..
            } => Some((*consumer, *msg, redelivered.unwrap_or(false))),
            _ => None,
        })
        .collect()
}

/// How often the consumer handling the queue's messages changes from one delivery to the next.
fn switches(h: &History) -> usize {
    let ds = deliveries(h);
    ds.windows(2).filter(|w| w[0].0 != w[1].0).count()
}

/// Over 100 crash seeds of a queue with two consumers: the switches between consumers, the
/// seeds whose order breaks across the two consumers (judged as a single active consumer's
/// queue promises it), and the duplicates whose second delivery went to the other consumer.
struct Sweep {
    switches: usize,
    reordered_seeds: usize,
    takeover_duplicates: usize,
    delivered: usize,
}

fn sweep(queue: &str, single_active: bool) -> Sweep {
    let q = format!("queue.type={queue}");
    let sac = format!("x-single-active-consumer={single_active}");
    let s = system(&[q.as_str(), sac.as_str()], Workload::new(100, 1, 2));
    // The promise of a single active consumer's queue: order across its consumers.
    let on = system(
        &[q.as_str(), "x-single-active-consumer=true"],
        Workload::new(1, 1, 2),
    );
    let across = on.promise();
    assert!(!across.per_consumer_session && across.excludes_redelivered);
    let crash: FaultSet = "crash".parse().expect("a fault set");
    let mut out = Sweep {
        switches: 0,
        reordered_seeds: 0,
        takeover_duplicates: 0,
        delivered: 0,
    };
    for seed in 0..100 {
        let r = run(&s, seed, &schedule_for(&s, seed, &crash), false);
        assert!(r.complete, "{queue} seed {seed} ran to its end");
        assert!(check(Invariant::AtLeastOnce, &r.history, &s.promise()).is_empty());
        out.switches += switches(&r.history);
        out.delivered += deliveries(&r.history).len();
        let reordered = check(Invariant::Ordering, &r.history, &across);
        assert!(reordered.iter().all(|v| v.kind == Kind::Reordered));
        out.reordered_seeds += usize::from(!reordered.is_empty());
        let ds = deliveries(&r.history);
        for v in check(Invariant::AtMostOnce, &r.history, &s.promise()) {
            let by: Vec<&(u32, MsgId, bool)> = ds.iter().filter(|d| d.1 == v.msgs[0]).collect();
            if by.windows(2).any(|w| w[0].0 != w[1].0 && w[1].2) {
                out.takeover_duplicates += 1;
            }
        }
    }
    out
}

#[test]
fn under_crashes_a_single_active_consumer_switches_only_at_takeovers_and_keeps_the_order() {
    for queue in ["quorum", "classic"] {
        let off = sweep(queue, false);
        let on = sweep(queue, true);
        eprintln!(
            "{queue}: off {} switches, {} of 100 seeds reordered across the consumers, {} delivered; \
             on {} switches, {} reordered, {} takeover duplicates, {} delivered",
            off.switches,
            off.reordered_seeds,
            off.delivered,
            on.switches,
            on.reordered_seeds,
            on.takeover_duplicates,
            on.delivered
        );
        // Off: the two consumers share the queue round robin, so its order breaks across them.
        assert!(off.switches > 1000, "{queue}: {} switches", off.switches);
        assert!(off.reordered_seeds > 10, "{queue}: {}", off.reordered_seeds);
        // On: the consumer changes only when the active one goes, and the order holds.
        assert!(on.switches > 0, "{queue}: some takeover happened");
        assert!(
            on.switches * 20 < off.switches,
            "{queue}: {} switches",
            on.switches
        );
        assert_eq!(on.reordered_seeds, 0, "{queue}");
        // A takeover redelivers what the dead consumer had handled but not acknowledged.
        assert!(on.takeover_duplicates > 0, "{queue}");
    }
}

#[test]
fn the_cli_judges_order_across_the_consumers_with_a_single_active_consumer() {
    let json = held(
        "--broker rabbitmq --set queue.type=quorum --set x-single-active-consumer=true --consumers 2 --faults crash --seeds 100",
        &["ordering", "at-least-once"],
    );
    assert!(
        json["stats"]["messages_delivered"].as_u64().unwrap() > 5000,
        "{json}"
    );
}

/// The single active consumer is the one the broker thinks is active: a consumer paused past its
/// heartbeat timeout is given up on, the next one takes over (redelivered what the paused one
/// held) and moves on to newer messages, and the paused one, resumed, still hands its buffered
/// delivery to its application — a first delivery out of order.
#[test]
fn a_paused_active_consumer_handles_its_buffered_delivery_after_the_takeover() {
    for queue in ["classic", "quorum"] {
        let v = violated(
            &format!(
                "--broker rabbitmq --set queue.type={queue} --set x-single-active-consumer=true --set heartbeat=5 \
                 --set prefetch=2 --consumers 2 --messages 1000 --rate 100 --handler-ms 40 --faults pause --seeds 40"
            ),
            "ordering",
        );
        assert_eq!(v["kind"], "reordered", "{v}");
        let r = reproduce(&v);
        assert!(
            r.stdout.contains("pause c"),
            "a consumer was paused:\n{}",
            r.stdout
        );
    }
}

#[test]
fn rabbitmq_3_3_has_no_single_active_consumer() {
    for value in ["true", "false"] {
        let set = format!("x-single-active-consumer={value}");
        let r = mqcheck(&[
            "sim",
            "--broker",
            "rabbitmq",
            "--set",
            "version=3.3",
            "--set",
            &set,
        ]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", r.stderr);
        assert!(
            lines[0].contains("x-single-active-consumer")
                && lines[0].contains("3.8")
                && lines[0].contains("version=3.13, 4.2 or 4.3"),
            "{}",
            lines[0]
        );
    }
    let r = mqcheck(&[
        "sim",
        "--broker",
        "rabbitmq",
        "--set",
        "x-single-active-consumer=yes",
    ]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("x-single-active-consumer") && r.stderr.contains("true"),
        "{}",
        r.stderr
    );
    // 3.13 has it, for classic and quorum queues alike.
    for queue in ["classic", "quorum"] {
        let (code, _) = sim(&format!(
            "--broker rabbitmq --set version=3.13 --set queue.type={queue} --set x-single-active-consumer=true --consumers 2 --faults none --seeds 1"
        ));
        assert_eq!(code, 0);
    }
}
