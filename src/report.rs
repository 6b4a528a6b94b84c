//! The `sim` report: its JSON (a contract others rely on) and its human summary.

use mqcheck_brokers::Workload;
use mqcheck_invariants::Invariant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimReport {
    /// The sweep's command without its seed range: shards of one sweep share it (`merge`).
    pub command: String,
    pub broker: String,
    pub config: BTreeMap<String, String>,
    pub faults: Vec<String>,
    pub workload: WorkloadReport,
    pub seeds: Seeds,
    pub invariants: BTreeMap<String, InvariantReport>,
    pub stats: Stats,
    /// What the sweep exercised.
    pub coverage: Coverage,
    /// `held` only when every checked invariant was tested and held in complete runs.
    pub verdict: Verdict,
    /// Why the verdict is inconclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Ctrl-C stopped the sweep: the report covers `stats.runs` of the seeds asked for.
    pub interrupted: bool,
}

/// The outcome of a whole command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Held,
    Violated,
    Inconclusive,
}

impl Verdict {
    /// The exit status: 0 held, 1 violated, 3 inconclusive.
    pub fn code(self) -> u8 {
        match self {
            Verdict::Held => crate::HELD,
            Verdict::Violated => crate::VIOLATED,
            Verdict::Inconclusive => crate::INCONCLUSIVE,
        }
    }

    /// Several verdicts as one: a violation anywhere wins, then anything inconclusive.
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts
            .into_iter()
            .fold(Verdict::Held, |a, b| match (a, b) {
                (Verdict::Violated, _) | (_, Verdict::Violated) => Verdict::Violated,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                _ => Verdict::Held,
            })
    }
}

/// What a sweep exercised, summed over its runs.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Coverage {
    pub runs: u64,
    /// Runs the time limit cut short before the workload was sent and drained.
    pub incomplete_runs: u64,
    pub sends: u64,
    pub acknowledged: u64,
    pub delivered: u64,
    /// Multipart messages and transactions the clients ended: atomicity is tested only on them.
    pub atomic_units: u64,
    /// Faults that took effect on a node or a link.
    pub faults_applied: u64,
    /// Of those, the faults that struck while a message was in flight (see
    /// `mqcheck_sim::Run::faults_in_flight`).
    #[serde(default)]
    pub faults_in_flight: u64,
    /// Times a node became a leader after the first fault took effect.
    #[serde(default)]
    pub leader_elections: u64,
}

impl From<&mqcheck_sim::Tally> for Coverage {
    fn from(tally: &mqcheck_sim::Tally) -> Self {
        Coverage {
            runs: tally.runs,
            incomplete_runs: tally.incomplete,
            sends: tally.sends,
            acknowledged: tally.acks,
            delivered: tally.deliveries,
            atomic_units: tally.atomic_units,
            faults_applied: tally.faults_applied,
            faults_in_flight: tally.faults_in_flight,
            leader_elections: tally.leader_elections,
        }
    }
}

impl Coverage {
    /// The runs gave `inv` something to judge: deliveries; acknowledged sends for
    /// at-least-once; multipart messages or transactions for atomicity.
    pub fn tests(&self, inv: Invariant) -> bool {
        self.delivered > 0
            && (inv != Invariant::AtLeastOnce || self.acknowledged > 0)
            && (inv != Invariant::Atomicity || self.atomic_units > 0)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WorkloadReport {
    pub messages: u32,
    pub producers: u32,
    pub consumers: u32,
}

impl From<Workload> for WorkloadReport {
    fn from(w: Workload) -> Self {
        WorkloadReport {
            messages: w.messages,
            producers: w.producers,
            consumers: w.consumers,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Seeds {
    pub first: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvariantReport {
    pub checked: bool,
    /// The runs gave it something to judge (acknowledged messages and deliveries for
    /// at-least-once; deliveries for the others).
    pub tested: bool,
    /// `None` when not checked, not tested, or not violated in runs some of which were cut short.
    pub held: Option<bool>,
    /// Runs that violated it.
    pub violations: u64,
    pub first_violation: Option<FirstViolation>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FirstViolation {
    pub seed: u64,
    pub replay: String,
    pub kind: String,
    pub explanation: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub runs: u64,
    pub wall_ms: u64,
    pub simulated_ms: u64,
    pub messages_delivered: u64,
}

impl InvariantReport {
    /// One invariant over a sweep: `violations` runs violated it, the lowest seed's first. It was
    /// tested when the runs gave it something to judge (deliveries; acknowledged sends for
    /// at-least-once; multipart messages or transactions for atomicity), and held only then, in
    /// complete runs of a sweep that was not interrupted.
    pub fn new(
        inv: Invariant,
        checked: bool,
        coverage: &Coverage,
        violations: u64,
        first_violation: Option<FirstViolation>,
        interrupted: bool,
    ) -> Self {
        let tested = coverage.tests(inv);
        let held = if !checked {
            None
        } else if violations > 0 {
            Some(false)
        } else {
            (tested && coverage.incomplete_runs == 0 && !interrupted).then_some(true)
        };
        InvariantReport {
            checked,
            tested,
            held,
            violations,
            first_violation,
        }
    }
}

impl SimReport {
    /// The verdict of a sweep, and why it is inconclusive.
    pub fn conclude(
        invariants: &BTreeMap<String, InvariantReport>,
        coverage: &Coverage,
        interrupted: bool,
    ) -> (Verdict, Option<String>) {
        // An interrupted sweep answers nothing as a whole, though each violation it found
        // stands and replays from its seed.
        if interrupted {
            return (
                Verdict::Inconclusive,
                Some(format!(
                    "interrupted after {} runs: the seeds not run were not tested",
                    coverage.runs
                )),
            );
        }
        if invariants.values().any(|i| i.held == Some(false)) {
            return (Verdict::Violated, None);
        }
        let mut why = Vec::new();
        if coverage.runs == 0 {
            why.push("no run was made".to_string());
        }
        if coverage.incomplete_runs > 0 {
            why.push(format!(
                "{} of {} runs were cut short by their time limit before the workload was sent and drained",
                coverage.incomplete_runs, coverage.runs
            ));
        }
        if coverage.acknowledged == 0 {
            why.push("nothing was acknowledged".into());
        }
        if coverage.delivered == 0 {
            why.push("nothing was delivered".into());
        }
        let untested: Vec<&str> = invariants
            .iter()
            .filter(|(_, i)| i.checked && !i.tested)
            .map(|(name, _)| name.as_str())
            .collect();
        if !untested.is_empty() {
            why.push(format!("not tested: {}", untested.join(", ")));
        }
        if why.is_empty() {
            (Verdict::Held, None)
        } else {
            (Verdict::Inconclusive, Some(why.join("; ")))
        }
    }

    pub fn human(&self) -> String {
        let mut s = String::new();
        let sets: Vec<String> = self
            .config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            s,
            "{} · faults {} · seeds {}..{} · {} messages × {} producers, {} consumers",
            self.broker,
            if self.faults.is_empty() {
                "none".to_string()
            } else {
                self.faults.join(",")
            },
            self.seeds.first,
            self.seeds.first + self.seeds.count,
            self.workload.messages,
            self.workload.producers,
            self.workload.consumers,
        );
        let _ = writeln!(s, "config: {}", sets.join(" "));
        for (name, inv) in &self.invariants {
            match inv.held {
                None if !inv.checked => {}
                None if !inv.tested => {
                    let _ = writeln!(s, "  {name:<14} not tested: nothing to judge it on");
                }
                None if self.interrupted => {
                    let _ = writeln!(
                        s,
                        "  {name:<14} not violated in the {} runs finished before the interrupt",
                        self.stats.runs
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {name:<14} not violated in {} runs, but {} were cut short",
                        self.stats.runs, self.coverage.incomplete_runs
                    );
                }
                Some(true) => {
                    let _ = writeln!(s, "  {name:<14} held in all {} runs", self.stats.runs);
                }
                Some(false) => {
                    let _ = writeln!(
                        s,
                        "  {name:<14} VIOLATED in {}/{} runs",
                        inv.violations, self.stats.runs
                    );
                    if let Some(f) = &inv.first_violation {
                        let _ =
                            writeln!(s, "  {:<14} first: seed {}: {}", "", f.seed, f.explanation);
                        let _ = writeln!(s, "  {:<14} {}", "", f.replay);
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "{} runs in {:.1} s of wall time; {:.0} s simulated; {} messages delivered",
            self.stats.runs,
            self.stats.wall_ms as f64 / 1000.0,
            self.stats.simulated_ms as f64 / 1000.0,
            self.stats.messages_delivered
        );
        let c = &self.coverage;
        let _ = writeln!(
            s,
            "coverage: {} runs ({} cut short), {} sends, {} acknowledged, {} delivered, {} faults took effect ({} with messages in flight), {} leader elections after a fault",
            c.runs,
            c.incomplete_runs,
            c.sends,
            c.acknowledged,
            c.delivered,
            c.faults_applied,
            c.faults_in_flight,
            c.leader_elections
        );
        if let Some(reason) = &self.reason {
            let _ = writeln!(s, "inconclusive: {reason}");
        }
        s
    }
}
