//! Many seeds at once: one madsim runtime per seed, spread over the machine's cores. Results come
//! back in seed order whatever the threads did, so a sweep's report is deterministic.

use crate::{judge, run, schedule_for, FaultSet};
use mqcheck_brokers::System;
use mqcheck_invariants::{Invariant, Violation};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// Runs every seed of `seeds` and checks `checks` on each history.
pub fn sweep<S: System>(
    system: &S,
    seeds: Range<u64>,
    faults: &FaultSet,
    checks: &[Invariant],
    on_done: &(dyn Fn() + Sync),
) -> Vec<SeedResult> {
    let next = AtomicU64::new(seeds.start);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let schedule = schedule_for(system, seed, faults);
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
                };
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(result);
                on_done();
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| r.seed);
    results
}
