//! The ROUTER server of `pattern=dealer-router`: the zguide's asynchronous server (chapter 3,
//! `asyncsrv`), whose application receives a request with the routing id its socket put in
//! front of it, handles it, and sends the reply back to that routing id.
//!
//! Every accepted connection is a pipe pair with a routing id (`router_t::identify_peer`, at
//! tag v4.3.5, as everything cited here). A DEALER without `ZMQ_ROUTING_ID` sends an empty one
//! and the socket takes `_next_integral_routing_id++`, so a DEALER that reconnects, or a
//! restarted one, is a new peer to the ROUTER. With `ZMQ_ROUTING_ID=client` each DEALER's
//! greeting carries its own, `dealer<n>`, and the new connection of a reconnected or restarted
//! DEALER claims the routing id its old one had. When the ROUTER has not yet learnt that the
//! old connection is gone (its close lost behind a partition, or a machine that lost power
//! closes nothing), the old pipe still holds that routing id, and:
//!
//! - by default (`ZMQ_ROUTER_HANDOVER=0`) `identify_peer` returns false ("Ignore peers with
//!   duplicate ID"): `xattach_pipe` puts the pipe in `_anonymous_pipes` instead of `_fq`, and it
//!   is never read. Only a read activation (`xread_activated`) tries `identify_peer` again, and
//!   none comes: that read took the greeting's routing id message, so the reader never found
//!   the pipe empty and the writer's `flush` never wakes it. The pipe is not an out pipe either
//!   (`add_out_pipe` was not reached): replies to that routing id go to the old pipe while it
//!   lives and find none after. So the DEALER is ignored by this ROUTER for as long as this
//!   connection lasts, even after the old pipe terminated: its requests stay in the pipe up to
//!   `ZMQ_RCVHWM`, then on the connection, then in its own pipe, which round robin skips at
//!   `ZMQ_SNDHWM`. They are lost with the connection when it ends (a reset, or a reconnect).
//! - with `ZMQ_ROUTER_HANDOVER=1` the new pipe takes the routing id over: the old pipe gets a
//!   new integral one (`set_router_socket_routing_id`, `add_out_pipe`) and is terminated with
//!   `terminate (true)`. Nothing moves to the new pipe: the replies queued in the old one are
//!   written after it to the old connection (the session's end waits for the delimiter,
//!   `process_pipe_term` with `_delay`), which is gone; the requests still in the old in pipe
//!   are read to its delimiter under the new integral routing id, so their replies find no pipe.
//!   A request the application received before the handover carries the old routing id, and
//!   its reply goes to the new connection: the restarted DEALER gets it.
//!
//! Requests are fair-queued over the in pipes (`fq_t::recvpipe`), and
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
use super::{discard, fair_queue, late_start, record, Settings, ZmqOut, ZmqTimer};
use crate::timers::exact;
use crate::AppLog;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Router {
    pub settings: Settings,
    pub index: u32,
}

/// A pipe's routing id (`pipe_t::get_routing_id`): the DEALER's own (`ZMQ_ROUTING_ID=client`,
/// `dealer<n>`), or one the ROUTER made up from `_next_integral_routing_id` (for a DEALER
/// without one, and for an old pipe whose routing id was handed over).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoutingId {
    Integral(u32),
    Dealer(u32),
}

impl fmt::Display for RoutingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingId::Integral(n) => write!(f, "{n}"),
            RoutingId::Dealer(n) => write!(f, "dealer{n}"),
        }
    }
}

/// A request as `zmq_recv` returns it, with what routes its reply: the routing id frame
/// (`router_t::xrecv`), and, for the model's notes and the history, the DEALER and its
/// connection the pipe belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Routed {
    pub routing_id: RoutingId,
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
    /// `_next_integral_routing_id`, one more per routing id the ROUTER makes up (libzmq starts
    /// it at a random value; only its uniqueness matters).
    pub next_routing_id: u32,
    /// Each connected DEALER's current connection number and the routing id it has, or, for
    /// an anonymous pipe, the one it claimed.
    pub peers: BTreeMap<Id, (u32, RoutingId)>,
    /// The DEALERs whose current connection's pipe is anonymous (`_anonymous_pipes`): it
    /// claimed a routing id in use, and `identify_peer` refused it. The requests it holds,
    /// never read.
    pub anonymous: BTreeMap<Id, VecDeque<Frames>>,
    /// The out pipes, by routing id, of the connections that are up.
    pub routes: BTreeMap<RoutingId, Route>,
    /// The in pipes, by routing id: requests `zmq_recv` has not returned yet. A terminated
    /// pipe stays until it is read to its delimiter.
    pub inbound: BTreeMap<RoutingId, VecDeque<Routed>>,
    /// Requests left on a connection behind its full in pipe (`ZMQ_RCVHWM`).
    pub unread: BTreeMap<RoutingId, VecDeque<Routed>>,
    /// The in pipe read last (fair queueing).
    pub last: Option<RoutingId>,
    /// The request being handled, already applied.
    pub current: Option<Routed>,
    /// `ZMQ_ROUTER_MANDATORY=1`: the reply whose `zmq_send` waits for room in its full pipe.
    pub blocked: Option<Routed>,
    /// The application has started receiving (it starts late with `--consumer-delay-ms`).
    pub started: bool,
}

impl Router {
    pub fn start(&self, app: AppLog, o: &mut ZmqOut) -> RouterState {
        let started = !late_start(&self.settings.workload, &app, o);
        RouterState {
            app,
            processing: Duration::ZERO,
            next_routing_id: 0,
            peers: BTreeMap::new(),
            anonymous: BTreeMap::new(),
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
            ZmqMsg::Ready {
                connection,
                routing_id,
            } => {
                // The same connection's greeting again changes nothing. A new one is a new pipe,
                // identified while the old one still holds its routing id; the DEALER has one
                // connection to each ROUTER, so the old one is gone, which the ROUTER learns
                // when its next write on it draws a reset: here at once.
                if current.is_none_or(|(c, _)| c != connection) {
                    let identified = self.identify(s, src, routing_id, o);
                    self.terminate(s, src, "connected again", o);
                    match identified {
                        Ok(id) => {
                            let pipe = Peer {
                                connected: true,
                                connection,
                                ..Peer::default()
                            };
                            s.routes.insert(id, Route { peer: src, pipe });
                            s.peers.insert(src, (connection, id));
                        }
                        Err(claimed) => {
                            s.peers.insert(src, (connection, claimed));
                            s.anonymous.insert(src, VecDeque::new());
                        }
                    }
                }
                o.send(src, ZmqMsg::Welcome { connection });
            }
            ZmqMsg::Reset => self.terminate(s, src, "lost its connection", o),
            ZmqMsg::Message { connection, frames } => {
                let Some((c, routing_id)) = current.filter(|(c, _)| *c == connection) else {
                    return;
                };
                if let Some(ignored) = s.anonymous.get_mut(&src) {
                    // The session writes into the anonymous pipe up to ZMQ_RCVHWM, and nothing
                    // reads it: what does not fit stays on the connection.
                    if !Settings::full(self.settings.rcvhwm, ignored.len() as u64) {
                        o.send(src, ZmqMsg::Credit(1));
                    }
                    ignored.push_back(frames);
                    return;
                }
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
                let Some((_, routing_id)) = current.filter(|_| !s.anonymous.contains_key(&src))
                else {
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

    /// `router_t::identify_peer` for `peer`'s new pipe: the routing id its greeting carries,
    /// or, when that is empty, a new integral one. A routing id another pipe holds is refused
    /// (`Err`: the pipe stays anonymous, "Ignore peers with duplicate ID") unless
    /// `ZMQ_ROUTER_HANDOVER=1`: then the old pipe gets a new integral routing id, so that the
    /// requests still in it are read with that one and their replies find no pipe, and is
    /// terminated (`terminate (true)`).
    fn identify(
        &self,
        s: &mut RouterState,
        peer: Id,
        claimed: Option<u32>,
        o: &mut ZmqOut,
    ) -> Result<RoutingId, RoutingId> {
        let Some(n) = claimed else {
            let id = RoutingId::Integral(s.next_routing_id);
            s.next_routing_id += 1;
            return Ok(id);
        };
        let id = RoutingId::Dealer(n);
        let Some(holder) = s.routes.get(&id).map(|r| r.peer) else {
            return Ok(id);
        };
        if !self.settings.router_handover {
            return Err(id);
        }
        let renamed = RoutingId::Integral(s.next_routing_id);
        s.next_routing_id += 1;
        if let Some(route) = s.routes.remove(&id) {
            s.routes.insert(renamed, route);
        }
        for pipes in [&mut s.inbound, &mut s.unread] {
            if let Some(mut q) = pipes.remove(&id) {
                q.iter_mut().for_each(|r| r.routing_id = renamed);
                pipes.insert(renamed, q);
            }
        }
        if let Some(held) = s.peers.get_mut(&holder) {
            held.1 = renamed;
        }
        let why = if holder == peer {
            format!("connected again and its new connection took routing id {id} over (ZMQ_ROUTER_HANDOVER=1); the old connection, gone, took the replies")
        } else {
            format!("lost routing id {id} to {}'s connection (ZMQ_ROUTER_HANDOVER=1)", self.settings.name(peer))
        };
        self.terminate(s, holder, &why, o);
        Ok(id)
    }

    /// The DEALER `peer`'s connection ended (`why`): its pipe is terminated. The replies the
    /// out end held are dropped; the requests the in end holds are still read; what was left
    /// on the connection behind a full in pipe is gone with it. An anonymous pipe goes with
    /// every request it held, none of them ever read.
    fn terminate(&self, s: &mut RouterState, peer: Id, why: &str, o: &mut ZmqOut) {
        let Some((connection, routing_id)) = s.peers.remove(&peer) else {
            return;
        };
        let name = self.settings.name(peer);
        let (reason, held) = if let Some(ignored) = s.anonymous.remove(&peer) {
            let reason = format!(
                "{name}'s connection {connection} was ignored: it claimed routing id {routing_id}, in use when it connected (router_t::identify_peer, ZMQ_ROUTER_HANDOVER=0), so its requests were never read, until {name} {why}"
            );
            (reason, Vec::from(ignored))
        } else {
            s.unread.remove(&routing_id);
            let reason = format!(
                "{name} {why}: the pipe to it (routing id {routing_id}) was terminated with the replies it held"
            );
            let held = s.routes.remove(&routing_id).map(|r| r.pipe.pipe);
            (reason, held.into_iter().flatten().collect())
        };
        discard(&mut s.app, &held, &reason, o);
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
        discard(&mut s.app, [&request.frames], &reason, o);
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
        let live: BTreeSet<RoutingId> = s.routes.keys().copied().collect();
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
    use super::RoutingId::{Dealer, Integral};
    use super::*;
    use crate::{Config, Workload};
    use mqcheck_invariants::Op;
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

    /// A DEALER's greeting without `ZMQ_ROUTING_ID`.
    fn hello(connection: u32) -> ZmqMsg {
        ZmqMsg::Ready {
            connection,
            routing_id: None,
        }
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
            msg(&mut s, &r, hello(0));
            request(&mut s, &r, 0, 0);
            request(&mut s, &r, 0, 1);
            assert_eq!(s.current.as_ref().map(|c| c.routing_id), Some(Integral(0)));
            msg(&mut s, &r, hello(1));
            assert_eq!(s.peers[&dealer()], (1, Integral(1)), "a new pipe, routing id 1");
            let o = process(&mut s, &r);
            assert_eq!(replies(&o), 0, "{sets:?}: no pipe for routing id 0");
            let notes = discards(&s);
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].contains(said), "{sets:?}: {notes:?}");
            // The terminated pipe is read to its delimiter: the second request is handled.
            let current = s.current.as_ref().expect("the old pipe's request");
            assert_eq!((current.routing_id, &current.frames), (Integral(0), &frames(&r, 1)));
            // The new connection's requests go to the new routing id, and are answered.
            request(&mut s, &r, 1, 2);
            process(&mut s, &r);
            assert!(!s.inbound.contains_key(&Integral(0)), "the old pipe is gone once read");
            let o = process(&mut s, &r);
            assert_eq!(replies(&o), 1);
            // A stray message of the old connection is not read.
            request(&mut s, &r, 0, 3);
            assert!(s.current.is_none() && s.inbound.values().all(VecDeque::is_empty));
        }
    }

    /// A DEALER's greeting with `ZMQ_ROUTING_ID=client`: client 0's routing id.
    fn ready(connection: u32) -> ZmqMsg {
        ZmqMsg::Ready {
            connection,
            routing_id: Some(0),
        }
    }

    fn delivered(s: &RouterState) -> Vec<u32> {
        s.app
            .iter()
            .filter_map(|op| match op {
                Op::Deliver { msg, .. } => Some(msg.seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_dealer_claiming_its_routing_id_still_in_use_is_ignored_without_router_handover() {
        let r = router(&["ZMQ_ROUTING_ID=client", "ZMQ_RCVHWM=2"]);
        let mut s = started(&r);
        msg(&mut s, &r, ready(0));
        assert_eq!(s.peers[&dealer()], (0, Dealer(0)));
        request(&mut s, &r, 0, 0);
        request(&mut s, &r, 0, 1);
        // Restarted before the ROUTER noticed: the new connection claims dealer0, which the old
        // pipe holds. identify_peer refuses it; the old pipe then goes.
        msg(&mut s, &r, ready(1));
        assert_eq!(s.peers[&dealer()], (1, Dealer(0)));
        assert!(s.anonymous.contains_key(&dealer()));
        assert!(!s.routes.contains_key(&Dealer(0)), "no out pipe for dealer0");
        // The new connection's requests go into its pipe up to ZMQ_RCVHWM, then stay on the
        // connection without credit; none is ever read.
        let credited: Vec<usize> = (2..5)
            .map(|i| credits(&request(&mut s, &r, 1, i)))
            .collect();
        assert_eq!(credited, vec![1, 1, 0]);
        // The reply to request 0 finds no pipe; the old pipe is read to its delimiter.
        assert_eq!(replies(&process(&mut s, &r)), 0);
        assert_eq!(replies(&process(&mut s, &r)), 0);
        assert!(s.current.is_none(), "nothing more to read");
        assert_eq!(delivered(&s), vec![0, 1], "requests 2 to 4 never read");
        assert!(discards(&s).iter().all(|n| n.contains("no pipe for routing id dealer0")));
        // Ignored for as long as the connection lasts, though the old pipe is gone; when it
        // breaks, its requests go with it.
        msg(&mut s, &r, ZmqMsg::Reset);
        let ignored: Vec<String> = discards(&s)
            .into_iter()
            .filter(|n| n.contains("connection 1 was ignored: it claimed routing id dealer0"))
            .collect();
        assert_eq!(ignored.len(), 3, "{:?}", discards(&s));
        // The next connection finds dealer0 free, and is served.
        msg(&mut s, &r, ready(2));
        assert!(s.anonymous.is_empty() && s.routes.contains_key(&Dealer(0)));
        request(&mut s, &r, 2, 5);
        assert_eq!(replies(&process(&mut s, &r)), 1);
        assert_eq!(delivered(&s), vec![0, 1, 5]);
    }

    #[test]
    fn with_router_handover_the_new_connection_takes_the_routing_id_and_the_old_pipe_goes() {
        // 64 KiB messages: the kernels' buffers hold two replies, the third waits in the pipe.
        let r = router(&[
            "ZMQ_ROUTING_ID=client",
            "ZMQ_ROUTER_HANDOVER=1",
            "message.bytes=65536",
        ]);
        let mut s = started(&r);
        msg(&mut s, &r, ready(0));
        for i in 0..5 {
            request(&mut s, &r, 0, i);
        }
        let sent: usize = (0..3).map(|_| replies(&process(&mut s, &r))).sum();
        assert_eq!(sent, 2, "reply 2 waits in the pipe");
        assert_eq!(s.current.as_ref().map(|c| c.routing_id), Some(Dealer(0)));
        msg(&mut s, &r, ready(1));
        assert_eq!(s.peers[&dealer()], (1, Dealer(0)));
        assert!(s.anonymous.is_empty(), "the new pipe is identified");
        assert_eq!(s.routes[&Dealer(0)].pipe.connection, 1);
        // The old pipe, renamed, is terminated: its queued reply is not moved to the new one.
        let notes = discards(&s);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("took routing id dealer0 over"), "{notes:?}");
        assert_eq!(s.inbound[&Integral(0)].len(), 1, "request 4 under the new routing id");
        // Request 3, received as dealer0's, is answered on the new connection.
        let o = process(&mut s, &r);
        assert_eq!(
            sent_messages(&o),
            vec![(1, frames(&r, 3))],
            "the reply goes to the new connection"
        );
        // Request 4, read from the old pipe under routing id 0, finds no pipe.
        assert_eq!(s.current.as_ref().map(|c| c.routing_id), Some(Integral(0)));
        assert_eq!(replies(&process(&mut s, &r)), 0);
        assert!(discards(&s)[1].contains("no pipe for routing id 0"));
        request(&mut s, &r, 1, 5);
        assert_eq!(sent_messages(&process(&mut s, &r)), vec![(1, frames(&r, 5))]);
    }

    fn sent_messages(o: &ZmqOut) -> Vec<(u32, Frames)> {
        sent(o)
            .into_iter()
            .filter_map(|m| match m {
                ZmqMsg::Message { connection, frames } => Some((connection, frames)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_full_pipe_drops_the_reply_or_with_router_mandatory_blocks_the_server() {
        // 64 KiB messages: the kernels' buffers hold two, the pipe one. ZMQ_CONFLATE=1 applies
        // to the DEALER only: the ROUTER's pipe keeps its mark.
        let base = ["ZMQ_SNDHWM=1", "message.bytes=65536"];
        for conflate in [&[][..], &["ZMQ_CONFLATE=1"][..]] {
            let sets: Vec<&str> = base.iter().chain(conflate).copied().collect();
            let r = router(&sets);
            let mut s = started(&r);
            msg(&mut s, &r, hello(0));
            for i in 0..5 {
                request(&mut s, &r, 0, i);
            }
            let sent: usize = (0..4).map(|_| replies(&process(&mut s, &r))).sum();
            assert_eq!(sent, 2, "{sets:?}: two in the kernels' buffers, one in the pipe");
            let notes = discards(&s);
            assert_eq!(notes.len(), 1, "{sets:?}: {notes:?}");
            assert!(notes[0].contains("ZMQ_SNDHWM reached"), "{notes:?}");
            assert!(s.current.is_some(), "the server goes on receiving");
        }

        let mandatory: Vec<&str> = base.into_iter().chain(["ZMQ_ROUTER_MANDATORY=1"]).collect();
        let r = router(&mandatory);
        let mut s = started(&r);
        msg(&mut s, &r, hello(0));
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
        msg(&mut s, &r, hello(0));
        assert_eq!(credits(&request(&mut s, &r, 0, 0)), 1, "received at once");
        assert_eq!(credits(&request(&mut s, &r, 0, 1)), 1, "into the pipe");
        assert_eq!(credits(&request(&mut s, &r, 0, 2)), 0, "the pipe is full");
        assert_eq!(s.unread[&Integral(0)].len(), 1);
        let o = process(&mut s, &r);
        assert_eq!((replies(&o), credits(&o)), (1, 1), "read one, took one in");
        assert!(s.unread[&Integral(0)].is_empty());
    }
}
