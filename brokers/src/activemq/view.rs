//! ActiveMQ as a reader sees it: commands in a trace, node states in the Stateright Explorer.

use super::{AmqMsg, AmqState, BrokerState, ConsumerState, Phase, ProducerState, Record, StoreState};
use crate::Names;

/// A command in a trace, in OpenWire's vocabulary; `None` for keep-alives and the clocks'
/// NTP polls.
pub(super) fn describe(msg: &AmqMsg) -> Option<String> {
    match msg {
        AmqMsg::KeepAlive { .. } | AmqMsg::NtpQuery | AmqMsg::NtpTime { .. } => None,
        m => Some(m.to_string()),
    }
}

/// Connections opened and closed by the broker; a lock or lease taken or refused, a journal
/// read to recover.
pub(super) fn notable(msg: &AmqMsg) -> bool {
    matches!(
        msg,
        AmqMsg::Connected { .. }
            | AmqMsg::Closed { .. }
            | AmqMsg::Locked { .. }
            | AmqMsg::LeaseResult { .. }
            | AmqMsg::Journal { .. }
    )
}

fn record(r: &Record) -> String {
    match r {
        Record::Add { seq, msg, .. } => format!("add #{seq} {msg}"),
        Record::Remove { seq } => format!("remove #{seq}"),
        Record::DeadLetter { seq } => format!("dlq #{seq}"),
        Record::Redelivered { seq } => format!("redelivered #{seq}"),
    }
}

/// The broker: the journal (`|` after the fsynced records), the appender's batch, the queue
/// with each message's consumer and redelivery counter, the DLQ, the connections.
fn show_broker(s: &BrokerState, names: Names<'_>) -> String {
    let mut journal: Vec<String> = s.store.journal.iter().map(record).collect();
    journal.insert(s.store.fsynced, "|".to_string());
    let batch: Vec<String> = s
        .batch
        .iter()
        .map(|p| match &p.record {
            Some(r) => record(r) + if p.sync { " (sync)" } else { "" },
            None => "cancelled".to_string(),
        })
        .collect();
    let queue: Vec<String> = s
        .queue
        .iter()
        .map(|(seq, e)| {
            let mut t = format!("#{seq} {}", e.msg);
            if !e.persistent {
                t += " (non-persistent)";
            }
            if e.redelivery_counter > 0 {
                t += &format!(" (redelivered {})", e.redelivery_counter);
            }
            if let Some(c) = e.dispatched {
                t += &format!(" → {}", names.of(c));
            }
            t
        })
        .collect();
    let conns: Vec<String> = s
        .connections
        .iter()
        .map(|(id, c)| {
            let kind = if c.consumer.is_some() { "consumer" } else { "producer" };
            let mut t = format!("{} conn {} ({kind})", names.of(*id), c.conn);
            if !c.transaction.is_empty() {
                let held: Vec<String> = c.transaction.iter().map(|h| h.entry.msg.to_string()).collect();
                t += &format!(" transaction [{}]", held.join(" "));
            }
            t
        })
        .collect();
    let role = match &s.ha {
        None => String::new(),
        Some(ha) => {
            let phase = match ha.phase {
                Phase::Slave => "slave (waiting for the lock)",
                Phase::Recovering => "locked, recovering",
                Phase::Master => "master",
            };
            match ha.clock {
                Some(ms) => format!("{phase}, clock {}.{:03}s; ", ms / 1000, ms % 1000),
                None => format!("{phase}; "),
            }
        }
    };
    format!(
        "{role}journal [{}] batch [{}]; queue [{}]; ActiveMQ.DLQ {}; connections [{}]",
        journal.join(" "),
        batch.join(" "),
        queue.join(", "),
        s.dead_letters.len(),
        conns.join(", ")
    )
}

fn show_producer(s: &ProducerState) -> String {
    let mut out = format!(
        "conn {}{}; next message {}",
        s.transport.conn,
        if s.transport.open { "" } else { " (connecting)" },
        s.next
    );
    if let Some((_, m)) = s.waiting {
        out += &format!("; blocked in send of message {m}");
    }
    if !s.open.is_empty() {
        let seqs: Vec<String> = s.open.iter().map(|(_, m)| m.to_string()).collect();
        out += &format!("; transaction {} [{}]", s.txn, seqs.join(" "));
    }
    if let Some((_, msgs)) = &s.committing {
        let seqs: Vec<String> = msgs.iter().map(u32::to_string).collect();
        out += &format!("; committing transaction {} [{}]", s.txn, seqs.join(" "));
    }
    if !s.resend.is_empty() {
        let seqs: Vec<String> = s.resend.iter().map(u32::to_string).collect();
        out += &format!("; outbox [{}]", seqs.join(" "));
    }
    out
}

fn show_consumer(s: &ConsumerState) -> String {
    let buffer: Vec<String> = s.buffer.iter().map(|d| format!("#{} {}", d.seq, d.msg)).collect();
    let mut out = format!(
        "conn {}{}; prefetched [{}]",
        s.transport.conn,
        if s.transport.open { "" } else { " (connecting)" },
        buffer.join(" ")
    );
    if let Some(h) = &s.handling {
        out += &format!(
            "; handling #{} {}{}",
            h.d.seq,
            h.d.msg,
            if h.fails { " (will throw)" } else { "" }
        );
    }
    if !s.delivered.is_empty() {
        let d: Vec<String> = s.delivered.iter().map(|(d, _)| format!("#{}", d.seq)).collect();
        out += &format!("; delivered, unacknowledged [{}]", d.join(" "));
    }
    if !s.redelivering.is_empty() {
        let d: Vec<String> = s.redelivering.keys().map(|seq| format!("#{seq}")).collect();
        out += &format!(
            "; redelivery pending [{}]{}",
            d.join(" "),
            if s.blocked { " (blocking)" } else { "" }
        );
    }
    out
}

/// The shared store: the journal both brokers read, each machine's unflushed writes, the lock
/// file's holder and the lease row.
fn show_store(s: &StoreState, names: Names<'_>) -> String {
    let journal: Vec<String> = s.journal.journal.iter().map(record).collect();
    let unflushed: Vec<String> = s
        .unflushed
        .iter()
        .map(|(id, r)| format!("{} {}", names.of(*id), r.len()))
        .collect();
    let mut out = format!(
        "journal [{}]; unflushed [{}]; KahaDB/lock {}",
        journal.join(" "),
        unflushed.join(", "),
        s.lock.map_or("free", |id| names.of(id))
    );
    if let Some((holder, time)) = s.lease {
        out += &format!("; lease {} until {}.{:03}s", names.of(holder), time / 1000, time % 1000);
    }
    if let Some(ms) = s.clock {
        out += &format!("; clock {}.{:03}s", ms / 1000, ms % 1000);
    }
    out
}

pub(super) fn show(state: &AmqState, names: Names<'_>) -> String {
    match state {
        AmqState::Store(s) => show_store(s, names),
        AmqState::Broker(b) => show_broker(b, names),
        AmqState::Producer(p) => show_producer(p),
        AmqState::Consumer(c) => show_consumer(c),
    }
}
