//! What peers say to each other over a ZMTP connection, and what a message carries.

use mqcheck_invariants::MsgId;
use std::fmt;

/// One ZeroMQ message: its frames (one per part; several with `ZMQ_SNDMORE`), each an
/// application message of its own in the history, and the topic a PUB filters on (the first
/// bytes of the first frame).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frames {
    pub parts: Vec<MsgId>,
    pub topic: char,
}

impl fmt::Display for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts.iter().map(MsgId::to_string).collect();
        write!(f, "[{}] topic {}", parts.join(" + "), self.topic)
    }
}

/// ZMTP traffic, simplified to what the delivery guarantees depend on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZmqMsg {
    /// The connecting side's greeting and READY command on a new TCP connection. The connecting
    /// side numbers its connections to a peer (a reopened REQ socket, a reconnect after a reset),
    /// so nothing left over from an old connection is taken for the new one's.
    Hello { connection: u32 },
    /// A DEALER's greeting and READY command on a new connection, whose Identity property
    /// carries its `ZMQ_ROUTING_ID` (`options_t::routing_id`; empty without it, and the ROUTER
    /// makes one up): here the DEALER's client number, or `None`.
    Ready {
        connection: u32,
        routing_id: Option<u32>,
    },
    /// The binding side's greeting back: the connection is up.
    Welcome { connection: u32 },
    /// A SUB socket's subscription (`ZMQ_SUBSCRIBE`), sent upstream over the connection.
    Subscribe { prefix: String },
    /// A message on a PUB→SUB or PUSH→PULL connection, or either way on a DEALER–ROUTER one (a
    /// request, or its reply).
    Message { connection: u32, frames: Frames },
    /// The receiving socket took `n` messages off the connection into its pipe: room again in
    /// the sender's pipe (libzmq's pipe activation, over TCP's window).
    Credit(u32),
    /// A request from a REQ socket, with the envelope that routes the reply back to it. With
    /// `ZMQ_REQ_CORRELATE=1` the envelope begins with a request id frame (`req_t::xsend`: the
    /// socket's `_request_id`, one more per request), which REP returns with the reply.
    Request {
        socket: u32,
        request_id: Option<u32>,
        frames: Frames,
    },
    /// A REP socket's reply, routed to the requesting socket, with the request's envelope.
    Reply {
        socket: u32,
        request_id: Option<u32>,
        frames: Frames,
    },
    /// ZMTP 3.1's PING command (`zmtp_engine_t::produce_ping_message`), every
    /// `ZMQ_HEARTBEAT_IVL` on a connection whose handshake is done, with the sender's
    /// `ZMQ_HEARTBEAT_TTL` in deciseconds.
    Ping { connection: u32, ttl_ds: u16 },
    /// The PONG that answers a PING (`produce_pong_message`).
    Pong { connection: u32 },
    /// The sender closed the connection, its heartbeat having timed out (`error
    /// (timeout_error)`): the end of the stream, read after what was sent before it.
    Close { connection: u32 },
    /// The connection to the sender was reset (the driver's notice of a broken TCP connection).
    Reset,
}

impl fmt::Display for ZmqMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZmqMsg::Hello { connection } => write!(f, "Hello (connection {connection})"),
            ZmqMsg::Ready {
                connection,
                routing_id: None,
            } => write!(f, "Hello (connection {connection})"),
            ZmqMsg::Ready {
                connection,
                routing_id: Some(id),
            } => write!(f, "Hello (connection {connection}, ZMQ_ROUTING_ID dealer{id})"),
            ZmqMsg::Welcome { connection } => write!(f, "Welcome (connection {connection})"),
            ZmqMsg::Subscribe { prefix } => write!(f, "Subscribe '{prefix}'"),
            ZmqMsg::Message { frames, .. } => write!(f, "Message {frames}"),
            ZmqMsg::Credit(n) => write!(f, "Credit {n}"),
            ZmqMsg::Request {
                socket,
                request_id,
                frames,
            } => write!(f, "Request {frames} (socket {socket}{})", id(*request_id)),
            ZmqMsg::Reply {
                socket,
                request_id,
                frames,
            } => write!(f, "Reply {frames} (socket {socket}{})", id(*request_id)),
            ZmqMsg::Ping { connection, ttl_ds } => {
                write!(f, "PING (connection {connection}, TTL {ttl_ds} ds)")
            }
            ZmqMsg::Pong { connection } => write!(f, "PONG (connection {connection})"),
            ZmqMsg::Close { connection } => {
                write!(f, "close (connection {connection}, heartbeat timed out)")
            }
            ZmqMsg::Reset => write!(f, "connection reset"),
        }
    }
}

/// A request id frame, as a label: nothing without `ZMQ_REQ_CORRELATE`.
fn id(request_id: Option<u32>) -> String {
    request_id.map_or(String::new(), |id| format!(", request id {id}"))
}
