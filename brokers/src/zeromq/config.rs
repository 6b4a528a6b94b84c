//! ZeroMQ's configuration: the socket options and application choices, with their defaults and
//! allowed values, the combinations that make no sense for a pattern, and the typed
//! [`Settings`].

use crate::config::Allowed::{Bool, Int, OneOf};
use crate::{Config, ConfigError, Key, Workload};
use std::time::Duration;

const INT_MAX: u64 = i32::MAX as u64;
/// `ZMQ_HEARTBEAT_TTL`'s largest value: 2^16-1 deciseconds (`options.cpp`: `value /
/// deciseconds_per_millisecond` must fit a `uint16_t`).
const TTL_MAX: u64 = u16::MAX as u64 * 100 + 99;

/// The kernel's send buffer of a TCP socket, in bytes: Linux's default `net.ipv4.tcp_wmem`
/// (4096 16384 4194304), its initial value. libzmq leaves `ZMQ_SNDBUF` at -1, the OS default
/// (`options.cpp`: `sndbuf (-1)`). Fixed here: autotuning, which grows it towards 4 MiB, is not
/// modelled.
pub const SNDBUF: u64 = 16_384;
/// The kernel's receive buffer of a TCP socket, in bytes: Linux's default `net.ipv4.tcp_rmem`
/// (4096 131072 6291456), its initial value; `ZMQ_RCVBUF` -1. Fixed, as [`SNDBUF`].
pub const RCVBUF: u64 = 131_072;

/// `pattern`: which pair of socket types the peers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    PubSub,
    PushPull,
    ReqRep,
    /// DEALER clients connecting to every ROUTER server: the zguide's asynchronous
    /// client/server (chapter 3, `asyncsrv`).
    DealerRouter,
}

/// `client`: how a REQ peer copes with a missing reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    Plain,
    LazyPirate,
}

/// The validated configuration, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    pub pattern: Pattern,
    /// `bind=pull`: the PULL peers bind and every PUSH connects to each of them (the zguide's
    /// sink); `bind=push`, the default, the other way round (its ventilator).
    pub push_connects: bool,
    /// `ZMQ_SNDHWM` and `ZMQ_RCVHWM`; `None` for 0, no limit. A conflating socket's pipes
    /// ignore them ([`Settings::own_hwm`]).
    pub sndhwm: Option<u64>,
    pub rcvhwm: Option<u64>,
    pub reconnect_ivl: Duration,
    /// `ZMQ_IMMEDIATE=1`: queue only to completed connections (a REQ, or a connecting PUSH).
    pub immediate: bool,
    /// `ZMQ_CONFLATE=1` on both sockets: the pipes of the sockets it applies to (PUB, SUB,
    /// PUSH, PULL, DEALER: `get_effective_conflate_option`; not the ROUTER) keep only the last
    /// message, and the high-water marks do not apply to them.
    pub conflate: bool,
    pub subscribe: String,
    /// The PUB application waits for every subscriber's subscription before publishing.
    pub syncpub: bool,
    /// Frames per message (`ZMQ_SNDMORE` on all but the last).
    pub frames: u32,
    /// `message.bytes`: the payload of each frame.
    pub bytes: u64,
    pub client: Client,
    /// `ZMQ_REQ_RELAXED=1`: the REQ socket may send a request while one is outstanding, so the
    /// Lazy Pirate client resends on the same socket instead of reopening it.
    pub relaxed: bool,
    /// `ZMQ_REQ_CORRELATE=1`: requests carry a request id frame, and the REQ socket discards a
    /// reply that does not carry the last request's.
    pub correlate: bool,
    pub retries: u64,
    pub request_timeout: Duration,
    /// `lazy-pirate.check-reply`: the Lazy Pirate client takes a reply only if it is the one to
    /// the request it sent (`lpclient`'s sequence check), and otherwise waits on.
    pub check_reply: bool,
    pub dedup: bool,
    /// `ZMQ_ROUTER_MANDATORY=1`: a ROUTER's `zmq_send` to a routing id without a pipe fails
    /// with `EHOSTUNREACH`, and to a full pipe with `EAGAIN` (so a blocking send waits), where
    /// by default both are dropped silently.
    pub router_mandatory: bool,
    /// `ZMQ_ROUTING_ID=client`: each DEALER sets its routing id, `dealer<n>` after its client
    /// number, so the ROUTERs know it again after a reconnect or a restart.
    pub routing_id: bool,
    /// `ZMQ_ROUTER_HANDOVER=1`: a ROUTER gives a routing id already in use to the new
    /// connection and terminates the old pipe, where by default it ignores the new connection.
    pub router_handover: bool,
    /// ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL`), on both sockets of every connection; `None` for
    /// 0, off.
    pub heartbeat: Option<Heartbeat>,
    pub workload: Workload,
}

/// `ZMQ_HEARTBEAT_IVL`, `ZMQ_HEARTBEAT_TIMEOUT` and `ZMQ_HEARTBEAT_TTL` as libzmq's engine uses
/// them (`zmtp_engine_t`, `stream_engine_base_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Heartbeat {
    /// A PING every interval.
    pub ivl: Duration,
    /// How long after a PING the engine waits for any traffic: `ZMQ_HEARTBEAT_TIMEOUT`, or the
    /// interval when unset (`zmtp_engine_t`'s constructor: `-1` means `heartbeat_interval`);
    /// `None` for 0, no timeout (`_heartbeat_timeout > 0` arms the timer).
    pub timeout: Option<Duration>,
    /// The TTL a PING carries, in deciseconds (`ZMQ_HEARTBEAT_TTL` divided by 100, rounded
    /// down): the peer times the connection out when nothing follows a PING within it.
    pub ttl_ds: u16,
}

/// A high-water mark, `None` for 0.
fn hwm(config: &Config, key: &str) -> Option<u64> {
    Some(config.int(key)).filter(|h| *h > 0)
}

/// The ZMTP heartbeat keys.
const HEARTBEAT_KEYS: [&str; 3] = [
    "ZMQ_HEARTBEAT_IVL",
    "ZMQ_HEARTBEAT_TIMEOUT",
    "ZMQ_HEARTBEAT_TTL",
];

/// Keys that only mean something for REQ/REP.
const REQ_REP_KEYS: [&str; 5] = [
    "client",
    "lazy-pirate.retries",
    "lazy-pirate.timeout",
    "lazy-pirate.check-reply",
    "server.dedup",
];

/// The REQ socket's own options: libzmq refuses them on any other socket type (`req_t::
/// xsetsockopt` handles them; `options_t::setsockopt` fails the rest with `EINVAL`).
const REQ_OPTIONS: [&str; 2] = ["ZMQ_REQ_RELAXED", "ZMQ_REQ_CORRELATE"];

/// The ROUTER socket's own options: libzmq refuses them on any other socket type
/// (`router_t::xsetsockopt`).
const ROUTER_OPTIONS: [&str; 2] = ["ZMQ_ROUTER_MANDATORY", "ZMQ_ROUTER_HANDOVER"];

/// The keys of the Lazy Pirate client's own loop.
const LAZY_PIRATE_KEYS: [&str; 3] = [
    "lazy-pirate.retries",
    "lazy-pirate.timeout",
    "lazy-pirate.check-reply",
];

impl Settings {
    /// A message's bytes on the wire: per frame its payload and ZMTP's frame header, a flags
    /// byte and a one-byte size up to 255 bytes, an eight-byte size above (ZMTP 3.0, RFC 23,
    /// "Framing"; libzmq `v2_encoder.cpp`).
    pub fn wire_bytes(&self) -> u64 {
        let header = if self.bytes > 255 { 9 } else { 2 };
        u64::from(self.frames.max(1)) * (self.bytes + header)
    }

    /// Messages the two kernels' buffers of one connection hold between the sender's pipe and
    /// the receiver's: the sender's I/O thread takes a message out of its pipe when the kernel
    /// has room for it. A message larger than both buffers still streams through them, one at
    /// a time.
    pub fn kernel_window(&self) -> u64 {
        ((SNDBUF + RCVBUF) / self.wire_bytes().max(1)).max(1)
    }

    /// The high-water mark `hwm` of a pipe of a socket `ZMQ_CONFLATE` applies to (PUB, SUB,
    /// PUSH, PULL, DEALER): none with `ZMQ_CONFLATE=1`, whose pipes libzmq creates with `-1`
    /// (`session_base_t::engine_ready`, `socket_base_t::connect_internal`). A ROUTER's pipes
    /// keep theirs.
    pub fn own_hwm(&self, hwm: Option<u64>) -> Option<u64> {
        hwm.filter(|_| !self.conflate)
    }

    pub fn from_config(config: &Config, workload: Workload) -> Settings {
        Settings {
            pattern: match config.str("pattern") {
                "pub-sub" => Pattern::PubSub,
                "req-rep" => Pattern::ReqRep,
                "dealer-router" => Pattern::DealerRouter,
                _ => Pattern::PushPull,
            },
            push_connects: config.str("bind") == "pull",
            sndhwm: hwm(config, "ZMQ_SNDHWM"),
            rcvhwm: hwm(config, "ZMQ_RCVHWM"),
            reconnect_ivl: Duration::from_millis(config.int("ZMQ_RECONNECT_IVL")),
            immediate: config.str("ZMQ_IMMEDIATE") == "1",
            conflate: config.str("ZMQ_CONFLATE") == "1",
            subscribe: config.str("ZMQ_SUBSCRIBE").to_string(),
            syncpub: config.bool("syncpub"),
            frames: config.int("frames") as u32,
            bytes: config.int("message.bytes"),
            client: match config.str("client") {
                "lazy-pirate" => Client::LazyPirate,
                _ => Client::Plain,
            },
            relaxed: config.int("ZMQ_REQ_RELAXED") != 0,
            correlate: config.int("ZMQ_REQ_CORRELATE") != 0,
            retries: config.int("lazy-pirate.retries"),
            request_timeout: Duration::from_millis(config.int("lazy-pirate.timeout")),
            check_reply: config.bool("lazy-pirate.check-reply"),
            dedup: config.bool("server.dedup"),
            router_mandatory: config.int("ZMQ_ROUTER_MANDATORY") != 0,
            routing_id: config.str("ZMQ_ROUTING_ID") == "client",
            router_handover: config.int("ZMQ_ROUTER_HANDOVER") != 0,
            heartbeat: Some(config.int("ZMQ_HEARTBEAT_IVL"))
                .filter(|ivl| *ivl > 0)
                .map(|ivl| Heartbeat {
                    ivl: Duration::from_millis(ivl),
                    timeout: Some(if config.is_set("ZMQ_HEARTBEAT_TIMEOUT") {
                        config.int("ZMQ_HEARTBEAT_TIMEOUT")
                    } else {
                        ivl
                    })
                    .filter(|t| *t > 0)
                    .map(Duration::from_millis),
                    ttl_ds: (config.int("ZMQ_HEARTBEAT_TTL") / 100) as u16,
                }),
            workload,
        }
    }
}

/// The configuration keys, with ZeroMQ's names, defaults and allowed values.
pub(super) fn keys() -> Vec<Key> {
    vec![
        Key::new(
            "pattern",
            "push-pull",
            OneOf(&["pub-sub", "push-pull", "req-rep", "dealer-router"]),
            "socket types: PUB→SUB, PUSH→PULL, REQ→REP, or DEALER→ROUTER (asynchronous clients and servers)",
        ),
        Key::new(
            "bind",
            "push",
            OneOf(&["push", "pull"]),
            "push-pull: which socket binds, the other connecting to each peer of it: push (the zguide's ventilator; a departed PULL's pipe goes with its connection) or pull (its sink; a connecting PUSH keeps its pipe to a departed PULL and queues to it)",
        ),
        Key::new(
            "ZMQ_SNDHWM",
            "1000",
            Int { min: 0, max: INT_MAX },
            "messages a socket queues per peer before the mute state (0: no limit)",
        ),
        Key::new(
            "ZMQ_RCVHWM",
            "1000",
            Int { min: 0, max: INT_MAX },
            "messages a receiving socket queues per peer before it stops reading (0: no limit)",
        ),
        Key::new(
            "ZMQ_RECONNECT_IVL",
            "100",
            Int { min: 1, max: INT_MAX },
            "ms before the connecting side dials a broken connection again",
        ),
        Key::new(
            "ZMQ_IMMEDIATE",
            "0",
            OneOf(&["0", "1"]),
            "1: a connecting socket queues only to completed connections, and its pipe goes with its connection (here: the REQ client, the DEALER client, and a PUSH with bind=pull)",
        ),
        Key::new(
            "ZMQ_CONFLATE",
            "0",
            OneOf(&["0", "1"]),
            "1: both sockets (PUB and SUB, or PUSH and PULL; with dealer-router the DEALER only, libzmq ignoring it for the ROUTER) keep only the last message in each pipe, ignoring the high-water marks; single-frame messages only",
        ),
        Key::new(
            "ZMQ_HEARTBEAT_IVL",
            "0",
            Int { min: 0, max: INT_MAX },
            "ms between the ZMTP PINGs each socket sends on each connection (0: no heartbeats); set on both sockets (pub-sub and push-pull)",
        ),
        Key::new(
            "ZMQ_HEARTBEAT_TIMEOUT",
            "-1",
            Int { min: 0, max: INT_MAX },
            "ms after a PING without any traffic before the connection is closed (-1, the default, not settable: ZMQ_HEARTBEAT_IVL; 0: never)",
        ),
        Key::new(
            "ZMQ_HEARTBEAT_TTL",
            "0",
            Int { min: 0, max: TTL_MAX },
            "ms, rounded down to deciseconds, the peer waits for traffic after each PING before closing (0 or below 100: no TTL)",
        ),
        Key::new(
            "ZMQ_SUBSCRIBE",
            "",
            OneOf(&["", "A", "B"]),
            "pub-sub: the prefix every SUB subscribes to (empty: everything; messages alternate topics A and B)",
        ),
        Key::new(
            "syncpub",
            "false",
            Bool,
            "pub-sub: true: the PUB application waits until every SUB has subscribed (the zguide's node coordination, an application protocol); false, as ZeroMQ is: the slow joiner misses the first messages",
        ),
        Key::new(
            "frames",
            "1",
            Int { min: 1, max: 8 },
            "frames per message (ZMQ_SNDMORE on all but the last)",
        ),
        Key::new(
            "message.bytes",
            "8",
            Int { min: 0, max: 1 << 30 },
            "payload bytes per frame: what the kernels' TCP buffers (16 KiB send, 128 KiB receive) hold besides the high-water marks",
        ),
        Key::new(
            "client",
            "plain",
            OneOf(&["plain", "lazy-pirate"]),
            "req-rep: a plain REQ client, or the zguide's Lazy Pirate client",
        ),
        Key::new(
            "ZMQ_REQ_RELAXED",
            "0",
            Int { min: 0, max: INT_MAX },
            "req-rep: 1 (libzmq takes any positive value as 1): the REQ socket may send while a reply is owed, dropping replies from other pipes than the last request's; the Lazy Pirate client then resends on the same socket instead of reopening it (needs client=lazy-pirate)",
        ),
        Key::new(
            "ZMQ_REQ_CORRELATE",
            "0",
            Int { min: 0, max: INT_MAX },
            "req-rep: 1 (or any positive value): each request carries a request id frame and the REQ socket discards replies without the last one's (matters with ZMQ_REQ_RELAXED=1)",
        ),
        Key::new(
            "lazy-pirate.retries",
            "3",
            Int { min: 1, max: 100 },
            "req-rep, lazy-pirate: attempts before giving up on a request (REQUEST_RETRIES)",
        ),
        Key::new(
            "lazy-pirate.timeout",
            "2500",
            Int { min: 1, max: INT_MAX },
            "req-rep, lazy-pirate: ms to wait for a reply (REQUEST_TIMEOUT)",
        ),
        Key::new(
            "lazy-pirate.check-reply",
            "true",
            Bool,
            "req-rep, lazy-pirate: true, as lpclient: a reply that is not the request's sequence number is malformed and the client polls again; false: any reply the socket returns answers the request",
        ),
        Key::new(
            "ZMQ_ROUTER_MANDATORY",
            "0",
            Int { min: 0, max: INT_MAX },
            "dealer-router: 1 (or any positive value): the ROUTER's zmq_send fails with EHOSTUNREACH for a departed peer and blocks (EAGAIN) on a full pipe; 0: both replies are dropped silently",
        ),
        Key::new(
            "ZMQ_ROUTER_HANDOVER",
            "0",
            Int { min: 0, max: INT_MAX },
            "dealer-router: 1 (or any positive value): a ROUTER hands a routing id in use to the new connection that claims it and terminates the old pipe; 0: it ignores the new connection (its requests are never read)",
        ),
        Key::new(
            "ZMQ_ROUTING_ID",
            "",
            OneOf(&["", "client"]),
            "dealer-router: client: each DEALER sets its routing id, dealer<n> after its client number, and is the same peer to the ROUTERs after a reconnect or a restart; empty (libzmq's default): each connection gets a new one from the ROUTER",
        ),
        Key::new(
            "server.dedup",
            "false",
            Bool,
            "req-rep: the REP server answers a repeated request without handling it again",
        ),
    ]
}

/// Refuses the combinations ZeroMQ refuses, after each key was validated on its own.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let pattern = config.str("pattern");
    if pattern != "req-rep" {
        if let Some(key) = REQ_REP_KEYS.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} applies to pattern=req-rep only (the zguide's Lazy Pirate is a REQ client), not to pattern={pattern}"),
            ));
        }
    }
    if pattern != "req-rep" {
        if let Some(key) = REQ_OPTIONS.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} is a REQ socket option (libzmq refuses it on other sockets with EINVAL): it needs pattern=req-rep, not pattern={pattern}"),
            ));
        }
    }
    if pattern != "dealer-router" {
        if let Some(key) = ROUTER_OPTIONS.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} is a ROUTER socket option (libzmq refuses it on other sockets with EINVAL): it needs pattern=dealer-router, not pattern={pattern}"),
            ));
        }
    }
    if config.str("client") != "lazy-pirate" {
        if let Some(key) = LAZY_PIRATE_KEYS.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} needs client=lazy-pirate (allowed clients: plain, lazy-pirate)"),
            ));
        }
        if config.int("ZMQ_REQ_RELAXED") != 0 {
            return Err(ConfigError::new(
                "ZMQ_REQ_RELAXED",
                "ZMQ_REQ_RELAXED=1 changes only a client that sends again before its reply arrived, and the plain client never does: it needs client=lazy-pirate",
            ));
        }
    }
    if pattern != "dealer-router" && config.is_set("ZMQ_ROUTING_ID") {
        return Err(ConfigError::new(
            "ZMQ_ROUTING_ID",
            format!("ZMQ_ROUTING_ID (allowed: empty, client) is modelled for the DEALERs of pattern=dealer-router, not pattern={pattern}"),
        ));
    }
    if config.str("ZMQ_CONFLATE") == "1" {
        if pattern == "req-rep" {
            return Err(ConfigError::new(
                "ZMQ_CONFLATE",
                "ZMQ_CONFLATE applies to PUB, SUB, PUSH, PULL and DEALER (libzmq ignores it for REQ and REP): it needs pattern=pub-sub, push-pull or dealer-router, not pattern=req-rep",
            ));
        }
        if config.int("frames") > 1 {
            return Err(ConfigError::new(
                "ZMQ_CONFLATE",
                "ZMQ_CONFLATE does not support multipart messages (libzmq keeps one part of one): it needs frames=1",
            ));
        }
    }
    if pattern == "req-rep" || pattern == "dealer-router" {
        if let Some(key) = HEARTBEAT_KEYS.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key}: ZMTP heartbeats are modelled for pattern=pub-sub and pattern=push-pull, not pattern={pattern}"),
            ));
        }
    }
    if pattern != "push-pull" && config.is_set("bind") {
        return Err(ConfigError::new(
            "bind",
            format!("bind chooses which of PUSH and PULL binds: it needs pattern=push-pull, not pattern={pattern} (there the stable side binds: PUB, REP)"),
        ));
    }
    if pattern != "pub-sub" {
        if let Some(key) = ["ZMQ_SUBSCRIBE", "syncpub"]
            .iter()
            .find(|k| config.is_set(k))
        {
            return Err(ConfigError::new(
                *key,
                format!("{key} applies to PUB and SUB sockets: it needs pattern=pub-sub, not pattern={pattern}"),
            ));
        }
    }
    Ok(())
}
