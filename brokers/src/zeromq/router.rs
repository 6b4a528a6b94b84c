//! The ROUTER server of `pattern=dealer-router`: the zguide's asynchronous server (chapter 3,
//! `asyncsrv`), whose application receives a request with the routing id its socket put in
//! front of it, handles it, and sends the reply back to that routing id.
//!
//! Every accepted connection is a pipe pair with a routing id of its own (`router_t::
//! identify_peer`: a DEALER without `ZMQ_ROUTING_ID` sends an empty one, and the socket takes
//! `_next_integral_routing_id++`), so a DEALER that reconnects, or a restarted one, is a new
//! peer to the ROUTER. Requests are fair-queued over the in pipes (`fq_t::recvpipe`), and
//! `router_t::xrecv` returns the pipe's routing id as the first frame. When a connection breaks
//! or its DEALER connects again, the session terminates the pipe: its out end goes with the
//! replies it still held (`router_t::xpipe_terminated`: `erase_out_pipe`), while its in end
//! waits for the delimiter (`pipe_t::process_pipe_term` with `_delay`; `router_t` sets no
//! `set_nodelay`), so the requests already in it are still received and handled.
//!
//! The reply (`router_t::xsend`): the first frame names the routing id, `lookup_out_pipe`
//! finds its pipe, and `check_write` asks whether it takes one more message. Without
//! `ZMQ_ROUTER_MANDATORY` (the default) a reply to a routing id with no pipe, or to a pipe at
//! `ZMQ_SNDHWM`, is dropped silently and `zmq_send` returns success. With
//! `ZMQ_ROUTER_MANDATORY=1` the first fails with `EHOSTUNREACH` and the second with `EAGAIN`,
//! which a blocking `zmq_send` does not return: `socket_base_t::send` waits for the pipe to
//! have room (`process_commands`, then `xsend` again), and meanwhile the server receives
//! nothing. The model notes each dropped reply as `Op::Discard`, with what the application
//! saw: nothing, or `EHOSTUNREACH`.
//!
//! The in pipes have `ZMQ_RCVHWM`: when the one of a connection is full, what arrives stays on
//! the connection and no credit goes back, so the DEALER's pipe fills behind it and its round
//! robin skips this server, or blocks.

use super::outgoing::Peer;
use super::protocol::{Frames, ZmqMsg};
use super::{fair_queue, processing_choice, record, Settings, ZmqOut, ZmqTimer};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::Op;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Router {
    pub settings: Settings,
    pub index: u32,
}

/// A request as `zmq_recv` returns it, with what routes its reply: the routing id frame
/// (`router_t::xrecv`), and, for the model's notes and the history, the DEALER and its
/// connection the pipe belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routed {
    pub routing_id: u32,
    pub peer: Id,
    pub connection: u32,
    pub frames: Frames,
}

/// The out pipe of a routing id whose connection is up (`_out_pipes`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub peer: Id,
    pub pipe: Peer,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouterState {
    pub app: AppLog,
    pub processing: Duration,
    /// `_next_integral_routing_id`, one more per accepted connection (libzmq starts it at a
    /// random value; only its uniqueness matters).
    pub next_routing_id: u32,
    /// Each connected DEALER's current connection number and the routing id of its pipe.
    pub peers: BTreeMap<Id, (u32, u32)>,
    /// The out pipes, by routing id, of the connections that are up.
    pub routes: BTreeMap<u32, Route>,
    /// The in pipes, by routing id: requests `zmq_recv` has not returned yet. A terminated
    /// pipe stays until it is read to its delimiter.
    pub inbound: BTreeMap<u32, VecDeque<Routed>>,
    /// Requests left on a connection behind its full in pipe (`ZMQ_RCVHWM`).
    pub unread: BTreeMap<u32, VecDeque<Routed>>,
    /// The in pipe read last (fair queueing).
    pub last: Option<u32>,
    /// The request being handled, already applied.
    pub current: Option<Routed>,
    /// `ZMQ_ROUTER_MANDATORY=1`: the reply whose `zmq_send` waits for room in its full pipe.
    pub blocked: Option<Routed>,
    /// The application has started receiving (it starts late with `--consumer-delay-ms`).
    pub started: bool,
}

impl Router {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> RouterState {
        processing_choice(&self.settings.workload, o);
        let started = !(app.is_empty() && self.settings.workload.consumer_delay_ms > 0);
        if !started {
            o.set_timer(
                ZmqTimer::Start,
                exact(self.settings.workload.consumer_delay()),
            );
        }
        RouterState {
            app,
            processing: Duration::ZERO,
            next_routing_id: 0,
            peers: BTreeMap::new(),
            routes: BTreeMap::new(),
            inbound: BTreeMap::new(),
            unread: BTreeMap::new(),
            last: None,
            current: None,
            blocked: None,
            started,
        }
    }

    pub fn on_msg(&self, s: &mut RouterState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        let current = s.peers.get(&src).copied();
        match msg {
            ZmqMsg::Hello { connection } => {
                // The same connection's greeting again changes nothing; a new one from the same
                // DEALER ends the old one, and gets a pipe and a routing id of its own.
                if current.is_none_or(|(c, _)| c != connection) {
                    self.terminate(s, src, "connected again", o);
                    let routing_id = s.next_routing_id;
                    s.next_routing_id += 1;
                    s.peers.insert(src, (connection, routing_id));
                    let pipe = Peer {
                        connected: true,
                        connection,
                        ..Peer::default()
                    };
                    s.routes.insert(routing_id, Route { peer: src, pipe });
                }
                o.send(src, ZmqMsg::Welcome { connection });
            }
            ZmqMsg::Reset => self.terminate(s, src, "the connection broke", o),
            ZmqMsg::Message { connection, frames } => {
                let Some((c, routing_id)) = current.filter(|(c, _)| *c == connection) else {
                    return;
                };
                let request = Routed {
                    routing_id,
                    peer: src,
                    connection: c,
                    frames,
                };
                let pipe = s.inbound.entry(routing_id).or_default();
                let unread = s.unread.entry(routing_id).or_default();
                if !unread.is_empty() || Settings::full(self.settings.rcvhwm, pipe.len() as u64)
                {
                    unread.push_back(request);
                } else {
                    pipe.push_back(request);
                    o.send(src, ZmqMsg::Credit(1));
                }
                self.receive(s, o);
            }
            ZmqMsg::Credit(n) => {
                let Some((_, routing_id)) = current else {
                    return;
                };
                if let Some(route) = s.routes.get_mut(&routing_id) {
                    route.pipe.in_flight = route.pipe.in_flight.saturating_sub(u64::from(n));
                    route.pipe.flush(src, &self.settings, o);
                }
                self.unblock(s, o);
            }
            _ => {}
        }
    }

    /// The DEALER `peer`'s connection ended (`why`): its pipe is terminated. The replies the
    /// out end held are dropped; the requests the in end holds are still read; what was left
    /// on the connection behind a full in pipe is gone with it.
    fn terminate(&self, s: &mut RouterState, peer: Id, why: &str, o: &mut ZmqOut) {
        let Some((_, routing_id)) = s.peers.remove(&peer) else {
            return;
        };
        s.unread.remove(&routing_id);
        if let Some(route) = s.routes.remove(&routing_id) {
            let reason = format!(
                "{} {why}: the pipe to it (routing id {routing_id}) was terminated with the replies it held",
                self.settings.name(peer)
            );
            let notes: Vec<Op> = route
                .pipe
                .pipe
                .iter()
                .flat_map(|f| f.parts.iter())
                .map(|msg| Op::Discard {
                    msg: *msg,
                    reason: reason.clone(),
                })
                .collect();
            if !notes.is_empty() {
                record(&mut s.app, notes, o);
            }
        }
        self.unblock(s, o);
    }

    pub fn on_timeout(&self, s: &mut RouterState, timer: &ZmqTimer, o: &mut ZmqOut) {
        match timer {
            ZmqTimer::Start => {
                s.started = true;
                self.receive(s, o);
            }
            ZmqTimer::Process => {
                if let Some(request) = s.current.take() {
                    self.reply(s, request, o);
                }
            }
            _ => {}
        }
    }

    /// `zmq_send` of the reply to `request`'s routing id (`router_t::xsend`), then the next
    /// request, unless the send blocks.
    fn reply(&self, s: &mut RouterState, request: Routed, o: &mut ZmqOut) {
        let mandatory = self.settings.router_mandatory;
        let name = self.settings.name(request.peer);
        let routing_id = request.routing_id;
        let reason = match s.routes.get_mut(&routing_id) {
            Some(route)
                if !Settings::full(self.settings.sndhwm, route.pipe.pipe.len() as u64) =>
            {
                route.pipe.pipe.push_back(request.frames);
                route.pipe.flush(request.peer, &self.settings, o);
                self.receive(s, o);
                return;
            }
            Some(_) if mandatory => {
                // EAGAIN: the blocking send waits for room.
                s.blocked = Some(request);
                return;
            }
            Some(_) => format!(
                "ZMQ_SNDHWM reached on the pipe to {name} (routing id {routing_id}; the kernels' buffers full too): ROUTER drops the reply silently (ZMQ_ROUTER_MANDATORY=0)"
            ),
            None if mandatory => format!(
                "zmq_send of the reply failed with EHOSTUNREACH (ZMQ_ROUTER_MANDATORY=1): no pipe for routing id {routing_id}, {name}'s connection {} is gone; the server knows, the client cannot be reached",
                request.connection
            ),
            None => format!(
                "no pipe for routing id {routing_id}, {name}'s connection {} is gone: ROUTER drops the reply silently (ZMQ_ROUTER_MANDATORY=0)",
                request.connection
            ),
        };
        let notes = request
            .frames
            .parts
            .iter()
            .map(|msg| Op::Discard {
                msg: *msg,
                reason: reason.clone(),
            })
            .collect();
        record(&mut s.app, notes, o);
        self.receive(s, o);
    }

    /// A blocked `zmq_send` tries again: its pipe may have room now, or be gone.
    fn unblock(&self, s: &mut RouterState, o: &mut ZmqOut) {
        if let Some(request) = s.blocked.take() {
            self.reply(s, request, o);
        }
    }

    /// ROUTER's `zmq_recv`: the next request, fair-queued over the in pipes, once the last was
    /// answered. The server applies it at once and replies when its handling time is over. A
    /// message read makes room for one left on the connection, which is credited.
    fn receive(&self, s: &mut RouterState, o: &mut ZmqOut) {
        if s.current.is_some() || s.blocked.is_some() || !s.started {
            return;
        }
        let Some(routing_id) = fair_queue(&s.inbound, s.last) else {
            return;
        };
        s.last = Some(routing_id);
        let Some(pipe) = s.inbound.get_mut(&routing_id) else {
            return;
        };
        let Some(request) = pipe.pop_front() else {
            return;
        };
        if let Some(next) = s.unread.get_mut(&routing_id).and_then(VecDeque::pop_front) {
            o.send(next.peer, ZmqMsg::Credit(1));
            pipe.push_back(next);
        }
        // A terminated pipe read to its delimiter is gone.
        let live: BTreeSet<u32> = s.routes.keys().copied().collect();
        s.inbound
            .retain(|id, q| !q.is_empty() || live.contains(id));
        record(
            &mut s.app,
            self.settings
                .deliver_ops(self.index, request.connection, &request.frames),
            o,
        );
        s.current = Some(request);
        o.set_timer(ZmqTimer::Process, exact(s.processing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Workload};
    use stateright::actor::Command;

    fn dealer() -> Id {
        Id::from(0)
    }

    fn router(sets: &[&str]) -> Router {
        let mut all = vec!["pattern=dealer-router".to_string()];
        all.extend(sets.iter().map(|s| s.to_string()));
        let config = Config::parse("zeromq", &super::super::config::keys(), &all).unwrap();
        Router {
            settings: Settings::from_config(&config, Workload::new(10, 1, 1)),
            index: 0,
        }
    }

    fn started(r: &Router) -> RouterState {
        let mut s = r.start(AppLog::default(), &mut ZmqOut::new());
        s.processing = Duration::from_millis(10);
        s
    }

    fn frames(r: &Router, i: u32) -> Frames {
        r.settings.message(0, i)
    }

    fn msg(s: &mut RouterState, r: &Router, m: ZmqMsg) -> ZmqOut {
        let mut o = ZmqOut::new();
        r.on_msg(s, dealer(), m, &mut o);
        o
    }

    fn request(s: &mut RouterState, r: &Router, connection: u32, i: u32) -> ZmqOut {
        let frames = frames(r, i);
        msg(s, r, ZmqMsg::Message { connection, frames })
    }

    fn process(s: &mut RouterState, r: &Router) -> ZmqOut {
        let mut o = ZmqOut::new();
        r.on_timeout(s, &ZmqTimer::Process, &mut o);
        o
    }

    fn sent(o: &ZmqOut) -> Vec<ZmqMsg> {
        o.iter()
            .filter_map(|c| match c {
                Command::Send(to, m) if *to == dealer() => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn replies(o: &ZmqOut) -> usize {
        sent(o)
            .iter()
            .filter(|m| matches!(m, ZmqMsg::Message { .. }))
            .count()
    }

    fn credits(o: &ZmqOut) -> usize {
        sent(o)
            .iter()
            .filter(|m| matches!(m, ZmqMsg::Credit(_)))
            .count()
    }

    fn discards(s: &RouterState) -> Vec<String> {
        s.app
            .iter()
            .filter_map(|op| match op {
                Op::Discard { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_reconnected_dealer_is_a_new_routing_id_and_the_old_ones_replies_are_dropped() {
        for (sets, said) in [
            (&[][..], "drops the reply silently"),
            (&["ZMQ_ROUTER_MANDATORY=1"][..], "EHOSTUNREACH"),
        ] {
            let r = router(sets);
            let mut s = started(&r);
            msg(&mut s, &r, ZmqMsg::Hello { connection: 0 });
            request(&mut s, &r, 0, 0);
            request(&mut s, &r, 0, 1);
            assert_eq!(s.current.as_ref().map(|c| c.routing_id), Some(0));
            msg(&mut s, &r, ZmqMsg::Hello { connection: 1 });
            assert_eq!(s.peers[&dealer()], (1, 1), "a new pipe, routing id 1");
            let o = process(&mut s, &r);
            assert_eq!(replies(&o), 0, "{sets:?}: no pipe for routing id 0");
            let notes = discards(&s);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains(said), "{sets:?}: {notes:?}");
            // The terminated pipe is read to its delimiter: the second request is handled.
            let current = s.current.as_ref().expect("the old pipe's request");
            assert_eq!((current.routing_id, &current.frames), (0, &frames(&r, 1)));
            // The new connection's requests go to the new routing id, and are answered.
            request(&mut s, &r, 1, 2);
            process(&mut s, &r);
            assert!(!s.inbound.contains_key(&0), "the old pipe is gone once read");
            let o = process(&mut s, &r);
            assert_eq!(replies(&o), 1);
            // A stray message of the old connection is not read.
            request(&mut s, &r, 0, 3);
            assert!(s.current.is_none() && s.inbound.values().all(VecDeque::is_empty));
        }
    }

    #[test]
    fn a_full_pipe_drops_the_reply_or_with_router_mandatory_blocks_the_server() {
        // 64 KiB messages: the kernels' buffers hold two, the pipe one.
        let base = ["ZMQ_SNDHWM=1", "message.bytes=65536"];
        let r = router(&base);
        let mut s = started(&r);
        msg(&mut s, &r, ZmqMsg::Hello { connection: 0 });
        for i in 0..5 {
            request(&mut s, &r, 0, i);
        }
        let sent: usize = (0..4).map(|_| replies(&process(&mut s, &r))).sum();
        assert_eq!(sent, 2, "two in the kernels' buffers, one in the pipe");
        let notes = discards(&s);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("ZMQ_SNDHWM reached"), "{notes:?}");
        assert!(s.current.is_some(), "the server goes on receiving");

        let mandatory: Vec<&str> = base.into_iter().chain(["ZMQ_ROUTER_MANDATORY=1"]).collect();
        let r = router(&mandatory);
        let mut s = started(&r);
        msg(&mut s, &r, ZmqMsg::Hello { connection: 0 });
        for i in 0..5 {
            request(&mut s, &r, 0, i);
        }
        for _ in 0..4 {
            process(&mut s, &r);
        }
        assert!(discards(&s).is_empty(), "nothing dropped");
        assert_eq!(s.blocked.as_ref().map(|b| &b.frames), Some(&frames(&r, 3)));
        assert!(s.current.is_none(), "a blocked zmq_send receives nothing");
        // The DEALER reads a reply: the pipe moves on, and the blocked reply goes in.
        let o = msg(&mut s, &r, ZmqMsg::Credit(1));
        assert_eq!(replies(&o), 1);
        assert!(s.blocked.is_none());
        assert_eq!(s.current.as_ref().map(|c| &c.frames), Some(&frames(&r, 4)));
        // The DEALER goes while a reply is blocked: zmq_send fails with EHOSTUNREACH.
        process(&mut s, &r);
        assert!(s.blocked.is_some());
        msg(&mut s, &r, ZmqMsg::Reset);
        assert!(s.blocked.is_none());
        let notes = discards(&s);
        assert!(notes.iter().any(|n| n.contains("EHOSTUNREACH")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("terminated with the replies it held")));
    }

    #[test]
    fn a_full_in_pipe_leaves_requests_on_the_connection_without_credit() {
        let r = router(&["ZMQ_RCVHWM=1"]);
        let mut s = started(&r);
        msg(&mut s, &r, ZmqMsg::Hello { connection: 0 });
        assert_eq!(credits(&request(&mut s, &r, 0, 0)), 1, "received at once");
        assert_eq!(credits(&request(&mut s, &r, 0, 1)), 1, "into the pipe");
        assert_eq!(credits(&request(&mut s, &r, 0, 2)), 0, "the pipe is full");
        assert_eq!(s.unread[&0].len(), 1);
        let o = process(&mut s, &r);
        assert_eq!((replies(&o), credits(&o)), (1, 1), "read one, took one in");
        assert!(s.unread[&0].is_empty());
    }
}
