//! `mqcheck sim` and `mqcheck replay`.

use crate::output::{OutputFile, Stream};
use crate::report::{Coverage, InvariantReport, SimReport, Stats};
use crate::spec::{int, SimArgs, Spec};
use crate::{HELD, INCONCLUSIVE, VIOLATED};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use mqcheck_brokers::{ConfigError, Job, System};
use mqcheck_invariants::{secs_unspaced, Invariant, MsgId, Violation};
use mqcheck_sim::{
    cast, judge, run, schedule_for, shrink, sweep_with, Cast, FileViolation, Filter, Outcome,
    Schedule, ScheduleFile, SeedResult,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
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
    /// Run exactly the schedule this file holds (`replay --schedule-out FILE`), with its broker,
    /// settings, workload, checks and seed.
    #[arg(long, value_name = "FILE", conflicts_with_all = [SETUP, &["seed", "seeds", "shard"][..]].concat())]
    pub schedule: Option<PathBuf>,
    /// The schedule file's schedule, once read.
    #[arg(skip)]
    pub file: Option<Schedule>,
}

/// The flags a schedule file replaces.
const SETUP: &[&str] = &[
    "broker",
    "sets",
    "faults",
    "messages",
    "producers",
    "consumers",
    "rate",
    "handler_ms",
    "consumer_delay_ms",
    "keys",
    "producer_crashes",
    "rewind",
    "check",
];

#[derive(Args, Clone, Debug)]
pub struct ReplayCmd {
    #[command(flatten)]
    pub args: SimArgs,
    /// The seed to replay.
    #[arg(long, value_parser = int(0u64, u64::MAX), required_unless_present = "schedule")]
    pub seed: Option<u64>,
    /// Replay exactly the schedule this file holds (`--schedule-out`), with its broker,
    /// settings, workload, checks and seed.
    #[arg(long, value_name = "FILE", conflicts_with_all = [SETUP, &["seed"][..]].concat())]
    pub schedule: Option<PathBuf>,
    /// Write the shrunk schedule (the drawn one when nothing was violated) to this file, with
    /// what it takes to run it again: `sim --schedule FILE`.
    #[arg(long, value_name = "FILE")]
    pub schedule_out: Option<PathBuf>,
    /// Print every step of the timeline (but the drain's idle chatter), not just the story.
    #[arg(long)]
    pub full: bool,
    /// Only the steps at this node, from it, or of faults that name it.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Only the steps at or after this simulated time (`9.5s`, `9500ms`).
    #[arg(long, value_name = "T", value_parser = instant)]
    pub from: Option<u64>,
    /// Only the steps at or before this simulated time.
    #[arg(long, value_name = "T", value_parser = instant)]
    pub to: Option<u64>,
    /// Also write the timeline as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    /// Also draw the timeline as printed (the story, or every step with --full; --node, --from
    /// and --to apply) as an SVG sequence diagram in this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The schedule file's schedule, once read.
    #[arg(skip)]
    pub file: Option<Schedule>,
}

/// A simulated time: `9.5s`, `9500ms`, or seconds (`9.5`), in milliseconds.
fn instant(s: &str) -> Result<u64, String> {
    let allowed = || "allowed: a simulated time such as 9.5s or 9500ms".to_string();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1.0)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1000.0)
    };
    let plain = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    match number.parse::<f64>() {
        Ok(v) if plain && v * scale <= 1e15 => Ok((v * scale).round() as u64),
        _ => Err(allowed()),
    }
}

/// `--schedule FILE`: the file's broker, settings, workload and checks as flags, parsed as the
/// command line's are; the file's seed.
fn load(path: &Path) -> Result<(SimArgs, ScheduleFile), String> {
    #[derive(clap::Parser)]
    #[command(no_binary_name = true)]
    struct FileArgs {
        #[command(flatten)]
        args: SimArgs,
    }
    let file = ScheduleFile::read(path).map_err(|e| format!("--schedule {e}"))?;
    let mut words = vec!["--broker".to_string(), file.broker.clone()];
    for set in &file.sets {
        words.extend(["--set".to_string(), set.clone()]);
    }
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            words.extend([format!("--{name}"), v]);
        }
    };
    flag("faults", file.faults.clone());
    flag("messages", file.messages.map(|v| v.to_string()));
    flag("producers", file.producers.map(|v| v.to_string()));
    flag("consumers", file.consumers.map(|v| v.to_string()));
    flag("rate", file.rate.map(|v| v.to_string()));
    flag("handler-ms", file.handler_ms.map(|v| v.to_string()));
    flag(
        "consumer-delay-ms",
        file.consumer_delay_ms.map(|v| v.to_string()),
    );
    flag("keys", file.keys.map(|v| v.to_string()));
    flag("rewind", file.rewind.map(|v| v.to_string()));
    flag("check", file.check.clone());
    if file.producer_crashes {
        words.push("--producer-crashes".to_string());
    }
    let parsed = <FileArgs as clap::Parser>::try_parse_from(&words).map_err(|e| {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        format!(
            "--schedule {}: {}",
            path.display(),
            first.trim_start_matches("error: ")
        )
    })?;
    Ok((parsed.args, file))
}

/// The broker a command runs: `--broker`'s, or its schedule file's.
fn broker(args: &SimArgs) -> Result<String, String> {
    args.setup.broker.clone().ok_or_else(|| {
        format!(
            "--broker is required unless --schedule FILE names one (allowed: {})",
            mqcheck_brokers::BROKERS.join(", ")
        )
    })
}

impl SimCmd {
    /// Reads `--schedule FILE` into the command; the broker to run.
    pub fn load(&mut self) -> Result<String, String> {
        if let Some(path) = &self.schedule {
            let (args, file) = load(path)?;
            self.args = args;
            self.seed = file.seed.unwrap_or(0);
            self.file = Some(file.schedule);
        }
        broker(&self.args)
    }
}

impl ReplayCmd {
    /// Reads `--schedule FILE` into the command; the broker to run.
    pub fn load(&mut self) -> Result<String, String> {
        if let Some(path) = &self.schedule {
            let (args, file) = load(path)?;
            self.args = args;
            self.seed = Some(file.seed.unwrap_or(0));
            self.file = Some(file.schedule);
        }
        broker(&self.args)
    }
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
    faults_in_flight: u32,
    leader_elections: u32,
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
            faults_in_flight: r.faults_in_flight,
            leader_elections: r.leader_elections,
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
        let faults = &spec.setup.faults;
        sweep_with(
            &system,
            first..first + count,
            &|seed| match &spec.file {
                Some((_, schedule)) => schedule.clone(),
                None => schedule_for(&system, seed, faults),
            },
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
    let coverage = Coverage::from(&tally);
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
        let mut spec = self.args.validate::<S>()?;
        let mut seeds = self.seeds;
        if let (Some(path), Some(schedule)) = (&self.schedule, &self.file) {
            checked_schedule::<S>(&spec, schedule)?;
            spec.file = Some((path.clone(), schedule.clone()));
            seeds = 1;
        }
        if self.seed.checked_add(seeds - 1).is_none() {
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
            None => (self.seed, seeds),
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

/// A schedule file's schedule, checked against the nodes it will run on.
fn checked_schedule<S: System>(spec: &Spec, schedule: &Schedule) -> Result<(), ConfigError> {
    let system = S::build(&spec.setup.config, spec.setup.workload);
    schedule
        .validate(&cast(&system))
        .map_err(|e| crate::spec::bad("schedule", format!("--schedule: {e}")))
}

impl Job for ReplayCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let mut spec = self.args.validate::<S>()?;
        if let (Some(path), Some(schedule)) = (&self.schedule, &self.file) {
            checked_schedule::<S>(&spec, schedule)?;
            spec.file = Some((path.clone(), schedule.clone()));
        }
        let system = S::build(&spec.setup.config, spec.setup.workload);
        let names = cast(&system).names;
        if let Some(node) = &self.node {
            if !names.contains(node) && node != "nemesis" {
                return Err(crate::spec::bad(
                    "node",
                    format!(
                        "--node {node}: no such node in this run (allowed: {}, nemesis)",
                        names.join(", ")
                    ),
                ));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(crate::spec::bad(
                    "from",
                    format!(
                        "--from {} is after --to {} (allowed: --from at or before --to)",
                        secs_unspaced(from),
                        secs_unspaced(to)
                    ),
                ));
            }
        }
        let trace = OutputFile::maybe("trace", self.trace.as_ref())?;
        let schedule_out = OutputFile::maybe("schedule-out", self.schedule_out.as_ref())?;
        let svg = OutputFile::maybe("svg", self.svg.as_ref())?;
        let mut out = String::new();
        let code = self.replay::<S>(&spec, [trace, schedule_out, svg], &mut out);
        crate::output::emit(&out);
        code
    }
}

/// What a story tells: the violation's messages, or the faults and turns of a clean run.
pub(crate) fn story_about(msgs: &[MsgId]) -> String {
    if msgs.is_empty() {
        return "the faults and turns of the run".to_string();
    }
    let names: Vec<String> = msgs.iter().map(ToString::to_string).collect();
    format!("the story of {}", names.join(", "))
}

/// A story diagram's first title lines: the broker with its settings and faults, then the
/// violated property and the checker's explanation, or `otherwise`.
pub(crate) fn diagram_heading(
    broker: &str,
    settings: &[String],
    faults: &str,
    violation: Option<&Violation>,
    otherwise: String,
) -> Vec<String> {
    let mut configured = vec![broker.to_string()];
    configured.extend(settings.iter().cloned());
    configured.push(format!("--faults {faults}"));
    let mut heading = vec![configured.join(" ")];
    match violation {
        Some(v) => {
            heading.push(format!("VIOLATED {}", v.invariant));
            heading.push(format!("why: {}: {}", v.kind.name(), v.explanation));
        }
        None => heading.push(otherwise),
    }
    heading
}

/// Each fault of `schedule` and what it did in the run: `… → n1, n2 down until 16.170s`.
pub(crate) fn as_it_happened(schedule: &Schedule, outcomes: &[Outcome], the_cast: &Cast) -> String {
    if schedule.faults.is_empty() {
        return "  (no faults)\n".to_string();
    }
    let mut text = String::new();
    for (f, outcome) in schedule.faults.iter().zip(outcomes) {
        let _ = writeln!(text, "  {} → {outcome}", f.describe(the_cast));
    }
    text
}

impl ReplayCmd {
    /// Replays the seed, writing its story to `out` and, where asked, its trace, its schedule
    /// file and its diagram to `files`.
    fn replay<S: System>(
        &self,
        spec: &Spec,
        files: [Option<OutputFile>; 3],
        out: &mut String,
    ) -> Result<u8, ConfigError> {
        let [trace, schedule_out, svg] = files;
        let system = S::build(&spec.setup.config, spec.setup.workload);
        let the_cast = cast(&system);
        let seed = self.seed.unwrap_or(0);
        let schedule = match &spec.file {
            Some((_, schedule)) => schedule.clone(),
            None => schedule_for(&system, seed, &spec.setup.faults),
        };
        let r = run(&system, seed, &schedule, true);
        let _ = writeln!(
            out,
            "replay of seed {seed} · {} · faults {} · {} messages × {} producers, {} consumers",
            spec.setup.broker,
            spec.setup.faults,
            spec.setup.workload.messages,
            spec.setup.workload.producers,
            spec.setup.workload.consumers
        );
        for set in spec.setup.config.explicit() {
            let _ = writeln!(out, "  {set}");
        }
        let origin = match &spec.file {
            Some((path, _)) => format!("from {}", path.display()),
            None => "drawn from the seed".to_string(),
        };
        let _ = writeln!(
            out,
            "\nfault schedule {origin}, as it happened (fault window {}, then everything heals and the system drains):",
            secs_unspaced(schedule.window_ms)
        );
        out.push_str(&as_it_happened(&schedule, &r.outcomes, &the_cast));
        let violations = judge(&system, &r, &spec.checks);
        let filter = Filter {
            node: self.node.clone(),
            from_ms: self.from,
            to_ms: self.to,
        };
        let mut scope = Vec::new();
        if let Some(node) = &self.node {
            scope.push(format!("node {node}"));
        }
        if let Some(t) = self.from {
            scope.push(format!("from {}", secs_unspaced(t)));
        }
        if let Some(t) = self.to {
            scope.push(format!("to {}", secs_unspaced(t)));
        }
        let scope = if scope.is_empty() {
            String::new()
        } else {
            format!(" · {}", scope.join(" · "))
        };
        let (keep, title) = if self.full {
            (
                mqcheck_sim::trace::full(&r.trace),
                "every step, the drain's idle chatter folded".to_string(),
            )
        } else {
            let msgs = violations.first().map_or(&[][..], |v| &v.msgs[..]);
            (
                mqcheck_sim::trace::story(&r.trace, msgs),
                format!("{}; --full for every step", story_about(msgs)),
            )
        };
        let _ = writeln!(out, "\ntimeline: {title}{scope}");
        let shown = mqcheck_sim::trace::show(&r.trace, &keep, &filter, !self.full);
        for line in &shown {
            let _ = writeln!(out, "{line}");
        }
        if let Some(mut file) = svg {
            let checks: Vec<String> = spec.checks.iter().map(ToString::to_string).collect();
            let mut heading = diagram_heading(
                &spec.setup.broker,
                &spec.setup.config.explicit(),
                &spec.setup.faults.to_string(),
                violations.first(),
                format!("no violation of {}", checks.join(", ")),
            );
            heading.push(format!(
                "seed {seed}, {title}{scope} ({} steps)",
                r.trace.len()
            ));
            file.write(&mqcheck_sim::trace::diagram(heading, &r.trace, &shown).svg())?;
        }
        if let Some(mut file) = trace {
            let mut text = String::new();
            for line in &r.trace {
                text.push_str(&serde_json::to_string(line).expect("trace line serializes"));
                text.push('\n');
            }
            file.write(&text)?;
        }
        let _ = writeln!(
            out,
            "\nsimulated {}, {} deliveries to the application",
            secs_unspaced(r.simulated_ms),
            r.history.deliveries()
        );
        let _ = writeln!(
            out,
            "coverage: {} sends, {} acknowledged, {} delivered, {} faults took effect ({} with messages in flight){}",
            r.history.sends(),
            r.history.acks(),
            r.history.deliveries(),
            r.faults_applied,
            r.faults_in_flight,
            if r.complete { "" } else { "; cut short" }
        );
        if violations.is_empty() {
            if let Some(file) = schedule_out {
                self.save(file, spec, &schedule, false, None, out)?;
            }
            return Ok(clean(spec, &r, out));
        }
        let first = violations[0].invariant;
        let minimal = shrink(&system, seed, &schedule, first, 40);
        let shrunk = run(&system, seed, &minimal, false);
        let _ = writeln!(
            out,
            "\nminimal fault schedule that still violates {first} (shrunk from {} to {} faults), as it happened:",
            schedule.faults.len(),
            minimal.faults.len()
        );
        if minimal.faults.is_empty() {
            let _ = writeln!(out, "  (none: the violation needs no fault)");
        } else {
            out.push_str(&as_it_happened(&minimal, &shrunk.outcomes, &the_cast));
        }
        if let Some(file) = schedule_out {
            let shown = judge(&system, &shrunk, &spec.checks)
                .into_iter()
                .find(|v| v.invariant == first);
            self.save(file, spec, &minimal, true, shown.as_ref(), out)?;
        }
        let _ = writeln!(out, "\n{} violation(s):", violations.len());
        for v in violations.iter().take(20) {
            let _ = writeln!(out, "  {v}");
        }
        if violations.len() > 20 {
            let _ = writeln!(out, "  … and {} more", violations.len() - 20);
        }
        Ok(VIOLATED)
    }

    /// Writes `schedule` as a schedule file with what it takes to run it again.
    fn save(
        &self,
        mut file: OutputFile,
        spec: &Spec,
        schedule: &Schedule,
        shrunk: bool,
        violation: Option<&Violation>,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        let path = self.schedule_out.as_ref().expect("a file to write");
        let w = &spec.setup.workload;
        let command = format!("mqcheck sim --schedule {}", path.display());
        let saved = ScheduleFile {
            broker: spec.setup.broker.clone(),
            sets: spec.setup.config.explicit(),
            faults: Some(spec.setup.faults.to_string()),
            messages: Some(w.messages),
            producers: Some(w.producers),
            consumers: Some(w.consumers),
            rate: w.rate,
            handler_ms: w.handler_ms,
            consumer_delay_ms: (w.consumer_delay_ms > 0).then_some(w.consumer_delay_ms),
            keys: w.keys,
            producer_crashes: w.producer_crashes,
            rewind: w.rewind,
            check: Some(
                spec.checks
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            seed: Some(self.seed.unwrap_or(0)),
            shrunk,
            violation: violation.map(|v| FileViolation {
                invariant: v.invariant.name().to_string(),
                kind: v.kind.name().to_string(),
                explanation: v.explanation.clone(),
            }),
            command: Some(command.clone()),
            schedule: schedule.clone(),
        };
        let mut text = serde_json::to_string_pretty(&saved).expect("a schedule file serializes");
        text.push('\n');
        file.write(&text)?;
        let what = if shrunk { "shrunk" } else { "drawn" };
        let _ = writeln!(
            out,
            "\n{what} schedule written to {}; run it again with: {command}",
            path.display()
        );
        Ok(())
    }
}

/// The verdict of a run without violations: held, or inconclusive when it tested too little.
fn clean(spec: &Spec, r: &mqcheck_sim::Run, out: &mut String) -> u8 {
    let mut why = Vec::new();
    if !r.complete {
        why.push(
            "the run was cut short by its time limit before the workload was sent and drained",
        );
    }
    if r.history.acks() == 0 {
        why.push("nothing was acknowledged");
    }
    if r.history.deliveries() == 0 {
        why.push("nothing was delivered");
    }
    if !why.is_empty() {
        let _ = writeln!(out, "inconclusive: {}", why.join("; "));
        return INCONCLUSIVE;
    }
    // Atomicity has nothing to judge in a run without multipart messages or transactions.
    let (checks, untested): (Vec<&Invariant>, Vec<&Invariant>) = spec
        .checks
        .iter()
        .partition(|c| **c != Invariant::Atomicity || r.history.atomic_units() > 0);
    let names = |v: &[&Invariant]| v.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ");
    let _ = write!(out, "clean: {} held", names(&checks));
    if !untested.is_empty() {
        let _ = writeln!(out, "; not tested: {}", names(&untested));
        return INCONCLUSIVE;
    }
    let _ = writeln!(out);
    HELD
}
