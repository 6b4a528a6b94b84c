//! The model's side of a comparison: what the broker model allows for a configuration and a
//! fault set, from a seed sweep of the simulator (as `mqcheck sim` runs it) and from the exact
//! fault schedule the real broker is put through.

use mqcheck_brokers::{dispatch, Config, ConfigError, Job, Role, System, Workload};
use mqcheck_invariants::{Invariant, Kind, OrderingPromise};
use mqcheck_sim::{cast, judge, run, sweep, FaultSet, Schedule};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Mutex;

/// The invariants every comparison judges (`mqcheck sim`'s default checks).
pub const CHECKS: [Invariant; 3] = [
    Invariant::AtLeastOnce,
    Invariant::AtMostOnce,
    Invariant::Ordering,
];

/// What the model produced over a set of runs: per invariant, the runs that violated it and
/// every kind of violation seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    pub runs: u64,
    pub violated: BTreeMap<Invariant, (u64, BTreeSet<Kind>)>,
}

impl Kinds {
    fn add(&mut self, violations: &[mqcheck_invariants::Violation]) {
        self.runs += 1;
        let mut seen: BTreeMap<Invariant, BTreeSet<Kind>> = BTreeMap::new();
        for v in violations {
            seen.entry(v.invariant).or_default().insert(v.kind);
        }
        for (inv, kinds) in seen {
            let entry = self.violated.entry(inv).or_default();
            entry.0 += 1;
            entry.1.extend(kinds);
        }
    }

    /// Every kind of violation, whatever the invariant.
    pub fn all(&self) -> BTreeSet<Kind> {
        self.violated
            .values()
            .flat_map(|(_, k)| k.iter().copied())
            .collect()
    }
}

/// One node of the model's cast, for mapping a schedule's targets onto real processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CastNode {
    pub name: String,
    pub role: Role,
}

/// The model's side, ready to compare with a real run.
#[derive(Clone, Debug)]
pub struct ModelSide {
    /// The configuration as the model runs it (defaults filled in).
    pub config: Config,
    pub cast: Vec<CastNode>,
    pub ordering: OrderingPromise,
    /// The seed sweep under the scenario's fault set.
    pub sweep: Kinds,
    /// The exact schedule the real broker was put through, over a few seeds.
    pub schedule: Kinds,
}

/// What to ask of the model.
#[derive(Clone, Debug)]
pub struct ModelQuery {
    pub broker: String,
    pub sets: Vec<String>,
    pub faults: FaultSet,
    pub workload: Workload,
    pub seeds: Range<u64>,
    pub schedule: Schedule,
    pub schedule_seeds: Range<u64>,
}

struct Ask(ModelQuery);

impl Job for Ask {
    type Output = Result<ModelSide, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let q = self.0;
        let config = Config::parse(&q.broker, &S::keys(), &q.sets)?;
        S::validate(&config)?;
        let system = S::build(&config, q.workload);
        let kinds = Mutex::new(Kinds::default());
        sweep(&system, q.seeds.clone(), &q.faults, &CHECKS, &|r| {
            kinds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .add(&r.violations);
            true
        });
        let mut on_schedule = Kinds::default();
        for seed in q.schedule_seeds.clone() {
            let r = run(&system, seed, &q.schedule, false);
            on_schedule.add(&judge(&system, &r, &CHECKS));
        }
        let nodes = system.nodes();
        let names = cast(&system).names;
        Ok(ModelSide {
            config: S::effective(&config),
            cast: names
                .into_iter()
                .zip(nodes)
                .map(|(name, n)| CastNode { name, role: n.role })
                .collect(),
            ordering: system.promise(),
            sweep: kinds.into_inner().unwrap_or_else(|e| e.into_inner()),
            schedule: on_schedule,
        })
    }
}

/// Runs the model: bad input (unknown broker, key, value) is a [`ConfigError`].
pub fn ask(query: ModelQuery) -> Result<ModelSide, ConfigError> {
    dispatch(&query.broker.clone(), Ask(query))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqcheck_sim::{FaultOp, ScheduledFault, Target};

    fn query(sets: &[&str], faults: &str) -> ModelQuery {
        ModelQuery {
            broker: "rabbitmq".into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            faults: faults.parse().unwrap(),
            workload: Workload::new(50, 1, 1),
            seeds: 0..60,
            schedule: Schedule {
                window_ms: 10_000,
                faults: vec![ScheduledFault {
                    at_ms: 2_000,
                    for_ms: 5_000,
                    op: FaultOp::Crash {
                        target: Target::Node(0),
                    },
                }],
            },
            schedule_seeds: 0..3,
        }
    }

    #[test]
    fn automatic_acks_under_crashes_lose_messages_in_the_model() {
        let side = ask(query(&["nodes=1", "auto_ack=true"], "crash")).unwrap();
        assert_eq!(side.sweep.runs, 60);
        assert!(side.sweep.all().contains(&Kind::Lost), "{:?}", side.sweep);
        assert_eq!(side.cast.len(), 3);
        assert_eq!(side.cast[0].role, Role::Server);
    }

    #[test]
    fn without_faults_the_model_violates_nothing() {
        let side = ask(query(&["nodes=1"], "none")).unwrap();
        assert!(side.sweep.violated.is_empty(), "{:?}", side.sweep);
    }

    #[test]
    fn an_unknown_key_is_bad_input() {
        let err = ask(query(&["nodes=1", "no.such.key=1"], "crash")).unwrap_err();
        assert!(err.to_string().contains("no.such.key"), "{err}");
    }
}
