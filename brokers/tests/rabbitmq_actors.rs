//! Unit tests of the RabbitMQ model's mechanisms: the quorum queue's state machine
//! (`rabbit_fifo`) applied command by command, and the nodes' Raft driven one message or timer
//! at a time. No simulator, no network: every delivery below is one the test chose.
//!
//! Node ids (nodes=3, producers=1, consumers=1): 0..=2 are n1..n3, 3 the publisher, 4 the consumer.

use mqcheck_brokers::rabbitmq::{
    Command, Fifo, RabbitMq, RabbitMsg, RabbitState, RabbitTimer, Returned, Settings,
};
use mqcheck_brokers::Workload;
use mqcheck_invariants::MsgId;
use stateright::actor::Id;

mod harness;

type Step = harness::Cmd<RabbitMq>;

const PUBLISHER: usize = 3;

fn system(sets: &[&str]) -> RabbitMq {
    harness::system(
        sets,
        Workload {
            messages: 3,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    )
}

fn settings(sets: &[&str]) -> Settings {
    system(sets).settings
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

/// The deliveries among effects: (consumer, message id, msg, redelivered, delivery count).
fn delivered(fx: &[(Id, RabbitMsg)]) -> Vec<(usize, u64, MsgId, bool, u32)> {
    fx.iter()
        .filter_map(|(to, m)| match m {
            RabbitMsg::Deliver {
                tag,
                msg,
                redelivered,
                delivery_count,
                ..
            } => Some((usize::from(*to), *tag, *msg, *redelivered, *delivery_count)),
            _ => None,
        })
        .collect()
}

#[test]
fn consumers_are_served_round_robin_within_their_prefetch() {
    let s = settings(&["queue.type=quorum"]);
    let mut f = Fifo::default();
    f.apply(1, &checkout(4, 1), &s);
    f.apply(2, &checkout(5, 1), &s);
    let a = f.apply(3, &enqueue(1), &s);
    let b = f.apply(4, &enqueue(2), &s);
    let c = f.apply(5, &enqueue(3), &s);
    assert_eq!(delivered(&a), vec![(4, 3, msg(1), false, 0)]);
    assert_eq!(delivered(&b), vec![(5, 4, msg(2), false, 0)]);
    assert!(
        delivered(&c).is_empty(),
        "both consumers are at their prefetch of 1"
    );
    let checkout_index = f.consumers[&Id::from(4)].checkout;
    let settle = Command::Settle {
        consumer: Id::from(4),
        checkout: checkout_index,
        id: 3,
    };
    let d = f.apply(6, &settle, &s);
    assert_eq!(delivered(&d), vec![(4, 5, msg(3), false, 0)]);
    assert!(
        !f.messages.contains_key(&3),
        "a settled message leaves the queue"
    );
}

#[test]
fn a_returned_message_goes_back_to_the_front_counted_and_flagged() {
    let s = settings(&["queue.type=quorum", "delivery-limit=1"]);
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    f.apply(2, &enqueue(2), &s);
    let fx = f.apply(3, &checkout(4, 1), &s);
    assert_eq!(delivered(&fx), vec![(4, 1, msg(1), false, 0)]);
    let ret = Command::Return {
        consumer: Id::from(4),
        checkout: 3,
        id: 1,
        returned: Returned::Rejected,
    };
    // Requeued at the front, ahead of message 2: delivered again, redelivered, counted once.
    let fx = f.apply(4, &ret, &s);
    assert_eq!(delivered(&fx), vec![(4, 1, msg(1), true, 1)]);
    // A second return passes delivery-limit=1: the message is dropped and 2 comes next.
    let fx = f.apply(5, &ret, &s);
    assert!(!f.messages.contains_key(&1));
    assert_eq!(delivered(&fx), vec![(4, 2, msg(2), false, 0)]);
}

#[test]
fn a_consumer_down_returns_its_messages_counted() {
    let s = settings(&["queue.type=quorum", "delivery-limit=1"]);
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    f.apply(2, &checkout(4, 0), &s);
    // A stale Down (of an older checkout) changes nothing.
    f.apply(
        3,
        &Command::Down {
            consumer: Id::from(4),
            checkout: 1,
        },
        &s,
    );
    assert!(f.consumers.contains_key(&Id::from(4)));
    f.apply(
        4,
        &Command::Down {
            consumer: Id::from(4),
            checkout: 2,
        },
        &s,
    );
    assert_eq!(f.ready.iter().copied().collect::<Vec<_>>(), vec![1]);
    // Every release counts a consumer going down (`return_all` on `down`).
    let fx = f.apply(5, &checkout(5, 0), &s);
    assert_eq!(delivered(&fx), vec![(5, 1, msg(1), true, 1)]);
}

#[test]
fn a_repeated_enqueue_is_confirmed_but_stored_once() {
    let s = settings(&["queue.type=quorum"]);
    let mut f = Fifo::default();
    let a = f.apply(1, &enqueue(7), &s);
    let b = f.apply(2, &enqueue(7), &s);
    let confirm = (
        Id::from(PUBLISHER),
        RabbitMsg::Confirm { channel: 1, seq: 7 },
    );
    assert_eq!(a, vec![confirm.clone()]);
    assert_eq!(b, vec![confirm]);
    assert_eq!(f.messages.len(), 1);
}

/// Three nodes and their clients, started on demand.
type Cluster = harness::Actors<RabbitMq>;

impl Cluster {
    fn new() -> Cluster {
        let c = Cluster::of(&system(&["queue.type=quorum"]));
        assert_eq!(c.actors.len(), 5, "n1..n3, p0, c0");
        c
    }
}

/// Delivers every message in `steps` addressed to `dst`, from `src`.
fn relay(c: &mut Cluster, steps: &[Step], src: usize, dst: usize) -> Vec<Step> {
    let mut out = Vec::new();
    for (to, m) in harness::sends::<RabbitMq>(steps) {
        if to == dst {
            out.extend(c.deliver(dst, src, m));
        }
    }
    out
}

#[test]
fn a_publish_is_confirmed_only_once_a_majority_has_it() {
    let mut c = Cluster::new();
    for i in 0..3 {
        c.start(i);
    }
    // n1 times out first and asks for votes; n2's vote makes a majority.
    let ask = c.fire(0, RabbitTimer::Election);
    let vote = relay(&mut c, &ask, 0, 1);
    let won = relay(&mut c, &vote, 1, 0);
    assert!(
        harness::sends::<RabbitMq>(&won)
            .iter()
            .any(|(to, m)| *to == 1 && matches!(m, RabbitMsg::AppendEntries { .. })),
        "the new leader replicates its first entry"
    );
    // n2 takes the leader's no-op; n1 commits it.
    let reply = relay(&mut c, &won, 0, 1);
    relay(&mut c, &reply, 1, 0);
    // The publisher connects and publishes.
    let open = c.deliver(0, PUBLISHER, RabbitMsg::Open);
    assert!(harness::sends::<RabbitMq>(&open).contains(&(PUBLISHER, RabbitMsg::OpenOk)));
    let publish = RabbitMsg::Publish {
        channel: 1,
        seq: 1,
        msg: msg(0),
        persistent: true,
        mandatory: false,
    };
    let appended = c.deliver(0, PUBLISHER, publish);
    let confirm = (PUBLISHER, RabbitMsg::Confirm { channel: 1, seq: 1 });
    assert!(
        !harness::sends::<RabbitMq>(&appended).contains(&confirm),
        "not confirmed on the leader's disk alone"
    );
    // n3 is unreachable; n2's acknowledgement makes the majority, and the confirm goes out.
    let reply = relay(&mut c, &appended, 0, 1);
    let committed = relay(&mut c, &reply, 1, 0);
    assert!(
        harness::sends::<RabbitMq>(&committed).contains(&confirm),
        "{committed:?}"
    );
}

/// A mirrored queue (ha-params=2, manual sync) whose leader `n1` holds one message, replicated to
/// `n2`. `n2` is then seen down, so `n1` takes `n3` as a new, unsynchronised mirror; then `n3`
/// sees `n1` down. Returns the cluster at that point.
fn unsynchronised_mirror_sees_its_leader_fail(promote: &str) -> Cluster {
    let sets = [
        "version=3.13",
        "queue.type=mirrored",
        "ha-params=2",
        "ha-sync-mode=manual",
        promote,
    ];
    let mut c = Cluster::of(&system(&sets));
    for i in 0..3 {
        c.start(i);
    }
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    let publish = RabbitMsg::Publish {
        channel: 1,
        seq: 1,
        msg: msg(0),
        persistent: true,
        mandatory: false,
    };
    let replicated = c.deliver(0, PUBLISHER, publish);
    relay(&mut c, &replicated, 0, 1);
    let dropped = c.fire(0, RabbitTimer::PeerSilent(Id::from(1)));
    let record = harness::sends::<RabbitMq>(&dropped)
        .into_iter()
        .find(|(to, m)| *to == 2 && matches!(m, RabbitMsg::QueueRecord { .. }))
        .expect("the leader announces its new mirror")
        .1;
    assert!(
        matches!(&record, RabbitMsg::QueueRecord { mirrors, synced, .. }
            if mirrors == &vec![Id::from(2)] && synced.is_empty()),
        "{record}"
    );
    c.deliver(2, 0, record);
    c.fire(2, RabbitTimer::PeerSilent(Id::from(0)));
    c
}

fn classic(c: &Cluster, i: usize) -> &mqcheck_brokers::rabbitmq::ClassicState {
    match c.state(i) {
        RabbitState::Node(n) => &n.classic,
        s => panic!("not a node: {s:?}"),
    }
}

#[test]
fn promoting_an_unsynchronised_mirror_loses_what_it_never_had() {
    let c = unsynchronised_mirror_sees_its_leader_fail("ha-promote-on-failure=always");
    let n3 = classic(&c, 2);
    assert!(n3.leader, "always: the only mirror takes over");
    assert!(n3.messages.is_empty(), "without the message n1 and n2 held");
    let c = unsynchronised_mirror_sees_its_leader_fail("ha-promote-on-failure=when-synced");
    let n3 = classic(&c, 2);
    assert!(
        !n3.leader,
        "when-synced: the queue waits for its leader instead"
    );
}

/// Model-checking friendliness: once the work is done, the periodic timers (Raft heartbeat, the
/// distribution tick, AMQP heartbeats) and the answers they draw lead back to the same states.
#[test]
fn an_idle_cluster_is_a_fixed_point_of_its_periodic_timers() {
    let mut c = Cluster::new();
    for i in 0..3 {
        c.start(i);
    }
    let ask = c.fire(0, RabbitTimer::Election);
    let vote = relay(&mut c, &ask, 0, 1);
    let won = relay(&mut c, &vote, 1, 0);
    for f in 1..3 {
        let reply = relay(&mut c, &won, 0, f);
        relay(&mut c, &reply, f, 0);
    }
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    let round = |c: &mut Cluster| {
        let beat = c.fire(0, RabbitTimer::RaftHeartbeat);
        for f in 1..3 {
            let reply = relay(c, &beat, 0, f);
            relay(c, &reply, f, 0);
        }
    };
    // The first round tells the followers the commit index: progress, not chatter.
    round(&mut c);
    let before = c.states.clone();
    round(&mut c);
    for (n, timer) in [
        (0, RabbitTimer::Tick),
        (1, RabbitTimer::Tick),
        (0, RabbitTimer::ClientHeartbeat),
    ] {
        let sent = c.fire(n, timer);
        for (to, m) in harness::sends::<RabbitMq>(&sent) {
            if to < 3 {
                c.deliver(to, n, m);
            }
        }
    }
    c.deliver(0, PUBLISHER, RabbitMsg::Heartbeat);
    assert_eq!(c.states, before);
}

/// What the Stateright Explorer shows of a node and its clients, in RabbitMQ's terms rather
/// than `Debug`: the quorum queue leader's term, log and commit index, the ready messages, a
/// consumer's unacknowledged delivery; the publisher's connection.
#[test]
fn show_names_the_raft_role_log_ready_messages_and_unacked_deliveries() {
    let mut c = Cluster::new();
    for i in 0..3 {
        c.start(i);
    }
    let ask = c.fire(0, RabbitTimer::Election);
    let vote = relay(&mut c, &ask, 0, 1);
    let won = relay(&mut c, &vote, 1, 0);
    let reply = relay(&mut c, &won, 0, 1);
    relay(&mut c, &reply, 1, 0);
    // The consumer (4) attaches with prefetch 1; the publisher publishes two messages.
    c.deliver(0, 4, RabbitMsg::Open);
    let consume = c.deliver(
        0,
        4,
        RabbitMsg::Consume {
            channel: 1,
            prefetch: 1,
            auto_ack: false,
        },
    );
    let reply = relay(&mut c, &consume, 0, 1);
    relay(&mut c, &reply, 1, 0);
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    for seq in 1..=2 {
        let publish = RabbitMsg::Publish {
            channel: 1,
            seq,
            msg: msg(seq as u32),
            persistent: true,
            mandatory: false,
        };
        let appended = c.deliver(0, PUBLISHER, publish);
        let reply = relay(&mut c, &appended, 0, 1);
        relay(&mut c, &reply, 1, 0);
    }
    let leader = c.show(0);
    assert!(
        leader.starts_with("node: all peers up, clients [p0,c0]"),
        "{leader}"
    );
    assert!(leader.contains("quorum LEADER term 1"), "{leader}");
    assert!(leader.contains("1:noop"), "{leader}");
    assert!(leader.contains("1:enqueue p0:2"), "{leader}");
    assert!(leader.contains("commit=4"), "{leader}");
    assert!(leader.contains("ready [p0:2]"), "{leader}");
    assert!(
        leader.contains("consumer c0 (prefetch 1) unacked [p0:1]"),
        "{leader}"
    );
    assert!(!leader.contains("QuorumState"), "not Debug: {leader}");
    let follower = c.show(1);
    assert!(
        follower.contains("quorum follower term 1 (leader n1)"),
        "{follower}"
    );
}

/// A consumer that opens a connection again (it restarted, and its old connection's close never
/// came) has left the old one: its consumer there is cancelled and what it held requeued, and the
/// new connection gets nothing until its own `basic.consume` — not what the old channel was sent.
#[test]
fn a_second_open_from_a_client_closes_its_earlier_connection() {
    const CONSUMER: usize = 4;
    let mut c = Cluster::of(&system(&["queue.type=classic"]));
    for i in 0..3 {
        c.start(i);
    }
    let consume = RabbitMsg::Consume {
        channel: 1,
        prefetch: 10,
        auto_ack: false,
    };
    c.deliver(0, CONSUMER, RabbitMsg::Open);
    c.deliver(0, CONSUMER, consume.clone());
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    let published = c.deliver(
        0,
        PUBLISHER,
        RabbitMsg::Publish {
            channel: 1,
            seq: 1,
            msg: msg(0),
            persistent: true,
            mandatory: false,
        },
    );
    let to_consumer = |steps: &[Step]| -> Vec<(MsgId, bool)> {
        harness::sends::<RabbitMq>(steps)
            .into_iter()
            .filter_map(|(to, m)| match m {
                RabbitMsg::Deliver {
                    msg, redelivered, ..
                } if to == CONSUMER => Some((msg, redelivered)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(to_consumer(&published), vec![(msg(0), false)]);
    assert_eq!(classic(&c, 0).unacked.len(), 1);

    let reopened = c.deliver(0, CONSUMER, RabbitMsg::Open);
    assert!(to_consumer(&reopened).is_empty(), "{reopened:?}");
    let n1 = classic(&c, 0);
    assert!(n1.unacked.is_empty() && n1.ready.len() == 1, "requeued");
    assert!(!n1.consumers.contains_key(&Id::from(CONSUMER)));

    let consumed = c.deliver(0, CONSUMER, consume);
    assert_eq!(
        to_consumer(&consumed),
        vec![(msg(0), true)],
        "flagged redelivered"
    );
}
