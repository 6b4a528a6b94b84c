//! Unit tests of the ActiveMQ model's mechanisms: the broker's KahaDB writes, dispatch and
//! acknowledgements, the consumer's acknowledge modes and redelivery, driven one message or
//! timer at a time. No simulator, no network: every delivery below is one the test chose.
//!
//! Node ids (producers=1, consumers=2): 0 is the broker, 1 the producer, 2 and 3 the consumers.

use mqcheck_brokers::activemq::{
    AckType, ActiveMq, AmqDisk, AmqMsg, AmqRandom, AmqState, AmqTimer, KahaDb, MessageGroupMap,
    Phase, Record, Settings, StoreState, GROUP_CACHE_SIZE,
};
use mqcheck_brokers::{Durable, Workload};
use mqcheck_invariants::{MsgId, Op, TxnOutcome};
use stateright::actor::{Command as Cmd, Id};

mod harness;

type Step = harness::Cmd<ActiveMq>;

const BROKER: usize = 0;
const PRODUCER: usize = 1;
const C0: usize = 2;
const C1: usize = 3;

fn system(sets: &[&str]) -> ActiveMq {
    harness::system(
        sets,
        Workload {
            messages: 3,
            producers: 1,
            consumers: 2,
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

fn sent(steps: &[Step]) -> Vec<(usize, AmqMsg)> {
    steps
        .iter()
        .filter_map(|c| match c {
            Cmd::Send(to, m) => Some((usize::from(*to), m.clone())),
            _ => None,
        })
        .filter(|(_, m)| !matches!(m, AmqMsg::KeepAlive { .. }))
        .collect()
}

fn saved_store(steps: &[Step]) -> Option<KahaDb> {
    steps.iter().rev().find_map(|c| match c {
        Cmd::Save(AmqDisk::Server(k)) => Some(k.clone()),
        _ => None,
    })
}

fn saved_ops(steps: &[Step]) -> Vec<Op> {
    steps
        .iter()
        .rev()
        .find_map(|c| match c {
            Cmd::Save(AmqDisk::Client(log)) => Some(log.iter().cloned().collect()),
            _ => None,
        })
        .unwrap_or_default()
}

fn connect() -> AmqMsg {
    AmqMsg::Connect {
        conn: 1,
        fault_tolerant: false,
    }
}

fn send(command: u32, seq: u32, response_required: bool) -> AmqMsg {
    persistent_send(1, command, seq, response_required, None)
}

/// A one-way send of message `seq` with `JMSXGroupID` `group`.
fn send_in_group(command: u32, seq: u32, group: u32) -> AmqMsg {
    AmqMsg::MessageSend {
        conn: 1,
        command,
        producer: 0,
        msg: msg(seq),
        persistent: true,
        response_required: false,
        group: Some(group),
        transaction: None,
    }
}

fn ack(kind: AckType, seqs: Vec<u64>) -> AmqMsg {
    AmqMsg::MessageAck {
        conn: 1,
        kind,
        seqs,
        response_required: false,
    }
}

type Actors = harness::Actors<ActiveMq>;

/// A broker with the producer connected and the given consumers subscribed, each on conn 1.
fn broker(sets: &[&str], consumers: &[usize]) -> Actors {
    let mut a = Actors::of(&system(sets));
    a.start(BROKER);
    a.deliver(BROKER, PRODUCER, connect());
    for c in consumers {
        a.deliver(BROKER, *c, connect());
        a.deliver(BROKER, *c, AmqMsg::ConsumerInfo { conn: 1 });
    }
    a
}

fn journal(a: &Actors) -> (Vec<Record>, usize) {
    match a.state(BROKER) {
        AmqState::Broker(b) => (b.store.journal.iter().cloned().collect(), b.store.fsynced),
        _ => unreachable!(),
    }
}

fn dispatched(out: &[(usize, AmqMsg)]) -> Vec<(usize, u64, u32)> {
    out.iter()
        .filter_map(|(to, m)| match m {
            AmqMsg::MessageDispatch {
                seq,
                redelivery_counter,
                ..
            } => Some((*to, *seq, *redelivery_counter)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_send_is_synchronous_only_when_something_asks_for_a_response() {
    assert!(settings(&[]).sync_send());
    assert!(!settings(&["deliveryMode=NON_PERSISTENT"]).sync_send());
    assert!(!settings(&["useAsyncSend=true"]).sync_send());
    assert!(settings(&["useAsyncSend=true", "alwaysSyncSend=true"]).sync_send());
    assert!(settings(&["deliveryMode=NON_PERSISTENT", "sendTimeout=500"]).sync_send());
}

#[test]
fn a_synchronous_send_is_fsynced_before_its_response_under_always() {
    let mut a = broker(&[], &[]);
    let out = sent(&a.deliver(BROKER, PRODUCER, send(1, 0, true)));
    assert!(out.is_empty(), "the response waits for the journal write");
    let steps = a.fire(BROKER, AmqTimer::Append);
    let store = saved_store(&steps).expect("the batch is written");
    assert_eq!(store.fsynced, store.journal.len(), "forced to disk");
    assert_eq!(
        sent(&steps),
        vec![(
            PRODUCER,
            AmqMsg::Response {
                conn: 1,
                command: 1
            }
        )]
    );
}

#[test]
fn a_one_way_send_is_written_but_not_fsynced_and_periodic_syncs_later() {
    let mut a = broker(&[], &[]);
    a.deliver(BROKER, PRODUCER, send(1, 0, false));
    a.fire(BROKER, AmqTimer::Append);
    assert_eq!(journal(&a).1, 0, "nothing required a response");

    let mut a = broker(&["journalDiskSyncStrategy=periodic"], &[]);
    a.deliver(BROKER, PRODUCER, send(1, 0, true));
    let steps = a.fire(BROKER, AmqTimer::Append);
    assert_eq!(sent(&steps).len(), 1, "the response follows the write");
    assert_eq!(journal(&a).1, 0, "periodic: not yet fsynced");
    a.fire(BROKER, AmqTimer::Fsync);
    assert_eq!(journal(&a).1, 1, "the checkpoint thread's fsync");
}

#[test]
fn consumer_acks_are_one_way_and_never_fsynced_so_a_power_loss_brings_messages_back() {
    let mut a = broker(&["concurrentStoreAndDispatchQueues=false"], &[C0]);
    a.deliver(BROKER, PRODUCER, send(1, 0, true));
    let out = sent(&a.fire(BROKER, AmqTimer::Append));
    assert_eq!(
        dispatched(&out),
        vec![(C0, 1, 0)],
        "dispatched once written"
    );
    a.deliver(BROKER, C0, ack(AckType::Standard, vec![1]));
    let steps = a.fire(BROKER, AmqTimer::Append);
    let store = saved_store(&steps).unwrap();
    assert_eq!(
        store.journal.iter().cloned().collect::<Vec<_>>(),
        vec![
            Record::Add {
                seq: 1,
                msg: msg(0),
                producer: 0,
                group: None,
            },
            Record::Remove { seq: 1 }
        ]
    );
    assert_eq!(
        store.fsynced, 1,
        "the remove is only in the operating system"
    );
    // A crash keeps the journal; a power loss only its fsynced part; replay rebuilds the queue.
    assert!(store.replay().0.is_empty());
    let after = store.after_power_loss();
    assert_eq!(
        after.replay().0.keys().copied().collect::<Vec<_>>(),
        vec![1]
    );
    let mut a = Actors::of(&system(&[]));
    a.restart(BROKER, Some(AmqDisk::Server(after)));
    a.deliver(BROKER, C0, connect());
    let out = sent(&a.deliver(BROKER, C0, AmqMsg::ConsumerInfo { conn: 1 }));
    // persistJMSRedelivered=false: the flag did not survive the restart.
    assert_eq!(dispatched(&out), vec![(C0, 1, 0)]);
}

#[test]
fn replay_rejects_a_duplicate_add_of_an_indexed_message_id() {
    // Two masters over one journal can each append the same send (the producer's failover
    // replay): KahaDB's index keeps the first, and accepts the id again once it was removed.
    let add = |seq, m| Record::Add {
        seq,
        msg: msg(m),
        producer: 0,
        group: None,
    };
    let mut store = KahaDb::default();
    store.write([add(1, 0), add(2, 1), add(3, 0)], true);
    let (queue, _, next) = store.replay();
    assert_eq!(queue.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(next, 4, "a rejected add's sequence number is still taken");
    // The second master acknowledged its copy: the remove goes by message id, to the kept one.
    store.write([Record::Remove { seq: 3 }], true);
    let (queue, _, _) = store.replay();
    assert_eq!(queue.keys().copied().collect::<Vec<_>>(), vec![2]);
    store.write([add(4, 0)], true);
    let (queue, _, _) = store.replay();
    assert_eq!(queue.keys().copied().collect::<Vec<_>>(), vec![2, 4]);
}

#[test]
fn an_ack_before_the_write_cancels_the_add_with_concurrent_store_and_dispatch() {
    let mut a = broker(&[], &[C0]);
    let out = sent(&a.deliver(BROKER, PRODUCER, send(1, 0, true)));
    assert_eq!(
        dispatched(&out),
        vec![(C0, 1, 0)],
        "dispatched before the write"
    );
    a.deliver(BROKER, C0, ack(AckType::Standard, vec![1]));
    let steps = a.fire(BROKER, AmqTimer::Append);
    assert!(journal(&a).0.is_empty(), "neither the add nor the remove");
    assert_eq!(
        sent(&steps),
        vec![(
            PRODUCER,
            AmqMsg::Response {
                conn: 1,
                command: 1
            }
        )]
    );
}

#[test]
fn messages_go_round_robin_within_the_prefetch_and_return_flagged_when_a_consumer_goes() {
    let mut a = broker(&["queuePrefetch=1"], &[C0, C1]);
    let mut out = Vec::new();
    for i in 0..3 {
        out.extend(sent(&a.deliver(BROKER, PRODUCER, send(i + 1, i, false))));
    }
    assert_eq!(
        dispatched(&out),
        vec![(C0, 1, 0), (C1, 2, 0)],
        "both are full"
    );
    let out = sent(&a.deliver(BROKER, C0, ack(AckType::Standard, vec![1])));
    assert_eq!(dispatched(&out), vec![(C0, 3, 0)]);
    // c1's connection is reset: its message returns with its redelivery counter raised and
    // waits for room; c0 acknowledges and gets it, flagged.
    a.deliver(BROKER, C1, AmqMsg::Disconnected);
    let out = sent(&a.deliver(BROKER, C0, ack(AckType::Individual, vec![3])));
    assert_eq!(dispatched(&out), vec![(C0, 2, 1)]);
}

#[test]
fn a_message_group_stays_with_its_consumer_until_the_consumer_goes() {
    let mut a = broker(&["queuePrefetch=2"], &[C0, C1]);
    let mut out = Vec::new();
    // Groups 0, 1, 0, 1: round robin assigns group 0 to c0 and group 1 to c1, and each keeps
    // its group although round robin alone would hand the third message to c0's turn.
    for (i, group) in [0, 1, 1, 0].into_iter().enumerate() {
        let i = i as u32;
        out.extend(sent(&a.deliver(
            BROKER,
            PRODUCER,
            send_in_group(i + 1, i, group),
        )));
    }
    assert_eq!(
        dispatched(&out),
        vec![(C0, 1, 0), (C1, 2, 0), (C1, 3, 0), (C0, 4, 0)]
    );
    // c1 is full: a fifth message of group 1 waits for it while a sixth, of group 0, goes on.
    out = sent(&a.deliver(BROKER, PRODUCER, send_in_group(5, 4, 1)));
    assert_eq!(dispatched(&out), vec![]);
    a.deliver(BROKER, C0, ack(AckType::Standard, vec![1]));
    out = sent(&a.deliver(BROKER, PRODUCER, send_in_group(6, 5, 0)));
    assert_eq!(
        dispatched(&out),
        vec![(C0, 6, 0)],
        "group 1's message is c1's"
    );
    // c1's connection goes: its messages return flagged, and group 1 is c0's once c0 has room.
    a.deliver(BROKER, C1, AmqMsg::Disconnected);
    out = sent(&a.deliver(BROKER, C0, ack(AckType::Standard, vec![4, 6])));
    assert_eq!(dispatched(&out), vec![(C0, 2, 1), (C0, 3, 1)]);
    match a.state(BROKER) {
        AmqState::Broker(b) => {
            assert_eq!(b.groups.owners, vec![(0, Id::from(C0)), (1, Id::from(C0))]);
        }
        _ => unreachable!(),
    }
}

#[test]
fn the_group_map_forgets_its_least_recently_used_group_past_its_cache_size() {
    let mut map = MessageGroupMap::default();
    for g in 0..GROUP_CACHE_SIZE as u32 {
        map.put(g, Id::from(C0));
    }
    assert_eq!(
        map.get(0),
        Some(Id::from(C0)),
        "group 0 is now the most recently used"
    );
    map.put(GROUP_CACHE_SIZE as u32, Id::from(C1));
    assert_eq!(map.owners.len(), GROUP_CACHE_SIZE);
    assert_eq!(map.get(1), None, "group 1 was the eldest");
    assert_eq!(map.get(0), Some(Id::from(C0)));
    map.remove_consumer(Id::from(C0));
    assert_eq!(map.owners, vec![(GROUP_CACHE_SIZE as u32, Id::from(C1))]);
}

#[test]
fn a_poison_ack_moves_a_persistent_message_to_the_dlq() {
    let mut a = broker(&[], &[C0]);
    a.deliver(BROKER, PRODUCER, send(1, 0, true));
    a.fire(BROKER, AmqTimer::Append);
    a.deliver(BROKER, C0, ack(AckType::Poison, vec![1]));
    a.fire(BROKER, AmqTimer::Append);
    let (records, _) = journal(&a);
    assert_eq!(records.last(), Some(&Record::DeadLetter { seq: 1 }));
    match a.state(BROKER) {
        AmqState::Broker(b) => {
            assert!(b.queue.is_empty());
            assert_eq!(b.dead_letters.len(), 1);
        }
        _ => unreachable!(),
    }
}

#[test]
fn the_inactivity_monitor_closes_a_connection_silent_for_a_whole_check_period() {
    let mut a = broker(&[], &[C0, C1]);
    a.deliver(BROKER, PRODUCER, send(1, 0, false));
    // C0's ConsumerInfo came in before the first check: it passes.
    let out = sent(&a.fire(BROKER, AmqTimer::ReadCheck(Id::from(C0))));
    assert!(!out.contains(&(C0, AmqMsg::Closed { conn: 1 })), "{out:?}");
    // Nothing since: the next check fails the transport and returns C0's messages.
    let out = sent(&a.fire(BROKER, AmqTimer::ReadCheck(Id::from(C0))));
    assert!(out.contains(&(C0, AmqMsg::Closed { conn: 1 })), "{out:?}");
    assert_eq!(dispatched(&out), vec![(C1, 1, 1)]);
}

#[test]
fn a_command_between_two_read_checks_keeps_the_connection() {
    // A process paused past a check period: the late check still sees the command that came
    // in before the pause (AbstractInactivityMonitor.readCheck is periodic, not a countdown).
    let mut a = broker(&[], &[C0]);
    a.fire(BROKER, AmqTimer::ReadCheck(Id::from(C0)));
    a.deliver(BROKER, C0, AmqMsg::KeepAlive { conn: 1 });
    let out = sent(&a.fire(BROKER, AmqTimer::ReadCheck(Id::from(C0))));
    assert!(!out.contains(&(C0, AmqMsg::Closed { conn: 1 })), "{out:?}");
    let out = sent(&a.fire(BROKER, AmqTimer::ReadCheck(Id::from(C0))));
    assert!(out.contains(&(C0, AmqMsg::Closed { conn: 1 })), "{out:?}");
}

/// A consumer with its connection open, having drawn a handling time of 5 ms.
fn consumer(sets: &[&str]) -> Actors {
    let mut a = Actors::of(&system(sets));
    a.start(C0);
    a.random(C0, AmqRandom::Processing(5));
    a.deliver(C0, BROKER, AmqMsg::Connected { conn: 1 });
    a
}

fn dispatch(seq: u64, m: u32, redelivery_counter: u32) -> AmqMsg {
    dispatch_on(1, seq, m, redelivery_counter)
}

fn dispatch_on(conn: u32, seq: u64, m: u32, redelivery_counter: u32) -> AmqMsg {
    AmqMsg::MessageDispatch {
        conn,
        seq,
        msg: msg(m),
        producer: 1,
        redelivery_counter,
    }
}

fn acks(out: &[(usize, AmqMsg)]) -> Vec<(AckType, Vec<u64>)> {
    out.iter()
        .filter_map(|(_, m)| match m {
            AmqMsg::MessageAck { kind, seqs, .. } => Some((*kind, seqs.clone())),
            _ => None,
        })
        .collect()
}

fn delivered(ops: &[Op]) -> Vec<(MsgId, Option<bool>)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Deliver {
                msg, redelivered, ..
            } => Some((*msg, *redelivered)),
            _ => None,
        })
        .collect()
}

#[test]
fn auto_acknowledge_acks_after_a_listener_and_before_receive_returns() {
    let mut a = consumer(&[]);
    let steps = a.deliver(C0, BROKER, dispatch(1, 0, 0));
    assert_eq!(delivered(&saved_ops(&steps)), vec![(msg(0), Some(false))]);
    assert!(acks(&sent(&steps)).is_empty(), "onMessage has not returned");
    let steps = a.fire(C0, AmqTimer::Process);
    assert_eq!(acks(&sent(&steps)), vec![(AckType::Standard, vec![1])]);

    let mut a = consumer(&["consumer.api=receive"]);
    let steps = a.deliver(C0, BROKER, dispatch(1, 0, 0));
    assert_eq!(acks(&sent(&steps)), vec![(AckType::Standard, vec![1])]);
    assert!(
        saved_ops(&steps).is_empty(),
        "the application's effect comes later"
    );
    let steps = a.fire(C0, AmqTimer::Process);
    assert_eq!(delivered(&saved_ops(&steps)), vec![(msg(0), Some(false))]);
}

#[test]
fn a_failing_listener_is_redelivered_after_the_delay_then_dead_lettered() {
    let mut a = consumer(&["consumer.fail=every-tenth", "maximumRedeliveries=1"]);
    // Message 3 fails: rolled back, a redelivered ack, a blocking redelivery after 1 s.
    a.deliver(C0, BROKER, dispatch(4, 3, 0));
    let out = sent(&a.fire(C0, AmqTimer::Process));
    assert_eq!(acks(&out), vec![(AckType::Redelivered, vec![4])]);
    let steps = a.deliver(C0, BROKER, dispatch(5, 4, 0));
    assert!(
        delivered(&saved_ops(&steps)).is_empty(),
        "blocked behind the redelivery"
    );
    a.fire(C0, AmqTimer::Redeliver(4));
    let steps = a.fire(C0, AmqTimer::Process);
    // The second failure passes maximumRedeliveries=1: a poison ack, and message 4 is next.
    assert_eq!(acks(&sent(&steps)), vec![(AckType::Poison, vec![4])]);
    let ops = saved_ops(&steps);
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::DeadLetter { reason, .. } if reason.contains("ActiveMQ.DLQ"))));
    assert_eq!(delivered(&ops), vec![(msg(4), Some(false))]);
}

#[test]
fn client_acknowledge_acks_the_failed_message_with_the_next_one() {
    let mut a = consumer(&[
        "acknowledgeMode=CLIENT_ACKNOWLEDGE",
        "consumer.fail=every-tenth",
    ]);
    a.deliver(C0, BROKER, dispatch(4, 3, 0));
    a.deliver(C0, BROKER, dispatch(5, 4, 0));
    let out = sent(&a.fire(C0, AmqTimer::Process));
    assert!(
        acks(&out).is_empty(),
        "the listener threw: no acknowledge()"
    );
    let steps = a.fire(C0, AmqTimer::Process);
    assert_eq!(acks(&sent(&steps)), vec![(AckType::Standard, vec![4, 5])]);
    assert!(saved_ops(&steps)
        .iter()
        .any(|op| matches!(op, Op::Discard { msg: m, .. } if *m == msg(3))));
}

#[test]
fn the_redelivery_policy_delays() {
    let p = settings(&[]).redelivery;
    assert_eq!(p.maximum, Some(6));
    assert!(!p.exceeded(6) && p.exceeded(7));
    let ms = |c| p.delay_for(c).as_millis();
    assert_eq!((ms(1), ms(2), ms(3)), (1000, 1000, 1000));
    let p = settings(&["useExponentialBackOff=true", "initialRedeliveryDelay=100"]).redelivery;
    let ms = |c| p.delay_for(c).as_millis();
    assert_eq!((ms(1), ms(2), ms(3)), (100, 500, 2500));
    assert!(!settings(&["maximumRedeliveries=-1"])
        .redelivery
        .exceeded(1000));
}

#[test]
fn a_failover_replay_of_a_stored_send_is_suppressed_by_the_producer_audit() {
    for fault_tolerant in [true, false] {
        let mut a = broker(&[], &[]);
        a.deliver(BROKER, PRODUCER, send(1, 0, true));
        a.fire(BROKER, AmqTimer::Append);
        // The connection was lost before the response; the transport reconnects and replays.
        a.deliver(
            BROKER,
            PRODUCER,
            AmqMsg::Connect {
                conn: 2,
                fault_tolerant,
            },
        );
        let replay = AmqMsg::MessageSend {
            conn: 2,
            command: 1,
            producer: 0,
            msg: msg(0),
            persistent: true,
            response_required: true,
            group: None,
            transaction: None,
        };
        let out = sent(&a.deliver(BROKER, PRODUCER, replay));
        let queued = match a.state(BROKER) {
            AmqState::Broker(b) => b.queue.len(),
            _ => unreachable!(),
        };
        if fault_tolerant {
            assert_eq!(
                out,
                vec![(
                    PRODUCER,
                    AmqMsg::Response {
                        conn: 2,
                        command: 1
                    }
                )]
            );
            assert_eq!(queued, 1, "stored once");
        } else {
            assert!(
                out.is_empty(),
                "a plain connection's send is not audited: stored again, the response waits for the write"
            );
            assert_eq!(
                queued, 1,
                "KahaDB's index rejects the add of a message id it holds: not dispatched twice"
            );
        }
    }
}

fn replay_on(conn: u32, command: u32, seq: u32) -> AmqMsg {
    persistent_send(conn, command, seq, true, None)
}

/// Producer 0's persistent send of message `seq` as command `command` on connection `conn`.
fn persistent_send(
    conn: u32,
    command: u32,
    seq: u32,
    response_required: bool,
    transaction: Option<u64>,
) -> AmqMsg {
    AmqMsg::MessageSend {
        conn,
        command,
        producer: 0,
        msg: msg(seq),
        persistent: true,
        response_required,
        group: None,
        transaction,
    }
}

/// Messages `seqs` sent synchronously, dispatched to C0 before their writes
/// (`concurrentStoreAndDispatchQueues`) and acknowledged at once, which cancels their adds: the
/// store never holds them, so the producer audit never learns them. The transport fails before
/// the responses; the failover transport reconnects (conn 2) and replays message `seqs[0]`. What
/// the broker dispatches then, and what it journals.
fn consumed_then_replayed(
    sets: &[&str],
    seqs: &[u32],
) -> (Actors, Vec<(usize, u64, u32)>, Vec<Record>) {
    let mut a = broker(sets, &[C0]);
    for (i, m) in seqs.iter().enumerate() {
        let out = sent(&a.deliver(BROKER, PRODUCER, send(i as u32 + 1, *m, true)));
        assert_eq!(dispatched(&out).len(), 1, "dispatched before the write");
        a.deliver(BROKER, C0, ack(AckType::Standard, vec![i as u64 + 1]));
    }
    let ft = AmqMsg::Connect {
        conn: 2,
        fault_tolerant: true,
    };
    a.deliver(BROKER, PRODUCER, ft);
    a.fire(BROKER, AmqTimer::Append);
    assert!(
        journal(&a).0.is_empty(),
        "every add was cancelled by its ack"
    );
    let mut out = sent(&a.deliver(BROKER, PRODUCER, replay_on(2, 1, seqs[0])));
    out.extend(sent(&a.fire(BROKER, AmqTimer::Append)));
    assert!(
        out.contains(&(
            PRODUCER,
            AmqMsg::Response {
                conn: 2,
                command: 1
            }
        )),
        "the replayed send is answered: {out:?}"
    );
    let records = journal(&a).0;
    (a, dispatched(&out), records)
}

#[test]
fn the_cursor_audit_poison_acks_a_consumed_message_sent_again() {
    let seq = 1 + 1;
    let add = Record::Add {
        seq,
        msg: msg(0),
        producer: 0,
        group: None,
    };
    // enableAudit=true (default): "cursor got duplicate send", stored after all, so
    // duplicateFromStore poison-acks it: removed from the store, never dispatched.
    let (a, out, records) = consumed_then_replayed(&[], &[0]);
    assert!(out.is_empty(), "not dispatched again: {out:?}");
    assert_eq!(records, vec![add.clone(), Record::Remove { seq }]);
    assert!(queued(&a).is_empty());
    assert!(records_replay_empty(&records));
    // sendDuplicateFromStoreToDLQ=true: to ActiveMQ.DLQ as well.
    let (a, out, records) = consumed_then_replayed(&["sendDuplicateFromStoreToDLQ=true"], &[0]);
    assert!(out.is_empty());
    assert_eq!(records, vec![add.clone(), Record::DeadLetter { seq }]);
    match a.state(BROKER) {
        AmqState::Broker(b) => assert_eq!(
            b.dead_letters.iter().copied().collect::<Vec<_>>(),
            vec![seq]
        ),
        _ => unreachable!(),
    }
    // enableAudit=false: the consumer is given message 0 a second time.
    let (a, out, records) = consumed_then_replayed(&["enableAudit=false"], &[0]);
    assert_eq!(out, vec![(C0, seq, 0)], "dispatched twice");
    assert_eq!(records, vec![add]);
    assert_eq!(queued(&a), vec![msg(0)]);
}

fn records_replay_empty(records: &[Record]) -> bool {
    let mut store = KahaDb::default();
    store.write(records.iter().cloned(), true);
    store.replay().0.is_empty()
}

#[test]
fn a_duplicate_past_the_cursor_audit_window_is_dispatched_again() {
    // maxAuditDepth=1: (1 + 1) / 64 + 1 = one bin of 64 numbers; message 64 slides it past 0.
    let (_, out, _) = consumed_then_replayed(&["maxAuditDepth=1"], &[0, 64]);
    assert_eq!(out, vec![(C0, 3, 0)], "message 0 is below the window");
    // Within the window (the default 2048, or 1 before message 64) it is caught.
    let (_, out, _) = consumed_then_replayed(&[], &[0, 64]);
    assert!(out.is_empty());
    let (_, out, _) = consumed_then_replayed(&["maxAuditDepth=1"], &[0, 63]);
    assert!(out.is_empty(), "63 is still in the first bin");
}

#[test]
fn recovery_records_the_recovered_messages_in_the_cursor_audit() {
    // A message recovered from the journal, consumed, and sent again on a plain connection
    // (not audited by the producer exchange): the restarted broker's cursor paged it in, so its
    // audit knows it.
    let mut store = KahaDb::default();
    let add = Record::Add {
        seq: 1,
        msg: msg(0),
        producer: 0,
        group: None,
    };
    store.write([add], true);
    for (sets, again) in [(&[][..], false), (&["enableAudit=false"][..], true)] {
        let mut a = Actors::of(&system(sets));
        a.restart(BROKER, Some(AmqDisk::Server(store.clone())));
        a.deliver(BROKER, C0, connect());
        let out = sent(&a.deliver(BROKER, C0, AmqMsg::ConsumerInfo { conn: 1 }));
        assert_eq!(dispatched(&out), vec![(C0, 1, 0)]);
        a.deliver(BROKER, C0, ack(AckType::Standard, vec![1]));
        a.deliver(BROKER, PRODUCER, connect());
        let mut out = sent(&a.deliver(BROKER, PRODUCER, send(1, 0, true)));
        out.extend(sent(&a.fire(BROKER, AmqTimer::Append)));
        assert_eq!(
            dispatched(&out).len(),
            usize::from(again),
            "{sets:?}: {out:?}"
        );
    }
}

/// Message 0 in the listener, message 1 only prefetched, when the transport goes; the listener
/// returns too late to ack, and a second connection opens: what the broker redelivers on it, and
/// what the consumer makes of it.
fn redelivered_after_a_reconnect(sets: &[&str]) -> (Vec<(AckType, Vec<u64>)>, Vec<Op>) {
    let mut a = consumer(sets);
    a.deliver(C0, BROKER, dispatch(1, 0, 0));
    a.deliver(C0, BROKER, dispatch(2, 1, 0));
    a.deliver(C0, BROKER, AmqMsg::Disconnected);
    let late = sent(&a.fire(C0, AmqTimer::Process));
    assert!(acks(&late).is_empty(), "no ack on a lost transport");
    a.fire(C0, AmqTimer::Connect);
    a.deliver(C0, BROKER, AmqMsg::Connected { conn: 2 });
    let mut steps = a.deliver(C0, BROKER, dispatch_on(2, 1, 0, 1));
    steps.extend(a.deliver(C0, BROKER, dispatch_on(2, 2, 1, 1)));
    (acks(&sent(&steps)), saved_ops(&steps))
}

#[test]
fn check_for_duplicates_poisons_what_the_same_connection_was_dispatched_before() {
    // failover: the connection's audit remembers message 0, which the application had; message
    // 1, only prefetched, was forgotten at the interruption and is delivered.
    let (acks, ops) = redelivered_after_a_reconnect(&["transport=failover"]);
    assert_eq!(acks, vec![(AckType::Poison, vec![1])]);
    assert!(ops
        .iter()
        .any(|op| matches!(op, Op::DeadLetter { msg: m, reason }
        if *m == msg(0) && reason.contains("suppressing duplicate delivery on connection"))));
    let redelivered = |ops: &[Op], m: u32| delivered(ops).contains(&(msg(m), Some(true)));
    assert!(!redelivered(&ops, 0) && redelivered(&ops, 1));
    // Without the check, or with a tcp:// client's new connection and its new audit, message 0
    // is delivered again.
    for sets in [
        &["transport=failover", "checkForDuplicates=false"][..],
        &["transport=tcp"][..],
    ] {
        let (acks, ops) = redelivered_after_a_reconnect(sets);
        assert!(
            acks.iter().all(|(kind, _)| *kind != AckType::Poison),
            "{sets:?}"
        );
        assert!(redelivered(&ops, 0), "{sets:?}");
    }
    // CLIENT_ACKNOWLEDGE forgets what the session delivered as well (clearDeliveredList).
    let (acks, ops) = redelivered_after_a_reconnect(&[
        "transport=failover",
        "acknowledgeMode=CLIENT_ACKNOWLEDGE",
    ]);
    assert!(acks.is_empty() && redelivered(&ops, 0));
}

/// A one-way send of message `seq` in local transaction `txn` on connection `conn`.
fn send_in_transaction(conn: u32, command: u32, seq: u32, txn: u64) -> AmqMsg {
    persistent_send(conn, command, seq, false, Some(txn))
}

fn queued(a: &Actors) -> Vec<MsgId> {
    match a.state(BROKER) {
        AmqState::Broker(b) => b.queue.values().map(|e| e.msg).collect(),
        _ => unreachable!(),
    }
}

#[test]
fn transacted_sends_are_one_way_unless_sendtimeout_or_alwayssyncsend() {
    assert!(!settings(&["producer.transacted=true"]).sync_send());
    assert!(settings(&["producer.transacted=true", "sendTimeout=500"]).sync_send());
    assert!(settings(&["producer.transacted=true", "alwaysSyncSend=true"]).sync_send());
}

#[test]
fn a_commit_makes_the_whole_transaction_visible_at_once_once_stored() {
    let mut a = broker(&[], &[C0]);
    let mut out = sent(&a.deliver(BROKER, PRODUCER, send_in_transaction(1, 1, 0, 0)));
    out.extend(sent(&a.deliver(
        BROKER,
        PRODUCER,
        send_in_transaction(1, 2, 1, 0),
    )));
    assert!(out.is_empty(), "held until the commit: {out:?}");
    assert!(queued(&a).is_empty());
    let commit = AmqMsg::Commit {
        conn: 1,
        command: 3,
        txn: 0,
    };
    let out = sent(&a.deliver(BROKER, PRODUCER, commit));
    assert!(
        out.is_empty(),
        "the commit waits for its journal write: {out:?}"
    );
    assert!(
        queued(&a).is_empty(),
        "invisible until the commit is stored"
    );
    let out = sent(&a.fire(BROKER, AmqTimer::Append));
    assert_eq!(dispatched(&out), vec![(C0, 1, 0), (C0, 2, 0)]);
    assert!(out.contains(&(
        PRODUCER,
        AmqMsg::Response {
            conn: 1,
            command: 3
        }
    )));
    let (records, fsynced) = journal(&a);
    assert_eq!(records.len(), 2, "both adds: {records:?}");
    assert_eq!(
        fsynced, 2,
        "the commit requires a response: fsynced under always"
    );

    // Without a transaction the same one-way send is dispatched while its add is pending.
    let mut a = broker(&[], &[C0]);
    let out = sent(&a.deliver(BROKER, PRODUCER, send(1, 0, false)));
    assert_eq!(dispatched(&out), vec![(C0, 1, 0)]);
}

#[test]
fn the_end_of_the_connection_rolls_its_open_transaction_back() {
    let mut a = broker(&[], &[C0]);
    a.deliver(BROKER, PRODUCER, send_in_transaction(1, 1, 0, 0));
    a.deliver(BROKER, PRODUCER, AmqMsg::Disconnected);
    a.deliver(
        BROKER,
        PRODUCER,
        AmqMsg::Connect {
            conn: 2,
            fault_tolerant: true,
        },
    );
    let commit = AmqMsg::Commit {
        conn: 2,
        command: 2,
        txn: 0,
    };
    let out = sent(&a.deliver(BROKER, PRODUCER, commit));
    assert!(dispatched(&out).is_empty());
    a.fire(BROKER, AmqTimer::Append);
    assert!(
        queued(&a).is_empty(),
        "the held send went with its connection"
    );

    // The same commit on the connection that is still open commits it.
    let mut a = broker(&[], &[C0]);
    a.deliver(BROKER, PRODUCER, send_in_transaction(1, 1, 0, 0));
    let commit = AmqMsg::Commit {
        conn: 1,
        command: 2,
        txn: 0,
    };
    a.deliver(BROKER, PRODUCER, commit);
    a.fire(BROKER, AmqTimer::Append);
    assert_eq!(queued(&a), vec![msg(0)]);
}

/// A transacted producer (3 messages, one transaction) that has sent everything and is blocked
/// in `commit()` on connection 1, with its steps so far.
fn committing_producer(sets: &[&str]) -> (Actors, Vec<(usize, AmqMsg)>) {
    let mut sets = sets.to_vec();
    sets.push("producer.transacted=true");
    let mut a = Actors::of(&system(&sets));
    a.start(PRODUCER);
    a.random(PRODUCER, AmqRandom::Pace(10));
    a.deliver(PRODUCER, BROKER, AmqMsg::Connected { conn: 1 });
    let mut out = Vec::new();
    for _ in 0..4 {
        out.extend(sent(&a.fire(PRODUCER, AmqTimer::Send)));
    }
    (a, out)
}

fn transactions(ops: &[Op]) -> Vec<(Vec<MsgId>, TxnOutcome)> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Transaction { msgs, outcome, .. } => Some((msgs.clone(), *outcome)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_transacted_producer_learns_its_messages_at_the_commit() {
    let (mut a, out) = committing_producer(&[]);
    let commands: Vec<&AmqMsg> = out.iter().map(|(_, m)| m).collect();
    assert!(
        matches!(
            commands[..],
            [
                AmqMsg::MessageSend {
                    transaction: Some(0),
                    response_required: false,
                    ..
                },
                AmqMsg::MessageSend {
                    transaction: Some(0),
                    ..
                },
                AmqMsg::MessageSend {
                    transaction: Some(0),
                    ..
                },
                AmqMsg::Commit {
                    txn: 0,
                    command: 4,
                    ..
                },
            ]
        ),
        "{commands:?}"
    );
    let before = saved_ops(&a.fire(PRODUCER, AmqTimer::Send));
    assert!(
        !before.iter().any(|op| matches!(op, Op::Ack { .. })),
        "nothing acknowledged yet"
    );
    let steps = a.deliver(
        PRODUCER,
        BROKER,
        AmqMsg::Response {
            conn: 1,
            command: 4,
        },
    );
    let ops = saved_ops(&steps);
    assert_eq!(
        transactions(&ops),
        vec![(vec![msg(0), msg(1), msg(2)], TxnOutcome::Committed)]
    );
    assert_eq!(
        ops.iter().filter(|op| matches!(op, Op::Ack { .. })).count(),
        3
    );
}

#[test]
fn a_commit_in_flight_at_a_failover_is_told_rolled_back_and_over_tcp_is_in_doubt() {
    let (mut a, _) = committing_producer(&["transport=failover"]);
    let steps = a.deliver(PRODUCER, BROKER, AmqMsg::Disconnected);
    assert!(
        transactions(&saved_ops(&steps)).is_empty(),
        "failover fails nothing yet"
    );
    a.fire(PRODUCER, AmqTimer::Connect);
    let steps = a.deliver(PRODUCER, BROKER, AmqMsg::Connected { conn: 2 });
    let ops = saved_ops(&steps);
    assert_eq!(
        transactions(&ops),
        vec![(vec![msg(0), msg(1), msg(2)], TxnOutcome::Aborted)]
    );
    assert!(
        ops.iter().any(|op| matches!(op, Op::Fail { reason, .. } if reason.contains("TransactionRolledBackException"))),
        "{ops:?}"
    );
    assert!(
        !sent(&steps)
            .iter()
            .any(|(_, m)| matches!(m, AmqMsg::Commit { .. })),
        "the commit is not replayed"
    );

    let (mut a, _) = committing_producer(&[]);
    let ops = saved_ops(&a.deliver(PRODUCER, BROKER, AmqMsg::Disconnected));
    assert_eq!(
        transactions(&ops),
        vec![(vec![msg(0), msg(1), msg(2)], TxnOutcome::InDoubt)]
    );
}

#[test]
fn failover_replays_an_open_transaction_and_tcp_abandons_it() {
    for failover in [true, false] {
        let mut sets = vec!["producer.transacted=true"];
        if failover {
            sets.push("transport=failover");
        }
        let mut a = Actors::of(&system(&sets));
        a.start(PRODUCER);
        a.random(PRODUCER, AmqRandom::Pace(10));
        a.deliver(PRODUCER, BROKER, AmqMsg::Connected { conn: 1 });
        a.fire(PRODUCER, AmqTimer::Send);
        let lost = saved_ops(&a.deliver(PRODUCER, BROKER, AmqMsg::Disconnected));
        a.fire(PRODUCER, AmqTimer::Connect);
        let out = sent(&a.deliver(PRODUCER, BROKER, AmqMsg::Connected { conn: 2 }));
        let replayed = out
            .iter()
            .any(|(_, m)| *m == send_in_transaction(2, 1, 0, 0));
        assert_eq!(replayed, failover, "{out:?}");
        let aborted = transactions(&lost);
        if failover {
            assert!(aborted.is_empty());
        } else {
            assert_eq!(aborted, vec![(vec![msg(0)], TxnOutcome::Aborted)]);
        }
    }
}

#[test]
fn a_send_that_times_out_in_a_transaction_rolls_it_back() {
    let mut a = Actors::of(&system(&["producer.transacted=true", "sendTimeout=500"]));
    a.start(PRODUCER);
    a.random(PRODUCER, AmqRandom::Pace(10));
    a.deliver(PRODUCER, BROKER, AmqMsg::Connected { conn: 1 });
    let out = sent(&a.fire(PRODUCER, AmqTimer::Send));
    assert!(
        matches!(
            out[..],
            [(
                BROKER,
                AmqMsg::MessageSend {
                    response_required: true,
                    transaction: Some(0),
                    ..
                }
            )]
        ),
        "{out:?}"
    );
    let steps = a.fire(PRODUCER, AmqTimer::SendTimeout);
    assert_eq!(
        sent(&steps),
        vec![(BROKER, AmqMsg::Rollback { conn: 1, txn: 0 })]
    );
    assert_eq!(
        transactions(&saved_ops(&steps)),
        vec![(vec![msg(0)], TxnOutcome::Aborted)]
    );

    // The broker forgets the rolled-back send; the next transaction commits alone.
    let mut b = broker(&[], &[C0]);
    b.deliver(BROKER, PRODUCER, send_in_transaction(1, 1, 0, 0));
    b.deliver(BROKER, PRODUCER, AmqMsg::Rollback { conn: 1, txn: 0 });
    b.deliver(BROKER, PRODUCER, send_in_transaction(1, 2, 1, 1));
    let commit = AmqMsg::Commit {
        conn: 1,
        command: 3,
        txn: 1,
    };
    b.deliver(BROKER, PRODUCER, commit);
    b.fire(BROKER, AmqTimer::Append);
    assert_eq!(queued(&b), vec![msg(1)]);
}

// Shared-store master/slave (`failover=true`). Node ids (producers=1, consumers=2): 0 is amq1,
// 1 the producer, 2 and 3 the consumers, 4 amq2, 5 the shared store.

const AMQ2: usize = 4;
const STORE: usize = 5;

type Pair = harness::Actors<ActiveMq>;

fn pair(sets: &[&str]) -> Pair {
    let mut sets = sets.to_vec();
    sets.extend(["failover=true", "transport=failover"]);
    let mut a = harness::Actors::of(&system(&sets));
    a.start(STORE);
    a
}

/// Delivers to the store what `steps` sent it, and back to `broker` what the store answered,
/// until nothing more goes between them; returns what the broker sent to others.
fn exchange(a: &mut Pair, broker: usize, steps: Vec<Step>) -> Vec<(usize, AmqMsg)> {
    let mut others = Vec::new();
    let mut to_store: Vec<AmqMsg> = Vec::new();
    for (dst, m) in sent(&steps) {
        if dst == STORE {
            to_store.push(m);
        } else {
            others.push((dst, m));
        }
    }
    while !to_store.is_empty() {
        let mut answers = Vec::new();
        for m in std::mem::take(&mut to_store) {
            answers.extend(sent(&a.deliver(STORE, broker, m)));
        }
        for (_, m) in answers {
            for (dst, m) in sent(&a.deliver(broker, STORE, m)) {
                if dst == STORE {
                    to_store.push(m);
                } else {
                    others.push((dst, m));
                }
            }
        }
    }
    others
}

fn phase(a: &Pair, broker: usize) -> Phase {
    match a.state(broker) {
        AmqState::Broker(b) => b.ha.as_ref().expect("a broker of a pair").phase,
        _ => panic!("not a broker"),
    }
}

fn store(a: &Pair) -> &StoreState {
    match a.state(STORE) {
        AmqState::Store(s) => s,
        _ => panic!("not the store"),
    }
}

/// Boots `broker` (its start, then the locker after its startup) and lets it talk to the store.
fn boot(a: &mut Pair, broker: usize) {
    a.start(broker);
    let steps = a.fire(broker, AmqTimer::Lock);
    exchange(a, broker, steps);
}

/// `n` ticks of a node's clock.
fn tick(a: &mut Pair, node: usize, n: usize) {
    for _ in 0..n {
        a.fire(node, AmqTimer::Tick);
    }
}

#[test]
fn the_shared_file_lock_makes_one_master_and_the_slave_waits_until_the_process_dies() {
    let mut a = pair(&[]);
    boot(&mut a, BROKER);
    assert_eq!(phase(&a, BROKER), Phase::Master);
    // The master accepts connections; the slave refuses them.
    let opened = a.deliver(
        BROKER,
        PRODUCER,
        AmqMsg::Connect {
            conn: 1,
            fault_tolerant: true,
        },
    );
    assert!(sent(&opened).contains(&(PRODUCER, AmqMsg::Connected { conn: 1 })));
    boot(&mut a, AMQ2);
    assert_eq!(phase(&a, AMQ2), Phase::Slave);
    let refused = a.deliver(
        AMQ2,
        PRODUCER,
        AmqMsg::Connect {
            conn: 2,
            fault_tolerant: true,
        },
    );
    assert_eq!(sent(&refused), vec![(PRODUCER, AmqMsg::Closed { conn: 2 })]);
    // However long the master is paused, the lock stays its own.
    for _ in 0..5 {
        let steps = a.fire(AMQ2, AmqTimer::Lock);
        exchange(&mut a, AMQ2, steps);
        assert_eq!(phase(&a, AMQ2), Phase::Slave);
    }
    // A one-way send's add is written, not flushed: the slave would not read it yet.
    let steps = a.deliver(BROKER, PRODUCER, send(1, 0, false));
    assert!(!steps.is_empty());
    let steps = a.fire(BROKER, AmqTimer::Append);
    exchange(&mut a, BROKER, steps);
    assert_eq!(store(&a).journal.journal.len(), 0);
    assert_eq!(store(&a).unflushed.values().map(Vec::len).sum::<usize>(), 1);
    // The master's process dies: its kernel flushes its files, then drops its lock.
    a.deliver(STORE, BROKER, AmqMsg::Disconnected);
    assert_eq!(store(&a).journal.journal.len(), 1);
    assert_eq!(store(&a).lock, None);
    let steps = a.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut a, AMQ2, steps);
    assert_eq!(phase(&a, AMQ2), Phase::Master);
    match a.state(AMQ2) {
        AmqState::Broker(b) => assert_eq!(b.queue.len(), 1, "recovered from the shared journal"),
        _ => unreachable!(),
    }
}

#[test]
fn a_power_loss_loses_the_machines_unflushed_writes_and_its_reboot_frees_the_lock() {
    let mut a = pair(&[]);
    boot(&mut a, BROKER);
    boot(&mut a, AMQ2);
    a.deliver(
        BROKER,
        PRODUCER,
        AmqMsg::Connect {
            conn: 1,
            fault_tolerant: true,
        },
    );
    let steps = a.deliver(BROKER, PRODUCER, send(1, 0, false));
    assert!(!steps.is_empty());
    let steps = a.fire(BROKER, AmqTimer::Append);
    exchange(&mut a, BROKER, steps);
    assert_eq!(store(&a).unflushed.values().map(Vec::len).sum::<usize>(), 1);
    // Power off: nothing reaches the store; the lock stays held while the machine is down.
    let steps = a.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut a, AMQ2, steps);
    assert_eq!(phase(&a, AMQ2), Phase::Slave);
    // The machine reboots: its new client frees the old one's lock, its writes are gone.
    boot(&mut a, BROKER);
    assert_eq!(phase(&a, BROKER), Phase::Master, "it asked first");
    assert_eq!(store(&a).journal.journal.len(), 0);
    assert!(store(&a).unflushed.values().all(Vec::is_empty));
}

/// Boots both brokers under a lease renewed every 5 s and lasting 10 s; amq1 is the master.
fn lease_pair() -> Pair {
    let mut a = pair(&["locker=lease", "lockKeepAlivePeriod=5000"]);
    boot(&mut a, BROKER);
    assert_eq!(phase(&a, BROKER), Phase::Master);
    boot(&mut a, AMQ2);
    assert_eq!(
        phase(&a, AMQ2),
        Phase::Slave,
        "the lease is held until 10 s"
    );
    a
}

/// The master's keep-alive finds the lease taken: it stops, closing its connections, and
/// starts again as a slave.
fn keep_alive_fails(a: &mut Pair) {
    let opened = a.deliver(
        BROKER,
        PRODUCER,
        AmqMsg::Connect {
            conn: 1,
            fault_tolerant: true,
        },
    );
    assert!(!opened.is_empty());
    let steps = a.fire(BROKER, AmqTimer::Lock);
    let others = exchange(a, BROKER, steps);
    assert!(
        others.contains(&(PRODUCER, AmqMsg::Closed { conn: 1 })),
        "{others:?}"
    );
    assert_eq!(phase(a, BROKER), Phase::Slave);
}

#[test]
fn a_paused_lease_master_and_its_slave_are_both_masters() {
    let mut a = lease_pair();
    // amq1 is paused: none of its timers fire. The slave's clock passes the lease's TIME.
    tick(&mut a, AMQ2, 101);
    let steps = a.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut a, AMQ2, steps);
    assert_eq!(phase(&a, AMQ2), Phase::Master);
    assert_eq!(phase(&a, BROKER), Phase::Master, "two masters");
    // amq1 resumes: its next keep-alive fails.
    keep_alive_fails(&mut a);
    // A shared-file lock is kept however long the master is paused.
    let mut f = pair(&[]);
    boot(&mut f, BROKER);
    boot(&mut f, AMQ2);
    tick(&mut f, AMQ2, 101);
    let steps = f.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut f, AMQ2, steps);
    assert_eq!(phase(&f, AMQ2), Phase::Slave);
}

#[test]
fn a_fast_clock_takes_the_lease_from_a_master_that_renews_it_on_time() {
    let mut a = lease_pair();
    // amq1 renews every 5 s of its clock: at 5 s it writes TIME = 15 s.
    tick(&mut a, BROKER, 50);
    let steps = a.fire(BROKER, AmqTimer::Lock);
    exchange(&mut a, BROKER, steps);
    assert_eq!(phase(&a, BROKER), Phase::Master);
    assert_eq!(store(&a).lease.map(|(_, t)| t), Some(15_000));
    // Meanwhile amq2's clock ran fast: 16 s on its clock, past TIME.
    tick(&mut a, AMQ2, 160);
    let steps = a.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut a, AMQ2, steps);
    assert_eq!(phase(&a, AMQ2), Phase::Master);
    assert_eq!(phase(&a, BROKER), Phase::Master, "two masters");
    keep_alive_fails(&mut a);
    // At the right time the slave's attempt fails.
    let mut b = lease_pair();
    tick(&mut b, BROKER, 50);
    let steps = b.fire(BROKER, AmqTimer::Lock);
    exchange(&mut b, BROKER, steps);
    tick(&mut b, AMQ2, 100);
    let steps = b.fire(AMQ2, AmqTimer::Lock);
    exchange(&mut b, AMQ2, steps);
    assert_eq!(phase(&b, AMQ2), Phase::Slave);
}
