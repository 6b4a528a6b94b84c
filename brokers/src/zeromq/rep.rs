//! The REP server: fair-queues requests from its REQ peers, handles one at a time, replies.

use super::protocol::{Frames, ZmqMsg};
use super::{fair_queue, processing_choice, record, Settings, ZmqOut, ZmqTimer};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Replier {
    pub settings: Settings,
    pub index: u32,
}

/// A request with the envelope that routes its reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    pub peer: Id,
    pub socket: u32,
    pub frames: Frames,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplierState {
    pub app: AppLog,
    pub processing: Duration,
    /// Each connected REQ peer's current socket: a reply to any other is discarded.
    pub sockets: BTreeMap<Id, u32>,
    /// Requests received from each peer, not yet handled.
    pub queues: BTreeMap<Id, VecDeque<Envelope>>,
    pub last: Option<Id>,
    /// The request being handled: REP receives the next only after replying.
    pub current: Option<Envelope>,
    /// `server.dedup`: the requests handled so far (by their first frame), in memory.
    pub handled: BTreeSet<MsgId>,
    /// The application has started receiving (it starts late with `--consumer-delay-ms`).
    pub started: bool,
}

impl Replier {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> ReplierState {
        processing_choice(&self.settings.workload, o);
        let started = !(app.is_empty() && self.settings.workload.consumer_delay_ms > 0);
        if !started {
            o.set_timer(
                ZmqTimer::Start,
                exact(self.settings.workload.consumer_delay()),
            );
        }
        ReplierState {
            app,
            processing: Duration::ZERO,
            sockets: BTreeMap::new(),
            queues: BTreeMap::new(),
            last: None,
            current: None,
            handled: BTreeSet::new(),
            started,
        }
    }

    pub fn on_msg(&self, s: &mut ReplierState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        match msg {
            ZmqMsg::Hello { connection } => {
                // A new connection from this peer replaces its old one, and the old pipe with it.
                s.sockets.insert(src, connection);
                s.queues.remove(&src);
                o.send(src, ZmqMsg::Welcome { connection });
            }
            ZmqMsg::Reset => {
                s.sockets.remove(&src);
                s.queues.remove(&src);
            }
            ZmqMsg::Request { socket, frames } if s.sockets.get(&src) == Some(&socket) => {
                s.queues.entry(src).or_default().push_back(Envelope {
                    peer: src,
                    socket,
                    frames,
                });
                self.receive(s, o);
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ReplierState, timer: &ZmqTimer, o: &mut ZmqOut) {
        if *timer == ZmqTimer::Start {
            s.started = true;
            self.receive(s, o);
            return;
        }
        if *timer != ZmqTimer::Process {
            return;
        }
        let Some(request) = s.current.take() else {
            return;
        };
        let first = request.frames.parts[0];
        if !(self.settings.dedup && s.handled.contains(&first)) {
            record(
                &mut s.app,
                self.settings
                    .deliver_ops(self.index, request.socket, &request.frames),
                o,
            );
            s.handled.insert(first);
        }
        // A reply whose requester is gone is silently discarded.
        if s.sockets.get(&request.peer) == Some(&request.socket) {
            o.send(
                request.peer,
                ZmqMsg::Reply {
                    socket: request.socket,
                    frames: request.frames,
                },
            );
        }
        self.receive(s, o);
    }

    /// REP's `zmq_recv`: the next request, fair-queued over the peers, once the last was
    /// answered.
    fn receive(&self, s: &mut ReplierState, o: &mut ZmqOut) {
        if s.current.is_some() || !s.started {
            return;
        }
        let Some(peer) = fair_queue(&s.queues, s.last) else {
            return;
        };
        s.last = Some(peer);
        s.current = s.queues.get_mut(&peer).and_then(VecDeque::pop_front);
        o.set_timer(ZmqTimer::Process, exact(s.processing));
    }
}
