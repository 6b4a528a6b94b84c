//! One seeded run: build the nodes on madsim, play the fault schedule, heal, drain, collect.

use crate::fault::{self, Cast, FaultOp, Outcome, Schedule, Split, Target};
use crate::node;
use crate::trace::TraceLine;
use crate::world::{lock, Shared, World};
use madsim::rand::{seq::SliceRandom, thread_rng};
use madsim::runtime::{Handle, Runtime};
use madsim::task::NodeId;
use madsim::time::{sleep, sleep_until, Instant};
use mqcheck_brokers::System;
use mqcheck_faults::clock;
use mqcheck_invariants::History;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the drain looks whether the run has settled.
const SETTLE_POLL: Duration = Duration::from_secs(1);
/// How long a settled run must stay quiet before the checkers look.
const SETTLE_GRACE: Duration = Duration::from_secs(10);

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Run {
    pub seed: u64,
    pub history: History,
    pub trace: Vec<TraceLine>,
    pub simulated_ms: u64,
    /// Messages the network delivered to actors.
    pub delivered: u64,
    /// `false` when the time limit cut the run short: the producers had not sent the whole
    /// workload and the history had not settled, so it says little about what was never sent.
    pub complete: bool,
    /// Faults that took effect on a node or a link (a crash with no live target did not).
    pub faults_applied: u32,
    /// Of those, the faults that struck while a message was in flight: the history not yet
    /// settled ([`mqcheck_invariants::History::settled`]) — a send not yet answered, an
    /// acknowledged message some group had not yet been delivered, or a rewound consumer still
    /// reading back.
    pub faults_in_flight: u32,
    /// Times a node became a leader after the first fault took effect.
    pub leader_elections: u32,
    /// What each fault of the schedule did, in the schedule's order.
    pub outcomes: Vec<Outcome>,
}

/// The nodes as the nemesis sees them.
pub fn cast<S: System>(system: &S) -> Cast {
    use mqcheck_brokers::Role;
    let nodes = system.nodes();
    let workload = system.workload();
    let faulty: Vec<usize> = (0..nodes.len())
        .filter(|i| workload.faulty(nodes[*i].role))
        .collect();
    Cast {
        names: nodes.iter().map(|n| n.name.clone()).collect(),
        clients: faulty
            .iter()
            .copied()
            .filter(|i| matches!(nodes[*i].role, Role::Producer | Role::Consumer))
            .collect(),
        faulty,
    }
}

/// Runs `system` under `schedule` with madsim seeded by `seed`. Same inputs, same run.
pub fn run<S: System>(system: &S, seed: u64, schedule: &Schedule, trace: bool) -> Run {
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let system = system.clone();
    let schedule = schedule.clone();
    runtime.block_on(async move {
        let handle = Handle::current();
        let nodes = system.nodes();
        let servers: Vec<usize> = (0..nodes.len())
            .filter(|i| nodes[*i].role == mqcheck_brokers::Role::Server)
            .collect();
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let addrs: Vec<SocketAddr> = (0..nodes.len())
            .map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8)), 9092))
            .collect();
        let drain = system.drain();
        let sends = system.sends();
        let world: Shared<S> = Arc::new(Mutex::new(World::new(names.clone(), trace)));
        let ids: Vec<NodeId> = nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let (world, addrs, actor) = (world.clone(), addrs.clone(), n.actor);
                handle
                    .create_node()
                    .name(&n.name)
                    .ip(addrs[i].ip())
                    .init(move || {
                        node::run::<S>(i, actor.clone(), world.clone(), Rc::new(addrs.clone()))
                    })
                    .build()
                    .id()
            })
            .collect();
        let start = {
            let mut w = lock(&world);
            w.ids = ids.clone();
            w.addrs = addrs.clone();
            w.start
        };
        let mut nemesis = Nemesis {
            world: world.clone(),
            handle,
            ids,
            servers,
            active: vec![None; schedule.faults.len()],
            outcomes: vec![Outcome::NotStarted; schedule.faults.len()],
            in_flight: 0,
        };
        // Ends sort before starts at the same instant, so a fault never overlaps its successor.
        let mut timeline: Vec<(u64, bool, usize)> = Vec::new();
        let window_ms = schedule.window_ms;
        let window = Duration::from_millis(window_ms);
        for (i, f) in schedule.faults.iter().enumerate() {
            let (begin, end) = (f.at_ms, (f.at_ms + f.for_ms).min(window_ms));
            if begin < end {
                timeline.push((begin, true, i));
                timeline.push((end, false, i));
            }
        }
        timeline.sort();
        for (at_ms, starts, i) in timeline {
            let at = start + Duration::from_millis(at_ms);
            if at > Instant::now() {
                sleep_until(at).await;
            }
            if starts {
                nemesis.begin(i, &schedule.faults[i].op);
            } else {
                nemesis.end(i, &schedule.faults[i].op);
            }
        }
        if start + window > Instant::now() {
            sleep_until(start + window).await;
        }
        lock(&world).note_recovery("fault window over: everything healed; draining");
        // Drain until the history has nothing left to wait for and has been quiet for a while
        // (clients may still be sending, late duplicates may still show); at most `drain` after
        // the fault window, which each broker sized for a workload that fits in its longest
        // window, or after the workload's own time at its pace when that is longer.
        let workload = system.workload_time();
        let limit = if workload > system.fault_window() {
            (window + drain).max(workload + drain)
        } else {
            window + drain
        };
        let deadline = start + limit;
        // Cut short: the producers had not sent everything and the history had not settled.
        // (A lossy broker's history never settles, and a producer blocked for good, like a plain
        // REQ whose request was lost, never finishes: neither is the time limit's doing.)
        let done = |w: &World<S>| w.history.settled() || w.history.sends() >= sends;
        let (mut seen, mut quiet_since) = (0, Instant::now());
        while Instant::now() < deadline {
            let events = lock(&world).history.events.len();
            if events != seen {
                (seen, quiet_since) = (events, Instant::now());
            } else if Instant::now() >= quiet_since + SETTLE_GRACE && lock(&world).history.settled()
            {
                break;
            }
            sleep(SETTLE_POLL).await;
        }
        let run = {
            let w = lock(&world);
            Run {
                seed,
                history: w.history.clone(),
                trace: w.trace.clone().unwrap_or_default(),
                simulated_ms: w.now_ms(),
                delivered: w.delivered,
                complete: done(&w),
                faults_applied: nemesis
                    .outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Took { .. }))
                    .count() as u32,
                faults_in_flight: nemesis.in_flight,
                leader_elections: w.leader_elections,
                outcomes: nemesis.outcomes.clone(),
            }
        };
        // madsim does not drain its ready queue when the runtime is dropped, and a queued task
        // holds the queue's sender: whatever is still queued would keep itself, its node's state
        // and the queue alive forever, about 100 KB a run. Killing every node wakes its tasks,
        // and one yield lets the executor drop them all before `block_on` returns.
        for id in &nemesis.ids {
            nemesis.handle.kill(*id);
        }
        yield_once().await;
        run
    })
}

/// Returns to the executor once, so it runs everything else that is ready first.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// What an active fault did, so its end can undo exactly that.
#[derive(Clone, Debug)]
enum Applied {
    Down(Vec<usize>),
    Paused(Vec<usize>),
    Cut(Vec<(usize, usize)>),
    Network,
    Clock(Vec<usize>),
}

struct Nemesis<S: System> {
    world: Shared<S>,
    handle: Handle,
    ids: Vec<NodeId>,
    /// Faulty nodes that are not clients.
    servers: Vec<usize>,
    active: Vec<Option<Applied>>,
    /// What each fault did.
    outcomes: Vec<Outcome>,
    /// Faults that took effect while a message was in flight.
    in_flight: u32,
}

impl<S: System> Nemesis<S> {
    /// The nodes a targeted fault hits now: the named node, or the current leader — and when no
    /// live node leads anything (leaders are down or fenced), some live server, so faults keep
    /// piling onto the cluster the way Jepsen's "primaries" nemesis does. None, and why, when
    /// every node it could hit is already down or paused.
    fn resolve(&self, target: Target) -> Result<Vec<usize>, String> {
        let w = lock(&self.world);
        // A node already down or paused is left to the fault that holds it.
        let busy = |i: &usize| w.down[*i] || w.paused[*i];
        let live: Vec<usize> = self.servers.iter().copied().filter(|i| !busy(i)).collect();
        let mut hit: Vec<usize> = match target {
            Target::Node(i) => vec![i],
            Target::Leader => live
                .iter()
                .copied()
                .find(|i| w.leader[*i])
                .or_else(|| live.choose(&mut thread_rng()).copied())
                .into_iter()
                .collect(),
            Target::Majority => {
                let n = self.servers.len() / 2 + 1;
                live.choose_multiple(&mut thread_rng(), n)
                    .copied()
                    .collect()
            }
        };
        hit.retain(|i| *i < w.names.len() && !busy(i));
        hit.sort();
        if !hit.is_empty() {
            return Ok(hit);
        }
        Err(match target {
            Target::Node(i) if i >= w.names.len() => format!("there is no node {i}"),
            Target::Node(i) if w.down[i] => format!("{} already down", w.names[i]),
            Target::Node(i) => format!("{} already paused", w.names[i]),
            _ if self.servers.is_empty() => "no server to hit".to_string(),
            _ if self.servers.iter().all(|i| w.down[*i]) => "every server already down".to_string(),
            _ => "every server already down or paused".to_string(),
        })
    }

    fn names(&self, nodes: &[usize]) -> String {
        let w = lock(&self.world);
        nodes
            .iter()
            .map(|i| w.names[*i].clone())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Starts fault `i`, noting what it did, or why it did nothing.
    fn begin(&mut self, i: usize, op: &FaultOp) {
        match self.apply(i, op) {
            Ok((applied, what)) => {
                self.active[i] = Some(applied);
                self.outcomes[i] = Outcome::Took { what, until_ms: 0 };
                let mut w = lock(&self.world);
                w.faulted = true;
                self.in_flight += u32::from(!w.history.settled());
            }
            Err(why) => self.outcomes[i] = Outcome::NoEffect(why),
        }
    }

    /// What fault `i` does to the nodes and links now, and its effect in a few words.
    fn apply(&mut self, i: usize, op: &FaultOp) -> Result<(Applied, String), String> {
        Ok(match op {
            FaultOp::Crash { target } | FaultOp::Power { target } => {
                let nodes = self.resolve(*target)?;
                let what = if matches!(op, FaultOp::Power { .. }) {
                    "power loss"
                } else {
                    "crash"
                };
                let names = self.names(&nodes);
                let mut w = lock(&self.world);
                for node in &nodes {
                    if matches!(op, FaultOp::Power { .. }) {
                        w.power_off(*node);
                    } else {
                        for close in w.crash(*node) {
                            w.deliver_later(close);
                        }
                    }
                }
                w.note(&format!("{what}: {names} down"));
                drop(w);
                for node in &nodes {
                    self.handle.kill(self.ids[*node]);
                }
                (Applied::Down(nodes), format!("{names} down"))
            }
            FaultOp::Pause { target } => {
                let nodes = self.resolve(*target)?;
                let names = self.names(&nodes);
                let mut w = lock(&self.world);
                w.note(&format!("pause {names}"));
                for node in &nodes {
                    w.paused[*node] = true;
                }
                drop(w);
                for node in &nodes {
                    self.handle.pause(self.ids[*node]);
                }
                (Applied::Paused(nodes), format!("{names} paused"))
            }
            FaultOp::Partition { split } => {
                let mut w = lock(&self.world);
                let n = w.names.len();
                let (side, both) = match split {
                    Split::IsolateLeader => {
                        let leader = (0..n).find(|i| w.leader[*i]);
                        if leader.is_none() {
                            return Err("no node leads anything".to_string());
                        }
                        (leader.into_iter().collect::<Vec<_>>(), true)
                    }
                    Split::Halves(side) => (side.clone(), true),
                    Split::OneWay(side) => (side.clone(), false),
                };
                let mut cut = Vec::new();
                for a in side.iter().copied().filter(|a| *a < n) {
                    for b in (0..n).filter(|b| !side.contains(b)) {
                        cut.push((a, b));
                        if both {
                            cut.push((b, a));
                        }
                    }
                }
                if cut.is_empty() {
                    return Err("it cuts no link".to_string());
                }
                for (a, b) in &cut {
                    w.links[*a][*b].cuts += 1;
                }
                let names: Vec<String> = side.iter().map(|i| w.names[*i].clone()).collect();
                let side = format!("{{{}}}", names.join(","));
                let (how, what) = if both {
                    ("partition", format!("{side} cut off from the rest"))
                } else {
                    (
                        "one-way partition",
                        format!("{side} cannot send to the rest"),
                    )
                };
                w.note(&format!("{how}: {side} | rest"));
                (Applied::Cut(cut), what)
            }
            FaultOp::Loss { per_mille } | FaultOp::Duplicate { per_mille } => {
                let mut w = lock(&self.world);
                if matches!(op, FaultOp::Loss { .. }) {
                    w.loss.insert(i, *per_mille);
                } else {
                    w.duplicate.insert(i, *per_mille);
                }
                let text = format!("{} begins", op.what(&w.names));
                w.note(&text);
                (Applied::Network, "in effect".to_string())
            }
            FaultOp::Reorder => {
                let mut w = lock(&self.world);
                w.reorder.insert(i, ());
                let text = format!("{} begins", op.what(&w.names));
                w.note(&text);
                (Applied::Network, "in effect".to_string())
            }
            FaultOp::Clock { target, rate } => {
                let nodes = self.resolve(*target)?;
                let names = self.names(&nodes);
                let mut w = lock(&self.world);
                for node in &nodes {
                    w.clock[*node].store(*rate, Ordering::Relaxed);
                }
                let what = format!("clock of {names} runs at {}", fault::rate(*rate));
                w.note(&what);
                (Applied::Clock(nodes), what)
            }
        })
    }

    fn end(&mut self, i: usize, op: &FaultOp) {
        let Some(applied) = self.active[i].take() else {
            return;
        };
        let mut w = lock(&self.world);
        if let Outcome::Took { until_ms, .. } = &mut self.outcomes[i] {
            *until_ms = w.now_ms();
        }
        match applied {
            Applied::Down(nodes) => {
                for node in &nodes {
                    if matches!(op, FaultOp::Power { .. }) {
                        w.lose_power(*node);
                    }
                    // Down until its endpoint listens again (`World::come_up`).
                    w.set_leader(*node, false);
                }
                drop(w);
                let names = self.names(&nodes);
                lock(&self.world).note_recovery(&format!("restart {names}"));
                for node in &nodes {
                    self.handle.restart(self.ids[*node]);
                }
            }
            Applied::Paused(nodes) => {
                for node in &nodes {
                    w.paused[*node] = false;
                }
                drop(w);
                let names = self.names(&nodes);
                lock(&self.world).note_recovery(&format!("resume {names}"));
                for node in &nodes {
                    self.handle.resume(self.ids[*node]);
                }
            }
            Applied::Cut(cut) => {
                w.note_recovery("partition heals");
                for (a, b) in cut {
                    for delivery in w.uncut(a, b) {
                        w.deliver_later(delivery);
                    }
                }
            }
            Applied::Clock(nodes) => {
                for node in &nodes {
                    w.clock[*node].store(clock::NORMAL, Ordering::Relaxed);
                }
                drop(w);
                let names = self.names(&nodes);
                lock(&self.world).note_recovery(&format!("clock of {names} correct again"));
            }
            Applied::Network => {
                w.loss.remove(&i);
                w.duplicate.remove(&i);
                w.reorder.remove(&i);
                let what = op.what(&w.names);
                w.note_recovery(&format!("{what} ends"));
            }
        }
    }
}
