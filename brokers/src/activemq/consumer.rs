//! The consumer: an `ActiveMQMessageConsumer` on the queue, with its prefetch buffer
//! (`unconsumedMessages`), its `deliveredMessages` awaiting acknowledgement, and the client-side
//! redelivery of what the application rolled back.
//!
//! When the application's effect takes place decides what a crash does: a `MessageListener`'s
//! effect happens inside `onMessage`, and AUTO_ACKNOWLEDGE acknowledges after `onMessage`
//! returns — a crash in between redelivers a handled message. `receive()` acknowledges (AUTO)
//! before it returns the message, and the application's effect comes after — a crash in between
//! loses it. The application's handler takes the drawn handling time.
//!
//! With `checkForDuplicates` (the default) each dispatch is first checked against the
//! connection's audit (`ActiveMQMessageConsumer.dispatch`, `ConnectionAudit.isDuplicate`): a
//! message the connection was dispatched before is not delivered again but poison-acked
//! ("suppressing duplicate delivery on connection, poison acking"), and the broker moves it to
//! `ActiveMQ.DLQ`. What the audit forgets decides which redeliveries pass: a rollback forgets
//! the rolled-back message; a transport interruption under `failover:` forgets the prefetched
//! messages (`clearMessagesInProgress`) and, with CLIENT_ACKNOWLEDGE only, the delivered ones
//! (`clearDeliveredList`), so a message an AUTO_ACKNOWLEDGE listener had been given, whose ack
//! the interruption lost, comes back as a duplicate and goes to the DLQ. A `tcp://` client's
//! new connection has a new audit.

use super::audit::{MessageAudit, MessageId};
use super::protocol::{AckType, AmqMsg, Seq};
use super::transport::{Event, Transport};
use super::{record, AckMode, AmqOut, AmqRandom, AmqTimer, Settings};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::Id;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Handling times a run may draw: milliseconds the application spends on one message.
pub const HANDLING: [u64; 3] = [2, 10, 40];
/// With `consumer.fail=every-tenth`, the handler throws on this many first deliveries of every
/// tenth message: one more than the default `maximumRedeliveries` allows.
pub const FAILURES: u32 = 7;

/// A message in the consumer: dispatched by the broker, maybe redelivered locally since.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dispatched {
    pub seq: Seq,
    pub msg: MsgId,
    /// The incarnation of its producer's `ProducerId`.
    pub producer: u32,
    pub redelivery_counter: u32,
}

impl Dispatched {
    fn id(&self) -> MessageId {
        MessageId::new(self.msg, self.producer)
    }
}

/// The message the application is handling, on which connection, and whether it will throw.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Handling {
    pub d: Dispatched,
    pub conn: u32,
    pub fails: bool,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub settings: Settings,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerState {
    pub app: AppLog,
    pub transport: Transport,
    pub processing_time: Duration,
    /// `unconsumedMessages`: prefetched, not yet given to the application.
    pub buffer: VecDeque<Dispatched>,
    pub handling: Option<Handling>,
    /// `deliveredMessages` not yet acknowledged, with whether the handler threw on each.
    pub delivered: Vec<(Dispatched, bool)>,
    /// Rolled-back messages waiting for their redelivery delay.
    pub redelivering: BTreeMap<Seq, Dispatched>,
    /// A blocking redelivery holds up every other message (`nonBlockingRedelivery=false`).
    pub blocked: bool,
    /// `optimizeAcknowledgeTimeOut` passed since the last optimized acknowledgement.
    pub optimize_due: bool,
    /// The connection's `ConnectionAudit` for the queue (`checkForDuplicates`).
    pub audit: MessageAudit,
}

impl Consumer {
    pub fn start(&self, app: AppLog, o: &mut AmqOut) -> ConsumerState {
        o.choose_random(
            "processing",
            self.settings
                .workload
                .handling(&HANDLING)
                .into_iter()
                .map(AmqRandom::Processing)
                .collect(),
        );
        let last = app
            .iter()
            .filter_map(|op| match op {
                Op::Deliver { session, .. } => Some(*session as u32),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut s = ConsumerState {
            transport: Transport::new(last),
            processing_time: Duration::from_millis(HANDLING[1]),
            buffer: VecDeque::new(),
            handling: None,
            delivered: Vec::new(),
            redelivering: BTreeMap::new(),
            blocked: false,
            optimize_due: false,
            audit: self.new_audit(),
            app,
        };
        if s.app.is_empty() && self.settings.workload.consumer_delay_ms > 0 {
            o.set_timer(AmqTimer::Start, exact(self.settings.workload.consumer_delay()));
        } else {
            s.transport.connect(&self.settings, o);
        }
        if self.settings.optimize_acknowledge {
            o.set_timer(AmqTimer::OptimizeAck, exact(self.settings.optimize_timeout));
        }
        s
    }

    pub fn on_msg(&self, s: &mut ConsumerState, src: Id, msg: AmqMsg, o: &mut AmqOut) {
        match s.transport.receive(&self.settings, src, msg, o) {
            Event::Lost => self.lost(s, o),
            Event::Opened => o.send(
                s.transport.broker,
                AmqMsg::ConsumerInfo {
                    conn: s.transport.conn,
                },
            ),
            Event::Command(AmqMsg::MessageDispatch {
                seq,
                msg,
                producer,
                redelivery_counter,
                ..
            }) => {
                let d = Dispatched {
                    seq,
                    msg,
                    producer,
                    redelivery_counter,
                };
                if self.checks_for_duplicates() && s.audit.is_duplicate(d.id()) {
                    let cause = "its connection had been dispatched it before (checkForDuplicates: suppressing duplicate delivery on connection)";
                    self.poison(s, d, cause, o);
                } else {
                    s.buffer.push_back(d);
                    self.handle_next(s, o);
                }
            }
            _ => {}
        }
    }

    /// The transport failed: the session's prefetched and delivered messages are void (the
    /// broker returns them); a handler still running finishes, but its acknowledgement goes
    /// nowhere.
    fn lost(&self, s: &mut ConsumerState, o: &mut AmqOut) {
        s.transport.lost(o);
        if self.settings.failover {
            // The connection, and its audit, outlive the transport: `clearMessagesInProgress`
            // forgets what was only prefetched, `clearDeliveredList` what a CLIENT_ACKNOWLEDGE
            // session delivered; an AUTO session's delivered messages stay recorded.
            for d in &s.buffer {
                s.audit.rollback(d.id());
            }
            if self.settings.ack_mode == AckMode::Client {
                let handling = s.handling.iter().map(|h| &h.d);
                for d in s.delivered.iter().map(|(d, _)| d).chain(handling) {
                    s.audit.rollback(d.id());
                }
            }
        } else {
            // The application's exception listener opens a new connection, with a new audit.
            s.audit = self.new_audit();
        }
        s.buffer.clear();
        s.delivered.clear();
        for seq in std::mem::take(&mut s.redelivering).into_keys() {
            o.cancel_timer(AmqTimer::Redeliver(seq));
        }
        s.blocked = false;
    }

    pub fn on_timeout(&self, s: &mut ConsumerState, timer: &AmqTimer, o: &mut AmqOut) {
        if let Some(Event::Lost) = s.transport.on_timeout(&self.settings, timer, o) {
            self.lost(s, o);
            return;
        }
        match timer {
            AmqTimer::Start => s.transport.connect(&self.settings, o),
            AmqTimer::Process => self.handled(s, o),
            AmqTimer::Redeliver(seq) => {
                if let Some(d) = s.redelivering.remove(seq) {
                    if self.settings.non_blocking_redelivery {
                        s.buffer.push_back(d);
                    } else {
                        s.buffer.push_front(d);
                        s.blocked = false;
                    }
                    self.handle_next(s, o);
                }
            }
            AmqTimer::OptimizeAck => {
                s.optimize_due = true;
                o.set_timer(AmqTimer::OptimizeAck, exact(self.settings.optimize_timeout));
            }
            _ => {}
        }
    }

    fn new_audit(&self) -> MessageAudit {
        MessageAudit::new(self.settings.audit_depth, self.settings.audit_producers)
    }

    /// A transacted session's duplicates are the transaction's business: after an interruption
    /// `previouslyDeliveredMessages` absorbs the broker's redispatch into a transaction that
    /// `inProgressClearRequired` made rollback-only, whose rollback gives the listener the
    /// messages again. The model lets the redispatch through instead — the same second delivery
    /// — and does not check them.
    fn checks_for_duplicates(&self) -> bool {
        self.settings.check_for_duplicates && self.settings.ack_mode != AckMode::Transacted
    }

    fn ack(&self, s: &ConsumerState, kind: AckType, seqs: Vec<Seq>, commit: bool, o: &mut AmqOut) {
        if s.transport.open && !seqs.is_empty() {
            o.send(
                s.transport.broker,
                AmqMsg::MessageAck {
                    conn: s.transport.conn,
                    kind,
                    seqs,
                    response_required: commit,
                },
            );
        }
    }

    fn deliver_op(&self, d: &Dispatched, conn: u32) -> Op {
        Op::Deliver {
            msg: d.msg,
            group: 0,
            consumer: self.index,
            scope: 0,
            position: None,
            session: u64::from(conn),
            redelivered: Some(d.redelivery_counter > 0),
        }
    }

    /// Gives the application the next prefetched message, unless a blocking redelivery waits.
    fn handle_next(&self, s: &mut ConsumerState, o: &mut AmqOut) {
        if s.handling.is_some() || s.blocked {
            return;
        }
        while let Some(d) = s.buffer.pop_front() {
            if self.settings.ack_mode == AckMode::Transacted
                && self.settings.redelivery.exceeded(d.redelivery_counter)
            {
                // `redeliveryExceeded`, the redelivery policy's pre-dispatch check (transacted
                // sessions only): a message the broker redelivered too often is poisoned unseen.
                let cause = self.redelivery_exceeded(&d);
                self.poison(s, d, &cause, o);
                continue;
            }
            let fails = self.settings.fail && d.msg.seq % 10 == 3 && d.redelivery_counter < FAILURES;
            let conn = s.transport.conn;
            if self.settings.receive {
                if self.settings.ack_mode.acks_each() {
                    // receive(): afterMessageIsConsumed runs before the message is returned.
                    self.consumed(s, d.clone(), o);
                }
            } else if !fails {
                let op = self.deliver_op(&d, conn);
                record(&mut s.app, op, o);
            }
            s.handling = Some(Handling { d, conn, fails });
            o.set_timer(AmqTimer::Process, exact(s.processing_time));
            return;
        }
    }

    /// AUTO_ACKNOWLEDGE (and DUPS_OK on a queue) after a message is consumed: a standard ack
    /// at once, or with `optimizeAcknowledge` once 65 % of the prefetch or the time-out is reached.
    fn consumed(&self, s: &mut ConsumerState, d: Dispatched, o: &mut AmqOut) {
        if !self.settings.optimize_acknowledge {
            self.ack(s, AckType::Standard, vec![d.seq], false, o);
            return;
        }
        s.delivered.push((d, false));
        let threshold = (f64::from(self.settings.prefetch) * 0.65) as usize;
        if s.delivered.len() >= threshold.max(1) || s.optimize_due {
            let seqs = s.delivered.drain(..).map(|(d, _)| d.seq).collect();
            self.ack(s, AckType::Standard, seqs, false, o);
            s.optimize_due = false;
        }
    }

    /// The application's handler returned (or threw).
    fn handled(&self, s: &mut ConsumerState, o: &mut AmqOut) {
        let Some(h) = s.handling.take() else {
            return;
        };
        let live = s.transport.open && h.conn == s.transport.conn;
        if self.settings.receive && !h.fails {
            let op = self.deliver_op(&h.d, h.conn);
            record(&mut s.app, op, o);
        }
        if live {
            match (self.settings.ack_mode, h.fails) {
                (mode, false) if mode.acks_each() => {
                    if !self.settings.receive {
                        self.consumed(s, h.d, o);
                    }
                }
                (mode, true) if mode.acks_each() => {
                    if self.settings.receive {
                        let reason = "the application failed on it after receive() had acknowledged it (AUTO_ACKNOWLEDGE)".into();
                        record(&mut s.app, Op::Discard { msg: h.d.msg, reason }, o);
                    } else {
                        self.rollback(s, h.d, o);
                    }
                }
                (AckMode::Client, fails) if !self.settings.receive || !fails => {
                    // The listener threw: ActiveMQ delivers the next message, leaving this one
                    // among the delivered ones that the next acknowledge() covers.
                    s.delivered.push((h.d, fails));
                    if !fails {
                        self.acknowledge_all(s, false, o);
                    }
                }
                (AckMode::Individual, false) => {
                    self.ack(s, AckType::Individual, vec![h.d.seq], false, o)
                }
                (AckMode::Transacted, false) => {
                    s.delivered.push((h.d, false));
                    self.acknowledge_all(s, true, o);
                }
                // A receive() loop's session.recover(), a transacted session's rollback(), an
                // INDIVIDUAL_ACKNOWLEDGE listener's throw: redelivery.
                (_, _) => self.rollback(s, h.d, o),
            }
        }
        self.handle_next(s, o);
    }

    /// CLIENT_ACKNOWLEDGE's `message.acknowledge()` or a transaction's commit: a standard ack of
    /// everything the session delivered, failed messages included.
    fn acknowledge_all(&self, s: &mut ConsumerState, commit: bool, o: &mut AmqOut) {
        let delivered = std::mem::take(&mut s.delivered);
        for (d, failed) in &delivered {
            if *failed {
                let reason = "its handler threw, and message.acknowledge() of a later message acknowledged it: CLIENT_ACKNOWLEDGE acknowledges every message the session delivered".into();
                record(&mut s.app, Op::Discard { msg: d.msg, reason }, o);
            }
        }
        let seqs = delivered.iter().map(|(d, _)| d.seq).collect();
        self.ack(s, AckType::Standard, seqs, commit, o);
    }

    /// `ActiveMQMessageConsumer.rollback`: the redelivery counter goes up; past
    /// `maximumRedeliveries` a poison ack, otherwise a redelivery after the policy's delay.
    fn rollback(&self, s: &mut ConsumerState, mut d: Dispatched, o: &mut AmqOut) {
        // "ensure we don't filter this as a duplicate"
        s.audit.rollback(d.id());
        d.redelivery_counter += 1;
        if self.settings.redelivery.exceeded(d.redelivery_counter) {
            let cause = self.redelivery_exceeded(&d);
            self.poison(s, d, &cause, o);
            return;
        }
        self.ack(s, AckType::Redelivered, vec![d.seq], false, o);
        let delay = self.settings.redelivery.delay_for(d.redelivery_counter);
        o.set_timer(AmqTimer::Redeliver(d.seq), exact(delay));
        s.redelivering.insert(d.seq, d);
        if !self.settings.non_blocking_redelivery {
            s.blocked = true;
        }
    }

    fn redelivery_exceeded(&self, d: &Dispatched) -> String {
        let max = self.settings.redelivery.maximum.unwrap_or(u32::MAX);
        format!(
            "redelivery {} exceeded maximumRedeliveries={max}",
            d.redelivery_counter
        )
    }

    /// A poison ack: the broker moves the message to `ActiveMQ.DLQ`, or discards it if it is
    /// not persistent.
    fn poison(&self, s: &mut ConsumerState, d: Dispatched, cause: &str, o: &mut AmqOut) {
        let reason = if self.settings.persistent && self.settings.broker_persistent {
            format!("{cause}: poison ack, dead-lettered to ActiveMQ.DLQ")
        } else {
            format!("{cause}: poison ack, and the dead-letter strategy drops a non-persistent message rather than keep it in ActiveMQ.DLQ (processNonPersistent=false)")
        };
        record(&mut s.app, Op::DeadLetter { msg: d.msg, reason }, o);
        self.ack(s, AckType::Poison, vec![d.seq], false, o);
    }
}
