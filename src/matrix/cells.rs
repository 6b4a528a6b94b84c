//! The matrix's cells: one row (a broker's named configuration) swept once per fault class, each
//! guarantee's verdict per class, and each counterexample attributed to the classes its shrunk
//! schedule still needs.

use crate::report::{InvariantReport, SimReport, Verdict};
use crate::simulate::simulate;
use crate::spec::Spec;
use indicatif::ProgressBar;
use mqcheck_brokers::System;
use mqcheck_invariants::Invariant;
use mqcheck_sim::{cast, schedule_for, shrink, Fault, FaultSet, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A fault class: one column of the matrix, swept on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Process crash and restart.
    Crash,
    /// Machine crash: only fsynced data survives.
    Power,
    Pause,
    /// Partitions and segment loss.
    Network,
    Clock,
    /// Duplication and reordering, which TCP never delivers to an application.
    BeyondTcp,
    /// Every fault TCP allows, together: the realistic combination.
    Tcp,
}

impl Class {
    pub const ALL: [Class; 7] = [
        Class::Crash,
        Class::Power,
        Class::Pause,
        Class::Network,
        Class::Clock,
        Class::BeyondTcp,
        Class::Tcp,
    ];

    /// The single classes TCP allows, whose verdicts a claim's conditions name.
    pub const REALISTIC: [Class; 5] = [
        Class::Crash,
        Class::Power,
        Class::Pause,
        Class::Network,
        Class::Clock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Crash => "crash",
            Class::Power => "power",
            Class::Pause => "pause",
            Class::Network => "network",
            Class::Clock => "clock",
            Class::BeyondTcp => "beyond-tcp",
            Class::Tcp => "tcp",
        }
    }

    /// The class in a sentence: "broken by power loss".
    pub fn words(self) -> &'static str {
        match self {
            Class::Crash => "process crash",
            Class::Power => "power loss",
            Class::Pause => "pause",
            Class::Network => "network faults",
            Class::Clock => "clock skew",
            Class::BeyondTcp => "faults beyond TCP",
            Class::Tcp => "every fault TCP allows",
        }
    }

    /// The faults the nemesis may inject in this class's sweep.
    pub fn faults(self) -> FaultSet {
        let faults: &[Fault] = match self {
            Class::Crash => &[Fault::Crash],
            Class::Power => &[Fault::Power],
            Class::Pause => &[Fault::Pause],
            Class::Network => &[Fault::Partition, Fault::Loss],
            Class::Clock => &[Fault::Clock],
            Class::BeyondTcp => &[Fault::Duplicate, Fault::Reorder],
            Class::Tcp => &Fault::TCP,
        };
        FaultSet(faults.iter().copied().collect())
    }

    /// The single class a fault belongs to.
    pub fn of(fault: Fault) -> Class {
        match fault {
            Fault::Crash => Class::Crash,
            Fault::Power => Class::Power,
            Fault::Pause => Class::Pause,
            Fault::Partition | Fault::Loss => Class::Network,
            Fault::Clock => Class::Clock,
            Fault::Duplicate | Fault::Reorder => Class::BeyondTcp,
        }
    }

    /// `--faults`: a comma list of classes, or `all`.
    pub fn parse_list(s: &str) -> Result<Classes, String> {
        let allowed = || {
            format!(
                "allowed: all, or a comma list of {}",
                Class::ALL.map(Class::name).join(", ")
            )
        };
        let mut classes = Vec::new();
        for word in s.split(',').map(str::trim) {
            if word == "all" {
                classes.extend(Class::ALL);
                continue;
            }
            let class = Class::ALL
                .into_iter()
                .find(|c| c.name() == word)
                .ok_or_else(|| format!("unknown fault class '{word}' ({})", allowed()))?;
            classes.push(class);
        }
        classes.sort();
        classes.dedup();
        Ok(Classes(classes))
    }
}

/// The classes `--faults` selects, in column order.
#[derive(Clone, Debug)]
pub struct Classes(pub Vec<Class>);

/// What a cell says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellVerdict {
    /// Tested (acknowledged and delivered messages, faults that took effect) and never violated.
    Held,
    Broken,
    /// Not violated, but not tested either: nothing acknowledged or delivered, runs cut short,
    /// or no fault of the class took effect.
    Inconclusive,
    /// The row's workload has nothing this guarantee judges (atomicity without transactions or
    /// multipart messages).
    NotTested,
    /// The broker lacks the feature the guarantee is about (replay: its consumers cannot
    /// rewind).
    NotSupported,
}

/// One guarantee of one row under one fault class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub verdict: CellVerdict,
    pub runs: u64,
    /// Runs that violated the guarantee.
    pub violations: u64,
    pub acknowledged: u64,
    pub delivered: u64,
    pub faults_applied: u64,
    /// Of those, the faults that struck while a message was in flight.
    #[serde(default)]
    pub faults_in_flight: u64,
    /// Times a node became a leader after the first fault took effect.
    #[serde(default)]
    pub leader_elections: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub counterexample: Option<Counterexample>,
    /// With `--repair`, for a broken cell: the smallest sets of `KEY=VALUE` changes under which
    /// the class no longer breaks the guarantee (empty: none found).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub repairs: Option<Vec<Vec<String>>>,
}

/// The lowest violating seed of a cell, its schedule shrunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexample {
    pub seed: u64,
    /// The anomaly: lost, duplicate, reordered, nonmonotonic-poll, …
    pub kind: String,
    pub explanation: String,
    pub replay: String,
    /// The classes the shrunk schedule still needs; empty when the violation needs no fault.
    pub broken_by: Vec<Class>,
    /// The shrunk schedule, one fault a line.
    pub minimal_schedule: Vec<String>,
    /// The shrunk schedule itself, which `--html` replays for the story; not in the JSON,
    /// where `minimal_schedule` says it in words.
    #[serde(skip)]
    pub schedule: Schedule,
}

impl Cell {
    /// The cell as the table prints it: `held (20 seeds: 612 acknowledged, 598 delivered, 31
    /// faults)`, `broken by power loss: lost (8/20, seed 29)`, `inconclusive (nothing was
    /// acknowledged)`: an inconclusive cell says why, or a reader takes it for a shrug.
    pub fn text(&self) -> String {
        match self.verdict {
            CellVerdict::Held => format!("held ({} seeds: {})", self.runs, self.exercised()),
            CellVerdict::Broken => {
                let c = self
                    .counterexample
                    .as_ref()
                    .expect("a broken cell has its counterexample");
                format!(
                    "broken {}: {} ({}/{}, seed {})",
                    broken_by_words(&c.broken_by),
                    c.kind,
                    self.violations,
                    self.runs,
                    c.seed
                )
            }
            CellVerdict::Inconclusive => match self.reason.as_deref() {
                Some(why) if !why.is_empty() => format!("inconclusive ({why})"),
                _ => "inconclusive".into(),
            },
            CellVerdict::NotTested => "—".into(),
            CellVerdict::NotSupported => "not supported".into(),
        }
    }
}

impl Cell {
    /// What the sweep exercised: `612 acknowledged, 598 delivered, 31 faults (27 with messages
    /// in flight), 9 leader elections`; elections only where there were some.
    pub fn exercised(&self) -> String {
        let elections = match self.leader_elections {
            0 => String::new(),
            n => format!(", {n} leader elections"),
        };
        format!(
            "{} acknowledged, {} delivered, {} faults ({} with messages in flight){elections}",
            self.acknowledged, self.delivered, self.faults_applied, self.faults_in_flight
        )
    }
}

/// "by power loss", "by process crash and network faults", "without any fault".
pub fn broken_by_words(classes: &[Class]) -> String {
    if classes.is_empty() {
        return "without any fault".into();
    }
    let words: Vec<&str> = classes.iter().map(|c| c.words()).collect();
    format!("by {}", join_and(&words))
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_and(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The guarantees every row is asked, in column order.
pub const GUARANTEES: [Invariant; 5] = Invariant::SELECTABLE;

/// Runs each fault class's sweep for one row and returns its cells: guarantee name → class →
/// cell. A violated cell's lowest seed is shrunk (at most `shrink_budget` runs) to the classes
/// it needs.
pub fn sweep_row<S: System>(
    spec: &Spec,
    classes: &[Class],
    seeds: u64,
    shrink_budget: usize,
    bar: &ProgressBar,
) -> BTreeMap<String, BTreeMap<Class, Cell>> {
    let system = S::build(&spec.setup.config, spec.setup.workload);
    let the_cast = cast(&system);
    let mut cells: BTreeMap<String, BTreeMap<Class, Cell>> = BTreeMap::new();
    for &class in classes {
        let mut class_spec = spec.clone();
        class_spec.setup.faults = class.faults();
        let report = simulate::<S>(&class_spec, 0, seeds, bar, None);
        for &inv in &spec.checks {
            let i = &report.invariants[inv.name()];
            let mut cell = cell_of(&report, i, inv);
            if let (CellVerdict::Broken, Some(first)) = (cell.verdict, &i.first_violation) {
                let schedule = schedule_for(&system, first.seed, &class_spec.setup.faults);
                let minimal = shrink(&system, first.seed, &schedule, inv, shrink_budget);
                let mut broken_by: Vec<Class> = minimal
                    .faults
                    .iter()
                    .map(|f| Class::of(f.op.fault()))
                    .collect();
                broken_by.sort();
                broken_by.dedup();
                cell.counterexample = Some(Counterexample {
                    seed: first.seed,
                    kind: first.kind.clone(),
                    explanation: first.explanation.clone(),
                    replay: first.replay.clone(),
                    broken_by,
                    minimal_schedule: minimal
                        .faults
                        .iter()
                        .map(|f| f.describe(&the_cast))
                        .collect(),
                    schedule: minimal,
                });
            }
            cells
                .entry(inv.name().to_string())
                .or_default()
                .insert(class, cell);
        }
    }
    cells
}

/// One invariant of one class's sweep as a cell, before attribution.
fn cell_of(report: &SimReport, i: &InvariantReport, inv: Invariant) -> Cell {
    let c = &report.coverage;
    let verdict = match i.held {
        Some(false) => CellVerdict::Broken,
        _ if inv == Invariant::Atomicity && !i.tested => CellVerdict::NotTested,
        Some(true) if c.faults_applied > 0 => CellVerdict::Held,
        _ => CellVerdict::Inconclusive,
    };
    let reason = (verdict == CellVerdict::Inconclusive).then(|| {
        let mut why: Vec<String> = report.reason.iter().cloned().collect();
        // The sweep's own reason is gone when another guarantee was violated; the runs cut
        // short are still why this one is not judged.
        if report.reason.is_none() && c.incomplete_runs > 0 {
            why.push(format!(
                "{} of {} runs were cut short by their time limit before the workload was sent and drained",
                c.incomplete_runs, c.runs
            ));
        }
        if c.faults_applied == 0 {
            why.push("no fault took effect".into());
        }
        why.join("; ")
    });
    Cell {
        verdict,
        runs: report.stats.runs,
        violations: i.violations,
        acknowledged: c.acknowledged,
        delivered: c.delivered,
        faults_applied: c.faults_applied,
        faults_in_flight: c.faults_in_flight,
        leader_elections: c.leader_elections,
        reason,
        counterexample: None,
        repairs: None,
    }
}

/// A row's guarantee under every class as one verdict: broken anywhere wins, then inconclusive.
pub fn combined(cells: &BTreeMap<Class, Cell>) -> Verdict {
    Verdict::combine(cells.values().filter_map(|c| match c.verdict {
        CellVerdict::Held => Some(Verdict::Held),
        CellVerdict::Broken => Some(Verdict::Violated),
        CellVerdict::Inconclusive => Some(Verdict::Inconclusive),
        CellVerdict::NotTested | CellVerdict::NotSupported => None,
    }))
}

/// A guarantee the broker has no feature for, under every class: "not supported".
pub fn not_supported(classes: &[Class], reason: &str) -> BTreeMap<Class, Cell> {
    classes
        .iter()
        .map(|&class| {
            let cell = Cell {
                verdict: CellVerdict::NotSupported,
                runs: 0,
                violations: 0,
                acknowledged: 0,
                delivered: 0,
                faults_applied: 0,
                faults_in_flight: 0,
                leader_elections: 0,
                reason: Some(reason.to_string()),
                counterexample: None,
                repairs: None,
            };
            (class, cell)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inconclusive(reason: Option<&str>) -> Cell {
        Cell {
            verdict: CellVerdict::Inconclusive,
            runs: 20,
            violations: 0,
            acknowledged: 0,
            delivered: 0,
            faults_applied: 3,
            faults_in_flight: 0,
            leader_elections: 0,
            reason: reason.map(str::to_string),
            counterexample: None,
            repairs: None,
        }
    }

    #[test]
    fn an_inconclusive_cell_says_why() {
        assert_eq!(
            inconclusive(Some("nothing was acknowledged")).text(),
            "inconclusive (nothing was acknowledged)"
        );
        assert_eq!(inconclusive(Some("")).text(), "inconclusive");
        assert_eq!(inconclusive(None).text(), "inconclusive");
    }
}
