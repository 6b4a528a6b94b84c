//! The checked model: a broker's actors, driven with stateright's actor semantics on a timed
//! network, with every placement of a bounded set of faults explored.
//!
//! Time is explicit: a timer fires at the deadline its actor asked for (the start of its range),
//! packets in flight are delivered before time moves (one connection at a time, in one of two
//! orders across connections), so a run without faults is one deterministic timeline. The checker's choices are the
//! nemesis' (which fault, where, at which step) and the clients' random draws (pace, processing
//! time). This is lineage-driven fault injection's view of a system (Alvaro et al., "Molly",
//! SIGMOD 2015) rather than an untimed actor model's: an untimed model lets any timeout fire at any
//! moment, so the Kafka controller would expire every healthy broker's session and the state
//! space explodes before a single record is acknowledged (docs/model-checking.md has the figures).

use crate::bounds::Bounds;
use mqcheck_brokers::{Durable, Node, Role, System};
use mqcheck_faults::{clock, tcp, Fault};
use mqcheck_invariants::History;
use stateright::actor::{Actor, Command, Id, Out};
use stateright::{Model, Property};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::{self, Debug};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// How long a crashed node stays down (simulated ms): a quick bounce, back within the brokers'
/// session timeouts (Kafka's `broker.session.timeout.ms` is 9 s), or an outage that outlasts them.
/// Each crash is explored with both.
pub const DOWNTIMES_MS: [u64; 2] = [1_000, 10_000];

/// At most this many steps are followed in one stretch without storing a state (a bound that
/// only a livelocked model could reach).
const FOLLOW_LIMIT: usize = 100_000;

/// The reduction stores the state a followed run reaches when its clock passes a multiple of
/// this (simulated ms): runs that meet again after their last branch are merged there.
const CHECKPOINT_MS: u64 = 1_000;

/// How long a partition lasts (simulated ms).
pub const PARTITION_MS: u64 = 10_000;

/// How long a pause lasts (simulated ms): past the brokers' session timeouts, so a paused
/// leader comes back as a zombie.
pub const PAUSE_MS: u64 = 10_000;

/// How long a node's clock runs fast ([`clock::FAST`]) under the `clock` fault (simulated ms).
pub const CLOCK_MS: u64 = 10_000;

/// One step of a checked run, over a broker's message, timer and random-choice types.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step<M, T, R> {
    /// The network hands `msg` to `dst`.
    Deliver { src: Id, dst: Id, msg: M },
    /// The earliest timer fires (at simulated time `at`).
    Timeout { node: Id, timer: T, at: u64 },
    /// A node draws one of the values its application may draw.
    Random { node: Id, key: String, value: R },
    /// The process dies: volatile state lost, its connections broken, its page cache kept; it
    /// restarts from its disk `down_ms` later (one of [`DOWNTIMES_MS`]).
    Crash { node: Id, down_ms: u64 },
    /// The machine dies: only what the node fsynced survives; it restarts `down_ms` later.
    PowerLoss { node: Id, down_ms: u64 },
    /// The node starts again from what survived on its disk.
    Restart { node: Id, at: u64 },
    /// The segment at the head of the `src → dst` connection is lost: it and everything behind it
    /// wait for TCP's retransmission ([`tcp::RTO_MIN_MS`] later).
    Lose(Id, Id),
    /// The `src → dst` connection's retransmission goes out at `at`, after a loss or a heal.
    Retransmit { src: Id, dst: Id, at: u64 },
    /// The packet at the head of the `src → dst` connection is delivered twice (beyond TCP).
    Duplicate(Id, Id),
    /// The first two packets of the `src → dst` connection swap places (beyond TCP).
    Reorder(Id, Id),
    /// A node is cut off from every other node for [`PARTITION_MS`]: its connections' segments
    /// wait.
    Isolate(Id),
    /// The partition heals.
    Heal { at: u64 },
    /// The process stops for [`PAUSE_MS`]: no timer fires, nothing is read.
    Pause(Id),
    /// The paused process resumes with its old view.
    Resume { node: Id, at: u64 },
    /// The node's clock runs fast for [`CLOCK_MS`]: the timers it sets fire early.
    ClockFast(Id),
    /// The node's clock is correct again.
    ClockCorrect { node: Id, at: u64 },
}

/// What the nemesis has done so far on this path: the budgets, what is down, the partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NemesisRecord {
    /// Process faults used: crashes, power losses, pauses, clock faults (`--max-crashes`).
    pub crashes: u8,
    /// Network faults used: losses, duplicates, reorders, partitions (`--max-net-faults`).
    pub net_faults: u8,
    /// The faults that struck on this path (a bit per [`Fault::ALL`] index; coverage).
    pub struck: u8,
    /// Down nodes and when they restart.
    pub restarts: BTreeMap<Id, u64>,
    /// Down nodes whose machine is up (a process crash): their kernel refuses connections.
    pub crashed: BTreeSet<Id>,
    /// The isolated node, when the partition began and when it heals.
    pub isolated: Option<(Id, u64, u64)>,
    /// The paused node and when it resumes.
    pub paused: Option<(Id, u64)>,
    /// The node whose clock runs fast, and until when.
    pub fast_clock: Option<(Id, u64)>,
    /// When the nemesis last acted (a fault, a restart, a heal): the drain runs from there.
    pub last_act: u64,
    /// The nodes seen leading something, in the order they first led (coverage).
    pub leaders: Vec<Id>,
    /// This run's delivery order: connections in descending rather than ascending
    /// `(source, destination)` order. Both are explored, so either side of the most common
    /// races (a follower's fetch response against the producer's acknowledgement) is tried.
    pub reverse_delivery: bool,
}

impl NemesisRecord {
    /// Notes that `fault` struck.
    fn strike(&mut self, fault: Fault, now: u64) {
        let bit = Fault::ALL.iter().position(|f| *f == fault).expect("listed");
        self.struck |= 1 << bit;
        self.last_act = now;
    }

    /// Has `fault` struck on this path?
    pub fn struck(&self, fault: Fault) -> bool {
        let bit = Fault::ALL.iter().position(|f| *f == fault).expect("listed");
        self.struck & (1 << bit) != 0
    }

    /// Does a partition cut the connection `src → dst` now?
    fn cuts(&self, src: Id, dst: Id) -> bool {
        self.isolated
            .is_some_and(|(id, _, _)| id == src || id == dst)
    }
}

/// What each end knows of its TCP connections (the simulator's `Link`s, without the bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Connections {
    /// `(a, b)`: `a` holds an open connection to `b`, opened when `b` had this incarnation.
    pub open: BTreeMap<(Id, Id), u32>,
    /// How many times each node has restarted.
    pub incarnation: BTreeMap<Id, u32>,
    /// `(a, b)`: a connection attempt from `a` to the crashed `b` was refused in this downtime.
    pub refused: BTreeSet<(Id, Id)>,
    /// Connections whose segments wait for a retransmission, and when it goes out.
    pub retransmit: BTreeMap<(Id, Id), u64>,
    /// Connections a partition holds up, and when their first waiting segment was sent: TCP's
    /// retransmission timer runs from there.
    pub held_since: BTreeMap<(Id, Id), u64>,
}

impl Connections {
    fn incarnation(&self, id: Id) -> u32 {
        self.incarnation.get(&id).copied().unwrap_or(0)
    }
}

/// One node in a state.
pub struct Slot<S: System> {
    /// `None` while the process is down.
    pub state: Option<Arc<<S::Actor as Actor>::State>>,
    pub storage: Option<S::Storage>,
    /// Armed timers and their deadlines. (Shared with the parent state until this node changes
    /// them: a step touches one node, and copying every node's maps for every successor cost
    /// about a tenth of the checker's time.)
    pub timers: Arc<BTreeMap<<S::Actor as Actor>::Timer, u64>>,
    /// Pending random draws, by key.
    pub randoms: Arc<BTreeMap<String, Vec<<S::Actor as Actor>::Random>>>,
}

impl<S: System> Clone for Slot<S> {
    fn clone(&self) -> Self {
        Slot {
            state: self.state.clone(),
            storage: self.storage.clone(),
            timers: self.timers.clone(),
            randoms: self.randoms.clone(),
        }
    }
}

impl<S: System> Hash for Slot<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.state.hash(h);
        self.storage.hash(h);
        self.timers.hash(h);
        self.randoms.hash(h);
    }
}

impl<S: System> PartialEq for Slot<S> {
    fn eq(&self, o: &Self) -> bool {
        self.state == o.state
            && self.storage == o.storage
            && self.timers == o.timers
            && self.randoms == o.randoms
    }
}

type Msg<S> = <<S as System>::Actor as Actor>::Msg;
/// Per-connection FIFO queues of packets in flight, as `Network::new_ordered` keeps them (each
/// shared with the parent state until a step changes it).
pub type Channels<S> = BTreeMap<(Id, Id), Arc<VecDeque<Msg<S>>>>;
/// The steps of broker `S`'s checked model.
pub type StepOf<S> =
    Step<Msg<S>, <<S as System>::Actor as Actor>::Timer, <<S as System>::Actor as Actor>::Random>;

/// A state of the checked model.
pub struct CheckState<S: System> {
    /// Simulated time, in ms.
    pub now: u64,
    pub nodes: Vec<Slot<S>>,
    pub network: Channels<S>,
    /// Shared with the parent state until a step changes it (most steps only read it).
    pub connections: Arc<Connections>,
    /// When each entry of each client's application log appeared (simulated ms), so the checkers'
    /// explanations tell the time of an acknowledgement or a delivery.
    pub observed: Vec<Arc<Vec<u64>>>,
    pub nemesis: NemesisRecord,
    /// The nodes' names by id, shared by every state of a model, so the Explorer's view of a
    /// state names the nodes (no part of the state's identity: not hashed, not compared).
    pub names: Arc<Vec<String>>,
    /// What the checkers say of the clients' application logs, computed once and shared by
    /// every state a step reaches without changing a log (no part of the state's identity: it
    /// is a function of the logs, which are).
    pub(crate) facts: Arc<OnceLock<crate::properties::LogFacts>>,
}

impl<S: System> Clone for CheckState<S> {
    fn clone(&self) -> Self {
        CheckState {
            now: self.now,
            nodes: self.nodes.clone(),
            network: self.network.clone(),
            connections: self.connections.clone(),
            observed: self.observed.clone(),
            nemesis: self.nemesis.clone(),
            names: Arc::clone(&self.names),
            facts: Arc::clone(&self.facts),
        }
    }
}

impl<S: System> Hash for CheckState<S> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.now.hash(h);
        self.nodes.hash(h);
        self.network.hash(h);
        self.connections.hash(h);
        self.observed.hash(h);
        self.nemesis.hash(h);
    }
}

impl<S: System> PartialEq for CheckState<S> {
    fn eq(&self, o: &Self) -> bool {
        self.now == o.now
            && self.nodes == o.nodes
            && self.network == o.network
            && self.connections == o.connections
            && self.observed == o.observed
            && self.nemesis == o.nemesis
    }
}

impl<S: System> CheckState<S> {
    /// This state's representative under time translation, for stateright's symmetry reduction
    /// (`mqcheck check --symmetry`). The actors never read the clock, only their timers, and the
    /// checkers' verdicts read no times, so two states that differ by a shift of every time in
    /// them (now, deadlines, restarts, the heal, the nemesis' last act) have the same futures,
    /// shifted. The representative moves the origin to the nemesis' last act, the earliest time
    /// the future depends on, and drops the observation times, which only date explanations.
    pub fn representative(&self) -> Self {
        let origin = self.nemesis.last_act;
        let mut rep = self.clone();
        rep.now -= origin;
        // Before the nemesis acts the origin is 0: nothing to shift, and no timer map to copy.
        for slot in rep
            .nodes
            .iter_mut()
            .filter(|s| origin > 0 && !s.timers.is_empty())
        {
            for at in Arc::make_mut(&mut slot.timers).values_mut() {
                *at -= origin;
            }
        }
        for at in rep.nemesis.restarts.values_mut() {
            *at -= origin;
        }
        if let Some((_, since, heal)) = &mut rep.nemesis.isolated {
            *since = since.saturating_sub(origin);
            *heal -= origin;
        }
        for (_, at) in rep
            .nemesis
            .paused
            .iter_mut()
            .chain(&mut rep.nemesis.fast_clock)
        {
            *at -= origin;
        }
        if origin > 0 {
            let conns = Arc::make_mut(&mut rep.connections);
            for at in conns
                .retransmit
                .values_mut()
                .chain(conns.held_since.values_mut())
            {
                *at = at.saturating_sub(origin);
            }
        }
        rep.nemesis.last_act = 0;
        for times in &mut rep.observed {
            *times = Arc::default();
        }
        // Without the times the history is empty: the facts of the logs are not shared with it.
        rep.facts = Arc::default();
        rep
    }
}

impl<S: System> Debug for CheckState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::describe::state::<S>(self, f)
    }
}

/// A broker's actors under bounded faults, as a stateright [`Model`].
pub struct CheckModel<S: System> {
    pub nodes: Vec<Node<S::Actor>>,
    /// The nodes' names, shared with every state.
    names: Arc<Vec<String>>,
    pub bounds: Bounds,
    /// How long a run goes on after the nemesis' last act if it does not settle (simulated ms).
    pub drain: u64,
    pub(crate) properties: Vec<Property<CheckModel<S>>>,
    /// The safety properties' checks, each with whether its first violation was reported (so a
    /// model serves one search: it moves into its checker).
    pub(crate) safety: Vec<crate::properties::Safety<S>>,
    /// Set to end the search early ([`CheckModel::stop`]).
    stop: Arc<AtomicBool>,
    /// Has the search judged at-least-once at the end of some run?
    pub(crate) judged_an_end: AtomicBool,
    /// Follow single-step stretches without storing them ([`CheckModel::unreduced`]).
    reduce: bool,
    /// Steps the reduction took without storing their states ([`CheckModel::followed`]).
    followed: Arc<AtomicUsize>,
    /// The broker's structural invariants, in the order of its safety properties.
    pub(crate) invariants: Vec<mqcheck_brokers::StateInvariant<S>>,
    /// The order the configuration promises ([`System::promise`]), which ordering is judged in.
    pub(crate) promise: mqcheck_invariants::OrderingPromise,
}

impl<S: System> CheckModel<S> {
    pub fn new(system: &S, bounds: Bounds) -> Self {
        let drain = system.drain().as_millis() as u64;
        let (properties, safety) = crate::properties::all(system, &bounds);
        let nodes = system.nodes();
        CheckModel {
            names: Arc::new(nodes.iter().map(|n| n.name.clone()).collect()),
            nodes,
            bounds,
            drain,
            properties,
            safety,
            stop: Arc::default(),
            judged_an_end: AtomicBool::new(false),
            reduce: true,
            followed: Arc::default(),
            invariants: S::invariants(),
            promise: system.promise(),
        }
    }

    /// A switch that ends the search under way (a limit, Ctrl-C), to keep before the model moves
    /// into its checker. Once it is on, states already generated are still taken from the
    /// queue, but none gets successors and no safety property is judged in them, so the queue
    /// empties at once and every safety verdict stands over the states judged before: held in
    /// all of them, or violated in one. (Coverage still notes what those states reach: they were
    /// reached.) Switched off again once the search is over, the model gives every state its
    /// steps, as paths are rebuilt from them.
    pub fn stop(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Was the search stopped early?
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Did the search reach the end of a run, where at-least-once is judged? Without one,
    /// at-least-once was not judged at all.
    pub fn judged_an_end(&self) -> bool {
        self.judged_an_end.load(Ordering::Relaxed)
    }

    pub fn name(&self, id: Id) -> &str {
        &self.nodes[usize::from(id)].name
    }

    fn allows(&self, fault: Fault) -> bool {
        self.bounds.faults.contains(fault)
    }

    /// Applies an actor's commands at time `state.now`, as stateright's `ActorModel` does, but
    /// remembering each timer's deadline.
    fn apply(&self, state: &mut CheckState<S>, id: Id, out: Out<S::Actor>) {
        let i = usize::from(id);
        for command in out {
            match command {
                Command::Send(dst, msg) => self.transmit(state, id, dst, msg),
                Command::SetTimer(timer, range) => {
                    let delay = range.start.as_millis() as u64;
                    let delay = match state.nemesis.fast_clock {
                        Some((node, _)) if node == id => clock::scaled(delay, clock::FAST),
                        _ => delay,
                    };
                    let at = state.now + delay;
                    Arc::make_mut(&mut state.nodes[i].timers).insert(timer, at);
                }
                Command::CancelTimer(timer) => {
                    Arc::make_mut(&mut state.nodes[i].timers).remove(&timer);
                }
                Command::ChooseRandom(key, values) => {
                    if values.is_empty() {
                        Arc::make_mut(&mut state.nodes[i].randoms).remove(&key);
                    } else {
                        Arc::make_mut(&mut state.nodes[i].randoms).insert(key, values);
                    }
                }
                Command::Save(storage) => state.nodes[i].storage = Some(storage),
            }
        }
    }

    /// One send `src → dst`, by TCP's rules: on the open connection, or a new one; refused by
    /// the kernel of a crashed process (once a downtime) and reset by a restarted one; silently
    /// gone to a machine without power.
    fn transmit(&self, state: &mut CheckState<S>, src: Id, dst: Id, msg: Msg<S>) {
        let current = &state.connections;
        let stale = current
            .open
            .get(&(src, dst))
            .is_some_and(|inc| *inc != current.incarnation(dst));
        let down = state.nodes[usize::from(dst)].state.is_none();
        if down && !stale && !state.nemesis.crashed.contains(&dst) {
            // A machine without power answers nothing: the connection stays open until the
            // machine, back, resets it.
            return;
        }
        let cut = state.nemesis.cuts(src, dst);
        if !stale && !down && current.open.contains_key(&(src, dst)) && !cut {
            // The common case: an open connection, nothing to note.
            Arc::make_mut(state.network.entry((src, dst)).or_default()).push_back(msg);
            return;
        }
        let conns = Arc::make_mut(&mut state.connections);
        if stale || down {
            conns.open.remove(&(src, dst));
            let refused = stale
                || (state.nemesis.crashed.contains(&dst)
                    && !cut
                    && conns.refused.insert((src, dst)));
            if refused {
                if stale {
                    conns.open.remove(&(dst, src));
                }
                if let Some(reset) = S::reset(dst) {
                    Arc::make_mut(state.network.entry((dst, src)).or_default()).push_back(reset);
                }
            }
            return;
        }
        if !conns.open.contains_key(&(src, dst)) {
            let (a, b) = (conns.incarnation(src), conns.incarnation(dst));
            conns.open.insert((src, dst), b);
            conns.open.insert((dst, src), a);
        }
        Arc::make_mut(state.network.entry((src, dst)).or_default()).push_back(msg);
        if cut {
            conns.held_since.entry((src, dst)).or_insert(state.now);
        }
    }

    /// Runs one handler of node `id` on `state`.
    fn handle(
        &self,
        mut state: CheckState<S>,
        id: Id,
        handler: impl FnOnce(&S::Actor, &mut Cow<<S::Actor as Actor>::State>, &mut Out<S::Actor>),
    ) -> Option<CheckState<S>> {
        let i = usize::from(id);
        let current = Arc::clone(state.nodes[i].state.as_ref()?);
        let mut actor_state = Cow::Borrowed(&*current);
        let mut out = Out::new();
        handler(&self.nodes[i].actor, &mut actor_state, &mut out);
        if let Cow::Owned(s) = actor_state {
            state.nodes[i].state = Some(Arc::new(s));
        }
        self.apply(&mut state, id, out);
        Some(state)
    }

    fn start(&self, state: &mut CheckState<S>, id: Id) {
        let i = usize::from(id);
        let mut out = Out::new();
        let actor_state = self.nodes[i]
            .actor
            .on_start(id, &state.nodes[i].storage, &mut out);
        state.nodes[i].state = Some(Arc::new(actor_state));
        self.apply(state, id, out);
    }

    /// Stamps the client observations made in this step with the current time.
    fn stamp(&self, state: &mut CheckState<S>) {
        for (slot, times) in state.nodes.iter().zip(state.observed.iter_mut()) {
            let len = slot
                .storage
                .as_ref()
                .and_then(S::app_log)
                .map_or(0, |l| l.len());
            // A power loss never shortens an application log (applications keep theirs whole).
            if len > times.len() {
                Arc::make_mut(times).resize(len, state.now);
            }
        }
    }

    /// Drops emptied connections and notes new leaders.
    fn enforce_links(&self, state: &mut CheckState<S>) {
        state.network.retain(|_, queue| !queue.is_empty());
        for (i, slot) in state.nodes.iter().enumerate() {
            let id = Id::from(i);
            if slot.state.as_ref().is_some_and(|s| S::is_leader(s))
                && !state.nemesis.leaders.contains(&id)
            {
                state.nemesis.leaders.push(id);
            }
        }
    }

    /// The process dies. What was sent to it is gone. On a crash its kernel closes each of its
    /// connections: the peer reads what it sent, then the close. On a power loss nothing more
    /// leaves the machine and its peers keep their ends open.
    fn kill(&self, mut next: CheckState<S>, id: Id, down_ms: u64, power: bool) -> CheckState<S> {
        let i = usize::from(id);
        let now = next.now;
        let slot = &mut next.nodes[i];
        slot.state = None;
        slot.timers = Arc::default();
        slot.randoms = Arc::default();
        if power {
            slot.storage = slot.storage.as_ref().map(Durable::after_power_loss);
        }
        next.network
            .retain(|(src, dst), _| *dst != id && !(power && *src == id));
        let conns = Arc::make_mut(&mut next.connections);
        conns
            .retransmit
            .retain(|(src, dst), _| *dst != id && !(power && *src == id));
        conns
            .held_since
            .retain(|(src, dst), _| *dst != id && !(power && *src == id));
        let peers: Vec<Id> = conns
            .open
            .keys()
            .filter(|(a, _)| *a == id)
            .map(|(_, b)| *b)
            .collect();
        for peer in peers {
            conns.open.remove(&(id, peer));
            if !power {
                if let Some(close) = S::reset(id) {
                    Arc::make_mut(next.network.entry((id, peer)).or_default()).push_back(close);
                }
            }
        }
        if !power {
            next.nemesis.crashed.insert(id);
        }
        next.nemesis.crashes += 1;
        next.nemesis
            .strike(if power { Fault::Power } else { Fault::Crash }, now);
        next.nemesis.restarts.insert(id, now + down_ms);
        next
    }

    /// Can the head of `src → dst` be delivered now: no partition cuts it, no retransmission is
    /// awaited, and its receiver is not paused?
    fn deliverable(&self, state: &CheckState<S>, src: Id, dst: Id) -> bool {
        !state.nemesis.cuts(src, dst)
            && !state.connections.retransmit.contains_key(&(src, dst))
            && state.nemesis.paused.is_none_or(|(p, _)| p != dst)
    }

    /// The next scheduled event when nothing can be delivered: the earliest timer, restart,
    /// retransmission, resume, heal or clock correction.
    fn next_event(&self, state: &CheckState<S>) -> Option<StepOf<S>> {
        let mut best: Option<(u64, StepOf<S>)> = None;
        let mut consider = |at: u64, step: StepOf<S>| {
            if best.as_ref().is_none_or(|(t, _)| at < *t) {
                best = Some((at, step));
            }
        };
        let n = &state.nemesis;
        for (node, at) in &n.restarts {
            consider(
                *at,
                Step::Restart {
                    node: *node,
                    at: *at,
                },
            );
        }
        if let Some((_, _, at)) = n.isolated {
            consider(at, Step::Heal { at });
        }
        if let Some((node, at)) = n.paused {
            consider(at, Step::Resume { node, at });
        }
        if let Some((node, at)) = n.fast_clock {
            consider(at, Step::ClockCorrect { node, at });
        }
        for ((src, dst), at) in &state.connections.retransmit {
            if !n.cuts(*src, *dst) {
                consider(
                    *at,
                    Step::Retransmit {
                        src: *src,
                        dst: *dst,
                        at: *at,
                    },
                );
            }
        }
        for (i, slot) in state.nodes.iter().enumerate() {
            let node = Id::from(i);
            if n.paused.is_some_and(|(p, _)| p == node) {
                continue; // its timers fire when it resumes
            }
            for (timer, at) in slot.timers.iter() {
                // A timer that fell due while its node was paused fires as it resumes.
                let at = (*at).max(state.now);
                consider(
                    at,
                    Step::Timeout {
                        node,
                        timer: timer.clone(),
                        at,
                    },
                );
            }
        }
        best.map(|(_, step)| step)
    }

    /// Does `action` apply to `state`: is its node up, its connection's packet there, its
    /// partition in place? [`CheckModel::step`] takes exactly the steps that apply.
    fn applies(&self, state: &CheckState<S>, action: &StepOf<S>) -> bool {
        let up = |node: &Id| state.nodes[usize::from(*node)].state.is_some();
        let queued = |src: &Id, dst: &Id, n: usize| {
            state
                .network
                .get(&(*src, *dst))
                .is_some_and(|q| q.len() >= n)
        };
        match action {
            Step::Deliver { src, dst, .. } => queued(src, dst, 1) && up(dst),
            Step::Timeout { node, .. } | Step::Random { node, .. } => up(node),
            Step::Duplicate(src, dst) => queued(src, dst, 1),
            Step::Reorder(src, dst) => queued(src, dst, 2),
            Step::Heal { .. } => state.nemesis.isolated.is_some(),
            _ => true,
        }
    }

    /// One step of the run, exactly as `action` says, on `after` (`None` if it does not apply).
    fn step(&self, mut after: CheckState<S>, action: StepOf<S>) -> Option<CheckState<S>> {
        if !self.applies(&after, &action) {
            return None;
        }
        let now = after.now;
        let logs = self.logs(&after);
        let mut next = match action {
            Step::Deliver { src, dst, msg } => {
                let queue = Arc::make_mut(after.network.get_mut(&(src, dst))?);
                queue.pop_front();
                if queue.is_empty() {
                    after.network.remove(&(src, dst));
                }
                if S::reset(src).is_some_and(|close| close == msg) {
                    Arc::make_mut(&mut after.connections)
                        .open
                        .remove(&(dst, src)); // this end saw the close
                }
                self.handle(after, dst, |actor, s, o| actor.on_msg(dst, s, src, msg, o))?
            }
            Step::Timeout { node, timer, at } => {
                after.now = at;
                Arc::make_mut(&mut after.nodes[usize::from(node)].timers).remove(&timer);
                self.handle(after, node, |actor, s, o| {
                    actor.on_timeout(node, s, &timer, o)
                })?
            }
            Step::Random { node, key, value } => {
                Arc::make_mut(&mut after.nodes[usize::from(node)].randoms).remove(&key);
                self.handle(after, node, |actor, s, o| {
                    actor.on_random(node, s, &value, o)
                })?
            }
            Step::Crash { node, down_ms } => self.kill(after, node, down_ms, false),
            Step::PowerLoss { node, down_ms } => self.kill(after, node, down_ms, true),
            Step::Restart { node, at } => {
                after.now = at;
                after.nemesis.restarts.remove(&node);
                after.nemesis.crashed.remove(&node);
                after.nemesis.last_act = at;
                let conns = Arc::make_mut(&mut after.connections);
                *conns.incarnation.entry(node).or_default() += 1;
                conns.refused.retain(|(_, b)| *b != node);
                self.start(&mut after, node);
                after
            }
            Step::Lose(src, dst) => {
                after.nemesis.net_faults += 1;
                after.nemesis.strike(Fault::Loss, now);
                Arc::make_mut(&mut after.connections)
                    .retransmit
                    .insert((src, dst), now + tcp::RTO_MIN_MS);
                after
            }
            Step::Retransmit { src, dst, at } => {
                after.now = at;
                Arc::make_mut(&mut after.connections)
                    .retransmit
                    .remove(&(src, dst));
                after
            }
            Step::Duplicate(src, dst) => {
                after.nemesis.net_faults += 1;
                after.nemesis.strike(Fault::Duplicate, now);
                let queue = Arc::make_mut(after.network.get_mut(&(src, dst))?);
                let head = queue.front()?.clone();
                queue.push_front(head);
                after
            }
            Step::Reorder(src, dst) => {
                after.nemesis.net_faults += 1;
                after.nemesis.strike(Fault::Reorder, now);
                Arc::make_mut(after.network.get_mut(&(src, dst))?).swap(0, 1);
                after
            }
            Step::Isolate(id) => {
                after.nemesis.net_faults += 1;
                after.nemesis.strike(Fault::Partition, now);
                after.nemesis.isolated = Some((id, now, now + PARTITION_MS));
                // What is in the air when the cut begins waits from now.
                let cut: Vec<(Id, Id)> = after
                    .network
                    .keys()
                    .filter(|(s, d)| *s == id || *d == id)
                    .copied()
                    .collect();
                for link in cut {
                    Arc::make_mut(&mut after.connections)
                        .held_since
                        .insert(link, now);
                }
                after
            }
            Step::Heal { at } => {
                let (id, _, _) = after.nemesis.isolated.take()?;
                after.now = at;
                after.nemesis.last_act = at;
                // What waited goes out with TCP's next retransmission after the heal, timed from
                // the first waiting segment's transmission.
                let waiting: Vec<(Id, Id)> = after
                    .network
                    .keys()
                    .filter(|(src, dst)| *src == id || *dst == id)
                    .copied()
                    .collect();
                for link in waiting {
                    let since = Arc::make_mut(&mut after.connections)
                        .held_since
                        .remove(&link)
                        .unwrap_or(at);
                    let resend = tcp::delivery_after(since, at).unwrap_or(at);
                    let due = Arc::make_mut(&mut after.connections)
                        .retransmit
                        .entry(link)
                        .or_insert(resend);
                    *due = (*due).max(resend);
                }
                Arc::make_mut(&mut after.connections)
                    .held_since
                    .retain(|(src, dst), _| *src != id && *dst != id);
                after
            }
            Step::Pause(id) => {
                after.nemesis.crashes += 1;
                after.nemesis.strike(Fault::Pause, now);
                after.nemesis.paused = Some((id, now + PAUSE_MS));
                after
            }
            Step::Resume { at, .. } => {
                after.now = at;
                after.nemesis.paused = None;
                after.nemesis.last_act = at;
                after
            }
            Step::ClockFast(id) => {
                after.nemesis.crashes += 1;
                after.nemesis.strike(Fault::Clock, now);
                after.nemesis.fast_clock = Some((id, now + CLOCK_MS));
                after
            }
            Step::ClockCorrect { at, .. } => {
                after.now = at;
                after.nemesis.fast_clock = None;
                after.nemesis.last_act = at;
                after
            }
        };
        self.enforce_links(&mut next);
        self.stamp(&mut next);
        if self.logs(&next) != logs {
            next.facts = Arc::default();
        }
        Some(next)
    }

    /// The clients' application logs in `state` (cheap: persistent vectors, shared).
    fn logs(&self, state: &CheckState<S>) -> Vec<Option<mqcheck_brokers::AppLog>> {
        state
            .nodes
            .iter()
            .map(|slot| slot.storage.as_ref().and_then(S::app_log).cloned())
            .collect()
    }

    /// Follows the run from `state`, the successor of the stored state `parent`, for as long
    /// as it has one step and every property has the value it has in `parent` ("Reduction" in
    /// `docs/model-checking.md`). The states passed over have one successor each and the values
    /// of `parent`, which the search judges, so no search branches there and no verdict,
    /// counterexample or coverage can come from them that `parent` does not give. Returns the
    /// first state where a value changes, where the run branches (a fault can be placed, a draw
    /// is due) or ends, or where the clock passes a multiple of [`CHECKPOINT_MS`] (so that two
    /// runs that meet again are merged by the search within a checkpoint, not followed twice to
    /// their ends).
    fn follow(&self, parent: &CheckState<S>, mut state: CheckState<S>) -> CheckState<S> {
        if !self.reduce {
            return state;
        }
        let values = crate::properties::values(self, parent);
        let mut actions = Vec::new();
        for _ in 0..FOLLOW_LIMIT {
            if crate::properties::values(self, &state) != values {
                return state;
            }
            actions.clear();
            self.actions(&state, &mut actions);
            let [only] = actions.as_slice() else {
                return state;
            };
            if !self.applies(&state, only) {
                return state;
            }
            let only = only.clone();
            let window = state.now / CHECKPOINT_MS;
            state = self
                .step(state, only)
                .unwrap_or_else(|| unreachable!("a step that applies is taken"));
            self.followed.fetch_add(1, Ordering::Relaxed);
            if state.now / CHECKPOINT_MS != window {
                return state;
            }
        }
        state
    }

    /// How many steps the reduction has taken without storing their states, shared with the
    /// search: read it when the search is done (rebuilding a counterexample's path replays
    /// steps, and counts them again).
    pub fn followed(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.followed)
    }

    /// A path of the reduced search with every step it followed, in order: what the run did,
    /// for counterexamples and diagrams. Each followed stretch is replayed from its first state,
    /// one step at a time, until it reaches the next state of the path.
    pub fn unfold(
        &self,
        path: &stateright::Path<CheckState<S>, StepOf<S>>,
    ) -> Vec<(CheckState<S>, Option<StepOf<S>>)> {
        let pairs = path.clone().into_vec();
        let mut out = Vec::new();
        for window in pairs.windows(2) {
            let (mut state, action) = (window[0].0.clone(), window[0].1.clone());
            let target = &window[1].0;
            let mut action = action.expect("a step leads to the next state");
            loop {
                let Some(next) = self.step(state.clone(), action.clone()) else {
                    break;
                };
                out.push((state, Some(action)));
                if &next == target {
                    break;
                }
                let mut actions = Vec::new();
                self.actions(&next, &mut actions);
                match actions.as_slice() {
                    [only] => action = only.clone(),
                    _ => break,
                }
                state = next;
            }
        }
        if let Some(last) = pairs.last() {
            out.push((last.0.clone(), None));
        }
        out
    }

    /// Turns the reduction off (`check --unreduced`): every state of every run is stored and
    /// judged, as stateright would without it.
    pub fn unreduced(mut self) -> Self {
        self.reduce = false;
        self
    }

    /// The clients' observations so far.
    pub fn history(&self, state: &CheckState<S>) -> History {
        let mut history = History::default();
        for ((node, slot), times) in self.nodes.iter().zip(&state.nodes).zip(&state.observed) {
            if let Some(log) = slot.storage.as_ref().and_then(S::app_log) {
                for (op, at) in log.iter().zip(times.iter()) {
                    history.push(*at, node.name.clone(), op.clone());
                }
            }
        }
        history
    }

    /// Has this run ended: every fault healed, nothing in flight, and either every client is
    /// settled (every message sent and answered, each acknowledged one delivered), or the drain
    /// time has passed since the nemesis' last act (the simulator's final drain), or nothing
    /// is armed to happen ever again?
    pub fn ended(&self, state: &CheckState<S>) -> bool {
        state.network.is_empty()
            && state.nemesis.restarts.is_empty()
            && state.nemesis.isolated.is_none()
            && state.nemesis.paused.is_none()
            && state.nemesis.fast_clock.is_none()
            && (state.now >= state.nemesis.last_act + self.drain
                || self.next_event(state).is_none()
                || crate::properties::settled(self, state))
    }
}

impl<S: System> Model for CheckModel<S> {
    type State = CheckState<S>;
    type Action = StepOf<S>;

    fn init_states(&self) -> Vec<Self::State> {
        let mut state = CheckState {
            now: 0,
            nodes: self
                .nodes
                .iter()
                .map(|_| Slot {
                    state: None,
                    storage: None,
                    timers: Arc::default(),
                    randoms: Arc::default(),
                })
                .collect(),
            network: BTreeMap::new(),
            connections: Arc::default(),
            observed: vec![Arc::default(); self.nodes.len()],
            nemesis: NemesisRecord::default(),
            names: Arc::clone(&self.names),
            facts: Arc::default(),
        };
        for i in 0..self.nodes.len() {
            self.start(&mut state, Id::from(i));
        }
        self.enforce_links(&mut state);
        let mut reverse = state.clone();
        reverse.nemesis.reverse_delivery = true;
        vec![state, reverse]
    }

    fn actions(&self, state: &Self::State, actions: &mut Vec<Self::Action>) {
        if self.stopped() || self.ended(state) {
            return;
        }
        // Random draws come first: they fix the clients' pace before anything happens. A paused
        // process draws when it resumes, as in the simulator, where its clock task is stopped.
        for (i, slot) in state.nodes.iter().enumerate() {
            if state
                .nemesis
                .paused
                .is_some_and(|(p, _)| usize::from(p) == i)
            {
                continue;
            }
            if let Some((key, values)) = slot.randoms.iter().next() {
                for value in values {
                    actions.push(Step::Random {
                        node: Id::from(i),
                        key: key.clone(),
                        value: value.clone(),
                    });
                }
                return;
            }
        }
        // Packets in flight go before time moves, one connection at a time; which connection
        // goes first is the run's delivery order, drawn at the start.
        let mut ready = state
            .network
            .iter()
            .filter(|((src, dst), _)| self.deliverable(state, *src, *dst));
        let head = if state.nemesis.reverse_delivery {
            ready.next_back()
        } else {
            ready.next()
        };
        if let Some(((src, dst), queue)) = head {
            actions.push(Step::Deliver {
                src: *src,
                dst: *dst,
                msg: queue.front().expect("empty queues are removed").clone(),
            });
        } else if let Some(event) = self.next_event(state) {
            actions.push(event);
        }

        let n = &state.nemesis;
        // Process faults, at any step.
        if usize::from(n.crashes) < self.bounds.max_crashes {
            for (i, node) in self.nodes.iter().enumerate() {
                let id = Id::from(i);
                if !self.bounds.workload.faulty(node.role) || state.nodes[i].state.is_none() {
                    continue;
                }
                for down_ms in DOWNTIMES_MS {
                    if self.allows(Fault::Crash) {
                        actions.push(Step::Crash { node: id, down_ms });
                    }
                    if self.allows(Fault::Power) {
                        actions.push(Step::PowerLoss { node: id, down_ms });
                    }
                }
                if self.allows(Fault::Pause) && n.paused.is_none() {
                    actions.push(Step::Pause(id));
                }
                if self.allows(Fault::Clock) && n.fast_clock.is_none() {
                    actions.push(Step::ClockFast(id));
                }
            }
        }
        // Network faults, on what is in flight.
        if usize::from(n.net_faults) < self.bounds.max_net_faults {
            for ((src, dst), queue) in &state.network {
                if self.allows(Fault::Loss) && self.deliverable(state, *src, *dst) {
                    actions.push(Step::Lose(*src, *dst));
                }
                if self.allows(Fault::Duplicate) {
                    actions.push(Step::Duplicate(*src, *dst));
                }
                if self.allows(Fault::Reorder) && queue.len() >= 2 {
                    actions.push(Step::Reorder(*src, *dst));
                }
            }
            if self.allows(Fault::Partition) && n.isolated.is_none() {
                for (i, node) in self.nodes.iter().enumerate() {
                    if node.role != Role::Producer && state.nodes[i].state.is_some() {
                        actions.push(Step::Isolate(Id::from(i)));
                    }
                }
            }
        }
    }

    fn next_state(&self, state: &Self::State, action: Self::Action) -> Option<Self::State> {
        let next = self.step(state.clone(), action)?;
        Some(self.follow(state, next))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.properties.clone()
    }

    fn format_action(&self, action: &Self::Action) -> String {
        crate::describe::step(self, action)
    }

    fn as_svg(&self, path: stateright::Path<Self::State, Self::Action>) -> Option<String> {
        Some(crate::describe::svg(self, &path))
    }
}
