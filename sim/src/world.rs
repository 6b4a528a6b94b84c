//! State shared by the simulated nodes and the nemesis: disks, connections, the history, the
//! trace. It lives outside every node, so it survives their crashes — like disks and the network.

use crate::trace::TraceLine;
use madsim::rand::{thread_rng, Rng};
use madsim::time::Instant;
use mqcheck_brokers::{Durable, System};
use mqcheck_invariants::History;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::Level;

/// How long a broken connection takes to come back: the client notices the reset and dials again.
pub const RECONNECT: Duration = Duration::from_millis(200);
/// Extra delay a packet may get while `reorder` is on.
pub const REORDER_DELAY: Duration = Duration::from_millis(50);

/// One direction of a TCP-like connection between two nodes.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Bumped whenever the connection breaks; packets of older epochs are dropped on arrival.
    pub epoch: u64,
    pub next_seq: u64,
    /// Partitions currently cutting this direction (partitions may overlap).
    pub cuts: u32,
    /// A broken connection is down until then.
    pub reconnect_at: Option<Instant>,
    /// After a loss, the (epoch, sequence) below which packets sent before the lost one may still
    /// arrive: TCP delivers up to the gap, not past it.
    pub before_gap: Option<(u64, u64)>,
}

/// The receiving end of a connection: a reorder buffer, as TCP's, so delivery is FIFO.
#[derive(Clone, Debug)]
pub struct Inbox<M> {
    pub epoch: u64,
    pub expected: u64,
    pub pending: BTreeMap<u64, Option<M>>,
}

impl<M> Default for Inbox<M> {
    fn default() -> Self {
        Inbox {
            epoch: 0,
            expected: 0,
            pending: BTreeMap::new(),
        }
    }
}

/// What crosses madsim's network.
pub struct Packet<M> {
    pub src: usize,
    pub epoch: u64,
    /// `None` for packets outside the FIFO discipline (reordered or duplicated).
    pub seq: Option<u64>,
    /// The message, or `None` for a reset: the connection broke and the receiver's end notices.
    pub msg: Option<M>,
}

/// What the network does with one send.
pub enum Fate<M> {
    /// Dropped silently: a partition, or a connection still down.
    Dropped,
    /// Dropped, and the drop broke the connection: both ends see a reset.
    Broken,
    /// On its way after `delay`, and maybe a duplicate `copy` with its own delay.
    Sent {
        packet: Packet<M>,
        delay: Duration,
        copy: Option<(Packet<M>, Duration)>,
    },
}

pub struct World<S: System> {
    pub names: Vec<String>,
    pub start: Instant,
    pub disks: Vec<Option<S::Storage>>,
    /// How many of each node's observations are already in the history.
    pub observed: Vec<usize>,
    pub history: History,
    pub leader: Vec<bool>,
    pub down: Vec<bool>,
    pub paused: Vec<bool>,
    pub links: Vec<Vec<Link>>,
    pub inboxes: Vec<Vec<Inbox<<S::Actor as stateright::actor::Actor>::Msg>>>,
    /// Active network faults, by the schedule index that started them.
    pub loss: BTreeMap<usize, u32>,
    pub duplicate: BTreeMap<usize, u32>,
    pub reorder: BTreeMap<usize, ()>,
    pub trace: Option<Vec<TraceLine>>,
    pub delivered: u64,
}

pub type Shared<S> = Arc<Mutex<World<S>>>;

pub fn lock<S: System>(world: &Shared<S>) -> MutexGuard<'_, World<S>> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: System> World<S> {
    pub fn new(names: Vec<String>, trace: bool) -> Self {
        let n = names.len();
        World {
            names,
            start: Instant::now(),
            disks: vec![None; n],
            observed: vec![0; n],
            history: History::default(),
            leader: vec![false; n],
            // Every node is down until its endpoint listens.
            down: vec![true; n],
            paused: vec![false; n],
            links: vec![vec![Link::default(); n]; n],
            inboxes: (0..n)
                .map(|_| (0..n).map(|_| Inbox::default()).collect())
                .collect(),
            loss: BTreeMap::new(),
            duplicate: BTreeMap::new(),
            reorder: BTreeMap::new(),
            trace: trace.then(Vec::new),
            delivered: 0,
        }
    }

    pub fn now_ms(&self) -> u64 {
        (Instant::now() - self.start).as_millis() as u64
    }

    /// Adds a line to the trace, if one is being recorded; `text` is only built then.
    pub fn log(&mut self, node: usize, text: impl FnOnce() -> String) {
        if self.tracing() {
            let name = self.names[node].clone();
            self.note(&name, &text());
        }
    }

    /// Is anyone listening: a replay recording its trace, or a `tracing` subscriber for the
    /// timeline (`MQCHECK_LOG=mqcheck::timeline=debug`)?
    pub fn tracing(&self) -> bool {
        self.trace.is_some() || tracing::enabled!(target: "mqcheck::timeline", Level::DEBUG)
    }

    pub fn note(&mut self, who: &str, text: &str) {
        let time_ms = self.now_ms();
        tracing::debug!(target: "mqcheck::timeline", time_ms, node = who, "{text}");
        if let Some(trace) = &mut self.trace {
            trace.push(TraceLine {
                time_ms,
                node: who.to_string(),
                text: text.to_string(),
            });
        }
    }

    /// Breaks the connection `src → dst`: what is in flight is lost, and it stays down for a
    /// reconnect.
    pub fn break_link(&mut self, src: usize, dst: usize) {
        let link = &mut self.links[src][dst];
        link.epoch += 1;
        link.next_seq = 0;
        link.reconnect_at = Some(Instant::now() + RECONNECT);
        link.before_gap = None;
    }

    /// Breaks the connection `src → dst` at a lost packet: what was sent before it still
    /// arrives, nothing after it does.
    fn break_at_gap(&mut self, src: usize, dst: usize) {
        let gap = (self.links[src][dst].epoch, self.links[src][dst].next_seq);
        self.break_link(src, dst);
        self.links[src][dst].before_gap = Some(gap);
    }

    /// Breaks every connection to and from `node` (a crash): what was in flight is lost.
    pub fn isolate(&mut self, node: usize) {
        for other in 0..self.names.len() {
            self.break_link(node, other);
            self.break_link(other, node);
            self.inboxes[node][other] = Inbox::default();
        }
    }

    /// A (re)started process is listening: it dials fresh connections, nothing older reaches
    /// it, nothing waits.
    pub fn come_up(&mut self, node: usize) {
        self.isolate(node);
        for other in 0..self.names.len() {
            self.links[node][other].reconnect_at = None;
            self.links[other][node].reconnect_at = None;
        }
        self.down[node] = false;
    }

    /// Decides the fate of one message `src → dst`.
    pub fn transmit(
        &mut self,
        src: usize,
        dst: usize,
        msg: <S::Actor as stateright::actor::Actor>::Msg,
    ) -> Fate<<S::Actor as stateright::actor::Actor>::Msg> {
        let loss = self.loss.values().copied().max().unwrap_or(0);
        let duplicate = self.duplicate.values().copied().max().unwrap_or(0);
        let reorder = !self.reorder.is_empty();
        let link = &mut self.links[src][dst];
        if link.cuts > 0 || self.down[dst] {
            return Fate::Dropped;
        }
        if let Some(at) = link.reconnect_at {
            if Instant::now() < at {
                return Fate::Dropped;
            }
            link.reconnect_at = None;
        }
        let mut rng = thread_rng();
        if loss > 0 && rng.gen_range(0..1000) < loss {
            // TCP never delivers past a gap: the connection breaks here.
            self.break_at_gap(src, dst);
            self.break_at_gap(dst, src);
            return Fate::Broken;
        }
        let link = &mut self.links[src][dst];
        let epoch = link.epoch;
        let (seq, delay) = if reorder {
            (None, rng.gen_range(Duration::ZERO..REORDER_DELAY))
        } else {
            link.next_seq += 1;
            (Some(link.next_seq - 1), Duration::ZERO)
        };
        let copy = (duplicate > 0 && rng.gen_range(0..1000) < duplicate).then(|| {
            let copy = Packet {
                src,
                epoch,
                seq: None,
                msg: Some(msg.clone()),
            };
            (copy, rng.gen_range(Duration::ZERO..REORDER_DELAY))
        });
        let msg = Some(msg);
        Fate::Sent {
            packet: Packet {
                src,
                epoch,
                seq,
                msg,
            },
            delay,
            copy,
        }
    }

    /// The packet that tells `dst` its connection from `src` was reset.
    pub fn reset_packet(
        &self,
        src: usize,
        dst: usize,
    ) -> Packet<<S::Actor as stateright::actor::Actor>::Msg> {
        Packet {
            src,
            epoch: self.links[src][dst].epoch,
            seq: None,
            msg: None,
        }
    }

    /// Accepts a packet at `dst`, adding to `ready` the messages now deliverable in order
    /// (`None` for a reset).
    pub fn receive(
        &mut self,
        dst: usize,
        packet: Packet<<S::Actor as stateright::actor::Actor>::Msg>,
        ready: &mut Vec<Option<<S::Actor as stateright::actor::Actor>::Msg>>,
    ) {
        let src = packet.src;
        let link = &self.links[src][dst];
        let before_gap = matches!(
            (link.before_gap, packet.seq),
            (Some((epoch, gap)), Some(seq)) if packet.epoch == epoch && seq < gap
        );
        if (packet.epoch < link.epoch && !before_gap) || self.down[dst] {
            return; // sent on a connection that has since broken
        }
        let Some(seq) = packet.seq else {
            ready.push(packet.msg);
            return;
        };
        let inbox = &mut self.inboxes[dst][src];
        if packet.epoch > inbox.epoch {
            *inbox = Inbox {
                epoch: packet.epoch,
                ..Inbox::default()
            };
        } else if packet.epoch < inbox.epoch {
            ready.push(packet.msg); // a straggler from before a gap, overtaken by the reconnect
            return;
        }
        if seq < inbox.expected {
            return;
        }
        if seq == inbox.expected && inbox.pending.is_empty() {
            // In order, nothing held back: the common case.
            ready.push(packet.msg);
            inbox.expected += 1;
            return;
        }
        inbox.pending.insert(seq, packet.msg);
        while let Some(msg) = inbox.pending.remove(&inbox.expected) {
            ready.push(msg);
            inbox.expected += 1;
        }
    }

    /// Applies a power loss to `node`'s disk: only what it fsynced survives — observations
    /// included, so counting starts again from what is left.
    pub fn lose_power(&mut self, node: usize) {
        if let Some(disk) = &self.disks[node] {
            let disk = disk.after_power_loss();
            self.observed[node] = S::app_log(&disk).map_or(0, |log| log.len());
            self.disks[node] = Some(disk);
        }
    }
}
