//! The REQ client: a plain one, or the zguide's Lazy Pirate.
//!
//! A restarted client (`--producer-crashes`) is a new REQ socket, connecting to every server
//! anew. Its application keeps an outbox: from its log ([`AppLog::outbox`]) it sends again,
//! first and in order, every request it sent and never saw acknowledged — the one it waited on
//! when it died, and those a Lazy Pirate client abandoned — without recording a second send,
//! then goes on with the requests it had not sent.
//!
//! With `ZMQ_REQ_RELAXED=1` the socket lets the application send while a reply is owed
//! (`req_t::xsend`: without `_strict`, a new request resets the state machine). The Lazy Pirate
//! client then resends a timed-out request on the same socket, to the next pipe in round robin,
//! instead of closing the socket: what an earlier attempt left in a pipe stays there and goes out
//! once that pipe's connection is up, and the socket takes replies from the last request's pipe
//! only (`recv_reply_pipe`), whichever request they answer unless `ZMQ_REQ_CORRELATE=1` made it
//! check their request id frame.

use super::protocol::{Frames, ZmqMsg};
use super::{dial, next_after, pace_choice, record, Client, Settings, ZmqOut, ZmqTimer};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::Op;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Requester {
    pub settings: Settings,
    pub index: u32,
}

/// The request the client waits on: REQ allows one at a time.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub index: u32,
    /// Lazy Pirate: attempts left, this one included.
    pub retries_left: u64,
    /// The server whose pipe (on the current socket) holds the request, once `zmq_send` put it
    /// there.
    pub server: Option<Id>,
    /// Written to that server's connection.
    pub written: bool,
    /// `ZMQ_REQ_CORRELATE=1`: the request id frame it went with.
    pub request_id: Option<u32>,
    /// That pipe was terminated (`ZMQ_IMMEDIATE=1`, its connection broke):
    /// `req_t::xpipe_terminated` cleared `_reply_pipe`, and a reply from any pipe is taken.
    pub any_pipe: bool,
    /// Lazy Pirate: `zmq_poll` woke for a message the socket then skipped (another pipe's, or
    /// with `ZMQ_REQ_CORRELATE=1` another request's), and the blocking `zstr_recv` after it waits,
    /// with no timeout, for one the socket returns.
    pub blocked: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequesterState {
    pub app: AppLog,
    pub pace: Option<Duration>,
    /// The next request the application has not sent yet.
    pub next: u32,
    /// Requests sent before a restart and never acknowledged, to send again first.
    pub outbox: VecDeque<u32>,
    /// The socket in use: the Lazy Pirate client closes and reopens it after a timeout.
    pub socket: u32,
    /// Servers whose end of the current socket's connection answered.
    pub welcomed: BTreeSet<Id>,
    pub pending: Option<Pending>,
    /// The server the last request went to (round robin).
    pub turn: Option<Id>,
    /// `ZMQ_REQ_RELAXED=1`: earlier attempts still in the current socket's pipes, waiting for
    /// their connections; they go out before anything queued after them.
    pub superseded: BTreeMap<Id, VecDeque<ZmqMsg>>,
    /// `ZMQ_REQ_CORRELATE=1`: the socket's `_request_id`, one more per request.
    pub request_id: u32,
}

impl Requester {
    pub fn start(&self, mut app: AppLog, o: &mut ZmqOut) -> RequesterState {
        pace_choice(&self.settings.workload, o);
        let frames = self.settings.frames.max(1);
        let outbox = app.reopen();
        let mut resend: Vec<u32> = outbox
            .unacknowledged
            .iter()
            .map(|m| m.seq / frames)
            .collect();
        resend.dedup();
        let s = RequesterState {
            app,
            pace: None,
            next: outbox.sent as u32 / frames,
            outbox: resend.into(),
            socket: 0,
            welcomed: BTreeSet::new(),
            pending: None,
            turn: None,
            superseded: BTreeMap::new(),
            request_id: 0,
        };
        self.connect(&s, o);
        s
    }

    pub fn on_pace(&self, s: &mut RequesterState, pace: Duration, o: &mut ZmqOut) {
        s.pace = Some(pace);
        o.set_timer(ZmqTimer::Send, exact(pace));
    }

    /// Dials every server the current socket is not connected to, again after
    /// `ZMQ_RECONNECT_IVL`.
    fn connect(&self, s: &RequesterState, o: &mut ZmqOut) {
        let connection = s.socket;
        let greet = |_| vec![ZmqMsg::Hello { connection }];
        dial(
            &self.settings,
            self.settings.consumer_ids(),
            &s.welcomed,
            greet,
            o,
        );
    }

    fn frames(&self, index: u32) -> Frames {
        self.settings.message(self.index, index)
    }

    pub fn on_msg(&self, s: &mut RequesterState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        match msg {
            ZmqMsg::Welcome { connection } if connection == s.socket => {
                s.welcomed.insert(src);
                for request in s.superseded.remove(&src).into_iter().flatten() {
                    o.send(src, request);
                }
                self.write(s, o);
            }
            ZmqMsg::Reset => {
                // A request already written is lost with the connection, and a plain client
                // waits for its reply for ever. With ZMQ_IMMEDIATE=0 the pipe outlives the
                // connection, and what waits in it goes out after the reconnect; with
                // ZMQ_IMMEDIATE=1 the session terminates the pipe (`session_base_t::reconnect`)
                // — a request reaches a pipe only once its connection is complete, so it was
                // written already and nothing is left to go out again.
                s.welcomed.remove(&src);
                if let Some(p) = &mut s.pending {
                    p.any_pipe |= self.settings.immediate && p.server == Some(src);
                }
                o.set_timer(ZmqTimer::Reconnect, self.settings.reconnect());
            }
            ZmqMsg::Reply {
                socket,
                request_id,
                frames,
            } if socket == s.socket => self.reply(s, src, request_id, &frames, o),
            _ => {}
        }
    }

    /// A reply on the current socket. No request owed, or the last one still blocked in
    /// `zmq_send`: `req_t::xsend` drops it with every unread message once the next request is
    /// in its pipe. Else the socket returns it only from the last request's pipe and, with
    /// `ZMQ_REQ_CORRELATE=1`, with that request's id (`recv_reply_pipe`, `xrecv`). The Lazy
    /// Pirate client then compares it with its request (`lpclient`: `atoi (reply) == sequence`)
    /// and, when it differs, prints "malformed reply from server" and polls again for a whole
    /// `REQUEST_TIMEOUT`.
    fn reply(
        &self,
        s: &mut RequesterState,
        src: Id,
        request_id: Option<u32>,
        frames: &Frames,
        o: &mut ZmqOut,
    ) {
        let lazy = self.settings.client == Client::LazyPirate;
        let Some(p) = &mut s.pending else { return };
        let Some(server) = p.server else { return };
        let returned = (p.any_pipe || server == src)
            && (!self.settings.correlate || request_id == p.request_id);
        if !returned {
            // `req_t::xhas_in` asks only whether any pipe holds a message: the poll wakes.
            if lazy {
                p.blocked = true;
                o.cancel_timer(ZmqTimer::RequestTimeout);
            }
            return;
        }
        let expected = self.frames(p.index);
        if lazy && self.settings.check_reply && *frames != expected {
            p.blocked = false;
            o.set_timer(
                ZmqTimer::RequestTimeout,
                exact(self.settings.request_timeout),
            );
            return;
        }
        let mut ops = Vec::new();
        if lazy {
            o.cancel_timer(ZmqTimer::RequestTimeout);
            ops = expected
                .parts
                .iter()
                .map(|msg| Op::Ack { msg: *msg })
                .collect();
        }
        record(&mut s.app, ops, o);
        self.done(s, o);
    }

    pub fn on_timeout(&self, s: &mut RequesterState, timer: &ZmqTimer, o: &mut ZmqOut) {
        match timer {
            ZmqTimer::Send => {
                if s.pending.is_some() {
                    return;
                }
                let index = match s.outbox.pop_front() {
                    Some(index) => index,
                    None if s.next < self.settings.workload.messages => {
                        let frames = self.frames(s.next);
                        record(&mut s.app, self.settings.send_ops(&frames), o);
                        s.next += 1;
                        s.next - 1
                    }
                    None => return,
                };
                s.pending = Some(Pending {
                    index,
                    retries_left: self.settings.retries,
                    server: None,
                    written: false,
                    request_id: None,
                    any_pipe: false,
                    blocked: false,
                });
                self.write(s, o);
            }
            ZmqTimer::Reconnect => self.connect(s, o),
            ZmqTimer::RequestTimeout => self.timed_out(s, o),
            _ => {}
        }
    }

    /// `zmq_send` of the pending request, then its write to the connection. REQ round-robins
    /// over its pipes: with `ZMQ_IMMEDIATE=0` (the default) a pipe exists for every server from
    /// `zmq_connect` on, connected or not, and the request waits in it for the connection; with
    /// `ZMQ_IMMEDIATE=1` only completed connections have pipes, and with none `zmq_send` blocks.
    /// A plain client's `zmq_send` returning is its acknowledgement; the Lazy Pirate client
    /// starts waiting for the reply.
    fn write(&self, s: &mut RequesterState, o: &mut ZmqOut) {
        let Some(p) = &s.pending else { return };
        let (index, queued) = (p.index, p.server);
        let frames = self.frames(index);
        let server = match queued {
            Some(server) => server,
            None => {
                let pipes: Vec<Id> = if self.settings.immediate {
                    s.welcomed.iter().copied().collect()
                } else {
                    self.settings.consumer_ids()
                };
                let Some(server) = next_after(&pipes, s.turn) else {
                    return;
                };
                s.turn = Some(server);
                if self.settings.correlate {
                    s.request_id += 1;
                    if let Some(p) = &mut s.pending {
                        p.request_id = Some(s.request_id);
                    }
                }
                match self.settings.client {
                    Client::Plain => {
                        let acks = frames
                            .parts
                            .iter()
                            .map(|msg| Op::Ack { msg: *msg })
                            .collect();
                        record(&mut s.app, acks, o);
                    }
                    Client::LazyPirate => {
                        o.set_timer(
                            ZmqTimer::RequestTimeout,
                            exact(self.settings.request_timeout),
                        );
                    }
                }
                server
            }
        };
        let connected = s.welcomed.contains(&server);
        let Some(p) = &mut s.pending else { return };
        p.server = Some(server);
        if p.written || !connected {
            return;
        }
        p.written = true;
        let request = ZmqMsg::Request {
            socket: s.socket,
            request_id: p.request_id,
            frames,
        };
        o.send(server, request);
    }

    /// Lazy Pirate: no reply in time. Close the socket, open a new one and resend, or give up
    /// after the last attempt. With `ZMQ_REQ_RELAXED=1` the socket stays, and so does what
    /// the attempt left in its pipe.
    fn timed_out(&self, s: &mut RequesterState, o: &mut ZmqOut) {
        let Some(p) = &mut s.pending else { return };
        p.retries_left = p.retries_left.saturating_sub(1);
        let relaxed = self.settings.relaxed;
        if let (true, Some(server), false) = (relaxed, p.server, p.written) {
            s.superseded
                .entry(server)
                .or_default()
                .push_back(ZmqMsg::Request {
                    socket: s.socket,
                    request_id: p.request_id,
                    frames: self.frames(p.index),
                });
        }
        p.server = None;
        p.written = false;
        p.request_id = None;
        p.any_pipe = false;
        let left = p.retries_left;
        if !relaxed {
            // The old socket goes, and the request queued in it (ZMQ_LINGER=0, as lpclient
            // sets).
            s.socket += 1;
            s.welcomed.clear();
        }
        if left == 0 {
            self.abandon(s, o);
        }
        if !relaxed {
            self.connect(s, o);
        }
        self.write(s, o);
    }

    /// Lazy Pirate: the last attempt went unanswered; the request has failed.
    fn abandon(&self, s: &mut RequesterState, o: &mut ZmqOut) {
        let Some(p) = &s.pending else { return };
        let reason = format!(
            "no reply after {} attempts: server seems to be offline, abandoning",
            self.settings.retries
        );
        let fails = self
            .frames(p.index)
            .parts
            .iter()
            .map(|msg| Op::Fail {
                msg: *msg,
                reason: reason.clone(),
            })
            .collect();
        record(&mut s.app, fails, o);
        self.done(s, o);
    }

    /// The request is over (answered, or abandoned): the next one after the pace.
    fn done(&self, s: &mut RequesterState, o: &mut ZmqOut) {
        s.pending = None;
        if let Some(pace) = s.pace {
            o.set_timer(ZmqTimer::Send, exact(pace));
        }
    }
}
