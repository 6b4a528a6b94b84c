//! OpenWire, reduced to the commands the model needs, and KahaDB's journal records.
//!
//! Every command a client sends carries the number of its connection (`conn`): a client that
//! reconnects opens a new one, and the broker ignores what arrives on a connection it closed.

use super::kahadb::KahaDb;
use mqcheck_invariants::MsgId;
use std::fmt;

/// The broker's sequence number for a message in the queue (`MessageId.brokerSequenceId`): the
/// queue's order, and what acknowledgements name.
pub type Seq = u64;

/// `MessageAck`'s types, as far as one queue needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AckType {
    /// `STANDARD_ACK_TYPE`: the messages are consumed; the broker removes them.
    Standard,
    /// `INDIVIDUAL_ACK_TYPE`: one message consumed.
    Individual,
    /// `POISON_ACK_TYPE`: past the redelivery limit; the broker moves the message to
    /// `ActiveMQ.DLQ` (a non-persistent one is discarded).
    Poison,
    /// `REDELIVERED_ACK_TYPE`: the client rolled the message back and will redeliver it itself;
    /// the broker counts the redelivery.
    Redelivered,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AmqMsg {
    /// Not a wire message: the client library's (or broker's) notice that the TCP connection to
    /// the sender was reset.
    Disconnected,

    // Client → broker.
    /// `ConnectionInfo` and `SessionInfo`: opens connection `conn`; `fault_tolerant` from a
    /// `failover:` transport, whose replayed sends the broker checks for duplicates.
    Connect { conn: u32, fault_tolerant: bool },
    /// `ConsumerInfo` on the queue, sent once the connection is open; the prefetch is the
    /// broker's `queuePrefetch`.
    ConsumerInfo { conn: u32 },
    /// `MessageSend`; `response_required` for a synchronous send. `producer` is the incarnation
    /// of the producer's `ProducerId`, and the message's `seq` its producer sequence number;
    /// `group` its `JMSXGroupID` (`messageGroups`: the workload's key); `transaction` the
    /// `LocalTransactionId` of a transacted session's send, which the broker holds until the
    /// commit.
    MessageSend {
        conn: u32,
        command: u32,
        producer: u32,
        msg: MsgId,
        persistent: bool,
        response_required: bool,
        group: Option<u32>,
        transaction: Option<u64>,
    },
    /// `TransactionInfo` `COMMIT_ONE_PHASE` for the connection's local transaction `txn`: it
    /// requires a response, which the broker sends once the commit is journalled.
    Commit { conn: u32, command: u32, txn: u64 },
    /// `TransactionInfo` `ROLLBACK`: the broker forgets the transaction's sends.
    Rollback { conn: u32, txn: u64 },
    /// `MessageAck` for the listed messages; `response_required` for a transacted session's
    /// commit (`TransactionInfo`), which needs a response and so an fsync.
    MessageAck {
        conn: u32,
        kind: AckType,
        seqs: Vec<Seq>,
        response_required: bool,
    },

    // Broker → client.
    /// The connection's `Response`: the client may send.
    Connected { conn: u32 },
    /// `Response` to a command that required one.
    Response { conn: u32, command: u32 },
    /// `MessageDispatch`. `redelivery_counter` > 0 makes `JMSRedelivered` true; `producer` is
    /// the incarnation of the sender's `ProducerId`, part of the `MessageId`.
    MessageDispatch {
        conn: u32,
        seq: Seq,
        msg: MsgId,
        producer: u32,
        redelivery_counter: u32,
    },
    /// The broker closed the connection (its inactivity monitor gave up on the client): the
    /// client reads the end of the stream.
    Closed { conn: u32 },

    /// `KeepAliveInfo`, both ways: the inactivity monitor's heartbeat.
    KeepAlive { conn: u32 },

    // Broker ↔ the shared store (`failover=true`): the file server holding KahaDB and its lock
    // file, and the database holding the lease.
    /// A broker process started: its machine's file-system client introduces itself afresh (a
    /// new boot verifier). If the store never saw the earlier process close, its machine went
    /// down: what it left unflushed is gone and its file lock is released.
    Hello,
    /// `LockFile.lock`: a non-blocking `tryLock` on `KahaDB/lock`.
    TryLock,
    /// The answer to `TryLock`.
    Locked { granted: bool },
    /// `LeaseDatabaseLocker.doStart`'s statement, with the broker's clock `now`:
    /// `UPDATE ACTIVEMQ_LOCK SET BROKER_NAME=?, TIME=now+lease WHERE (TIME IS NULL OR TIME < now)`.
    LeaseObtain { time: u64, now: u64 },
    /// `LeaseDatabaseLocker.keepAlive`: `UPDATE ACTIVEMQ_LOCK SET BROKER_NAME=?, TIME=now+lease
    /// WHERE BROKER_NAME=?`.
    LeaseUpdate { time: u64 },
    /// The statement's update count: one row, or none.
    LeaseResult { updated: bool },
    /// The new master reads the journal to recover from it.
    ReadJournal,
    /// The journal as the store holds it.
    Journal { journal: KahaDb },
    /// `DataFileAppender` writes a batch to the shared file, forced to disk if `sync`.
    Write { records: Vec<Record>, sync: bool },
    /// The write (and its fsync) completed.
    Written,
    /// `journalDiskSyncStrategy=periodic`: the checkpoint thread's fsync.
    Sync,
    /// The journal's files closed (a broker stopping): what it wrote reaches the store.
    Flush,
    /// The NTP daemon's poll of the time server (the store's host, whose clock is correct).
    NtpQuery,
    /// The time server's clock, in ms.
    NtpTime { ms: u64 },
}

/// One KahaDB journal record (`KahaAddMessageCommand`, `KahaRemoveMessageCommand`,
/// `KahaUpdateMessageCommand`); the index is derived from them by replay.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Record {
    /// A persistent message added to the queue, sent by producer incarnation `producer`, with
    /// its `JMSXGroupID`.
    Add {
        seq: Seq,
        msg: MsgId,
        producer: u32,
        group: Option<u32>,
    },
    /// A message acknowledged: removed from the queue.
    Remove { seq: Seq },
    /// A message moved to `ActiveMQ.DLQ` (a poison ack).
    DeadLetter { seq: Seq },
    /// The redelivered flag written before a first dispatch (`persistJMSRedelivered`).
    Redelivered { seq: Seq },
}

impl fmt::Display for AckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AckType::Standard => "standard",
            AckType::Individual => "individual",
            AckType::Poison => "poison",
            AckType::Redelivered => "redelivered",
        })
    }
}

impl fmt::Display for AmqMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AmqMsg::Disconnected => f.write_str("connection reset"),
            AmqMsg::Connect {
                conn,
                fault_tolerant,
            } => {
                write!(f, "ConnectionInfo conn {conn}")?;
                if *fault_tolerant {
                    f.write_str(" (failover)")?;
                }
                Ok(())
            }
            AmqMsg::ConsumerInfo { conn } => write!(f, "ConsumerInfo on conn {conn}"),
            AmqMsg::MessageSend {
                msg,
                persistent,
                response_required,
                transaction,
                ..
            } => write!(
                f,
                "MessageSend {msg} {}{}{}",
                if *persistent {
                    "persistent"
                } else {
                    "non-persistent"
                },
                if *response_required {
                    ", response required"
                } else {
                    ", one-way"
                },
                match transaction {
                    Some(txn) => format!(" in transaction {txn}"),
                    None => String::new(),
                }
            ),
            AmqMsg::Commit { txn, .. } => write!(f, "TransactionInfo COMMIT_ONE_PHASE {txn}"),
            AmqMsg::Rollback { txn, .. } => write!(f, "TransactionInfo ROLLBACK {txn}"),
            AmqMsg::MessageAck {
                kind,
                seqs,
                response_required,
                ..
            } => {
                let seqs: Vec<String> = seqs.iter().map(|s| format!("#{s}")).collect();
                write!(f, "MessageAck {kind} [{}]", seqs.join(" "))?;
                if *response_required {
                    f.write_str(" + commit")?;
                }
                Ok(())
            }
            AmqMsg::Connected { conn } => write!(f, "Response to ConnectionInfo conn {conn}"),
            AmqMsg::Response { command, .. } => write!(f, "Response to command {command}"),
            AmqMsg::MessageDispatch {
                seq,
                msg,
                redelivery_counter,
                ..
            } => {
                write!(f, "MessageDispatch #{seq} {msg}")?;
                if *redelivery_counter > 0 {
                    write!(f, " redeliveryCounter={redelivery_counter}")?;
                }
                Ok(())
            }
            AmqMsg::Closed { conn } => write!(f, "connection {conn} closed by the broker"),
            AmqMsg::KeepAlive { .. } => f.write_str("KeepAliveInfo"),
            AmqMsg::Hello => f.write_str("file-system client up (new boot verifier)"),
            AmqMsg::TryLock => f.write_str("tryLock KahaDB/lock"),
            AmqMsg::Locked { granted: true } => f.write_str("lock granted"),
            AmqMsg::Locked { granted: false } => f.write_str("lock held by another process"),
            AmqMsg::LeaseObtain { time, now } => write!(
                f,
                "lease obtain: TIME={} WHERE TIME < {}",
                secs(*time),
                secs(*now)
            ),
            AmqMsg::LeaseUpdate { time } => write!(f, "lease keep-alive: TIME={}", secs(*time)),
            AmqMsg::LeaseResult { updated } => {
                write!(f, "lease statement updated {} row(s)", u8::from(*updated))
            }
            AmqMsg::ReadJournal => f.write_str("read the journal"),
            AmqMsg::Journal { journal } => write!(f, "journal of {} records", journal.journal.len()),
            AmqMsg::Write { records, sync } => {
                write!(f, "journal write of {} records", records.len())?;
                if *sync {
                    f.write_str(" + fsync")?;
                }
                Ok(())
            }
            AmqMsg::Written => f.write_str("journal write done"),
            AmqMsg::Sync => f.write_str("journal fsync"),
            AmqMsg::Flush => f.write_str("journal closed"),
            AmqMsg::NtpQuery => f.write_str("NTP poll"),
            AmqMsg::NtpTime { ms } => write!(f, "NTP time {}", secs(*ms)),
        }
    }
}

/// A clock reading in ms as seconds: `12.300s`.
fn secs(ms: u64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}
