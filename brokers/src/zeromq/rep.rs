//! The REP server: fair-queues requests from its REQ peers, handles one at a time, replies.
//!
//! REP is a ROUTER underneath (`rep.cpp` derives from `router_t`): each connection is a pipe
//! with a routing id of its own. When a connection breaks, or its peer connects again (a REQ
//! that reconnected, or a Lazy Pirate client's new socket), the session terminates the old
//! pipe, but the socket's end of it waits for its delimiter (`pipe_t::process_pipe_term`,
//! `_delay` true): the requests already in it are still received and handled. Their replies
//! are dropped (`router_t::xsend` finds no writable pipe for the routing id and, without
//! `ZMQ_ROUTER_MANDATORY`, discards).
//!
//! The application handles a request in two steps: `zmq_recv` returns it and the server
//! applies it at once (its effect, recorded as the delivery), then works on the reply for its
//! handling time (`lpserver`'s `sleep` between `s_recv` and `s_send`) and sends it. A crash in
//! between has applied the request and sent no reply: the Lazy Pirate client resends, and the
//! server applies it twice — the duplicate window of the zguide's chapter 4.

use super::protocol::{Frames, ZmqMsg};
use super::{fair_queue, late_start, record, Settings, ZmqOut, ZmqTimer};
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

/// A request with the envelope that routes its reply: the peer, its socket, the pipe (the
/// connection) it came through, and the request id frame of a `ZMQ_REQ_CORRELATE` socket, which
/// REP returns with the rest of the envelope (`rep_t::xrecv` copies every frame up to the empty
/// delimiter to the reply pipe, and `rep_t::xsend` adds the reply).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    pub peer: Id,
    pub socket: u32,
    pub pipe: u32,
    pub request_id: Option<u32>,
    pub frames: Frames,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplierState {
    pub app: AppLog,
    pub processing: Duration,
    /// Each connected REQ peer's current socket.
    pub sockets: BTreeMap<Id, u32>,
    /// Each peer's latest pipe, by number (one more per connection): a reply to any other
    /// pipe is discarded.
    pub pipes: BTreeMap<Id, u32>,
    /// Requests received from each peer, not yet handled, over its current pipe and over
    /// terminated ones that still hold them.
    pub queues: BTreeMap<Id, VecDeque<Envelope>>,
    pub last: Option<Id>,
    /// The request being handled, already applied: REP receives the next only after replying.
    pub current: Option<Envelope>,
    /// `server.dedup`: the requests handled so far (by their first frame), in memory.
    pub handled: BTreeSet<MsgId>,
    /// The application has started receiving (it starts late with `--consumer-delay-ms`).
    pub started: bool,
}

impl Replier {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> ReplierState {
        let started = !late_start(&self.settings.workload, &app, o);
        ReplierState {
            app,
            processing: Duration::ZERO,
            sockets: BTreeMap::new(),
            pipes: BTreeMap::new(),
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
                // A new connection from this peer gets a new pipe; the old one keeps what it
                // holds until it is read. The same connection's greeting again changes nothing.
                if s.sockets.get(&src) != Some(&connection) {
                    s.sockets.insert(src, connection);
                    *s.pipes.entry(src).or_default() += 1;
                }
                o.send(src, ZmqMsg::Welcome { connection });
            }
            ZmqMsg::Reset => {
                // The connection is gone, and with it what was unread on it; the pipe's
                // requests stay.
                s.sockets.remove(&src);
            }
            ZmqMsg::Request {
                socket,
                request_id,
                frames,
            } if s.sockets.get(&src) == Some(&socket) => {
                let pipe = s.pipes.get(&src).copied().unwrap_or(0);
                s.queues.entry(src).or_default().push_back(Envelope {
                    peer: src,
                    socket,
                    pipe,
                    request_id,
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
        // A reply whose requester is gone is silently discarded.
        if s.live(&request) {
            o.send(
                request.peer,
                ZmqMsg::Reply {
                    socket: request.socket,
                    request_id: request.request_id,
                    frames: request.frames,
                },
            );
        }
        self.receive(s, o);
    }

    /// REP's `zmq_recv`: the next request, fair-queued over the peers, once the last was
    /// answered. The server applies it (`server.dedup`: unless it handled it before) and
    /// replies when its handling time is over.
    fn receive(&self, s: &mut ReplierState, o: &mut ZmqOut) {
        if s.current.is_some() || !s.started {
            return;
        }
        let Some(peer) = fair_queue(&s.queues, s.last) else {
            return;
        };
        s.last = Some(peer);
        let Some(request) = s.queues.get_mut(&peer).and_then(VecDeque::pop_front) else {
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
        s.current = Some(request);
        o.set_timer(ZmqTimer::Process, exact(s.processing));
    }
}

impl ReplierState {
    /// Is the pipe `request` came through still the peer's writable one?
    pub fn live(&self, request: &Envelope) -> bool {
        self.sockets.get(&request.peer) == Some(&request.socket)
            && self.pipes.get(&request.peer) == Some(&request.pipe)
    }
}
