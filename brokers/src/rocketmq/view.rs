//! RocketMQ as a reader sees it: messages in a trace, node states in the Stateright Explorer.

use super::protocol::{group_name, PullStatus, Push, ReplicaInfo, RocketMsg, Tran};
use super::{BrokerState, ConsumerState, ControllerState, NameServerState, ProducerState, RocketState};
use crate::{pairs, Names};

/// A message in a trace, in RocketMQ's vocabulary; `None` for chatter (registrations,
/// heartbeats, HA reports, route polls).
pub(super) fn describe(msg: &RocketMsg) -> Option<String> {
    let chatter = matches!(
        msg,
        RocketMsg::RegisterBroker { .. }
            | RocketMsg::GetRouteInfo
            | RocketMsg::Heartbeat { .. }
            | RocketMsg::HaReport { .. }
            | RocketMsg::ProducerHeartbeat { .. }
            | RocketMsg::NtpQuery
            | RocketMsg::DlHeartbeat { .. }
            | RocketMsg::DlHeartbeatResult { .. }
            | RocketMsg::CtlHeartbeat { .. }
            | RocketMsg::CtlGetReplicaInfo
            | RocketMsg::CtlReplicaInfo(_)
            | RocketMsg::DlPush {
                push: Push::Commit,
                ..
            }
    );
    // The master's HA heartbeats (a transfer without entries) too.
    let heartbeat = matches!(msg, RocketMsg::AsTransfer { entries, .. } if entries.is_empty());
    (!chatter && !heartbeat).then(|| label(msg))
}

/// Every message, chatter included, in RocketMQ's vocabulary (its request codes).
pub(super) fn label(msg: &RocketMsg) -> String {
    match msg {
        RocketMsg::RegisterBroker { .. } => "REGISTER_BROKER".into(),
        RocketMsg::GetRouteInfo => "GET_ROUTEINFO_BY_TOPIC".into(),
        RocketMsg::Heartbeat { .. } => "HEART_BEAT".into(),
        RocketMsg::HaReport { .. } => "HA report of the slave's offset".into(),
        RocketMsg::ProducerHeartbeat { group } => format!("HEART_BEAT of producer group p{group}"),
        RocketMsg::RouteInfo(route) => {
            let groups: Vec<String> = route
                .iter()
                .enumerate()
                .map(|(g, b)| {
                    format!(
                        "{}: master {}, {} slaves",
                        group_name(g as u32),
                        if b.master.is_some() { "up" } else { "gone" },
                        b.slaves.len()
                    )
                })
                .collect();
            format!("route [{}]", groups.join("; "))
        }
        RocketMsg::SendMessage { request, message } => format!(
            "SEND_MESSAGE {} to queue {}{} (request {request})",
            message.msg,
            message.queue,
            if message.tran == Tran::Prepared {
                ", prepared"
            } else {
                ""
            }
        ),
        RocketMsg::SendResult {
            request, status, ..
        } => {
            format!("SendResult {} (request {request})", status.name())
        }
        RocketMsg::EndTransaction {
            half,
            msg,
            state,
            from_check,
        } => format!(
            "END_TRANSACTION {} {msg} of half message {half}{}",
            state.name(),
            if *from_check { " (check-back answer)" } else { "" }
        ),
        RocketMsg::CheckTransactionState { half, msg } => {
            format!("CHECK_TRANSACTION_STATE {msg} of half message {half}")
        }
        RocketMsg::HaTransfer { from, entries } => {
            format!("HA transfer of {} entries from {from}", entries.len())
        }
        RocketMsg::ConsumerIdsChanged => "NOTIFY_CONSUMER_IDS_CHANGED".into(),
        RocketMsg::GetConsumerList { .. } => "GET_CONSUMER_LIST_BY_GROUP".into(),
        RocketMsg::ConsumerList { consumers, .. } => format!("consumers {consumers:?}"),
        RocketMsg::QueryConsumerOffset { queue } => format!("QUERY_CONSUMER_OFFSET queue {queue}"),
        RocketMsg::ConsumerOffset { queue, offset } => {
            format!("consumer offset of queue {queue}: {offset}")
        }
        RocketMsg::GetMaxOffset { queue } => format!("GET_MAX_OFFSET queue {queue}"),
        RocketMsg::MaxOffset { queue, offset } => format!("max offset of queue {queue}: {offset}"),
        RocketMsg::Pull {
            queue,
            offset,
            commit,
            ..
        } => format!(
            "PULL_MESSAGE queue {queue} from {offset}{}",
            commit.map_or(String::new(), |c| format!(", commit {c}"))
        ),
        RocketMsg::PullResult { queue, status, .. } => match status {
            PullStatus::Found(msgs) => {
                let ids: Vec<String> = msgs.iter().map(|(o, m)| format!("{}@{o}", m.msg)).collect();
                format!("FOUND in queue {queue}: {}", ids.join(" "))
            }
            PullStatus::NoNewMsg => format!("NO_NEW_MSG in queue {queue}"),
            PullStatus::OffsetMoved(o) => format!("OFFSET_MOVED in queue {queue} to {o}"),
            PullStatus::Retry => format!("PULL_RETRY_IMMEDIATELY in queue {queue}"),
        },
        RocketMsg::SendBack { message, .. } => format!(
            "CONSUMER_SEND_MSG_BACK {} (reconsumeTimes {})",
            message.msg, message.reconsume
        ),
        RocketMsg::SendBackResult { .. } => "send-back stored".into(),
        RocketMsg::UpdateConsumerOffset { queue, offset } => {
            format!("UPDATE_CONSUMER_OFFSET queue {queue}: {offset}")
        }
        RocketMsg::LockBatch { queues, .. } => format!("LOCK_BATCH_MQ {queues:?}"),
        RocketMsg::Locked { queues, .. } => format!("locked {queues:?}"),
        RocketMsg::Unlock { queues, .. } => format!("UNLOCK_BATCH_MQ {queues:?}"),
        RocketMsg::ResetOffset { queue, timestamp } => {
            format!("INVOKE_BROKER_TO_RESET_OFFSET queue {queue} to time {}", ms(*timestamp))
        }
        RocketMsg::ResetConsumerClientOffset { offsets } => {
            format!("RESET_CONSUMER_CLIENT_OFFSET {}", pairs(offsets.iter().map(|(q, o)| (format!("q{q}"), o))))
        }
        RocketMsg::NtpQuery => "NTP poll".into(),
        RocketMsg::NtpTime { ms: t } => format!("NTP time {}", ms(*t)),
        RocketMsg::Disconnected => "connection closed".into(),
        RocketMsg::SendError { request, code } => {
            format!("SEND_MESSAGE failed: {} (request {request})", code.name())
        }
        RocketMsg::DlVote { term, end_term, end } => {
            format!("DLedger VoteRequest term {term}, ledger end {end} of term {end_term}")
        }
        RocketMsg::DlVoteResult { round, result, .. } => {
            format!("DLedger VoteResponse {result:?} (term {round})")
        }
        RocketMsg::DlHeartbeat { term } => format!("DLedger HeartBeatRequest term {term}"),
        RocketMsg::DlHeartbeatResult { code, .. } => format!("DLedger HeartBeatResponse {code:?}"),
        RocketMsg::DlPush { term, push, commit, .. } => {
            let what = match push {
                Push::Compare { index, term, msg } => {
                    format!("COMPARE {msg}@{index} of term {term}", msg = msg.msg)
                }
                Push::Truncate { index, .. } => format!("TRUNCATE after {index}"),
                Push::Append { from, entries } => {
                    let ids: Vec<String> = entries.iter().map(|(_, m)| m.msg.to_string()).collect();
                    format!("APPEND from {from}: {}", ids.join(" "))
                }
                Push::Commit => "COMMIT".into(),
            };
            format!("DLedger push {what}, committed {commit} (term {term})")
        }
        RocketMsg::CtlRegister => "CONTROLLER_REGISTER_BROKER".into(),
        RocketMsg::CtlRegistered(info) => format!("registered: {}", replica_info(info)),
        RocketMsg::CtlHeartbeat { epoch, max_offset } => {
            format!("BROKER_HEARTBEAT epoch {epoch}, max offset {max_offset}")
        }
        RocketMsg::CtlElect => "CONTROLLER_ELECT_MASTER".into(),
        RocketMsg::CtlElected(info) => format!("elect master: {}", replica_info(info)),
        RocketMsg::CtlGetReplicaInfo => "CONTROLLER_GET_REPLICA_INFO".into(),
        RocketMsg::CtlReplicaInfo(info) => format!("replica info: {}", replica_info(info)),
        RocketMsg::CtlAlterSyncStateSet {
            master_epoch,
            sync_state_set,
            sync_state_set_epoch,
        } => format!(
            "CONTROLLER_ALTER_SYNC_STATE_SET {sync_state_set:?} (master epoch {master_epoch}, SyncStateSet epoch {sync_state_set_epoch})"
        ),
        RocketMsg::CtlAlterSyncStateSetResult(result) => match result {
            Some((set, epoch)) => format!("SyncStateSet now {set:?} (epoch {epoch})"),
            None => "SyncStateSet change refused".into(),
        },
        RocketMsg::CtlNotifyRoleChanged(info) => {
            format!("NOTIFY_BROKER_ROLE_CHANGED {}", replica_info(info))
        }
        RocketMsg::AsHandshake { slave } => format!("HA handshake of slave brokerId {slave}"),
        RocketMsg::AsHandshakeResult { epochs, end } => {
            format!("HA handshake: epochs {epochs:?}, end {end}")
        }
        RocketMsg::AsTransfer {
            from,
            epoch,
            confirm,
            entries,
            ..
        } => format!(
            "HA transfer of {} entries from {from} in epoch {epoch}, confirm offset {confirm}",
            entries.len()
        ),
        RocketMsg::DlPushResult { ok, end, .. } => format!(
            "DLedger push {}, ledger end {end}",
            if *ok { "SUCCESS" } else { "INCONSISTENT_STATE" }
        ),
    }
}

fn replica_info(info: &ReplicaInfo) -> String {
    format!(
        "master {}, epoch {}, SyncStateSet {:?} (epoch {})",
        info.master.map_or("none".into(), |m| format!("brokerId {m}")),
        info.master_epoch,
        info.sync_state_set,
        info.sync_state_set_epoch
    )
}

/// A clock reading (ms) as seconds: `12.300s`.
fn ms(t: u64) -> String {
    format!("{}.{:03}s", t / 1000, t % 1000)
}

/// Routes (a master up or gone), consumer membership changes (a rebalance) and queue locks.
pub(super) fn notable(msg: &RocketMsg) -> bool {
    matches!(
        msg,
        RocketMsg::RouteInfo(_)
            | RocketMsg::ConsumerIdsChanged
            | RocketMsg::ConsumerList { .. }
            | RocketMsg::Locked { .. }
            | RocketMsg::CheckTransactionState { .. }
            | RocketMsg::CtlNotifyRoleChanged(_)
            | RocketMsg::CtlElected(_)
            | RocketMsg::CtlAlterSyncStateSetResult(_)
    )
}

fn show_controller(s: &ControllerState, names: Names<'_>) -> String {
    let groups: Vec<String> = s
        .groups
        .iter()
        .map(|(g, i)| {
            format!(
                "{}: master {}, epoch {}, SyncStateSet {:?} (epoch {})",
                group_name(*g),
                i.master.map_or("none".into(), |m| format!("brokerId {m}")),
                i.master_epoch,
                i.sync_state_set,
                i.sync_state_set_epoch
            )
        })
        .collect();
    let live: Vec<&str> = s.live.keys().map(|id| names.of(*id)).collect();
    format!("controller: {}; live [{}]", groups.join("; "), live.join(", "))
}

fn show_namesrv(s: &NameServerState, names: Names<'_>) -> String {
    let live: Vec<String> = s
        .live
        .iter()
        .map(|(id, (g, b))| format!("{} ({} brokerId {b})", names.of(*id), group_name(*g)))
        .collect();
    format!("NameServer: live brokers [{}]", live.join(", "))
}

fn show_broker(s: &BrokerState, names: Names<'_>) -> String {
    let log = &s.disk.commitlog;
    let entries: Vec<String> = log
        .entries
        .iter()
        .map(|m| format!("{}→q{}", m.msg, m.queue))
        .collect();
    let cqs: Vec<String> = s
        .cq
        .queues
        .iter()
        .map(|(q, v)| format!("q{q}: {}", v.len()))
        .collect();
    let role = match &s.dl {
        Some(dl) => format!(
            "{} ({:?} of term {}, committed {}) ",
            if s.master { "master" } else { "slave" },
            dl.role,
            s.disk.dledger.term,
            dl.committed
        ),
        None => match &s.ctl {
            Some(r) => format!(
                "{} (epoch {}, SyncStateSet {:?}, confirm {}, epochs {:?}) ",
                if s.master { "master" } else { "slave" },
                r.master_epoch,
                r.sync_state_set,
                r.confirm,
                s.disk.epochs
            ),
            None => if s.master { "master" } else { "slave" }.to_string(),
        },
    };
    let mut out = format!(
        "{}: CommitLog [{}] flushed {} of {}, dispatched {}; ConsumeQueues [{}]; offsets [{}]",
        role.trim_end(),
        entries.join(" "),
        log.flushed,
        log.end(),
        s.cq.dispatched,
        cqs.join(", "),
        pairs(s.offsets.iter().map(|(q, o)| (format!("q{q}"), o)))
    );
    if !s.slaves.is_empty() {
        let acks: Vec<String> = s
            .slaves
            .iter()
            .map(|(id, a)| format!("{}: {a}", names.of(*id)))
            .collect();
        out += &format!("; slaves acked [{}]", acks.join(", "));
    }
    if !s.puts.is_empty() {
        out += &format!("; {} puts waiting", s.puts.len());
    }
    if !s.consumers.is_empty() {
        out += &format!(
            "; consumers [{}]",
            pairs(s.consumers.iter().map(|(id, c)| (names.of(*id), c)))
        );
    }
    if !s.locks.is_empty() {
        out += &format!(
            "; locks [{}]",
            pairs(s.locks.iter().map(|(q, c)| (format!("q{q}"), c)))
        );
    }
    out
}

fn show_producer(s: &ProducerState) -> String {
    let sending = match &s.sending {
        Some(x) => format!(
            "sending {} to {} ({} attempts left)",
            x.msg, x.mq, x.attempts_left
        ),
        None => "idle".into(),
    };
    format!(
        "producer: next message {}, {sending}; {} observations",
        s.next,
        s.app.len()
    )
}

fn show_consumer(s: &ConsumerState) -> String {
    let pqs: Vec<String> = s
        .pqs
        .iter()
        .map(|(mq, pq)| {
            format!(
                "{mq} next {} holding {}{}",
                pq.next_offset.map_or("?".into(), |n| n.to_string()),
                pq.msgs.len(),
                if pq.locked { " locked" } else { "" }
            )
        })
        .collect();
    format!(
        "consumer: queues [{}]; offsets [{}]; {} handlers busy; {} observations",
        pqs.join("; "),
        pairs(&s.offsets),
        s.running.len(),
        s.app.len()
    )
}

/// A node's state in a few lines, for the Stateright Explorer.
pub(super) fn show(state: &RocketState, names: Names<'_>) -> String {
    match state {
        RocketState::NameServer(s) => show_namesrv(s, names),
        RocketState::Controller(s) => show_controller(s, names),
        RocketState::Broker(s) => show_broker(s, names),
        RocketState::Producer(s) => show_producer(s),
        RocketState::Consumer(s) => show_consumer(s),
    }
}

