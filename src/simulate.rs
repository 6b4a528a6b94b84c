//! `mqcheck sim` and `mqcheck replay`.

use crate::output::{OutputFile, Stream};
use crate::report::{Coverage, InvariantReport, SimReport, Stats};
use crate::spec::{int, SimArgs};
use crate::{HELD, INCONCLUSIVE, VIOLATED};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use mqcheck_brokers::{ConfigError, Job, System};
use mqcheck_invariants::{secs_unspaced, Invariant};
use mqcheck_sim::{cast, judge, run, schedule_for, shrink, sweep, SeedResult};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Args, Clone, Debug)]
pub struct SimCmd {
    #[command(flatten)]
    pub args: SimArgs,
    /// How many seeds to run: S, S+1, … S+N-1.
    #[arg(long, default_value_t = 100, value_parser = int(1u64, u64::MAX))]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0, value_parser = int(0u64, u64::MAX))]
    pub seed: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Run only share I of N of the seeds (0 ≤ I < N): a contiguous slice, the same for the
    /// same arguments, so N machines cover the range and `mqcheck merge` adds their reports up.
    #[arg(long, value_name = "I/N", value_parser = shard)]
    pub shard: Option<(u64, u64)>,
    /// Also write one JSON line per seed to this file as each run finishes (seed, verdicts,
    /// counts, first violation), in the order runs finish.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<std::path::PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub struct ReplayCmd {
    #[command(flatten)]
    pub args: SimArgs,
    /// The seed to replay.
    #[arg(long, value_parser = int(0u64, u64::MAX))]
    pub seed: u64,
    /// Also write the timeline as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

/// A progress bar on stderr: redrawn in place on a terminal, else a plain line every few seconds
/// (a batch job's log shows the sweep is alive without filling up).
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::with_draw_target(
            Some(len),
            ProgressDrawTarget::term_like_with_hz(Box::new(EveryFewSeconds::default()), 1),
        )
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// `--shard I/N`: share I (from 0) of N.
fn shard(s: &str) -> Result<(u64, u64), String> {
    let allowed = "allowed: I/N with integers 0 ≤ I < N";
    let (i, n) = s.split_once('/').ok_or(allowed)?;
    let i = int(0u64, u64::MAX - 1)(i).map_err(|_| allowed)?;
    let n = int(1u64, u64::MAX)(n).map_err(|_| allowed)?;
    if i < n {
        Ok((i, n))
    } else {
        Err(allowed.into())
    }
}

/// A non-terminal stderr as indicatif's terminal: each redraw becomes a line, at most one every
/// [`EveryFewSeconds::PERIOD`]; cursor moves and clears are ignored.
#[derive(Debug, Default)]
struct EveryFewSeconds {
    last: Mutex<Option<Instant>>,
}

impl EveryFewSeconds {
    const PERIOD: std::time::Duration = std::time::Duration::from_secs(5);
}

impl TermLike for EveryFewSeconds {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if s.trim().is_empty() || last.is_some_and(|t| t.elapsed() < Self::PERIOD) {
            return Ok(());
        }
        *last = Some(Instant::now());
        eprintln!("{}", s.trim_end());
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One seed as `--jsonl` writes it.
#[derive(Serialize)]
pub struct SeedLine {
    seed: u64,
    /// Each checked invariant, `held` or `violated`, in this run.
    verdicts: BTreeMap<&'static str, &'static str>,
    complete: bool,
    sends: usize,
    acknowledged: usize,
    delivered: usize,
    faults_applied: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_violation: Option<SeedViolation>,
}

#[derive(Serialize)]
struct SeedViolation {
    invariant: &'static str,
    kind: &'static str,
    explanation: String,
}

impl SeedLine {
    fn new(r: &SeedResult, checks: &[Invariant]) -> Self {
        let verdicts = checks
            .iter()
            .chain([&Invariant::NoUnexpected])
            .map(|inv| {
                let violated = r.violations.iter().any(|v| v.invariant == *inv);
                (inv.name(), if violated { "violated" } else { "held" })
            })
            .collect();
        SeedLine {
            seed: r.seed,
            verdicts,
            complete: r.complete,
            sends: r.sends,
            acknowledged: r.acks,
            delivered: r.deliveries,
            faults_applied: r.faults_applied,
            first_violation: r.violations.first().map(|v| SeedViolation {
                invariant: v.invariant.name(),
                kind: v.kind.name(),
                explanation: v.explanation.clone(),
            }),
        }
    }
}

/// Runs seeds `first..first+count` of a spec and tallies every invariant; each run goes to the
/// `--jsonl` stream as it finishes. Ctrl-C stops the sweep after the runs under way, and the
/// report covers the runs finished, marked interrupted.
pub fn simulate<S: System>(
    spec: &crate::spec::Spec,
    first: u64,
    count: u64,
    bar: &ProgressBar,
    jsonl: Option<&Stream>,
) -> SimReport {
    let system = S::build(&spec.setup.config, spec.setup.workload);
    let started = Instant::now();
    let tally = if crate::output::interrupted() {
        mqcheck_sim::Tally::default()
    } else {
        sweep(
            &system,
            first..first + count,
            &spec.setup.faults,
            &spec.checks,
            &|r| {
                bar.inc(1);
                if let Some(stream) = jsonl {
                    stream.line(&SeedLine::new(r, &spec.checks));
                }
                !crate::output::interrupted()
            },
        )
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    let coverage = Coverage {
        runs: tally.runs,
        incomplete_runs: tally.incomplete,
        sends: tally.sends,
        acknowledged: tally.acks,
        delivered: tally.deliveries,
        atomic_units: tally.atomic_units,
        faults_applied: tally.faults_applied,
    };
    let interrupted = tally.runs < count;
    let invariants: BTreeMap<String, InvariantReport> = Invariant::SELECTABLE
        .into_iter()
        .chain([Invariant::NoUnexpected])
        .map(|inv| {
            let violated = tally.violated.get(&inv);
            let first_violation = violated.map(|v| crate::report::FirstViolation {
                seed: v.first_seed,
                replay: spec.replay_command(v.first_seed),
                kind: v.first.kind.name().to_string(),
                explanation: v.first.explanation.clone(),
            });
            let checked = spec.checks.contains(&inv) || inv == Invariant::NoUnexpected;
            let report = InvariantReport::new(
                inv,
                checked,
                &coverage,
                violated.map_or(0, |v| v.runs),
                first_violation,
                interrupted,
            );
            (inv.name().to_string(), report)
        })
        .collect();
    let (verdict, reason) = SimReport::conclude(&invariants, &coverage, interrupted);
    SimReport {
        command: spec.command("sim"),
        broker: spec.setup.broker.clone(),
        config: S::effective(&spec.setup.config).values().clone(),
        faults: spec
            .setup
            .faults
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
        workload: spec.setup.workload.into(),
        seeds: crate::report::Seeds { first, count },
        invariants,
        stats: Stats {
            runs: tally.runs,
            wall_ms,
            simulated_ms: tally.simulated_ms,
            messages_delivered: coverage.delivered,
        },
        interrupted,
        coverage,
        verdict,
        reason,
    }
}

impl Job for SimCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let spec = self.args.validate::<S>()?;
        if self.seed.checked_add(self.seeds - 1).is_none() {
            return Err(crate::spec::bad(
                "seeds",
                format!(
                    "--seed {} --seeds {} runs past the last seed (allowed: --seeds from 1 to {})",
                    self.seed,
                    self.seeds,
                    u64::MAX - self.seed + 1
                ),
            ));
        }
        let jsonl = Stream::maybe("jsonl", self.jsonl.as_ref())?;
        let (first, count) = match self.shard {
            Some((i, n)) => {
                let at = |k: u64| (u128::from(self.seeds) * u128::from(k) / u128::from(n)) as u64;
                (self.seed + at(i), at(i + 1) - at(i))
            }
            None => (self.seed, self.seeds),
        };
        let bar = if self.json {
            ProgressBar::hidden()
        } else {
            progress(count, S::NAME)
        };
        crate::output::sweeping(true);
        let report = simulate::<S>(&spec, first, count, &bar, jsonl.as_ref());
        crate::output::sweeping(false);
        bar.finish_and_clear();
        if let Some(stream) = jsonl {
            stream.finish()?;
        }
        if self.json {
            crate::output::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&report).expect("report serializes")
            ));
        } else {
            crate::output::emit(&report.human());
        }
        Ok(report.verdict.code())
    }
}

impl Job for ReplayCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let spec = self.args.validate::<S>()?;
        let trace = OutputFile::maybe("trace", self.trace.as_ref())?;
        let mut out = String::new();
        let code = self.replay::<S>(&spec, trace, &mut out);
        crate::output::emit(&out);
        code
    }
}

impl ReplayCmd {
    /// Replays the seed, writing its story to `out`.
    fn replay<S: System>(
        &self,
        spec: &crate::spec::Spec,
        trace: Option<OutputFile>,
        out: &mut String,
    ) -> Result<u8, ConfigError> {
        let system = S::build(&spec.setup.config, spec.setup.workload);
        let the_cast = cast(&system);
        let schedule = schedule_for(&system, self.seed, &spec.setup.faults);
        let r = run(&system, self.seed, &schedule, true);
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
        if let Some(mut file) = trace {
            let mut text = String::new();
            for line in &r.trace {
                text.push_str(&serde_json::to_string(line).expect("trace line serializes"));
                text.push('\n');
            }
            file.write(&text)?;
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
            // Atomicity has nothing to judge in a run without multipart messages or transactions.
            let (checks, untested): (Vec<&Invariant>, Vec<&Invariant>) = spec
                .checks
                .iter()
                .partition(|c| **c != Invariant::Atomicity || r.history.atomic_units() > 0);
            let names =
                |v: &[&Invariant]| v.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
            let _ = write!(out, "clean: {} held", names(&checks));
            if !untested.is_empty() {
                let _ = writeln!(out, "; not tested: {}", names(&untested));
                return Ok(INCONCLUSIVE);
            }
            let _ = writeln!(out);
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
