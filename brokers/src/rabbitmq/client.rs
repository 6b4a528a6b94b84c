//! The clients: a publisher with confirms (and, optionally, republishing), and consumers with
//! automatic or manual acknowledgements.
//!
//! A restarted publisher (`--producer-crashes`) opens a new connection and channel, whose
//! publish sequence numbers — and so its confirms — start from 1 again (RabbitMQ's "Consumer
//! Acknowledgements and Publisher Confirms": in confirm mode "both the broker and the client
//! count messages (counting starts at 1 on the first basic.publish)"). Its application keeps an outbox: from its log
//! ([`AppLog::outbox`]) it publishes again every message it sent and never saw confirmed —
//! unconfirmed, or failed (nacked, returned, timed out) — before the messages it had not sent,
//! without recording a second send. Without confirms nothing is in doubt: `basic.publish`
//! returning is the acknowledgement. The new channel continues the old one's numbering, so
//! each channel is its own ordering scope, as it is on the broker.
//!
//! With `publisher.tx` the publisher's channel is transactional instead (`tx.select`, sent as the
//! channel opens): it publishes [`TX_SIZE`] messages, then commits and waits for
//! `tx.commit-ok`, which acknowledges them all; every [`ROLLBACK_EVERY`]th transaction of new
//! messages it rolls back. A commit answered by the channel error "partial tx completion", or
//! whose connection closed first, is in doubt; an open transaction whose connection closed is
//! aborted. With `publisher.retry` the messages of either are published again in the next
//! transaction; without, they are given up. See the module doc's "Transactions".

use super::quorum::Returned;
use super::stream::OffsetSpec;
use super::{
    NackMode, QueueType, RabbitDisk, RabbitMsg, RabbitOut, RabbitRandom, RabbitTimer, Settings,
    CAUGHT_UP, RECONNECT,
};
use crate::timers::{exact, retry};
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op, TxnOutcome};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// A transactional publisher (`publisher.tx=true`) ends a transaction after this many messages.
pub const TX_SIZE: usize = 4;
/// Of its transactions, the application rolls back every `ROLLBACK_EVERY`th (the third, sixth…).
pub const ROLLBACK_EVERY: u64 = 3;
/// Paces a run may draw: milliseconds between two publishes.
pub const PACES: [u64; 3] = [10, 50, 300];
/// Handling times a run may draw: milliseconds the application spends on one message.
pub const HANDLING: [u64; 3] = [2, 10, 40];
/// The application's handler fails this many times on a poison message before it succeeds.
const POISON_FAILURES: u32 = 2;
/// How long the application waits before it publishes a nacked message again (`publisher.retry`):
/// the queue refused it because it was full, so at once would most likely be refused again.
pub const NACK_BACKOFF: Duration = Duration::from_millis(500);
/// Poison messages are those with `seq % 10 == POISON`: the second of every ten, so that the
/// model checker's two messages include one.
pub const POISON: u32 = 1;

/// Where a client's connection stands, shared by both kinds of client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Connection {
    /// The node dialled last.
    pub node: Id,
    /// `connection.open-ok` received.
    pub open: bool,
    /// Connections opened so far: each has its own channel.
    pub channel: u32,
}

impl Connection {
    fn new() -> Self {
        Connection {
            node: Id::from(0),
            open: false,
            channel: 0,
        }
    }
}

/// Dials `node`; a connection that does not open within `RECONNECT` is given up.
fn dial(c: &mut Connection, node: Id, o: &mut RabbitOut) {
    c.node = node;
    c.open = false;
    o.send(node, RabbitMsg::Open);
    o.set_timer(RabbitTimer::Connect, exact(RECONNECT));
    o.cancel_timer(RabbitTimer::Heartbeat);
    o.cancel_timer(RabbitTimer::ServerSilent);
}

fn opened(c: &mut Connection, heartbeat: Duration, o: &mut RabbitOut) {
    c.open = true;
    c.channel += 1;
    o.cancel_timer(RabbitTimer::Connect);
    o.set_timer(RabbitTimer::Heartbeat, retry(heartbeat / 2));
    o.set_timer(RabbitTimer::ServerSilent, exact(heartbeat));
}

/// The connection is gone: dial the hinted leader at once, or wait and try the next node.
fn redial(settings: &Settings, c: &mut Connection, hint: Option<Id>, o: &mut RabbitOut) {
    c.open = false;
    o.cancel_timer(RabbitTimer::Heartbeat);
    o.cancel_timer(RabbitTimer::ServerSilent);
    match hint.filter(|h| usize::from(*h) < settings.nodes) {
        Some(node) => dial(c, node, o),
        None => o.set_timer(RabbitTimer::Connect, exact(RECONNECT)),
    }
}

/// The connect timer: the attempt (or the wait) is over, so dial the next node.
fn dial_next(settings: &Settings, c: &mut Connection, o: &mut RabbitOut) {
    let node = Id::from((usize::from(c.node) + 1) % settings.nodes);
    dial(c, node, o);
}

/// Heartbeats and connection loss, common to both clients. Returns `Some(hint)` when the
/// connection is gone (hint: the queue's leader, if the node named one).
fn connection_event(
    settings: &Settings,
    c: &mut Connection,
    src: Id,
    msg: &RabbitMsg,
    o: &mut RabbitOut,
) -> Option<Option<Id>> {
    if src != c.node {
        return None;
    }
    if c.open {
        o.set_timer(RabbitTimer::ServerSilent, exact(settings.heartbeat));
    }
    match msg {
        RabbitMsg::Disconnected => Some(None),
        RabbitMsg::NotLeader { leader } => Some(*leader),
        _ => None,
    }
}

/// The application writes what it observed to its durable log.
fn record(app: &mut AppLog, op: Op, o: &mut RabbitOut) {
    app.push(op);
    o.save(RabbitDisk::Client(app.clone()));
}

#[derive(Clone, Debug)]
pub struct Publisher {
    pub settings: Settings,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublisherState {
    /// The application's record of what it sent and what the broker confirmed.
    pub app: AppLog,
    pub pace: Option<Duration>,
    pub conn: Connection,
    /// The next message the application sends.
    pub next: u32,
    /// Publish sequence numbers on the current channel.
    pub publish_seq: u64,
    /// Unconfirmed publishes on the current channel: sequence number → message.
    pub unconfirmed: BTreeMap<u64, u32>,
    /// Messages sent and not yet confirmed, returned or failed.
    pub outstanding: BTreeSet<u32>,
    /// Messages to publish again once a connection is open (`publisher.retry`).
    pub republish: VecDeque<u32>,
    /// `publisher.tx`: transactions ended so far, in this and earlier incarnations.
    pub txn: u64,
    /// The open transaction's messages, published and held by the channel.
    pub tx_open: Vec<u32>,
    /// The open transaction publishes again messages of a transaction that did not commit:
    /// the application commits it, whatever its turn (it never rolls back a retry).
    pub tx_retries: bool,
    /// The `tx.commit` the application is blocked in: the transaction's messages.
    pub committing: Option<Vec<u32>>,
}

impl Publisher {
    fn msg(&self, seq: u32) -> MsgId {
        MsgId {
            producer: self.index,
            seq,
        }
    }

    pub fn start(&self, mut app: AppLog, o: &mut RabbitOut) -> PublisherState {
        o.choose_random(
            "pace",
            self.settings
                .workload
                .paces(&PACES)
                .into_iter()
                .map(RabbitRandom::Pace)
                .collect(),
        );
        let outbox = if self.settings.tx {
            app.outbox()
        } else {
            app.reopen()
        };
        let channel = app
            .iter()
            .filter_map(|op| match op {
                Op::Send { scope, .. } => Some(*scope),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut s = PublisherState {
            app,
            pace: None,
            conn: Connection {
                channel,
                ..Connection::new()
            },
            next: outbox.sent as u32,
            publish_seq: 0,
            unconfirmed: BTreeMap::new(),
            outstanding: BTreeSet::new(),
            republish: VecDeque::new(),
            txn: 0,
            tx_open: Vec::new(),
            tx_retries: false,
            committing: None,
        };
        if self.settings.tx {
            self.restart_transactions(&mut s, o);
            dial(&mut s.conn, Id::from(0), o);
            return s;
        }
        for msg in outbox.unacknowledged {
            s.outstanding.insert(msg.seq);
            s.republish.push_back(msg.seq);
            o.set_timer(
                RabbitTimer::ConfirmTimeout(msg.seq),
                exact(self.settings.confirm_timeout),
            );
        }
        dial(&mut s.conn, Id::from(0), o);
        s
    }

    pub fn on_pace(&self, s: &mut PublisherState, pace_ms: u64, o: &mut RabbitOut) {
        s.pace = Some(Duration::from_millis(pace_ms));
        o.set_timer(RabbitTimer::Send, exact(Duration::from_millis(pace_ms)));
    }

    pub fn on_msg(&self, s: &mut PublisherState, src: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        if let Some(hint) = connection_event(&self.settings, &mut s.conn, src, &msg, o) {
            self.connection_lost(s, o);
            redial(&self.settings, &mut s.conn, hint, o);
            return;
        }
        if src != s.conn.node {
            return;
        }
        match msg {
            RabbitMsg::OpenOk if !s.conn.open && self.settings.tx => {
                opened(&mut s.conn, self.settings.heartbeat, o);
                s.publish_seq = 0;
                o.send(
                    src,
                    RabbitMsg::TxSelect {
                        channel: s.conn.channel,
                    },
                );
                // What the application publishes again opens the new channel's transaction.
                while let Some(m) = s.republish.pop_front() {
                    self.publish(s, m, o);
                    s.tx_open.push(m);
                    s.tx_retries = true;
                }
                self.pace_on(s, o);
            }
            RabbitMsg::TxCommitOk { channel } if channel == s.conn.channel => {
                if let Some(msgs) = s.committing.take() {
                    s.unconfirmed.clear();
                    self.ended(s, msgs, TxnOutcome::Committed, "", o);
                }
            }
            RabbitMsg::TxFailed { channel } if channel == s.conn.channel => {
                if let Some(msgs) = s.committing.take() {
                    let reason = "tx.commit failed with PRECONDITION_FAILED \"partial tx completion\": the queue refused part of the commit and kept the rest";
                    self.ended(s, msgs, TxnOutcome::InDoubt, reason, o);
                }
                // The channel is closed: the application opens another one, after a pause (the
                // queue refused part of the commit, so at once would most likely fail again).
                self.connection_lost(s, o);
                s.conn.open = false;
                o.cancel_timer(RabbitTimer::Heartbeat);
                o.cancel_timer(RabbitTimer::ServerSilent);
                o.set_timer(RabbitTimer::Connect, exact(NACK_BACKOFF));
            }
            RabbitMsg::Return { channel, seq } if channel == s.conn.channel && self.settings.tx => {
                // Sent on commit, before tx.commit-ok: the message went nowhere.
                if let Some(m) = s.unconfirmed.remove(&seq) {
                    if let Some(msgs) = &mut s.committing {
                        msgs.retain(|x| *x != m);
                    }
                    let reason = "basic.return NO_ROUTE: mandatory and unroutable".to_string();
                    record(
                        &mut s.app,
                        Op::Fail {
                            msg: self.msg(m),
                            reason,
                        },
                        o,
                    );
                }
            }
            RabbitMsg::OpenOk if !s.conn.open => {
                opened(&mut s.conn, self.settings.heartbeat, o);
                s.publish_seq = 0;
                while let Some(m) = s.republish.pop_front() {
                    if s.outstanding.contains(&m) {
                        self.publish(s, m, o);
                    }
                }
            }
            RabbitMsg::Confirm { channel, seq } if channel == s.conn.channel => {
                if let Some(m) = s.unconfirmed.remove(&seq) {
                    if s.outstanding.remove(&m) {
                        o.cancel_timer(RabbitTimer::ConfirmTimeout(m));
                        record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
                    }
                }
            }
            RabbitMsg::PublishNack { channel, seq } if channel == s.conn.channel => {
                let Some(m) = s.unconfirmed.remove(&seq) else {
                    return;
                };
                if !s.outstanding.contains(&m) {
                    return;
                }
                o.cancel_timer(RabbitTimer::ConfirmTimeout(m));
                if self.settings.retry {
                    // Not confirmed: the application publishes it again, as one using confirms
                    // must; it stays outstanding, so it is never counted sent until confirmed.
                    o.set_timer(RabbitTimer::Republish(m), exact(NACK_BACKOFF));
                } else {
                    s.outstanding.remove(&m);
                    let reason = "basic.nack: the queue refused the publish".to_string();
                    record(
                        &mut s.app,
                        Op::Fail {
                            msg: self.msg(m),
                            reason,
                        },
                        o,
                    );
                }
            }
            RabbitMsg::Return { channel, seq } if channel == s.conn.channel => {
                if let Some(m) = s.unconfirmed.remove(&seq) {
                    if s.outstanding.remove(&m) {
                        o.cancel_timer(RabbitTimer::ConfirmTimeout(m));
                        let reason = "basic.return NO_ROUTE: mandatory and unroutable".to_string();
                        record(
                            &mut s.app,
                            Op::Fail {
                                msg: self.msg(m),
                                reason,
                            },
                            o,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut PublisherState, timer: &RabbitTimer, o: &mut RabbitOut) {
        match timer {
            RabbitTimer::Send if self.settings.tx => {
                if s.conn.open && s.committing.is_none() {
                    let full = s.tx_open.len() >= TX_SIZE;
                    let last = s.next >= self.settings.workload.messages && !s.tx_open.is_empty();
                    if full || last {
                        self.end_transaction(s, o);
                    } else if s.next < self.settings.workload.messages {
                        let m = self.send_new(s, o);
                        self.publish(s, m, o);
                        s.tx_open.push(m);
                    }
                }
                self.pace_on(s, o);
            }
            RabbitTimer::Send => {
                if s.next < self.settings.workload.messages && s.conn.open {
                    let m = self.send_new(s, o);
                    if self.settings.confirms {
                        s.outstanding.insert(m);
                        o.set_timer(
                            RabbitTimer::ConfirmTimeout(m),
                            exact(self.settings.confirm_timeout),
                        );
                    }
                    self.publish(s, m, o);
                    if !self.settings.confirms {
                        // Without confirms, basic.publish returning is all the application learns.
                        record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
                    }
                }
                if let Some(pace) = s.pace {
                    if s.next < self.settings.workload.messages {
                        o.set_timer(RabbitTimer::Send, exact(pace));
                    }
                }
            }
            RabbitTimer::Connect if !s.conn.open => dial_next(&self.settings, &mut s.conn, o),
            RabbitTimer::Heartbeat if s.conn.open => {
                o.send(s.conn.node, RabbitMsg::Heartbeat);
                o.set_timer(RabbitTimer::Heartbeat, retry(self.settings.heartbeat / 2));
            }
            RabbitTimer::ServerSilent if s.conn.open => {
                self.connection_lost(s, o);
                redial(&self.settings, &mut s.conn, None, o);
            }
            RabbitTimer::Republish(m) if s.outstanding.contains(m) => {
                o.set_timer(
                    RabbitTimer::ConfirmTimeout(*m),
                    exact(self.settings.confirm_timeout),
                );
                if s.conn.open {
                    self.publish(s, *m, o);
                } else if !s.republish.contains(m) {
                    s.republish.push_back(*m);
                }
            }
            RabbitTimer::ConfirmTimeout(m) if s.outstanding.contains(m) => {
                if self.settings.retry {
                    // Publish again, through a fresh connection: the old one may lead nowhere.
                    // (While reconnecting, the message already waits to be published again.)
                    o.set_timer(timer.clone(), exact(self.settings.confirm_timeout));
                    if s.conn.open {
                        self.connection_lost(s, o);
                        redial(&self.settings, &mut s.conn, None, o);
                    }
                } else {
                    s.outstanding.remove(m);
                    s.unconfirmed.retain(|_, x| x != m);
                    let reason = "no confirm within publisher.confirm_timeout".to_string();
                    record(
                        &mut s.app,
                        Op::Fail {
                            msg: self.msg(*m),
                            reason,
                        },
                        o,
                    );
                }
            }
            _ => {}
        }
    }

    fn publish(&self, s: &mut PublisherState, m: u32, o: &mut RabbitOut) {
        s.publish_seq += 1;
        let seq = s.publish_seq;
        o.send(
            s.conn.node,
            RabbitMsg::Publish {
                channel: s.conn.channel,
                seq,
                msg: self.msg(m),
                persistent: self.settings.persistent,
                mandatory: self.settings.mandatory,
            },
        );
        if self.settings.confirms || self.settings.tx {
            s.unconfirmed.insert(seq, m);
        }
    }

    /// The application's next new message: recorded as sent.
    fn send_new(&self, s: &mut PublisherState, o: &mut RabbitOut) -> u32 {
        let m = s.next;
        s.next += 1;
        let routed = self.settings.route(m);
        let consumers = self.settings.workload.consumers;
        let audience = if !routed.queues.contains(&0) {
            Vec::new()
        } else if self.settings.queue_type == QueueType::Stream {
            // A stream's consumers do not compete: each reads every record.
            (0..consumers).collect()
        } else if consumers > 0 {
            vec![0]
        } else {
            Vec::new()
        };
        let op = Op::Send {
            msg: self.msg(m),
            scope: s.conn.channel,
            audience,
            key: self.settings.workload.key(m),
        };
        record(&mut s.app, op, o);
        m
    }

    /// A transactional publisher keeps its pace while it has a message to publish, a
    /// transaction to end or a commit to wait for.
    fn pace_on(&self, s: &PublisherState, o: &mut RabbitOut) {
        let more = s.next < self.settings.workload.messages
            || !s.tx_open.is_empty()
            || !s.republish.is_empty()
            || s.committing.is_some();
        if let Some(pace) = s.pace.filter(|_| more) {
            o.set_timer(RabbitTimer::Send, exact(pace));
        }
    }

    /// The application ends its transaction: `tx.commit`, blocking until `tx.commit-ok`, or —
    /// every [`ROLLBACK_EVERY`]th transaction, unless it publishes messages again — `tx.rollback`,
    /// after which its messages are given up (the application decided against them; it does
    /// not wait for `tx.rollback-ok`).
    fn end_transaction(&self, s: &mut PublisherState, o: &mut RabbitOut) {
        let channel = s.conn.channel;
        let msgs = std::mem::take(&mut s.tx_open);
        let retries = std::mem::take(&mut s.tx_retries);
        if !retries && s.txn % ROLLBACK_EVERY == ROLLBACK_EVERY - 1 {
            o.send(s.conn.node, RabbitMsg::TxRollback { channel });
            s.unconfirmed.clear();
            let reason = "tx.rollback: the application rolled the transaction back";
            self.ended_as(s, msgs, TxnOutcome::Aborted, reason, false, o);
        } else {
            o.send(s.conn.node, RabbitMsg::TxCommit { channel });
            s.committing = Some(msgs);
        }
    }

    /// A transaction's outcome as the application learnt it: each message acknowledged (a
    /// commit-ok), given up (a rollback, or a failure without `publisher.retry`) or kept to be
    /// published again in the next transaction (a failure with `publisher.retry`); then the
    /// transaction, for the atomicity checker.
    fn ended(
        &self,
        s: &mut PublisherState,
        msgs: Vec<u32>,
        outcome: TxnOutcome,
        reason: &str,
        o: &mut RabbitOut,
    ) {
        self.ended_as(s, msgs, outcome, reason, self.settings.retry, o);
    }

    /// [`Self::ended`], with `again` saying whether the application publishes the messages of a
    /// transaction that did not commit again.
    fn ended_as(
        &self,
        s: &mut PublisherState,
        msgs: Vec<u32>,
        outcome: TxnOutcome,
        reason: &str,
        again: bool,
        o: &mut RabbitOut,
    ) {
        for &m in &msgs {
            if outcome == TxnOutcome::Committed {
                record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
            } else if again {
                s.republish.push_back(m);
            } else {
                let reason = format!("transaction {}: {reason}", outcome.name());
                record(
                    &mut s.app,
                    Op::Fail {
                        msg: self.msg(m),
                        reason,
                    },
                    o,
                );
            }
        }
        let op = Op::Transaction {
            txn: (u64::from(self.index) << 32) | s.txn,
            msgs: msgs.into_iter().map(|m| self.msg(m)).collect(),
            outcome,
        };
        record(&mut s.app, op, o);
        s.txn += 1;
        self.pace_on(s, o);
    }

    /// A restarted transactional application: a transaction of its earlier life that did not
    /// end (sends with no outcome in its log) may have been committing, so it is in doubt. With
    /// `publisher.retry` it publishes again, in send order, every message neither acknowledged
    /// nor given up.
    fn restart_transactions(&self, s: &mut PublisherState, o: &mut RabbitOut) {
        let mut ended = BTreeSet::new();
        for op in s.app.iter() {
            if let Op::Transaction { msgs, .. } = op {
                ended.extend(msgs.iter().map(|m| m.seq));
                s.txn += 1;
            }
        }
        let answered = |app: &AppLog| -> BTreeSet<u32> {
            app.iter()
                .filter_map(|op| match op {
                    Op::Ack { msg } | Op::Fail { msg, .. } => Some(msg.seq),
                    _ => None,
                })
                .collect()
        };
        let sends = |app: &AppLog| -> Vec<u32> {
            app.iter()
                .filter_map(|op| match op {
                    Op::Send { msg, .. } => Some(msg.seq),
                    _ => None,
                })
                .collect()
        };
        let done = answered(&s.app);
        let unfinished: Vec<u32> = sends(&s.app)
            .into_iter()
            .filter(|m| !ended.contains(m) && !done.contains(m))
            .collect();
        if !unfinished.is_empty() {
            let reason = "the application restarted during the transaction";
            self.ended(s, unfinished, TxnOutcome::InDoubt, reason, o);
        }
        s.republish.clear();
        if self.settings.retry {
            let done = answered(&s.app);
            for m in sends(&s.app).into_iter().filter(|m| !done.contains(m)) {
                record(&mut s.app, Op::Resend { msg: self.msg(m) }, o);
                s.republish.push_back(m);
            }
        }
    }

    /// The channel is gone: its unconfirmed publishes are in doubt. With `publisher.retry` they
    /// are published again on the next connection; without, they fail.
    fn connection_lost(&self, s: &mut PublisherState, o: &mut RabbitOut) {
        if self.settings.tx {
            // The channel's held publishes die with it; a commit in flight may have been
            // delivered to the queue, wholly or in part.
            s.unconfirmed.clear();
            if let Some(msgs) = s.committing.take() {
                let reason = "the connection closed before tx.commit-ok";
                self.ended(s, msgs, TxnOutcome::InDoubt, reason, o);
            }
            let open = std::mem::take(&mut s.tx_open);
            s.tx_retries = false;
            if !open.is_empty() {
                let reason = "the connection closed before tx.commit: the channel's held publishes are gone";
                self.ended(s, open, TxnOutcome::Aborted, reason, o);
            }
            return;
        }
        for (_, m) in std::mem::take(&mut s.unconfirmed) {
            if !s.outstanding.contains(&m) {
                continue;
            }
            if self.settings.retry {
                if !s.republish.contains(&m) {
                    s.republish.push_back(m);
                }
            } else {
                s.outstanding.remove(&m);
                o.cancel_timer(RabbitTimer::ConfirmTimeout(m));
                let reason = "connection closed before the confirm".to_string();
                record(
                    &mut s.app,
                    Op::Fail {
                        msg: self.msg(m),
                        reason,
                    },
                    o,
                );
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub settings: Settings,
    pub index: u32,
}

/// One `basic.deliver` waiting for the application.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub tag: u64,
    pub msg: MsgId,
    pub published_on: u32,
    pub redelivered: bool,
    pub delivery_count: u32,
    /// A stream record's offset (`x-stream-offset`).
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerState {
    /// The application's record of what it handled.
    pub app: AppLog,
    pub conn: Connection,
    /// Deliveries received and not yet handled: lost, not delivered, if the consumer crashes.
    pub buffer: VecDeque<Delivery>,
    /// The delivery being handled, and whether the handler will fail on it.
    pub handling: Option<(Delivery, bool)>,
    /// Tags held on this channel (received and not given back), so a repeated packet is not
    /// delivered twice.
    pub held: BTreeSet<u64>,
    /// The application's own count of failed attempts per poison message.
    pub failures: BTreeMap<MsgId, u32>,
    pub processing_time: Duration,
    /// A stream consumer: the offset after the last record its application handled.
    pub offset: Option<u64>,
    /// The offset after the furthest record it handled: where it attaches again after a
    /// reconnect or a restart (AMQP 0-9-1 keeps no offsets for it).
    pub resume: Option<u64>,
    /// `--rewind`: the offset it last rewound from; it rewinds again only once past it.
    pub rewound: Option<u64>,
    /// It attached again at an earlier offset and waits for `basic.consume-ok`: what its
    /// earlier consumer was still sent is void.
    pub attaching: bool,
}

impl Consumer {
    pub fn start(&self, app: AppLog, o: &mut RabbitOut) -> ConsumerState {
        o.choose_random(
            "processing",
            self.settings
                .workload
                .handling(&HANDLING)
                .into_iter()
                .map(RabbitRandom::Processing)
                .collect(),
        );
        let resume = app
            .iter()
            .filter_map(|op| match op {
                Op::Deliver { position, .. } => position.map(|p| p + 1),
                _ => None,
            })
            .max();
        // A restarted stream application's channels go on from its last one's number, so
        // each is a session of its own in the offsets it reads.
        let channel = app
            .iter()
            .filter_map(|op| match op {
                Op::Deliver { session, .. } | Op::Rewind { session, .. } if self.stream() => {
                    Some(*session as u32)
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut s = ConsumerState {
            app,
            conn: Connection {
                channel,
                ..Connection::new()
            },
            buffer: VecDeque::new(),
            handling: None,
            held: BTreeSet::new(),
            failures: BTreeMap::new(),
            processing_time: Duration::from_millis(HANDLING[1]),
            offset: resume,
            resume,
            rewound: None,
            attaching: false,
        };
        if s.app.is_empty() && self.settings.workload.consumer_delay_ms > 0 {
            o.set_timer(
                RabbitTimer::Start,
                exact(self.settings.workload.consumer_delay()),
            );
        } else {
            dial(&mut s.conn, Id::from(0), o);
        }
        s
    }

    pub fn on_msg(&self, s: &mut ConsumerState, src: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        if let Some(hint) = connection_event(&self.settings, &mut s.conn, src, &msg, o) {
            self.channel_closed(s, o);
            redial(&self.settings, &mut s.conn, hint, o);
            return;
        }
        if src != s.conn.node {
            return;
        }
        match msg {
            RabbitMsg::OpenOk if !s.conn.open && self.stream() => {
                opened(&mut s.conn, self.settings.heartbeat, o);
                s.offset = s.resume;
                let offset = s
                    .resume
                    .map_or(self.settings.stream_offset, OffsetSpec::Offset);
                o.send(
                    src,
                    RabbitMsg::StreamConsume {
                        channel: s.conn.channel,
                        prefetch: self.settings.prefetch,
                        offset,
                    },
                );
            }
            RabbitMsg::ConsumeOk if s.conn.open => s.attaching = false,
            RabbitMsg::StreamDeliver {
                channel,
                tag,
                offset,
                msg,
            } if s.conn.open && channel == s.conn.channel && !s.attaching && s.held.insert(tag) => {
                o.cancel_timer(RabbitTimer::CaughtUp);
                s.buffer.push_back(Delivery {
                    tag,
                    msg,
                    published_on: 0,
                    redelivered: false,
                    delivery_count: 0,
                    offset: Some(offset),
                });
                self.handle_next(s, o);
            }
            RabbitMsg::OpenOk if !s.conn.open => {
                opened(&mut s.conn, self.settings.heartbeat, o);
                o.send(
                    src,
                    RabbitMsg::Consume {
                        channel: s.conn.channel,
                        prefetch: self.settings.prefetch,
                        auto_ack: self.settings.auto_ack,
                    },
                );
            }
            // Deliveries on this connection's channel only: an older channel's are void.
            RabbitMsg::Deliver {
                channel,
                tag,
                msg,
                published_on,
                redelivered,
                delivery_count,
            } if s.conn.open && channel == s.conn.channel && s.held.insert(tag) => {
                s.buffer.push_back(Delivery {
                    tag,
                    msg,
                    published_on,
                    redelivered,
                    delivery_count,
                    offset: None,
                });
                self.handle_next(s, o);
            }
            // The dead-letter queue's consumer records what the broker took away, and why.
            RabbitMsg::DeliverDeadLetter {
                channel,
                tag,
                msg,
                reason,
            } if s.conn.open && channel == s.conn.channel => {
                record(
                    &mut s.app,
                    Op::DeadLetter {
                        msg,
                        reason: format!("read from the dead-letter queue with x-death reason {reason}"),
                    },
                    o,
                );
                if !self.settings.auto_ack {
                    o.send(s.conn.node, RabbitMsg::Ack { tag });
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ConsumerState, timer: &RabbitTimer, o: &mut RabbitOut) {
        match timer {
            RabbitTimer::Connect if !s.conn.open => dial_next(&self.settings, &mut s.conn, o),
            RabbitTimer::Heartbeat if s.conn.open => {
                o.send(s.conn.node, RabbitMsg::Heartbeat);
                o.set_timer(RabbitTimer::Heartbeat, retry(self.settings.heartbeat / 2));
            }
            RabbitTimer::ServerSilent if s.conn.open => {
                self.channel_closed(s, o);
                redial(&self.settings, &mut s.conn, None, o);
            }
            RabbitTimer::Process => self.handled(s, o),
            RabbitTimer::Start => dial(&mut s.conn, Id::from(0), o),
            RabbitTimer::CaughtUp => self.rewind(s, o),
            _ => {}
        }
    }

    fn stream(&self) -> bool {
        self.settings.queue_type == QueueType::Stream
    }

    /// `--rewind N` on a stream: caught up (nothing delivered for [`CAUGHT_UP`]) after reading
    /// past where it last rewound, the application cancels its consumer and consumes again with
    /// `x-stream-offset` `N` records back (at the stream's start if fewer), on the same channel.
    fn rewind(&self, s: &mut ConsumerState, o: &mut RabbitOut) {
        let (Some(back), Some(from)) = (self.settings.workload.rewind, s.offset) else {
            return;
        };
        let idle = s.conn.open && s.buffer.is_empty() && s.handling.is_none() && !s.attaching;
        if !idle || s.rewound.is_some_and(|r| r >= from) {
            return;
        }
        let to = from.saturating_sub(u64::from(back));
        s.rewound = Some(from);
        s.attaching = true;
        let op = Op::Rewind {
            group: self.index,
            consumer: self.index,
            scope: 0,
            session: u64::from(s.conn.channel),
            from,
            to,
        };
        record(&mut s.app, op, o);
        s.offset = Some(to);
        o.send(
            s.conn.node,
            RabbitMsg::StreamConsume {
                channel: s.conn.channel,
                prefetch: self.settings.prefetch,
                offset: OffsetSpec::Offset(to),
            },
        );
    }

    /// The channel is gone, and with it every delivery not yet acknowledged: the broker requeues
    /// them.
    fn channel_closed(&self, s: &mut ConsumerState, o: &mut RabbitOut) {
        s.buffer.clear();
        s.handling = None;
        s.held.clear();
        s.attaching = false;
        o.cancel_timer(RabbitTimer::Process);
        o.cancel_timer(RabbitTimer::CaughtUp);
    }

    /// Hands the next buffered delivery to the application's handler.
    fn handle_next(&self, s: &mut ConsumerState, o: &mut RabbitOut) {
        if s.handling.is_some() {
            return;
        }
        let Some(d) = s.buffer.pop_front() else {
            if self.stream() && s.conn.open && self.settings.workload.rewind.is_some() {
                o.set_timer(RabbitTimer::CaughtUp, exact(CAUGHT_UP));
            }
            return;
        };
        let poison = self.settings.nack != NackMode::Never
            && d.msg.seq % 10 == POISON
            && s.failures.get(&d.msg).copied().unwrap_or(0) < POISON_FAILURES;
        if let Some(offset) = d.offset {
            // A stream record: each consumer is its own group, and the stream (scope 0) is
            // the scope its offsets number.
            s.offset = Some(offset + 1);
            s.resume = s.resume.max(s.offset);
            let op = Op::Deliver {
                msg: d.msg,
                group: self.index,
                consumer: self.index,
                scope: 0,
                position: Some(offset),
                session: u64::from(s.conn.channel),
                redelivered: Some(false),
            };
            record(&mut s.app, op, o);
        } else if !poison {
            let op = Op::Deliver {
                msg: d.msg,
                group: 0,
                consumer: self.index,
                scope: d.published_on,
                position: None,
                session: u64::from(s.conn.channel),
                redelivered: Some(d.redelivered),
            };
            record(&mut s.app, op, o);
        }
        s.handling = Some((d, poison));
        o.set_timer(RabbitTimer::Process, exact(s.processing_time));
    }

    /// The handler finished: acknowledge, or reject what it failed on.
    fn handled(&self, s: &mut ConsumerState, o: &mut RabbitOut) {
        let Some((d, failed)) = s.handling.take() else {
            return;
        };
        if failed {
            *s.failures.entry(d.msg).or_insert(0) += 1;
            let requeue = self.settings.nack == NackMode::Requeue;
            let returned = if self.settings.reject {
                Returned::Rejected
            } else {
                Returned::Requeued
            };
            let counted = u32::from(self.settings.delivery_count.counts(returned));
            let over_limit = self
                .settings
                .delivery_limit
                .filter(|_| self.settings.queue_type == super::QueueType::Quorum)
                .is_some_and(|l| d.delivery_count + counted > l);
            // A quorum queue's dead letters are recorded when its dead-letter queue is read.
            let read_later = self.settings.dead_letter
                && self.settings.queue_type == super::QueueType::Quorum;
            if (!requeue || over_limit) && !read_later {
                let fate = if self.settings.dead_letter {
                    "dead-lettered to the dead-letter exchange"
                } else {
                    "dropped"
                };
                let why = if requeue {
                    format!("its x-delivery-count passed delivery-limit, so it was {fate}")
                } else {
                    format!("the consumer rejected it with requeue=false, so it was {fate}")
                };
                record(
                    &mut s.app,
                    Op::DeadLetter {
                        msg: d.msg,
                        reason: why,
                    },
                    o,
                );
            }
            if requeue {
                s.held.remove(&d.tag);
            }
            o.send(
                s.conn.node,
                RabbitMsg::Nack {
                    tag: d.tag,
                    requeue,
                    reject: self.settings.reject,
                },
            );
        } else if !self.settings.auto_ack {
            o.send(s.conn.node, RabbitMsg::Ack { tag: d.tag });
        }
        self.handle_next(s, o);
    }
}
