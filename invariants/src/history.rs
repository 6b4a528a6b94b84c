//! The history: what clients observed, in the order the harness saw it.
//!
//! Clients record observations as the application would see them through the client API — never
//! the broker's internal state. A checker only ever sees a [`History`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one message: the producer that sent it and its position in that producer's send
/// order (0, 1, 2, …). The position doubles as the send order the ordering checker compares with.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct MsgId {
    pub producer: u32,
    pub seq: u32,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}:{}", self.producer, self.seq)
    }
}

/// A consumer group (Kafka), a queue's set of consumers (RabbitMQ), a subscriber (ZeroMQ):
/// one logical receiver that should see every message addressed to it once.
pub type GroupId = u32;

/// One observation, as the client API reported it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// The application invoked send. `scope` names the ordering scope the broker promises order
    /// within (Kafka: the partition; RabbitMQ: the publisher's channel, one per connection; ZeroMQ:
    /// none, 0); order is compared per (scope, producer), with the scope the delivery names, inside
    /// the broker's [`OrderingPromise`](crate::OrderingPromise).
    /// `audience` lists the groups that should receive this message if it is acknowledged.
    /// `key` is the message's key, when the workload gives messages keys (`--keys`).
    Send {
        msg: MsgId,
        scope: u32,
        audience: Vec<GroupId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<u32>,
    },
    /// A restarted producer application found `msg` in its outbox — sent, never acknowledged —
    /// and sends it again, in a new producer session: deduplication that keys on the producer's
    /// session (Kafka's idempotent producer id, ActiveMQ's producer audit) does not span it.
    Resend { msg: MsgId },
    /// The client API reported the send successful (ack, confirm, `zmq_send` returned).
    Ack { msg: MsgId },
    /// The client API reported a definite failure: the message may or may not be stored.
    Fail { msg: MsgId, reason: String },
    /// The message was handed to the application's handler in `group`, by consumer `consumer`.
    /// `position` is the broker's position of the message in its scope (Kafka offset, queue
    /// sequence) where the protocol exposes one. `scope` is the ordering scope (Kafka: the
    /// partition; RabbitMQ: the channel the message was published on; ZeroMQ: the receiving
    /// consumer). `session` increases whenever the consumer's assignment changes (rebalance,
    /// restart): skips and rewinds are allowed across sessions (RabbitMQ: the consumer's channel;
    /// ZeroMQ: the connection the message came over). `redelivered` is the protocol's redelivered
    /// flag, where it has one.
    Deliver {
        msg: MsgId,
        group: GroupId,
        consumer: u32,
        scope: u32,
        position: Option<u64>,
        session: u64,
        redelivered: Option<bool>,
    },
    /// The consumer committed (acknowledged) progress up to `position` in `scope`.
    Commit {
        group: GroupId,
        consumer: u32,
        scope: u32,
        position: u64,
    },
    /// The model saw a node throw the message away on purpose: a high-water mark, a queue
    /// length limit, a dead-letter after the delivery limit. Not an observation any client API
    /// offers (ZeroMQ's PUB drops silently) but the model's own note, so a checker can say why an
    /// acknowledged message never arrived; no checker counts it as a delivery.
    Discard { msg: MsgId, reason: String },
    /// The model saw the broker dead-letter the message by its own policy: the delivery limit
    /// (RabbitMQ's `delivery-limit`, ActiveMQ's `maximumRedeliveries`, RocketMQ's
    /// `maxReconsumeTimes`) or a consumer's reject without requeue. It goes to the dead-letter
    /// queue where one is configured, or is dropped; either way the group it was sent to never
    /// gets it, by design rather than by a fault. Like [`Op::Discard`], the model's note, no
    /// delivery.
    DeadLetter { msg: MsgId, reason: String },
    /// The consumer moved its position in `scope` back, to read again what it had read: from
    /// `from` (the next position it would have read) to `to` (Kafka's `seek`, RocketMQ's
    /// `resetOffsetByTime`). Its deliveries in `scope` from `to` up to `from`, in the same
    /// `session`, are the replay the replay checker compares with what was read there before.
    Rewind {
        group: GroupId,
        consumer: u32,
        scope: u32,
        session: u64,
        from: u64,
        to: u64,
    },
    /// One poll returned `consumer` records of `scope` from position `from` up to `to`
    /// (exclusive) with positions between them that no application reads (Kafka's transaction
    /// markers and the records of aborted transactions). The deliveries of those positions are
    /// one client operation, so a position known to hold a message that they jump over was
    /// skipped inside one poll (Jepsen's `int-poll-skip`). A poll whose records are contiguous
    /// cannot skip inside itself and is not recorded.
    Poll {
        group: GroupId,
        consumer: u32,
        scope: u32,
        from: u64,
        to: u64,
    },
    /// The application sent these messages as the parts of one multipart message (ZeroMQ's
    /// `ZMQ_SNDMORE` frames): a receiver gets all of them, consecutively, or none.
    Multipart { parts: Vec<MsgId> },
    /// The application ended a transaction and the client API said how: its messages are
    /// visible to consumers all together or not at all. `txn` names the transaction (unique in
    /// the run; the producer's own numbering is enough when it is unique across producers).
    /// Recorded when the client learns the outcome: a commit the broker confirmed
    /// ([`TxnOutcome::Committed`], the messages also get an [`Op::Ack`]), an abort or a rollback
    /// ([`TxnOutcome::Aborted`]), or a commit whose fate the client could not learn
    /// ([`TxnOutcome::InDoubt`]).
    Transaction {
        txn: u64,
        msgs: Vec<MsgId>,
        outcome: TxnOutcome,
    },
}

/// How a transaction ended, as the client API reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnOutcome {
    Committed,
    Aborted,
    InDoubt,
}

impl TxnOutcome {
    pub fn name(self) -> &'static str {
        match self {
            TxnOutcome::Committed => "committed",
            TxnOutcome::Aborted => "aborted",
            TxnOutcome::InDoubt => "in doubt",
        }
    }
}

/// An observation with the simulated time (ms) and the node that made it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    pub time_ms: u64,
    pub node: String,
    pub op: Op,
}

/// Everything the clients observed in one run, in harness order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
}

impl History {
    pub fn new(events: Vec<Event>) -> Self {
        Self { events }
    }

    pub fn push(&mut self, time_ms: u64, node: impl Into<String>, op: Op) {
        self.events.push(Event {
            time_ms,
            node: node.into(),
            op,
        });
    }

    /// Has the run nothing left to wait for? Every send was answered (acknowledged or failed),
    /// every acknowledged message reached every group of its audience, every transaction in
    /// doubt that a group saw part of reached that group whole (the rest may still be on its
    /// way), and every rewound consumer read its way back to where it had been (or began a new
    /// session). A driver may end its final drain early once this holds, as Jepsen's final reads
    /// stop once they read everything.
    pub fn settled(&self) -> bool {
        use std::collections::BTreeSet;
        let mut in_doubt: Vec<&[MsgId]> = Vec::new();
        let mut sent: Vec<(MsgId, &[GroupId])> = Vec::new();
        let mut answered = BTreeSet::new();
        let mut acked = BTreeSet::new();
        let mut delivered = BTreeSet::new();
        for e in &self.events {
            match &e.op {
                Op::Send { msg, audience, .. } => sent.push((*msg, audience)),
                Op::Ack { msg } => {
                    answered.insert(*msg);
                    acked.insert(*msg);
                }
                Op::Fail { msg, .. } => {
                    answered.insert(*msg);
                }
                Op::Deliver { msg, group, .. } => {
                    delivered.insert((*msg, *group));
                }
                Op::Commit { .. }
                | Op::Resend { .. }
                | Op::Discard { .. }
                | Op::DeadLetter { .. }
                | Op::Rewind { .. }
                | Op::Poll { .. }
                | Op::Multipart { .. } => {}
                Op::Transaction { msgs, outcome, .. } => {
                    if *outcome == TxnOutcome::InDoubt {
                        in_doubt.push(msgs);
                    }
                }
            }
        }
        let audience: std::collections::BTreeMap<MsgId, &[GroupId]> =
            sent.iter().copied().collect();
        let torn_so_far = in_doubt.iter().any(|msgs| {
            let groups: BTreeSet<GroupId> = msgs
                .iter()
                .flat_map(|m| audience.get(m).copied().unwrap_or(&[]))
                .copied()
                .collect();
            groups.iter().any(|g| {
                let mine: Vec<&MsgId> = msgs
                    .iter()
                    .filter(|m| audience.get(*m).is_some_and(|a| a.contains(g)))
                    .collect();
                let seen = mine
                    .iter()
                    .filter(|m| delivered.contains(&(***m, *g)))
                    .count();
                seen > 0 && seen < mine.len()
            })
        });
        let replaying = crate::checkers::replays(self)
            .iter()
            .any(|r| r.end == crate::checkers::ReplayEnd::Unfinished);
        !replaying
            && !torn_so_far
            && sent.iter().all(|(msg, audience)| {
                answered.contains(msg)
                    && (!acked.contains(msg)
                        || audience.iter().all(|g| delivered.contains(&(*msg, *g))))
            })
    }

    /// Number of rewinds the consumers made: replay consistency is tested only when there is
    /// one.
    pub fn rewinds(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Rewind { .. }))
            .count()
    }

    /// Number of sends the applications invoked.
    pub fn sends(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Send { .. }))
            .count()
    }

    /// Number of sends the client API reported successful.
    pub fn acks(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Ack { .. }))
            .count()
    }

    /// Number of units that must reach consumers whole: multipart messages and transactions
    /// whose outcome the client learned. Atomicity is only tested when there is one.
    pub fn atomic_units(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Multipart { .. } | Op::Transaction { .. }))
            .count()
    }

    /// Number of deliveries to the application, redeliveries included.
    pub fn deliveries(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e.op, Op::Deliver { .. }))
            .count()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Send {
                msg, scope, key, ..
            } => {
                write!(f, "send {msg} (scope {scope})")?;
                if let Some(k) = key {
                    write!(f, " key {k}")?;
                }
                Ok(())
            }
            Op::Ack { msg } => write!(f, "ack {msg}"),
            Op::Fail { msg, reason } => write!(f, "fail {msg}: {reason}"),
            Op::Deliver {
                msg,
                group,
                position,
                redelivered,
                ..
            } => {
                write!(f, "deliver {msg} to group {group}")?;
                if let Some(p) = position {
                    write!(f, " from position {p}")?;
                }
                if *redelivered == Some(true) {
                    write!(f, " (redelivered)")?;
                }
                Ok(())
            }
            Op::Commit {
                scope, position, ..
            } => write!(f, "commit position {position} of scope {scope}"),
            Op::Resend { msg } => write!(f, "resend {msg} after a restart"),
            Op::Discard { msg, reason } => write!(f, "discard {msg}: {reason}"),
            Op::DeadLetter { msg, reason } => write!(f, "dead-letter {msg}: {reason}"),
            Op::Rewind {
                scope, from, to, ..
            } => write!(f, "rewind scope {scope} from position {from} to {to}"),
            Op::Poll {
                scope, from, to, ..
            } => write!(
                f,
                "poll scope {scope} positions {from}..{to}, not all of them read"
            ),
            Op::Multipart { parts } => {
                let parts: Vec<String> = parts.iter().map(MsgId::to_string).collect();
                write!(f, "multipart [{}]", parts.join(", "))
            }
            Op::Transaction { txn, msgs, outcome } => {
                let msgs: Vec<String> = msgs.iter().map(MsgId::to_string).collect();
                write!(
                    f,
                    "transaction {txn} [{}] {}",
                    msgs.join(", "),
                    outcome.name()
                )
            }
        }
    }
}
