//! The deterministic simulator: any [`System`]'s actors on madsim, under a seeded nemesis.
//!
//! Each actor runs on its own simulated node. Messages cross madsim's network through TCP as it
//! is ([`world`], with the rules of [`mqcheck_faults::tcp`]): a FIFO stream per connection without
//! gaps or duplicates; a segment lost or held up by a partition is retransmitted, so loss and
//! partitions are delay; a connection ends only when its process dies (the kernel closes it:
//! peers read what was sent, then the close) or its peer's machine comes back from a power loss
//! (the next segment draws a reset). Behind a partition, after a power loss and during a pause,
//! peers hear nothing and their own timeouts decide. Timers run on madsim's clock, scaled by the
//! node's clock rate under the `clock` fault; `save()`d storage lives outside the nodes and
//! survives a crash (and, trimmed to what was fsynced, a power loss). Random choices draw from
//! madsim's seeded generator.
//!
//! A seed decides everything: madsim's scheduling and latencies, and — through
//! [`Schedule::generate`] — which faults this run enables (swarm testing), where they strike and
//! for how long. After the fault window the nemesis heals everything and the system drains, as
//! Jepsen's final reads do, before the checkers see the history.
//!
//! Nothing here knows any broker: brokers plug in through [`mqcheck_brokers::System`].

pub mod fault;
mod file;
mod node;
mod run;
mod sweep;
pub mod trace;
pub mod world;

pub use fault::{Cast, Fault, FaultOp, FaultSet, Outcome, Schedule, ScheduledFault, Split, Target};
pub use file::{FileViolation, ScheduleFile};
pub use run::{cast, run, Run};
pub use sweep::{sweep, sweep_with, SeedResult, Tally, Violated};
pub use trace::{Filter, Kind, Shown, TraceLine};

use mqcheck_brokers::System;
use mqcheck_invariants::{check, History, Invariant, MsgId, Op, OrderingPromise, Violation};
use std::collections::BTreeMap;

/// The schedule a seed draws for `system` when `allowed` faults are permitted.
pub fn schedule_for<S: System>(system: &S, seed: u64, allowed: &FaultSet) -> Schedule {
    Schedule::generate(
        seed,
        allowed,
        &cast(system),
        system.fault_window().as_millis() as u64,
    )
}

/// The violations of `checks` (and always of `no-unexpected`) in a history, ordering judged
/// inside `promise`.
pub fn evaluate(
    history: &History,
    checks: &[Invariant],
    promise: &OrderingPromise,
) -> Vec<Violation> {
    checks
        .iter()
        .copied()
        .chain([Invariant::NoUnexpected])
        .flat_map(|i| check(i, history, promise))
        .collect()
}

/// The violations of `checks` in a run; in a run its time limit cut short, only the losses
/// `known_lost` keeps.
pub fn judge<S: System>(system: &S, r: &Run, checks: &[Invariant]) -> Vec<Violation> {
    let mut violations = evaluate(&r.history, checks, &system.promise());
    if !r.complete {
        let grace_ms = system.drain().as_millis() as u64;
        let stored = system.stores_messages();
        violations.retain(|v| {
            v.invariant != Invariant::AtLeastOnce
                || known_lost(&r.history, &v.msgs, r.simulated_ms, grace_ms, stored)
        });
    }
    violations
}

/// A run its time limit cut short never finished its final drain, so a message it did not
/// deliver is unseen, not yet known to be lost (Jepsen's Kafka checker tells `unseen` from
/// `lost-write` the same way). It counts as lost only if it was acknowledged at least `grace_ms`
/// (the broker's drain) before the end, `end_ms`, and, where the system may still hold it
/// (`stored`), the consumers delivered a message acknowledged after it: they were reading past
/// it. A broker that stopped serving (its clients unable to reach the live master, say) has lost
/// nothing by that alone.
fn known_lost(history: &History, msgs: &[MsgId], end_ms: u64, grace_ms: u64, stored: bool) -> bool {
    let mut acked = BTreeMap::new();
    for e in &history.events {
        if let Op::Ack { msg } = &e.op {
            acked.entry(*msg).or_insert(e.time_ms);
        }
    }
    // The latest acknowledgement among the messages the consumers delivered.
    let read_up_to = history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Deliver { msg, .. } => acked.get(msg).copied(),
            _ => None,
        })
        .max();
    msgs.iter().all(|m| {
        acked.get(m).is_some_and(|&t| {
            t + grace_ms <= end_ms && (!stored || read_up_to.is_some_and(|past| past > t))
        })
    })
}

/// Shrinks a failing schedule: first whole kinds of fault (keeps one kind alone if it still
/// fails, else drops each kind that is not needed), so a violation one kind of fault causes alone
/// is attributed to that kind; then single faults; then shortens them, keeping every change after
/// which `invariant` is still violated, by the same kind of anomaly as the original run's first
/// violation, under the same seed. At most `budget` runs.
pub fn shrink<S: System>(
    system: &S,
    seed: u64,
    schedule: &Schedule,
    invariant: Invariant,
    budget: usize,
) -> Schedule {
    let promise = system.promise();
    let violations = |candidate: &Schedule| {
        let r = run(system, seed, candidate, false);
        check(invariant, &r.history, &promise)
    };
    // The same anomaly, not just the same invariant: a dead-letter that happens without any
    // fault must not take over a loss the faults caused, nor its attribution.
    let kind = violations(schedule).first().map(|v| v.kind);
    let runs = std::cell::Cell::new(1);
    let fails = |candidate: &Schedule| {
        runs.set(runs.get() + 1);
        let vs = violations(candidate);
        match kind {
            Some(k) => vs.iter().any(|v| v.kind == k),
            None => !vs.is_empty(),
        }
    };
    let mut best = schedule.clone();
    let mut kinds: Vec<Fault> = best.faults.iter().map(|f| f.op.fault()).collect();
    kinds.sort();
    kinds.dedup();
    let alone = kinds.iter().take(budget).find_map(|kind| {
        let mut candidate = best.clone();
        candidate.faults.retain(|f| f.op.fault() == *kind);
        (kinds.len() > 1 && fails(&candidate)).then_some(candidate)
    });
    if let Some(candidate) = alone {
        best = candidate;
    } else {
        for kind in kinds {
            if runs.get() >= budget {
                break;
            }
            let mut candidate = best.clone();
            candidate.faults.retain(|f| f.op.fault() != kind);
            if fails(&candidate) {
                best = candidate;
            }
        }
    }
    let mut progress = true;
    while progress && runs.get() < budget {
        progress = false;
        let mut i = 0;
        while i < best.faults.len() && runs.get() < budget {
            let mut candidate = best.clone();
            candidate.faults.remove(i);
            if fails(&candidate) {
                best = candidate;
                progress = true;
            } else {
                i += 1;
            }
        }
        for i in 0..best.faults.len() {
            if runs.get() >= budget {
                break;
            }
            if best.faults[i].for_ms > 1000 {
                let mut candidate = best.clone();
                candidate.faults[i].for_ms /= 2;
                if fails(&candidate) {
                    best = candidate;
                    progress = true;
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::known_lost;
    use mqcheck_invariants::{History, MsgId, Op};

    fn msg(seq: u32) -> MsgId {
        MsgId { producer: 0, seq }
    }

    fn sent_and_acked(n: u32) -> History {
        let mut h = History::default();
        for seq in 0..n {
            let op = Op::Send {
                msg: msg(seq),
                scope: 0,
                audience: vec![0],
                key: None,
            };
            let at = u64::from(seq) * 100;
            h.push(at, "p0", op);
            h.push(at + 10, "p0", Op::Ack { msg: msg(seq) });
        }
        h
    }

    fn deliver(h: &mut History, time_ms: u64, seq: u32) {
        let op = Op::Deliver {
            msg: msg(seq),
            group: 0,
            consumer: 0,
            scope: 0,
            position: None,
            session: 1,
            redelivered: None,
        };
        h.push(time_ms, "c0", op);
    }

    #[test]
    fn a_broker_that_stopped_serving_has_lost_nothing_yet() {
        let h = sent_and_acked(3);
        assert!(!known_lost(&h, &[msg(0)], 100_000, 1_000, true));
        // Where nothing holds an undelivered message, it is gone once the drain has passed.
        assert!(known_lost(&h, &[msg(0)], 100_000, 1_000, false));
    }

    #[test]
    fn consumers_reading_past_a_message_witness_its_loss() {
        let mut h = sent_and_acked(3);
        deliver(&mut h, 500, 2);
        assert!(known_lost(&h, &[msg(0)], 100_000, 1_000, true));
        // Nothing acknowledged after the last message was delivered: it is only unseen.
        assert!(!known_lost(&h, &[msg(2)], 100_000, 1_000, true));
    }

    #[test]
    fn a_message_acknowledged_within_the_drain_of_the_end_may_be_on_its_way() {
        let mut h = sent_and_acked(3);
        deliver(&mut h, 500, 2);
        assert!(!known_lost(&h, &[msg(0)], 1_000, 1_000, false));
        assert!(known_lost(&h, &[msg(0)], 1_010, 1_000, true));
    }
}
