//! Invariant checkers over client histories.
//!
//! Every driver (the madsim simulator, the stateright model checker) records what clients
//! observed as a [`History`]; the functions here turn a history into [`Violation`]s. They are pure:
//! no I/O, no clock, no randomness, and iteration orders are fixed (`BTreeMap`), so a history
//! always yields the same violations in the same order.
//!
//! The definitions follow Jepsen's `total-queue` and Kafka checkers (see
//! `shared/reference/anomalies.md`):
//!
//! - **at-least-once**: a message whose send the client API acknowledged is delivered to every
//!   group in its audience (`lost` otherwise). Needs a full drain before checking.
//! - **at-most-once**: no group has a message handed to its application twice (`duplicate`;
//!   redeliveries count, and so do two copies stored in a log).
//! - **ordering**: within one (scope, producer), each group first delivers messages in send order
//!   (`reordered`); within one consumer session, positions advance one by one (`poll-skip` when a
//!   known position is jumped over, `int-poll-skip` when the jump is inside one poll,
//!   `nonmonotonic-poll` when a position goes backwards). Judged
//!   only inside the broker's [`OrderingPromise`]: what the broker never promised is no violation.
//! - **no-unexpected**: nothing is delivered that was never sent (`unexpected`: a model bug).
//! - **atomicity**: the parts of a multipart message reach a group all or none, and one consumer
//!   hands them to its application consecutively; a committed transaction's messages reach a
//!   group all or none (`torn` otherwise), and an aborted transaction's never (`aborted-read`).
//!   Selectable with `--check atomicity`, and tested only by histories that have a multipart
//!   message or a transaction.
//! - **replay**: a position of a scope holds one message for good (`inconsistent-offsets`,
//!   Jepsen's name), and a consumer that rewinds re-reads what was read before, in position
//!   order, without gaps, up to where it had been (`replay-skip`, `replay-reordered`).
//!   Selectable with `--check replay`, for brokers whose consumers can rewind.

mod checkers;
mod history;
mod secs;

pub use checkers::{
    at_least_once, at_most_once, atomicity, check, multipart, no_unexpected, ordering, replay,
    transactions,
};
pub use history::{Event, GroupId, History, MsgId, Op, TxnOutcome};
pub use secs::{secs, secs_unspaced};

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A delivery property the checkers decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Invariant {
    #[serde(rename = "at-least-once")]
    AtLeastOnce,
    #[serde(rename = "at-most-once")]
    AtMostOnce,
    #[serde(rename = "ordering")]
    Ordering,
    #[serde(rename = "no-unexpected")]
    NoUnexpected,
    #[serde(rename = "atomicity")]
    Atomicity,
    #[serde(rename = "replay")]
    Replay,
}

impl Invariant {
    /// The properties a user selects with `--check`; `no-unexpected` is always checked besides.
    pub const SELECTABLE: [Invariant; 5] = [
        Invariant::AtLeastOnce,
        Invariant::AtMostOnce,
        Invariant::Ordering,
        Invariant::Atomicity,
        Invariant::Replay,
    ];

    /// The comma list `--check` takes when not given: atomicity is asked for where a workload
    /// has transactions or multipart messages, replay where consumers rewind.
    pub const DEFAULT_CHECKS: &'static str = "at-least-once,at-most-once,ordering";

    pub fn name(self) -> &'static str {
        match self {
            Invariant::AtLeastOnce => "at-least-once",
            Invariant::AtMostOnce => "at-most-once",
            Invariant::Ordering => "ordering",
            Invariant::NoUnexpected => "no-unexpected",
            Invariant::Atomicity => "atomicity",
            Invariant::Replay => "replay",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Invariant::SELECTABLE
            .into_iter()
            .chain([Invariant::NoUnexpected])
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                format!("unknown invariant '{s}' (allowed: at-least-once, at-most-once, ordering, atomicity, replay)")
            })
    }
}

/// The order a broker promises, in its own terms: which sends and which deliveries the ordering
/// checker compares. The default promises the most: every send, every delivery, across a group.
///
/// Order is always compared per (group, scope, producer), where the scope is the `scope` field
/// of [`Op::Deliver`]: the unit the broker orders in, as the broker names it (Kafka: the
/// partition; RabbitMQ: the publisher's channel into the queue; ZeroMQ: the receiving socket).
/// Within it, a producer's send order is its messages' `seq` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct OrderingPromise {
    /// Only the order of acknowledged sends is promised: a send that failed or was never
    /// acknowledged may be delivered anywhere, or not at all (OpenChaos's order checker: the
    /// acknowledged sends must be a subsequence of the first deliveries).
    pub acknowledged_only: bool,
    /// A delivery the protocol flags redelivered is outside the promise (RabbitMQ: requeued
    /// messages may come back out of order): it neither breaks the order nor sets it, and is no
    /// step of a consumer's walk over positions.
    pub excludes_redelivered: bool,
    /// Order is promised within one consumer session only (RabbitMQ: one consumer's channel;
    /// ZeroMQ: one connection), not across a group's competing consumers or a reconnect.
    pub per_consumer_session: bool,
}

/// What went wrong, in the names Jepsen's checkers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Lost,
    Duplicate,
    Reordered,
    PollSkip,
    IntPollSkip,
    NonmonotonicPoll,
    Unexpected,
    Torn,
    AbortedRead,
    InconsistentOffsets,
    ReplaySkip,
    ReplayReordered,
    DeadLettered,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lost => "lost",
            Kind::Duplicate => "duplicate",
            Kind::Reordered => "reordered",
            Kind::PollSkip => "poll-skip",
            Kind::IntPollSkip => "int-poll-skip",
            Kind::NonmonotonicPoll => "nonmonotonic-poll",
            Kind::Unexpected => "unexpected",
            Kind::Torn => "torn",
            Kind::AbortedRead => "aborted-read",
            Kind::InconsistentOffsets => "inconsistent-offsets",
            Kind::ReplaySkip => "replay-skip",
            Kind::ReplayReordered => "replay-reordered",
            Kind::DeadLettered => "dead-lettered",
        }
    }
}

/// One violation: which invariant, what kind, which messages, and why in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub kind: Kind,
    pub msgs: Vec<MsgId>,
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.invariant,
            self.kind.name(),
            self.explanation
        )
    }
}
