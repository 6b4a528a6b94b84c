//! ZeroMQ as a reader sees it: messages in a trace, peer states in the Stateright Explorer.

use super::{
    Frames, IncomingState, OutgoingState, ReplierState, RequesterState, RouterState, ZmqMsg,
    ZmqState,
};
use mqcheck_invariants::{MsgId, Op};
use crate::Names;
use stateright::actor::Id;
use std::collections::{BTreeSet, VecDeque};

/// A message in a trace, in ZeroMQ's vocabulary; `None` for chatter.
pub(super) fn describe(msg: &ZmqMsg) -> Option<String> {
    match msg {
        ZmqMsg::Credit(_) | ZmqMsg::Ping { .. } | ZmqMsg::Pong { .. } => None,
        m => Some(m.to_string()),
    }
}

/// Connections made, reset and closed, and subscriptions: who is connected to whom.
pub(super) fn notable(msg: &ZmqMsg) -> bool {
    matches!(
        msg,
        ZmqMsg::Welcome { .. } | ZmqMsg::Subscribe { .. } | ZmqMsg::Close { .. } | ZmqMsg::Reset
    )
}

/// A message in a pipe: its frames' ids, `p0:3` or `p0:3+p0:4` for a multipart message.
fn frames(f: &Frames) -> String {
    let parts: Vec<String> = f.parts.iter().map(MsgId::to_string).collect();
    parts.join("+")
}

fn queue<'a>(q: impl IntoIterator<Item = &'a Frames>) -> String {
    let msgs: Vec<String> = q.into_iter().map(frames).collect();
    format!("[{}]", msgs.join(" "))
}

/// PUB or PUSH, with a pipe per connected peer. The state does not name the socket type nor
/// hold the high-water mark, so both are read from what only one of them does: a PUB waits for
/// subscriptions, holds them and drops; a PUSH blocks and keeps a round-robin turn. A blocked
/// PUSH with connected peers has every pipe at `ZMQ_SNDHWM` (a connect or a credit would have
/// unblocked it otherwise): each of them is mute.
fn show_outgoing(s: &OutgoingState, names: Names<'_>) -> String {
    let dropped = s
        .app
        .iter()
        .filter(|op| matches!(op, Op::Discard { .. }))
        .count();
    let at_hwm = s
        .app
        .iter()
        .filter(|op| matches!(op, Op::Discard { reason, .. } if reason.contains("ZMQ_SNDHWM")))
        .count();
    // Only a connecting PUSH dials, and only it keeps a pipe without a connection.
    let push = s.blocked
        || s.turn.is_some()
        || !s.welcomed.is_empty()
        || s.peers.values().any(|p| !p.connected);
    let publish = !s.started || dropped > 0 || s.peers.values().any(|p| p.subscription.is_some());
    // A DEALER is a connecting PUSH whose peers are ROUTERs.
    let dealer = s.peers.keys().any(|p| names.of(*p).starts_with("router"));
    let kind = match (push, publish) {
        (true, _) if dealer => "DEALER",
        (true, _) => "PUSH",
        (false, true) => "PUB",
        (false, false) => "PUB/PUSH",
    };
    let mut out = format!("{kind}: next message {}", s.next);
    if !s.started {
        out += " (waiting for every subscription)";
    }
    if s.blocked {
        out += if s.peers.is_empty() {
            ", zmq_send blocked: no peer connected"
        } else {
            ", zmq_send blocked: every pipe mute"
        };
    }
    if s.peers.is_empty() {
        out += "; no peer connected";
    }
    for (id, peer) in &s.peers {
        out += &format!(
            "; pipe to {} (connection {}): {} queued, {} in the kernels' buffers",
            names.of(*id),
            peer.connection,
            peer.pipe.len(),
            peer.in_flight
        );
        if !peer.connected {
            out += ", waiting for its connection";
        }
        if s.blocked {
            out += ", mute";
        }
        if kind == "PUB" || kind == "PUB/PUSH" {
            match &peer.subscription {
                Some(prefix) => out += &format!(", subscribed '{prefix}'"),
                None => out += ", no subscription yet",
            }
        }
    }
    if dropped > 0 {
        out += &format!("; dropped {dropped} frames ({at_hwm} at ZMQ_SNDHWM)");
    }
    format!("{out}; {} observations", s.app.len())
}

/// SUB or PULL (the state does not say which): per producer, the connection and the receive
/// pipe; a pipe with messages left unread on the connection is at `ZMQ_RCVHWM`.
fn show_incoming(s: &IncomingState, names: Names<'_>) -> String {
    let producers: BTreeSet<Id> = s
        .connections
        .keys()
        .chain(s.welcomed.iter())
        .chain(s.pipes.keys())
        .chain(s.unread.keys())
        .copied()
        .collect();
    let mut out = "SUB/PULL:".to_string();
    if producers.is_empty() {
        out += " connecting";
    }
    let mut first = true;
    for p in &producers {
        let connection = s.connections.get(p).copied().unwrap_or(0);
        let up = if s.welcomed.contains(p) {
            "up"
        } else {
            "connecting"
        };
        let pipe = s.pipes.get(p);
        out += if first { " " } else { "; " };
        first = false;
        out += &format!(
            "from {} (connection {connection} {up}): {} queued {}",
            names.of(*p),
            pipe.map_or(0, VecDeque::len),
            queue(pipe.into_iter().flatten().map(|(_, f)| f))
        );
        if let Some(unread) = s.unread.get(p).filter(|u| !u.is_empty()) {
            out += &format!(
                ", full (ZMQ_RCVHWM): {} unread on the connection",
                unread.len()
            );
        }
    }
    if s.busy {
        out += "; handling a message";
    }
    format!("{out}; {} observations", s.app.len())
}

/// REQ: the socket in use (the Lazy Pirate client reopens it), the servers it is connected
/// to, and where the send/receive alternation stands.
fn show_req(s: &RequesterState, names: Names<'_>) -> String {
    let connected: Vec<String> = s
        .welcomed
        .iter()
        .map(|i| names.of(*i).to_string())
        .collect();
    let step = match &s.pending {
        Some(p) => {
            let at = match (p.server, p.written) {
                (Some(server), true) => format!("written to {}", names.of(server)),
                (Some(server), false) => format!("queued in the pipe to {}", names.of(server)),
                (None, _) => "not yet queued (zmq_send blocked)".to_string(),
            };
            // The pending request is the last the application sent (`Op::Multipart` follows the
            // frames of a multipart one).
            let mut request = format!("request {}", p.index);
            for op in s.app.iter() {
                match op {
                    Op::Send { msg, .. } => request = msg.to_string(),
                    Op::Multipart { parts } => {
                        let parts: Vec<String> = parts.iter().map(MsgId::to_string).collect();
                        request = parts.join("+");
                    }
                    _ => {}
                }
            }
            let blocked = if p.blocked {
                "; blocked in zmq_recv after a reply the socket skipped"
            } else {
                ""
            };
            format!(
                "awaiting the reply to {request} ({at}; {} attempts left){blocked}",
                p.retries_left
            )
        }
        None => format!("may send request {} (no reply owed)", s.next),
    };
    let superseded: usize = s.superseded.values().map(VecDeque::len).sum();
    let superseded = if superseded > 0 {
        format!("; {superseded} earlier attempts still in the pipes (ZMQ_REQ_RELAXED)")
    } else {
        String::new()
    };
    format!(
        "REQ socket {}: connected to [{}]; {step}{superseded}; {} observations",
        s.socket,
        connected.join(", "),
        s.app.len()
    )
}

/// REP: each REQ peer's current socket, the requests queued from it, the one being handled
/// (a reply is owed before the next is received), and the dedup memory.
fn show_rep(s: &ReplierState, names: Names<'_>) -> String {
    let peers: Vec<String> = s
        .sockets
        .iter()
        .map(|(p, socket)| {
            let queued = s.queues.get(p);
            format!(
                "{} (socket {socket}): {} queued {}",
                names.of(*p),
                queued.map_or(0, VecDeque::len),
                queue(queued.into_iter().flatten().map(|e| &e.frames))
            )
        })
        .collect();
    let step = match &s.current {
        Some(e) => {
            let live = s.live(e);
            format!(
                "handled {} from {} (socket {}), reply owed{}",
                frames(&e.frames),
                names.of(e.peer),
                e.socket,
                if live {
                    ""
                } else {
                    ", to be discarded: the requester's socket is gone"
                }
            )
        }
        None => "waiting for a request".to_string(),
    };
    format!(
        "REP: peers [{}]; {step}; remembers {} handled requests (server.dedup); {} observations",
        peers.join("; "),
        s.handled.len(),
        s.app.len()
    )
}

/// ROUTER: each DEALER's connection with its routing id (or ignored, anonymous), the requests in each in pipe (those of
/// terminated pipes too), the replies in each out pipe, and where the application stands.
fn show_router(s: &RouterState, names: Names<'_>) -> String {
    let mut out = "ROUTER:".to_string();
    for (peer, (connection, routing_id)) in &s.peers {
        out += &match s.anonymous.get(peer) {
            Some(ignored) => format!(
                " {} connection {connection} anonymous, ignored (routing id {routing_id} in use): {} unread;",
                names.of(*peer),
                ignored.len()
            ),
            None => format!(
                " {} connection {connection} = routing id {routing_id};",
                names.of(*peer)
            ),
        };
    }
    for (routing_id, q) in &s.inbound {
        let unread = s.unread.get(routing_id).map_or(0, VecDeque::len);
        out += &format!(
            " in pipe {routing_id}: {}{}{};",
            queue(q.iter().map(|r| &r.frames)),
            if s.routes.contains_key(routing_id) {
                ""
            } else {
                " (terminated, read to its delimiter)"
            },
            if unread > 0 {
                format!(", full (ZMQ_RCVHWM): {unread} unread on the connection")
            } else {
                String::new()
            }
        );
    }
    for (routing_id, route) in &s.routes {
        out += &format!(
            " out pipe {routing_id} to {}: {} queued, {} in the kernels' buffers;",
            names.of(route.peer),
            route.pipe.pipe.len(),
            route.pipe.in_flight
        );
    }
    let step = match (&s.current, &s.blocked) {
        (_, Some(r)) => format!(
            " zmq_send of the reply {} to routing id {} blocked (ZMQ_ROUTER_MANDATORY=1, pipe full)",
            frames(&r.frames),
            r.routing_id
        ),
        (Some(r), None) => format!(
            " handled {} from routing id {}, reply owed",
            frames(&r.frames),
            r.routing_id
        ),
        (None, None) => " waiting for a request".to_string(),
    };
    format!("{out}{step}; {} observations", s.app.len())
}

/// A peer's sockets in a few words, for the Stateright Explorer.
pub(super) fn show(state: &ZmqState, names: Names<'_>) -> String {
    match state {
        ZmqState::Outgoing(s) => show_outgoing(s, names),
        ZmqState::Incoming(s) => show_incoming(s, names),
        ZmqState::Req(s) => show_req(s, names),
        ZmqState::Rep(s) => show_rep(s, names),
        ZmqState::Router(s) => show_router(s, names),
    }
}
