//! The producer: a JMS `MessageProducer` on a non-transacted session.
//!
//! `ActiveMQSession.send` sends one-way unless the send needs a response ([`Settings::sync_send`]).
//! A one-way send returns as soon as the command is handed to the transport: that is all the
//! application learns, so it counts as acknowledged. A synchronous send blocks the application
//! until the broker's `Response` — or fails, when the connection is lost first or `sendTimeout`
//! passes. With `transport=failover` a lost connection fails nothing: the failover transport
//! reconnects and replays the send still waiting for its response (`ConnectionStateTracker`), on a
//! fault-tolerant connection whose broker drops a replay of what it already stored. A restarted
//! application (`--producer-crashes`) sends its outbox again, under a new `ProducerId`.

use super::protocol::AmqMsg;
use super::transport::{Event, Transport};
use super::{record, AmqOut, AmqRandom, AmqTimer, Settings, broker_id};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op};
use std::collections::VecDeque;
use std::time::Duration;

/// Paces a run may draw: milliseconds between two sends.
pub const PACES: [u64; 3] = [10, 50, 300];

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
        let outbox = app.reopen();
        let mut s = ProducerState {
            transport: Transport::new(app.len() as u32),
            producer_id: app.len() as u32,
            app,
            pace: None,
            next: outbox.sent as u32,
            resend: outbox.unacknowledged.iter().map(|m| m.seq).collect(),
            command: 0,
            waiting: None,
        };
        s.transport.connect(&self.settings, o);
        s
    }

    pub fn on_pace(&self, s: &mut ProducerState, pace_ms: u64, o: &mut AmqOut) {
        s.pace = Some(Duration::from_millis(pace_ms));
        o.set_timer(AmqTimer::Send, exact(Duration::from_millis(pace_ms)));
    }

    fn more(&self, s: &ProducerState) -> bool {
        !s.resend.is_empty() || s.next < self.settings.workload.messages
    }

    pub fn on_msg(&self, s: &mut ProducerState, src: stateright::actor::Id, msg: AmqMsg, o: &mut AmqOut) {
        match s.transport.receive(&self.settings, src, msg, o) {
            Event::Lost => self.lost(s, o),
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
                        record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
                    }
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
                if s.transport.open && s.waiting.is_none() {
                    self.send_next(s, o);
                }
                if let Some(pace) = s.pace {
                    if self.more(s) {
                        o.set_timer(AmqTimer::Send, exact(pace));
                    }
                }
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
        let sync = self.settings.sync_send();
        if sync {
            s.waiting = Some((s.command, m));
            if let Some(t) = self.settings.send_timeout {
                o.set_timer(AmqTimer::SendTimeout, exact(t));
            }
        } else {
            // A one-way send returned: all the application learns.
            record(&mut s.app, Op::Ack { msg: self.msg(m) }, o);
        }
    }

    fn transmit(&self, s: &ProducerState, command: u32, m: u32, o: &mut AmqOut) {
        o.send(
            broker_id(),
            AmqMsg::MessageSend {
                conn: s.transport.conn,
                command,
                producer: s.producer_id,
                msg: self.msg(m),
                persistent: self.settings.persistent,
                response_required: self.settings.sync_send(),
                group: self.group(m),
            },
        );
    }
}
