//! Unit tests of the RabbitMQ model's AMQP transactions (`publisher.tx`): the channel on the
//! queue leader's node holding publishes until `tx.commit`, delivering them one by one and
//! answering `tx.commit-ok` once the queue confirmed them all; a rollback or a closed connection
//! discarding them; "partial tx completion"; and the publisher's application. Every delivery below
//! is one the test chose.
//!
//! Node ids (nodes=3, producers=1, consumers=1): 0..=2 are n1..n3, 3 the publisher, 4 the consumer.

use mqcheck_brokers::rabbitmq::{
    ClassicState, PublisherState, RabbitMq, RabbitMsg, RabbitRandom, RabbitState, RabbitTimer,
};
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::{MsgId, Op, TxnOutcome};

mod harness;

type Step = harness::Cmd<RabbitMq>;
type Cluster = harness::Actors<RabbitMq>;

const PUBLISHER: usize = 3;

fn system(sets: &[&str]) -> RabbitMq {
    harness::system(
        sets,
        Workload {
            messages: 12,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    )
}

fn msg(seq: u32) -> MsgId {
    MsgId { producer: 0, seq }
}

/// `basic.publish` of message `seq - 1` with sequence number `seq`, transient (`delivery_mode=1`:
/// the queue confirms it at once) unless `persistent`.
fn publish_as(seq: u64, persistent: bool) -> RabbitMsg {
    RabbitMsg::Publish {
        channel: 1,
        seq,
        msg: msg(seq as u32 - 1),
        persistent,
        mandatory: false,
    }
}

fn publish(seq: u64) -> RabbitMsg {
    publish_as(seq, false)
}

fn classic(c: &Cluster, i: usize) -> &ClassicState {
    match c.state(i) {
        RabbitState::Node(n) => &n.classic,
        s => panic!("not a node: {s:?}"),
    }
}

fn to_publisher(steps: &[Step]) -> Vec<RabbitMsg> {
    harness::sent_to::<RabbitMq>(steps, PUBLISHER)
}

/// A classic queue's cluster with the publisher connected to `n1` and its channel in tx mode.
fn transactional(sets: &[&str]) -> Cluster {
    let mut c = Cluster::of(&system(sets));
    for i in 0..3 {
        c.start(i);
    }
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    c.deliver(0, PUBLISHER, RabbitMsg::TxSelect { channel: 1 });
    c
}

#[test]
fn a_commit_delivers_the_held_publishes_and_answers_once_the_queue_confirmed_them() {
    let mut c = transactional(&["queue.type=classic"]);
    for seq in 1..=2 {
        let held = c.deliver(0, PUBLISHER, publish_as(seq, true));
        assert!(to_publisher(&held).is_empty(), "{held:?}");
    }
    assert!(classic(&c, 0).messages.is_empty(), "held by the channel");
    // Persistent messages in a durable queue: the queue confirms after the store's fsync.
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 1 });
    assert_eq!(
        classic(&c, 0).messages.len(),
        2,
        "both delivered to the queue"
    );
    assert!(to_publisher(&committed).is_empty(), "{committed:?}");
    let synced = c.fire(0, RabbitTimer::Fsync);
    assert_eq!(
        to_publisher(&synced),
        vec![RabbitMsg::TxCommitOk { channel: 1 }],
        "tx.commit-ok, and no basic.ack: the channel is not in confirm mode"
    );
}

#[test]
fn a_rollback_discards_what_the_channel_holds() {
    let mut c = transactional(&["queue.type=classic", "delivery_mode=1"]);
    c.deliver(0, PUBLISHER, publish(1));
    c.deliver(0, PUBLISHER, RabbitMsg::TxRollback { channel: 1 });
    c.deliver(0, PUBLISHER, publish(2));
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 1 });
    let q = classic(&c, 0);
    let stored: Vec<MsgId> = q.messages.values().map(|m| m.msg).collect();
    assert_eq!(stored, vec![msg(1)], "only what followed the rollback");
    assert_eq!(
        to_publisher(&committed),
        vec![RabbitMsg::TxCommitOk { channel: 1 }]
    );
}

#[test]
fn a_closed_connection_discards_the_held_publishes() {
    let mut c = transactional(&["queue.type=classic", "delivery_mode=1"]);
    c.deliver(0, PUBLISHER, publish(1));
    c.deliver(0, PUBLISHER, RabbitMsg::Disconnected);
    assert!(classic(&c, 0).messages.is_empty());
    // A new connection's channel starts empty: its commit delivers nothing of the old one.
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    c.deliver(0, PUBLISHER, RabbitMsg::TxSelect { channel: 2 });
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 2 });
    assert!(classic(&c, 0).messages.is_empty());
    assert_eq!(
        to_publisher(&committed),
        vec![RabbitMsg::TxCommitOk { channel: 2 }]
    );
}

/// `x-max-length=1` with `reject-publish`: the queue takes the commit's first publish and refuses
/// the second, so the commit fails with the first enqueued — no atomicity even in one queue.
#[test]
fn a_commit_the_queue_refuses_in_part_fails_with_the_rest_enqueued() {
    let sets = [
        "queue.type=classic",
        "delivery_mode=1",
        "x-max-length=1",
        "x-overflow=reject-publish",
    ];
    let mut c = transactional(&sets);
    c.deliver(0, PUBLISHER, publish(1));
    c.deliver(0, PUBLISHER, publish(2));
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 1 });
    let stored: Vec<MsgId> = classic(&c, 0).messages.values().map(|m| m.msg).collect();
    assert_eq!(stored, vec![msg(0)]);
    assert_eq!(
        to_publisher(&committed),
        vec![RabbitMsg::TxFailed { channel: 1 }],
        "partial tx completion, no commit-ok, no basic.nack"
    );
    // Within the limit, the same commit succeeds whole.
    let mut c = transactional(&[
        "queue.type=classic",
        "delivery_mode=1",
        "x-max-length=2",
        "x-overflow=reject-publish",
    ]);
    c.deliver(0, PUBLISHER, publish(1));
    c.deliver(0, PUBLISHER, publish(2));
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 1 });
    assert_eq!(classic(&c, 0).messages.len(), 2);
    assert_eq!(
        to_publisher(&committed),
        vec![RabbitMsg::TxCommitOk { channel: 1 }]
    );
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

/// A quorum queue's commit is one Raft entry per publish (the channel's `rabbit_fifo_client`
/// enqueues each on its own): Raft commits a prefix of them, and `tx.commit-ok` waits for all.
#[test]
fn a_quorum_commit_is_one_raft_entry_per_publish() {
    let mut c = Cluster::of(&system(&["queue.type=quorum"]));
    for i in 0..3 {
        c.start(i);
    }
    let ask = c.fire(0, RabbitTimer::Election);
    let vote = relay(&mut c, &ask, 0, 1);
    let won = relay(&mut c, &vote, 1, 0);
    let reply = relay(&mut c, &won, 0, 1);
    relay(&mut c, &reply, 1, 0);
    c.deliver(0, PUBLISHER, RabbitMsg::Open);
    c.deliver(0, PUBLISHER, RabbitMsg::TxSelect { channel: 1 });
    c.deliver(0, PUBLISHER, publish(1));
    c.deliver(0, PUBLISHER, publish(2));
    let committed = c.deliver(0, PUBLISHER, RabbitMsg::TxCommit { channel: 1 });
    let appends: Vec<RabbitMsg> = harness::sent_to::<RabbitMq>(&committed, 1)
        .into_iter()
        .filter(|m| matches!(m, RabbitMsg::AppendEntries { entries, .. } if entries.len() == 1))
        .collect();
    assert_eq!(appends.len(), 2, "one append per publish: {committed:?}");
    // n2 takes the first enqueue only: it commits, the commit does not complete.
    let first = c.deliver(1, 0, appends[0].clone());
    let acked = relay(&mut c, &first, 1, 0);
    assert!(to_publisher(&acked).is_empty(), "{acked:?}");
    let second = c.deliver(1, 0, appends[1].clone());
    let acked = relay(&mut c, &second, 1, 0);
    assert_eq!(
        to_publisher(&acked),
        vec![RabbitMsg::TxCommitOk { channel: 1 }]
    );
}

fn publisher(c: &Cluster) -> &PublisherState {
    match c.state(PUBLISHER) {
        RabbitState::Publisher(p) => p,
        s => panic!("not the publisher: {s:?}"),
    }
}

/// The publisher connected, in tx mode, with four messages published: its first transaction.
fn publisher_with_a_full_transaction(sets: &[&str]) -> Cluster {
    let mut c = Cluster::of(&system(sets));
    c.start(PUBLISHER);
    let opened = c.deliver(PUBLISHER, 0, RabbitMsg::OpenOk);
    assert!(
        harness::sent_to::<RabbitMq>(&opened, 0).contains(&RabbitMsg::TxSelect { channel: 1 }),
        "{opened:?}"
    );
    c.random(PUBLISHER, RabbitRandom::Pace(10));
    for _ in 0..4 {
        c.fire(PUBLISHER, RabbitTimer::Send);
    }
    assert_eq!(publisher(&c).tx_open, vec![0, 1, 2, 3]);
    c
}

fn transactions(p: &PublisherState) -> Vec<(Vec<u32>, TxnOutcome)> {
    p.app
        .iter()
        .filter_map(|op| match op {
            Op::Transaction { msgs, outcome, .. } => {
                Some((msgs.iter().map(|m| m.seq).collect(), *outcome))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_publisher_commits_every_four_messages_and_counts_them_sent_on_commit_ok() {
    let mut c = publisher_with_a_full_transaction(&["publisher.tx=true"]);
    let ended = c.fire(PUBLISHER, RabbitTimer::Send);
    assert!(harness::sent_to::<RabbitMq>(&ended, 0).contains(&RabbitMsg::TxCommit { channel: 1 }));
    assert!(
        !publisher(&c)
            .app
            .iter()
            .any(|op| matches!(op, Op::Ack { .. })),
        "nothing acknowledged before tx.commit-ok"
    );
    c.deliver(PUBLISHER, 0, RabbitMsg::TxCommitOk { channel: 1 });
    let p = publisher(&c);
    assert_eq!(
        transactions(p),
        vec![(vec![0, 1, 2, 3], TxnOutcome::Committed)]
    );
    assert_eq!(
        p.app
            .iter()
            .filter(|op| matches!(op, Op::Ack { .. }))
            .count(),
        4
    );
}

#[test]
fn a_connection_lost_mid_commit_leaves_the_transaction_in_doubt() {
    // Without publisher.retry: in doubt, and given up.
    let mut c = publisher_with_a_full_transaction(&["publisher.tx=true"]);
    c.fire(PUBLISHER, RabbitTimer::Send);
    c.deliver(PUBLISHER, 0, RabbitMsg::Disconnected);
    let p = publisher(&c);
    assert_eq!(
        transactions(p),
        vec![(vec![0, 1, 2, 3], TxnOutcome::InDoubt)]
    );
    assert_eq!(
        p.app
            .iter()
            .filter(|op| matches!(op, Op::Fail { .. }))
            .count(),
        4
    );
    assert!(p.republish.is_empty());
    // With it: in doubt, and published again in the next channel's transaction.
    let mut c = publisher_with_a_full_transaction(&["publisher.tx=true", "publisher.retry=true"]);
    c.fire(PUBLISHER, RabbitTimer::Send);
    c.deliver(PUBLISHER, 0, RabbitMsg::Disconnected);
    assert!(!publisher(&c)
        .app
        .iter()
        .any(|op| matches!(op, Op::Fail { .. })));
    let reopened = c.deliver(PUBLISHER, 0, RabbitMsg::OpenOk);
    let sent = harness::sent_to::<RabbitMq>(&reopened, 0);
    assert_eq!(sent[0], RabbitMsg::TxSelect { channel: 2 });
    assert_eq!(
        sent.len(),
        5,
        "tx.select and the four publishes again: {sent:?}"
    );
    assert_eq!(publisher(&c).tx_open, vec![0, 1, 2, 3]);
}

#[test]
fn a_connection_lost_before_the_commit_aborts_the_transaction() {
    let mut c = publisher_with_a_full_transaction(&["publisher.tx=true"]);
    c.deliver(PUBLISHER, 0, RabbitMsg::Disconnected);
    assert_eq!(
        transactions(publisher(&c)),
        vec![(vec![0, 1, 2, 3], TxnOutcome::Aborted)]
    );
}

#[test]
fn every_third_fresh_transaction_is_rolled_back_and_given_up() {
    let mut c = publisher_with_a_full_transaction(&["publisher.tx=true"]);
    for (txn, first) in [(0u32, 0u32), (1, 4)] {
        if txn > 0 {
            for _ in 0..4 {
                c.fire(PUBLISHER, RabbitTimer::Send);
            }
        }
        c.fire(PUBLISHER, RabbitTimer::Send);
        assert_eq!(
            publisher(&c).committing.as_deref(),
            Some(&[first, first + 1, first + 2, first + 3][..])
        );
        c.deliver(PUBLISHER, 0, RabbitMsg::TxCommitOk { channel: 1 });
    }
    for _ in 0..4 {
        c.fire(PUBLISHER, RabbitTimer::Send);
    }
    let rolled = c.fire(PUBLISHER, RabbitTimer::Send);
    assert!(
        harness::sent_to::<RabbitMq>(&rolled, 0).contains(&RabbitMsg::TxRollback { channel: 1 }),
        "{rolled:?}"
    );
    let p = publisher(&c);
    assert_eq!(
        transactions(p).last(),
        Some(&(vec![8, 9, 10, 11], TxnOutcome::Aborted))
    );
    assert!(p.committing.is_none());
}

fn config(sets: &[&str]) -> Config {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Config::parse("rabbitmq", &RabbitMq::keys(), &sets).expect("each key valid")
}

#[test]
fn tx_and_confirm_mode_on_one_channel_are_refused() {
    let err = RabbitMq::validate(&config(&["publisher.tx=true", "publisher.confirms=true"]))
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("publisher.tx") && err.contains("publisher.confirms"),
        "{err}"
    );
    for sets in [
        &["publisher.tx=true"][..],
        &["publisher.tx=true", "publisher.confirms=false"],
        &["publisher.tx=true", "publisher.retry=true"],
    ] {
        RabbitMq::validate(&config(sets)).expect("accepted");
    }
    let s = system(&["publisher.tx=true"]).settings;
    assert!(
        s.tx && !s.confirms,
        "tx mode turns the default confirms off"
    );
    assert!(RabbitMq::validate(&config(&[
        "publisher.retry=true",
        "publisher.confirms=false"
    ]))
    .is_err());
}
