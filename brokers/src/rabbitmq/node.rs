//! A RabbitMQ node: its view of the cluster (ticks, partition handling), its AMQP connections,
//! and its replica of the queue.

use super::mirrored::{ClassicState, QueueRecord};
use super::protocol::{Entry, RabbitMsg, Stored, Term};
use super::quorum::QuorumState;
use super::{PartitionHandling, QueueType, RabbitDisk, RabbitOut, RabbitTimer, Settings};
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
        }
    }
}

impl Durable for NodeDisk {
    fn after_power_loss(&self) -> Self {
        NodeDisk {
            store: self.fsynced.clone(),
            ..self.clone()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeState {
    /// Peers this node considers down (no word for `net_ticktime`, or announced stopping).
    pub down: BTreeSet<Id>,
    /// Peers this node was partitioned from (both saw the other down): with `ignore`, Mnesia
    /// stays inconsistent and their view of the queue is not taken.
    pub partitioned: BTreeSet<Id>,
    /// `pause_minority`: stopped while in a minority.
    pub paused: bool,
    /// Clients with an open AMQP connection here.
    pub clients: BTreeSet<Id>,
    /// A copy of what was last saved.
    pub disk: NodeDisk,
    pub quorum: QuorumState,
    pub classic: ClassicState,
}

impl NodeState {
    /// Leads the queue (the nemesis likes to hit leaders).
    pub fn leads(&self) -> bool {
        !self.paused && (self.quorum.is_leader() || self.classic.leads())
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
        let disk = disk.unwrap_or_default();
        let mut s = NodeState {
            down: BTreeSet::new(),
            partitioned: BTreeSet::new(),
            paused: false,
            clients: BTreeSet::new(),
            quorum: QuorumState::new(disk.term, disk.voted_for, disk.log.clone()),
            classic: ClassicState::default(),
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
        self.start_queue(id, &mut s, o);
        s
    }

    fn start_queue(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_start(s, o),
            _ => self.classic_start(id, s, o),
        }
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
            match msg {
                RabbitMsg::Tick | RabbitMsg::TickDown => {
                    if s.down.remove(&src) {
                        self.peer_up(id, s, src, msg == RabbitMsg::TickDown, o);
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
            if s.paused {
                return;
            }
            match self.settings.queue_type {
                QueueType::Quorum => self.quorum_peer_msg(id, s, src, msg, o),
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
        if s.paused {
            if !matches!(msg, RabbitMsg::Heartbeat) {
                o.send(src, RabbitMsg::NotLeader { leader: None });
            }
            return;
        }
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_client_msg(id, s, src, msg, o),
            _ => self.classic_client_msg(id, s, src, msg, o),
        }
    }

    pub fn on_timeout(&self, id: Id, s: &mut NodeState, timer: &RabbitTimer, o: &mut RabbitOut) {
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
            _ if s.paused => {}
            _ => match self.settings.queue_type {
                QueueType::Quorum => self.quorum_timeout(id, s, timer, o),
                _ => self.classic_timeout(s, timer, o),
            },
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
        for c in std::mem::take(&mut s.clients) {
            o.cancel_timer(RabbitTimer::ClientSilent(c));
            o.send(c, RabbitMsg::NotLeader { leader });
        }
    }

    fn client_gone(&self, id: Id, s: &mut NodeState, client: Id, o: &mut RabbitOut) {
        if !s.clients.remove(&client) {
            return;
        }
        o.cancel_timer(RabbitTimer::ClientSilent(client));
        if s.paused {
            return;
        }
        match self.settings.queue_type {
            QueueType::Quorum => self.quorum_client_gone(id, s, client, o),
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
        to_client(s, client, RabbitMsg::Confirm { channel, seq }, o);
    }

    fn peer_down(&self, id: Id, s: &mut NodeState, peer: Id, shutdown: bool, o: &mut RabbitOut) {
        if self.settings.partition_handling == PartitionHandling::PauseMinority
            && !s.paused
            && !self.majority_visible(s)
        {
            self.stop(id, s, o);
            s.paused = true;
            return;
        }
        if !s.paused && self.settings.queue_type != QueueType::Quorum {
            self.classic_peer_down(id, s, peer, shutdown, o);
        }
    }

    fn peer_up(&self, id: Id, s: &mut NodeState, peer: Id, saw_me_down: bool, o: &mut RabbitOut) {
        if s.paused {
            if self.majority_visible(s) {
                // The application starts again, from disk.
                s.paused = false;
                self.restart(id, s, o);
            }
            return;
        }
        if !saw_me_down {
            return; // a restart, not a partition
        }
        match self.settings.partition_handling {
            PartitionHandling::Ignore => {
                s.partitioned.insert(peer);
            }
            PartitionHandling::Autoheal => {
                // The sides as this node saw them just before the heal.
                let mine = self.settings.nodes - s.down.len() - 1;
                let theirs = self.settings.nodes - mine;
                let with_first = !s.down.contains(&Id::from(0)) && peer != Id::from(0);
                if mine < theirs || (mine == theirs && !with_first) {
                    self.stop(id, s, o);
                    self.restart(id, s, o);
                }
            }
            PartitionHandling::PauseMinority => {}
        }
    }

    /// The application stops deliberately: peers are told, clients disconnected.
    fn stop(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        for p in self.settings.node_ids() {
            if p != id {
                o.send(p, RabbitMsg::Stopping);
            }
        }
        self.drop_clients(s, None, o);
        o.cancel_timer(RabbitTimer::Election);
        o.cancel_timer(RabbitTimer::RaftHeartbeat);
        o.cancel_timer(RabbitTimer::Fsync);
    }

    /// The application starts again from what is on disk, as after a process restart.
    fn restart(&self, id: Id, s: &mut NodeState, o: &mut RabbitOut) {
        s.down.clear();
        s.partitioned.clear();
        s.quorum = QuorumState::new(s.disk.term, s.disk.voted_for, s.disk.log.clone());
        s.classic = ClassicState::default();
        self.start_queue(id, s, o);
    }
}
