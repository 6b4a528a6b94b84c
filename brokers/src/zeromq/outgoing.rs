//! The sending side of PUB/SUB and PUSH/PULL: a PUB or PUSH socket with one pipe per peer, and
//! the application that sends through it.
//!
//! PUB binds, and so does PUSH by default (`bind=push`): a peer's pipe lives as long as its
//! connection. A restarted PUB or PUSH (`--producer-crashes`) is a new socket: it binds again
//! with no peers and no pipes, and its peers, whose connections the kernel closed, connect anew
//! (a SUB resubscribes). Its application sends again the one message it may have in doubt — a
//! PUSH blocked in `zmq_send` when it died — without recording a second send; a PUB's
//! `zmq_send` never blocks, so it has nothing in doubt.
//!
//! With `bind=pull` the PUSH connects to every PULL (the zguide's sink). Its session is the
//! active one (`session_base_t`, `_active`), and with `ZMQ_IMMEDIATE=0` its pipe to each PULL
//! exists from `zmq_connect` on (`socket_base_t::connect_internal` creates the pipe pair and
//! attaches it to `lb_t` at once) and survives the connection: `engine_error` with
//! `connection_error` or `timeout_error` only `reconnect`s, keeping `_pipe`, and
//! `engine_ready` on the next connection reuses it. So round robin goes on putting every n-th
//! message in the pipe of a PULL that is gone, until that pipe is at `ZMQ_SNDHWM`
//! (`lb_t::sendpipe` deactivates a pipe whose `write` fails and skips it), and what waits there
//! goes out when the PULL is back — the same process after a partition or a heartbeat timeout,
//! or a restarted one. What the I/O thread had already written to the broken connection (the
//! kernels' buffers) and what the dead PULL's pipe held are lost: libzmq keeps no copy of what it
//! handed to the kernel. With `ZMQ_IMMEDIATE=1` a pipe is created only when a connection
//! completes (`engine_ready`), `reconnect` terminates it when the connection goes, with what
//! it held (`_pipe->terminate (false)`; `push_t::xattach_pipe` sets `set_nodelay`: no
//! delimiter is waited for), and round robin knows only the connected PULLs. A restarted
//! connecting PUSH is a new socket with new, empty pipes that dials every PULL anew.
//!
//! A **DEALER** (`pattern=dealer-router`) sends as a connecting PUSH does: `dealer_t::xsend` is
//! `lb_t::sendpipe`, and `xattach_pipe` attaches each pipe to both `lb_t` and `fq_t`, so its
//! requests are round-robined over a pipe to every ROUTER, kept across reconnects
//! (`ZMQ_IMMEDIATE=0`), skipped at `ZMQ_SNDHWM`, and `zmq_send` blocks when every pipe is full.
//! It receives the ROUTERs' replies over the same connections (`fq_t::recvpipe`), and its
//! application reads each as it arrives (the zguide's `asyncsrv` client polls its socket
//! continuously); a reply is the delivery that tells the client its request was answered.
//! With `ZMQ_ROUTING_ID=client` each DEALER sets its own routing id, `dealer<n>`, which its
//! greeting carries on every connection (`mechanism_t`'s Identity property), so every ROUTER
//! knows a reconnected or restarted DEALER as the same peer (see `router.rs`). With
//! `ZMQ_CONFLATE=1` its pipes are `ypipe_conflate_t` (`get_effective_conflate_option` counts
//! DEALER in; `connect_internal` creates them with no high-water marks): a request not yet
//! written to its connection is replaced by the next one round robin puts in that pipe, and
//! `zmq_send` never blocks.

use super::heartbeat::{self, Expired, Timers};
use super::protocol::{Frames, ZmqMsg};
use super::{
    dial, discard, next_after, pace_choice, record, Heartbeat, Pattern, Settings, ZmqOut, ZmqTimer,
};
use crate::timers::exact;
use crate::AppLog;
use mqcheck_invariants::Op;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Outgoing {
    pub settings: Settings,
    pub index: u32,
}

/// The pipe to one peer, and the connection behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The pipe's connection is up: the I/O thread writes from the pipe to it. Always, on the
    /// binding side; a connecting PUSH's pipe waits for its connection.
    pub connected: bool,
    /// The pipe: messages `zmq_send` queued that the I/O thread has not yet written to the
    /// connection, what `ZMQ_SNDHWM` caps (`pipe_t::check_hwm`).
    pub pipe: VecDeque<Frames>,
    /// Messages written to the connection (the two kernels' buffers and the wire) that the
    /// peer's socket has not yet taken into its own pipe: at most [`Settings::kernel_window`].
    pub in_flight: u64,
    /// A SUB peer's subscription, once it arrived.
    pub subscription: Option<String>,
    /// The connecting side's number for the connection.
    pub connection: u32,
    /// The connection's heartbeat timers (`ZMQ_HEARTBEAT_IVL`).
    pub heartbeat: Timers,
}

impl Peer {
    /// The I/O thread writes from the pipe to the connection while the kernels' buffers have
    /// room (`stream_engine_base_t::out_event`, stopped by the socket's `EAGAIN`); a pipe
    /// without a connection waits.
    pub fn flush(&mut self, id: Id, settings: &Settings, o: &mut ZmqOut) {
        while self.connected && self.in_flight < settings.kernel_window() {
            let Some(frames) = self.pipe.pop_front() else {
                return;
            };
            self.in_flight += 1;
            let connection = self.connection;
            o.send(id, ZmqMsg::Message { connection, frames });
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OutgoingState {
    pub app: AppLog,
    pub pace: Option<Duration>,
    /// The message the application sends next (or is blocked sending).
    pub next: u32,
    /// A PUSH application is blocked in `zmq_send` of message `next`.
    pub blocked: bool,
    /// Message `next` was sent before a restart and is in the outbox: sending it again records
    /// no second send.
    pub resend: bool,
    /// The pipes, by peer: on the binding side those of the connected peers (a broken
    /// connection's pipe goes), on a connecting PUSH every PULL's (`ZMQ_IMMEDIATE=1`: every
    /// connected PULL's).
    pub peers: BTreeMap<Id, Peer>,
    /// A connecting PUSH: its current connection to each PULL, by number, one more after each
    /// reset.
    pub connections: BTreeMap<Id, u32>,
    /// A connecting PUSH: the PULLs whose end of the current connection answered.
    pub welcomed: BTreeSet<Id>,
    /// The peer a PUSH wrote to last (round robin).
    pub turn: Option<Id>,
    /// The PUB application has heard every subscriber's subscription and publishes.
    pub started: bool,
}

impl Outgoing {
    pub fn start(&self, mut app: AppLog, o: &mut ZmqOut) -> OutgoingState {
        pace_choice(&self.settings.workload, o);
        let frames = self.settings.frames.max(1);
        let outbox = app.reopen();
        let resend = outbox.unacknowledged.first().map(|m| m.seq / frames);
        let mut s = OutgoingState {
            app,
            pace: None,
            next: resend.unwrap_or(outbox.sent as u32 / frames),
            blocked: false,
            resend: resend.is_some(),
            peers: BTreeMap::new(),
            connections: BTreeMap::new(),
            welcomed: BTreeSet::new(),
            turn: None,
            started: self.settings.pattern != Pattern::PubSub || !self.settings.syncpub,
        };
        if self.connects() {
            if !self.settings.immediate {
                // `zmq_connect` attaches a pipe to each PULL before any connection is up.
                for pull in self.settings.consumer_ids() {
                    s.peers.insert(pull, Peer::default());
                }
            }
            self.connect(&s, o);
        }
        s
    }

    /// A PUSH with `bind=pull` connects to every PULL, a DEALER to every ROUTER.
    fn connects(&self) -> bool {
        match self.settings.pattern {
            Pattern::PushPull => self.settings.push_connects,
            Pattern::DealerRouter => true,
            _ => false,
        }
    }

    /// A connecting PUSH dials every PULL it is not connected to, a DEALER every ROUTER (its
    /// greeting carries its `ZMQ_ROUTING_ID`), again after `ZMQ_RECONNECT_IVL`.
    fn connect(&self, s: &OutgoingState, o: &mut ZmqOut) {
        let greet = |p: Id| {
            let connection = s.connections.get(&p).copied().unwrap_or(0);
            vec![match self.settings.pattern {
                Pattern::DealerRouter => ZmqMsg::Ready {
                    connection,
                    routing_id: self.settings.routing_id.then_some(self.index),
                },
                _ => ZmqMsg::Hello { connection },
            }]
        };
        dial(
            &self.settings,
            self.settings.consumer_ids(),
            &s.welcomed,
            greet,
            o,
        );
    }

    pub fn on_pace(&self, s: &mut OutgoingState, pace: Duration, o: &mut ZmqOut) {
        s.pace = Some(pace);
        if s.started {
            o.set_timer(ZmqTimer::Send, exact(pace));
        }
    }

    pub fn on_msg(&self, s: &mut OutgoingState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        if self.connects() {
            self.on_connecting_msg(s, src, msg, o);
            return;
        }
        match msg {
            ZmqMsg::Hello { connection } => {
                // A new connection from this peer: whatever the old one carried is gone. The
                // same connection's greeting again (the peer dialled again before the answer
                // came) changes nothing; a new connection ends the old one with a reset first.
                if s.peers.get(&src).is_none_or(|p| p.connection != connection) {
                    self.forget(s, src, o);
                    s.peers.insert(
                        src,
                        Peer {
                            connected: true,
                            connection,
                            ..Peer::default()
                        },
                    );
                    heartbeat::start(self.settings.heartbeat.as_ref(), src, o);
                }
                o.send(src, ZmqMsg::Welcome { connection });
                self.push(s, o);
            }
            ZmqMsg::Subscribe { prefix } => {
                if let Some(peer) = s.peers.get_mut(&src) {
                    heartbeat::decoded(src, &mut peer.heartbeat, o);
                    peer.subscription = Some(prefix);
                }
                let everyone = self
                    .settings
                    .consumer_ids()
                    .iter()
                    .all(|c| s.peers.get(c).is_some_and(|p| p.subscription.is_some()));
                if !s.started && everyone {
                    s.started = true;
                    if let Some(pace) = s.pace {
                        o.set_timer(ZmqTimer::Send, exact(pace));
                    }
                }
            }
            ZmqMsg::Credit(n) => {
                if let Some(peer) = s.peers.get_mut(&src) {
                    peer.in_flight = peer.in_flight.saturating_sub(u64::from(n));
                    peer.flush(src, &self.settings, o);
                }
                self.push(s, o);
            }
            ZmqMsg::Ping { connection, .. } | ZmqMsg::Pong { connection } => {
                if let Some(peer) = s.peers.get_mut(&src).filter(|p| p.connection == connection) {
                    heartbeat::command(src, &msg, &mut peer.heartbeat, o);
                }
            }
            // The peer's heartbeat ended the connection: the end of the stream, and the binding
            // side terminates its pipe as for a broken one.
            ZmqMsg::Close { connection }
                if s.peers.get(&src).is_some_and(|p| p.connection == connection) =>
            {
                let reason = format!(
                    "{} closed the connection, its heartbeat having timed out",
                    self.settings.name(src)
                );
                self.drop_pipe(s, src, &reason, o);
            }
            ZmqMsg::Reset => {
                // The binding side terminates the pipe of a broken connection.
                self.forget(s, src, o);
            }
            _ => {}
        }
    }

    /// What a connecting PUSH hears from a PULL.
    fn on_connecting_msg(&self, s: &mut OutgoingState, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        let current = s.connections.get(&src).copied().unwrap_or(0);
        match msg {
            // The answer to the current connection's greeting: `engine_ready` attaches the
            // pipe kept from before (`ZMQ_IMMEDIATE=0`) or creates one (`ZMQ_IMMEDIATE=1`), and
            // the I/O thread starts writing what waits in it.
            ZmqMsg::Welcome { connection } if current == connection => {
                if s.welcomed.insert(src) {
                    heartbeat::start(self.settings.heartbeat.as_ref(), src, o);
                    let peer = s.peers.entry(src).or_default();
                    peer.connected = true;
                    peer.connection = connection;
                    peer.in_flight = 0;
                    peer.flush(src, &self.settings, o);
                }
                if let Some(peer) = s.peers.get_mut(&src) {
                    heartbeat::decoded(src, &mut peer.heartbeat, o);
                }
                self.push(s, o);
            }
            ZmqMsg::Credit(n) if s.welcomed.contains(&src) => {
                if let Some(peer) = s.peers.get_mut(&src) {
                    peer.in_flight = peer.in_flight.saturating_sub(u64::from(n));
                    peer.flush(src, &self.settings, o);
                }
                self.push(s, o);
            }
            ZmqMsg::Ping { connection, .. } | ZmqMsg::Pong { connection }
                if current == connection && s.welcomed.contains(&src) =>
            {
                if let Some(peer) = s.peers.get_mut(&src) {
                    heartbeat::command(src, &msg, &mut peer.heartbeat, o);
                }
            }
            // A DEALER's reply from a ROUTER: the application reads it at once (`fq_t` over
            // the pipes, each read as it fills), so the room it leaves goes back as credit.
            ZmqMsg::Message { connection, frames }
                if current == connection && s.welcomed.contains(&src) =>
            {
                let ops = self
                    .settings
                    .reply_ops(self.index, src, connection, &frames);
                record(&mut s.app, ops, o);
                o.send(src, ZmqMsg::Credit(1));
            }
            ZmqMsg::Reset => {
                let why = format!("the connection to {} broke", self.settings.name(src));
                self.disconnect(s, src, &why, o);
            }
            ZmqMsg::Close { connection } if current == connection => {
                let why = format!(
                    "{} closed the connection, its heartbeat having timed out",
                    self.settings.name(src)
                );
                self.disconnect(s, src, &why, o);
            }
            _ => {}
        }
    }

    /// A connecting PUSH's connection to `pull` ended (`why`): what was written to it is gone,
    /// the session reconnects after `ZMQ_RECONNECT_IVL` (`session_base_t::reconnect`) and keeps
    /// the pipe with what waits in it, unless `ZMQ_IMMEDIATE=1` makes it terminate the pipe.
    fn disconnect(&self, s: &mut OutgoingState, pull: Id, why: &str, o: &mut ZmqOut) {
        s.welcomed.remove(&pull);
        *s.connections.entry(pull).or_default() += 1;
        if self.settings.immediate {
            let why = format!("ZMQ_IMMEDIATE=1: {why}");
            self.drop_pipe(s, pull, &why, o);
        } else if let Some(peer) = s.peers.get_mut(&pull) {
            heartbeat::stop(pull, &mut peer.heartbeat, o);
            peer.connected = false;
            peer.in_flight = 0;
        }
        o.set_timer(ZmqTimer::Reconnect, self.settings.reconnect());
    }

    /// The connection to `peer` is gone, and the pipe to it with what it held (the session of
    /// an accepted connection terminates: `session_base_t::engine_error`).
    fn forget(&self, s: &mut OutgoingState, peer: Id, o: &mut ZmqOut) -> Option<Peer> {
        let mut gone = s.peers.remove(&peer)?;
        heartbeat::stop(peer, &mut gone.heartbeat, o);
        Some(gone)
    }

    pub fn on_timeout(&self, s: &mut OutgoingState, timer: &ZmqTimer, o: &mut ZmqOut) {
        if let (ZmqTimer::HeartbeatIvl(peer), Some(hb)) = (timer, &self.settings.heartbeat) {
            if let Some(p) = s.peers.get_mut(peer).filter(|p| p.connected) {
                heartbeat::ping(hb, *peer, p.connection, &mut p.heartbeat, o);
            }
            return;
        }
        if let (Some((peer, expired)), Some(hb)) = (Expired::of(timer), &self.settings.heartbeat)
        {
            self.expire(s, peer, expired, hb, o);
            return;
        }
        if *timer == ZmqTimer::Reconnect {
            self.connect(s, o);
            return;
        }
        if *timer != ZmqTimer::Send || s.blocked || s.next >= self.settings.workload.messages {
            return;
        }
        let frames = self.settings.message(self.index, s.next);
        if !std::mem::take(&mut s.resend) {
            record(&mut s.app, self.settings.send_ops(&frames), o);
        }
        match self.settings.pattern {
            Pattern::PubSub => self.publish(s, frames, o),
            _ => {
                s.blocked = true;
                self.push(s, o);
            }
        }
    }

    /// The heartbeat of the connection to `peer` expired: the engine closes it (the peer reads
    /// the close once it can). On the binding side the pipe goes with what it held, and a PUSH
    /// with no other peer blocks; a connecting PUSH keeps it and reconnects.
    fn expire(&self, s: &mut OutgoingState, peer: Id, expired: Expired, hb: &Heartbeat, o: &mut ZmqOut) {
        let Some(connection) = s.peers.get(&peer).filter(|p| p.connected).map(|p| p.connection)
        else {
            return;
        };
        o.send(peer, ZmqMsg::Close { connection });
        let reason = expired.reason(hb, &self.settings.name(peer));
        if self.connects() {
            self.disconnect(s, peer, &reason, o);
        } else {
            self.drop_pipe(s, peer, &reason, o);
        }
    }

    /// The connection to `peer` ended (`why`) and its pipe is terminated with what it held, each
    /// message of which the model notes as dropped.
    fn drop_pipe(&self, s: &mut OutgoingState, peer: Id, why: &str, o: &mut ZmqOut) {
        let Some(gone) = self.forget(s, peer, o) else {
            return;
        };
        let reason = format!("{why}: the pipe to it was terminated with what it held");
        discard(&mut s.app, &gone.pipe, &reason, o);
    }

    /// The application's `zmq_send` returned: acknowledged; on to the next message.
    fn sent(&self, s: &mut OutgoingState, frames: &Frames, mut ops: Vec<Op>, o: &mut ZmqOut) {
        ops.extend(frames.parts.iter().map(|msg| Op::Ack { msg: *msg }));
        record(&mut s.app, ops, o);
        s.next += 1;
        if let Some(pace) = s.pace {
            o.set_timer(ZmqTimer::Send, exact(pace));
        }
    }

    /// PUB: a copy to every subscriber whose subscription matches, dropped for a subscriber in
    /// the mute state; `zmq_send` never blocks.
    fn publish(&self, s: &mut OutgoingState, frames: Frames, o: &mut ZmqOut) {
        let mut discards = Vec::new();
        let audience = self.settings.audience(frames.topic);
        for c in self.settings.consumer_ids() {
            let name = self.settings.name(c);
            let reason = match s.peers.get_mut(&c) {
                Some(peer)
                    if peer
                        .subscription
                        .as_deref()
                        .is_some_and(|p| Settings::matches(p, frames.topic)) =>
                {
                    if Settings::full(self.settings.own_hwm(self.settings.sndhwm), peer.pipe.len() as u64) {
                        format!("ZMQ_SNDHWM reached on the pipe to {name} (the kernels' buffers full too): PUB drops for a subscriber in the mute state")
                    } else {
                        let replaced = self.settings.enqueue(&mut peer.pipe, frames.clone());
                        discards.extend(Settings::conflated(&replaced, &format!("to {name}")));
                        peer.flush(c, &self.settings, o);
                        continue;
                    }
                }
                Some(_) => format!(
                    "no matching subscription from {name} on its current connection: PUB drops what nobody subscribed to"
                ),
                None => format!("{name} not connected: PUB drops what nobody subscribed to"),
            };
            if audience.contains(&self.settings.consumer_index(c)) {
                discards.extend(frames.parts.iter().map(|msg| Op::Discard {
                    msg: *msg,
                    reason: reason.clone(),
                }));
            }
        }
        self.sent(s, &frames, discards, o);
    }

    /// PUSH: the blocked message goes to the next pipe, in turn, that is not at `ZMQ_SNDHWM`
    /// (the connected peers' pipes; a connecting PUSH's also those waiting for their
    /// connection); with none, `zmq_send` stays blocked.
    fn push(&self, s: &mut OutgoingState, o: &mut ZmqOut) {
        if !s.blocked {
            return;
        }
        let hwm = self.settings.own_hwm(self.settings.sndhwm);
        let ready: Vec<Id> = s
            .peers
            .iter()
            .filter(|(_, p)| !Settings::full(hwm, p.pipe.len() as u64))
            .map(|(id, _)| *id)
            .collect();
        let Some(peer) = next_after(&ready, s.turn) else {
            return;
        };
        let frames = self.settings.message(self.index, s.next);
        let Some(p) = s.peers.get_mut(&peer) else {
            return;
        };
        let replaced = self.settings.enqueue(&mut p.pipe, frames.clone());
        let discards = Settings::conflated(&replaced, &format!("to {}", self.settings.name(peer)));
        p.flush(peer, &self.settings, o);
        s.turn = Some(peer);
        s.blocked = false;
        self.sent(s, &frames, discards, o);
    }

}
