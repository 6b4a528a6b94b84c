//! The receiving side of PUB/SUB and PUSH/PULL: a SUB or PULL socket that fair-queues its
//! producers' messages, and the application that handles them.
//!
//! A SUB connects to every PUB, and so does a PULL by default (`bind=push`): its session keeps
//! the pipe across reconnects. With `bind=pull` the PULL binds and every PUSH connects to it:
//! each accepted connection gets a pipe of its own, and when the connection breaks the session
//! terminates it, but the socket's end waits for the delimiter (`pipe_t::process_pipe_term`
//! with `_delay`; `pull_t` does not set `set_nodelay`), so the application still reads what
//! the pipe holds. A binding PULL that starts late (`--consumer-delay-ms`) binds at once and
//! its application starts reading after the delay, as a REP server does.

use super::heartbeat::{self, Expired, Timers};
use super::protocol::{Frames, ZmqMsg};
use super::{dial, fair_queue, late_start, record, Pattern, Settings, ZmqOut, ZmqTimer};
use crate::timers::exact;
use crate::AppLog;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Incoming {
    pub settings: Settings,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IncomingState {
    pub app: AppLog,
    pub processing: Duration,
    /// Producers whose end of the connection answered.
    pub welcomed: BTreeSet<Id>,
    /// The current connection to each producer, by number: one more after each reset.
    pub connections: BTreeMap<Id, u32>,
    /// The receive pipe from each producer, up to `ZMQ_RCVHWM` messages, each with the
    /// connection it came over (a pipe outlives its connection).
    pub pipes: BTreeMap<Id, VecDeque<(u32, Frames)>>,
    /// What arrived while that pipe was full: left unread on the connection. The first is the
    /// message the engine decoded and could not push; what follows it is not decoded.
    pub unread: BTreeMap<Id, VecDeque<Unread>>,
    /// The heartbeat timers of each producer's connection (`ZMQ_HEARTBEAT_IVL`).
    pub heartbeats: BTreeMap<Id, Timers>,
    /// The producer whose pipe the application read last (fair queueing).
    pub last: Option<Id>,
    /// The application is handling a message.
    pub busy: bool,
    /// The application has started reading (a binding PULL's starts late with
    /// `--consumer-delay-ms`).
    pub started: bool,
}

/// What waits on a connection behind a full receive pipe.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Unread {
    Message(Frames),
    /// A PING or PONG, decoded only once the messages before it are.
    Command(ZmqMsg),
}

impl Incoming {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> IncomingState {
        let late = late_start(&self.settings.workload, &app, o);
        let s = IncomingState {
            app,
            processing: Duration::ZERO,
            welcomed: BTreeSet::new(),
            connections: BTreeMap::new(),
            pipes: BTreeMap::new(),
            unread: BTreeMap::new(),
            heartbeats: BTreeMap::new(),
            last: None,
            busy: false,
            started: !(late && self.binds()),
        };
        if !late {
            self.connect(&s, o);
        }
        s
    }

    /// A PULL with `bind=pull`: it binds, and every PUSH connects to it.
    fn binds(&self) -> bool {
        self.settings.push_connects && self.settings.pattern == Pattern::PushPull
    }

    /// Dials every producer not yet connected, and tries again after `ZMQ_RECONNECT_IVL`. A SUB
    /// sends its subscription on every new connection.
    fn connect(&self, s: &IncomingState, o: &mut ZmqOut) {
        if self.binds() {
            return;
        }
        let greet = |p: Id| {
            let connection = s.connections.get(&p).copied().unwrap_or(0);
            let mut msgs = vec![ZmqMsg::Hello { connection }];
            if self.settings.pattern == Pattern::PubSub {
                let prefix = self.settings.subscribe.clone();
                msgs.push(ZmqMsg::Subscribe { prefix });
            }
            msgs
        };
        dial(
            &self.settings,
            self.settings.producer_ids(),
            &s.welcomed,
            greet,
            o,
        );
    }

    pub fn on_msg(&self, s: &mut IncomingState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        let current = s.connections.get(&src).copied().unwrap_or(0);
        if self.binds() && !s.welcomed.contains(&src) {
            // A binding PULL reads a PUSH's connection from its greeting on.
            if let ZmqMsg::Hello { connection } = msg {
                self.accept(s, src, connection, o);
            }
            return;
        }
        match msg {
            // The same connection's greeting again (the PUSH dialled again before the answer
            // came) changes nothing.
            ZmqMsg::Hello { connection } if self.binds() && current == connection => {
                o.send(src, ZmqMsg::Welcome { connection });
            }
            // A new connection from the same PUSH ends the old one.
            ZmqMsg::Hello { connection } if self.binds() => {
                self.lose(s, src, o);
                self.accept(s, src, connection, o);
            }
            // The answer to the current connection's greeting, not to one a reset ended.
            ZmqMsg::Welcome { connection } if current == connection => {
                if s.welcomed.insert(src) {
                    heartbeat::start(self.settings.heartbeat.as_ref(), src, o);
                }
                heartbeat::decoded(src, s.heartbeats.entry(src).or_default(), o);
            }
            ZmqMsg::Reset => self.lose(s, src, o),
            ZmqMsg::Close { connection } if current == connection => self.lose(s, src, o),
            ZmqMsg::Ping { connection, .. } | ZmqMsg::Pong { connection }
                if current == connection && s.welcomed.contains(&src) =>
            {
                match s.unread.get_mut(&src).filter(|u| !u.is_empty()) {
                    Some(unread) => unread.push_back(Unread::Command(msg)),
                    None => heartbeat::command(src, &msg, s.heartbeats.entry(src).or_default(), o),
                }
            }
            ZmqMsg::Message { connection, frames } if current == connection => {
                if let Some(unread) = s.unread.get_mut(&src).filter(|u| !u.is_empty()) {
                    // Input stopped: the engine does not decode it yet.
                    unread.push_back(Unread::Message(frames));
                    return;
                }
                heartbeat::decoded(src, s.heartbeats.entry(src).or_default(), o);
                let pipe = s.pipes.entry(src).or_default();
                if Settings::full(self.settings.own_hwm(self.settings.rcvhwm), pipe.len() as u64) {
                    s.unread
                        .entry(src)
                        .or_default()
                        .push_back(Unread::Message(frames));
                } else {
                    let replaced = self.settings.enqueue(pipe, (connection, frames));
                    o.send(src, ZmqMsg::Credit(1));
                    if !replaced.is_empty() {
                        let replaced: Vec<Frames> = replaced.into_iter().map(|(_, f)| f).collect();
                        let from = format!("from {}", self.settings.name(src));
                        record(&mut s.app, Settings::conflated(&replaced, &from), o);
                    }
                }
                self.handle_next(s, o);
            }
            _ => {}
        }
    }

    /// A binding PULL accepts a PUSH's new connection: it answers the greeting and reads
    /// what comes over it into a new pipe, after what the old one still holds.
    fn accept(&self, s: &mut IncomingState, push: Id, connection: u32, o: &mut ZmqOut) {
        s.welcomed.insert(push);
        s.connections.insert(push, connection);
        heartbeat::start(self.settings.heartbeat.as_ref(), push, o);
        o.send(push, ZmqMsg::Welcome { connection });
    }

    /// The connection to `producer` ended (a reset, the producer's close, or this side's
    /// heartbeat): what was still on it is gone, and the pipe keeps what it holds. The
    /// connecting side's session keeps its pipe (`session_base_t::reconnect`) and dials again
    /// after `ZMQ_RECONNECT_IVL`, on a new connection; a binding PULL's pipe is terminated, its
    /// end read to the delimiter, and it waits for the PUSH to connect again.
    fn lose(&self, s: &mut IncomingState, producer: Id, o: &mut ZmqOut) {
        s.welcomed.remove(&producer);
        s.unread.remove(&producer);
        if let Some(mut timers) = s.heartbeats.remove(&producer) {
            heartbeat::stop(producer, &mut timers, o);
        }
        if !self.binds() {
            *s.connections.entry(producer).or_default() += 1;
            o.set_timer(ZmqTimer::Reconnect, self.settings.reconnect());
        }
    }

    pub fn on_timeout(&self, s: &mut IncomingState, timer: &ZmqTimer, o: &mut ZmqOut) {
        if let Some(hb) = &self.settings.heartbeat {
            if let ZmqTimer::HeartbeatIvl(p) = timer {
                if s.welcomed.contains(p) {
                    let connection = s.connections.get(p).copied().unwrap_or(0);
                    heartbeat::ping(hb, *p, connection, s.heartbeats.entry(*p).or_default(), o);
                }
                return;
            }
            if let Some((p, _)) = Expired::of(timer) {
                // `error (timeout_error)`: the engine closes the connection, and the
                // connecting side's session reconnects.
                if s.welcomed.contains(&p) {
                    let connection = s.connections.get(&p).copied().unwrap_or(0);
                    o.send(p, ZmqMsg::Close { connection });
                    self.lose(s, p, o);
                }
                return;
            }
        }
        match timer {
            ZmqTimer::Reconnect => self.connect(s, o),
            ZmqTimer::Start => {
                s.started = true;
                self.connect(s, o);
                self.handle_next(s, o);
            }
            ZmqTimer::Process => {
                s.busy = false;
                self.deliver(s, o);
                self.handle_next(s, o);
            }
            _ => {}
        }
    }

    /// The pipe the application reads next: the first non-empty one after the last it read.
    fn next_pipe(s: &IncomingState) -> Option<Id> {
        fair_queue(&s.pipes, s.last)
    }

    /// Starts handling the next message, if the application is free and one is waiting.
    fn handle_next(&self, s: &mut IncomingState, o: &mut ZmqOut) {
        if s.started && !s.busy && Self::next_pipe(s).is_some() {
            s.busy = true;
            o.set_timer(ZmqTimer::Process, exact(s.processing));
        }
    }

    /// The application received and handled one message; its pipe has room to read one more
    /// off the connection.
    fn deliver(&self, s: &mut IncomingState, o: &mut ZmqOut) {
        let Some(peer) = Self::next_pipe(s) else {
            return;
        };
        s.last = Some(peer);
        let Some((connection, frames)) = s.pipes.get_mut(&peer).and_then(VecDeque::pop_front)
        else {
            return;
        };
        record(
            &mut s.app,
            self.settings.deliver_ops(self.index, connection, &frames),
            o,
        );
        let Some(unread) = s.unread.get_mut(&peer) else {
            return;
        };
        if let Some(Unread::Message(next)) = unread.pop_front() {
            // Input restarts: the message the engine held goes into the pipe (a reset empties
            // what was unread, so it came over the current connection), and the engine decodes
            // on: the PINGs and PONGs behind it, and the next message, which waits again if
            // the pipe is full once more.
            let current = s.connections.get(&peer).copied().unwrap_or(0);
            s.pipes.entry(peer).or_default().push_back((current, next));
            o.send(peer, ZmqMsg::Credit(1));
            let timers = s.heartbeats.entry(peer).or_default();
            while let Some(Unread::Command(command)) = unread.front() {
                heartbeat::command(peer, command, timers, o);
                unread.pop_front();
            }
            if !unread.is_empty() {
                heartbeat::decoded(peer, timers, o);
            }
        }
    }
}
