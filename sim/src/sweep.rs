//! Many seeds at once: one madsim runtime per seed, spread over the machine's cores. Each run is
//! folded into a [`Tally`] as it finishes and then dropped, so a sweep of a million seeds needs
//! the memory of one; the tally is the same whatever order the threads finish in, so a sweep's
//! report is deterministic.

use crate::{judge, run, schedule_for, FaultSet, Schedule};
use mqcheck_brokers::System;
use mqcheck_invariants::{Invariant, Violation};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct SeedResult {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub simulated_ms: u64,
    pub delivered: u64,
    pub deliveries: usize,
    pub sends: usize,
    pub acks: usize,
    /// Multipart messages and transactions the clients ended (see `History::atomic_units`).
    pub atomic_units: usize,
    /// The time limit did not cut the run short (see [`crate::Run::complete`]).
    pub complete: bool,
    pub faults_applied: u32,
    /// See [`crate::Run::faults_in_flight`].
    pub faults_in_flight: u32,
    /// See [`crate::Run::leader_elections`].
    pub leader_elections: u32,
}

/// How often one invariant was violated in a sweep, and its violation in the lowest seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violated {
    pub runs: u64,
    pub first_seed: u64,
    pub first: Violation,
}

/// What a sweep keeps of its runs: sums, and per invariant the runs that violated it with the
/// lowest seed's violation. Its size does not depend on the number of seeds, and adding runs in
/// any order gives the same tally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub runs: u64,
    /// Runs the time limit cut short.
    pub incomplete: u64,
    pub sends: u64,
    pub acks: u64,
    pub deliveries: u64,
    pub atomic_units: u64,
    pub faults_applied: u64,
    pub faults_in_flight: u64,
    pub leader_elections: u64,
    pub simulated_ms: u64,
    pub violated: BTreeMap<Invariant, Violated>,
}

impl Tally {
    pub fn add(&mut self, r: &SeedResult) {
        self.runs += 1;
        self.incomplete += u64::from(!r.complete);
        self.sends += r.sends as u64;
        self.acks += r.acks as u64;
        self.deliveries += r.deliveries as u64;
        self.atomic_units += r.atomic_units as u64;
        self.faults_applied += u64::from(r.faults_applied);
        self.faults_in_flight += u64::from(r.faults_in_flight);
        self.leader_elections += u64::from(r.leader_elections);
        self.simulated_ms += r.simulated_ms;
        let mut seen = Vec::new();
        for v in &r.violations {
            if seen.contains(&v.invariant) {
                continue;
            }
            seen.push(v.invariant);
            let entry = self
                .violated
                .entry(v.invariant)
                .or_insert_with(|| Violated {
                    runs: 0,
                    first_seed: r.seed,
                    first: v.clone(),
                });
            entry.runs += 1;
            if r.seed < entry.first_seed {
                (entry.first_seed, entry.first) = (r.seed, v.clone());
            }
        }
    }
}

/// Runs every seed of `seeds`, checks `checks` on each history and folds it into the tally.
/// `on_result` sees each run as it finishes (in no fixed order: for progress and streaming
/// output); when it returns `false` the sweep starts no further seed, and the tally covers the
/// runs finished so far.
pub fn sweep<S: System>(
    system: &S,
    seeds: Range<u64>,
    faults: &FaultSet,
    checks: &[Invariant],
    on_result: &(dyn Fn(&SeedResult) -> bool + Sync),
) -> Tally {
    sweep_with(
        system,
        seeds,
        &|seed| schedule_for(system, seed, faults),
        checks,
        on_result,
    )
}

/// [`sweep`] with each seed's schedule from `schedule` instead of drawn from the seed (a schedule
/// file runs its one schedule).
pub fn sweep_with<S: System>(
    system: &S,
    seeds: Range<u64>,
    schedule: &(dyn Fn(u64) -> Schedule + Sync),
    checks: &[Invariant],
    on_result: &(dyn Fn(&SeedResult) -> bool + Sync),
) -> Tally {
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let schedule = schedule(seed);
                let r = run(system, seed, &schedule, false);
                let result = SeedResult {
                    seed,
                    violations: judge(system, &r, checks),
                    simulated_ms: r.simulated_ms,
                    delivered: r.delivered,
                    deliveries: r.history.deliveries(),
                    sends: r.history.sends(),
                    acks: r.history.acks(),
                    atomic_units: r.history.atomic_units(),
                    complete: r.complete,
                    faults_applied: r.faults_applied,
                    faults_in_flight: r.faults_in_flight,
                    leader_elections: r.leader_elections,
                };
                tally.lock().unwrap_or_else(|e| e.into_inner()).add(&result);
                if !on_result(&result) {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
    });
    tally.into_inner().unwrap_or_else(|e| e.into_inner())
}
