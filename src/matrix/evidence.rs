//! The matrix's exhaustive evidence: each row's bounded model check (`mqcheck check` with small
//! bounds and a state budget) beside its sweeps, and where the two engines disagree — a sweep
//! counterexample the check does not reach within its bounds, or a check counterexample whose
//! fault schedule does not break the guarantee when the simulator plays it.

use super::cells::{Cell, CellVerdict, Class, GUARANTEES};
use crate::check::{Bounded, ModelArgs, Strategy};
use crate::report::Verdict;
use crate::spec::{BrokerArgs, BrokerSetup, Checked, Sizes};
use mqcheck_brokers::{ConfigError, System};
use mqcheck_invariants::{check, Invariant};
use mqcheck_models::describe::{self, StepReport, Told};
use mqcheck_sim::{cast, run, FaultOp, FaultSet, Schedule, ScheduledFault, Split, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The check's bounds: one message, one process fault and one network fault on a path. Larger
/// workloads do not fit a budget of a fraction of a second per row (docs/matrix.md has the
/// figures). The search is depth-first: within a state budget, breadth-first search explores
/// only the first few steps of every path and never sees a run end (where at-least-once is
/// judged), while depth-first search follows whole runs.
const MESSAGES: u32 = 1;
const MAX_CRASHES: usize = 1;
const MAX_NET_FAULTS: usize = 1;

/// The shifts (simulated ms) at which the simulator plays a check counterexample's schedule.
const SHIFTS_MS: [u64; 5] = [0, 5, 10, 20, 40];

/// A row's bounded check, as the JSON carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCheck {
    /// The command that reruns it (`mqcheck check …`).
    pub command: String,
    /// States explored (stateright's count, revisits included) and distinct states.
    pub states: u64,
    pub unique_states: u64,
    /// The state budget stopped the search before it explored everything within its bounds: no
    /// guarantee is "held", only "held within the explored part".
    pub partial: bool,
    /// The coverage properties the search reached ("a record is acknowledged", "a leader
    /// changes", …) and those it did not.
    pub reached: Vec<String>,
    pub unreached: Vec<String>,
    /// Guarantee → the check's verdict on it.
    pub guarantees: BTreeMap<String, GuaranteeCheck>,
}

/// One guarantee in a row's bounded check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuaranteeCheck {
    /// `held`, `held within the explored part`, `violated`, or `not judged` (no run ended within
    /// the explored part, and at-least-once is judged at a run's end).
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub counterexample: Option<CheckCounterexample>,
    /// Where the sweep and the check disagree, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disagreement: Option<String>,
    /// The disagreement's kind.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disagrees: Option<Disagreement>,
}

/// How the two engines disagree on a guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disagreement {
    /// The sweep broke it; the check did not reach a violation within its bounds.
    NotReached,
    /// The check broke it; its schedule, played by the simulator, did not.
    NotReproduced,
    /// The check broke it and the simulator reproduces its schedule, but no seed of the sweep
    /// broke it.
    SweepMissed,
}

impl Disagreement {
    pub fn name(self) -> &'static str {
        match self {
            Disagreement::NotReached => "not reached by the check",
            Disagreement::NotReproduced => "not reproduced in the simulator",
            Disagreement::SweepMissed => "missed by the sweep",
        }
    }
}

/// The shortest path the check found that breaks a guarantee, and whether the simulator
/// reproduces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCounterexample {
    /// Steps on the path.
    pub steps: usize,
    /// The path's story: the steps that matter, routine ones folded.
    pub story: Vec<String>,
    /// The checker's explanation.
    pub why: Vec<String>,
    /// The path's faults as the simulator's schedule, one fault a line.
    pub schedule: Vec<String>,
    /// The lowest simulator seed whose run of that schedule (with the check's workload) breaks
    /// the guarantee too; none: no seed of the matrix's `--seeds` did, at any shift.
    pub reproduced_by_seed: Option<u64>,
    /// How many milliseconds later than on the checked path the schedule's faults struck in
    /// that run (the simulator's network has latency, the model's does not).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shifted_ms: Option<u64>,
}

/// The options `mqcheck check` takes for a row: its settings, the faults of the matrix's
/// classes, and the check's small bounds.
pub fn model_args<S: System>(
    settings: &[String],
    classes: &[Class],
    consumers: u32,
    workload: &crate::spec::WorkloadArgs,
) -> Result<ModelArgs, ConfigError> {
    let mut setup =
        BrokerArgs::<Checked>::new(S::NAME, settings.to_vec(), MESSAGES, workload.clone());
    setup.consumers = consumers.min(Checked::MAX.consumers);
    setup.faults = faults_of(classes).to_string();
    let args = ModelArgs {
        setup,
        max_crashes: MAX_CRASHES,
        max_net_faults: MAX_NET_FAULTS,
        // Unreduced, so the state budget bounds the work: a reduced search follows stretches
        // its budget does not count.
        unreduced: true,
    };
    args.setup.validate::<S>()?;
    Ok(args)
}

/// Every fault the classes sweep.
fn faults_of(classes: &[Class]) -> FaultSet {
    FaultSet(classes.iter().flat_map(|c| c.faults().0).collect())
}

/// The row's bounded check within `max_states`: depth first on one thread, so the same every
/// run, and so free to run beside the row's sweeps.
pub fn bounded_check<S: System>(
    args: &ModelArgs,
    max_states: usize,
) -> Result<Bounded, ConfigError> {
    args.bounded::<S>(Strategy::Dfs, max_states)
}

/// Takes the row's finished bounded check (within `max_states`), replays each of its
/// counterexamples in the simulator over `seeds` seeds, and compares it with the row's cells.
pub fn check_row<S: System>(
    args: &ModelArgs,
    bounded: Bounded,
    max_states: usize,
    seeds: u64,
    cells: &BTreeMap<String, BTreeMap<Class, Cell>>,
) -> Result<RowCheck, ConfigError> {
    let setup = args.setup.validate::<S>()?;
    let system = S::build(&setup.config, setup.workload);
    let the_cast = cast(&system);
    let names = &the_cast.names;
    let mut guarantees = BTreeMap::new();
    for inv in GUARANTEES {
        let Some(p) = bounded.properties.iter().find(|p| p.name == inv.name()) else {
            continue;
        };
        let Some(by_class) = cells.get(inv.name()) else {
            continue;
        };
        if inv == Invariant::Ordering && MESSAGES < 2 {
            guarantees.insert(
                inv.name().to_string(),
                GuaranteeCheck {
                    verdict: "not tested".into(),
                    counterexample: None,
                    disagreement: None,
                    disagrees: None,
                },
            );
            continue;
        }
        let counterexample = (p.verdict == "violated").then(|| {
            let schedule = schedule_of(&p.counterexample, names);
            // The model's network delivers at once, the simulator's after a latency it draws:
            // the schedule is tried as it is and later by each shift.
            let reproduced = SHIFTS_MS
                .iter()
                .flat_map(|&shift| (0..seeds).map(move |seed| (shift, seed)))
                .find(|&(shift, seed)| {
                    let r = run(&system, seed, &shifted(&schedule, shift), false);
                    !check(inv, &r.history, &system.promise()).is_empty()
                });
            CheckCounterexample {
                steps: p.counterexample.len(),
                story: story(&p.counterexample),
                why: p.why.clone(),
                schedule: schedule
                    .faults
                    .iter()
                    .map(|f| f.describe(&the_cast))
                    .collect(),
                reproduced_by_seed: reproduced.map(|(_, seed)| seed),
                shifted_ms: reproduced.map(|(shift, _)| shift),
            }
        });
        let (disagrees, disagreement) = disagreement(
            inv,
            p.verdict,
            counterexample.as_ref(),
            by_class,
            &bounded,
            seeds,
        )
        .unzip();
        guarantees.insert(
            inv.name().to_string(),
            GuaranteeCheck {
                verdict: p.verdict.to_string(),
                counterexample,
                disagreement,
                disagrees,
            },
        );
    }
    let coverage = |reached: bool| {
        bounded
            .properties
            .iter()
            .filter(|p| p.verdict == if reached { "reached" } else { "unreached" })
            .map(|p| p.name.to_string())
            .collect()
    };
    Ok(RowCheck {
        command: command(&setup, args, max_states),
        states: bounded.states as u64,
        unique_states: bounded.unique_states as u64,
        partial: bounded.partial,
        reached: coverage(true),
        unreached: coverage(false),
        guarantees,
    })
}

/// Where the engines disagree on `inv`: the sweep broke it and the check did not, or the check
/// broke it and the simulator does not reproduce its schedule, or reproduces it where the sweep
/// never broke it.
fn disagreement(
    inv: Invariant,
    verdict: &str,
    counterexample: Option<&CheckCounterexample>,
    by_class: &BTreeMap<Class, Cell>,
    bounded: &Bounded,
    seeds: u64,
) -> Option<(Disagreement, String)> {
    let broken = by_class
        .iter()
        .find(|(_, c)| c.verdict == CellVerdict::Broken)
        .and_then(|(class, c)| Some((class, c.counterexample.as_ref()?)));
    match (broken, counterexample) {
        (Some((class, x)), None) => Some((
            Disagreement::NotReached,
            format!(
                "the sweep breaks {inv} under {} ({}, seed {}) but the bounded check did not reach a violation within its bounds ({verdict}, {} states)",
                class.name(),
                x.kind,
                x.seed,
                thousands(bounded.states as u64)
            ),
        )),
        (_, Some(c)) => match c.reproduced_by_seed {
            None => Some((
                Disagreement::NotReproduced,
                format!(
                    "the bounded check's counterexample does not reproduce in the simulator: its schedule, played under {seeds} seeds at each shift of {} ms, never broke {inv}",
                    SHIFTS_MS.map(|s| s.to_string()).join(", ")
                ),
            )),
            Some(seed) if broken.is_none() => Some((
                Disagreement::SweepMissed,
                format!(
                    "the bounded check's counterexample reproduces in the simulator (seed {seed}) but no seed of the sweep broke {inv}"
                ),
            )),
            Some(_) => None,
        },
        (None, None) => None,
    }
}

/// A path's story, one line a step that matters.
fn story(steps: &[StepReport]) -> Vec<String> {
    describe::story(steps)
        .into_iter()
        .map(|told| match told {
            Told::Step(step) => format!("{}. {}", step.index, step.text),
            Told::Folded(1) => "(1 routine step)".into(),
            Told::Folded(n) => format!("({n} routine steps)"),
        })
        .collect()
}

/// The faults of a checked path as a simulator schedule: each fault at the simulated time the
/// path takes it, on the same node, until the step that ends it (a restart, resume, heal or
/// clock correction; the path's end if none). The model loses, duplicates or reorders one
/// segment of one connection; the simulator's nearest fault is a millisecond of it on every
/// link.
pub fn schedule_of(steps: &[StepReport], names: &[String]) -> Schedule {
    let last = steps.last().map_or(0, |s| s.at_ms);
    let mut faults = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let node = s
            .node
            .as_ref()
            .and_then(|n| names.iter().position(|x| x == n))
            .unwrap_or_default();
        let ends = |kinds: &[&str]| {
            steps[i + 1..]
                .iter()
                .find(|e| kinds.contains(&e.kind) && (e.kind == "heal" || e.node == s.node))
                .map_or(last, |e| e.at_ms)
        };
        let target = || Target::Node(node);
        let (op, until) = match s.kind {
            "crash" => (
                FaultOp::Crash { target: target() },
                s.at_ms + s.down_ms.unwrap_or(0),
            ),
            "power-loss" => (
                FaultOp::Power { target: target() },
                s.at_ms + s.down_ms.unwrap_or(0),
            ),
            "pause" => (FaultOp::Pause { target: target() }, ends(&["resume"])),
            "isolate" => (
                FaultOp::Partition {
                    split: Split::Halves(vec![node]),
                },
                ends(&["heal"]),
            ),
            "clock-fast" => (
                FaultOp::Clock {
                    target: target(),
                    rate: mqcheck_faults::clock::FAST,
                },
                ends(&["clock-correct"]),
            ),
            "lose" => (FaultOp::Loss { per_mille: 1000 }, s.at_ms + 1),
            "duplicate" => (FaultOp::Duplicate { per_mille: 1000 }, s.at_ms + 1),
            "reorder" => (FaultOp::Reorder, s.at_ms + 1),
            _ => continue,
        };
        faults.push(ScheduledFault {
            at_ms: s.at_ms,
            for_ms: until.saturating_sub(s.at_ms).max(1),
            op,
        });
    }
    Schedule {
        window_ms: faults.iter().map(|f| f.at_ms + f.for_ms).max().unwrap_or(0),
        faults,
    }
}

/// `schedule` with every fault `ms` later.
fn shifted(schedule: &Schedule, ms: u64) -> Schedule {
    let mut later = schedule.clone();
    for f in &mut later.faults {
        f.at_ms += ms;
    }
    later.window_ms += ms;
    later
}

/// `mqcheck check` with the row's options: what reruns its bounded check.
fn command(setup: &BrokerSetup, args: &ModelArgs, max_states: usize) -> String {
    let mut words = vec!["mqcheck".to_string(), "check".into()];
    words.extend(setup.words());
    words.extend([
        "--max-crashes".into(),
        args.max_crashes.to_string(),
        "--max-net-faults".into(),
        args.max_net_faults.to_string(),
        "--max-states".into(),
        max_states.to_string(),
        "--strategy".into(),
        "dfs".into(),
    ]);
    words.join(" ")
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

impl RowCheck {
    /// The check as one verdict: violated if it broke a guarantee; held only if it explored
    /// everything within its bounds, reached all its coverage and held every guarantee;
    /// inconclusive otherwise (the budget spent, coverage unreached, a guarantee not judged).
    pub fn verdict(&self) -> Verdict {
        if self.guarantees.values().any(|g| g.verdict == "violated") {
            Verdict::Violated
        } else if !self.partial
            && self.unreached.is_empty()
            && self
                .guarantees
                .values()
                .all(|g| ["held", "not tested"].contains(&g.verdict.as_str()))
        {
            Verdict::Held
        } else {
            Verdict::Inconclusive
        }
    }

    /// How far it went: `12,345 states` or `12,345 states, its budget spent`.
    pub fn extent(&self) -> String {
        format!(
            "{} states{}",
            thousands(self.states),
            if self.partial {
                ", its budget spent"
            } else {
                ""
            }
        )
    }

    /// A guarantee's verdict with the evidence: `held within the explored part (12,345
    /// states)`, `violated: <why> (12,345 states, 14 steps)`.
    pub fn text(&self, guarantee: &str) -> Option<String> {
        let g = self.guarantees.get(guarantee)?;
        let states = thousands(self.states);
        Some(match &g.counterexample {
            Some(x) => format!(
                "violated: {} ({states} states, {} steps)",
                x.why.first().map_or("see its story", String::as_str),
                x.steps
            ),
            None => format!("{} ({states} states)", g.verdict),
        })
    }
}
