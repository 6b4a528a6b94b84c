//! ZeroMQ: no broker at all. The model is the sockets of the peers and the queues inside them.
//!
//! # The mechanism
//!
//! A ZeroMQ socket talks to each connected peer through a **pipe**: a queue in the sending
//! process's memory, drained by the I/O thread onto the peer's TCP connection, and a queue in
//! the receiving process where the I/O thread puts what it reads until the application calls
//! `zmq_recv`. `ZMQ_SNDHWM` and `ZMQ_RCVHWM` (default 1000 each) cap those queues in messages,
//! per peer (`pipe_t::check_hwm`: `_msgs_written - _peers_msgs_read >= _hwm`). Between the two
//! pipes sit the two kernels' TCP buffers, counted in bytes: the sender's I/O thread takes a
//! message out of its pipe as soon as its kernel accepts the bytes
//! (`stream_engine_base_t::out_event`), and the receiver's reads the connection while its pipe
//! has room. When a receiver stops reading (its application is slow, or its process is paused),
//! its pipe fills, it stops reading the connection, the kernels' buffers fill, and then the
//! sender's pipe to it fills too: the sender enters the **mute state** for that peer. Small
//! messages therefore wait in the kernels long before any high-water mark bites; large ones
//! reach it almost at once. What happens then is the socket type's choice (`zmq_socket`):
//!
//! - **PUB** drops the messages for a subscriber in the mute state, and `zmq_send` never
//!   blocks. It also drops what no connected subscriber subscribed to: a subscription travels
//!   from the SUB to the PUB over the connection (`ZMQ_SUBSCRIBE`, a prefix of the message) and
//!   takes effect only when it arrives, so a publisher with no subscribers drops everything.
//! - **PUSH** round-robins messages over its pipes to PULL peers, skipping pipes in the mute
//!   state, and `zmq_send` **blocks** when every pipe is mute or there is none: messages are
//!   not discarded. A binding PUSH has pipes to its connected peers only; a connecting one also
//!   to peers whose connection is down (see below).
//! - **PULL** and **SUB** fair-queue: they read their peers' pipes in turn.
//! - **REQ** sends one request (round-robin over its REP peers) and must receive the reply
//!   before it may send again; **REP** receives one request and must reply before it receives
//!   the next. A reply whose requester has gone is silently discarded.
//! - **DEALER** sends like a connecting PUSH (round robin, `lb_t`) and fair-queues what comes
//!   back (`fq_t`), with no send/receive alternation; **ROUTER** prefixes each received message
//!   with its pipe's routing id and sends a message to the pipe its first frame names. A
//!   message to a routing id with no pipe, or to a full pipe, is dropped silently, unless
//!   `ZMQ_ROUTER_MANDATORY=1` makes `zmq_send` fail with `EHOSTUNREACH` or block (`EAGAIN`).
//!
//! Nothing is persistent: every queue lives in a process's memory and dies with it. A
//! connection that breaks loses what was on the wire and in the kernels' buffers. The
//! connecting side reconnects after `ZMQ_RECONNECT_IVL` (100 ms) plus a random jitter below it
//! (`stream_connecter_base_t::get_new_reconnect_ivl`), which the driver draws from the run's
//! seed. On the connecting side the pipe outlives the connection (`ZMQ_IMMEDIATE=0`, the
//! default), so what a REQ queued while disconnected goes out after the reconnect, and round
//! robin may put a request in the pipe of a server that is down — the "lost" messages
//! `ZMQ_IMMEDIATE=1` avoids by queueing only to completed connections; with it, the session
//! terminates the pipe when the connection goes (`session_base_t::reconnect`). On the binding
//! side a broken or replaced connection's pipe is terminated too, but its socket end waits for
//! the delimiter (`pipe_t::process_pipe_term` with `_delay`): a REP still receives and handles
//! the requests in it, and drops their replies (`router_t::xsend`: no writable pipe for that
//! routing id). A SUB resends its subscriptions on every new connection.
//!
//! **A connecting PUSH** (`bind=pull`) is the connecting side too: with `ZMQ_IMMEDIATE=0` it
//! has a pipe to each PULL from `zmq_connect` on (`socket_base_t::connect_internal` attaches it
//! to the load balancer, `lb_t::attach`), a pipe that survives its connection
//! (`session_base_t::engine_error` only `reconnect`s an active session, and `engine_ready`
//! reuses `_pipe`). Round robin (`lb_t::sendpipe`) goes on putting every n-th message in the
//! pipe of a PULL that crashed, was cut off or timed out, until that pipe reaches `ZMQ_SNDHWM`
//! and is skipped; `zmq_send` blocks only when every pipe is full. What waits there goes out
//! once the PULL is back, the same process or a restarted one; what the I/O thread had already
//! handed to the kernel, and what the dead PULL's pipe held, are gone: libzmq keeps no copy.
//! With `ZMQ_IMMEDIATE=1` a pipe exists only while its connection does: `reconnect`
//! terminates it with what it held (`push_t::xattach_pipe` sets `set_nodelay`), noted as
//! `Op::Discard`, and round robin knows only the connected PULLs. The binding PULL gives each
//! accepted connection a pipe and, when it breaks, reads the old pipe to its delimiter.
//!
//! `ZMQ_CONFLATE=1`, set on both sockets here (with DEALER/ROUTER it applies to the DEALER
//! only), makes every pipe a `ypipe_conflate_t`
//! (`src/ypipe_conflate.hpp`): one message, replaced by the next before it is read, and no
//! high-water marks (`session_base_t::engine_ready` creates the pipes with `-1`;
//! `get_effective_conflate_option`: DEALER, PULL, PUSH, PUB and SUB only). What a newer message
//! replaced is lost by design, noted as `Op::Discard`.
//!
//! **DEALER/ROUTER** (`pattern=dealer-router`, the zguide's asynchronous client/server;
//! `router.rs`, and `outgoing.rs` for the DEALER): the DEALER clients connect to every ROUTER
//! server and send requests without waiting (`dealer_t::xsend` is `lb_t::sendpipe`, so their
//! pipes behave as a connecting PUSH's), and read each reply as it comes. Each accepted
//! connection is a new routing id (`router_t::identify_peer`, `_next_integral_routing_id`), so
//! a reconnected or restarted DEALER is a new peer, and the replies to what its old
//! connection's pipe still held (read to its delimiter) find no pipe: dropped silently, or
//! `EHOSTUNREACH` with `ZMQ_ROUTER_MANDATORY=1`. With `ZMQ_ROUTING_ID=client` each DEALER
//! names itself (`dealer<n>`) in every greeting and stays the same peer, so those replies
//! reach its new connection — unless the ROUTER still has the old pipe when the new connection
//! arrives: then by default `identify_peer` refuses the routing id in use and the new pipe stays
//! anonymous, never read, for as long as that connection lasts; with `ZMQ_ROUTER_HANDOVER=1`
//! the new pipe takes it over and the old one, renamed, is terminated (`router.rs`).
//! `ZMQ_CONFLATE=1` conflates the DEALER's pipes and not the ROUTER's
//! (`get_effective_conflate_option`). A reply to a pipe at `ZMQ_SNDHWM` is dropped
//! too, or, with `ZMQ_ROUTER_MANDATORY=1`, the server's blocking `zmq_send` waits
//! (`socket_base_t::send` retries `xsend` on `EAGAIN`) and receives nothing meanwhile. A request
//! is delivered twice in the history: applied by a server (group 0) and answered to its client
//! (group [`REPLIES`]).
//!
//! **ZMTP heartbeats** (`ZMQ_HEARTBEAT_IVL`, off by default; `heartbeat.rs`): each engine
//! sends a PING every interval once its handshake is done, and closes the connection when
//! nothing at all arrived within `ZMQ_HEARTBEAT_TIMEOUT` (the interval when unset) after a PING,
//! or within the peer's `ZMQ_HEARTBEAT_TTL` after the peer's PING (`stream_engine_base_t::
//! timer_event` → `error (timeout_error)`). The session then treats the connection as broken
//! (`session_base_t::engine_error`): the binding side (PUB, PUSH) terminates its pipe with what
//! it held, the connecting side (SUB, PULL, or a PUSH with `bind=pull`) keeps its pipe and
//! reconnects. So a partition, a
//! stalled retransmission or a peer that lost power is noticed after the timeout instead of
//! never, and what waited for the dead connection is dropped where, without heartbeats, TCP
//! would have delivered it after the heal. A receiver whose pipe is full stops decoding, PINGs
//! included, and may time its own connection out.
//!
//! A multipart message (frames sent with `ZMQ_SNDMORE`) travels as one unit: "peers shall
//! receive either all message parts of a message or none at all" (`zmq_send`). A PUB checks
//! the high-water mark at the first frame, so it drops whole messages.
//!
//! ## What "acknowledged" means here
//!
//! ZeroMQ has no acknowledgement: the only promise the API makes is that `zmq_send` returned
//! success — the message is in a pipe. That is what the model records as the acknowledgement
//! for at-least-once: PUB and PUSH, and a plain REQ, acknowledge when `zmq_send` returns. A
//! Lazy Pirate client acknowledges a request only when its reply arrived, and records a failure
//! when it gives up. A PUB's drop is recorded as the model's note (`Op::Discard`) with its
//! reason, so a lost message's explanation says it was the high-water mark.
//!
//! ## The reliable request-reply patterns (zguide, chapter 4)
//!
//! A plain REQ client whose request or reply is lost waits for ever. The **Lazy Pirate**
//! client polls for the reply with a timeout (`lazy-pirate.timeout`, the zguide's
//! `REQUEST_TIMEOUT` 2500 ms); on a timeout it closes the socket (discarding what it held),
//! opens a new one, connects and resends at once, until `lazy-pirate.retries` (`REQUEST_RETRIES`,
//! 3) attempts went unanswered; then it gives up on that request. The server applies a request
//! when `zmq_recv` returns it (the delivery in the history) and replies after its handling time,
//! as a step of its own: a crash in between, a lost reply, or a reply slower than the timeout
//! makes the server apply a request twice, unless it detects duplicates (`server.dedup`: it
//! remembers the requests it handled and answers a repeat without handling it again — in
//! memory, so a restarted server forgets).
//!
//! `lpclient` compares each reply with the request's sequence number; one that differs is a
//! "malformed reply from server", and the client polls again for a whole `REQUEST_TIMEOUT`
//! (`lazy-pirate.check-reply`, on as in `lpclient`; off, any reply the socket returns answers
//! the request). With a strict REQ socket (libzmq's default) the check never fires: one request
//! is outstanding per socket and a timeout closes the socket, so no other request's reply can
//! reach it. **`ZMQ_REQ_RELAXED=1`** lifts the strict alternation (`req_t::xsend`: a send while
//! a reply is owed resets the state machine, `_strict` false): the Lazy Pirate client resends on
//! the same socket, to the next pipe in round robin, and goes on there after abandoning a
//! request. What an attempt left in the pipe to a server that is down stays there and goes out
//! once it is back, so the server applies every attempt. The socket takes replies only from the
//! last request's pipe (`recv_reply_pipe`: `_reply_pipe`, which `xpipe_terminated` clears when
//! that pipe goes, `ZMQ_IMMEDIATE=1`, and then any pipe's reply is taken), and drops the replies
//! that arrived before a new request was sent (`xsend` reads and drops them) — but a late reply
//! from the same server to an abandoned request is returned as the next request's: "a late
//! reply to an aborted request can be reported as the reply to the superseding request"
//! (`zmq_setsockopt`). Without the check, it acknowledges a request the server may never have
//! handled. **`ZMQ_REQ_CORRELATE=1`** puts a request id frame before the envelope's empty
//! delimiter (`_request_id`, one more per request), which REP returns with the reply, and
//! `req_t::xrecv` drops a reply without the last request's id. Whatever the socket drops still
//! wakes `lpclient`'s `zmq_poll` (`req_t::xhas_in` asks only whether any pipe holds a message:
//! "TODO: Duplicates should be removed here"), and the blocking `zstr_recv` that follows waits,
//! with no timeout, for a reply the socket returns: when the server lost the request, the
//! client waits for ever.
//!
//! # Who is who
//!
//! `pattern` decides the sockets: producers are PUB, PUSH, REQ or DEALER peers, consumers are
//! SUB, PULL, REP or ROUTER peers (ROUTERs bind, as REPs do, and are servers). The stable side binds (PUB, PUSH, REP) and the other connects to every peer
//! of the stable side, as the zguide's examples do; with `pattern=push-pull` and `bind=pull`
//! the PULLs bind and every PUSH connects to each of them (the zguide's sink). PUB, PUSH and REQ peers are the workload's
//! producers and crash only under `--producer-crashes` (then their applications resend their
//! outboxes: `outgoing.rs`, `req.rs`); SUB and PULL peers are consumers and REP peers are servers, which
//! the nemesis crashes and pauses. Each SUB is its own group (it should see every message it
//! subscribed to); the PULL peers together, and the REP peers together, are one group.
//! Messages alternate between topics `A` and `B`.
//!
//! # What is simplified
//!
//! The kernels' buffers are fixed at Linux's initial sizes (`config::SNDBUF` 16 KiB from
//! `tcp_wmem`, `config::RCVBUF` 128 KiB from `tcp_rmem`; no autotuning, no `ZMQ_SNDBUF`) and
//! hold a message's wire bytes (`message.bytes` per frame and ZMTP's frame header), not Linux's
//! per-segment accounting: the model holds about 8000 eight-byte messages there where libzmq
//! 4.3.5 on loopback held 161–452, so with small messages it may miss a drop libzmq has, never
//! invent one. A message larger than both buffers streams through them alone. The
//! high-water marks are exact (libzmq's counts update in batches of the low-water mark, and
//! "may be as much as 60-70% lower"). Without ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL=0`, the
//! default) a peer learns that a connection broke from the close a crashed process's kernel
//! sends, from a reset, or when the other side connects anew; a machine that loses power closes
//! nothing, and what a PUSH or PUB sends to it meanwhile is lost on the wire until a write draws
//! a reset. The heartbeat keys apply to both sockets of every connection, and to PUB/SUB and
//! PUSH/PULL only (not to REQ/REP); PING and PONG cost no room in the kernels' buffers. The connecting side greets again every `ZMQ_RECONNECT_IVL` until the binding side
//! answers (libzmq waits for its TCP connect instead); a repeated greeting on the same
//! connection changes nothing at the binding side. With `syncpub=true` the PUB application waits until every
//! subscriber's subscription arrived before publishing (the zguide's node coordination against
//! the slow joiner, an application protocol, not ZeroMQ's: off by default). A Lazy Pirate client
//! that gives up goes on with its next request rather than exiting. A REQ's pipes ignore
//! `ZMQ_SNDHWM` (a strict one holds one request; with `ZMQ_REQ_RELAXED=1` the pipe to a server
//! that is down holds every attempt queued to it, where libzmq's round robin would skip a full
//! pipe), and `_request_id` counts from 1 per client rather than from a random start. A
//! multipart message is one packet on the wire. A REP reads the requests of a peer's old and new pipes in arrival order,
//! where libzmq fair-queues the two pipes. A DEALER's application reads each reply at once (its
//! receive pipes never fill); a ROUTER server handles one request at a time and echoes its
//! frames; `ZMQ_ROUTING_ID` is set on every DEALER or on none, each its own; a new greeting
//! from a DEALER ends its old connection at the ROUTER at once (in libzmq only when the
//! ROUTER's TCP learns it), after the new pipe was identified; heartbeats are refused for
//! DEALER/ROUTER. See `docs/zeromq.md`.
//!
//! # Sources
//!
//! libzmq reference: `zmq_socket` (socket types, mute state, fair queueing: order per peer
//! connection only), `zmq_setsockopt`
//! (`ZMQ_SNDHWM`, `ZMQ_RCVHWM`, `ZMQ_RECONNECT_IVL`, `ZMQ_SUBSCRIBE`, `ZMQ_IMMEDIATE`,
//! `ZMQ_CONFLATE`, `ZMQ_HEARTBEAT_IVL`, `ZMQ_HEARTBEAT_TIMEOUT`, `ZMQ_HEARTBEAT_TTL`,
//! `ZMQ_REQ_RELAXED`, `ZMQ_REQ_CORRELATE`), `zmq_send` (multipart atomicity). libzmq's source
//! (github zeromq/libzmq, master): `src/pipe.cpp` (`check_hwm`, `terminate`, `process_pipe_term`:
//! a terminated pipe is read to its delimiter), `src/lb.cpp` and `src/fq.cpp` (round robin
//! skipping full pipes, fair queueing), `src/dist.cpp` (PUB: `dist_t::write` drops the copy for a
//! pipe whose `write` fails at the mark), `src/xpub.cpp`, `src/req.cpp`, `src/rep.cpp` (REP on `router_t`: a
//! reply to a gone pipe is dropped), `src/session_base.cpp` (`engine_error`, `reconnect`:
//! `ZMQ_IMMEDIATE` terminates the pipe), `src/stream_connecter_base.cpp`
//! (`get_new_reconnect_ivl`: the interval plus `generate_random () % reconnect_ivl`),
//! `src/push.cpp`, `src/lb.cpp`, `src/session_base.cpp` and `src/socket_base.cpp` at commit
//! 6b708e4a453a31e240211792f42e4f0c67b7fc03 (`push_t::xattach_pipe`: `set_nodelay`, `lb_t::
//! attach`; `lb_t::sendpipe`: a pipe whose `write` fails is deactivated, `EAGAIN` with none
//! active; `connect_internal`: the pipe pair is created at `zmq_connect` unless
//! `options.immediate == 1`; `engine_ready`: a pipe only if none exists; `engine_error`:
//! `reconnect` for an active session, `terminate` for an accepted one; `reconnect`: with
//! `immediate == 1`, `_pipe->terminate (false)`),
//! `src/router.cpp`, `src/dealer.cpp`, `src/lb.cpp` and `src/fq.cpp` at tag v4.3.5 and at commit
//! 6b708e4a453a31e240211792f42e4f0c67b7fc03 (identical; `router_t::identify_peer`: a routing id
//! in use refused without `_handover`, or the old pipe renamed and `terminate (true)`d with it;
//! `xattach_pipe`: `_anonymous_pipes`; `xread_activated`; `xsend`:
//! `lookup_out_pipe`, `check_write`, `_mandatory` → `EHOSTUNREACH` or `EAGAIN`, `xrecv`: the
//! routing id frame, `xpipe_terminated`, `xsetsockopt`; `dealer_t::xattach_pipe`: `_fq` and
//! `_lb`, `xsend` → `lb_t::sendpipe`, `xrecv` → `fq_t::recvpipe`), `src/socket_base.cpp` at the
//! same commit (`send`: a blocking send retries `xsend` while it fails with `EAGAIN`),
//! `src/req.cpp` at commit 6b708e4a453a31e240211792f42e4f0c67b7fc03 (`xsend`: `_strict`, the
//! request id frame, the unread replies dropped; `xrecv` and `recv_reply_pipe`: only
//! `_reply_pipe`'s messages, only the last `_request_id`; `xhas_in`; `xpipe_terminated`;
//! `xsetsockopt`: `ZMQ_REQ_RELAXED`, `ZMQ_REQ_CORRELATE`, values ≥ 0),
//! `src/options.hpp` and `src/socket_base.cpp` at tag v4.3.5 (`get_effective_conflate_option`:
//! DEALER, PULL, PUSH, PUB, SUB; `connect_internal`: conflating pipes without marks),
//! `src/ypipe.hpp` (`check_read`, `flush`: only a reader that found its pipe empty is woken),
//! `src/options.cpp` (`ZMQ_ROUTING_ID`: 1 to 255 bytes; defaults: HWMs 1000, `reconnect_ivl` 100, `sndbuf`/`rcvbuf` -1: the OS's,
//! `immediate` 0, `heartbeat_interval` 0, `heartbeat_timeout` -1, `heartbeat_ttl` 0; the
//! heartbeat options' validation), `src/zmtp_engine.cpp` (`produce_ping_message`,
//! `process_heartbeat_message`), `src/stream_engine_base.cpp` (`mechanism_ready`,
//! `decode_and_push`, `timer_event`, `error`); libzmq issues 3937 and 4767 (a full receive pipe
//! starves the heartbeat). ZMTP 3.1 (RFC 37: PING, PONG, TTL). Linux `Documentation/networking/ip-sysctl.rst`
//! (`tcp_wmem`, `tcp_rmem` defaults). ZMTP 3.0 (RFC 23, framing). The zguide (Pieter Hintjens,
//! "ØMQ - The Guide"): chapter 1 (the slow joiner), chapter 2 (high-water marks, multipart
//! messages, node coordination), chapter 3 (the asynchronous client/server, `asyncsrv`),
//! chapter 4 (Client-Side Reliability: the Lazy Pirate pattern,
//! `lpclient`, `lpserver`, duplicate detection); github booksbyus/zguide
//! `examples/C/lpclient.c` at commit 23e5f529 (the book's version: the sequence check,
//! "malformed reply from server", the poll again; the 2019 rewrite at 0ec49098 keeps them).

mod config;
pub mod heartbeat;
mod incoming;
mod outgoing;
pub mod protocol;
mod rep;
mod req;
mod router;
mod view;

pub use config::{Client, Heartbeat, Pattern, Settings};
pub use incoming::{Incoming, IncomingState, Unread};
pub use outgoing::{Outgoing, OutgoingState, Peer};
pub use protocol::{Frames, ZmqMsg};
pub use rep::{Replier, ReplierState};
pub use req::{Pending, Requester, RequesterState};
pub use router::{Router, RouterState};

use crate::timers::exact;
use crate::{AppLog, Config, ConfigError, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::{GroupId, MsgId, Op, OrderingPromise};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::time::Duration;

pub const NAME: &str = "zeromq";

/// `pattern=dealer-router`: the group of the DEALER clients, which should each get the reply to
/// every request they sent (the ROUTER servers, which apply the requests, are group 0).
pub const REPLIES: GroupId = 1;

/// Paces a producer application may draw: milliseconds between two sends.
pub const PACES: [u64; 3] = [20, 100, 300];
/// Time a consumer or server application may draw to handle one message, in milliseconds.
pub const PROCESSING: [u64; 3] = [1, 10, 40];

impl Settings {
    /// Producers (PUB, PUSH, REQ) are ids `0..producers`, consumers (SUB, PULL, REP) follow.
    pub fn producer_ids(&self) -> Vec<Id> {
        (0..self.workload.producers as usize)
            .map(Id::from)
            .collect()
    }

    pub fn consumer_ids(&self) -> Vec<Id> {
        let first = self.workload.producers as usize;
        (first..first + self.workload.consumers as usize)
            .map(Id::from)
            .collect()
    }

    /// The consumer index of a consumer's id.
    pub fn consumer_index(&self, id: Id) -> u32 {
        (usize::from(id) - self.workload.producers as usize) as u32
    }

    /// A node's name: its socket type and index.
    pub fn name(&self, id: Id) -> String {
        let (producer, consumer) = match self.pattern {
            Pattern::PubSub => ("pub", "sub"),
            Pattern::PushPull => ("push", "pull"),
            Pattern::ReqRep => ("req", "rep"),
            Pattern::DealerRouter => ("dealer", "router"),
        };
        let i = usize::from(id);
        let producers = self.workload.producers as usize;
        if i < producers {
            format!("{producer}{i}")
        } else {
            format!("{consumer}{}", i - producers)
        }
    }

    /// Message `index` of `producer`: its frames, each with its own id, and its topic.
    pub fn message(&self, producer: u32, index: u32) -> Frames {
        Frames {
            parts: (0..self.frames)
                .map(|f| MsgId {
                    producer,
                    seq: index * self.frames + f,
                })
                .collect(),
            topic: if index.is_multiple_of(2) { 'A' } else { 'B' },
        }
    }

    /// Does a subscription to `prefix` match a message on `topic` (its first byte)?
    pub fn matches(prefix: &str, topic: char) -> bool {
        topic.to_string().starts_with(prefix)
    }

    /// The groups that should receive a message on `topic`: every subscriber whose
    /// subscription matches it, or the one group of PULL or REP peers.
    pub fn audience(&self, topic: char) -> Vec<GroupId> {
        match self.pattern {
            Pattern::PubSub if Self::matches(&self.subscribe, topic) => {
                (0..self.workload.consumers).collect()
            }
            Pattern::PubSub => Vec::new(),
            // The ROUTER servers apply the request, and its client gets the reply.
            Pattern::DealerRouter if self.workload.consumers > 0 => vec![0, REPLIES],
            _ if self.workload.consumers > 0 => vec![0],
            _ => Vec::new(),
        }
    }

    /// What the application records when it calls `zmq_send` for a message: a send per frame,
    /// and which frames form one multipart message.
    pub fn send_ops(&self, frames: &Frames) -> Vec<Op> {
        let audience = self.audience(frames.topic);
        let key = self.workload.key(frames.parts[0].seq / self.frames.max(1));
        let mut ops: Vec<Op> = frames
            .parts
            .iter()
            .map(|msg| Op::Send {
                msg: *msg,
                scope: 0,
                audience: audience.clone(),
                key,
            })
            .collect();
        if frames.parts.len() > 1 {
            ops.push(Op::Multipart {
                parts: frames.parts.clone(),
            });
        }
        ops
    }

    /// What a consumer's application records when it received a message: a delivery per frame.
    /// Order is promised per connection: the scope is the receiving consumer (the producer is
    /// part of every ordering key) and the session the `connection` it came over (the producer's
    /// socket, for REP), so a reconnect starts a new order; each subscriber is its own group.
    pub fn deliver_ops(&self, consumer: u32, connection: u32, frames: &Frames) -> Vec<Op> {
        let group = match self.pattern {
            Pattern::PubSub => consumer,
            _ => 0,
        };
        frames
            .parts
            .iter()
            .map(|msg| Op::Deliver {
                msg: *msg,
                group,
                consumer,
                scope: consumer,
                position: None,
                session: u64::from(connection),
                redelivered: None,
            })
            .collect()
    }

    /// What a DEALER client's application records when it received the reply to one of its
    /// requests from `server`'s connection `connection`: a delivery per frame in the group
    /// [`REPLIES`]. Order is promised per connection, so the session names the server too.
    pub fn reply_ops(&self, client: u32, server: Id, connection: u32, frames: &Frames) -> Vec<Op> {
        let session = (usize::from(server) as u64) << 32 | u64::from(connection);
        frames
            .parts
            .iter()
            .map(|msg| Op::Deliver {
                msg: *msg,
                group: REPLIES,
                consumer: client,
                scope: client,
                position: None,
                session,
                redelivered: None,
            })
            .collect()
    }

    /// When the connecting side dials again: `ZMQ_RECONNECT_IVL` plus a random jitter below it
    /// (`stream_connecter_base_t::get_new_reconnect_ivl`: `reconnect_ivl + generate_random () %
    /// reconnect_ivl`, with `ZMQ_RECONNECT_IVL_MAX` 0), drawn by the driver from the run's
    /// seed.
    pub fn reconnect(&self) -> Range<Duration> {
        self.reconnect_ivl..self.reconnect_ivl * 2
    }

    /// Queues `item` in a pipe. With `ZMQ_CONFLATE=1` the pipe is libzmq's `ypipe_conflate_t`,
    /// a double buffer whose `write` replaces what was not yet read: returns what it replaced.
    pub fn enqueue<T>(&self, pipe: &mut VecDeque<T>, item: T) -> Vec<T> {
        let replaced = if self.conflate {
            pipe.drain(..).collect()
        } else {
            Vec::new()
        };
        pipe.push_back(item);
        replaced
    }

    /// The model's note for messages `ZMQ_CONFLATE` replaced in the pipe `where_`.
    pub fn conflated(replaced: &[Frames], where_: &str) -> Vec<Op> {
        replaced
            .iter()
            .flat_map(|f| f.parts.iter())
            .map(|msg| Op::Discard {
                msg: *msg,
                reason: format!("ZMQ_CONFLATE: a newer message replaced it in the pipe {where_} before it was read"),
            })
            .collect()
    }

    /// Is a pipe holding `len` messages at the high-water mark `hwm`?
    pub fn full(hwm: Option<u64>, len: u64) -> bool {
        hwm.is_some_and(|h| len >= h)
    }
}

/// Round robin and fair queueing: the first of `ready` (in id order) after `last`, wrapping
/// around.
fn next_after<K: Copy + Ord>(ready: &[K], last: Option<K>) -> Option<K> {
    ready
        .iter()
        .find(|id| last.is_none_or(|l| **id > l))
        .or(ready.first())
        .copied()
}

/// Fair queueing: the first non-empty pipe after `last`.
fn fair_queue<K: Copy + Ord, T>(pipes: &BTreeMap<K, VecDeque<T>>, last: Option<K>) -> Option<K> {
    let ready: Vec<K> = pipes
        .iter()
        .filter(|(_, q)| !q.is_empty())
        .map(|(id, _)| *id)
        .collect();
    next_after(&ready, last)
}

/// The connecting side dials every peer of `peers` whose end has not answered, with the
/// greeting `greet` makes for it, and tries again after `ZMQ_RECONNECT_IVL` and its jitter.
fn dial(
    settings: &Settings,
    peers: Vec<Id>,
    welcomed: &BTreeSet<Id>,
    greet: impl Fn(Id) -> Vec<ZmqMsg>,
    o: &mut ZmqOut,
) {
    let missing: Vec<Id> = peers
        .into_iter()
        .filter(|p| !welcomed.contains(p))
        .collect();
    for p in &missing {
        for msg in greet(*p) {
            o.send(*p, msg);
        }
    }
    if !missing.is_empty() {
        o.set_timer(ZmqTimer::Reconnect, settings.reconnect());
    }
}

/// Notes every frame of the messages `dropped` as discarded for `reason` (`Op::Discard`, the
/// model's note that explains a loss), if there are any.
fn discard<'a>(
    app: &mut AppLog,
    dropped: impl IntoIterator<Item = &'a Frames>,
    reason: &str,
    o: &mut ZmqOut,
) {
    let notes: Vec<Op> = dropped
        .into_iter()
        .flat_map(|f| f.parts.iter())
        .map(|msg| Op::Discard {
            msg: *msg,
            reason: reason.to_string(),
        })
        .collect();
    if !notes.is_empty() {
        record(app, notes, o);
    }
}

/// Appends the application's observations to its log and saves it.
fn record(app: &mut AppLog, ops: Vec<Op>, o: &mut ZmqOut) {
    for op in ops {
        app.push(op);
    }
    o.save(app.clone());
}

/// Every peer of a ZeroMQ deployment, as one actor type.
#[derive(Clone, Debug)]
pub enum ZmqActor {
    /// PUB or PUSH.
    Outgoing(Outgoing),
    /// SUB or PULL.
    Incoming(Incoming),
    Req(Requester),
    Rep(Replier),
    Router(Router),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZmqState {
    Outgoing(OutgoingState),
    Incoming(IncomingState),
    Req(RequesterState),
    Rep(ReplierState),
    Router(RouterState),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZmqTimer {
    /// The producer application's next `zmq_send`.
    Send,
    /// The consumer or server application finished handling a message.
    Process,
    /// `ZMQ_RECONNECT_IVL`: the connecting side dials again.
    Reconnect,
    /// The Lazy Pirate client's `REQUEST_TIMEOUT`.
    RequestTimeout,
    /// A consumer's late start (`--consumer-delay-ms`).
    Start,
    /// `heartbeat_ivl_timer_id` of the connection to a peer: send a PING.
    HeartbeatIvl(Id),
    /// `heartbeat_timeout_timer_id`: nothing heard from the peer since a PING.
    HeartbeatTimeout(Id),
    /// `heartbeat_ttl_timer_id`: nothing heard from the peer since its PING, for its TTL.
    HeartbeatTtl(Id),
}

/// What the applications draw per run (swarm testing).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ZmqRandom {
    Pace(u64),
    Processing(u64),
}

pub type ZmqOut = Out<ZmqActor>;

impl Actor for ZmqActor {
    type Msg = ZmqMsg;
    type Timer = ZmqTimer;
    type State = ZmqState;
    /// What a peer keeps across a restart: only its application's record of what it observed.
    /// ZeroMQ itself keeps nothing.
    type Storage = AppLog;
    type Random = ZmqRandom;

    fn on_start(&self, _id: Id, storage: &Option<AppLog>, o: &mut ZmqOut) -> ZmqState {
        let app = storage.clone().unwrap_or_default();
        match self {
            ZmqActor::Outgoing(a) => ZmqState::Outgoing(a.start(app, o)),
            ZmqActor::Incoming(a) => ZmqState::Incoming(a.start(app, o)),
            ZmqActor::Req(a) => ZmqState::Req(a.start(app, o)),
            ZmqActor::Rep(a) => ZmqState::Rep(a.start(app, o)),
            ZmqActor::Router(a) => ZmqState::Router(a.start(app, o)),
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ZmqState>, src: Id, msg: ZmqMsg, o: &mut ZmqOut) {
        match (self, state.to_mut()) {
            (ZmqActor::Outgoing(a), ZmqState::Outgoing(s)) => a.on_msg(s, src, msg, o),
            (ZmqActor::Incoming(a), ZmqState::Incoming(s)) => a.on_msg(s, src, msg, o),
            (ZmqActor::Req(a), ZmqState::Req(s)) => a.on_msg(s, src, msg, o),
            (ZmqActor::Rep(a), ZmqState::Rep(s)) => a.on_msg(s, src, msg, o),
            (ZmqActor::Router(a), ZmqState::Router(s)) => a.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<ZmqState>, timer: &ZmqTimer, o: &mut ZmqOut) {
        match (self, state.to_mut()) {
            (ZmqActor::Outgoing(a), ZmqState::Outgoing(s)) => a.on_timeout(s, timer, o),
            (ZmqActor::Incoming(a), ZmqState::Incoming(s)) => a.on_timeout(s, timer, o),
            (ZmqActor::Req(a), ZmqState::Req(s)) => a.on_timeout(s, timer, o),
            (ZmqActor::Rep(a), ZmqState::Rep(s)) => a.on_timeout(s, timer, o),
            (ZmqActor::Router(a), ZmqState::Router(s)) => a.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(&self, _id: Id, state: &mut Cow<ZmqState>, random: &ZmqRandom, o: &mut ZmqOut) {
        match (self, state.to_mut(), random) {
            (ZmqActor::Outgoing(a), ZmqState::Outgoing(s), ZmqRandom::Pace(ms)) => {
                a.on_pace(s, Duration::from_millis(*ms), o)
            }
            (ZmqActor::Req(a), ZmqState::Req(s), ZmqRandom::Pace(ms)) => {
                a.on_pace(s, Duration::from_millis(*ms), o)
            }
            (ZmqActor::Incoming(_), ZmqState::Incoming(s), ZmqRandom::Processing(ms)) => {
                s.processing = Duration::from_millis(*ms);
            }
            (ZmqActor::Rep(_), ZmqState::Rep(s), ZmqRandom::Processing(ms)) => {
                s.processing = Duration::from_millis(*ms);
            }
            (ZmqActor::Router(_), ZmqState::Router(s), ZmqRandom::Processing(ms)) => {
                s.processing = Duration::from_millis(*ms);
            }
            _ => {}
        }
    }
}

fn pace_choice(workload: &Workload, o: &mut ZmqOut) {
    o.choose_random(
        "pace",
        workload
            .paces(&PACES)
            .into_iter()
            .map(ZmqRandom::Pace)
            .collect(),
    );
}

fn processing_choice(workload: &Workload, o: &mut ZmqOut) {
    o.choose_random(
        "processing",
        workload
            .handling(&PROCESSING)
            .into_iter()
            .map(ZmqRandom::Processing)
            .collect(),
    );
}

/// A consumer or server application's start: it draws its handling time and, started for the
/// first time with `--consumer-delay-ms`, starts late, when [`ZmqTimer::Start`] fires. Returns
/// whether it starts late.
fn late_start(workload: &Workload, app: &AppLog, o: &mut ZmqOut) -> bool {
    processing_choice(workload, o);
    let late = app.is_empty() && workload.consumer_delay_ms > 0;
    if late {
        o.set_timer(ZmqTimer::Start, exact(workload.consumer_delay()));
    }
    late
}

/// ZeroMQ peers: producers and consumers of one socket pattern, with no broker between them.
#[derive(Clone, Debug)]
pub struct ZeroMq {
    pub settings: Settings,
}

impl System for ZeroMq {
    type Actor = ZmqActor;
    type Storage = AppLog;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "ZeroMQ (no broker): PUB/SUB, PUSH/PULL (either side binding), REQ/REP, DEALER/ROUTER sockets, per-peer pipes with high-water marks, reconnection, ZMTP heartbeats, multipart atomicity, the Lazy Pirate client"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "pub-sub",
                sets: &["pattern=pub-sub"],
                claim: "the article: ZeroMQ is neither at-least-once nor at-most-once (PUB out of the box: the slow joiner)",
            },
            Scenario {
                name: "pub-sub, syncpub",
                sets: &["pattern=pub-sub", "syncpub=true"],
                claim: "the zguide's synchronized publisher: the PUB waits for every subscription",
            },
            Scenario {
                name: "pub-sub, syncpub, ZMQ_SNDHWM=5, 64 KiB",
                sets: &[
                    "pattern=pub-sub",
                    "syncpub=true",
                    "ZMQ_SNDHWM=5",
                    "message.bytes=65536",
                ],
                claim: "PUB drops for a subscriber in the mute state (large messages: the kernels' buffers hold two)",
            },
            Scenario {
                name: "push-pull",
                sets: &["pattern=push-pull"],
                claim: "PUSH blocks at the high-water mark instead of dropping; queues die with the process",
            },
            Scenario {
                name: "push-pull, PUSH connects",
                sets: &["pattern=push-pull", "bind=pull"],
                claim: "a connecting PUSH keeps its pipe to a departed PULL and sends what waits there after the reconnect; what the PULL held dies with it",
            },
            Scenario {
                name: "push-pull, 3 frames",
                sets: &["pattern=push-pull", "frames=3"],
                claim: "multipart messages, three frames each (all parts or none)",
            },
            Scenario {
                name: "req-rep, plain client",
                sets: &["pattern=req-rep", "client=plain"],
                claim: "a plain REQ client: a lost request or reply is never retried",
            },
            Scenario {
                name: "req-rep, Lazy Pirate",
                sets: &["pattern=req-rep", "client=lazy-pirate"],
                claim: "the zguide's reliable client: retries until a reply arrives",
            },
            Scenario {
                name: "req-rep, Lazy Pirate + dedup",
                sets: &["pattern=req-rep", "client=lazy-pirate", "server.dedup=true"],
                claim: "Lazy Pirate with the server detecting repeated requests",
            },
            Scenario {
                name: "dealer-router",
                sets: &["pattern=dealer-router"],
                claim: "asynchronous DEALER clients, ROUTER servers: a reply to a departed or full pipe is dropped silently",
            },
            Scenario {
                name: "dealer-router, ZMQ_ROUTER_MANDATORY=1",
                sets: &["pattern=dealer-router", "ZMQ_ROUTER_MANDATORY=1"],
                claim: "the ROUTER's send blocks on a full pipe and fails with EHOSTUNREACH for a departed peer",
            },
        ]
    }

    fn keys() -> Vec<Key> {
        config::keys()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn build(config: &Config, workload: Workload) -> Self {
        ZeroMq {
            settings: Settings::from_config(config, workload),
        }
    }

    fn workload(&self) -> Workload {
        self.settings.workload
    }

    fn nodes(&self) -> Vec<Node<ZmqActor>> {
        let s = &self.settings;
        let mut nodes = Vec::new();
        for id in s.producer_ids() {
            let index = usize::from(id) as u32;
            let actor = match s.pattern {
                Pattern::ReqRep => ZmqActor::Req(Requester {
                    settings: s.clone(),
                    index,
                }),
                _ => ZmqActor::Outgoing(Outgoing {
                    settings: s.clone(),
                    index,
                }),
            };
            nodes.push(Node {
                name: s.name(id),
                role: Role::Producer,
                actor,
            });
        }
        for id in s.consumer_ids() {
            let index = s.consumer_index(id);
            let (role, actor) = match s.pattern {
                Pattern::ReqRep => (
                    Role::Server,
                    ZmqActor::Rep(Replier {
                        settings: s.clone(),
                        index,
                    }),
                ),
                Pattern::DealerRouter => (
                    Role::Server,
                    ZmqActor::Router(Router {
                        settings: s.clone(),
                        index,
                    }),
                ),
                _ => (
                    Role::Consumer,
                    ZmqActor::Incoming(Incoming {
                        settings: s.clone(),
                        index,
                    }),
                ),
            };
            nodes.push(Node {
                name: s.name(id),
                role,
                actor,
            });
        }
        nodes
    }

    fn app_log(storage: &AppLog) -> Option<&AppLog> {
        Some(storage)
    }

    fn is_leader(_state: &ZmqState) -> bool {
        false
    }

    fn show(state: &ZmqState, names: crate::Names<'_>) -> String {
        view::show(state, names)
    }

    fn reset(_peer: Id) -> Option<ZmqMsg> {
        Some(ZmqMsg::Reset)
    }

    fn describe(msg: &ZmqMsg) -> Option<String> {
        view::describe(msg)
    }

    fn label(msg: &ZmqMsg) -> String {
        msg.to_string()
    }

    fn notable(msg: &ZmqMsg) -> bool {
        view::notable(msg)
    }

    /// Per connection: one peer's messages arrive in order, different peers' are fair-queued.
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            per_consumer_session: true,
            ..OrderingPromise::default()
        }
    }

    fn fault_window(&self) -> Duration {
        // The producers' whole run at the slower paces: faults strike while messages flow.
        Duration::from_secs(30)
    }

    /// No broker: a message lives in a socket's pipes only, and a stalled plain REQ's lost
    /// request is lost, not waiting anywhere.
    fn stores_messages(&self) -> bool {
        false
    }

    fn drain(&self) -> Duration {
        let s = &self.settings;
        // A producer held up through the whole window still has all its messages to send at
        // the slowest pace, and a Lazy Pirate client may be working through its retries.
        let pace = Duration::from_millis(PACES[PACES.len() - 1]);
        pace * s.workload.messages + s.request_timeout * s.retries as u32 + Duration::from_secs(20)
    }

    fn workload_time(&self) -> Duration {
        self.settings.workload.duration(&PACES, &PROCESSING)
    }

    fn sends(&self) -> usize {
        let s = &self.settings;
        // A send per frame.
        s.workload.messages as usize * s.workload.producers as usize * s.frames as usize
    }
}
