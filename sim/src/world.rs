//! State shared by the simulated nodes and the nemesis: disks, connections, the history, the
//! trace. It lives outside every node, so it survives their crashes — like disks and the network.

use crate::trace::{Kind, TraceLine};
use madsim::net::Endpoint;
use madsim::rand::{thread_rng, Rng};
use madsim::runtime::Handle;
use madsim::task::NodeId;
use madsim::time::{sleep, Instant};
use mqcheck_brokers::{Durable, System};
use mqcheck_faults::{clock, tcp};
use mqcheck_invariants::History;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::Level;

/// The madsim tag all model traffic uses.
pub const TAG: u64 = 0x6d71;
/// Extra delay a packet may get while `reorder` is on.
pub const REORDER_DELAY: Duration = Duration::from_millis(50);
/// The most consecutive drops of one segment `loss` draws (its delay is then 12.6 s).
const MAX_DROPS: u32 = 6;

type Msg<S> = <<S as System>::Actor as stateright::actor::Actor>::Msg;

/// One end of the TCP connection between two nodes: what `src` knows of its connection to `dst`,
/// and the segments it sends on it.
#[derive(Clone, Debug)]
pub struct Link<M> {
    /// The connection's incarnation: a new connection after a close gets a higher one, and
    /// segments of an older one are dropped on arrival. Both ends of a connection share it.
    pub epoch: u64,
    pub next_seq: u64,
    /// Partitions currently cutting this direction (partitions may overlap).
    pub cuts: u32,
    /// Does this end hold an open connection (opened by either end, not yet closed or reset)?
    pub open: bool,
    /// The peer's incarnation when the connection opened: once the peer has restarted, the
    /// connection is stale and the next segment on it draws a reset.
    pub peer_incarnation: u64,
    /// Segments a partition holds up, in order, and when the first of them was sent (ms): TCP
    /// retransmits them after the heal.
    pub held: Vec<Packet<M>>,
    pub held_since_ms: u64,
    /// A connection attempt to the crashed peer was already refused during this downtime (the
    /// client library backs off rather than redialling at network speed).
    pub refused: bool,
}

impl<M> Default for Link<M> {
    fn default() -> Self {
        Link {
            epoch: 0,
            next_seq: 0,
            cuts: 0,
            open: false,
            peer_incarnation: 0,
            held: Vec::new(),
            held_since_ms: 0,
            refused: false,
        }
    }
}

/// The receiving end of a connection: a reorder buffer, as TCP's, so delivery is FIFO.
#[derive(Clone, Debug)]
pub struct Inbox<M> {
    pub epoch: u64,
    pub expected: u64,
    pub pending: BTreeMap<u64, Option<M>>,
    /// The application has read from this connection and not yet seen it end: a newer
    /// connection from the same peer ends it first.
    pub live: bool,
}

impl<M> Default for Inbox<M> {
    fn default() -> Self {
        Inbox {
            epoch: 0,
            expected: 0,
            pending: BTreeMap::new(),
            live: false,
        }
    }
}

/// What crosses madsim's network: a segment of one connection.
#[derive(Clone, Debug)]
pub struct Packet<M> {
    pub src: usize,
    pub epoch: u64,
    /// `None` for packets outside the FIFO discipline (reordered or duplicated, beyond TCP).
    pub seq: Option<u64>,
    /// The message, or `None` for the end of the connection (a close or a reset).
    pub msg: Option<M>,
}

/// What the network does with one send.
pub enum Fate<M> {
    /// Gone: the peer's machine is down and answers nothing.
    Dropped,
    /// The connection is gone (the peer crashed or restarted): the send fails and the sender's
    /// client library sees a reset.
    Refused,
    /// Held up by a partition; retransmitted after the heal.
    Held,
    /// On its way after `delay` (retransmissions after loss, or reordering), and maybe a
    /// duplicate `copy` with its own delay.
    Sent {
        packet: Packet<M>,
        delay: Duration,
        copy: Option<(Packet<M>, Duration)>,
    },
}

/// Segments to hand to `dst` after `delay`: retransmissions after loss or a heal, and closes.
pub struct Delivery<M> {
    pub dst: usize,
    pub delay: Duration,
    pub packets: Vec<Packet<M>>,
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
    /// Down by a process crash: the machine is up, so its kernel refuses connections.
    pub crashed: Vec<bool>,
    /// How many times each node has started.
    pub incarnation: Vec<u64>,
    pub paused: Vec<bool>,
    /// Each node's clock rate, per mille of real time ([`mqcheck_faults::clock`]).
    /// Read by the nodes at every timer they set, so kept outside the lock.
    pub clock: Arc<[AtomicU32]>,
    pub links: Vec<Vec<Link<Msg<S>>>>,
    pub inboxes: Vec<Vec<Inbox<Msg<S>>>>,
    /// The madsim nodes and their addresses, for deliveries scheduled on a receiver's node.
    pub ids: Vec<NodeId>,
    pub addrs: Vec<SocketAddr>,
    /// Active network faults, by the schedule index that started them.
    pub loss: BTreeMap<usize, u32>,
    pub duplicate: BTreeMap<usize, u32>,
    pub reorder: BTreeMap<usize, ()>,
    pub trace: Option<Vec<TraceLine>>,
    pub delivered: u64,
    /// A fault has taken effect: leaderships taken from now on are coverage.
    pub faulted: bool,
    /// Times a node became a leader after the first fault took effect.
    pub leader_elections: u32,
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
            crashed: vec![false; n],
            incarnation: vec![0; n],
            paused: vec![false; n],
            clock: (0..n).map(|_| AtomicU32::new(clock::NORMAL)).collect(),
            links: (0..n)
                .map(|_| (0..n).map(|_| Link::default()).collect())
                .collect(),
            inboxes: (0..n)
                .map(|_| (0..n).map(|_| Inbox::default()).collect())
                .collect(),
            loss: BTreeMap::new(),
            duplicate: BTreeMap::new(),
            reorder: BTreeMap::new(),
            trace: trace.then(Vec::new),
            delivered: 0,
            faulted: false,
            leader_elections: 0,
            ids: Vec::new(),
            addrs: Vec::new(),
        }
    }

    /// Node `node` leads (or no longer leads) what its broker elects leaders for.
    pub fn set_leader(&mut self, node: usize, leader: bool) {
        if leader && !self.leader[node] && self.faulted {
            self.leader_elections += 1;
        }
        self.leader[node] = leader;
    }

    pub fn now_ms(&self) -> u64 {
        (Instant::now() - self.start).as_millis() as u64
    }

    /// Adds a line of `kind` at `node` to the trace, if one is being recorded; `text` is only
    /// built then. A received message names its sender, `from`.
    pub fn log(
        &mut self,
        node: usize,
        kind: Kind,
        from: Option<usize>,
        text: impl FnOnce() -> String,
    ) {
        if self.tracing() {
            let name = self.names[node].clone();
            let from = from.map(|f| self.names[f].clone());
            self.record(&name, kind, from, &text());
        }
    }

    /// Is anyone listening: a replay recording its trace, or a `tracing` subscriber for the
    /// timeline (`MQCHECK_LOG=mqcheck::timeline=debug`)?
    pub fn tracing(&self) -> bool {
        self.trace.is_some() || tracing::enabled!(target: "mqcheck::timeline", Level::DEBUG)
    }

    /// A line from the nemesis: a fault taking effect.
    pub fn note(&mut self, text: &str) {
        self.record("nemesis", Kind::Nemesis, None, text);
    }

    /// A line from the nemesis: a fault's end, the heal.
    pub fn note_recovery(&mut self, text: &str) {
        self.record("nemesis", Kind::Recovery, None, text);
    }

    fn record(&mut self, who: &str, kind: Kind, from: Option<String>, text: &str) {
        let time_ms = self.now_ms();
        tracing::debug!(target: "mqcheck::timeline", time_ms, node = who, "{text}");
        if let Some(trace) = &mut self.trace {
            trace.push(TraceLine {
                time_ms,
                node: who.to_string(),
                kind,
                from,
                text: text.to_string(),
            });
        }
    }

    /// Opens a connection between `a` and `b` (the handshake is not modelled): a new
    /// incarnation, shared by both ends.
    fn connect(&mut self, a: usize, b: usize) {
        let epoch = self.links[a][b].epoch.max(self.links[b][a].epoch) + 1;
        for (x, y) in [(a, b), (b, a)] {
            let peer_incarnation = self.incarnation[y];
            let link = &mut self.links[x][y];
            link.epoch = epoch;
            link.next_seq = 0;
            link.open = true;
            link.peer_incarnation = peer_incarnation;
            link.refused = false;
            link.held.clear();
        }
    }

    /// Both ends of the connection between `a` and `b` are gone.
    fn drop_connection(&mut self, a: usize, b: usize) {
        for (x, y) in [(a, b), (b, a)] {
            self.links[x][y].open = false;
            self.links[x][y].held.clear();
        }
    }

    /// A process crashed (`kill -9`): its kernel closes every connection it held, so each peer
    /// reads what was already sent on it and then the close. What a partition holds up still
    /// goes out at the heal: the kernel keeps retransmitting an orphaned socket.
    pub fn crash(&mut self, node: usize) -> Vec<Delivery<Msg<S>>> {
        let mut closes = Vec::new();
        for peer in (0..self.names.len()).filter(|p| *p != node) {
            let link = &mut self.links[node][peer];
            if link.open {
                let close = Packet {
                    src: node,
                    epoch: link.epoch,
                    seq: Some(link.next_seq),
                    msg: None,
                };
                link.next_seq += 1;
                link.open = false;
                if link.cuts > 0 {
                    self.hold(node, peer, close);
                } else {
                    closes.push(Delivery {
                        dst: peer,
                        delay: Duration::ZERO,
                        packets: vec![close],
                    });
                }
            }
            self.inboxes[node][peer] = Inbox::default();
        }
        self.down[node] = true;
        self.crashed[node] = true;
        closes
    }

    /// A machine lost power: nothing is sent, nothing it held back goes out; its peers keep
    /// their ends of the connections until their own timeouts, or a reset once it is back.
    pub fn power_off(&mut self, node: usize) {
        for peer in (0..self.names.len()).filter(|p| *p != node) {
            self.links[node][peer].open = false;
            self.links[node][peer].held.clear();
            self.inboxes[node][peer] = Inbox::default();
        }
        self.down[node] = true;
        self.crashed[node] = false;
    }

    /// A (re)started process is listening: a new incarnation, with no connection yet.
    pub fn come_up(&mut self, node: usize) {
        self.incarnation[node] += 1;
        for peer in (0..self.names.len()).filter(|p| *p != node) {
            self.links[node][peer].open = false;
            self.links[node][peer].refused = false;
            self.links[peer][node].refused = false;
            self.inboxes[node][peer] = Inbox::default();
        }
        self.down[node] = false;
        self.crashed[node] = false;
    }

    fn hold(&mut self, src: usize, dst: usize, packet: Packet<Msg<S>>) {
        let now = self.now_ms();
        let link = &mut self.links[src][dst];
        if link.held.is_empty() {
            link.held_since_ms = now;
        }
        link.held.push(packet);
    }

    /// A cut on `src → dst` is lifted: once no partition cuts it, what it held goes out with
    /// TCP's next retransmission — or, if TCP gave up meanwhile, the connection is reset.
    pub fn uncut(&mut self, src: usize, dst: usize) -> Vec<Delivery<Msg<S>>> {
        let now = self.now_ms();
        let link = &mut self.links[src][dst];
        link.cuts -= 1;
        if link.cuts > 0 || link.held.is_empty() {
            return Vec::new();
        }
        let packets = std::mem::take(&mut link.held);
        match tcp::delivery_after(link.held_since_ms, now) {
            Some(at) => vec![Delivery {
                dst,
                delay: Duration::from_millis(at - now),
                packets,
            }],
            None => {
                let epoch = link.epoch;
                self.drop_connection(src, dst);
                let reset = |from| Packet {
                    src: from,
                    epoch,
                    seq: None,
                    msg: None,
                };
                // The sender's TCP has given up: both applications see the connection end.
                [(src, dst), (dst, src)]
                    .map(|(from, to)| Delivery {
                        dst: to,
                        delay: Duration::ZERO,
                        packets: vec![reset(from)],
                    })
                    .into()
            }
        }
    }

    /// Decides the fate of one message `src → dst`.
    pub fn transmit(&mut self, src: usize, dst: usize, msg: Msg<S>) -> Fate<Msg<S>> {
        let loss = self.loss.values().copied().max().unwrap_or(0);
        let duplicate = self.duplicate.values().copied().max().unwrap_or(0);
        let reorder = !self.reorder.is_empty();
        let link = &self.links[src][dst];
        if link.open && link.peer_incarnation != self.incarnation[dst] {
            // The peer restarted since this connection opened: its new kernel resets it, and
            // the sender, told so now, reads nothing more of the old connection.
            self.drop_connection(src, dst);
            self.inboxes[src][dst].live = false;
            return Fate::Refused;
        }
        if self.down[dst] && !self.crashed[dst] {
            // A machine without power answers nothing: the segment is retransmitted into the
            // void and the connection stays open, until the machine, back, resets it.
            return Fate::Dropped;
        }
        if self.down[dst] {
            let link = &mut self.links[src][dst];
            link.open = false;
            if link.cuts == 0 && !std::mem::replace(&mut link.refused, true) {
                return Fate::Refused; // the machine is up: its kernel refuses the connection
            }
            return Fate::Dropped;
        }
        if !self.links[src][dst].open {
            self.connect(src, dst);
        }
        let link = &mut self.links[src][dst];
        let epoch = link.epoch;
        let mut rng = thread_rng();
        let (seq, mut delay) = if reorder {
            (None, rng.gen_range(Duration::ZERO..REORDER_DELAY))
        } else {
            link.next_seq += 1;
            (Some(link.next_seq - 1), Duration::ZERO)
        };
        let packet = Packet {
            src,
            epoch,
            seq,
            msg: Some(msg),
        };
        if link.cuts > 0 {
            self.hold(src, dst, packet);
            return Fate::Held;
        }
        let mut drops = 0;
        while loss > 0 && drops < MAX_DROPS && rng.gen_range(0..1000) < loss {
            drops += 1;
        }
        delay += Duration::from_millis(tcp::loss_delay_ms(drops));
        let copy = (duplicate > 0 && rng.gen_range(0..1000) < duplicate).then(|| {
            let copy = Packet {
                seq: None,
                ..packet.clone()
            };
            (copy, rng.gen_range(Duration::ZERO..REORDER_DELAY))
        });
        Fate::Sent {
            packet,
            delay,
            copy,
        }
    }

    /// Accepts a packet at `dst`, adding to `ready` the messages now deliverable in order
    /// (`None` for the end of a connection).
    pub fn receive(&mut self, dst: usize, packet: Packet<Msg<S>>, ready: &mut Vec<Option<Msg<S>>>) {
        let src = packet.src;
        if self.down[dst] {
            return; // the process is gone; its peer learns from the close or its next segment
        }
        if self.links[src][dst].cuts > 0 && packet.seq.is_some() {
            // In the air when the cut began: it is retransmitted after the heal.
            self.hold(src, dst, packet);
            return;
        }
        let inbox = &mut self.inboxes[dst][src];
        match packet.epoch.cmp(&inbox.epoch) {
            std::cmp::Ordering::Less => return, // an older connection, since replaced
            std::cmp::Ordering::Greater => {
                if inbox.live {
                    ready.push(None); // the peer's new connection ends the old one
                }
                *inbox = Inbox {
                    epoch: packet.epoch,
                    ..Inbox::default()
                };
            }
            std::cmp::Ordering::Equal => {}
        }
        let Some(seq) = packet.seq else {
            // Outside the stream: a duplicate or reordered packet, or a reset.
            if packet.msg.is_none() {
                inbox.live = false;
                self.links[dst][src].open = false;
            }
            ready.push(packet.msg);
            return;
        };
        if seq < inbox.expected {
            return;
        }
        inbox.pending.insert(seq, packet.msg);
        let mut closed = false;
        while let Some(msg) = inbox.pending.remove(&inbox.expected) {
            inbox.expected += 1;
            inbox.live = msg.is_some();
            closed |= msg.is_none();
            ready.push(msg);
            if closed {
                inbox.pending.clear();
                break;
            }
        }
        if closed && self.links[dst][src].epoch == packet.epoch {
            self.links[dst][src].open = false;
        }
    }

    /// Hands `delivery` to its receiver's node after its delay, on a task of that node: it
    /// dies with the receiver, and survives the sender (the sender's kernel retransmits).
    pub fn deliver_later(&self, delivery: Delivery<Msg<S>>) {
        let Some(node) = Handle::current().get_node(self.ids[delivery.dst]) else {
            return;
        };
        let addr = self.addrs[delivery.dst];
        node.spawn(async move {
            if !delivery.delay.is_zero() {
                sleep(delivery.delay).await;
            }
            let Ok(endpoint) = Endpoint::bind("0.0.0.0:0").await else {
                return;
            };
            for packet in delivery.packets {
                let _ = endpoint.send_to_raw(addr, TAG, Box::new(packet)).await;
            }
        });
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
