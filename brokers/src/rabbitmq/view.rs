//! RabbitMQ as a reader sees it: messages in a trace, node states in the Stateright Explorer.

use super::{
    client, Boot, ClassicState, Command, Entry, Epoch, Member, NodeDisk, QuorumState, RabbitMsg,
    RabbitState, RaftRole, StreamState,
};
use mqcheck_invariants::{MsgId, Op};
use crate::Names;

/// A message in a trace, in RabbitMQ's vocabulary; `None` for chatter.
pub(super) fn describe(msg: &RabbitMsg) -> Option<String> {
    match msg {
        RabbitMsg::Tick | RabbitMsg::Heartbeat => None,
        RabbitMsg::AppendEntries { entries, .. } if entries.is_empty() => None,
        RabbitMsg::AppendReply { success: true, .. } => None,
        RabbitMsg::StreamChunks { chunks, .. } if chunks.is_empty() => None,
        RabbitMsg::StreamAck { success: true, .. } => None,
        m => Some(m.to_string()),
    }
}

/// Votes granted (elections), refused appends (a follower's log diverged and is cut back),
/// queue records (a mirrored queue's leader and mirrors), synchronisations, and nodes seen down
/// or stopping.
pub(super) fn notable(msg: &RabbitMsg) -> bool {
    matches!(
        msg,
        RabbitMsg::Vote { granted: true, .. }
            | RabbitMsg::AppendReply { success: false, .. }
            | RabbitMsg::QueueRecord { .. }
            | RabbitMsg::MirrorSync { .. }
            | RabbitMsg::TickDown
            | RabbitMsg::Stopping
            | RabbitMsg::WaitForTables
            | RabbitMsg::Tables { .. }
            | RabbitMsg::NodeUp
            | RabbitMsg::StreamStart { .. }
            | RabbitMsg::StreamFenced { .. }
            | RabbitMsg::StreamAck { success: false, .. }
    )
}

/// `basic.qos`: 0 is no limit.
fn prefetch(n: u32) -> String {
    if n == 0 {
        "prefetch unlimited".to_string()
    } else {
        format!("prefetch {n}")
    }
}

/// A Raft log entry in a few characters: `2:enqueue p0:1`, `2:settle 3` (a settle, return or
/// discard names the index of the enqueue it removes).
fn entry(e: &Entry, names: Names<'_>) -> String {
    let command = match &e.command {
        Command::Noop => "noop".to_string(),
        Command::Enqueue { msg, .. } => format!("enqueue {msg}"),
        Command::Checkout {
            consumer, prefetch, ..
        } => format!("checkout {} prefetch={prefetch}", names.of(*consumer)),
        Command::Settle { id, .. } => format!("settle {id}"),
        Command::Return { id, .. } => format!("return {id}"),
        Command::Discard { id, .. } => format!("discard {id}"),
        Command::Down { consumer, .. } => format!("down {}", names.of(*consumer)),
    };
    format!("{}:{command}", e.term)
}

/// A quorum queue member: its Raft role, log and commit index, and the `rabbit_fifo` state it
/// applied: ready messages (`(redelivered)` once handed out before, with the returns counted
/// against `delivery-limit`), each consumer's unsettled messages and prefetch (and whether it
/// waits behind a single active consumer), and the dead-letter queue with each message's
/// `x-death` reason.
fn show_quorum(q: &QuorumState, names: Names<'_>) -> String {
    let role = match &q.role {
        RaftRole::Leader { matched, .. } => {
            let matched: Vec<String> = matched
                .iter()
                .map(|(p, i)| format!("{}:{i}", names.of(*p)))
                .collect();
            format!("LEADER term {} matched [{}]", q.term, matched.join(" "))
        }
        RaftRole::Candidate { votes } => {
            format!("candidate term {} votes {}", q.term, names.list(votes))
        }
        RaftRole::Follower => match q.leader {
            Some(l) => format!("follower term {} (leader {})", q.term, names.of(l)),
            None => format!("follower term {} (no leader known)", q.term),
        },
    };
    let log: Vec<String> = q.log.iter().map(|e| entry(e, names)).collect();
    let f = &q.fifo;
    // A ready message goes out redelivered if it was handed out before; a checked-out one
    // went out redelivered if this was not its first delivery.
    let msg = |i: &u64, earlier: u32| {
        f.messages.get(i).map_or(format!("@{i}"), |m| {
            match (m.acquired > earlier, m.delivery_count) {
                (false, _) => m.msg.to_string(),
                (true, 0) => format!("{}(redelivered)", m.msg),
                (true, n) => format!("{}(redelivered, returned {n})", m.msg),
            }
        })
    };
    let ready: Vec<String> = f.ready.iter().map(|i| msg(i, 0)).collect();
    let consumers: Vec<String> = f
        .consumers
        .iter()
        .map(|(c, con)| {
            let unacked: Vec<String> = con.checked_out.iter().map(|i| msg(i, 1)).collect();
            let mode = if con.auto_ack {
                "auto_ack".to_string()
            } else {
                prefetch(con.prefetch)
            };
            let waits = if f.waiting.contains(c) {
                ", waiting"
            } else {
                ""
            };
            format!(
                "consumer {} ({mode}{waits}) unacked [{}]",
                names.of(*c),
                unacked.join(" ")
            )
        })
        .collect();
    let mut out = format!(
        "quorum {role} log=[{}] commit={} applied={}; ready [{}]",
        log.join(" "),
        q.commit,
        q.applied,
        ready.join(" ")
    );
    for c in consumers {
        out += "; ";
        out += &c;
    }
    if !f.dead_letters.is_empty() {
        let dead: Vec<String> = f
            .dead_letters
            .values()
            .map(|d| format!("{}({})", d.msg, d.reason))
            .collect();
        out += &format!("; dead-letter queue [{}]", dead.join(" "));
    }
    out
}

/// A stream member: its role in its epoch, its log (`offset:message` with the chunk's epoch
/// where it differs from the member's), the committed offset, and its channels and readers.
fn show_stream(st: &StreamState, disk: &NodeDisk, names: Names<'_>) -> String {
    let role = match &st.member {
        Member::Writer { replicas } => {
            let acked: Vec<String> = replicas
                .iter()
                .map(|(r, p)| format!("{}={}", names.of(*r), p.acked))
                .collect();
            format!("writer (replicas hold {})", acked.join(" "))
        }
        Member::Replica { writer } => format!("replica of {}", names.of(*writer)),
        Member::Stopped => "stopped".to_string(),
    };
    let log: Vec<String> = disk
        .stream_log
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.epoch == disk.stream_epoch {
                format!("{i}:{}", c.msg)
            } else {
                format!("{i}:{}@{}", c.msg, c.epoch)
            }
        })
        .collect();
    let mut out = format!(
        "stream {role} in epoch {}, log [{}], committed {}",
        disk.stream_epoch,
        log.join(" "),
        st.committed
    );
    if let Some(e) = &st.election {
        out += &format!("; electing for epoch {} ({} stopped)", e.epoch, e.tails.len());
    }
    let pending: usize = st.channels.values().map(|c| c.pending.len()).sum();
    if pending > 0 {
        out += &format!("; {pending} publishes not yet written");
    }
    for (c, r) in &st.readers {
        out += &format!(
            "; {} reads from offset {} (credit {})",
            names.of(*c),
            r.next,
            r.credit
        );
    }
    out
}

/// A classic queue replica: leader or mirror (synchronised or not), under which queue record;
/// the leader's ready messages, unacknowledged deliveries per consumer and confirms waiting on
/// mirrors or the fsync; a mirror's copy.
fn show_classic(c: &ClassicState, disk: &NodeDisk, names: Names<'_>) -> String {
    let Some(record) = &c.record else {
        return "no queue".to_string();
    };
    let rec = format!(
        "record {}.{} leader {} mirrors {} synchronised {}",
        record.epoch,
        record.version,
        names.of(record.leader),
        names.list(&record.mirrors),
        names.list(&record.synced)
    );
    let msg = |id: &u64| {
        c.messages
            .get(id)
            .map_or(format!("@{id}"), |m| m.msg.to_string())
    };
    // A ready message delivered before goes out flagged redelivered (an unacknowledged one
    // may or may not have been: the queue only records that it was delivered).
    let ready_msg = |id: &u64| match c.messages.get(id) {
        Some(m) if m.delivered => format!("{}(redelivered)", m.msg),
        _ => msg(id),
    };
    let store = format!(
        "store {} written, {} fsynced{}",
        disk.store.len(),
        disk.fsynced.len(),
        if c.dirty { ", fsync due" } else { "" }
    );
    if c.leader {
        let ready: Vec<String> = c.ready.iter().map(ready_msg).collect();
        let mut out = format!("queue LEADER ({rec}); ready [{}]", ready.join(" "));
        for (consumer, con) in &c.consumers {
            let unacked: Vec<String> = c
                .unacked
                .iter()
                .filter(|(_, by)| *by == consumer)
                .map(|(id, _)| msg(id))
                .collect();
            let mode = if con.auto_ack {
                "auto_ack".to_string()
            } else {
                prefetch(con.prefetch)
            };
            let waits = match c.active {
                Some(a) if a != *consumer => ", waiting",
                _ => "",
            };
            out += &format!(
                "; consumer {} ({mode}{waits}) unacked [{}]",
                names.of(*consumer),
                unacked.join(" ")
            );
        }
        // Unacknowledged by a consumer that has gone (requeued when it is noticed).
        let orphans: Vec<String> = c
            .unacked
            .iter()
            .filter(|(_, by)| !c.consumers.contains_key(by))
            .map(|(id, by)| format!("{} by {}", msg(id), names.of(*by)))
            .collect();
        if !orphans.is_empty() {
            out += &format!("; unacked by departed consumers [{}]", orphans.join(", "));
        }
        if !c.pending.is_empty() {
            let pending: Vec<String> = c
                .pending
                .iter()
                .map(|(id, p)| {
                    let mut waits = Vec::new();
                    if !p.waiting.is_empty() {
                        waits.push(format!("mirrors {}", names.list(&p.waiting)));
                    }
                    if p.fsync {
                        waits.push("fsync".to_string());
                    }
                    format!("{} waits for {}", msg(id), waits.join(" + "))
                })
                .collect();
            out += &format!("; unconfirmed: {}", pending.join(", "));
        }
        if !c.joined_at.is_empty() {
            let joined: Vec<String> = c
                .joined_at
                .iter()
                .map(|(m, at)| format!("{} from @{at}", names.of(*m)))
                .collect();
            out += &format!("; unsynchronised mirrors {}", joined.join(", "));
        }
        format!("{out}; {store}")
    } else if c.mirror {
        let held: Vec<String> = c.messages.keys().map(msg).collect();
        format!(
            "queue mirror of {} ({}) ({rec}); holds [{}]",
            names.of(record.leader),
            if c.in_sync {
                "synchronised"
            } else {
                "unsynchronised"
            },
            held.join(" ")
        )
    } else {
        format!("no replica ({rec})")
    }
}

/// A client's AMQP connection: `connection to n1 open (channel 2)`, or the node it is dialling.
fn show_connection(c: &client::Connection, names: Names<'_>) -> String {
    if c.open {
        format!(
            "connection to {} open (channel {})",
            names.of(c.node),
            c.channel
        )
    } else {
        format!(
            "dialling {} (channel {} closed)",
            names.of(c.node),
            c.channel
        )
    }
}

/// A node's state in a few words, for the Stateright Explorer: its view of the cluster (peers
/// down, partitioned, paused), its clients, and its replica of the queue; a publisher's
/// unconfirmed messages; a consumer's unacknowledged deliveries.
pub(super) fn show(state: &RabbitState, names: Names<'_>) -> String {
    match state {
        RabbitState::Node(n) => {
            let mut view = Vec::new();
            if n.paused {
                view.push("PAUSED (minority)".to_string());
            }
            if n.pausing {
                view.push("pausing (rabbit:stop() under way)".to_string());
            }
            match &n.boot {
                Boot::Running => {}
                Boot::Waiting { retries, .. } => {
                    view.push(format!("waiting for Mnesia tables ({retries} retries left)"))
                }
                Boot::Failed => view.push("BOOT FAILED (timeout_waiting_for_tables)".to_string()),
            }
            view.push(if n.down.is_empty() {
                "all peers up".to_string()
            } else {
                format!("peers down {}", names.list(&n.down))
            });
            if !n.partitioned.is_empty() {
                view.push(format!("partitioned from {}", names.list(&n.partitioned)));
            }
            view.push(format!("clients {}", names.list(n.clients.iter())));
            // A quorum queue node has no classic queue record, and the other way round.
            let queue = if n.classic.record.is_some() {
                show_classic(&n.classic, &n.disk, names)
            } else if n.disk.stream_epoch != Epoch::default() {
                show_stream(&n.stream, &n.disk, names)
            } else {
                show_quorum(&n.quorum, names)
            };
            format!("node: {}; {queue}", view.join(", "))
        }
        RabbitState::Publisher(p) => {
            // The producer's index, from the application's own record of its sends.
            let producer = p.app.iter().find_map(|op| match op {
                Op::Send { msg, .. } => Some(msg.producer),
                _ => None,
            });
            let m = |seq: u32| match producer {
                Some(producer) => MsgId { producer, seq }.to_string(),
                None => format!("#{seq}"),
            };
            let unconfirmed: Vec<String> = p
                .unconfirmed
                .iter()
                .map(|(seq, msg)| format!("{}@{seq}", m(*msg)))
                .collect();
            let outstanding: Vec<String> = p.outstanding.iter().map(|x| m(*x)).collect();
            let mut out = format!(
                "publisher: {}, next message {}; unconfirmed on this channel [{}]; awaiting confirm [{}]",
                show_connection(&p.conn, names),
                p.next,
                unconfirmed.join(" "),
                outstanding.join(" ")
            );
            if !p.republish.is_empty() {
                let again: Vec<String> = p.republish.iter().map(|x| m(*x)).collect();
                out += &format!("; to republish [{}]", again.join(" "));
            }
            format!("{out}; {} observations", p.app.len())
        }
        RabbitState::Consumer(c) => {
            let delivery = |d: &client::Delivery| {
                if d.redelivered {
                    format!("{}(redelivered)", d.msg)
                } else {
                    d.msg.to_string()
                }
            };
            let buffered: Vec<String> = c.buffer.iter().map(delivery).collect();
            let handling = match &c.handling {
                Some((d, true)) => format!("handling {} (will fail)", delivery(d)),
                Some((d, false)) => format!("handling {}", delivery(d)),
                None => "idle".to_string(),
            };
            format!(
                "consumer: {}; {handling}; buffered [{}]; {} deliveries on this channel; {} observations",
                show_connection(&c.conn, names),
                buffered.join(" "),
                c.held.len(),
                c.app.len()
            )
        }
    }
}
