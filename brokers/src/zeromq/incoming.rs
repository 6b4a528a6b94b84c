//! The connecting side of PUB/SUB and PUSH/PULL: a SUB or PULL socket that connects to every
//! producer, fair-queues their messages, and the application that handles them.

use super::protocol::{Frames, ZmqMsg};
use super::{dial, fair_queue, processing_choice, record, Pattern, Settings, ZmqOut, ZmqTimer};
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
    /// What arrived while that pipe was full: left unread on the connection.
    pub unread: BTreeMap<Id, VecDeque<Frames>>,
    /// The producer whose pipe the application read last (fair queueing).
    pub last: Option<Id>,
    /// The application is handling a message.
    pub busy: bool,
}

impl Incoming {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> IncomingState {
        processing_choice(&self.settings.workload, o);
        let s = IncomingState {
            app,
            processing: Duration::ZERO,
            welcomed: BTreeSet::new(),
            connections: BTreeMap::new(),
            pipes: BTreeMap::new(),
            unread: BTreeMap::new(),
            last: None,
            busy: false,
        };
        if s.app.is_empty() && self.settings.workload.consumer_delay_ms > 0 {
            o.set_timer(
                ZmqTimer::Start,
                exact(self.settings.workload.consumer_delay()),
            );
        } else {
            self.connect(&s, o);
        }
        s
    }

    /// Dials every producer not yet connected, and tries again after `ZMQ_RECONNECT_IVL`. A SUB
    /// sends its subscription on every new connection.
    fn connect(&self, s: &IncomingState, o: &mut ZmqOut) {
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
        match msg {
            // The answer to the current connection's greeting, not to one a reset ended.
            ZmqMsg::Welcome { connection }
                if s.connections.get(&src).copied().unwrap_or(0) == connection =>
            {
                s.welcomed.insert(src);
            }
            ZmqMsg::Reset => {
                // What was still on the connection is gone; the pipe keeps what it holds.
                s.welcomed.remove(&src);
                *s.connections.entry(src).or_default() += 1;
                s.unread.remove(&src);
                o.set_timer(ZmqTimer::Reconnect, self.settings.reconnect());
            }
            ZmqMsg::Message { connection, frames }
                if s.connections.get(&src).copied().unwrap_or(0) == connection =>
            {
                let pipe = s.pipes.entry(src).or_default();
                if Settings::full(self.settings.rcvhwm, pipe.len() as u64) {
                    s.unread.entry(src).or_default().push_back(frames);
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

    pub fn on_timeout(&self, s: &mut IncomingState, timer: &ZmqTimer, o: &mut ZmqOut) {
        match timer {
            ZmqTimer::Reconnect | ZmqTimer::Start => self.connect(s, o),
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
        if !s.busy && Self::next_pipe(s).is_some() {
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
        if let Some(next) = s.unread.get_mut(&peer).and_then(VecDeque::pop_front) {
            // A reset empties what was unread, so it came over the current connection.
            let current = s.connections.get(&peer).copied().unwrap_or(0);
            s.pipes.entry(peer).or_default().push_back((current, next));
            o.send(peer, ZmqMsg::Credit(1));
        }
    }
}
