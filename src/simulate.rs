//! `mqcheck sim` and `mqcheck replay`.

use crate::report::{Coverage, InvariantReport, SimReport, Stats};
use crate::spec::SimArgs;
use crate::{HELD, INCONCLUSIVE, VIOLATED};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mqcheck_brokers::{ConfigError, Job, System};
use mqcheck_invariants::{secs_unspaced, Invariant};
use mqcheck_sim::{cast, judge, run, schedule_for, shrink, sweep};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

#[derive(Args, Clone, Debug)]
pub struct SimCmd {
    #[command(flatten)]
    pub args: SimArgs,
    /// How many seeds to run: S, S+1, … S+N-1.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
pub struct ReplayCmd {
    #[command(flatten)]
    pub args: SimArgs,
    /// The seed to replay.
    #[arg(long)]
    pub seed: u64,
    /// Also write the timeline as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Runs seeds `first..first+count` of a spec and tallies every invariant.
pub fn simulate<S: System>(
    spec: &crate::spec::Spec,
    first: u64,
    count: u64,
    bar: &ProgressBar,
) -> SimReport {
    let system = S::build(&spec.setup.config, spec.setup.workload);
    let started = Instant::now();
    let results = sweep(
        &system,
        first..first + count,
        &spec.setup.faults,
        &spec.checks,
        &|| bar.inc(1),
    );
    let wall_ms = started.elapsed().as_millis() as u64;
    let sum = |f: fn(&mqcheck_sim::SeedResult) -> u64| results.iter().map(f).sum::<u64>();
    let coverage = Coverage {
        runs: results.len() as u64,
        incomplete_runs: sum(|r| u64::from(!r.complete)),
        sends: sum(|r| r.sends as u64),
        acknowledged: sum(|r| r.acks as u64),
        delivered: sum(|r| r.deliveries as u64),
        atomic_units: sum(|r| r.atomic_units as u64),
        faults_applied: sum(|r| u64::from(r.faults_applied)),
    };
    let invariants: BTreeMap<String, InvariantReport> = Invariant::SELECTABLE
        .into_iter()
        .chain([Invariant::NoUnexpected])
        .map(|inv| {
            let checked = spec.checks.contains(&inv) || inv == Invariant::NoUnexpected;
            let tested = coverage.delivered > 0
                && (inv != Invariant::AtLeastOnce || coverage.acknowledged > 0)
                && (inv != Invariant::Atomicity || coverage.atomic_units > 0);
            let failing: Vec<_> = results
                .iter()
                .filter(|r| r.violations.iter().any(|v| v.invariant == inv))
                .collect();
            let first_violation = failing.first().map(|r| {
                let v = r
                    .violations
                    .iter()
                    .find(|v| v.invariant == inv)
                    .expect("filtered on it");
                crate::report::FirstViolation {
                    seed: r.seed,
                    replay: spec.replay_command(r.seed),
                    kind: v.kind.name(),
                    explanation: v.explanation.clone(),
                }
            });
            (
                inv.name().to_string(),
                InvariantReport {
                    checked,
                    tested,
                    held: if !checked {
                        None
                    } else if !failing.is_empty() {
                        Some(false)
                    } else {
                        (tested && coverage.incomplete_runs == 0).then_some(true)
                    },
                    violations: failing.len() as u64,
                    first_violation,
                },
            )
        })
        .collect();
    let (verdict, reason) = SimReport::conclude(&invariants, &coverage);
    SimReport {
        broker: spec.setup.broker.clone(),
        config: S::effective(&spec.setup.config).values().clone(),
        faults: spec.setup.faults.names(),
        workload: spec.setup.workload.into(),
        seeds: crate::report::Seeds { first, count },
        invariants,
        stats: Stats {
            runs: results.len() as u64,
            wall_ms,
            simulated_ms: results.iter().map(|r| r.simulated_ms).sum(),
            messages_delivered: coverage.delivered,
        },
        coverage,
        verdict,
        reason,
    }
}

impl Job for SimCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let spec = self.args.validate::<S>()?;
        if self.seeds == 0 {
            return Err(crate::spec::bad(
                "seeds",
                "invalid value '0' for --seeds (allowed: an integer from 1 up)".into(),
            ));
        }
        let bar = if self.json {
            ProgressBar::hidden()
        } else {
            progress(self.seeds, S::NAME)
        };
        let report = simulate::<S>(&spec, self.seed, self.seeds, &bar);
        bar.finish_and_clear();
        if self.json {
            crate::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&report).expect("report serializes")
            ));
        } else {
            crate::emit(&report.human());
        }
        Ok(report.verdict.code())
    }
}

impl Job for ReplayCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let spec = self.args.validate::<S>()?;
        let system = S::build(&spec.setup.config, spec.setup.workload);
        let the_cast = cast(&system);
        let schedule = schedule_for(&system, self.seed, &spec.setup.faults);
        let r = run(&system, self.seed, &schedule, true);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "replay of seed {} · {} · faults {} · {} messages × {} producers, {} consumers",
            self.seed,
            spec.setup.broker,
            spec.setup.faults,
            spec.setup.workload.messages,
            spec.setup.workload.producers,
            spec.setup.workload.consumers
        );
        for set in spec.setup.config.explicit() {
            let _ = writeln!(out, "  {set}");
        }
        let _ = writeln!(out, "\nfault schedule drawn from the seed:");
        let _ = writeln!(
            out,
            "  fault window {}, then everything heals and the system drains",
            secs_unspaced(schedule.window_ms)
        );
        if schedule.faults.is_empty() {
            let _ = writeln!(out, "  (no faults)");
        }
        for f in &schedule.faults {
            let _ = writeln!(out, "  {}", f.describe(&the_cast));
        }
        let _ = writeln!(out, "\ntimeline:");
        for line in &r.trace {
            let _ = writeln!(out, "{line}");
        }
        if let Some(path) = &self.trace {
            let mut text = String::new();
            for line in &r.trace {
                text.push_str(&serde_json::to_string(line).expect("trace line serializes"));
                text.push('\n');
            }
            if let Err(e) = std::fs::write(path, text) {
                return Err(ConfigError::new(
                    "trace",
                    format!("cannot write --trace {}: {e}", path.display()),
                ));
            }
        }
        let violations = judge(&system, &r, &spec.checks);
        let _ = writeln!(
            out,
            "\nsimulated {}, {} deliveries to the application",
            secs_unspaced(r.simulated_ms),
            r.history.deliveries()
        );
        let _ = writeln!(
            out,
            "coverage: {} sends, {} acknowledged, {} delivered, {} faults took effect{}",
            r.history.sends(),
            r.history.acks(),
            r.history.deliveries(),
            r.faults_applied,
            if r.complete { "" } else { "; cut short" }
        );
        if violations.is_empty() {
            let mut why = Vec::new();
            if !r.complete {
                why.push("the run was cut short by its time limit before the workload was sent and drained");
            }
            if r.history.acks() == 0 {
                why.push("nothing was acknowledged");
            }
            if r.history.deliveries() == 0 {
                why.push("nothing was delivered");
            }
            if !why.is_empty() {
                let _ = writeln!(out, "inconclusive: {}", why.join("; "));
                return Ok(INCONCLUSIVE);
            }
            let checks: Vec<&str> = spec.checks.iter().map(|c| c.name()).collect();
            let _ = writeln!(out, "clean: {} held", checks.join(", "));
            return Ok(HELD);
        }
        let _ = writeln!(out, "\n{} violation(s):", violations.len());
        for v in violations.iter().take(20) {
            let _ = writeln!(out, "  {v}");
        }
        if violations.len() > 20 {
            let _ = writeln!(out, "  … and {} more", violations.len() - 20);
        }
        let first = violations[0].invariant;
        let minimal = shrink(&system, self.seed, &schedule, first, 40);
        let _ = writeln!(
            out,
            "\nminimal fault schedule that still violates {first} (shrunk from {} to {} faults):",
            schedule.faults.len(),
            minimal.faults.len()
        );
        if minimal.faults.is_empty() {
            let _ = writeln!(out, "  (none: the violation needs no fault)");
        }
        for f in &minimal.faults {
            let _ = writeln!(out, "  {}", f.describe(&the_cast));
        }
        Ok(VIOLATED)
    }
}
