//! RabbitMQ: a cluster of nodes serving one queue — classic, classic mirrored, quorum, or a
//! stream — behind an exchange, with publisher confirms, consumer acknowledgements and redelivery.
//!
//! # The mechanism
//!
//! ## Cluster
//!
//! `nodes` Erlang nodes watch each other through the distribution tick: a node that hears nothing
//! from a peer for `net_ticktime` considers it down, and a node whose distribution connection to a
//! peer closes (the peer's process died and its kernel closed the socket) considers it down at
//! once (`net_kernel` reports `nodedown` when the connection ends). When a partition splits the cluster, each
//! side sees the other down; `cluster_partition_handling` decides what happens:
//!
//! - `ignore` (default): nothing. Each side carries on, and after the network heals the cluster
//!   stays partitioned (Mnesia reports an inconsistent database): a mirrored queue promoted on
//!   both sides keeps two leaders.
//! - `pause_minority`: a node that sees no more than half the cluster pauses — it stops its
//!   application, closing client connections — and starts again once it sees a majority.
//! - `autoheal`: once the network heals, the losing side (fewer nodes; on a tie, the side
//!   without the first node) restarts, discarding what changed there.
//!
//! Each process handles `nodedown` on its own (`rabbit_node_monitor:handle_dead_rabbit`, the
//! queue's GM, the channel's monitors): the channel counts a dead mirror as having confirmed
//! (`rabbit_channel:handle_publishing_queue_down`; `noconnection` is a benign exit) and confirms
//! at once, while the node monitor, seeing a minority, calls `rabbit:stop()`, which takes
//! [`RABBIT_STOP`] with the connections still open. From 3.3.5 a channel asks
//! `rabbit_node_monitor:pause_minority_guard()` before it confirms and drops its confirms while
//! its node sees a minority (commits bf3f043 and 5d339c4, bugs 26225/26293); before, the
//! minority's leader confirms in that window what only it holds — the loss Jepsen found in 2014.
//!
//! ## Mnesia (`version` 3.3, 3.13)
//!
//! The queue's record is a row of the replicated `rabbit_queue` table. A write reaches the
//! replicas of running peers only (nothing crosses a partition; a paused node writes nothing);
//! concurrent writes in one connected cluster are ordered as Mnesia's locks would serialise
//! them ([`QueueRecord`]). A node that restarts — after a crash, a pause, an autoheal — waits for
//! its tables (`rabbit_table:wait_for_replicated`): it takes them whole from a running peer, or,
//! if it saw every peer go down before it stopped, from its own disk once no peer has them;
//! after `mnesia_table_loading_retry_limit` timeouts of `mnesia_table_loading_retry_timeout`
//! the boot fails (`timeout_waiting_for_tables`). Its old queue process is dead: it recovers the
//! queue from its store only if the record still names it leader and no live mirror can take
//! over; otherwise it comes back empty and the leader adds it as a new mirror. 4.x keeps its
//! metadata in Khepri, which is not modelled: a 4.x node boots at once from its disk.
//!
//! ## Queues
//!
//! One queue, declared on `n1`, with `queue.type`:
//!
//! - `classic`: lives on its home node only. A persistent message (`delivery_mode=2`) in a
//!   `durable` queue is written to the message store, whose fsyncs are batched; a publisher
//!   confirm for it waits for the fsync. Transient messages live in memory. A process crash keeps
//!   what was written (the page cache survives), a power loss keeps what was fsynced.
//! - `mirrored` (classic mirrored queues, "HA"): a leader and mirrors, `ha-mode=exactly` with
//!   `ha-params` replicas. The leader multicasts every publish and removal to its mirrors (GM) and
//!   confirms once every mirror it knows of has the message. When a mirror is seen down, the
//!   leader drops it — from then on confirming without it — and, to keep `ha-params` replicas,
//!   adds a new mirror on another node. A new mirror is unsynchronised: it only receives new
//!   messages, unless `ha-sync-mode=automatic` copies the whole queue to it; it becomes
//!   synchronised once everything older than it has left the queue. When the leader is seen
//!   down, the oldest mirror is promoted — any mirror with `ha-promote-on-failure=always`, only a
//!   synchronised one with `when-synced`; a leader that stops deliberately (a pause, an autoheal
//!   restart) follows `ha-promote-on-shutdown`. The new leader requeues every message it holds,
//!   the unacknowledged ones of its predecessor among them, flagged redelivered. A node that
//!   restarts rejoins as an empty mirror; a leader that meets a newer leader gives up its
//!   contents and becomes a mirror.
//! - `quorum`: a Raft group (Ra) over all nodes. Commands — enqueue, checkout (consume),
//!   settle (ack), return (requeue), discard, consumer down — are appended by the leader,
//!   replicated with `append_entries`, committed once a majority has them on disk (fsynced), and
//!   applied by every member to the same state machine (`rabbit_fifo`); only the leader acts on
//!   the effects (confirms, deliveries). A publish is confirmed after its enqueue is committed.
//!   A returned message goes back to the front of the queue; the returns the release counts
//!   (every one before 4.3; `basic.reject` and a consumer down, not `basic.nack`, from 4.3: see
//!   `quorum.rs`) raise its delivery count, past `delivery-limit` (20 by default) the message is
//!   dead-lettered or dropped. With `dead-letter-exchange=dlx` a dead letter goes to the
//!   dead-letter queue, which every consumer also reads (`rabbit_fifo_dlx`, see `quorum.rs`):
//!   that is how an application tells the broker's policy from a loss. Every message is persisted, whatever its
//!   `delivery_mode`; quorum queues are always durable.
//!
//! ## Exchanges and routing
//!
//! The publisher publishes to one exchange of `exchange.type` bound to the queue (see
//! [`routing`]); one message in ten carries a routing key (and headers) no binding matches. Such
//! a message goes to the `alternate-exchange` if there is one (a fanout bound to the queue), is
//! returned with `basic.return` when published `mandatory`, and is otherwise dropped.
//!
//! ## Clients
//!
//! A client connects to a node; AMQP heartbeats (`heartbeat` seconds) tell each side when the
//! other is gone. The publisher publishes `delivery_mode` 1 (transient) or 2 (persistent); with
//! `publisher.confirms` it counts a message sent when `basic.ack` arrives, and with
//! `publisher.retry` it publishes again any message whose confirm did not arrive within
//! `publisher.confirm_timeout` ms or whose connection died first — the documented source of
//! duplicates. Consumers (`--consumers N`, served round robin, or one at a time: see below)
//! consume with `auto_ack` (the message counts as delivered when sent) or acknowledge after
//! handling it, with at most
//! `prefetch` unacknowledged deliveries (`basic.qos`, 0 = unlimited). With `consumer.nack` the
//! application rejects the first delivery of every tenth message, with or without requeue.
//! When a channel's connection dies — a reset, or missed heartbeats — the queue requeues its
//! unacknowledged deliveries, which come back with `redelivered=true`.
//!
//! ## Transactions
//!
//! With `publisher.tx=true` the publisher's channel is transactional (`tx.select`; confirm mode
//! and tx mode exclude each other: `rabbit_channel` answers `tx.select` on a channel in confirm
//! mode with PRECONDITION_FAILED "cannot switch from confirm to tx mode", and the other way
//! round with "cannot switch from tx to confirm mode", so `publisher.confirms=true` with it is
//! refused, exit 2). The channel routes each `basic.publish` as it arrives but holds it
//! (`tx = {Msgs, Acks}`). The application ends a transaction every four messages: `tx.commit`,
//! and it blocks until `tx.commit-ok`; every third transaction of new messages it rolls back
//! instead (`tx.rollback`: the channel drops what it holds; those messages are given up). On
//! `tx.commit` the channel delivers the held publishes to the queue **one by one**
//! (`?QUEUE:fold(fun deliver_to_queues/2, …)`), each tracked like a confirm
//! (`DoConfirm = Tx =/= none orelse ConfirmEnabled`), and sends `tx.commit-ok` once the queue
//! has confirmed them all (`maybe_complete_tx/1`) — after the fsync for persistent messages in
//! a durable classic queue, after every mirror for a mirrored one, after the Raft commit for a
//! quorum queue. If the queue refused any (`record_rejects/2` sets `tx = failed`), the channel
//! closes with PRECONDITION_FAILED "partial tx completion" (`complete_tx/1`) and what the queue
//! took stays enqueued. A channel (a connection) that closes discards what it holds; a commit
//! in flight when it closes may have reached the queue, wholly or in part.
//!
//! What is atomic, then: nothing, not even in one queue (the documentation's "Semantics of tx"
//! table: "atomicity in single queue: no", "atomicity across multiple queues: no"; "closer to
//! providing a 'batching' feature than ACID"). What a commit does give is visibility on commit
//! (nothing held reaches a consumer before `tx.commit`, nothing rolled back or discarded ever)
//! and responsibility on `tx.commit-ok` (every message of it is in the queue, as confirmed). The
//! tears the model produces are the ones RabbitMQ does:
//!
//! - a queue that refuses part of a commit: `x-overflow=reject-publish` checks each delivery
//!   (`rabbit_amqqueue_process:maybe_deliver_or_enqueue/3`, `will_overflow/2`,
//!   `send_reject_publish/2`), so a classic queue takes the messages before it fills and refuses
//!   the rest — torn with no fault at all. (A quorum queue's `reject_publish` status is the
//!   channel's, set between commands, so one commit is refused whole or not at all.)
//! - a quorum queue's leader cut off mid-commit: each publish is its own `enqueue` command
//!   (`rabbit_fifo_client:enqueue/4`), and Raft commits a prefix of the log; the next leader has
//!   the entries a majority had, the rest are overwritten. The commit is never answered: in doubt.
//! - a mirrored queue: each publish is its own GM multicast; a promoted mirror has those that
//!   reached it.
//!
//! The application learns a commit's fate from `tx.commit-ok` (committed: each message
//! acknowledged), the channel error (in doubt) or its connection closing first (in doubt; an
//! open transaction not yet committing is aborted). Without `publisher.retry` it gives the
//! messages of a transaction that did not commit up; with it, it publishes them again in its
//! next transaction (on a new channel), so a torn commit ends whole and duplicated. A restarted
//! application counts an unfinished transaction in doubt. Each outcome is an
//! `Op::Transaction`, which the atomicity checker judges: torn when a group got part of a
//! committed or in-doubt transaction, aborted read when it got a rolled-back or discarded
//! message.
//!
//! ## Single active consumer
//!
//! With the queue argument `x-single-active-consumer=true` (3.8 on; `version=3.3` refuses it) a
//! queue delivers to one of its consumers at a time, whatever credit the others have; the others
//! wait, in the order they attached, and get `basic.consume-ok` but nothing else. When the active
//! consumer's channel goes down, its unacknowledged messages return to the front of the queue
//! and the first waiting consumer becomes active: it receives them again, flagged redelivered
//! (and, in a quorum queue, counted as a return), before anything newer. A consumer that
//! attaches while another is active joins the end of the line, and a waiting consumer whose
//! channel goes just leaves it.
//!
//! - Quorum queues (`rabbit_fifo`): a checkout while a consumer is active adds the new one to
//!   `waiting_consumers` (`update_consumer/8`, `add_waiting/2`; 4.x sorts the list by priority,
//!   then credit, then the consumer key, which is the checkout's Raft index: arrival order for the
//!   model's consumers, as 3.13's plain append is); a `down` of the active consumer's channel
//!   returns its checked-out messages (`cancel_consumer/5` → `maybe_return_all/6` →
//!   `return_all/6`, with `delivery_failed` in 4.3) and `activate_next_consumer/2` moves the head
//!   of the waiting list into `consumers` and the service queue; a waiting consumer's down only
//!   drops it (`handle_waiting_consumer_down/2`). The whole state is replicated: every member
//!   agrees on who is active. See `quorum.rs`.
//! - Classic queues (`rabbit_amqqueue_process`): `basic.consume` adds the consumer to the
//!   consumers' queue and makes it `active_consumer` if there is none; deliveries go to the
//!   active consumer only (`rabbit_queue_consumers:deliver/5`); when its channel goes down,
//!   `handle_ch_down/2` requeues the channel's unacknowledged messages and
//!   `new_single_active_consumer_after_channel_down/4` takes the head of the consumers' queue
//!   (`rabbit_queue_consumers:get_consumer/1`), the earliest attached of the rest.
//!
//! RabbitMQ's order promise then spans the queue's consumers: what one consumer left
//! unacknowledged comes back redelivered, and everything else reaches the next consumer in
//! publish order (`System::promise`). What can still break it is a consumer the broker has given
//! up on (its heartbeats missed: a partition, a pause) that goes on handling the deliveries it
//! had received while the next one already handles later messages. A takeover also redelivers
//! what the dead consumer had handled but not yet acknowledged, so at-most-once still breaks
//! under crashes.
//!
//! ## Streams
//!
//! `queue.type=stream` (3.9 on; `version=3.3` refuses it) declares a stream: an append-only
//! osiris log with a member on every node, which consumers read without removing anything.
//! See `stream.rs`.
//!
//! - **Writer and replicas.** One member is the writer (`osiris_writer`); the others are
//!   replicas (`osiris_replica`), to which the writer's replica readers send its chunks. A
//!   replica acknowledges its tail (`osiris_writer:ack/2`); the writer's committed offset is
//!   what a majority of the members holds (`agreed_commit/1`: the members' last chunk ids
//!   sorted, the `len div 2 + 1`th), and the replicas learn it (`committed_offset`). Readers
//!   read only up to the committed offset (`osiris_replica`'s `committed_chunk_id`). osiris
//!   never fsyncs: the log is page cache ("Data Safety when using Streams"), so a crash keeps
//!   it and a power loss takes it.
//! - **Publishing.** A publisher's channel lives on the node it connected to (any node: a
//!   stream's clients are not sent to its writer's node); its stream client
//!   (`rabbit_stream_queue:init/1`) has a writer id of its own and numbers its publishes, and
//!   `deliver0/4` writes each to the writer with both (`osiris:write/4`). The writer drops a
//!   write whose number is at or below the one its tracking holds for that writer id
//!   (`is_duplicate/4`) and confirms it once the chunk holding that number is committed
//!   (`handle_duplicates/3`); everything else it appends, and tells the channel when it is
//!   committed (`osiris_written`, `notify_writers/3`), which confirms the publish
//!   (`handle_event/3`) — publisher confirms come once a quorum of members has the chunk.
//!   On `stream_leader_change` the channel writes all it has not had confirmed to the new
//!   writer again, with the same writer id and numbers (`resend_all/1`), so what the old
//!   writer had replicated is not written twice.
//! - **Deduplication** spans one channel only: the writer id is the channel's. The stream
//!   protocol's named producers (`publisherReference` and publishing ids, deduplicated
//!   across connections) are not reachable through AMQP 0-9-1, and are not modelled: a
//!   message a publisher publishes again on a new channel (`publisher.retry`) is written
//!   again.
//! - **The stream coordinator** (`rabbit_stream_coordinator`, a Ra state machine) elects a
//!   writer when the writer's node is down: it stops every member in a new epoch, each answers
//!   with its tail (`member_stopped`), and once a quorum has (`is_quorum/2`) it starts the
//!   member with the latest tail — highest epoch, then highest offset (`select_leader/2`) — as
//!   the writer of the epoch and the rest as its replicas. A member stopped in an epoch takes
//!   nothing from an earlier epoch's writer, so a writer cut off in a minority commits
//!   nothing more; its uncommitted chunks are cut from its log when it follows the new
//!   writer (`osiris_log:init_acceptor/3`).
//! - **Consumers** attach to the member on their node (`consume/3`: "does not have a running
//!   replica on the local node" otherwise) with `x-stream-offset` — `first`, `last` (the last
//!   chunk), `next` (the default), or an offset, clamped to the log — and must set a prefetch
//!   (`basic.qos`) and acknowledge manually (a prefetch of 0 is refused with
//!   PRECONDITION_FAILED, `auto_ack` with NOT_IMPLEMENTED: both exit 2). Each delivery carries
//!   the record's offset (the `x-stream-offset` header) and takes one credit; an
//!   acknowledgement gives the credit back and removes nothing (`settle/5`: "all settle
//!   reasons will 'give credit'"). Every consumer reads every record, so each is its own
//!   group. AMQP 0-9-1 keeps no offsets for a consumer: the application attaches again after
//!   the last record it handled. With `--rewind N`, once caught up (no delivery for
//!   [`CAUGHT_UP`]) it cancels and consumes again on the same channel `N` records back — the
//!   replay the replay checker judges.
//! - **Order.** A stream is one log, read by every consumer in offset order; a channel's
//!   publishes are in it in the order published. The promise judged is each producer's
//!   acknowledged messages, per consumer session (`System::promise`).
//!
//! # What is simplified
//!
//! Streams: a chunk holds one record (osiris batches what arrives at once); retention
//! (`x-max-length-bytes`, `x-max-age`), filtering, super streams, single active consumer for
//! streams and timestamp offsets (`x-stream-offset` as a timestamp or an interval: the model's
//! nodes have no wall clock for chunk timestamps) are not modelled; the coordinator is not a
//! Ra cluster but the first node that sees a majority, its epochs made unique by that node's
//! name; a replica finds where its log diverges one chunk at a time where osiris compares
//! epoch offsets; members never change. `version` 3.3 promotes the oldest live mirror whatever its synchronisation; 4.2 and 4.3 have
//! no mirroring and refuse its keys. One queue, one exchange. A client talks to the node hosting
//! the queue's leader (any other
//! node answers with a hint, and the client dials again), so channel processes proxying to
//! queues on other nodes are not modelled. Delivery tags are the queue's message ids. The Raft
//! group has all nodes as members, with no membership changes, snapshots or pipelining limits.
//! A promoted mirror flags everything it holds redelivered (mirrors do not track deliveries).
//! Autoheal picks the winner by node count, not by client connections first. A single active
//! consumer has no priority (`x-priority`, with which 4.x lets a higher-priority consumer take
//! over once the active one has nothing unacknowledged), no consumer timeout and no
//! `noconnection` handling (a channel lives on the queue leader's node, so it never merely
//! disconnects); the quorum queue's dead-letter queue goes to the active consumer only. A
//! commit's deliveries to a classic queue happen in one step of the node, so a crash cannot fall
//! between two of them (RabbitMQ's channel casts them one by one to the queue process, a window
//! of microseconds): the model never tears a classic commit by a crash, which RabbitMQ can.
//! Transactional `basic.ack` and `basic.reject` (consumers in tx mode) are not modelled, and the
//! client does not wait for `tx.select-ok` or `tx.rollback-ok` (the connection is FIFO). TTLs,
//! lazy queues are not modelled; of queue length limits only
//! `x-max-length` with `x-overflow=reject-publish` is (a full queue answers a publish with
//! `basic.nack`: `rabbit_amqqueue_process:will_overflow/2`, `rabbit_fifo:evaluate_limit/4`). See
//! `docs/rabbitmq.md`.
//!
//! # Sources
//!
//! RabbitMQ documentation: "Clustering and Network Partitions", "Classic Queue Mirroring",
//! "Quorum Queues", "Queues" (Message Ordering: FIFO per publishing channel into a queue, to one
//! consumer; competing consumers and redeliveries reorder), "Consumer Acknowledgements and Publisher Confirms", "Reliability Guide",
//! "Persistence Configuration", "Detecting Dead TCP Connections with Heartbeats", "Alternate
//! Exchanges", "Dead Letter Exchanges", "AMQP 0-9-1 Model Explained"; the Ra library and
//! `rabbit_fifo` (rabbitmq-server), rabbitmq-server discussion #18226 (delivery count counted on
//! explicit returns only, 4.3); rabbitmq-server at `rabbitmq_v3_3_4`/`rabbitmq_v3_3_5` and
//! `v3.13.7`: `rabbit_table:wait_for_replicated` and `retry_timeout` (defaults 30000 ms, 10
//! retries, `deps/rabbit/Makefile`), `rabbit_node_monitor` (`handle_dead_rabbit`,
//! `await_cluster_recovery`, `pause_minority_guard`/`pause_partition_guard`),
//! `rabbit_mirror_queue_misc:remove_from_queue` and `on_node_up`,
//! `rabbit_mirror_queue_slave`/`_master`/`_coordinator` (GM, promotion,
//! `ha-promote-on-failure`/`-on-shutdown`), `rabbit_channel` (`handle_publishing_queue_down`,
//! `send_confirms`), `rabbit_misc:is_abnormal_exit`; commits bf3f043 and 5d339c4 (3.3.5);
//! single active consumer in rabbitmq-server at `v4.3.5` (commit 0dde27bfdd) and `v3.13.7`
//! (commit 52b38439e5): `deps/rabbit/src/rabbit_fifo.erl` (`update_consumer/8`, `add_waiting/2`,
//! `sort_waiting/1`, `cancel_consumer/5`, `handle_down/3`, `handle_waiting_consumer_down/2`,
//! `activate_next_consumer/2`, `return_all/6`), `rabbit_amqqueue_process.erl`
//! (`handle_call({basic_consume, …})`, `handle_ch_down/2`,
//! `new_single_active_consumer_after_channel_down/4`), `rabbit_queue_consumers.erl`
//! (`deliver/5`, `get_consumer/1`); the argument's first release, `v3.8.0` (commit 967ffac80a,
//! `rabbit_amqqueue:check_single_active_consumer_arg/2`; absent from `v3.7.28`); the
//! documentation's "Single Active Consumer" (in "Consumers");
//! transactions in rabbitmq-server at `v3.13.7` (commit 374c28ab66), `v4.3.5` (commit 0dde27bfdd)
//! and main (commit 5b09e556da): `deps/rabbit/src/rabbit_channel.erl` (`handle_method` for
//! `tx.select`, `tx.commit`, `tx.rollback`, `confirm.select` and `basic.publish`,
//! `deliver_to_queues/3`, `record_rejects/2`, `send_confirms_and_nacks/1` — with
//! `pause_partition_guard` in 3.13 — `maybe_complete_tx/1`, `complete_tx/1`, `new_tx/0`),
//! `rabbit_classic_queue:deliver/3`, `rabbit_amqqueue_process.erl`
//! (`maybe_deliver_or_enqueue/3`, `will_overflow/2`, `send_reject_publish/2`); the documentation's
//! "Broker Semantics" ("Semantics of tx") and the AMQP 0-9-1 reference's `tx` class;
//! streams in rabbitmq-server at `v4.3.5` (commit 0dde27bfdd) and `v3.13.7`:
//! `deps/rabbit/src/rabbit_stream_queue.erl` (`consume/3`, `parse_offset_arg/1`,
//! `begin_stream/7`, `deliver0/4`, `handle_event/3`, `settle/5`, `resend_all/1`, `init/1`,
//! `capabilities/0`), `rabbit_stream_coordinator.erl` (`update_stream0/3` for
//! `member_stopped`, `is_quorum/2`, `select_leader/2`, `evaluate_stream/3`); osiris at 1.10.3
//! (commit 8e0b786a4d; rabbitmq-server `v4.3.5` pins osiris v1.13.1): `src/osiris_writer.erl` (`handle_batch/2`, `agreed_commit/1`,
//! `is_duplicate/4`, `handle_duplicates/3`, `notify_writers/3`), `src/osiris_replica.erl`
//! (`committed_offset`, `osiris_writer:ack/2`), `src/osiris_log.erl` (`init_acceptor/3`,
//! `truncate_to/4`; no fsync); the documentation's "Streams" (Consuming, Data Safety, Leader
//! Election and Failure Handling, Feature Matrix);
//! Kyle Kingsbury, "Jepsen: RabbitMQ" (2014); the Raft paper (Ongaro and Ousterhout, 2014).

mod client;
mod config;
mod mirrored;
mod node;
pub mod protocol;
mod quorum;
pub mod routing;
mod stream;
mod view;

pub use client::{Consumer, ConsumerState, Publisher, PublisherState};
pub use config::{NackMode, PartitionHandling, Promote, QueueType, Settings, Version};
pub use mirrored::{ClassicState, QueueRecord};
pub use node::{Boot, Node as RabbitNode, NodeDisk, NodeState, TxChannel};
pub use protocol::{Command, Entry, RabbitMsg, Stored};
pub use quorum::{DeathReason, DeliveryCountRule, Fifo, QuorumState, RaftRole, Returned};
pub use stream::{
    Chunk, Epoch, Member, OffsetSpec, Reader, StreamChannel, StreamState, WriterId, STREAM_TICK,
};

use crate::{AppLog, Config, ConfigError, Disk, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::OrderingPromise;
use routing::{Headers, Routed};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::time::Duration;

pub const NAME: &str = "rabbitmq";

/// The matrix row that runs two consumers on a quorum queue with a single active consumer.
pub const SINGLE_ACTIVE_ROW: &str = "quorum, single active consumer, 2 consumers";

/// The matrix row that replays a stream by offset.
pub const STREAM_ROW: &str = "stream, replay by offset";

/// How long a stream consumer's application waits without a delivery before it takes itself
/// as caught up (an AMQP 0-9-1 consumer cannot ask whether it has read to the end).
pub const CAUGHT_UP: Duration = Duration::from_millis(1000);

/// Ra's leader heartbeat (append_entries with no entries) and its election timeout range.
pub const RAFT_HEARTBEAT: Duration = Duration::from_millis(500);
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(2500);
/// The message store's batched fsync (`rabbit_msg_store`'s sync interval).
pub const FSYNC_INTERVAL: Duration = Duration::from_millis(25);
/// How long a client waits before dialling the next node.
pub const RECONNECT: Duration = Duration::from_millis(1000);
/// Entries per append_entries.
pub const MAX_APPEND: usize = 32;
/// `mnesia_table_loading_retry_timeout` and `mnesia_table_loading_retry_limit` (the defaults in
/// `deps/rabbit/Makefile`): how long a booting node waits for its tables, and how often.
pub const TABLE_LOADING_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
pub const TABLE_LOADING_RETRY_LIMIT: u32 = 10;
/// How long `rabbit:stop()` takes once the node monitor decided to pause (the model's figure:
/// the applications stop one by one, the connections last). Jepsen saw seconds.
pub const RABBIT_STOP: Duration = Duration::from_secs(2);

/// The workload's routing: message `seq` carries this routing key and these headers.
pub fn routing_key(seq: u32) -> &'static str {
    if seq % 10 == 9 {
        "audit.login"
    } else {
        "orders.created.eu"
    }
}

pub fn headers(seq: u32) -> Headers {
    let kind = if seq % 10 == 9 { "audit" } else { "order" };
    vec![
        ("kind".to_string(), kind.to_string()),
        ("region".to_string(), "eu".to_string()),
    ]
}

impl Settings {
    /// Nodes are ids `0..nodes` (named n1, n2, …), then producers, then consumers.
    pub fn node_ids(&self) -> Vec<Id> {
        (0..self.nodes).map(Id::from).collect()
    }

    /// Where the message with sequence number `seq` goes.
    pub fn route(&self, seq: u32) -> Routed {
        self.exchange.route(routing_key(seq), &headers(seq))
    }

    /// The replicas a mirrored queue starts with: `n1` leads, the next nodes mirror it.
    pub fn initial_mirrors(&self) -> Vec<Id> {
        let replicas = match self.queue_type {
            QueueType::Mirrored => self.ha_replicas,
            _ => 1,
        };
        (1..replicas).map(Id::from).collect()
    }

    fn majority(&self) -> usize {
        self.nodes / 2 + 1
    }
}

/// Every actor of a RabbitMQ deployment, as one type for the drivers.
#[derive(Clone, Debug)]
pub enum RabbitActor {
    Node(RabbitNode),
    Publisher(Publisher),
    Consumer(Consumer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RabbitState {
    Node(Box<NodeState>),
    Publisher(PublisherState),
    Consumer(ConsumerState),
}

/// What survives a restart: a node's Raft log and message store, a client application's record.
pub type RabbitDisk = Disk<NodeDisk>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RabbitTimer {
    // Node.
    /// Send the distribution tick to every peer.
    Tick,
    /// `net_ticktime` passed without a word from this peer.
    PeerSilent(Id),
    /// Send AMQP heartbeats to the connected clients.
    ClientHeartbeat,
    /// A client missed its heartbeats.
    ClientSilent(Id),
    /// Ra: a follower heard no leader, or a candidate no majority.
    Election,
    /// Ra: the leader's append_entries round.
    RaftHeartbeat,
    /// The message store's batched fsync.
    Fsync,
    /// `mnesia:wait_for_tables` timed out (`mnesia_table_loading_retry_timeout`).
    Tables,
    /// `rabbit:stop()`, called by the node monitor to pause, has finished.
    Stopped,
    /// The stream's writer resends to its replicas; its coordinator checks on the writer.
    StreamTick,
    // Clients.
    /// Dial a node.
    Connect,
    /// Send an AMQP heartbeat to the node.
    Heartbeat,
    /// The node missed its heartbeats.
    ServerSilent,
    /// The publishing application's next send.
    Send,
    /// `publisher.confirm_timeout` for the message with this sequence number.
    ConfirmTimeout(u32),
    /// `publisher.retry`: publish again the message with this sequence number, nacked
    /// `NACK_BACKOFF` (500 ms) ago.
    Republish(u32),
    /// The consuming application finished handling a message.
    Process,
    /// A consumer's late start (`--consumer-delay-ms`).
    Start,
    /// A stream consumer had no delivery for [`CAUGHT_UP`]: it has read to the end.
    CaughtUp,
}

/// What the clients' applications draw per run: the publisher's pace (milliseconds between two
/// sends) and the consumer's handling time per message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RabbitRandom {
    Pace(u64),
    Processing(u64),
}

pub type RabbitOut = Out<RabbitActor>;

impl Actor for RabbitActor {
    type Msg = RabbitMsg;
    type Timer = RabbitTimer;
    type State = RabbitState;
    type Storage = RabbitDisk;
    type Random = RabbitRandom;

    fn on_start(&self, id: Id, storage: &Option<RabbitDisk>, o: &mut RabbitOut) -> RabbitState {
        match self {
            RabbitActor::Node(n) => {
                let disk = storage.as_ref().and_then(Disk::server).cloned();
                RabbitState::Node(Box::new(n.start(id, disk, o)))
            }
            RabbitActor::Publisher(p) => {
                RabbitState::Publisher(p.start(Disk::restored_app_log(storage), o))
            }
            RabbitActor::Consumer(c) => {
                RabbitState::Consumer(c.start(Disk::restored_app_log(storage), o))
            }
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<RabbitState>,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut()) {
            (RabbitActor::Node(n), RabbitState::Node(s)) => n.on_msg(id, s, src, msg, o),
            (RabbitActor::Publisher(p), RabbitState::Publisher(s)) => p.on_msg(s, src, msg, o),
            (RabbitActor::Consumer(c), RabbitState::Consumer(s)) => c.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<RabbitState>,
        timer: &RabbitTimer,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut()) {
            (RabbitActor::Node(n), RabbitState::Node(s)) => n.on_timeout(id, s, timer, o),
            (RabbitActor::Publisher(p), RabbitState::Publisher(s)) => p.on_timeout(s, timer, o),
            (RabbitActor::Consumer(c), RabbitState::Consumer(s)) => c.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(
        &self,
        _id: Id,
        state: &mut Cow<RabbitState>,
        random: &RabbitRandom,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut(), random) {
            (RabbitActor::Publisher(p), RabbitState::Publisher(s), RabbitRandom::Pace(ms)) => {
                p.on_pace(s, *ms, o)
            }
            (RabbitActor::Consumer(_), RabbitState::Consumer(s), RabbitRandom::Processing(ms)) => {
                s.processing_time = Duration::from_millis(*ms);
            }
            _ => {}
        }
    }
}

/// A RabbitMQ cluster with its publishers and the consumers of its queue.
#[derive(Clone, Debug)]
pub struct RabbitMq {
    pub settings: Settings,
}

impl System for RabbitMq {
    type Actor = RabbitActor;
    type Storage = RabbitDisk;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "RabbitMQ: classic, mirrored (HA) and quorum (Raft) queues, streams (osiris, replay by offset), partition handling, exchanges, publisher confirms, consumer acks and redelivery"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "defaults",
                sets: &[],
                claim: "RabbitMQ out of the box: a durable classic queue, persistent messages, confirms, manual acks",
            },
            Scenario {
                name: "auto_ack",
                sets: &["queue.type=quorum", "auto_ack=true"],
                claim: "automatic acknowledgement: a message counts as delivered when sent",
            },
            Scenario {
                name: "transient messages",
                sets: &["delivery_mode=1"],
                claim: "the article: RabbitMQ keeps messages in memory or on disk",
            },
            Scenario {
                name: "publisher retry",
                sets: &["queue.type=quorum", "publisher.retry=true"],
                claim: "republishing when a confirm is late: at-least-once at the price of duplicates",
            },
            Scenario {
                name: "mirrored, pause_minority (Jepsen 2014)",
                sets: &["version=3.13", "queue.type=mirrored", "nodes=5", "ha-mode=all", "ha-sync-mode=automatic", "cluster_partition_handling=pause_minority", "net_ticktime=15"],
                claim: "the article: mirrored queues, a master and slaves, the oldest slave promoted",
            },
            Scenario {
                name: "mirrored, pause_minority, 3.3 (Jepsen 2014)",
                sets: &["version=3.3", "queue.type=mirrored", "nodes=5", "ha-mode=all", "ha-sync-mode=automatic", "cluster_partition_handling=pause_minority", "net_ticktime=15"],
                claim: "the release Jepsen tested: no pause_minority_guard before 3.3.5",
            },
            Scenario {
                name: "mirrored, ignore",
                sets: &["version=3.13", "queue.type=mirrored", "ha-mode=exactly", "ha-params=2", "net_ticktime=15"],
                claim: "mirrored queues with the default partition handling",
            },
            Scenario {
                name: "mirrored, autoheal",
                sets: &["version=3.13", "queue.type=mirrored", "ha-mode=exactly", "ha-params=2", "cluster_partition_handling=autoheal", "net_ticktime=15"],
                claim: "autoheal: the losing side restarts",
            },
            Scenario {
                name: "quorum, safe",
                sets: &["queue.type=quorum", "publisher.confirms=true", "publisher.retry=true", "auto_ack=false", "delivery_mode=2"],
                claim: "the article: RabbitMQ is at-least-once (quorum queue, confirms, retry, manual acks)",
            },
            Scenario {
                name: "quorum, delivery-limit",
                sets: &["queue.type=quorum", "consumer.nack=requeue", "delivery-limit=1", "dead-letter-exchange=dlx"],
                claim: "poison-message handling dead-letters what exceeds the delivery limit",
            },
            Scenario {
                name: SINGLE_ACTIVE_ROW,
                sets: &["queue.type=quorum", "x-single-active-consumer=true"],
                claim: "the article: RabbitMQ is not ordered (a single active consumer keeps the order across the queue's consumers)",
            },
            Scenario {
                name: "quorum, transactions",
                sets: &["queue.type=quorum", "publisher.tx=true"],
                claim: "the article: RabbitMQ supports transactions, slower (tx.commit every 4 messages, every third rolled back; a commit is one enqueue per publish, atomic in no queue)",
            },
            Scenario {
                name: STREAM_ROW,
                sets: &["queue.type=stream", "prefetch=10", "x-stream-offset=first"],
                claim: "the article: RabbitMQ has no replay (a stream, 3.9 on: a consumer attaches again at an earlier x-stream-offset and reads the same records)",
            },
        ]
    }

    /// The single active consumer row needs a second consumer to take over.
    fn row_consumers(row: &Scenario) -> Option<u32> {
        (row.name == SINGLE_ACTIVE_ROW).then_some(2)
    }

    fn keys() -> Vec<Key> {
        config::keys()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn rewind() -> Option<&'static str> {
        Some("basic.cancel, then basic.consume with x-stream-offset set to the offset N records back (queue.type=stream)")
    }

    fn replay_row(config: &Config) -> Result<(), String> {
        if config.str("queue.type") == "stream" {
            Ok(())
        } else {
            Err(format!("RabbitMQ consumers rewind only on a stream (allowed: queue.type=stream); queue.type={} removes what was acknowledged", config.str("queue.type")))
        }
    }

    fn build(config: &Config, workload: Workload) -> Self {
        RabbitMq {
            settings: Settings::from_config(config, workload),
        }
    }

    fn workload(&self) -> Workload {
        self.settings.workload
    }

    fn nodes(&self) -> Vec<Node<RabbitActor>> {
        let s = &self.settings;
        let mut nodes = Vec::new();
        for n in 0..s.nodes {
            nodes.push(Node {
                name: format!("n{}", n + 1),
                role: Role::Server,
                actor: RabbitActor::Node(RabbitNode {
                    settings: s.clone(),
                }),
            });
        }
        for p in 0..s.workload.producers {
            nodes.push(Node {
                name: format!("p{p}"),
                role: Role::Producer,
                actor: RabbitActor::Publisher(Publisher {
                    settings: s.clone(),
                    index: p,
                }),
            });
        }
        for c in 0..s.workload.consumers {
            nodes.push(Node {
                name: format!("c{c}"),
                role: Role::Consumer,
                actor: RabbitActor::Consumer(Consumer {
                    settings: s.clone(),
                    index: c,
                }),
            });
        }
        nodes
    }

    fn app_log(storage: &RabbitDisk) -> Option<&AppLog> {
        storage.app_log()
    }

    fn elects_leaders(&self) -> bool {
        // A classic queue lives on one node; mirrored and quorum queues promote or elect, and a
        // stream's coordinator elects its writer.
        self.settings.queue_type != QueueType::Classic
    }

    fn is_leader(state: &RabbitState) -> bool {
        match state {
            RabbitState::Node(n) => n.leads(),
            _ => false,
        }
    }

    fn show(state: &RabbitState, names: crate::Names<'_>) -> String {
        view::show(state, names)
    }

    fn reset(_peer: Id) -> Option<RabbitMsg> {
        Some(RabbitMsg::Disconnected)
    }

    fn describe(msg: &RabbitMsg) -> Option<String> {
        view::describe(msg)
    }

    fn label(msg: &RabbitMsg) -> String {
        msg.to_string()
    }

    fn notable(msg: &RabbitMsg) -> bool {
        view::notable(msg)
    }

    /// Per publishing channel into the queue, to one consumer's channel, first deliveries only:
    /// competing consumers and redeliveries reorder ("Queues", Message Ordering).
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            excludes_redelivered: true,
            per_consumer_session: true,
            ..OrderingPromise::default()
        }
    }

    /// With `x-single-active-consumer` the queue has one consumer at a time ("Single Active
    /// Consumer": for when messages must be consumed in the order they arrive), so the promise
    /// spans the queue's consumers and their channels; redeliveries stay outside it.
    ///
    /// A stream is one log: its offsets are the order every consumer reads in, the same for
    /// all, and what a channel published is in it in the order published. The model judges a
    /// producer's acknowledged messages in it: a publish whose channel closed before its
    /// confirm may still reach the writer after the next channel's (each channel has its own
    /// writer id), which no promise covers.
    fn promise(&self) -> OrderingPromise {
        if self.settings.queue_type == QueueType::Stream {
            return OrderingPromise {
                acknowledged_only: true,
                ..Self::ordering()
            };
        }
        OrderingPromise {
            per_consumer_session: !self.settings.single_active,
            ..Self::ordering()
        }
    }

    fn fault_window(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn drain(&self) -> Duration {
        let s = &self.settings;
        // Long enough for a dead peer and a dead connection to be noticed, a leader to be
        // promoted or elected, a late confirm to time out, and the consumers to read the rest.
        (s.net_ticktime + s.heartbeat) * 2 + s.confirm_timeout + Duration::from_secs(60)
    }

    fn workload_time(&self) -> Duration {
        self.settings
            .workload
            .duration(&client::PACES, &client::HANDLING)
    }

    fn sends(&self) -> usize {
        let w = &self.settings.workload;
        w.messages as usize * w.producers as usize
    }
}
