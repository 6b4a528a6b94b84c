//! ZMTP heartbeats (ZMTP 3.1, `ZMQ_HEARTBEAT_IVL`): the three timers libzmq's engine keeps per
//! connection, and what ends the connection.
//!
//! Once the handshake is done (`stream_engine_base_t::mechanism_ready`), the engine arms
//! `heartbeat_ivl_timer_id`; each time it fires, the engine sends a PING carrying its
//! `ZMQ_HEARTBEAT_TTL` (`zmtp_engine_t::produce_ping_message`), arms it again, and, unless it
//! runs already, arms `heartbeat_timeout_timer_id` for `ZMQ_HEARTBEAT_TIMEOUT` (the interval
//! when unset). Every message the engine decodes, data or command, cancels the timeout and the
//! TTL timers (`decode_and_push`); a PING received arms `heartbeat_ttl_timer_id` for the TTL it
//! carries and is answered with a PONG (`process_heartbeat_message`). When the timeout or the
//! TTL timer fires, `timer_event` calls `error (timeout_error)`: the engine closes the
//! connection and the session handles it as a broken one (`session_base_t::engine_error`). A
//! receiver whose pipe is full has stopped decoding (`_input_stopped`): what waits behind the
//! message it could not push, PINGs and PONGs included, is not read, so its own timeout may
//! fire (libzmq issues 3937 and 4767).

use super::config::Heartbeat;
use super::protocol::ZmqMsg;
use super::{ZmqOut, ZmqTimer};
use crate::timers::exact;
use stateright::actor::Id;
use std::time::Duration;

/// Which of one connection's heartbeat timers run (`_has_timeout_timer`, `_has_ttl_timer`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timers {
    pub timeout: bool,
    pub ttl: bool,
}

/// Why a connection's heartbeat ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    Timeout,
    Ttl,
}

impl Expired {
    /// Which timer fired, if `timer` is one of the heartbeat's ending ones, and for which peer.
    pub fn of(timer: &ZmqTimer) -> Option<(Id, Expired)> {
        match timer {
            ZmqTimer::HeartbeatTimeout(peer) => Some((*peer, Expired::Timeout)),
            ZmqTimer::HeartbeatTtl(peer) => Some((*peer, Expired::Ttl)),
            _ => None,
        }
    }

    /// Why the connection to `peer` ended, in libzmq's words.
    pub fn reason(self, hb: &Heartbeat, peer: &str) -> String {
        match self {
            Expired::Timeout => format!(
                "ZMQ_HEARTBEAT_TIMEOUT: nothing heard from {peer} for {} ms after a PING",
                hb.timeout.unwrap_or_default().as_millis()
            ),
            Expired::Ttl => format!(
                "ZMQ_HEARTBEAT_TTL: nothing heard from {peer} for {} ms after its PING",
                u64::from(hb.ttl_ds) * 100
            ),
        }
    }
}

/// The handshake on the connection to `peer` is done: PINGs start (`mechanism_ready`).
pub fn start(hb: Option<&Heartbeat>, peer: Id, o: &mut ZmqOut) {
    if let Some(hb) = hb {
        o.set_timer(ZmqTimer::HeartbeatIvl(peer), exact(hb.ivl));
    }
}

/// `heartbeat_ivl_timer_id` fired: a PING on `connection`, the next one after the interval, and
/// the timeout armed unless it runs already.
pub fn ping(hb: &Heartbeat, peer: Id, connection: u32, t: &mut Timers, o: &mut ZmqOut) {
    o.send(
        peer,
        ZmqMsg::Ping {
            connection,
            ttl_ds: hb.ttl_ds,
        },
    );
    o.set_timer(ZmqTimer::HeartbeatIvl(peer), exact(hb.ivl));
    if let Some(timeout) = hb.timeout.filter(|_| !t.timeout) {
        o.set_timer(ZmqTimer::HeartbeatTimeout(peer), exact(timeout));
        t.timeout = true;
    }
}

/// The engine decoded a message from `peer`, data or command: the timeout and TTL timers stop.
pub fn decoded(peer: Id, t: &mut Timers, o: &mut ZmqOut) {
    if std::mem::take(&mut t.timeout) {
        o.cancel_timer(ZmqTimer::HeartbeatTimeout(peer));
    }
    if std::mem::take(&mut t.ttl) {
        o.cancel_timer(ZmqTimer::HeartbeatTtl(peer));
    }
}

/// The engine decoded a heartbeat command from `peer`: a PING arms the TTL it carries and is
/// answered with a PONG; a PONG is traffic like any other.
pub fn command(peer: Id, msg: &ZmqMsg, t: &mut Timers, o: &mut ZmqOut) {
    decoded(peer, t, o);
    if let ZmqMsg::Ping { connection, ttl_ds } = *msg {
        if ttl_ds > 0 {
            let ttl = Duration::from_millis(u64::from(ttl_ds) * 100);
            o.set_timer(ZmqTimer::HeartbeatTtl(peer), exact(ttl));
            t.ttl = true;
        }
        o.send(peer, ZmqMsg::Pong { connection });
    }
}

/// The engine of the connection to `peer` is gone: its timers with it.
pub fn stop(peer: Id, t: &mut Timers, o: &mut ZmqOut) {
    o.cancel_timer(ZmqTimer::HeartbeatIvl(peer));
    if std::mem::take(&mut t.timeout) {
        o.cancel_timer(ZmqTimer::HeartbeatTimeout(peer));
    }
    if std::mem::take(&mut t.ttl) {
        o.cancel_timer(ZmqTimer::HeartbeatTtl(peer));
    }
}
