//! Unit tests of the RocketMQ model's mechanisms, driving the nodes directly: one message or
//! timer at a time, asserting on the commands each step emits. No simulator, no network.
//!
//! With the defaults (two broker groups of a master and a slave, one producer, one consumer)
//! the ids are: `ns` 0, `a0` 1, `a1` 2, `b0` 3, `b1` 4, `p0` 5, `c0` 6.

use mqcheck_brokers::rocketmq::protocol::{
    LocalTransactionState, Message, PullStatus, SendStatus, Tran,
};
use mqcheck_brokers::rocketmq::store::{
    consistent_point, Boundary, CommitLog, ConsumeQueues, StoreDisk,
};
use mqcheck_brokers::rocketmq::{
    allocate, BrokerState, Mq, ReplicaInfo, RocketDisk, RocketFiles, RocketMq, RocketMsg,
    RocketState, RocketTimer,
};
use mqcheck_brokers::{Disk, Durable, Workload};
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::{Command, Id};

mod harness;

type Cmd = harness::Cmd<RocketMq>;
type Nodes = harness::Actors<RocketMq>;

const NS: usize = 0;
const A0: usize = 1;
const A1: usize = 2;
const B0: usize = 3;
const P0: usize = 5;
const C0: usize = 6;

fn nodes(sets: &[&str]) -> Nodes {
    Nodes::of(&harness::system(sets, Workload::new(4, 1, 1)))
}

fn sent(cmds: &[Cmd]) -> Vec<(usize, RocketMsg)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Send(dst, m) => Some((usize::from(*dst), m.clone())),
            _ => None,
        })
        .collect()
}

fn saved(cmds: &[Cmd]) -> Option<RocketDisk> {
    cmds.iter().rev().find_map(|c| match c {
        Command::Save(d) => Some(d.clone()),
        _ => None,
    })
}

fn message(seq: u32, queue: u32) -> Message {
    Message {
        msg: MsgId { producer: 0, seq },
        queue,
        key: None,
        reconsume: 0,
        tran: Tran::Plain,
        store_ms: 0,
    }
}

fn send(request: u64, seq: u32) -> RocketMsg {
    RocketMsg::SendMessage {
        request,
        message: message(seq, 0),
    }
}

fn result(cmds: &[Cmd]) -> Option<SendStatus> {
    sent(cmds).into_iter().find_map(|(_, m)| match m {
        RocketMsg::SendResult { status, .. } => Some(status),
        _ => None,
    })
}

fn pull(request: u64, offset: u64) -> RocketMsg {
    RocketMsg::Pull {
        request,
        queue: 0,
        offset,
        commit: None,
    }
}

fn pulled(cmds: &[Cmd]) -> Option<PullStatus> {
    sent(cmds).into_iter().find_map(|(_, m)| match m {
        RocketMsg::PullResult { status, .. } => Some(status),
        _ => None,
    })
}

#[test]
fn the_nameserver_routes_live_brokers_and_drops_a_closed_one_at_once() {
    let mut n = nodes(&[]);
    n.start(NS);
    n.deliver(
        NS,
        A0,
        RocketMsg::RegisterBroker {
            group: 0,
            broker_id: 0,
        },
    );
    n.deliver(
        NS,
        A1,
        RocketMsg::RegisterBroker {
            group: 0,
            broker_id: 1,
        },
    );
    let route = |n: &mut Nodes| match sent(&n.deliver(NS, P0, RocketMsg::GetRouteInfo)).pop() {
        Some((_, RocketMsg::RouteInfo(r))) => r,
        other => panic!("{other:?}"),
    };
    let r = route(&mut n);
    assert_eq!(r[0].master, Some(Id::from(A0)));
    assert_eq!(r[0].slaves, vec![Id::from(A1)]);
    assert_eq!(r[1].master, None);
    n.deliver(NS, A0, RocketMsg::Disconnected);
    assert_eq!(route(&mut n)[0].master, None);
    // 120 s of silence removes a broker too.
    n.fire(NS, RocketTimer::BrokerExpired(Id::from(A1)));
    assert!(route(&mut n)[0].slaves.is_empty());
}

#[test]
fn async_flush_answers_at_once_and_flushes_four_pages_or_every_ten_seconds() {
    let mut n = nodes(&[]);
    n.start(A0);
    let cmds = n.deliver(A0, P0, send(1, 0));
    assert_eq!(result(&cmds), Some(SendStatus::SendOk));
    // Dispatched at once, flushed or not: a consumer reads it.
    assert!(
        matches!(pulled(&n.deliver(A0, C0, pull(1, 0))), Some(PullStatus::Found(m)) if m.len() == 1)
    );
    // One dirty page is not enough for the 500 ms flush...
    let cmds = n.fire(A0, RocketTimer::Flush);
    assert!(saved(&cmds).is_none());
    let disk = match n.state(A0) {
        RocketState::Broker(b) => Disk::Server(RocketFiles::Store(b.disk.clone())),
        _ => unreachable!(),
    };
    // ... so a power loss now loses the acknowledged message.
    let after = disk.after_power_loss();
    assert_eq!(
        after
            .server()
            .and_then(RocketFiles::store)
            .unwrap()
            .commitlog
            .end(),
        0
    );
    // The thorough flush takes whatever is dirty.
    let cmds = n.fire(A0, RocketTimer::FlushThorough);
    let disk = saved(&cmds).expect("flushed");
    assert_eq!(
        disk.after_power_loss()
            .server()
            .and_then(RocketFiles::store)
            .unwrap()
            .commitlog
            .end(),
        1
    );
    // Four dirty pages make the 500 ms flush work.
    for seq in 1..5 {
        n.deliver(A0, P0, send(1 + u64::from(seq), seq));
    }
    let disk = saved(&n.fire(A0, RocketTimer::Flush)).expect("flushed");
    assert_eq!(
        disk.after_power_loss()
            .server()
            .and_then(RocketFiles::store)
            .unwrap()
            .commitlog
            .end(),
        5
    );
}

#[test]
fn sync_flush_answers_after_the_group_commit_and_5_3_dispatches_only_what_is_flushed() {
    for (version, visible_before_flush) in [("5.3", false), ("4.9", true)] {
        let mut n = nodes(&["flushDiskType=SYNC_FLUSH", &format!("version={version}")]);
        n.start(A0);
        let cmds = n.deliver(A0, P0, send(1, 0));
        assert_eq!(result(&cmds), None, "{version}: waits for the flush");
        let found = matches!(
            pulled(&n.deliver(A0, C0, pull(1, 0))),
            Some(PullStatus::Found(_))
        );
        assert_eq!(found, visible_before_flush, "{version}");
        let cmds = n.fire(A0, RocketTimer::GroupCommit);
        assert_eq!(result(&cmds), Some(SendStatus::SendOk), "{version}");
        let disk = saved(&cmds).expect("flushed");
        assert_eq!(
            disk.after_power_loss()
                .server()
                .and_then(RocketFiles::store)
                .unwrap()
                .commitlog
                .end(),
            1
        );
    }
}

#[test]
fn a_restarted_broker_rebuilds_its_consume_queues_from_what_the_commitlog_kept() {
    let mut n = nodes(&[]);
    n.start(A0);
    n.deliver(A0, P0, send(1, 0));
    n.fire(A0, RocketTimer::FlushThorough);
    let cmds = n.deliver(A0, P0, send(2, 1));
    let disk = saved(&cmds).expect("written");
    // A crash keeps the page cache: both messages come back.
    n.restart(A0, Some(disk.clone()));
    assert!(
        matches!(pulled(&n.deliver(A0, C0, pull(1, 0))), Some(PullStatus::Found(m)) if m.len() == 2)
    );
    // A power loss keeps the flushed one; the ConsumeQueue ends with it.
    n.restart(A0, Some(disk.after_power_loss()));
    assert!(
        matches!(pulled(&n.deliver(A0, C0, pull(2, 0))), Some(PullStatus::Found(m)) if m.len() == 1)
    );
    // An offset past the queue's end on a master is corrected to it.
    assert_eq!(
        pulled(&n.deliver(A0, C0, pull(3, 2))),
        Some(PullStatus::OffsetMoved(1))
    );
}

#[test]
fn sync_master_waits_for_its_slave_as_each_version_says() {
    // 4.9: no slave connected answers SLAVE_NOT_AVAILABLE at once.
    let mut n = nodes(&["brokerRole=SYNC_MASTER", "version=4.9"]);
    n.start(A0);
    assert_eq!(
        result(&n.deliver(A0, P0, send(1, 0))),
        Some(SendStatus::SlaveNotAvailable)
    );
    // With a slave, the put waits for the slave's report past it.
    n.deliver(A0, A1, RocketMsg::HaReport { offset: 1 });
    let cmds = n.deliver(A0, P0, send(2, 1));
    assert_eq!(result(&cmds), None);
    assert!(sent(&cmds)
        .iter()
        .any(|(d, m)| *d == A1 && matches!(m, RocketMsg::HaTransfer { from: 1, .. })));
    assert_eq!(
        result(&n.deliver(A0, A1, RocketMsg::HaReport { offset: 2 })),
        Some(SendStatus::SendOk)
    );
    // Unacknowledged for slaveTimeout: FLUSH_SLAVE_TIMEOUT, stored all the same.
    n.deliver(A0, P0, send(3, 2));
    assert_eq!(
        result(&n.fire(A0, RocketTimer::SlaveTimeout(3))),
        Some(SendStatus::FlushSlaveTimeout)
    );
    // 5.3 with the default inSyncReplicas=1 does not wait.
    let mut n = nodes(&["brokerRole=SYNC_MASTER"]);
    n.start(A0);
    assert_eq!(
        result(&n.deliver(A0, P0, send(1, 0))),
        Some(SendStatus::SendOk)
    );
}

#[test]
fn a_slave_appends_only_what_continues_its_commitlog() {
    let mut n = nodes(&[]);
    let cmds = n.start(A1);
    assert!(sent(&cmds).contains(&(A0, RocketMsg::HaReport { offset: 0 })));
    let transfer = |from| RocketMsg::HaTransfer {
        from,
        entries: vec![message(from as u32, 0)],
    };
    let cmds = n.deliver(A1, A0, transfer(0));
    assert!(sent(&cmds).contains(&(A0, RocketMsg::HaReport { offset: 1 })));
    // A duplicate of an old transfer changes nothing.
    assert!(sent(&n.deliver(A1, A0, transfer(0))).is_empty());
    // A slave does not correct an offset past its end: the consumer retries.
    assert_eq!(
        pulled(&n.deliver(A1, C0, pull(1, 5))),
        Some(PullStatus::Retry)
    );
}

#[test]
fn allocate_averagely_splits_sorted_queues_by_each_clients_own_view() {
    let mqs: Vec<Mq> = (0..2)
        .flat_map(|group| (0..4).map(move |queue| Mq { group, queue }))
        .collect();
    let mine = |cids: &[u32], me| allocate(&mqs, cids, me);
    assert_eq!(mine(&[0], 0).len(), 8);
    assert_eq!(mine(&[0, 1], 0), mqs[..4].to_vec());
    assert_eq!(mine(&[0, 1], 1), mqs[4..].to_vec());
    assert_eq!(mine(&[0, 1, 2], 0).len(), 3);
    assert_eq!(mine(&[0, 1, 2], 2), mqs[6..].to_vec());
    // A client the broker does not list yet takes nothing: its view and the others' disagree.
    assert!(mine(&[1], 0).is_empty());
}

#[test]
fn a_closed_connection_retries_on_another_group_and_a_timeout_does_not() {
    let mut n = nodes(&[]);
    n.start(P0);
    n.random(P0, mqcheck_brokers::rocketmq::RocketRandom::Pace(100));
    n.fire(P0, RocketTimer::Send);
    let route = vec![
        mqcheck_brokers::rocketmq::protocol::BrokerData {
            master: Some(Id::from(A0)),
            slaves: vec![],
        },
        mqcheck_brokers::rocketmq::protocol::BrokerData {
            master: Some(Id::from(B0)),
            slaves: vec![],
        },
    ];
    let cmds = n.deliver(P0, NS, RocketMsg::RouteInfo(route));
    let (first, _) = sent(&cmds)[0].clone();
    let cmds = n.deliver(P0, first, RocketMsg::Disconnected);
    let (second, m) = sent(&cmds)[0].clone();
    assert_ne!(first, second, "retried on the other broker group");
    assert!(matches!(m, RocketMsg::SendMessage { message, .. } if message.msg.seq == 0));
    // The budget runs out while the retry is in flight: the send fails, in doubt, not retried.
    let cmds = n.fire(P0, RocketTimer::SendTimeout);
    assert!(sent(&cmds).is_empty());
    let RocketState::Producer(p) = n.state(P0) else {
        unreachable!()
    };
    assert!(
        matches!(p.app.iter().last(), Some(Op::Fail { reason, .. }) if reason.contains("sendMsgTimeout"))
    );
}

#[test]
fn queue_locks_belong_to_one_consumer_until_they_expire() {
    let mut n = nodes(&[]);
    n.start(A0);
    let lock = |consumer| RocketMsg::LockBatch {
        request: 1,
        consumer,
        queues: vec![0, 1],
    };
    let granted = |cmds: &[Cmd]| match sent(cmds).pop() {
        Some((_, RocketMsg::Locked { queues, .. })) => queues,
        other => panic!("{other:?}"),
    };
    assert_eq!(granted(&n.deliver(A0, C0, lock(0))), vec![0, 1]);
    assert!(granted(&n.deliver(A0, 7, lock(1))).is_empty());
    n.fire(A0, RocketTimer::LockExpired(0));
    assert_eq!(granted(&n.deliver(A0, 7, lock(1))), vec![0]);
}

#[test]
fn a_sent_back_message_is_scheduled_for_the_retry_queue_or_dead_lettered() {
    let mut n = nodes(&[]);
    n.start(A0);
    let back = |reconsume| RocketMsg::SendBack {
        request: 1,
        message: Message {
            reconsume,
            ..message(0, 0)
        },
    };
    // The first send-back: delay level 3 (10 s), then `%RETRY%` (queue 4 with 4 queues).
    let cmds = n.deliver(A0, C0, back(0));
    assert!(sent(&cmds).contains(&(C0, RocketMsg::SendBackResult { request: 1 })));
    let delay = cmds.iter().find_map(|c| match c {
        Command::SetTimer(RocketTimer::Scheduled(0), d) => Some(d.start),
        _ => None,
    });
    assert_eq!(delay, Some(std::time::Duration::from_secs(10)));
    n.fire(A0, RocketTimer::Scheduled(0));
    let last = |n: &Nodes| match n.state(A0) {
        RocketState::Broker(b) => *b.disk.commitlog.entries.last().unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(last(&n).queue, 4);
    assert_eq!(last(&n).reconsume, 1);
    // The seventeenth goes to `%DLQ%` (queue 5), never scheduled.
    let cmds = n.deliver(A0, C0, back(16));
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::SetTimer(RocketTimer::Scheduled(_), _))));
    assert_eq!(last(&n).queue, 5);
}

fn two_groups() -> RocketMsg {
    RocketMsg::RouteInfo(vec![
        mqcheck_brokers::rocketmq::protocol::BrokerData {
            master: Some(Id::from(A0)),
            slaves: vec![],
        },
        mqcheck_brokers::rocketmq::protocol::BrokerData {
            master: Some(Id::from(B0)),
            slaves: vec![],
        },
    ])
}

/// BROADCASTING: the consumer takes every queue of both groups without asking for the group's
/// consumers, starts a queue it has no local offset for at the broker's max offset, writes its
/// offsets to its own disk, and restarted from that disk pulls from them without asking.
#[test]
fn a_broadcasting_consumer_takes_every_queue_and_keeps_its_offsets_in_a_local_file() {
    let mut n = nodes(&["messageModel=BROADCASTING"]);
    n.start(C0);
    let cmds = n.deliver(C0, NS, two_groups());
    let asked: Vec<(usize, RocketMsg)> = sent(&cmds)
        .into_iter()
        .filter(|(_, m)| !matches!(m, RocketMsg::Heartbeat { .. }))
        .collect();
    assert!(!asked
        .iter()
        .any(|(_, m)| matches!(m, RocketMsg::GetConsumerList { .. })));
    let max_offsets = |to: usize| {
        asked
            .iter()
            .filter(|(dst, m)| *dst == to && matches!(m, RocketMsg::GetMaxOffset { .. }))
            .count()
    };
    assert_eq!((max_offsets(A0), max_offsets(B0)), (4, 4), "{asked:?}");
    // Queue 0 of group a starts where the broker's ConsumeQueue ends.
    let cmds = n.deliver(
        C0,
        A0,
        RocketMsg::MaxOffset {
            queue: 0,
            offset: 7,
        },
    );
    assert!(sent(&cmds).iter().any(|(dst, m)| *dst == A0
        && matches!(
            m,
            RocketMsg::Pull {
                queue: 0,
                offset: 7,
                ..
            }
        )));
    // Consumed up to 9: the next persist writes offsets.json, not the broker.
    n.random(C0, mqcheck_brokers::rocketmq::RocketRandom::Handling(2));
    let found = PullStatus::Found(vec![(7, message(7, 0)), (8, message(8, 0))]);
    let request = match n.state(C0) {
        RocketState::Consumer(c) => c.pqs[&Mq { group: 0, queue: 0 }].pulling.unwrap().0,
        _ => unreachable!(),
    };
    n.deliver(
        C0,
        A0,
        RocketMsg::PullResult {
            request,
            queue: 0,
            status: found,
        },
    );
    n.fire(C0, RocketTimer::Consume(0));
    n.fire(C0, RocketTimer::Consume(1));
    let cmds = n.fire(C0, RocketTimer::PersistOffset);
    assert!(!sent(&cmds)
        .iter()
        .any(|(_, m)| matches!(m, RocketMsg::UpdateConsumerOffset { .. })));
    let disk = saved(&cmds).expect("offsets.json written");
    let Some(RocketFiles::LocalOffsets(offsets)) = disk.client_files() else {
        panic!("{disk:?}")
    };
    assert_eq!(offsets.get(&Mq { group: 0, queue: 0 }), Some(&9));
    assert_eq!(disk.app_log().unwrap().len(), 2, "both deliveries recorded");
    // Restarted on its disk, it pulls queue 0 from 9 at once, and asks only for the others.
    n.restart(C0, Some(disk));
    let cmds = n.deliver(C0, NS, two_groups());
    let to_a0: Vec<RocketMsg> = sent(&cmds)
        .into_iter()
        .filter(|(dst, _)| *dst == A0)
        .map(|(_, m)| m)
        .collect();
    assert!(to_a0.iter().any(|m| matches!(
        m,
        RocketMsg::Pull {
            queue: 0,
            offset: 9,
            ..
        }
    )));
    assert_eq!(
        to_a0
            .iter()
            .filter(|m| matches!(m, RocketMsg::GetMaxOffset { .. }))
            .count(),
        3
    );
}

fn prepared(request: u64, seq: u32) -> RocketMsg {
    RocketMsg::SendMessage {
        request,
        message: Message {
            tran: Tran::Prepared,
            ..message(seq, 0)
        },
    }
}

fn end(half: u64, seq: u32, state: LocalTransactionState, from_check: bool) -> RocketMsg {
    RocketMsg::EndTransaction {
        half,
        msg: MsgId { producer: 0, seq },
        state,
        from_check,
    }
}

/// The CommitLog position a SendResult names.
fn stored_at(cmds: &[Cmd]) -> u64 {
    sent(cmds)
        .into_iter()
        .find_map(|(_, m)| match m {
            RocketMsg::SendResult { offset, .. } => Some(offset),
            _ => None,
        })
        .expect("answered")
}

/// The half messages the broker checked back with, by the copy's CommitLog position.
fn checks(cmds: &[Cmd]) -> Vec<(usize, u64)> {
    sent(cmds)
        .into_iter()
        .filter_map(|(dst, m)| match m {
            RocketMsg::CheckTransactionState { half, .. } => Some((dst, half)),
            _ => None,
        })
        .collect()
}

fn commitlog(n: &Nodes, broker: usize) -> Vec<Message> {
    match n.state(broker) {
        RocketState::Broker(b) => b.disk.commitlog.entries.iter().copied().collect(),
        _ => unreachable!(),
    }
}

/// A half message waits in `RMQ_SYS_TRANS_HALF_TOPIC`, invisible: COMMIT puts it in its queue,
/// ROLLBACK never, and UNKNOW changes nothing. 5.x writes the op messages in a batch, 4.9 at
/// once; once written, a check round passes the half messages over.
#[test]
fn a_half_message_is_visible_only_once_committed() {
    for version in ["5.3", "4.9"] {
        let mut n = nodes(&["transaction=commit", &format!("version={version}")]);
        n.start(A0);
        let half = stored_at(&n.deliver(A0, P0, prepared(1, 0)));
        assert_eq!(half, 0);
        assert_eq!(
            pulled(&n.deliver(A0, C0, pull(1, 0))),
            None,
            "{version}: held, nothing in queue 0"
        );
        let cmds = n.deliver(
            A0,
            P0,
            end(half, 0, LocalTransactionState::CommitMessage, false),
        );
        assert!(
            matches!(pulled(&cmds), Some(PullStatus::Found(m)) if m.len() == 1 && m[0].1.msg.seq == 0),
            "{version}: the held pull gets the committed message"
        );
        let second = stored_at(&n.deliver(A0, P0, prepared(2, 1)));
        n.deliver(A0, P0, end(second, 1, LocalTransactionState::Unknow, false));
        n.deliver(
            A0,
            P0,
            end(second, 1, LocalTransactionState::RollbackMessage, false),
        );
        assert_eq!(pulled(&n.deliver(A0, C0, pull(2, 1))), None, "{version}");
        let ops = |n: &Nodes| {
            commitlog(n, A0)
                .iter()
                .filter(|m| matches!(m.tran, Tran::Op { .. }))
                .count()
        };
        match version {
            "4.9" => assert_eq!(ops(&n), 2),
            _ => {
                assert_eq!(ops(&n), 0, "queued in memory");
                n.fire(A0, RocketTimer::OpBatch);
                assert_eq!(ops(&n), 2);
            }
        }
        n.deliver(A0, P0, RocketMsg::ProducerHeartbeat { group: 0 });
        n.fire(A0, RocketTimer::TransactionTimeOut(half));
        n.fire(A0, RocketTimer::TransactionTimeOut(second));
        assert!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty());
    }
}

/// An unresolved half message is checked back once `transactionTimeOut` old, each check on a
/// copy put back to the half queue, with a producer channel of its group if the broker has one
/// (the check counts either way); checked `transactionCheckMax` times, it is discarded to
/// `TRANS_CHECK_MAX_TIME_TOPIC`. The half message stays in the CommitLog: a late commit of it
/// still delivers it.
#[test]
fn an_unresolved_half_message_is_checked_back_then_discarded() {
    let mut n = nodes(&["transaction=commit", "transactionCheckMax=2"]);
    n.start(A0);
    n.deliver(A0, P0, RocketMsg::ProducerHeartbeat { group: 0 });
    let half = stored_at(&n.deliver(A0, P0, prepared(1, 0)));
    assert!(
        checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty(),
        "younger than transactionTimeOut"
    );
    n.fire(A0, RocketTimer::TransactionTimeOut(half));
    assert_eq!(
        checks(&n.fire(A0, RocketTimer::TransactionCheck)),
        vec![(P0, 1)]
    );
    // The producer's channel closes: the second check finds none, and still counts.
    n.deliver(A0, P0, RocketMsg::Disconnected);
    assert!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty());
    assert!(matches!(
        commitlog(&n, A0)[2].tran,
        Tran::Half { checks: 2, .. }
    ));
    n.deliver(A0, P0, RocketMsg::ProducerHeartbeat { group: 0 });
    assert!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty());
    let log = commitlog(&n, A0);
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].queue, 4 + 5, "TRANS_CHECK_MAX_TIME_TOPIC");
    assert!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty());
    assert_eq!(pulled(&n.deliver(A0, C0, pull(1, 0))), None);
    let cmds = n.deliver(
        A0,
        P0,
        end(2, 0, LocalTransactionState::CommitMessage, true),
    );
    assert!(matches!(pulled(&cmds), Some(PullStatus::Found(m)) if m.len() == 1));
}

/// A restarted master has no producer channels until a heartbeat, and its unresolved half
/// messages are immune for a whole `transactionTimeOut` again.
#[test]
fn a_restarted_master_checks_again_after_the_timeout() {
    let mut n = nodes(&["transaction=commit"]);
    n.start(A0);
    let half = stored_at(&n.deliver(A0, P0, prepared(1, 0)));
    let disk = match n.state(A0) {
        RocketState::Broker(b) => Disk::Server(RocketFiles::Store(b.disk.clone())),
        _ => unreachable!(),
    };
    let cmds = n.restart(A0, Some(disk));
    assert!(cmds.iter().any(
        |c| matches!(c, Command::SetTimer(RocketTimer::TransactionTimeOut(at), _) if *at == half)
    ));
    n.deliver(A0, P0, RocketMsg::ProducerHeartbeat { group: 0 });
    assert!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).is_empty());
    n.fire(A0, RocketTimer::TransactionTimeOut(half));
    assert_eq!(checks(&n.fire(A0, RocketTimer::TransactionCheck)).len(), 1);
}

/// `sendMessageInTransaction`: SEND_OK runs the local transaction and any other status rolls
/// it back; the application records the outcome and the end request goes one-way to the
/// master that stored the half message. A check-back is answered from the application's log.
#[test]
fn the_producer_ends_its_transactions_one_way_and_answers_check_backs_from_its_log() {
    let mut n = nodes(&["transaction=commit"]);
    n.start(P0);
    n.random(P0, mqcheck_brokers::rocketmq::RocketRandom::Pace(100));
    n.fire(P0, RocketTimer::Send);
    let cmds = n.deliver(P0, NS, two_groups());
    let (broker, m) = sent(&cmds)[0].clone();
    let RocketMsg::SendMessage { request, message } = m else {
        panic!("{m:?}")
    };
    assert_eq!(message.tran, Tran::Prepared);
    let result = |request, status| RocketMsg::SendResult {
        request,
        status,
        offset: 7,
    };
    let cmds = n.deliver(P0, broker, result(request, SendStatus::SendOk));
    assert_eq!(
        sent(&cmds),
        vec![(
            broker,
            end(7, 0, LocalTransactionState::CommitMessage, false)
        )]
    );
    let log = |n: &Nodes| match n.state(P0) {
        RocketState::Producer(p) => p.app.iter().cloned().collect::<Vec<Op>>(),
        _ => unreachable!(),
    };
    assert!(log(&n).contains(&Op::Transaction {
        txn: 0,
        msgs: vec![MsgId {
            producer: 0,
            seq: 0
        }],
        outcome: mqcheck_invariants::TxnOutcome::Committed,
    }));
    assert!(log(&n).contains(&Op::Ack {
        msg: MsgId {
            producer: 0,
            seq: 0
        }
    }));
    // The next message: FLUSH_DISK_TIMEOUT rolls its transaction back.
    let cmds = n.fire(P0, RocketTimer::Send);
    let (broker, RocketMsg::SendMessage { request, .. }) = sent(&cmds)[0].clone() else {
        panic!()
    };
    let cmds = n.deliver(P0, broker, result(request, SendStatus::FlushDiskTimeout));
    assert_eq!(
        sent(&cmds),
        vec![(
            broker,
            end(7, 1, LocalTransactionState::RollbackMessage, false)
        )]
    );
    assert!(log(&n).contains(&Op::Transaction {
        txn: 1,
        msgs: vec![MsgId {
            producer: 0,
            seq: 1
        }],
        outcome: mqcheck_invariants::TxnOutcome::Aborted,
    }));
    let check = |n: &mut Nodes, seq| {
        let cmds = n.deliver(
            P0,
            A0,
            RocketMsg::CheckTransactionState {
                half: 9,
                msg: MsgId { producer: 0, seq },
            },
        );
        match sent(&cmds).pop() {
            Some((
                A0,
                RocketMsg::EndTransaction {
                    half: 9,
                    state,
                    from_check: true,
                    ..
                },
            )) => state,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(check(&mut n, 0), LocalTransactionState::CommitMessage);
    assert_eq!(check(&mut n, 1), LocalTransactionState::RollbackMessage);
    // The third send is under way: its local transaction has not run.
    let cmds = n.fire(P0, RocketTimer::Send);
    assert!(matches!(sent(&cmds)[0].1, RocketMsg::SendMessage { .. }));
    assert_eq!(check(&mut n, 2), LocalTransactionState::Unknow);
    // It throws: no local transaction ran, so a half message of it is rolled back.
    n.fire(P0, RocketTimer::SendTimeout);
    assert_eq!(check(&mut n, 2), LocalTransactionState::RollbackMessage);
}

/// The producer heartbeats its producer group to every master of its route, so that they can
/// check back with it.
#[test]
fn a_transactional_producer_heartbeats_every_master() {
    let mut n = nodes(&["transaction=rollback-some"]);
    let cmds = n.start(P0);
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::SetTimer(RocketTimer::Heartbeat, _))));
    n.deliver(P0, NS, two_groups());
    let cmds = n.fire(P0, RocketTimer::Heartbeat);
    assert_eq!(
        sent(&cmds),
        vec![
            (A0, RocketMsg::ProducerHeartbeat { group: 0 }),
            (B0, RocketMsg::ProducerHeartbeat { group: 0 })
        ]
    );
    // A plain producer does not (nothing in the model asks for it).
    let mut n = nodes(&[]);
    let cmds = n.start(P0);
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::SetTimer(RocketTimer::Heartbeat, _))));
}

// ---------------------------------------------------------------------------------------------
// Replay by time: storeTimestamp, getOffsetInQueueByTime, resetOffsetByTime
// ---------------------------------------------------------------------------------------------

/// A CommitLog holding one message per timestamp, all in queue 0, and its ConsumeQueue.
fn stamped(stamps: &[u64]) -> (CommitLog, ConsumeQueues) {
    let mut log = CommitLog::default();
    for (seq, ms) in stamps.iter().enumerate() {
        log.append(Message {
            store_ms: *ms,
            ..message(seq as u32, 0)
        });
    }
    let mut cq = ConsumeQueues::default();
    cq.dispatch(&log, log.end());
    (log, cq)
}

#[test]
fn the_search_by_time_finds_the_first_message_at_or_after_it_in_5_3_and_the_nearest_in_4_9() {
    let (log, cq) = stamped(&[100, 100, 200, 200, 300]);
    let lower = |t| cq.offset_by_time(&log, 0, t, Boundary::Lower);
    let upper = |t| cq.offset_by_time(&log, 0, t, Boundary::Upper);
    // 5.3: LOWER walks back to the first of equal timestamps, UPPER on to the last.
    assert_eq!((lower(200), upper(200)), (2, 3));
    assert_eq!((lower(100), upper(100)), (0, 1));
    // A time no message has: LOWER the message after it, UPPER the one before.
    assert_eq!((lower(150), upper(150)), (2, 1));
    // Before the first message and after the last.
    assert_eq!(lower(50), 0);
    assert_eq!((lower(400), upper(400)), (5, 4));
    // 4.9: an exact probe is returned as found, wherever it is in a run of equal timestamps;
    // without one the nearer neighbour, here the message stored before the time.
    let (log, cq) = stamped(&[100, 200, 200, 200, 300]);
    assert_eq!(cq.offset_by_time_4_9(&log, 0, 200), 2);
    assert_eq!(cq.offset_by_time(&log, 0, 200, Boundary::Lower), 1);
    let (log, cq) = stamped(&[100, 100, 200, 200, 300]);
    assert_eq!(cq.offset_by_time_4_9(&log, 0, 150), 1);
    assert_eq!(cq.offset_by_time_4_9(&log, 0, 50), 0);
    // An empty queue has no mapped file: 0.
    assert_eq!(
        ConsumeQueues::default().offset_by_time(&log, 1, 150, Boundary::Lower),
        0
    );
}

#[test]
fn timestamps_out_of_order_mislead_both_searches() {
    // The master's clock ran ahead and was stepped back after offset 1: offset 1 was stored
    // at "5 s", offsets 2 and 3 earlier by the clock. A reset to 4 s should re-read offset 1,
    // the only message stamped at or after it before offset 4.
    let (log, cq) = stamped(&[1000, 5000, 2000, 3000, 6000]);
    // The binary search probes 2 (2 s), 3 (3 s), 4 (6 s) and never sees offset 1.
    assert_eq!(cq.offset_by_time(&log, 0, 4000, Boundary::Lower), 4);
    assert_eq!(cq.offset_by_time_4_9(&log, 0, 4000), 3);
    // With the timestamps in order the same search finds it.
    let (log, cq) = stamped(&[1000, 5000, 5500, 5800, 6000]);
    assert_eq!(cq.offset_by_time(&log, 0, 4000, Boundary::Lower), 1);
    // The corner cases trust the ends: a last message stamped before the time answers "past
    // the end", whatever lies before it.
    let (log, cq) = stamped(&[1000, 5000, 2000]);
    assert_eq!(cq.offset_by_time(&log, 0, 4000, Boundary::Lower), 3);
}

fn rewinding(sets: &[&str]) -> Nodes {
    let mut w = Workload::new(4, 1, 1);
    w.rewind = Some(2);
    Nodes::of(&harness::system(sets, w))
}

fn broker(n: &Nodes, id: usize) -> &BrokerState {
    match n.state(id) {
        RocketState::Broker(b) => b,
        _ => unreachable!(),
    }
}

#[test]
fn the_master_stamps_messages_with_its_clock_only_when_consumers_rewind() {
    let mut plain = nodes(&[]);
    let cmds = plain.start(A0);
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::SetTimer(RocketTimer::Tick, _))));
    plain.deliver(A0, P0, send(1, 0));
    assert_eq!(broker(&plain, A0).clock, None);
    assert_eq!(
        broker(&plain, A0).disk.commitlog.get(0).unwrap().store_ms,
        0
    );

    let mut n = rewinding(&[]);
    let cmds = n.start(A0);
    assert!(sent(&cmds).contains(&(NS, RocketMsg::NtpQuery)));
    for _ in 0..30 {
        n.fire(A0, RocketTimer::Tick);
    }
    n.deliver(A0, P0, send(1, 0));
    assert_eq!(broker(&n, A0).disk.commitlog.get(0).unwrap().store_ms, 3000);
    // The time server says 2 s: more than 128 ms off, the clock is stepped back, and the next
    // message is stamped before the first.
    n.deliver(A0, NS, RocketMsg::NtpTime { ms: 2000 });
    n.deliver(A0, P0, send(2, 1));
    assert_eq!(broker(&n, A0).disk.commitlog.get(1).unwrap().store_ms, 2000);
    // Within the step threshold it is left alone.
    n.deliver(A0, NS, RocketMsg::NtpTime { ms: 2100 });
    assert_eq!(broker(&n, A0).clock, Some(2000));
    // The NameServer's host answers with its own clock.
    n.start(NS);
    n.fire(NS, RocketTimer::Tick);
    let cmds = n.deliver(NS, A0, RocketMsg::NtpQuery);
    assert!(sent(&cmds).contains(&(A0, RocketMsg::NtpTime { ms: 100 })));
}

#[test]
fn a_5_3_reset_by_time_is_kept_on_the_broker_for_the_queues_next_pull() {
    let mut n = rewinding(&[]);
    n.start(A0);
    for seq in 0..4 {
        n.fire(A0, RocketTimer::Tick);
        n.deliver(A0, P0, send(u64::from(seq) + 1, seq));
    }
    // Consumed and committed up to 4.
    n.deliver(
        A0,
        C0,
        RocketMsg::UpdateConsumerOffset {
            queue: 0,
            offset: 4,
        },
    );
    // Reset to the time of the third message (offset 2).
    let cmds = n.deliver(
        A0,
        C0,
        RocketMsg::ResetOffset {
            queue: 0,
            timestamp: 300,
        },
    );
    assert!(sent(&cmds).is_empty(), "5.3 tells no client");
    let query =
        |n: &mut Nodes| match sent(&n.deliver(A0, C0, RocketMsg::QueryConsumerOffset { queue: 0 }))
            .pop()
        {
            Some((_, RocketMsg::ConsumerOffset { offset, .. })) => offset,
            other => panic!("{other:?}"),
        };
    assert_eq!(query(&mut n), 2);
    // The client's own commit does not undo it while it waits...
    n.deliver(
        A0,
        C0,
        RocketMsg::UpdateConsumerOffset {
            queue: 0,
            offset: 4,
        },
    );
    // ... and the next pull is answered OFFSET_RESET (PULL_OFFSET_MOVED) with it, once.
    assert_eq!(
        pulled(&n.deliver(A0, C0, pull(9, 4))),
        Some(PullStatus::OffsetMoved(2))
    );
    assert_eq!(query(&mut n), 2);
    assert!(
        matches!(pulled(&n.deliver(A0, C0, pull(10, 2))), Some(PullStatus::Found(m)) if m[0].0 == 2)
    );
}

#[test]
fn a_4_9_reset_by_time_goes_to_the_clients_which_suspend_and_take_the_queues_again() {
    let mut n = rewinding(&["version=4.9"]);
    n.start(A0);
    for seq in 0..4 {
        n.fire(A0, RocketTimer::Tick);
        n.deliver(A0, P0, send(u64::from(seq) + 1, seq));
    }
    n.deliver(A0, C0, RocketMsg::Heartbeat { consumer: 0 });
    let cmds = n.deliver(
        A0,
        C0,
        RocketMsg::ResetOffset {
            queue: 0,
            timestamp: 300,
        },
    );
    // Every queue of the topic on the broker, searched by time (an empty one at 0), to each
    // consumer of the group; nothing kept on the broker.
    let table = sent(&cmds)
        .into_iter()
        .find_map(|(to, m)| match m {
            RocketMsg::ResetConsumerClientOffset { offsets } if to == C0 => Some(offsets),
            _ => None,
        })
        .expect("told the consumer");
    assert_eq!(table, vec![(0, 2), (1, 0), (2, 0), (3, 0)]);
    assert!(broker(&n, A0).reset.is_empty());
    // The consumer: suspended for 10 s, then the offsets written and persisted, the queue
    // dropped for the rebalance to take again.
    n.start(C0);
    let cmds = n.deliver(
        C0,
        A0,
        RocketMsg::ResetConsumerClientOffset { offsets: table },
    );
    assert!(cmds.iter().any(
        |c| matches!(c, Command::SetTimer(RocketTimer::ResetSleep, d) if d.start.as_secs() == 10)
    ));
    match n.state(C0) {
        RocketState::Consumer(c) => assert_eq!(c.resets.len(), 1),
        _ => unreachable!(),
    }
    n.fire(C0, RocketTimer::ResetSleep);
    match n.state(C0) {
        RocketState::Consumer(c) => assert!(c.resets.is_empty()),
        _ => unreachable!(),
    }
}

/// Controller mode adds the controller after every other node: `ctl` 7.
const CTL: usize = 7;

fn info(master: Option<u32>, master_epoch: u32, set: &[u32], set_epoch: u32) -> ReplicaInfo {
    ReplicaInfo {
        master,
        master_epoch,
        sync_state_set: set.to_vec(),
        sync_state_set_epoch: set_epoch,
    }
}

/// The controller registers a group's brokers, elects the first one that asks, and takes the
/// master's SyncStateSet change; when the master's connection closes it elects from the
/// SyncStateSet and notifies the live brokers. A master whose set held only itself leaves no
/// candidate: no master, a new epoch — unless `enableElectUncleanMaster` lets it take any live
/// replica.
#[test]
fn the_controller_elects_masters_from_the_sync_state_set() {
    for unclean in [false, true] {
        let mut sets = vec!["enableControllerMode=true"];
        if unclean {
            sets.push("enableElectUncleanMaster=true");
        }
        let mut n = nodes(&sets);
        n.start(CTL);
        for b in [A0, A1] {
            n.deliver(CTL, b, RocketMsg::CtlRegister);
            n.deliver(
                CTL,
                b,
                RocketMsg::CtlHeartbeat {
                    epoch: 0,
                    max_offset: 0,
                },
            );
        }
        let elected = |cmds: &[Cmd]| {
            sent(cmds).into_iter().find_map(|(_, m)| match m {
                RocketMsg::CtlElected(i) => Some(i),
                _ => None,
            })
        };
        // The first to ask is the first master, alone in its set.
        let first = elected(&n.deliver(CTL, A0, RocketMsg::CtlElect)).unwrap();
        assert_eq!(first, info(Some(1), 1, &[1], 1));
        // Asked again, the master still exists.
        assert_eq!(
            elected(&n.deliver(CTL, A1, RocketMsg::CtlElect))
                .unwrap()
                .master,
            Some(1)
        );
        // Only the master, in its epoch, with the set's epoch, changes the set.
        let alter = |epoch: u32| RocketMsg::CtlAlterSyncStateSet {
            master_epoch: 1,
            sync_state_set: vec![1, 2],
            sync_state_set_epoch: epoch,
        };
        let refused = sent(&n.deliver(CTL, A1, alter(1)));
        assert_eq!(
            refused,
            vec![(A1, RocketMsg::CtlAlterSyncStateSetResult(None))]
        );
        let stale = sent(&n.deliver(CTL, A0, alter(0)));
        assert_eq!(
            stale,
            vec![(A0, RocketMsg::CtlAlterSyncStateSetResult(None))]
        );
        if !unclean {
            let ok = sent(&n.deliver(CTL, A0, alter(1)));
            assert_eq!(
                ok,
                vec![(
                    A0,
                    RocketMsg::CtlAlterSyncStateSetResult(Some((vec![1, 2], 2)))
                )]
            );
            // The master's connection closes: a1, in the set, is elected and told.
            let cmds = n.deliver(CTL, A0, RocketMsg::Disconnected);
            assert_eq!(
                sent(&cmds),
                vec![(
                    A1,
                    RocketMsg::CtlNotifyRoleChanged(info(Some(2), 2, &[2], 3))
                )]
            );
            // a1 alone in its set goes too: nobody is left to elect (three tries, three epochs).
            n.deliver(CTL, A0, RocketMsg::CtlRegister);
            n.deliver(
                CTL,
                A0,
                RocketMsg::CtlHeartbeat {
                    epoch: 1,
                    max_offset: 0,
                },
            );
            let cmds = n.fire(CTL, RocketTimer::CtlBrokerExpired(Id::from(A1)));
            assert!(sent(&cmds).is_empty(), "{cmds:?}");
            let asked = sent(&n.deliver(CTL, A0, RocketMsg::CtlGetReplicaInfo));
            assert_eq!(
                asked,
                vec![(A0, RocketMsg::CtlReplicaInfo(info(None, 5, &[2], 3)))]
            );
            // a0 asks itself, and is not in the set: refused, nothing changes.
            assert_eq!(
                elected(&n.deliver(CTL, A0, RocketMsg::CtlElect))
                    .unwrap()
                    .master,
                None
            );
        } else {
            // The set is still the master alone; its loss elects a1 from outside it.
            let cmds = n.deliver(CTL, A0, RocketMsg::Disconnected);
            assert_eq!(
                sent(&cmds),
                vec![(
                    A1,
                    RocketMsg::CtlNotifyRoleChanged(info(Some(2), 2, &[2], 2))
                )]
            );
            match n.state(CTL) {
                RocketState::Controller(c) => assert!(!c.groups[&0].clean, "an unclean election"),
                _ => unreachable!(),
            }
        }
    }
}

/// `EpochFileCache.findConsistentPoint`: the newest epoch both files have, starting at the same
/// offset; the lesser of its two ends.
#[test]
fn the_consistent_point_is_the_end_of_the_last_shared_epoch() {
    // The slave led epoch 2 from 3 to 5; the master's epoch 3 started at 4.
    assert_eq!(
        consistent_point(&[(1, 0), (2, 3)], 5, &[(1, 0), (2, 3), (3, 4)], 9),
        Some(4)
    );
    // The slave never saw epoch 2 start: epoch 1 ends at 3 on the master.
    assert_eq!(
        consistent_point(&[(1, 0)], 5, &[(1, 0), (2, 3)], 9),
        Some(3)
    );
    // A slave behind the master keeps all it has.
    assert_eq!(
        consistent_point(&[(1, 0)], 2, &[(1, 0), (2, 3)], 9),
        Some(2)
    );
    // No shared epoch at the same offset.
    assert_eq!(consistent_point(&[(2, 1)], 5, &[(1, 0), (2, 3)], 9), None);
}

/// A slave that reconnects to a new master truncates the suffix its CommitLog has past the
/// epoch boundary they share, ConsumeQueues included, before it takes the master's transfers
/// and the new epoch.
#[test]
fn a_reconnecting_slave_truncates_its_diverged_suffix_to_the_epoch_boundary() {
    let mut n = nodes(&["enableControllerMode=true"]);
    // a1 led epoch 1 with five entries, of which the new master a0 has three.
    let mut disk = StoreDisk::default();
    for seq in 0..5 {
        disk.commitlog.append(message(seq, 0));
    }
    disk.commitlog.flush();
    disk.epochs = vec![(1, 0)];
    n.restart(A1, Some(Disk::Server(RocketFiles::Store(disk))));
    assert_eq!(broker(&n, A1).cq.max_offset(0), 5);
    n.fire(A1, RocketTimer::CtlRetryStart);
    let cmds = n.deliver(A1, CTL, RocketMsg::CtlRegistered(info(Some(1), 2, &[1], 3)));
    assert!(
        sent(&cmds).contains(&(A0, RocketMsg::AsHandshake { slave: 2 })),
        "{cmds:?}"
    );
    assert!(!broker(&n, A1).master);
    let cmds = n.deliver(
        A1,
        A0,
        RocketMsg::AsHandshakeResult {
            epochs: vec![(1, 0), (2, 3)],
            end: 3,
        },
    );
    let b = broker(&n, A1);
    assert_eq!(b.disk.commitlog.end(), 3, "the diverged suffix is gone");
    assert_eq!(b.cq.max_offset(0), 3);
    assert_eq!(b.disk.epochs, vec![(1, 0)]);
    assert!(saved(&cmds).is_some());
    // The master's next transfer continues the truncated log in epoch 2.
    let cmds = n.deliver(
        A1,
        A0,
        RocketMsg::AsTransfer {
            from: 3,
            epoch: 2,
            epoch_start: 3,
            confirm: 4,
            entries: vec![message(9, 0)],
        },
    );
    let b = broker(&n, A1);
    assert_eq!(b.disk.epochs, vec![(1, 0), (2, 3)]);
    assert_eq!(b.disk.commitlog.get(3).map(|m| m.msg.seq), Some(9));
    assert!(sent(&cmds).contains(&(A0, RocketMsg::HaReport { offset: 4 })));
    // A transfer that does not continue the log is refused.
    n.deliver(
        A1,
        A0,
        RocketMsg::AsTransfer {
            from: 7,
            epoch: 2,
            epoch_start: 3,
            confirm: 4,
            entries: vec![message(10, 0)],
        },
    );
    assert_eq!(broker(&n, A1).disk.commitlog.end(), 4);
}

/// With `allAckInSyncStateSet` the master answers a put once every member of its SyncStateSet
/// has it, and consumers see only that far; a slave that caught up joins the set through the
/// controller.
#[test]
fn all_ack_in_sync_state_set_waits_for_every_member() {
    let mut n = nodes(&["enableControllerMode=true", "allAckInSyncStateSet=true"]);
    n.start(A0);
    n.fire(A0, RocketTimer::CtlRetryStart);
    n.deliver(A0, CTL, RocketMsg::CtlRegistered(info(None, 0, &[], 0)));
    n.deliver(A0, CTL, RocketMsg::CtlElected(info(Some(1), 1, &[1], 1)));
    assert!(broker(&n, A0).master);
    assert_eq!(broker(&n, A0).disk.epochs, vec![(1, 0)]);
    // Alone in its set, it answers at once.
    assert_eq!(
        result(&n.deliver(A0, P0, send(1, 0))),
        Some(SendStatus::SendOk)
    );
    // a1 connects and reports everything: it joins the set.
    n.deliver(A0, A1, RocketMsg::AsHandshake { slave: 2 });
    let cmds = n.deliver(A0, A1, RocketMsg::HaReport { offset: 1 });
    assert!(sent(&cmds).contains(&(
        CTL,
        RocketMsg::CtlAlterSyncStateSet {
            master_epoch: 1,
            sync_state_set: vec![1, 2],
            sync_state_set_epoch: 1
        }
    )));
    // Until the controller answers, the set being changed counts: the put waits for a1.
    assert_eq!(result(&n.deliver(A0, P0, send(2, 1))), None);
    n.deliver(
        A0,
        CTL,
        RocketMsg::CtlAlterSyncStateSetResult(Some((vec![1, 2], 2))),
    );
    assert_eq!(
        broker(&n, A0).confirm_offset(),
        1,
        "consumers see what a1 has"
    );
    let cmds = n.deliver(A0, A1, RocketMsg::HaReport { offset: 2 });
    assert_eq!(result(&cmds), Some(SendStatus::SendOk));
    assert_eq!(broker(&n, A0).confirm_offset(), 2);
    // a1's connection closes: it leaves the set, and the next put waits for the controller.
    let cmds = n.deliver(A0, A1, RocketMsg::Disconnected);
    assert!(sent(&cmds).iter().any(|(d, m)| *d == CTL
        && matches!(m, RocketMsg::CtlAlterSyncStateSet { sync_state_set, .. } if sync_state_set == &vec![1])));
}

/// `transientStorePoolEnable`: a put is answered from the off-heap buffer; until
/// `CommitRealTimeService` commits it, consumers do not see it and a process crash takes it.
#[test]
fn the_transient_store_pool_loses_uncommitted_messages_on_a_crash() {
    let mut n = nodes(&["transientStorePoolEnable=true"]);
    n.start(A0);
    assert_eq!(
        result(&n.deliver(A0, P0, send(1, 0))),
        Some(SendStatus::SendOk)
    );
    assert_eq!(broker(&n, A0).disk.commitlog.end(), 0);
    assert!(matches!(
        pulled(&n.deliver(A0, C0, pull(1, 0))),
        None | Some(PullStatus::NoNewMsg)
    ));
    // A crash now: the disk (page cache included) has nothing.
    let disk = Disk::Server(RocketFiles::Store(broker(&n, A0).disk.clone()));
    let mut crashed = nodes(&["transientStorePoolEnable=true"]);
    crashed.restart(A0, Some(disk));
    assert_eq!(
        broker(&crashed, A0).disk.commitlog.end(),
        0,
        "lost in a crash"
    );
    // The commit moves it to the page cache, where consumers see it and a crash keeps it.
    n.fire(A0, RocketTimer::Commit);
    assert_eq!(broker(&n, A0).disk.commitlog.end(), 1);
    assert!(matches!(n.state(A0), RocketState::Broker(b) if b.cq.max_offset(0) == 1));
    // Four pages in the buffer commit at once (`commitCommitLogLeastPages`).
    for seq in 1..5 {
        n.deliver(A0, P0, send(1 + u64::from(seq), seq));
    }
    assert_eq!(broker(&n, A0).disk.commitlog.end(), 5);
    // A slave never uses it; 4.9 uses it only with ASYNC_FLUSH.
    let mut v49 = nodes(&[
        "transientStorePoolEnable=true",
        "version=4.9",
        "flushDiskType=SYNC_FLUSH",
    ]);
    v49.start(A0);
    v49.deliver(A0, P0, send(1, 0));
    assert_eq!(broker(&v49, A0).disk.commitlog.end(), 1);
}
