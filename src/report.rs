//! The `sim` report: its JSON (a contract others rely on) and its human summary.

use mqcheck_brokers::Workload;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Debug, Serialize)]
pub struct SimReport {
    pub broker: String,
    pub config: BTreeMap<String, String>,
    pub faults: Vec<&'static str>,
    pub workload: WorkloadReport,
    pub seeds: Seeds,
    pub invariants: BTreeMap<String, InvariantReport>,
    pub stats: Stats,
}

#[derive(Clone, Copy, Debug, Serialize)]
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

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Seeds {
    pub first: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct InvariantReport {
    pub checked: bool,
    /// `None` when not checked.
    pub held: Option<bool>,
    /// Runs that violated it.
    pub violations: u64,
    pub first_violation: Option<FirstViolation>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FirstViolation {
    pub seed: u64,
    pub replay: String,
    pub kind: &'static str,
    pub explanation: String,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stats {
    pub runs: u64,
    pub wall_ms: u64,
    pub simulated_ms: u64,
    pub messages_delivered: u64,
}

impl SimReport {
    pub fn all_held(&self) -> bool {
        self.invariants.values().all(|i| i.held != Some(false))
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
                None => {}
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
        s
    }
}
