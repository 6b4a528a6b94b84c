//! The producer: a JMS `MessageProducer` on a non-transacted session, or with
//! `producer.transacted=true` on a transacted one.
//!
//! `ActiveMQSession.send` sends one-way unless the send needs a response ([`Settings::sync_send`]).
//! A one-way send returns as soon as the command is handed to the transport: that is all the
//! application learns, so it counts as acknowledged. A synchronous send blocks the application
//! until the broker's `Response` — or fails, when the connection is lost first or `sendTimeout`
//! passes. With `transport=failover` a lost connection fails nothing: the failover transport
//! reconnects and replays the send still waiting for its response (`ConnectionStateTracker`), on a
//! fault-tolerant connection whose broker drops a replay of what it already stored. A restarted
//! application (`--producer-crashes`) sends its outbox again, under a new `ProducerId`.
//!
//! A transacted session's sends carry its `LocalTransactionId` and go one-way (unless
//! `sendTimeout` or `alwaysSyncSend`); every [`TRANSACTION_SIZE`] messages, and after the last,
//! the application calls `commit()`, which sends `COMMIT_ONE_PHASE` and blocks for the response
//! (`TransactionContext.commit`): its messages are acknowledged then, all together. A lost
//! `tcp://` connection fails the commit with a `JMSException` — the application cannot know
//! whether the broker committed: in doubt — and a transaction not yet committing is gone with
//! the connection, which the broker rolled back. Under `failover:` the open transaction's sends
//! are replayed on the new connection (`ConnectionStateTracker.restoreTransactions`), but a
//! commit in flight is not: the client answers it with `TransactionRolledBackException`
//! ("Transaction completion in doubt due to failover. Forcing rollback") whether or not the
//! broker had committed it. A send that fails inside a transaction (`sendTimeout`) makes the
//! application roll the transaction back. A restarted application cannot tell whether its
//! unfinished transaction was committing: in doubt; it goes on with new messages.

use super::protocol::AmqMsg;
use super::transport::{Event, Transport};
use super::{record, AmqOut, AmqRandom, AmqTimer, Settings};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op, TxnOutcome};
use std::collections::VecDeque;
use std::time::Duration;

/// Paces a run may draw: milliseconds between two sends.
pub const PACES: [u64; 3] = [10, 50, 300];
/// A transacted application commits after this many messages.
pub const TRANSACTION_SIZE: usize = 4;

#[derive(Clone, Debug)]
pub struct Producer {
    pub settings: Settings,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProducerState {
    pub app: AppLog,
    pub pace: Option<Duration>,
    pub transport: Transport,
    /// The next message the application sends for the first time.
    pub next: u32,
    /// Messages of the outbox a restarted application sends again first.
    pub resend: VecDeque<u32>,
    /// The command id of the last send.
    pub command: u32,
    /// This incarnation's `ProducerId`.
    pub producer_id: u32,
    /// The synchronous send the application is blocked in: (command, message).
    pub waiting: Option<(u32, u32)>,
    /// A transacted session: the number of its current transaction (transactions ended before,
    /// in this and earlier incarnations).
    pub txn: u64,
    /// The sends of the open transaction: (command, message).
    pub open: Vec<(u32, u32)>,
    /// The commit the application is blocked in: its command and the transaction's messages.
    pub committing: Option<(u32, Vec<u32>)>,
}

impl Producer {
    fn msg(&self, seq: u32) -> MsgId {
        MsgId {
            producer: self.index,
            seq,
        }
    }

    /// `JMSXGroupID`: the message's key, with `messageGroups`.
    fn group(&self, seq: u32) -> Option<u32> {
        if self.settings.message_groups {
            self.settings.workload.key(seq)
        } else {
            None
        }
    }

    pub fn start(&self, mut app: AppLog, o: &mut AmqOut) -> ProducerState {
        o.choose_random(
            "pace",
            self.settings
                .workload
                .paces(&PACES)
                .into_iter()
                .map(AmqRandom::Pace)
                .collect(),
        );
        let transacted = self.settings.transacted;
        let outbox = if transacted {
            app.outbox()
        } else {
            app.reopen()
        };
        let mut s = ProducerState {
            transport: Transport::new(app.len() as u32),
            producer_id: app.len() as u32,
            app,
            pace: None,
            next: outbox.sent as u32,
            resend: VecDeque::new(),
            command: 0,
            waiting: None,
            txn: 0,
            open: Vec::new(),
            committing: None,
        };
        if transacted {
            self.restart_transactions(&mut s, o);
        } else {
            s.resend = outbox.unacknowledged.iter().map(|m| m.seq).collect();
        }
        s.transport.connect(&self.settings, o);
        s
    }

    /// A restarted transacted application: a transaction of its earlier life that did not end
    /// (sends with no outcome in its log) may have been committing; it is in doubt.
    fn restart_transactions(&self, s: &mut ProducerState, o: &mut AmqOut) {
        let mut ended = std::collections::BTreeSet::new();
        for op in s.app.iter() {
            if let Op::Transaction { msgs, .. } = op {
                ended.extend(msgs.iter().copied());
                s.txn += 1;
            }
        }
        let unfinished: Vec<u32> = s
            .app
            .iter()
            .filter_map(|op| match op {
                Op::Send { msg, .. } if !ended.contains(msg) => Some(msg.seq),
                _ => None,
            })
            .collect();
        if !unfinished.is_empty() {
            let reason = "the application restarted during the transaction".to_string();
            self.ended(s, unfinished, TxnOutcome::InDoubt, &reason, o);
        }
    }

    /// The transaction's outcome as the application learnt it: each message acknowledged (a
    /// commit) or failed, then the transaction.
    fn ended(&self, s: &mut ProducerState, msgs: Vec<u32>, outcome: TxnOutcome, reason: &str, o: &mut AmqOut) {
        for &m in &msgs {
            let op = if outcome == TxnOutcome::Committed {
                Op::Ack { msg: self.msg(m) }
            } else {
                Op::Fail {
                    msg: self.msg(m),
                    reason: format!("transaction {}: {reason}", outcome.name()),
                }
            };
            record(&mut s.app, op, o);
        }
        let op = Op::Transaction {
            txn: (u64::from(self.index) << 32) | s.txn,
            msgs: msgs.into_iter().map(|m| self.msg(m)).collect(),
            outcome,
        };
        record(&mut s.app, op, o);
        s.txn += 1;
        if let Some(pace) = s.pace {
            if self.more(s) {
                o.set_timer(AmqTimer::Send, exact(pace));
            }
        }
    }

    /// The open transaction ends without a commit: every send in it failed.
    fn abandon(&self, s: &mut ProducerState, reason: &str, o: &mut AmqOut) {
        s.waiting = None;
        let msgs: Vec<u32> = s.open.drain(..).map(|(_, m)| m).collect();
        if !msgs.is_empty() {
            self.ended(s, msgs, TxnOutcome::Aborted, reason, o);
        }
    }

    pub fn on_pace(&self, s: &mut ProducerState, pace_ms: u64, o: &mut AmqOut) {
        s.pace = Some(Duration::from_millis(pace_ms));
        o.set_timer(AmqTimer::Send, exact(Duration::from_millis(pace_ms)));
    }

    /// Has the application more to send, or a transaction to commit?
    fn more(&self, s: &ProducerState) -> bool {
        !s.resend.is_empty() || s.next < self.settings.workload.messages || !s.open.is_empty()
    }

    pub fn on_msg(&self, s: &mut ProducerState, src: stateright::actor::Id, msg: AmqMsg, o: &mut AmqOut) {
        match s.transport.receive(&self.settings, src, msg, o) {
            Event::Lost => self.lost(s, o),
            Event::Opened if self.settings.transacted => {
                // restoreTransactions: the open transaction's sends are replayed; a commit in
                // flight is answered with an exception.
                for &(command, m) in &s.open {
                    self.transmit(s, command, m, o);
                }
                if let Some((_, msgs)) = s.committing.take() {
                    let reason = "TransactionRolledBackException: Transaction completion in doubt due to failover. Forcing rollback";
                    self.ended(s, msgs, TxnOutcome::Aborted, reason, o);
                }
            }
            Event::Opened => {
                if let Some((command, m)) = s.waiting {
                    self.transmit(s, command, m, o);
                }
            }
            Event::Command(AmqMsg::Response { command, .. }) => {
                if let Some((c, m)) = s.waiting {
                    if c == command {
                        s.waiting = None;
                        o.cancel_timer(AmqTimer::SendTimeout);
                        if !self.settings.transacted {
                            record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
                        }
                    }
                }
                if s.committing.as_ref().is_some_and(|(c, _)| *c == command) {
                    let (_, msgs) = s.committing.take().expect("a commit in flight");
                    self.ended(s, msgs, TxnOutcome::Committed, "", o);
                }
            }
            _ => {}
        }
    }

    /// The transport failed: a synchronous send in progress throws, unless the failover
    /// transport will replay it.
    fn lost(&self, s: &mut ProducerState, o: &mut AmqOut) {
        s.transport.lost(o);
        if self.settings.failover {
            return;
        }
        if self.settings.transacted {
            o.cancel_timer(AmqTimer::SendTimeout);
            if let Some((_, msgs)) = s.committing.take() {
                let reason = "JMSException: the transport failed before the commit's response";
                self.ended(s, msgs, TxnOutcome::InDoubt, reason, o);
            }
            let reason = "the transport failed: the broker rolls back the connection's transaction";
            self.abandon(s, reason, o);
            return;
        }
        if let Some((_, m)) = s.waiting.take() {
            o.cancel_timer(AmqTimer::SendTimeout);
            let reason = "JMSException: the transport failed before the broker's response".into();
            record(&mut s.app, Op::Fail { msg: self.msg(m), reason }, o);
        }
    }

    pub fn on_timeout(&self, s: &mut ProducerState, timer: &AmqTimer, o: &mut AmqOut) {
        if let Some(Event::Lost) = s.transport.on_timeout(&self.settings, timer, o) {
            self.lost(s, o);
            return;
        }
        match timer {
            AmqTimer::Send => {
                if s.transport.open && s.waiting.is_none() && s.committing.is_none() {
                    let full = s.open.len() >= TRANSACTION_SIZE;
                    let last = s.next >= self.settings.workload.messages && !s.open.is_empty();
                    if self.settings.transacted && (full || last) {
                        self.commit(s, o);
                    } else {
                        self.send_next(s, o);
                    }
                }
                if let Some(pace) = s.pace {
                    if self.more(s) {
                        o.set_timer(AmqTimer::Send, exact(pace));
                    }
                }
            }
            AmqTimer::SendTimeout if self.settings.transacted && s.waiting.is_some() => {
                // The application catches the send's exception and rolls back.
                let rollback = AmqMsg::Rollback {
                    conn: s.transport.conn,
                    txn: s.txn,
                };
                o.send(s.transport.broker, rollback);
                let reason = "RequestTimedOutIOException: a send failed, the application rolled back";
                self.abandon(s, reason, o);
            }
            AmqTimer::SendTimeout => {
                if let Some((_, m)) = s.waiting.take() {
                    let reason = "RequestTimedOutIOException: no response within sendTimeout".into();
                    record(&mut s.app, Op::Fail { msg: self.msg(m), reason }, o);
                }
            }
            _ => {}
        }
    }

    fn send_next(&self, s: &mut ProducerState, o: &mut AmqOut) {
        let m = match s.resend.pop_front() {
            Some(m) => m,
            None if s.next < self.settings.workload.messages => {
                let m = s.next;
                s.next += 1;
                let audience = if self.settings.workload.consumers > 0 { vec![0] } else { Vec::new() };
                let op = Op::Send {
                    msg: self.msg(m),
                    scope: 0,
                    audience,
                    key: self.settings.workload.key(m),
                };
                record(&mut s.app, op, o);
                m
            }
            None => return,
        };
        s.command += 1;
        self.transmit(s, s.command, m, o);
        if self.settings.transacted {
            s.open.push((s.command, m));
        }
        let sync = self.settings.sync_send();
        if sync {
            s.waiting = Some((s.command, m));
            if let Some(t) = self.settings.send_timeout {
                o.set_timer(AmqTimer::SendTimeout, exact(t));
            }
        } else if !self.settings.transacted {
            // A one-way send returned: all the application learns.
            record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
        }
    }

    /// `session.commit()`: `COMMIT_ONE_PHASE`, and the application blocks for its response.
    fn commit(&self, s: &mut ProducerState, o: &mut AmqOut) {
        s.command += 1;
        let commit = AmqMsg::Commit {
            conn: s.transport.conn,
            command: s.command,
            txn: s.txn,
        };
        o.send(s.transport.broker, commit);
        let msgs = s.open.drain(..).map(|(_, m)| m).collect();
        s.committing = Some((s.command, msgs));
    }

    fn transmit(&self, s: &ProducerState, command: u32, m: u32, o: &mut AmqOut) {
        o.send(
            s.transport.broker,
            AmqMsg::MessageSend {
                conn: s.transport.conn,
                command,
                producer: s.producer_id,
                msg: self.msg(m),
                persistent: self.settings.persistent,
                response_required: self.settings.sync_send(),
                group: self.group(m),
                transaction: self.settings.transacted.then_some(s.txn),
            },
        );
    }
}
