//! A client application's durable record of what it observed.

use mqcheck_invariants::{MsgId, Op};
use rpds::VectorSync;
use std::collections::BTreeSet;

/// What a producing or consuming application observed through its client API — sends invoked,
/// acknowledged, failed; messages handled; offsets committed — kept as the application's own
/// durable output, so it survives the application's crash. Appending is cheap and so is a
/// snapshot: the log is a persistent vector, shared between an actor's state and what it saved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppLog(VectorSync<Op>);

impl Default for AppLog {
    fn default() -> Self {
        AppLog(VectorSync::new_sync())
    }
}

impl AppLog {
    pub fn push(&mut self, op: Op) {
        self.0.push_back_mut(op);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Op> {
        self.0.iter()
    }

    /// A restarted producer application reopens its log: its outbox, each message of which it
    /// notes it sends again (`Op::Resend`, entering the history with the log's next save) — a
    /// resend records no second `Op::Send` (the checkers key on `MsgId`).
    pub fn reopen(&mut self) -> Outbox {
        let outbox = self.outbox();
        for msg in &outbox.unacknowledged {
            self.push(Op::Resend { msg: *msg });
        }
        outbox
    }

    /// The outbox a producer derives from its log: the sends no acknowledgement answered.
    pub fn outbox(&self) -> Outbox {
        let mut sent = Vec::new();
        let mut acked = BTreeSet::new();
        for op in self.iter() {
            match op {
                Op::Send { msg, .. } => sent.push(*msg),
                Op::Ack { msg } => {
                    acked.insert(*msg);
                }
                _ => {}
            }
        }
        Outbox {
            sent: sent.len(),
            unacknowledged: sent.into_iter().filter(|m| !acked.contains(m)).collect(),
        }
    }

    /// The observations from the `n`th on (each found in O(log n), not by walking the log).
    pub fn since(&self, n: usize) -> impl Iterator<Item = &Op> {
        (n..self.0.len()).map(|i| &self.0[i])
    }
}

/// What a restarted producer application finds in its log: how many messages it had sent, and
/// its outbox — the sent messages no acknowledgement answered (unanswered, or definitely
/// failed), in send order, which an at-least-once application sends again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbox {
    pub sent: usize,
    pub unacknowledged: Vec<MsgId>,
}

impl FromIterator<Op> for AppLog {
    fn from_iter<I: IntoIterator<Item = Op>>(ops: I) -> Self {
        let mut log = AppLog::default();
        for op in ops {
            log.push(op);
        }
        log
    }
}
