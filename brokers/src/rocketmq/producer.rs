//! The producer (`DefaultMQProducerImpl.sendDefaultImpl`, `sendSelectImpl`): a sync send at a
//! time, its queue picked from the producer's own route, retried on another broker group.
//!
//! # Transactional (`transaction=commit` or `rollback-some`)
//!
//! A `TransactionMQProducer` (`sendMessageInTransaction`): the message goes out by the same
//! sync send, flagged prepared, and the broker keeps it as a half message. Its `SendResult`
//! decides the local transaction: SEND_OK runs it (`executeLocalTransaction`: committed, or
//! under `rollback-some` every fifth rolled back), any other status rolls it back, and a send
//! that throws ends it there (no local transaction, no end request). The application records
//! the outcome, then `endTransaction` goes one-way to the master that stored the half message:
//! nobody answers it, and if it is lost only the broker's check-back can resolve the half
//! message. The producer heartbeats its producer group to every master of its route
//! (`heartbeatBrokerInterval`, 30 s), so that masters can check back with it, and answers a
//! check (`checkTransactionState`) from its application's log, its local transaction table.
//!
//! # After a restart (`--producer-crashes`)
//!
//! The application resends its outbox ([`AppLog::outbox`]) first, then goes on.

use super::config::{Accept, Selector, Transaction};
use super::protocol::{LocalTransactionState, Message, Mq, RocketMsg, Route, SendStatus, Tran};
use super::{exact, RocketDisk, RocketOut, RocketTimer, Settings};
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op, TxnOutcome};
use stateright::actor::Id;
use std::collections::VecDeque;
use std::time::Duration;

/// Paces a run may draw: milliseconds between two sends.
pub const PACES: [u64; 3] = [20, 100, 300];
/// `pollNameServerInterval`.
pub const POLL_NAMESERVER: Duration = Duration::from_secs(30);
/// A client application asks for its first route this long after it starts: the brokers,
/// started first as deployments do, have registered by then.
pub const CLIENT_STARTUP: Duration = Duration::from_secs(1);
/// `heartbeatBrokerInterval`.
const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Producer {
    pub settings: Settings,
    pub index: u32,
}

/// The send in progress: one call of `send()`, over its attempts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sending {
    pub msg: MsgId,
    pub key: Option<u32>,
    /// Attempts left, this one included (`timesTotal` minus those made).
    pub attempts_left: u32,
    pub request: u64,
    /// Where the attempt went.
    pub mq: Mq,
    pub broker: Id,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProducerState {
    pub app: AppLog,
    pub pace: Option<Duration>,
    /// `TopicPublishInfo`: the route as this producer last heard it.
    pub route: Option<Route>,
    /// `sendWhichQueue`.
    pub turn: u32,
    pub next: u32,
    /// Messages the application wants to send, in order (the outbox first after a restart).
    pub backlog: VecDeque<u32>,
    pub sending: Option<Sending>,
    pub next_request: u64,
    /// The send waiting for a route with a writable queue (`tryToFindTopicPublishInfo` asks
    /// the NameServer).
    pub awaiting_route: Option<u32>,
    /// Transactions this application ended (its log counts them), numbering the next.
    pub transactions: u64,
}

impl Producer {
    pub fn start(&self, mut app: AppLog, o: &mut RocketOut) -> ProducerState {
        o.set_timer(RocketTimer::RouteRefresh, exact(CLIENT_STARTUP));
        o.choose_random(
            "pace",
            self.settings
                .workload
                .paces(&PACES)
                .into_iter()
                .map(super::RocketRandom::Pace)
                .collect(),
        );
        if self.transactional() {
            // The heartbeat task starts a second after the client; its first round here
            // follows the first route.
            o.set_timer(RocketTimer::Heartbeat, exact(CLIENT_STARTUP * 2));
        }
        let outbox = app.reopen();
        let transactions = app
            .iter()
            .filter(|op| matches!(op, Op::Transaction { .. }))
            .count() as u64;
        ProducerState {
            app,
            pace: None,
            route: None,
            turn: self.index,
            next: outbox.sent as u32,
            backlog: outbox.unacknowledged.iter().map(|m| m.seq).collect(),
            sending: None,
            next_request: 0,
            awaiting_route: None,
            transactions,
        }
    }

    fn transactional(&self) -> bool {
        self.settings.transaction != Transaction::None
    }

    pub fn on_pace(&self, s: &mut ProducerState, ms: u64, o: &mut RocketOut) {
        s.pace = Some(Duration::from_millis(ms));
        o.set_timer(
            RocketTimer::Send,
            exact(CLIENT_STARTUP + Duration::from_millis(ms)),
        );
    }

    fn record(&self, s: &mut ProducerState, op: Op, o: &mut RocketOut) {
        s.app.push(op);
        o.save(RocketDisk::Client(s.app.clone()));
    }

    /// The writable queues of a route: those of every group whose master is live.
    fn writable(&self, route: &Route) -> Vec<Mq> {
        route
            .iter()
            .enumerate()
            .filter(|(_, b)| b.master.is_some())
            .flat_map(|(g, _)| {
                (0..self.settings.queues).map(move |queue| Mq {
                    group: g as u32,
                    queue,
                })
            })
            .collect()
    }

    /// `selectOneMessageQueue(lastBrokerName)` or the application's selector.
    fn select(&self, s: &mut ProducerState, key: Option<u32>, seq: u32, last: Option<u32>) -> Option<Mq> {
        let queues = self.writable(s.route.as_ref()?);
        if queues.is_empty() {
            return None;
        }
        let n = queues.len() as u32;
        match self.settings.selector {
            Selector::Hash => Some(queues[(key.unwrap_or(seq) % n) as usize]),
            Selector::RoundRobin => {
                if let Some(last) = last {
                    for _ in 0..n {
                        s.turn = s.turn.wrapping_add(1);
                        let mq = queues[(s.turn % n) as usize];
                        if mq.group != last {
                            return Some(mq);
                        }
                    }
                }
                s.turn = s.turn.wrapping_add(1);
                Some(queues[(s.turn % n) as usize])
            }
        }
    }

    /// Starts the next send when the application has one and none is in progress.
    fn pump(&self, s: &mut ProducerState, o: &mut RocketOut) {
        if s.sending.is_some() || s.awaiting_route.is_some() {
            return;
        }
        let Some(seq) = s.backlog.pop_front() else {
            return;
        };
        let msg = MsgId {
            producer: self.index,
            seq,
        };
        if seq >= s.next {
            s.next = seq + 1;
            let key = self.settings.workload.key(seq);
            self.record(
                s,
                Op::Send {
                    msg,
                    scope: 0,
                    audience: self.settings.audience(),
                    key,
                },
                o,
            );
        }
        o.set_timer(RocketTimer::SendTimeout, exact(self.settings.send_timeout));
        if s.route.as_ref().is_some_and(|r| !self.writable(r).is_empty()) {
            self.first_attempt(s, seq, o);
        } else {
            s.awaiting_route = Some(seq);
            o.send(self.settings.namesrv(), RocketMsg::GetRouteInfo);
        }
    }

    fn first_attempt(&self, s: &mut ProducerState, seq: u32, o: &mut RocketOut) {
        let msg = MsgId {
            producer: self.index,
            seq,
        };
        let attempts = match self.settings.selector {
            Selector::Hash => 1,
            Selector::RoundRobin => 1 + self.settings.retry_times,
        };
        self.attempt(s, msg, self.settings.workload.key(seq), attempts, None, o);
    }

    fn attempt(
        &self,
        s: &mut ProducerState,
        msg: MsgId,
        key: Option<u32>,
        attempts_left: u32,
        last: Option<u32>,
        o: &mut RocketOut,
    ) {
        let Some(mq) = self.select(s, key, msg.seq, last) else {
            self.finish(s, Op::Fail { msg, reason: "No route info of this topic".into() }, o);
            return;
        };
        // The group's master as the route names it (with DLedger, whichever broker was elected).
        let broker = s
            .route
            .as_ref()
            .and_then(|r| r.get(mq.group as usize))
            .and_then(|b| b.master)
            .unwrap_or_else(|| self.settings.broker(mq.group, 0));
        s.next_request += 1;
        let request = s.next_request;
        o.send(
            broker,
            RocketMsg::SendMessage {
                request,
                message: Message {
                    msg,
                    queue: mq.queue,
                    key,
                    reconsume: 0,
                    tran: if self.transactional() {
                        Tran::Prepared
                    } else {
                        Tran::Plain
                    },
                    store_ms: 0,
                },
            },
        );
        s.sending = Some(Sending {
            msg,
            key,
            attempts_left,
            request,
            mq,
            broker,
        });
    }

    /// The attempt failed: another attempt on another broker group if any is left, else the
    /// send throws.
    fn failed(&self, s: &mut ProducerState, reason: &str, o: &mut RocketOut) {
        let Some(x) = s.sending.take() else { return };
        if x.attempts_left > 1 {
            self.attempt(s, x.msg, x.key, x.attempts_left - 1, Some(x.mq.group), o);
        } else {
            self.finish(
                s,
                Op::Fail {
                    msg: x.msg,
                    reason: reason.into(),
                },
                o,
            );
        }
    }

    fn finish(&self, s: &mut ProducerState, op: Op, o: &mut RocketOut) {
        s.sending = None;
        o.cancel_timer(RocketTimer::SendTimeout);
        self.record(s, op, o);
        if let Some(pace) = s.pace {
            o.set_timer(RocketTimer::Send, exact(pace));
        }
    }

    /// `sendMessageInTransaction` once the half message's send returned `status`: the local
    /// transaction, the application's record of it, and the one-way end request to the master
    /// that stored the half message (at `offset`).
    fn end_transaction(
        &self,
        s: &mut ProducerState,
        x: Sending,
        status: SendStatus,
        offset: u64,
        o: &mut RocketOut,
    ) {
        let msg = x.msg;
        let (state, reason) = if status != SendStatus::SendOk {
            let reason = format!(
                "SendResult {}: sendMessageInTransaction rolls the transaction back",
                status.name()
            );
            (LocalTransactionState::RollbackMessage, reason)
        } else if self.settings.transaction == Transaction::RollbackSome && msg.seq % 5 == 4 {
            let reason = "the local transaction rolled back (ROLLBACK_MESSAGE)".to_string();
            (LocalTransactionState::RollbackMessage, reason)
        } else {
            (LocalTransactionState::CommitMessage, String::new())
        };
        let txn = (u64::from(self.index) << 32) | s.transactions;
        s.transactions += 1;
        let commit = state == LocalTransactionState::CommitMessage;
        let outcome = if commit {
            TxnOutcome::Committed
        } else {
            TxnOutcome::Aborted
        };
        self.record(
            s,
            Op::Transaction {
                txn,
                msgs: vec![msg],
                outcome,
            },
            o,
        );
        o.send(
            x.broker,
            RocketMsg::EndTransaction {
                half: offset,
                msg,
                state,
                from_check: false,
            },
        );
        let op = if commit {
            Op::Ack { msg }
        } else {
            Op::Fail { msg, reason }
        };
        self.finish(s, op, o);
    }

    /// The application's `checkLocalTransaction`, over its own log: committed if a local
    /// transaction of `msg` committed, rolled back if one rolled back; UNKNOW while its send is
    /// still to come or under way; otherwise its send threw, so no local transaction ran:
    /// rolled back.
    fn check_local_transaction(&self, s: &ProducerState, msg: MsgId) -> LocalTransactionState {
        let mut rolled_back = false;
        for op in s.app.iter() {
            if let Op::Transaction { msgs, outcome, .. } = op {
                if msgs.contains(&msg) {
                    if *outcome == TxnOutcome::Committed {
                        return LocalTransactionState::CommitMessage;
                    }
                    rolled_back = true;
                }
            }
        }
        let pending = s.sending.as_ref().is_some_and(|x| x.msg == msg)
            || s.awaiting_route == Some(msg.seq)
            || s.backlog.contains(&msg.seq)
            || msg.seq >= s.next;
        if rolled_back {
            LocalTransactionState::RollbackMessage
        } else if pending {
            LocalTransactionState::Unknow
        } else {
            LocalTransactionState::RollbackMessage
        }
    }

    pub fn on_msg(&self, s: &mut ProducerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        match msg {
            RocketMsg::RouteInfo(route) => {
                s.route = Some(route);
                if let Some(seq) = s.awaiting_route.take() {
                    self.first_attempt(s, seq, o);
                }
            }
            RocketMsg::SendResult {
                request,
                status,
                offset,
            } => {
                let Some(x) = s.sending.as_ref().filter(|x| x.request == request) else {
                    return;
                };
                let msg = x.msg;
                let retry = self.settings.retry_another_broker && x.attempts_left > 1;
                if self.transactional() && (status == SendStatus::SendOk || !retry) {
                    let x = s.sending.take().expect("matched");
                    self.end_transaction(s, x, status, offset, o);
                } else if status == SendStatus::SendOk {
                    self.finish(s, Op::Ack { msg }, o);
                } else if self.settings.retry_another_broker && x.attempts_left > 1 {
                    self.failed(s, status.name(), o);
                } else if self.settings.accept == Accept::Any {
                    self.finish(s, Op::Ack { msg }, o);
                } else {
                    let reason = format!("SendResult {} (stored, not counted as sent)", status.name());
                    self.finish(s, Op::Fail { msg, reason }, o);
                }
            }
            RocketMsg::CheckTransactionState { half, msg } if self.transactional() => {
                let state = self.check_local_transaction(s, msg);
                o.send(
                    src,
                    RocketMsg::EndTransaction {
                        half,
                        msg,
                        state,
                        from_check: true,
                    },
                );
            }
            // An error response (`MQBrokerException`) with a code in `retryResponseCodes`.
            RocketMsg::SendError { request, code }
                if s.sending.as_ref().is_some_and(|x| x.request == request) =>
            {
                self.failed(s, code.name(), o);
            }
            // failFast: the request fails at once, although the broker may have stored it.
            RocketMsg::Disconnected if s.sending.as_ref().is_some_and(|x| x.broker == src) => {
                self.failed(s, "connection closed (the message may be stored)", o);
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ProducerState, timer: &RocketTimer, o: &mut RocketOut) {
        match timer {
            RocketTimer::Send => {
                if s.next < self.settings.workload.messages && !s.backlog.contains(&s.next) {
                    s.backlog.push_back(s.next);
                }
                self.pump(s, o);
            }
            RocketTimer::Heartbeat => {
                let masters = s.route.iter().flatten().filter_map(|b| b.master);
                for master in masters {
                    o.send(master, RocketMsg::ProducerHeartbeat { group: self.index });
                }
                o.set_timer(RocketTimer::Heartbeat, exact(HEARTBEAT));
            }
            RocketTimer::RouteRefresh => {
                o.send(self.settings.namesrv(), RocketMsg::GetRouteInfo);
                o.set_timer(RocketTimer::RouteRefresh, exact(POLL_NAMESERVER));
            }
            // The whole budget is gone: not retried, the message in doubt.
            RocketTimer::SendTimeout if s.awaiting_route.is_some() => {
                let seq = s.awaiting_route.take().expect("awaiting");
                let msg = MsgId {
                    producer: self.index,
                    seq,
                };
                let reason = "No route info of this topic".to_string();
                self.finish(s, Op::Fail { msg, reason }, o);
            }
            RocketTimer::SendTimeout => {
                if let Some(x) = s.sending.take() {
                    let reason = format!("sendMsgTimeout after {} ms (the message may be stored)", self.settings.send_timeout.as_millis());
                    self.finish(s, Op::Fail { msg: x.msg, reason }, o);
                }
            }
            _ => {}
        }
    }
}
