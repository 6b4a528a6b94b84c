//! A stream (`queue.type=stream`, RabbitMQ 3.9 on): an osiris log with a writer and replicas
//! on every node, its stream coordinator's elections, the channels that publish to it and the
//! consumers that read it from an offset. See the module doc of `rabbitmq` ("Streams") for the
//! mechanism and its sources.

use super::node::{Node, NodeState};
use super::protocol::{n, RabbitMsg};
use super::{RabbitOut, RabbitTimer, MAX_APPEND};
use crate::timers::retry;
use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The writer's replica readers resend what a replica has not acknowledged, and carry the
/// committed offset, this often; members count their silence in these ticks.
pub const STREAM_TICK: Duration = Duration::from_millis(500);
/// Ticks a coordinator waits for an election to end before it runs another, and ticks a
/// restarted member that has heard of no writer waits before it asks for one.
const ELECTION_TICKS: u32 = 4;

/// A stream epoch: the coordinator's count of writers. The model's coordinator is no Raft
/// cluster, so two of its nodes may run elections at once: an epoch also names the node that
/// ran its election, which keeps two writers from ever sharing one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch {
    pub number: u64,
    pub coordinator: usize,
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.number, n(Id::from(self.coordinator)))
    }
}

/// A channel's stream client: the node its channel lives on, the client, and the channel
/// (`rabbit_stream_queue:init/1` makes a fresh writer id for every channel's queue client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriterId {
    pub node: Id,
    pub client: Id,
    pub channel: u32,
}

impl fmt::Display for WriterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/c{}/ch{}",
            n(self.node),
            usize::from(self.client),
            self.channel
        )
    }
}

/// One osiris chunk. osiris batches what its writer takes in at once into one chunk; the
/// model's chunks hold one record, so a chunk id is the record's offset. The writer id and
/// sequence number are the chunk's tracking data (`osiris_tracking`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chunk {
    pub epoch: Epoch,
    pub msg: MsgId,
    pub writer: WriterId,
    pub seq: u64,
}

/// `x-stream-offset`: where a consumer attaches (`rabbit_stream_queue:parse_offset_arg/1`;
/// no argument is `next`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetSpec {
    First,
    Last,
    Next,
    Offset(u64),
}

impl fmt::Display for OffsetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffsetSpec::First => write!(f, "first"),
            OffsetSpec::Last => write!(f, "last"),
            OffsetSpec::Next => write!(f, "next"),
            OffsetSpec::Offset(o) => write!(f, "{o}"),
        }
    }
}

/// What the writer knows of a replica: where to send from, and how much of the log it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Progress {
    pub next: u64,
    pub acked: u64,
}

/// This node's stream member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Member {
    /// `osiris_writer`: appends, replicates, commits.
    Writer { replicas: BTreeMap<Id, Progress> },
    /// `osiris_replica` following `writer`.
    Replica { writer: Id },
    /// Not started in the current epoch: restarted, or stopped by the coordinator.
    #[default]
    Stopped,
}

/// A channel publishing to the stream (`#stream_client{}`): its sequence numbers and the
/// publishes not yet written (`correlation`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StreamChannel {
    pub channel: u32,
    pub next_seq: u64,
    /// osiris sequence number → the publisher-confirm sequence number and the message.
    pub pending: BTreeMap<u64, (u64, MsgId)>,
}

/// A consumer reading the local member (`#stream{}`): its next offset and its credit, which
/// each delivery takes and each acknowledgement gives back (`rabbit_stream_queue:settle/5`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reader {
    pub channel: u32,
    pub next: u64,
    pub credit: u32,
    pub prefetch: u32,
    /// Delivery tags on the channel so far, and the last one an earlier consumer had: its
    /// acknowledgements give this consumer no credit.
    pub tag: u64,
    pub first_tag: u64,
}

/// An election the coordinator runs on this node: the members stopped in its epoch, with their
/// tails.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Election {
    pub epoch: Epoch,
    pub tails: BTreeMap<Id, Option<(Epoch, u64)>>,
    pub ticks: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamState {
    pub member: Member,
    /// Chunks below this offset are committed (`committed_chunk_id` + 1): what readers read.
    pub committed: u64,
    /// The writer this node's channels send to (`stream_leader_change`).
    pub writer: Option<Id>,
    /// Ticks without a word from the writer.
    pub unheard: u32,
    /// The highest epoch heard of.
    pub highest: Epoch,
    pub election: Option<Election>,
    /// Writes the writer found duplicates: (chunk holding the writer id's tracked sequence
    /// number, writer id, sequence number), confirmed once that chunk is committed.
    pub duplicates: Vec<(u64, WriterId, u64)>,
    pub channels: BTreeMap<Id, StreamChannel>,
    pub readers: BTreeMap<Id, Reader>,
}

impl StreamState {
    pub fn is_writer(&self) -> bool {
        matches!(self.member, Member::Writer { .. })
    }
}

impl Node {
    /// The member starts. On the cluster's first start the stream is declared on `n1`, whose
    /// member writes epoch 1 (`queue_leader_locator=client-local`) with a replica on every node
    /// (the documentation: "a replica on each configured RabbitMQ node"). A restarted member
    /// waits stopped until a writer's chunks or the coordinator start it again.
    pub(super) fn stream_start(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        s.stream = StreamState {
            highest: s.disk.stream_epoch,
            ..StreamState::default()
        };
        if s.disk.stream_epoch == Epoch::default() {
            let epoch = Epoch {
                number: 1,
                coordinator: 0,
            };
            self.stream_begin(me, s, epoch, Id::from(0), o);
        }
        o.set_timer(RabbitTimer::StreamTick, retry(STREAM_TICK));
    }

    /// Sends a stream message to a member, or handles it here when the member is this node.
    fn to_member(&self, me: Id, s: &mut NodeState, to: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        if to == me {
            self.stream_peer_msg(me, s, me, msg, o);
        } else {
            o.send(to, msg);
        }
    }

    /// The coordinator started this member in `epoch`, as the writer or following it.
    fn stream_begin(&self, me: Id, s: &mut NodeState, epoch: Epoch, writer: Id, o: &mut RabbitOut) {
        if epoch < s.disk.stream_epoch {
            return;
        }
        s.disk.stream_epoch = epoch;
        s.stream.highest = s.stream.highest.max(epoch);
        if s.stream.election.as_ref().is_some_and(|e| e.epoch <= epoch) {
            s.stream.election = None;
        }
        s.stream.duplicates.clear();
        self.save(s, o);
        if writer == me {
            let len = s.disk.stream_log.len() as u64;
            let replicas = self
                .settings
                .node_ids()
                .into_iter()
                .filter(|p| *p != me)
                .map(|p| (p, Progress { next: len, acked: 0 }))
                .collect();
            s.stream.member = Member::Writer { replicas };
            for p in self.settings.node_ids().into_iter().filter(|p| *p != me) {
                self.stream_send(s, p, o);
            }
            self.stream_commit(me, s, o);
        } else {
            s.stream.member = Member::Replica { writer };
        }
        self.stream_leader_change(me, s, writer, o);
    }

    /// `stream_leader_change`: every channel here sends what it has not had written to the new
    /// writer again, with the same writer id and sequence numbers (`resend_all/1`), which the
    /// writer's deduplication drops where it already has them.
    fn stream_leader_change(&self, me: Id, s: &mut NodeState, writer: Id, o: &mut RabbitOut) {
        s.stream.unheard = 0;
        if s.stream.writer == Some(writer) {
            return;
        }
        s.stream.writer = Some(writer);
        let writes: Vec<RabbitMsg> = s
            .stream
            .channels
            .iter()
            .flat_map(|(client, ch)| {
                ch.pending
                    .iter()
                    .map(move |(seq, (_, msg))| RabbitMsg::StreamWrite {
                        writer: WriterId {
                            node: me,
                            client: *client,
                            channel: ch.channel,
                        },
                        seq: *seq,
                        msg: *msg,
                    })
            })
            .collect();
        for w in writes {
            self.to_member(me, s, writer, w, o);
        }
    }

    /// The writer's replica reader: chunks from where the replica is thought to be.
    fn stream_send(&self, s: &mut NodeState, to: Id, o: &mut RabbitOut) {
        let log = &s.disk.stream_log;
        let len = log.len() as u64;
        let Member::Writer { replicas } = &mut s.stream.member else {
            return;
        };
        let Some(p) = replicas.get_mut(&to) else {
            return;
        };
        let from = p.next.min(len);
        let until = (from + MAX_APPEND as u64).min(len);
        p.next = until;
        let chunks = (from..until).map(|i| log[i as usize].clone()).collect();
        let prev = from.checked_sub(1).map(|i| log[i as usize].epoch);
        o.send(
            to,
            RabbitMsg::StreamChunks {
                epoch: s.disk.stream_epoch,
                from,
                prev,
                chunks,
                committed: s.stream.committed,
            },
        );
    }

    /// `osiris_writer:handle_batch/2`: the committed offset is what a majority of the members
    /// holds (`agreed_commit/1`: the tails sorted, the `len div 2 + 1`th); the writers whose
    /// writes it now covers hear `osiris_written`, and so do the duplicates' (`notify_writers`,
    /// `handle_duplicates`).
    fn stream_commit(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let len = s.disk.stream_log.len() as u64;
        let Member::Writer { replicas } = &s.stream.member else {
            return;
        };
        let mut held: Vec<u64> = replicas.values().map(|p| p.acked.min(len)).collect();
        held.push(len);
        held.sort_unstable_by(|a, b| b.cmp(a));
        let agreed = held[held.len() / 2];
        let before = s.stream.committed;
        if agreed <= before {
            return;
        }
        s.stream.committed = agreed;
        let epoch = s.disk.stream_epoch;
        let mut written: BTreeMap<WriterId, Vec<u64>> = BTreeMap::new();
        // Only this writer's own writes are pending with it: chunks of earlier epochs are
        // confirmed when their channels send them again (duplicates).
        for i in before..agreed {
            let c = &s.disk.stream_log[i as usize];
            if c.epoch == epoch {
                written.entry(c.writer).or_default().push(c.seq);
            }
        }
        self.stream_written(me, s, written, o);
        self.stream_serve(s, o);
    }

    /// `osiris_written` to the channels: these writes, and the duplicates whose chunk is
    /// committed now.
    fn stream_written(
        &self,
        me: Id,
        s: &mut NodeState,
        mut written: BTreeMap<WriterId, Vec<u64>>,
        o: &mut RabbitOut,
    ) {
        let committed = s.stream.committed;
        let (done, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut s.stream.duplicates)
            .into_iter()
            .partition(|(chunk, ..)| *chunk < committed);
        s.stream.duplicates = rest;
        for (_, w, seq) in done {
            written.entry(w).or_default().push(seq);
        }
        for (writer, seqs) in written {
            let to = writer.node;
            self.to_member(me, s, to, RabbitMsg::StreamWritten { writer, seqs }, o);
        }
    }

    /// `osiris_writer`'s write: a duplicate (a sequence number at or below the one the writer
    /// id's tracking holds, `is_duplicate/4`) is not written again; anything else is appended
    /// as a chunk of this epoch and replicated. A member that is not the writer drops it, as a
    /// message to a dead writer process is dropped.
    fn stream_write(
        &self,
        me: Id,
        s: &mut NodeState,
        writer: WriterId,
        seq: u64,
        msg: MsgId,
        o: &mut RabbitOut,
    ) {
        if !s.stream.is_writer() {
            return;
        }
        let log = &s.disk.stream_log;
        let tracked = (0..log.len())
            .rev()
            .find(|i| log[*i].writer == writer)
            .map(|i| (i as u64, log[i].seq));
        if let Some((chunk, _)) = tracked.filter(|(_, last)| seq <= *last) {
            s.stream.duplicates.push((chunk, writer, seq));
            self.stream_written(me, s, BTreeMap::new(), o);
            return;
        }
        let chunk = Chunk {
            epoch: s.disk.stream_epoch,
            msg,
            writer,
            seq,
        };
        s.disk.stream_log.push_back_mut(chunk);
        self.save(s, o);
        for p in self.settings.node_ids().into_iter().filter(|p| *p != me) {
            self.stream_send(s, p, o);
        }
        self.stream_commit(me, s, o);
    }

    /// Deliveries to every consumer reading this member, up to the committed offset.
    fn stream_serve(&self, s: &mut NodeState, o: &mut RabbitOut) {
        let readable = s.stream.committed.min(s.disk.stream_log.len() as u64);
        for (client, r) in s.stream.readers.iter_mut() {
            if !s.clients.contains(client) {
                continue;
            }
            while r.credit > 0 && r.next < readable {
                r.tag += 1;
                o.send(
                    *client,
                    RabbitMsg::StreamDeliver {
                        channel: r.channel,
                        tag: r.tag,
                        offset: r.next,
                        msg: s.disk.stream_log[r.next as usize].msg,
                    },
                );
                r.next += 1;
                r.credit -= 1;
            }
        }
    }

    /// The member's epoch is over: a later one was started, or the coordinator stopped it.
    fn stream_stop(&self, s: &mut NodeState) {
        s.stream.member = Member::Stopped;
        s.stream.writer = None;
        s.stream.duplicates.clear();
    }

    fn stream_tail(&self, s: &NodeState) -> Option<(Epoch, u64)> {
        let log = &s.disk.stream_log;
        log.last().map(|c| (c.epoch, log.len() as u64 - 1))
    }

    /// Traffic between stream members and the coordinator.
    pub(super) fn stream_peer_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        match msg {
            RabbitMsg::StreamWrite { writer, seq, msg } => {
                self.stream_write(me, s, writer, seq, msg, o)
            }
            RabbitMsg::StreamWritten { writer, seqs } => {
                let Some(ch) = s
                    .stream
                    .channels
                    .get_mut(&writer.client)
                    .filter(|ch| ch.channel == writer.channel)
                else {
                    return;
                };
                let confirms: Vec<u64> = seqs
                    .iter()
                    .filter_map(|seq| ch.pending.remove(seq).map(|(amqp, _)| amqp))
                    .collect();
                for seq in confirms {
                    self.confirm(s, writer.client, (writer.channel, seq), o);
                }
            }
            chunks @ RabbitMsg::StreamChunks { .. } => self.stream_replicate(me, s, src, chunks, o),
            RabbitMsg::StreamAck {
                epoch,
                success,
                next,
            } => {
                if epoch != s.disk.stream_epoch {
                    return;
                }
                let Member::Writer { replicas } = &mut s.stream.member else {
                    return;
                };
                let Some(p) = replicas.get_mut(&src) else {
                    return;
                };
                if success {
                    p.acked = p.acked.max(next);
                    p.next = p.next.max(next);
                    self.stream_commit(me, s, o);
                } else {
                    p.next = next;
                    p.acked = p.acked.min(next);
                }
                self.stream_send_if_behind(s, src, o);
            }
            RabbitMsg::StreamStop { epoch } => {
                let promised = s.disk.stream_epoch;
                if epoch > promised {
                    s.disk.stream_epoch = epoch;
                    s.stream.highest = s.stream.highest.max(epoch);
                    self.save(s, o);
                    self.stream_stop(s);
                } else if epoch < promised || s.stream.member != Member::Stopped {
                    let writer = s.stream.writer;
                    let fenced = RabbitMsg::StreamFenced {
                        epoch: promised,
                        writer,
                    };
                    self.to_member(me, s, src, fenced, o);
                    return;
                }
                let tail = self.stream_tail(s);
                self.to_member(me, s, src, RabbitMsg::StreamStopped { epoch, tail }, o);
            }
            RabbitMsg::StreamStopped { epoch, tail } => {
                let Some(e) = s.stream.election.as_mut().filter(|e| e.epoch == epoch) else {
                    return;
                };
                e.tails.insert(src, tail);
                if e.tails.len() < self.settings.nodes / 2 + 1 {
                    return;
                }
                // `select_leader/2`: the member with the latest tail — the highest epoch, then
                // the highest offset (ties: the first node; RabbitMQ draws among them).
                let mut writer = None;
                for (node, tail) in &e.tails {
                    if writer.is_none_or(|(_, best)| *tail > best) {
                        writer = Some((*node, *tail));
                    }
                }
                let (writer, _) = writer.expect("a quorum is not empty");
                s.stream.election = None;
                for p in self.settings.node_ids() {
                    self.to_member(me, s, p, RabbitMsg::StreamStart { epoch, writer }, o);
                }
            }
            RabbitMsg::StreamStart { epoch, writer } => self.stream_begin(me, s, epoch, writer, o),
            RabbitMsg::StreamFenced { epoch, writer } => {
                s.stream.highest = s.stream.highest.max(epoch);
                if s.stream.election.as_ref().is_some_and(|e| e.epoch <= epoch) {
                    s.stream.election = None;
                }
                if epoch > s.disk.stream_epoch && s.stream.is_writer() {
                    self.stream_stop(s);
                    if let Some(w) = writer.filter(|w| *w != me) {
                        self.stream_leader_change(me, s, w, o);
                    }
                }
            }
            _ => {}
        }
    }

    fn stream_send_if_behind(&self, s: &mut NodeState, to: Id, o: &mut RabbitOut) {
        let len = s.disk.stream_log.len() as u64;
        if let Member::Writer { replicas } = &s.stream.member {
            if replicas.get(&to).is_some_and(|p| p.next < len) {
                self.stream_send(s, to, o);
            }
        }
    }

    /// `osiris_replica`: takes the chunks of a writer of its epoch or a later one (a later one
    /// starts it in that epoch), cuts its log back where it diverges from the writer's
    /// (`osiris_log:init_acceptor/3`'s truncation to the last common epoch offset, found here one
    /// chunk at a time), appends, and acknowledges its tail; readers here may read up to the
    /// writer's committed offset.
    fn stream_replicate(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        let RabbitMsg::StreamChunks {
            epoch,
            from,
            prev,
            chunks,
            committed,
        } = msg
        else {
            return;
        };
        let promised = s.disk.stream_epoch;
        if epoch < promised {
            let fenced = RabbitMsg::StreamFenced {
                epoch: promised,
                writer: s.stream.writer,
            };
            o.send(src, fenced);
            return;
        }
        if epoch > promised || s.stream.member != (Member::Replica { writer: src }) {
            s.disk.stream_epoch = epoch;
            s.stream.highest = s.stream.highest.max(epoch);
            if s.stream.is_writer() {
                self.stream_stop(s);
            }
            s.stream.member = Member::Replica { writer: src };
            self.save(s, o);
            self.stream_leader_change(me, s, src, o);
        }
        s.stream.unheard = 0;
        let len = s.disk.stream_log.len() as u64;
        let matches = from <= len
            && from
                .checked_sub(1)
                .is_none_or(|i| Some(s.disk.stream_log[i as usize].epoch) == prev);
        if !matches {
            let next = from.saturating_sub(1).min(len);
            o.send(
                src,
                RabbitMsg::StreamAck {
                    epoch,
                    success: false,
                    next,
                },
            );
            return;
        }
        let mut changed = false;
        let log = &mut s.disk.stream_log;
        for (i, c) in (from..).zip(chunks.iter()) {
            let at = i as usize;
            if at < log.len() && log[at].epoch == c.epoch {
                continue;
            }
            while log.len() > at {
                log.drop_last_mut();
            }
            log.push_back_mut(c.clone());
            changed = true;
        }
        let matched = from + chunks.len() as u64;
        let readable = committed.min(matched);
        if readable > s.stream.committed {
            s.stream.committed = readable;
        }
        if changed {
            self.save(s, o);
        }
        o.send(
            src,
            RabbitMsg::StreamAck {
                epoch,
                success: true,
                next: matched,
            },
        );
        self.stream_serve(s, o);
    }

    /// The stream tick: the writer's replica readers resend from what each replica holds (and
    /// carry the committed offset); the coordinator checks on the writer.
    pub(super) fn stream_timeout(
        &self,
        me: Id,
        s: &mut NodeState,
        timer: &RabbitTimer,
        o: &mut RabbitOut,
    ) {
        if *timer != RabbitTimer::StreamTick {
            return;
        }
        if let Member::Writer { replicas } = &mut s.stream.member {
            for p in replicas.values_mut() {
                p.next = p.acked;
            }
            for p in self.settings.node_ids().into_iter().filter(|p| *p != me) {
                self.stream_send(s, p, o);
            }
        } else {
            s.stream.unheard += 1;
        }
        if let Some(e) = &mut s.stream.election {
            e.ticks += 1;
        }
        self.stream_maybe_elect(me, s, o);
        o.set_timer(RabbitTimer::StreamTick, retry(STREAM_TICK));
    }

    /// A peer is down: the coordinator may have a writer to replace.
    pub(super) fn stream_peer_down(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        self.stream_maybe_elect(me, s, o);
    }

    /// The stream coordinator (a Ra cluster over the nodes, here the first node this one sees
    /// running, only while it sees a majority) elects a writer when the writer's node is down or
    /// silent for `net_ticktime`, or when no writer has been heard of for [`ELECTION_TICKS`]
    /// ticks: it stops every member
    /// in a new epoch, takes the tails of the first majority that stopped, and starts the
    /// member with the latest tail as the writer (`rabbit_stream_coordinator`:
    /// `member_stopped`, `is_quorum/2`, `select_leader/2`). A member stopped in an epoch takes
    /// no chunks from an earlier one, so the old writer commits nothing more.
    fn stream_maybe_elect(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        if !s.running() || !self.majority_visible(s) || s.stream.is_writer() {
            return;
        }
        let first = self
            .settings
            .node_ids()
            .into_iter()
            .find(|p| *p == me || !s.down.contains(p));
        if first != Some(me) {
            return;
        }
        // The coordinator's monitor of the writer fires when its node is seen down, or once
        // the writer has sent nothing for `net_ticktime` (it stopped writing: fenced by a
        // member of a later epoch whose election was given up).
        let silent = STREAM_TICK * s.stream.unheard;
        let gone = match s.stream.writer {
            Some(w) => s.down.contains(&w) || silent >= self.settings.net_ticktime,
            None => s.stream.unheard >= ELECTION_TICKS,
        };
        match &s.stream.election {
            Some(e) if e.ticks < ELECTION_TICKS => return,
            None if !gone => return,
            _ => {}
        }
        let number = s.stream.highest.number.max(s.disk.stream_epoch.number) + 1;
        let epoch = Epoch {
            number,
            coordinator: usize::from(me),
        };
        s.stream.highest = epoch;
        s.stream.election = Some(Election {
            epoch,
            tails: BTreeMap::new(),
            ticks: 0,
        });
        for p in self.settings.node_ids() {
            self.to_member(me, s, p, RabbitMsg::StreamStop { epoch }, o);
        }
    }

    /// AMQP methods from a client, on the node its connection is open on: any node with a
    /// member (`rabbit_stream_queue:consume/3` reads the local member; publishes go through the
    /// channel to the writer, wherever it is).
    pub(super) fn stream_client_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        match msg {
            RabbitMsg::Open => self.accept_client(s, src, o),
            RabbitMsg::Publish {
                channel,
                seq,
                msg,
                mandatory,
                ..
            } if s.clients.contains(&src) => {
                if self.settings.route(msg.seq).unroutable {
                    self.unroutable(s, src, (channel, seq), mandatory, o);
                    return;
                }
                let ch = s.stream.channels.entry(src).or_insert(StreamChannel {
                    channel,
                    next_seq: 0,
                    pending: BTreeMap::new(),
                });
                if ch.channel != channel {
                    *ch = StreamChannel {
                        channel,
                        next_seq: 0,
                        pending: BTreeMap::new(),
                    };
                }
                ch.next_seq += 1;
                let oseq = ch.next_seq;
                ch.pending.insert(oseq, (seq, msg));
                if let Some(w) = s.stream.writer {
                    let writer = WriterId {
                        node: me,
                        client: src,
                        channel,
                    };
                    let write = RabbitMsg::StreamWrite {
                        writer,
                        seq: oseq,
                        msg,
                    };
                    self.to_member(me, s, w, write, o);
                }
            }
            RabbitMsg::StreamConsume {
                channel,
                prefetch,
                offset,
            } if s.clients.contains(&src) => {
                let len = s.disk.stream_log.len() as u64;
                let next = match offset {
                    OffsetSpec::First => 0,
                    OffsetSpec::Last => s.stream.committed.saturating_sub(1),
                    OffsetSpec::Next => len,
                    OffsetSpec::Offset(at) => at.min(len),
                };
                let tag = s
                    .stream
                    .readers
                    .get(&src)
                    .filter(|r| r.channel == channel)
                    .map_or(0, |r| r.tag);
                s.stream.readers.insert(
                    src,
                    Reader {
                        channel,
                        next,
                        credit: prefetch,
                        prefetch,
                        tag,
                        first_tag: tag,
                    },
                );
                o.send(src, RabbitMsg::ConsumeOk);
                self.stream_serve(s, o);
            }
            RabbitMsg::Ack { tag } => {
                let Some(r) = s.stream.readers.get_mut(&src) else {
                    return;
                };
                // An acknowledgement removes nothing from the stream: it gives credit back.
                if tag > r.first_tag && r.credit < r.prefetch {
                    r.credit += 1;
                    self.stream_serve(s, o);
                }
            }
            _ => {}
        }
    }

    /// A client's connection is gone: its channel's stream client and its consumer with it.
    pub(super) fn stream_client_gone(&self, s: &mut NodeState, client: Id) {
        s.stream.channels.remove(&client);
        s.stream.readers.remove(&client);
    }
}
