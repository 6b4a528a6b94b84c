//! What the model's nodes and clients exchange: AMQP 0-9-1 methods between clients and nodes,
//! the Erlang distribution tick between nodes, Ra's Raft messages for quorum queues and the
//! guaranteed-multicast (GM) traffic of classic mirrored queues.

use super::mirrored::QueueRecord;
use super::quorum::{DeathReason, Returned};
use super::stream::{Chunk, Epoch, OffsetSpec, WriterId};
use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::fmt;

/// A Raft log index (1-based); a quorum queue's message id is the index of its enqueue.
pub type Index = u64;
pub type Term = u64;

/// What a quorum queue's replicated state machine (`rabbit_fifo`) applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Command {
    /// A new leader's first entry: commits everything before it (Raft §5.4.2).
    Noop,
    /// A publish. `(publisher, channel, seq)` identifies the enqueuer, so a repeated command is
    /// dropped (rabbit_fifo's enqueuer sequence numbers).
    Enqueue {
        publisher: Id,
        channel: u32,
        seq: u64,
        msg: MsgId,
    },
    /// `basic.consume`: a consumer attaches with its prefetch; replaces (and returns the
    /// messages of) an earlier attachment of the same client.
    Checkout {
        consumer: Id,
        channel: u32,
        prefetch: u32,
        auto_ack: bool,
    },
    /// `basic.ack`.
    Settle {
        consumer: Id,
        checkout: Index,
        id: Index,
    },
    /// `basic.nack`/`basic.reject` with `requeue=true`: back to the front of the queue (4.3
    /// tells the two apart: `requeue` and `modify` with `delivery_failed`).
    Return {
        consumer: Id,
        checkout: Index,
        id: Index,
        returned: Returned,
    },
    /// `basic.reject` with `requeue=false`: dead-lettered, or dropped.
    Discard {
        consumer: Id,
        checkout: Index,
        id: Index,
    },
    /// The consumer's channel is gone: its checked-out messages return to the queue.
    Down { consumer: Id, checkout: Index },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    pub term: Term,
    pub command: Command,
}

/// A message as a classic queue (and its mirrors) holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stored {
    pub msg: MsgId,
    /// The channel it was published on.
    pub channel: u32,
    pub persistent: bool,
    /// Delivered at least once (the queue index records deliveries): a later delivery carries
    /// `redelivered=true`.
    pub delivered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RabbitMsg {
    /// Not a wire message: the client library's (or node's) notice that the TCP connection to
    /// the sender was reset.
    Disconnected,

    // Client ↔ node: AMQP 0-9-1.
    /// `connection.open` on the node the client dialled (the handshake, condensed).
    Open,
    /// `connection.open-ok`: this node hosts the queue's leader and serves the channel.
    OpenOk,
    /// The queue's leader is elsewhere (or unknown, or this node is paused): the model's stand-in
    /// for the client reconnecting to where the queue leads; `leader` is a hint.
    NotLeader {
        leader: Option<Id>,
    },
    /// AMQP heartbeat frame.
    Heartbeat,
    /// `basic.publish` on channel `channel` (one per connection); `seq` is the publisher-confirm
    /// sequence number.
    Publish {
        channel: u32,
        seq: u64,
        msg: MsgId,
        persistent: bool,
        mandatory: bool,
    },
    /// Publisher confirm `basic.ack` for `seq` on channel `channel`.
    Confirm {
        channel: u32,
        seq: u64,
    },
    /// Publisher `basic.nack` for `seq` on channel `channel`: the queue refused the publish
    /// (`x-overflow=reject-publish` at `x-max-length`); the message was not enqueued.
    PublishNack {
        channel: u32,
        seq: u64,
    },
    /// `basic.return`: a `mandatory` publish routed to no queue.
    Return {
        channel: u32,
        seq: u64,
    },
    /// `tx.select`: the channel becomes transactional; its publishes are held by the channel
    /// until `tx.commit` (the client does not wait for `tx.select-ok`: the connection is FIFO).
    TxSelect {
        channel: u32,
    },
    /// `tx.commit`: the channel delivers the publishes it held to the queue.
    TxCommit {
        channel: u32,
    },
    /// `tx.commit-ok`: the queue confirmed every publish of the transaction.
    TxCommitOk {
        channel: u32,
    },
    /// `tx.rollback`: the channel discards the publishes it held (the client does not wait for
    /// `tx.rollback-ok`).
    TxRollback {
        channel: u32,
    },
    /// `channel.close` 406 PRECONDITION_FAILED "partial tx completion": the queue refused some
    /// of the commit's publishes after it had taken others (`rabbit_channel:complete_tx/1`).
    TxFailed {
        channel: u32,
    },
    /// `basic.qos` + `basic.consume`.
    Consume {
        channel: u32,
        prefetch: u32,
        auto_ack: bool,
    },
    ConsumeOk,
    /// `basic.deliver`; `tag` is the message's id in the queue (the model's delivery tag), and
    /// `delivery_count` the `x-delivery-count` header a quorum queue adds.
    Deliver {
        channel: u32,
        tag: u64,
        msg: MsgId,
        /// The channel the message was published on: not an AMQP field, but what the model's
        /// consumer records as the ordering scope (RabbitMQ promises order per publishing
        /// channel into a queue).
        published_on: u32,
        redelivered: bool,
        delivery_count: u32,
    },
    /// `basic.qos` + `basic.consume` on a stream, with the `x-stream-offset` consumer argument:
    /// replaces the channel's earlier consumer (the client's `basic.cancel`, condensed), and is
    /// answered with `basic.consume-ok` before the first delivery.
    StreamConsume {
        channel: u32,
        prefetch: u32,
        offset: OffsetSpec,
    },
    /// `basic.deliver` from a stream, with the record's offset (the `x-stream-offset` header
    /// `rabbit_stream_queue:entry_to_msg/6` adds).
    StreamDeliver {
        channel: u32,
        tag: u64,
        offset: u64,
        msg: MsgId,
    },
    /// `basic.deliver` from the dead-letter queue, with the `x-death` header's reason.
    DeliverDeadLetter {
        channel: u32,
        tag: u64,
        msg: MsgId,
        reason: DeathReason,
    },
    /// `basic.ack` from a consumer.
    Ack {
        tag: u64,
    },
    /// `basic.nack` from a consumer, or `basic.reject` when `reject`.
    Nack {
        tag: u64,
        requeue: bool,
        reject: bool,
    },

    // Node ↔ node.
    /// The Erlang distribution tick (`net_ticktime`): a node that hears nothing from a peer for
    /// a tick time considers it down.
    Tick,
    /// The distribution tick also says whether the sender considers the receiver down: two nodes
    /// that saw each other down were partitioned (Mnesia's "running partitioned network").
    TickDown,
    /// A node stops deliberately (a pause, an autoheal restart): its peers see it down at once,
    /// and a mirrored queue it led follows `ha-promote-on-shutdown`.
    Stopping,
    /// Mnesia on a booting node asks for the tables (`rabbit_table:wait_for_replicated`).
    WaitForTables,
    /// The tables, from a node that has them loaded: the queue's record, and the peers that
    /// node sees down.
    Tables {
        record: Option<QueueRecord>,
        down: Vec<Id>,
    },
    /// The node asked has no tables loaded either (booting, or paused).
    NoTables,
    /// The application started on the sender (`rabbit_node_monitor`'s `node_up`).
    NodeUp,
    /// Ra: `request_vote_rpc`.
    RequestVote {
        term: Term,
        last_index: Index,
        last_term: Term,
    },
    Vote {
        term: Term,
        granted: bool,
    },
    /// Ra: `append_entries_rpc`.
    AppendEntries {
        term: Term,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    /// `last_index`: the follower's last index matching the leader's (on success), or its log
    /// end (on failure), so the leader knows where to resume.
    AppendReply {
        term: Term,
        success: bool,
        last_index: Index,
    },
    /// GM: the mirrored queue's leader replicates a publish to its mirrors; `id` is the message's
    /// position in the queue.
    MirrorPublish {
        epoch: u32,
        id: u64,
        stored: Stored,
    },
    MirrorPublishOk {
        epoch: u32,
        id: u64,
    },
    /// GM: a message left the queue (acked, or auto-acked on delivery).
    MirrorDrop {
        epoch: u32,
        id: u64,
    },
    /// Eager synchronisation (`ha-sync-mode=automatic`, or a manual sync): the whole queue.
    MirrorSync {
        epoch: u32,
        messages: Vec<(u64, Stored)>,
    },
    /// `osiris:write/4`: a channel's stream client sends a publish to the stream's writer, with
    /// its writer id and its own sequence number (the writer's deduplication key).
    StreamWrite {
        writer: WriterId,
        seq: u64,
        msg: MsgId,
    },
    /// `osiris_written`: the writer tells a channel which of its sequence numbers are in
    /// committed chunks (written to a quorum of members).
    StreamWritten {
        writer: WriterId,
        seqs: Vec<u64>,
    },
    /// The writer's replica reader sends the replica chunks from offset `from` (after a chunk of
    /// epoch `prev`), with the writer's committed offset (`committed_offset`).
    StreamChunks {
        epoch: Epoch,
        from: u64,
        prev: Option<Epoch>,
        chunks: Vec<Chunk>,
        committed: u64,
    },
    /// `osiris_writer:ack/2`: the replica holds the writer's log up to `next` (on success), or
    /// its log does not match at `from` and the writer should resend from `next`.
    StreamAck {
        epoch: Epoch,
        success: bool,
        next: u64,
    },
    /// The stream coordinator stops a member for a new epoch (a writer is to be elected).
    StreamStop {
        epoch: Epoch,
    },
    /// `member_stopped`: the member stopped in `epoch`, with the tail of its log (the epoch and
    /// offset of its last chunk).
    StreamStopped {
        epoch: Epoch,
        tail: Option<(Epoch, u64)>,
    },
    /// The coordinator starts the members of a new epoch: `writer` writes, the others follow
    /// it (and the channels hear `stream_leader_change`).
    StreamStart {
        epoch: Epoch,
        writer: Id,
    },
    /// A member already promised a later epoch: the sender's epoch is over.
    StreamFenced {
        epoch: Epoch,
        writer: Option<Id>,
    },
    /// The queue's record, as the node that leads it now sees it (a Mnesia write): the leader,
    /// its mirrors oldest first, and which of them are synchronised.
    QueueRecord {
        epoch: u32,
        version: u32,
        leader: Id,
        mirrors: Vec<Id>,
        synced: Vec<Id>,
    },
}

/// A node's name: ids `0..nodes` are `n1..`.
pub fn n(id: Id) -> String {
    format!("n{}", usize::from(id) + 1)
}

fn ns(ids: &[Id]) -> String {
    let names: Vec<String> = ids.iter().map(|i| n(*i)).collect();
    format!("[{}]", names.join(","))
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Noop => write!(f, "noop"),
            Command::Enqueue { msg, seq, .. } => write!(f, "enqueue {msg} (seq {seq})"),
            Command::Checkout {
                consumer, prefetch, ..
            } => write!(
                f,
                "checkout by client {} prefetch={prefetch}",
                usize::from(*consumer)
            ),
            Command::Settle { id, .. } => write!(f, "settle {id}"),
            Command::Return { id, .. } => write!(f, "return {id}"),
            Command::Discard { id, .. } => write!(f, "discard {id}"),
            Command::Down { consumer, .. } => {
                write!(f, "consumer of client {} down", usize::from(*consumer))
            }
        }
    }
}

impl fmt::Display for RabbitMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RabbitMsg::*;
        match self {
            Disconnected => write!(f, "connection reset"),
            Open => write!(f, "connection.open"),
            OpenOk => write!(f, "connection.open-ok"),
            NotLeader { leader } => match leader {
                Some(l) => write!(f, "queue leader is {}", n(*l)),
                None => write!(f, "queue has no leader here"),
            },
            Heartbeat => write!(f, "heartbeat"),
            Publish { msg, seq, .. } => write!(f, "basic.publish {msg} seq={seq}"),
            Confirm { seq, .. } => write!(f, "basic.ack (confirm) seq={seq}"),
            PublishNack { seq, .. } => write!(f, "basic.nack (publisher) seq={seq}"),
            Return { seq, .. } => write!(f, "basic.return NO_ROUTE seq={seq}"),
            TxSelect { .. } => write!(f, "tx.select"),
            TxCommit { .. } => write!(f, "tx.commit"),
            TxCommitOk { .. } => write!(f, "tx.commit-ok"),
            TxRollback { .. } => write!(f, "tx.rollback"),
            TxFailed { .. } => write!(f, "channel.close 406 PRECONDITION_FAILED partial tx completion"),
            Consume {
                prefetch, auto_ack, ..
            } => {
                write!(f, "basic.consume prefetch={prefetch} no_ack={auto_ack}")
            }
            ConsumeOk => write!(f, "basic.consume-ok"),
            StreamConsume {
                prefetch, offset, ..
            } => write!(
                f,
                "basic.consume prefetch={prefetch} x-stream-offset={offset}"
            ),
            StreamDeliver {
                tag, offset, msg, ..
            } => write!(f, "basic.deliver {msg} tag={tag} x-stream-offset={offset}"),
            StreamWrite { writer, seq, msg } => {
                write!(f, "osiris write {msg} writer={writer} seq={seq}")
            }
            StreamWritten { writer, seqs } => {
                write!(f, "osiris_written writer={writer} seqs={seqs:?}")
            }
            StreamChunks {
                epoch,
                from,
                chunks,
                committed,
                ..
            } => {
                let cs: Vec<String> = chunks.iter().map(|c| c.msg.to_string()).collect();
                write!(
                    f,
                    "chunks epoch={epoch} from={from} committed={committed} [{}]",
                    cs.join(", ")
                )
            }
            StreamAck {
                epoch,
                success,
                next,
            } => write!(f, "replica ack epoch={epoch} success={success} next={next}"),
            StreamStop { epoch } => write!(f, "stream coordinator: stop member for epoch {epoch}"),
            StreamStopped { epoch, tail } => match tail {
                Some((e, o)) => write!(
                    f,
                    "stream coordinator: member stopped in epoch {epoch}, tail {o} of epoch {e}"
                ),
                None => write!(f, "stream coordinator: member stopped in epoch {epoch}, empty"),
            },
            StreamStart { epoch, writer } => write!(
                f,
                "stream coordinator: epoch {epoch}, writer {}",
                n(*writer)
            ),
            StreamFenced { epoch, .. } => write!(f, "stream member already in epoch {epoch}"),
            Deliver {
                tag,
                msg,
                redelivered,
                delivery_count,
                ..
            } => write!(
                f,
                "basic.deliver {msg} tag={tag} redelivered={redelivered} x-delivery-count={delivery_count}"
            ),
            DeliverDeadLetter {
                tag, msg, reason, ..
            } => write!(
                f,
                "basic.deliver {msg} tag={tag} from the dead-letter queue, x-death reason={reason}"
            ),
            Ack { tag } => write!(f, "basic.ack tag={tag}"),
            Nack {
                tag,
                requeue,
                reject,
            } => {
                let method = if *reject { "basic.reject" } else { "basic.nack" };
                write!(f, "{method} tag={tag} requeue={requeue}")
            }
            Tick => write!(f, "tick"),
            TickDown => write!(f, "tick (you were down)"),
            Stopping => write!(f, "stopping"),
            WaitForTables => write!(f, "mnesia: waiting for tables"),
            Tables { record, down } => match record {
                Some(r) => write!(
                    f,
                    "mnesia: tables (queue record {}.{} leader={} mirrors={} synchronised={}; down {})",
                    r.epoch,
                    r.version,
                    n(r.leader),
                    ns(&r.mirrors),
                    ns(&r.synced),
                    ns(down)
                ),
                None => write!(f, "mnesia: tables"),
            },
            NoTables => write!(f, "mnesia: no tables loaded here"),
            NodeUp => write!(f, "rabbit running"),
            RequestVote { term, last_index, .. } => {
                write!(f, "request_vote term={term} last_index={last_index}")
            }
            Vote { term, granted } => write!(f, "vote term={term} granted={granted}"),
            AppendEntries {
                term,
                prev_index,
                entries,
                commit,
                ..
            } => {
                let es: Vec<String> = entries.iter().map(|e| e.command.to_string()).collect();
                write!(
                    f,
                    "append_entries term={term} prev={prev_index} commit={commit} [{}]",
                    es.join(", ")
                )
            }
            AppendReply {
                term,
                success,
                last_index,
            } => write!(
                f,
                "append_entries_reply term={term} success={success} last_index={last_index}"
            ),
            MirrorPublish { id, stored, .. } => write!(f, "gm: publish {} as {id}", stored.msg),
            MirrorPublishOk { id, .. } => write!(f, "gm: have {id}"),
            MirrorDrop { id, .. } => write!(f, "gm: drop {id}"),
            MirrorSync { messages, .. } => write!(f, "gm: sync {} messages", messages.len()),
            QueueRecord {
                epoch,
                version,
                leader,
                mirrors,
                synced,
            } => write!(
                f,
                "queue record epoch={epoch}.{version} leader={} mirrors={} synchronised={}",
                n(*leader),
                ns(mirrors),
                ns(synced)
            ),
        }
    }
}
