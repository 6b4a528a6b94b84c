//! A RabbitMQ node: its view of the cluster (ticks, partition handling), its boot (Mnesia's table
//! loading), its AMQP connections, and its replica of the queue.

use super::mirrored::{ClassicState, QueueRecord};
use super::protocol::{Entry, RabbitMsg, Stored, Term};
use super::quorum::QuorumState;
use super::stream::{Chunk, Epoch, StreamState};
use super::{
    PartitionHandling, QueueType, RabbitDisk, RabbitOut, RabbitTimer, Settings, Version,
    RABBIT_STOP, TABLE_LOADING_RETRY_LIMIT, TABLE_LOADING_RETRY_TIMEOUT,
};
use crate::timers::{exact, retry};
use crate::Durable;
use rpds::VectorSync;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub struct Node {
    pub settings: Settings,
}

/// What a node keeps on disk: the quorum queue member's Raft state (Ra fsyncs its WAL before
/// answering, so all of it is synced), and the classic queue's record and message store, of
/// which only the `fsynced` part survives a power loss.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeDisk {
    pub term: Term,
    pub voted_for: Option<Id>,
    pub log: VectorSync<Entry>,
    pub record: Option<QueueRecord>,
    /// Persistent messages of the durable queue, as written (page cache).
    pub store: BTreeMap<u64, Stored>,
    /// The store as of the last fsync.
    pub fsynced: BTreeMap<u64, Stored>,
    /// Mnesia's log of the peers it saw go down while it ran (`mnesia_recover`'s
    /// `mnesia_down` records): a node that saw every peer go down before it stopped was the last
    /// one running, and may load its tables from its own disk.
    pub mnesia_down: BTreeSet<Id>,
    /// The stream member's epoch as the coordinator (Ra, fsynced) records it: the last it was
    /// started in, or promised to stop for.
    pub stream_epoch: Epoch,
    /// The stream's osiris log. osiris never fsyncs ("Data Safety when using Streams": streams
    /// "do not explicitly flush (fsync) the data from the operating system page cache"), so it
    /// is all page cache, and a power loss takes it.
    pub stream_log: VectorSync<Chunk>,
}

impl Default for NodeDisk {
    fn default() -> Self {
        NodeDisk {
            term: 0,
            voted_for: None,
            log: VectorSync::new_sync(),
            record: None,
            store: BTreeMap::new(),
            fsynced: BTreeMap::new(),
            mnesia_down: BTreeSet::new(),
            stream_epoch: Epoch::default(),
            stream_log: VectorSync::new_sync(),
        }
    }
}

impl Durable for NodeDisk {
    fn after_power_loss(&self) -> Self {
        NodeDisk {
            store: self.fsynced.clone(),
            stream_log: VectorSync::new_sync(),
            ..self.clone()
        }
    }
}

/// Where a node's boot stands (3.x: `rabbit_table:wait_for_replicated`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Boot {
    /// The application runs: tables loaded, queues recovered.
    Running,
    /// "Waiting for Mnesia tables": asked the peers for them; `retries` timeouts of
    /// `mnesia_table_loading_retry_timeout` left; `idle` are the peers that answered they have
    /// none loaded either.
    Waiting { retries: u32, idle: BTreeSet<Id> },
    /// `timeout_waiting_for_tables`: the boot failed and the Erlang VM exited.
    Failed,
}

/// A transactional channel (`tx.select`): the publishes it holds until `tx.commit` (the `Msgs`
/// of `rabbit_channel`'s `tx = {Msgs, Acks}`), and the commit under way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TxChannel {
    pub channel: u32,
    /// The publishes held since the last commit or rollback, in order.
    pub held: Vec<RabbitMsg>,
    /// `tx = committing`: the commit's publishes the queue has neither confirmed nor refused.
    pub committing: Option<BTreeSet<u64>>,
    /// `tx = failed`: the queue refused one of them (`record_rejects/2`).
    pub failed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeState {
    pub boot: Boot,
    /// Peers this node considers down (no word for `net_ticktime`, or announced stopping).
    pub down: BTreeSet<Id>,
    /// Peers this node was partitioned from (both saw the other down): with `ignore`, Mnesia
    /// stays inconsistent and their view of the queue is not taken.
    pub partitioned: BTreeSet<Id>,
    /// `pause_minority`: stopped while in a minority.
    pub paused: bool,
    /// `pause_minority`: the node monitor saw a minority and called `rabbit:stop()`, which is
    /// still under way (connections open, queues and channels running).
    pub pausing: bool,
    /// Booting peers that asked for the tables before this node had them loaded.
    pub loading: BTreeSet<Id>,
    /// Clients with an open AMQP connection here.
    pub clients: BTreeSet<Id>,
    /// The transactional channels of those clients.
    pub tx: BTreeMap<Id, TxChannel>,
    /// A copy of what was last saved.
    pub disk: NodeDisk,
    pub quorum: QuorumState,
    pub classic: ClassicState,
    pub stream: StreamState,
}

impl NodeState {
    /// Leads the queue (the nemesis likes to hit leaders).
    pub fn leads(&self) -> bool {
        self.running() && (self.quorum.is_leader() || self.classic.leads() || self.stream.is_writer())
    }

    /// The application runs (booted, not paused).
    pub fn running(&self) -> bool {
        self.boot == Boot::Running && !self.paused
    }
}

/// Sends a frame on a client's open connection.
pub(super) fn to_client(s: &mut NodeState, client: Id, msg: RabbitMsg, o: &mut RabbitOut) {
    if s.clients.contains(&client) {
        o.send(client, msg);
    }
}

impl Node {
    pub fn start(&self, id: Id, disk: Option<NodeDisk>, o: &mut RabbitOut) -> NodeState {
        let restarted = disk.is_some();
        let disk = disk.unwrap_or_default();
        let mut s = NodeState {
            boot: Boot::Running,
            down: BTreeSet::new(),
            partitioned: BTreeSet::new(),
            paused: false,
            pausing: false,
            loading: BTreeSet::new(),
            clients: BTreeSet::new(),
            tx: BTreeMap::new(),
            quorum: QuorumState::new(disk.term, disk.voted_for, disk.log.clone()),
            classic: ClassicState::default(),
            stream: StreamState::default(),
            disk,
        };
        o.set_timer(RabbitTimer::Tick, retry(self.settings.net_ticktime / 4));
        o.set_timer(
            RabbitTimer::ClientHeartbeat,
            retry(self.settings.heartbeat / 2),
        );
        for p in self.settings.node_ids() {
            if p != id {
                o.set_timer(
                    RabbitTimer::PeerSilent(p),
                    exact(self.settings.net_ticktime),
                );
            }
        }
        if restarted {
            self.boot(id, &mut s, o);
        } else {
            // The cluster as the operator formed it: every node starts with the queue declared.
            self.start_queue(id, &mut s, None, o);
        }
        s
    }

    /// Mnesia keeps the metadata (3.x); 4.x's Khepri is not modelled: a 4.x node boots at once.
    fn mnesia(&self) -> bool {
        self.settings.version < Version::V4_2
    }

    /// Starts the queue replica. `loaded`: the tables as a running peer had them, with the peers
    /// it saw down; `None` on the first start, or from this node's own disk.
    fn start_queue(
        &self,
        id: Id,
        s: &mut NodeState,
        loaded: Option<(QueueRecord, Vec<Id>)>,
        o: &mut RabbitOut,
    ) {
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_start(s, o),
            QueueType::Stream => self.stream_start(id, s, o),
            _ => self.classic_start(id, s, loaded, o),
        }
    }

    /// The application starts on a node that ran before. With Mnesia it first waits for its
    /// tables (`rabbit_table:wait_for_replicated`): from a peer that has them loaded, or — if it
    /// saw every peer go down before it stopped — from its own disk once no peer has them.
    fn boot(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        s.partitioned.clear();
        if !self.mnesia() {
            self.start_queue(id, s, None, o);
            return;
        }
        s.boot = Boot::Waiting {
            retries: TABLE_LOADING_RETRY_LIMIT,
            idle: BTreeSet::new(),
        };
        for p in self.others(id) {
            o.send(p, RabbitMsg::WaitForTables);
        }
        o.set_timer(RabbitTimer::Tables, exact(TABLE_LOADING_RETRY_TIMEOUT));
        self.maybe_load_locally(id, s, o);
    }

    fn others(&self, id: Id) -> Vec<Id> {
        self.settings
            .node_ids()
            .into_iter()
            .filter(|p| *p != id)
            .collect()
    }

    /// The last node down loads from its own disk once every peer is down or has no tables.
    fn maybe_load_locally(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let Boot::Waiting { idle, .. } = &s.boot else {
            return;
        };
        let last = self.others(id).iter().all(|p| {
            s.disk.mnesia_down.contains(p) && (s.down.contains(p) || idle.contains(p))
        });
        if last {
            self.loaded(id, s, None, o);
        }
    }

    /// The tables are loaded: the queue starts, the peers waiting for the tables get them, and
    /// every peer hears that the application runs here.
    fn loaded(
        &self,
        id: Id,
        s: &mut NodeState,
        loaded: Option<(QueueRecord, Vec<Id>)>,
        o: &mut RabbitOut,
    ) {
        s.boot = Boot::Running;
        o.cancel_timer(RabbitTimer::Tables);
        // Mnesia forgets a peer's `mnesia_down` only when that peer's Mnesia connects again.
        s.disk.mnesia_down.extend(s.down.iter().copied());
        self.start_queue(id, s, loaded, o);
        for p in std::mem::take(&mut s.loading) {
            o.send(p, self.tables(s));
        }
        for p in self.others(id) {
            o.send(p, RabbitMsg::NodeUp);
        }
    }

    fn tables(&self, s: &NodeState) -> RabbitMsg {
        RabbitMsg::Tables {
            record: s.classic.record.clone(),
            down: s.down.iter().copied().collect(),
        }
    }

    /// Mnesia on a booting peer asks for the tables. It is a new incarnation: whatever ran there
    /// before died (its queue replica with it), even if this node had not noticed yet.
    fn wait_for_tables(&self, id: Id, s: &mut NodeState, src: Id, o: &mut RabbitOut) {
        s.partitioned.remove(&src);
        if !s.running() {
            o.send(src, RabbitMsg::NoTables);
            s.loading.insert(src);
            if let Boot::Waiting { idle, .. } = &s.boot {
                // Both boot: each asks the other (the first ask may have found it not started).
                if !idle.contains(&src) {
                    o.send(src, RabbitMsg::WaitForTables);
                }
            }
            return;
        }
        if s.down.remove(&src) {
            s.disk.mnesia_down.remove(&src);
        } else if matches!(
            self.settings.queue_type,
            QueueType::Classic | QueueType::Mirrored
        ) {
            self.classic_peer_down(id, s, src, false, o);
        }
        o.send(src, self.tables(s));
    }

    pub(super) fn save(&self, s: &NodeState, o: &mut RabbitOut) {
        o.save(RabbitDisk::Server(s.disk.clone()));
    }

    fn is_node(&self, id: Id) -> bool {
        usize::from(id) < self.settings.nodes
    }

    pub(super) fn majority_visible(&self, s: &NodeState) -> bool {
        self.settings.nodes - s.down.len() >= self.settings.majority()
    }

    pub fn on_msg(&self, id: Id, s: &mut NodeState, src: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        if self.is_node(src) {
            o.set_timer(
                RabbitTimer::PeerSilent(src),
                exact(self.settings.net_ticktime),
            );
            if s.boot == Boot::Failed {
                return;
            }
            match msg {
                RabbitMsg::Tick | RabbitMsg::TickDown => {
                    if s.down.remove(&src) {
                        self.peer_up(id, s, src, msg == RabbitMsg::TickDown, o);
                    }
                    return;
                }
                RabbitMsg::WaitForTables => return self.wait_for_tables(id, s, src, o),
                RabbitMsg::Tables { record, down } => {
                    if matches!(s.boot, Boot::Waiting { .. }) {
                        s.disk.mnesia_down.remove(&src);
                        self.loaded(id, s, record.map(|r| (r, down)), o);
                    }
                    return;
                }
                RabbitMsg::NoTables => {
                    if let Boot::Waiting { idle, .. } = &mut s.boot {
                        idle.insert(src);
                        self.maybe_load_locally(id, s, o);
                    }
                    return;
                }
                // Erlang distribution's connection to the peer closed (its process died):
                // `nodedown` at once, without waiting for `net_ticktime`.
                RabbitMsg::Disconnected => {
                    if s.down.insert(src) {
                        self.peer_down(id, s, src, false, o);
                    }
                    return;
                }
                RabbitMsg::Stopping => {
                    if s.down.insert(src) {
                        self.peer_down(id, s, src, true, o);
                    }
                    return;
                }
                _ => {}
            }
            if !s.running() {
                return;
            }
            if msg == RabbitMsg::NodeUp {
                s.disk.mnesia_down.remove(&src);
                self.save(s, o);
            }
            match self.settings.queue_type {
                QueueType::Quorum => self.quorum_peer_msg(id, s, src, msg, o),
                QueueType::Stream => self.stream_peer_msg(id, s, src, msg, o),
                _ => self.classic_peer_msg(id, s, src, msg, o),
            }
            return;
        }
        // A client.
        if s.clients.contains(&src) {
            o.set_timer(
                RabbitTimer::ClientSilent(src),
                exact(self.settings.heartbeat),
            );
        }
        if msg == RabbitMsg::Disconnected {
            self.client_gone(id, s, src, o);
            return;
        }
        if msg == RabbitMsg::Open {
            // The model keeps one connection per client and node, so a client that opens again
            // has left its earlier one: it restarted, or gave up a dial that did not open. In
            // RabbitMQ that connection's channels, with their consumers, live on until a write
            // to it draws a reset or its heartbeats stop, and nothing they are sent reaches the
            // new connection; the model closes it at once, before the new one opens.
            self.client_gone(id, s, src, o);
        }
        if !s.running() {
            // Paused, booting or failed: no listener accepts the connection.
            if !matches!(msg, RabbitMsg::Heartbeat) {
                o.send(src, RabbitMsg::NotLeader { leader: None });
            }
            return;
        }
        if let Some(msg) = self.transaction(id, s, src, msg, o) {
            self.channel_msg(id, s, src, msg, o);
        }
    }

    /// A method on a client's channel, for the queue.
    fn channel_msg(&self, id: Id, s: &mut NodeState, src: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_client_msg(id, s, src, msg, o),
            QueueType::Stream => self.stream_client_msg(id, s, src, msg, o),
            _ => self.classic_client_msg(id, s, src, msg, o),
        }
    }

    /// `rabbit_channel`'s tx class, on the node that leads the queue (elsewhere the methods go
    /// on to be answered with the leader's whereabouts). `tx.select` makes the channel
    /// transactional; its publishes, routed as they arrive, are held in the channel; `tx.commit`
    /// delivers them to the queue one by one (`?QUEUE:fold(fun deliver_to_queues/2, …)`), each
    /// tracked as a confirm would be (`DoConfirm = Tx =/= none orelse ConfirmEnabled`), and
    /// answers `tx.commit-ok` once the queue has confirmed them all (`maybe_complete_tx/1`);
    /// `tx.rollback` drops what the channel holds. Returns the message when it is not the tx
    /// class's.
    fn transaction(
        &self,
        id: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) -> Option<RabbitMsg> {
        let leads = match self.settings.queue_type {
            QueueType::Quorum => s.quorum.is_leader(),
            _ => s.classic.leader,
        };
        if !leads || !s.clients.contains(&src) {
            return Some(msg);
        }
        let on = |s: &NodeState, channel: u32| s.tx.get(&src).is_some_and(|t| t.channel == channel);
        match msg {
            RabbitMsg::TxSelect { channel } => {
                s.tx.insert(
                    src,
                    TxChannel {
                        channel,
                        ..TxChannel::default()
                    },
                );
            }
            RabbitMsg::Publish { channel, .. } if on(s, channel) => {
                s.tx.get_mut(&src).expect("transactional").held.push(msg);
            }
            RabbitMsg::TxRollback { channel } if on(s, channel) => {
                s.tx.get_mut(&src).expect("transactional").held.clear();
            }
            RabbitMsg::TxCommit { channel } if on(s, channel) => {
                let t = s.tx.get_mut(&src).expect("transactional");
                let held = std::mem::take(&mut t.held);
                let seqs = held.iter().filter_map(|p| match p {
                    RabbitMsg::Publish { seq, .. } => Some(*seq),
                    _ => None,
                });
                t.committing = Some(seqs.collect());
                t.failed = false;
                for publish in held {
                    self.channel_msg(id, s, src, publish, o);
                }
                self.maybe_complete_tx(s, src, o);
            }
            other => return Some(other),
        }
        None
    }

    /// A queue confirmed (or, `rejected`, refused) a publish: on a transactional channel it
    /// counts towards the commit, and no `basic.ack` or `basic.nack` goes to the client (the
    /// channel is not in confirm mode). Returns whether the channel is transactional.
    pub(super) fn tx_settled(
        &self,
        s: &mut NodeState,
        client: Id,
        (channel, seq): (u32, u64),
        rejected: bool,
        o: &mut RabbitOut,
    ) -> bool {
        let Some(t) = s.tx.get_mut(&client).filter(|t| t.channel == channel) else {
            return false;
        };
        if t.committing.as_mut().is_some_and(|p| p.remove(&seq)) {
            t.failed |= rejected;
            self.maybe_complete_tx(s, client, o);
        }
        true
    }

    /// `maybe_complete_tx/1` and `complete_tx/1`: once nothing of the commit is unconfirmed,
    /// `tx.commit-ok`, or — if the queue refused any of it — the channel error "partial tx
    /// completion", which closes the channel with the rest of the commit enqueued.
    fn maybe_complete_tx(&self, s: &mut NodeState, client: Id, o: &mut RabbitOut) {
        let Some(t) = s.tx.get_mut(&client) else {
            return;
        };
        if !t.committing.as_ref().is_some_and(BTreeSet::is_empty) {
            return;
        }
        t.committing = None;
        let channel = t.channel;
        if t.failed {
            s.tx.remove(&client);
            to_client(s, client, RabbitMsg::TxFailed { channel }, o);
        } else {
            to_client(s, client, RabbitMsg::TxCommitOk { channel }, o);
        }
    }

    /// The queue refused a publish (`x-overflow=reject-publish`): `basic.nack` in confirm mode,
    /// a failed commit on a transactional channel, nothing otherwise.
    pub(super) fn reject_publish(
        &self,
        s: &mut NodeState,
        client: Id,
        (channel, seq): (u32, u64),
        o: &mut RabbitOut,
    ) {
        if !self.tx_settled(s, client, (channel, seq), true, o) && self.settings.confirms {
            to_client(s, client, RabbitMsg::PublishNack { channel, seq }, o);
        }
    }

    pub fn on_timeout(&self, id: Id, s: &mut NodeState, timer: &RabbitTimer, o: &mut RabbitOut) {
        if s.boot == Boot::Failed {
            return;
        }
        match timer {
            RabbitTimer::Tick => {
                for p in self.settings.node_ids() {
                    if p != id {
                        let tick = if s.down.contains(&p) || s.partitioned.contains(&p) {
                            RabbitMsg::TickDown
                        } else {
                            RabbitMsg::Tick
                        };
                        o.send(p, tick);
                    }
                }
                o.set_timer(RabbitTimer::Tick, retry(self.settings.net_ticktime / 4));
            }
            RabbitTimer::PeerSilent(p) => {
                if s.down.insert(*p) {
                    self.peer_down(id, s, *p, false, o);
                }
            }
            RabbitTimer::ClientHeartbeat => {
                for c in &s.clients {
                    o.send(*c, RabbitMsg::Heartbeat);
                }
                o.set_timer(
                    RabbitTimer::ClientHeartbeat,
                    retry(self.settings.heartbeat / 2),
                );
            }
            RabbitTimer::ClientSilent(c) => self.client_gone(id, s, *c, o),
            RabbitTimer::Tables => self.tables_timeout(id, s, o),
            RabbitTimer::Stopped => {
                // rabbit:stop() is done: the node pauses, and starts again at once if it sees a
                // majority by now (`wait_for_cluster_recovery`).
                s.pausing = false;
                self.stop(id, s, o);
                s.paused = true;
                if self.majority_visible(s) {
                    s.paused = false;
                    self.restart(id, s, o);
                }
            }
            _ if !s.running() => {}
            _ => match self.settings.queue_type {
                QueueType::Quorum => self.quorum_timeout(id, s, timer, o),
                QueueType::Stream => self.stream_timeout(id, s, timer, o),
                _ => self.classic_timeout(s, timer, o),
            },
        }
    }

    /// `mnesia:wait_for_tables` timed out: retry, or after `mnesia_table_loading_retry_limit`
    /// timeouts fail the boot (`timeout_waiting_for_tables`): the VM exits, and the node stays
    /// down until it is started again.
    fn tables_timeout(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let Boot::Waiting { retries, idle } = &mut s.boot else {
            return;
        };
        *retries -= 1;
        if *retries == 0 {
            s.boot = Boot::Failed;
            self.drop_clients(s, None, o);
            o.cancel_timer(RabbitTimer::Tick);
            o.cancel_timer(RabbitTimer::ClientHeartbeat);
        } else {
            let idle = idle.clone();
            for p in self.others(id).into_iter().filter(|p| !idle.contains(p)) {
                o.send(p, RabbitMsg::WaitForTables);
            }
            o.set_timer(RabbitTimer::Tables, exact(TABLE_LOADING_RETRY_TIMEOUT));
        }
    }

    /// A publisher confirm. From 3.3.5 (`pause_minority_guard`) a channel on a node that sees a
    /// minority under `pause_minority` drops its confirms instead: the node is about to stop,
    /// and what it confirms now is likely to be lost.
    pub(super) fn confirm(
        &self,
        s: &mut NodeState,
        client: Id,
        (channel, seq): (u32, u64),
        o: &mut RabbitOut,
    ) {
        let guarded = self.settings.version.pause_minority_guard()
            && self.settings.partition_handling == PartitionHandling::PauseMinority
            && !self.majority_visible(s);
        if !guarded && !self.tx_settled(s, client, (channel, seq), false, o) {
            to_client(s, client, RabbitMsg::Confirm { channel, seq }, o);
        }
    }

    /// An AMQP connection is open: heartbeats start.
    pub(super) fn accept_client(&self, s: &mut NodeState, client: Id, o: &mut RabbitOut) {
        s.clients.insert(client);
        o.set_timer(
            RabbitTimer::ClientSilent(client),
            exact(self.settings.heartbeat),
        );
        o.send(client, RabbitMsg::OpenOk);
    }

    /// Closes every client connection (the queue moved, or the node stops), with a hint where
    /// the queue now leads.
    pub(super) fn drop_clients(&self, s: &mut NodeState, leader: Option<Id>, o: &mut RabbitOut) {
        s.tx.clear();
        // A closed connection's channels go with it, their stream clients and consumers too.
        s.stream.channels.clear();
        s.stream.readers.clear();
        for c in std::mem::take(&mut s.clients) {
            o.cancel_timer(RabbitTimer::ClientSilent(c));
            o.send(c, RabbitMsg::NotLeader { leader });
        }
    }

    fn client_gone(&self, id: Id, s: &mut NodeState, client: Id, o: &mut RabbitOut) {
        if !s.clients.remove(&client) {
            return;
        }
        // The channel dies with its connection: the publishes it held are gone.
        s.tx.remove(&client);
        o.cancel_timer(RabbitTimer::ClientSilent(client));
        if s.paused {
            return;
        }
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_client_gone(id, s, client, o),
            QueueType::Stream => self.stream_client_gone(s, client),
            _ => self.classic_client_gone(id, s, client, o),
        }
    }

    /// A `mandatory` publish that routes nowhere comes back; the confirm follows either way.
    pub(super) fn unroutable(
        &self,
        s: &mut NodeState,
        client: Id,
        (channel, seq): (u32, u64),
        mandatory: bool,
        o: &mut RabbitOut,
    ) {
        if mandatory {
            to_client(s, client, RabbitMsg::Return { channel, seq }, o);
        }
        self.confirm(s, client, (channel, seq), o);
    }

    /// `nodedown`: every process that watched the peer learns on its own. Mnesia logs it; the
    /// queue's processes drop the peer's replica (a channel counts a dead mirror's confirm as
    /// given: `noconnection` is a benign exit); the node monitor, under `pause_minority`, sees a
    /// minority and calls `rabbit:stop()`, which takes [`RABBIT_STOP`] while all of this goes on.
    fn peer_down(&self, id: Id, s: &mut NodeState, peer: Id, shutdown: bool, o: &mut RabbitOut) {
        if !s.running() {
            return;
        }
        if self.mnesia() {
            s.disk.mnesia_down.insert(peer);
            self.save(s, o);
        }
        if self.settings.partition_handling == PartitionHandling::PauseMinority
            && !s.pausing
            && !self.majority_visible(s)
        {
            s.pausing = true;
            o.set_timer(RabbitTimer::Stopped, exact(RABBIT_STOP));
        }
        match self.settings.queue_type {
            QueueType::Quorum => {}
            QueueType::Stream => self.stream_peer_down(id, s, o),
            _ => self.classic_peer_down(id, s, peer, shutdown, o),
        }
    }

    fn peer_up(&self, id: Id, s: &mut NodeState, peer: Id, saw_me_down: bool, o: &mut RabbitOut) {
        if s.paused {
            if self.majority_visible(s) {
                // `wait_for_cluster_recovery`: the application starts again, and boots.
                s.paused = false;
                self.restart(id, s, o);
            }
            return;
        }
        if !s.running() {
            return;
        }
        if !saw_me_down {
            // A restart, not a partition: Mnesia reconnects.
            s.disk.mnesia_down.remove(&peer);
            self.save(s, o);
            return;
        }
        // Both sides ran on without the other: Mnesia's "running partitioned network". Its
        // tables stay apart until one side restarts.
        s.partitioned.insert(peer);
        if self.settings.partition_handling == PartitionHandling::Autoheal {
            // The sides as this node saw them just before the heal.
            let mine = self.settings.nodes - s.down.len() - 1;
            let theirs = self.settings.nodes - mine;
            let with_first = !s.down.contains(&Id::from(0)) && peer != Id::from(0);
            if mine < theirs || (mine == theirs && !with_first) {
                self.stop(id, s, o);
                self.restart(id, s, o);
            }
        }
    }

    /// The application stops deliberately: peers are told, clients disconnected.
    fn stop(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        for p in self.others(id) {
            o.send(p, RabbitMsg::Stopping);
        }
        self.drop_clients(s, None, o);
        o.cancel_timer(RabbitTimer::Stopped);
        o.cancel_timer(RabbitTimer::Election);
        o.cancel_timer(RabbitTimer::RaftHeartbeat);
        o.cancel_timer(RabbitTimer::Fsync);
        o.cancel_timer(RabbitTimer::StreamTick);
    }

    /// The application starts again (the Erlang VM ran on: its view of the peers stays), and
    /// boots as after a process restart.
    fn restart(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        s.pausing = false;
        s.quorum = QuorumState::new(s.disk.term, s.disk.voted_for, s.disk.log.clone());
        s.classic = ClassicState::default();
        self.boot(id, s, o);
    }
}
