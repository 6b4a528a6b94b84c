//! `mqcheck check` and `mqcheck explore`: the bounded exhaustive check of a broker model.

use crate::output::OutputFile;
use crate::report::Verdict;
use crate::spec::{bad, int, BrokerArgs, Checked};
use crate::HELD;
use clap::{Args, ValueEnum};
use mqcheck_brokers::{Config, ConfigError, Job, System};
use mqcheck_models::describe::{self, StepReport, Told};
use mqcheck_models::{Bounds, CheckModel, CheckState};
use serde::Serialize;
use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    Bfs,
    Dfs,
}

/// What to check, as the user typed it.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    #[command(flatten)]
    pub setup: BrokerArgs<Checked>,
    /// Process faults on one path: crashes, power losses, pauses, fast clocks.
    #[arg(long, default_value_t = 1, value_parser = int(0usize, 3))]
    pub max_crashes: usize,
    /// Network faults on one path: lost segments, partitions, duplicated or reordered packets.
    #[arg(long, default_value_t = 1, value_parser = int(0usize, 3))]
    pub max_net_faults: usize,
    /// Store and judge every state of every run: no following of single-step stretches
    /// (docs/model-checking.md, "Reduction"). The verdicts are the same; the counts are larger.
    #[arg(long)]
    pub unreduced: bool,
}

#[derive(Args, Clone, Debug)]
pub struct CheckCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Checker threads. With one, BFS reports the shortest counterexample, the same every run.
    /// With more, it reports the first any thread meets, which may differ from run to run and be
    /// a little longer (the verdicts and state counts do not change).
    #[arg(long, default_value_t = 1, value_parser = int(1usize, 256))]
    pub threads: usize,
    #[arg(long, value_enum, default_value = "bfs")]
    pub strategy: Strategy,
    /// Stop exploring paths longer than this many steps.
    #[arg(long, default_value_t = 3000, value_parser = int(1usize, usize::MAX))]
    pub max_depth: usize,
    /// Stop the search after about this many states. Breadth-first search keeps 150 to 700
    /// bytes a state (more when the frontier is wide), so the default keeps a check within about
    /// 7 GB. A search it stops is inconclusive.
    #[arg(long, default_value_t = 10_000_000, value_parser = int(1usize, usize::MAX))]
    pub max_states: usize,
    /// Stop the search after this many seconds of wall time (default: no limit). A search it
    /// stops is inconclusive; every property still gets its verdict over the part explored.
    #[arg(long, value_name = "S", value_parser = int(1u64, 31_536_000))]
    pub max_seconds: Option<u64>,
    /// Stop the search when the checker's resident memory passes this many MiB (default: three
    /// quarters of the memory the machine has available when the check starts; no guard where
    /// /proc does not tell). A search it stops is inconclusive, like one --max-seconds stops.
    #[arg(long, value_name = "MIB", value_parser = int(1u64, 1 << 40))]
    pub max_memory: Option<u64>,
    /// Stop the search once the named safety properties (comma-separated; `any`, the default
    /// value, for the first violation of any) are all violated: the counterexamples stand
    /// (exit 1), every other property keeps its verdict over the part explored. A violation
    /// found is a real run whatever the search order, so with `--strategy dfs`, which follows a
    /// run to its end before it tries another placement of a fault, a loss that needs several
    /// faults can be found long before the whole space is explored.
    #[arg(long, value_name = "PROPERTIES", num_args = 0..=1, default_missing_value = "any")]
    pub stop_at_violation: Option<String>,
    /// Merge states that differ only by a shift in time (time-translation symmetry; the one
    /// symmetry that is sound in these models). Stateright applies it in depth-first search only,
    /// so it needs `--strategy dfs`.
    #[arg(long)]
    pub symmetry: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write the first counterexample as an SVG sequence diagram: its story (the steps that
    /// lead to the violation, routine steps and repeats folded into one row each).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Draw every step of the counterexample in --svg, not only its story.
    #[arg(long, requires = "svg")]
    pub svg_full: bool,
}

#[derive(Args, Clone, Debug)]
pub struct ExploreCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Where the Stateright Explorer listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: String,
}

impl ModelArgs {
    /// Validates the options and builds the model.
    fn model<S: System>(&self) -> Result<(CheckModel<S>, Config), ConfigError> {
        let setup = self.setup.validate::<S>()?;
        let (max_crashes, max_net_faults) = (self.max_crashes, self.max_net_faults);
        let system = S::build(&setup.config, setup.workload);
        let bounds = Bounds {
            workload: setup.workload,
            faults: setup.faults,
            max_crashes,
            max_net_faults,
        };
        let model = CheckModel::new(&system, bounds);
        let model = if self.unreduced {
            model.unreduced()
        } else {
            model
        };
        Ok((model, S::effective(&setup.config)))
    }
}

/// What a property expects of every path (stateright's [`Expectation`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Expects {
    Always,
    /// A coverage property: some path must get there.
    Sometimes,
    Eventually,
}

/// One property's verdict, computed once from stateright's result.
#[derive(Serialize)]
struct PropertyVerdict {
    #[serde(skip)]
    name: &'static str,
    expectation: Expects,
    held: bool,
    /// In words: `held`, `held within the explored part` (a search stopped early), `violated`,
    /// `not judged` (the search met no state where it could be), `reached`, `unreached`,
    /// `unreached within the explored part` (`--stop-at-violation` ended the search first).
    verdict: &'static str,
    #[serde(flatten)]
    violation: Option<Violation>,
}

/// A violated property's evidence: the path that breaks it and why.
#[derive(Serialize)]
struct Violation {
    counterexample: Vec<StepReport>,
    /// The checker's explanation of each violation at the counterexample's last state (none for
    /// structural invariants: their story is the explanation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    why: Vec<String>,
    /// The counterexample's link in the Explorer.
    explorer: String,
}

/// The whole check: what was checked, how far the search went, every property's verdict. The
/// summary, the JSON and the SVG are all read from it.
#[derive(Serialize)]
struct CheckReport {
    broker: String,
    config: BTreeMap<String, String>,
    bounds: BTreeMap<&'static str, serde_json::Value>,
    states: usize,
    unique_states: usize,
    /// Steps the reduction took between stored states without storing theirs (0 with
    /// `--unreduced`): with `states`, how many steps the search took.
    followed_steps: usize,
    /// Single-step stretches were followed without storing their states (not `--unreduced`).
    reduced: bool,
    max_depth: usize,
    /// Some runs were cut at `--max-depth` before they ended.
    depth_limit_reached: bool,
    /// States that differ only by a shift in time were merged (`--symmetry`).
    symmetry: bool,
    /// `--stop-at-violation` met the violations it waited for and ended the search there: the
    /// properties that held, held within the explored part.
    stopped_at_violation: bool,
    /// `violated` if a safety property failed; `inconclusive` if a coverage property was not
    /// reached or `--max-depth` cut runs; `held` otherwise.
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    seconds: f64,
    /// In the model's order; the JSON is keyed by name.
    #[serde(serialize_with = "by_name")]
    properties: Vec<PropertyVerdict>,
}

fn by_name<Z: serde::Serializer>(properties: &[PropertyVerdict], z: Z) -> Result<Z::Ok, Z::Error> {
    z.collect_map(
        properties
            .iter()
            .map(|p| (p.name, p))
            .collect::<BTreeMap<_, _>>(),
    )
}

impl PropertyVerdict {
    /// The verdict of `property` on the finished search `done`; `partial` if the search was
    /// stopped before it explored everything within its bounds.
    fn of<S: System>(
        done: &impl Checker<CheckModel<S>>,
        property: &stateright::Property<CheckModel<S>>,
        partial: bool,
    ) -> Self {
        let model = done.model();
        let path = done.discovery(property.name);
        let judged = mqcheck_models::properties::judged(model, property.name);
        let (expectation, held, verdict) = match (&property.expectation, &path) {
            (Expectation::Sometimes, Some(_)) => (Expects::Sometimes, true, "reached"),
            (Expectation::Sometimes, None) => (Expects::Sometimes, false, "unreached"),
            (Expectation::Always, Some(_)) => (Expects::Always, false, "violated"),
            (Expectation::Eventually, Some(_)) => (Expects::Eventually, false, "violated"),
            (e, None) => {
                let expects = if *e == Expectation::Always {
                    Expects::Always
                } else {
                    Expects::Eventually
                };
                match (judged, partial) {
                    (false, _) => (expects, false, "not judged"),
                    (true, true) => (expects, true, "held within the explored part"),
                    (true, false) => (expects, true, "held"),
                }
            }
        };
        let violation = path
            .filter(|_| expectation != Expects::Sometimes)
            .map(|path| Violation {
                counterexample: describe::steps(model, &path),
                why: mqcheck_models::properties::explain(model, property.name, path.last_state()),
                explorer: format!("#/steps/{}", path.encode(model)),
            });
        PropertyVerdict {
            name: property.name,
            expectation,
            held,
            verdict,
            violation,
        }
    }

    /// Its lines of the summary: the verdict, and a violation's story told without its routine
    /// steps.
    fn text(&self) -> String {
        let name = self.name;
        let Some(violation) = &self.violation else {
            return match (self.expectation, self.held) {
                (Expects::Sometimes, true) => format!("reached   {name} (coverage)\n"),
                (Expects::Sometimes, false) if self.verdict != "unreached" => {
                    format!("unreached {name} (coverage, within the explored part)\n")
                }
                (Expects::Sometimes, false) => format!(
                    "UNREACHED {name} (coverage): the model never got there within these bounds, so its other verdicts say little\n"
                ),
                _ if self.verdict == "not judged" => format!(
                    "NOT JUDGED {name}: no run ended within the explored part, and it is judged at a run's end\n"
                ),
                _ if self.verdict == "held" => format!("held      {name}\n"),
                _ => format!("held      {name} (within the explored part)\n"),
            };
        };
        let mut text = format!("VIOLATED  {name}\n");
        let mut skipped = 0;
        for told in describe::story(&violation.counterexample) {
            match told {
                Told::Step(step) => text += &format!("  {:>5}. {}\n", step.index, step.text),
                Told::Folded(n) => skipped += n,
            }
        }
        text += &format!(
            "  ({} steps; {skipped} not shown: timers, heartbeats, empty polls, repeats)\n",
            violation.counterexample.len()
        );
        for why in &violation.why {
            text += &format!("  why: {why}\n");
        }
        text += &format!(
            "  open in the Explorer (mqcheck explore, same options): {}\n",
            violation.explorer
        );
        text
    }
}

impl CheckReport {
    /// The summary: each property's verdict in the model's order, then why it is inconclusive.
    fn text(&self, max_depth: usize) -> String {
        let mut text: String = self.properties.iter().map(PropertyVerdict::text).collect();
        if self.depth_limit_reached {
            text += &format!(
                "note: some runs reached --max-depth {max_depth} before they ended; at-least-once was not judged on them\n"
            );
        }
        if self.stopped_at_violation {
            text += "note: --stop-at-violation ended the search at the violation; what held, held within the explored part\n";
        }
        if let Some(reason) = &self.reason {
            text += &format!("inconclusive: {reason}\n");
        }
        text
    }

    /// The first violated property and its evidence.
    fn first_violation(&self) -> Option<(&'static str, &Violation)> {
        self.properties
            .iter()
            .find_map(|p| Some((p.name, p.violation.as_ref()?)))
    }
}

impl Job for CheckCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let (model, config) = self.model.model::<S>()?;
        let stop_at = match &self.stop_at_violation {
            Some(names) => Some(StopAt::parse(&model.properties(), names)?),
            None => None,
        };
        let stop = model.stop();
        let followed = model.followed();
        let mut checker = model
            .checker()
            .target_max_depth(self.max_depth)
            .target_state_count(self.max_states);
        checker = checker.threads(self.threads);
        if let Some(stop_at) = &stop_at {
            checker = checker.finish_when(stop_at.when());
        }
        if self.symmetry {
            if self.strategy != Strategy::Dfs {
                return Err(bad(
                    "symmetry",
                    "--symmetry needs --strategy dfs: stateright reduces by symmetry in depth-first search only (allowed: --strategy dfs)".into(),
                ));
            }
            checker = checker.symmetry_fn(CheckState::<S>::representative);
        }
        let svg = OutputFile::maybe("svg", self.svg.as_ref())?;
        let guard = Guard {
            stop,
            started: Instant::now(),
            max_seconds: self.max_seconds,
            max_memory: self
                .max_memory
                .map(|mib| (mib, false))
                .or_else(|| memory::default_limit().map(|mib| (mib, true))),
            stopped: None,
            followed,
            followed_when_done: 0,
        };
        crate::output::checking(true);
        let verdict = match self.strategy {
            Strategy::Bfs => self.conclude(checker.spawn_bfs(), config, svg, guard, stop_at),
            Strategy::Dfs => self.conclude(checker.spawn_dfs(), config, svg, guard, stop_at),
        };
        crate::output::checking(false);
        verdict
    }
}

impl CheckCmd {
    /// Waits for the checker, printing stateright's progress lines, then reports every property.
    fn conclude<S: System>(
        &self,
        running: impl Checker<CheckModel<S>>,
        config: Config,
        svg: Option<OutputFile>,
        guard: Guard,
        stop_at: Option<StopAt>,
    ) -> Result<u8, ConfigError> {
        let mut progress: Box<dyn std::io::Write> = if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        let mut reporter = Progress {
            out: &mut progress,
            guard,
        };
        let done = running.report(&mut reporter);
        let guard = reporter.guard;
        let seconds = guard.started.elapsed().as_secs_f64();
        let model = done.model();
        let limited = done.state_count() >= self.max_states;
        let partial = guard.stopped.is_some() || limited;
        let properties: Vec<PropertyVerdict> = model
            .properties()
            .iter()
            .map(|property| PropertyVerdict::of(&done, property, partial))
            .collect();
        let failed = properties.iter().any(|p| p.verdict == "violated");
        let mut properties = properties;
        let stopped_at_violation = stop_at.is_some_and(|stop_at| stop_at.reached(&properties));
        if stopped_at_violation {
            // The search may have ended before it explored everything: what held, held in the
            // part explored.
            for p in properties.iter_mut() {
                match p.verdict {
                    "held" => p.verdict = "held within the explored part",
                    "unreached" => p.verdict = "unreached within the explored part",
                    _ => {}
                }
            }
        }
        let unreached: Vec<&str> = properties
            .iter()
            .filter(|p| p.expectation == Expects::Sometimes && !p.held)
            .map(|p| p.name)
            .collect();
        let cut = done.max_depth() >= self.max_depth;
        let mut why = Vec::new();
        if !unreached.is_empty() {
            why.push(format!("coverage unreached: {}", unreached.join(", ")));
        }
        if cut {
            why.push(format!("--max-depth {} cut some runs", self.max_depth));
        }
        let states = done.state_count();
        match guard.stopped {
            Some(Stopped::Interrupted) => {
                why.push(format!("interrupted (Ctrl-C) after {states} states"));
            }
            Some(Stopped::Seconds(s)) => {
                why.push(format!(
                    "--max-seconds {s} stopped the search after {states} states"
                ));
            }
            Some(Stopped::Memory {
                limit,
                default,
                resident,
            }) => why.push(format!(
                "the memory guard stopped the search after {states} states, at {resident} MiB resident (--max-memory {limit}{})",
                if default {
                    ", the default: three quarters of the memory available at the start"
                } else {
                    ""
                }
            )),
            None => {}
        }
        let unjudged: Vec<&str> = properties
            .iter()
            .filter(|p| p.verdict == "not judged")
            .map(|p| p.name)
            .collect();
        if !unjudged.is_empty() {
            why.push(format!("not judged: {}", unjudged.join(", ")));
        }
        if limited {
            why.push(format!(
                "--max-states {} stopped the search after {} states",
                self.max_states,
                done.state_count()
            ));
        }
        let (verdict, reason) = if failed {
            (Verdict::Violated, None)
        } else if why.is_empty() {
            (Verdict::Held, None)
        } else {
            (Verdict::Inconclusive, Some(why.join("; ")))
        };
        let report = CheckReport {
            broker: S::NAME.to_string(),
            config: config.values().clone(),
            bounds: self.bounds_json(&model.bounds),
            states: done.state_count(),
            unique_states: done.unique_state_count(),
            followed_steps: guard.followed_when_done,
            reduced: !self.model.unreduced,
            max_depth: done.max_depth(),
            depth_limit_reached: cut,
            symmetry: self.symmetry,
            stopped_at_violation,
            verdict,
            reason,
            seconds,
            properties,
        };
        if let Some(mut file) = svg {
            match report.first_violation() {
                Some((name, violation)) => {
                    let title = self.title::<S>(name, violation);
                    let steps = &violation.counterexample;
                    file.write(&describe::diagram(model, &title, steps, self.svg_full))?;
                }
                None => file.discard(),
            }
        }
        if self.json {
            crate::output::emit(
                &(serde_json::to_string_pretty(&report).expect("serializable") + "\n"),
            );
        } else {
            crate::output::emit(&report.text(self.max_depth));
        }
        Ok(verdict.code())
    }

    /// A diagram's title: the broker, its configuration as set and the faults, then the
    /// violated property and why, then what the drawing shows.
    fn title<S: System>(&self, property: &str, violation: &Violation) -> Vec<String> {
        let setup = &self.model.setup;
        let mut configured = vec![S::NAME.to_string()];
        configured.extend(setup.sets.iter().cloned());
        configured.push(format!("--faults {}", setup.faults));
        let mut title = vec![configured.join(" "), format!("VIOLATED {property}")];
        title.extend(violation.why.iter().map(|why| format!("why: {why}")));
        title.push(if self.svg_full {
            format!("all {} steps", violation.counterexample.len())
        } else {
            format!(
                "the story of {} steps (grey rows fold the rest; --svg-full draws every step)",
                violation.counterexample.len()
            )
        });
        title
    }

    /// The bounds of the search, for `--json`.
    fn bounds_json(&self, bounds: &Bounds) -> BTreeMap<&'static str, serde_json::Value> {
        let mut json = BTreeMap::new();
        let w = bounds.workload;
        json.insert("messages", w.messages.into());
        json.insert("producers", w.producers.into());
        json.insert("consumers", w.consumers.into());
        json.insert("faults", bounds.faults.to_string().into());
        json.insert("max_crashes", bounds.max_crashes.into());
        json.insert("max_net_faults", bounds.max_net_faults.into());
        json.insert("max_depth", self.max_depth.into());
        if let Some(s) = self.max_seconds {
            json.insert("max_seconds", s.into());
        }
        if let Some(mib) = self.max_memory {
            json.insert("max_memory", mib.into());
        }
        if let Some(rate) = w.rate {
            json.insert("rate", rate.into());
        }
        if let Some(ms) = w.handler_ms {
            json.insert("handler_ms", ms.into());
        }
        if w.consumer_delay_ms > 0 {
            json.insert("consumer_delay_ms", w.consumer_delay_ms.into());
        }
        if let Some(keys) = w.keys {
            json.insert("keys", keys.into());
        }
        json
    }
}

impl Job for ExploreCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let (model, _) = self.model.model::<S>()?;
        let addr: std::net::SocketAddr = self.addr.parse().map_err(|e| {
            bad(
                "addr",
                format!("invalid --addr '{}': {e} (allowed: HOST:PORT)", self.addr),
            )
        })?;
        // Stateright's server panics on an address it cannot bind: find out first, and learn
        // the port the system picks for port 0.
        let addr = std::net::TcpListener::bind(addr)
            .and_then(|l| l.local_addr())
            .map_err(|e| bad("addr", format!("cannot listen on --addr {addr}: {e}")))?;
        crate::output::emit(&format!(
            "Stateright Explorer for {} on http://{addr}/ (Ctrl-C stops it)\n",
            S::NAME
        ));
        model.checker().serve(addr);
        Ok(HELD)
    }
}

/// What `--stop-at-violation` waits for: the first violation of any safety property, or one of
/// each named one.
struct StopAt(Option<std::collections::BTreeSet<&'static str>>);

impl StopAt {
    /// `any`, or a comma-separated list of the model's safety properties.
    fn parse<M: Model>(
        properties: &[stateright::Property<M>],
        names: &str,
    ) -> Result<Self, ConfigError> {
        if names == "any" {
            return Ok(StopAt(None));
        }
        let safety: Vec<&'static str> = properties
            .iter()
            .filter(|p| p.expectation == Expectation::Always)
            .map(|p| p.name)
            .collect();
        let mut wanted = std::collections::BTreeSet::new();
        for name in names.split(',') {
            let known = safety.iter().find(|p| **p == name).ok_or_else(|| {
                bad(
                    "stop-at-violation",
                    format!(
                        "--stop-at-violation: unknown safety property '{name}' (allowed: any, or a comma-separated list of {})",
                        safety.join(", ")
                    ),
                )
            })?;
            wanted.insert(*known);
        }
        Ok(StopAt(Some(wanted)))
    }

    /// The checker's condition for ending the search.
    fn when(&self) -> HasDiscoveries {
        match &self.0 {
            None => HasDiscoveries::AnyFailures,
            Some(wanted) => HasDiscoveries::AllOf(wanted.clone()),
        }
    }

    /// Did the search meet what it waited for (so it may have ended early)?
    fn reached(&self, properties: &[PropertyVerdict]) -> bool {
        let violated = |p: &&PropertyVerdict| p.verdict == "violated";
        match &self.0 {
            None => properties.iter().any(|p| violated(&p)),
            Some(wanted) => wanted
                .iter()
                .all(|name| properties.iter().any(|p| p.name == *name && violated(&p))),
        }
    }
}

/// Why a search stopped before it explored everything within its bounds (other than
/// `--max-states`, which stateright counts itself).
#[derive(Clone, Copy, Debug)]
enum Stopped {
    Interrupted,
    Seconds(u64),
    /// The memory guard: its limit (MiB), whether it was the default, what was resident.
    Memory {
        limit: u64,
        default: bool,
        resident: u64,
    },
}

/// Watches a search under way and stops it ([`CheckModel::stop`]) on Ctrl-C, at
/// `--max-seconds`, or when the process' resident memory passes the guard's limit.
struct Guard {
    stop: Arc<AtomicBool>,
    started: Instant,
    max_seconds: Option<u64>,
    /// The limit (MiB), and whether it is the default.
    max_memory: Option<(u64, bool)>,
    stopped: Option<Stopped>,
    /// The reduction's count of followed steps ([`CheckModel::followed`]), and its value when
    /// the search was done (before rebuilding paths replays steps).
    followed: Arc<std::sync::atomic::AtomicUsize>,
    followed_when_done: usize,
}

impl Guard {
    fn watch(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        self.stopped = if crate::output::interrupted() {
            Some(Stopped::Interrupted)
        } else if let Some(s) = self
            .max_seconds
            .filter(|s| self.started.elapsed().as_secs() >= *s)
        {
            Some(Stopped::Seconds(s))
        } else if let Some(((limit, default), resident)) = self
            .max_memory
            .zip(memory::resident_mib())
            .filter(|((limit, _), resident)| resident > limit)
        {
            Some(Stopped::Memory {
                limit,
                default,
                resident,
            })
        } else {
            None
        };
        if self.stopped.is_some() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// What the kernel says of memory (Linux' /proc; `None` elsewhere).
mod memory {
    /// A `KEY: N kB` line of a /proc file, in MiB.
    fn field_mib(path: &str, key: &str) -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let line = text.lines().find(|l| l.starts_with(key))?;
        let kib: u64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
        Some(kib / 1024)
    }

    /// This process' resident memory.
    pub fn resident_mib() -> Option<u64> {
        field_mib("/proc/self/status", "VmRSS:")
    }

    /// The memory guard's default: three quarters of what the machine has available now.
    pub fn default_limit() -> Option<u64> {
        field_mib("/proc/meminfo", "MemAvailable:").map(|mib| (mib / 4 * 3).max(1))
    }
}

/// Prints stateright's progress lines (`Checking. states=…` and `Done. states=…, unique=…,
/// depth=…, sec=…`), and keeps the guard's watch between them; the verdicts follow in the
/// broker's vocabulary rather than as `Debug` paths.
struct Progress<'a> {
    out: &'a mut dyn std::io::Write,
    guard: Guard,
}

impl<M: Model> stateright::report::Reporter<M> for Progress<'_> {
    fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(250)
    }

    fn report_checking(&mut self, data: stateright::report::ReportData) {
        if data.done {
            // The search is over: the model gives every state its steps again, so that
            // stateright can rebuild the counterexamples' paths.
            self.guard.stop.store(false, Ordering::Relaxed);
            self.guard.followed_when_done = self.guard.followed.load(Ordering::Relaxed);
        } else {
            self.guard.watch();
        }
        let _ = std::io::Write::write_fmt(
            self.out,
            format_args!(
                "{}. states={}, unique={}, depth={}, sec={}\n",
                if data.done { "Done" } else { "Checking" },
                data.total_states,
                data.unique_states,
                data.max_depth,
                data.duration.as_secs()
            ),
        );
    }

    fn report_discoveries(
        &mut self,
        _: &M,
        _: BTreeMap<&'static str, stateright::report::ReportDiscovery<M>>,
    ) {
    }
}

/// One property's verdict in a bounded check run from code ([`ModelArgs::bounded`]).
#[derive(Clone, Debug)]
pub struct BoundedProperty {
    pub name: &'static str,
    /// `held`, `held within the explored part`, `violated`, `not judged`, `reached` or
    /// `unreached`, as `check` says them.
    pub verdict: &'static str,
    /// A violation's path (empty otherwise).
    pub counterexample: Vec<StepReport>,
    /// The checker's explanation of a violation.
    pub why: Vec<String>,
}

/// A bounded check run from code: how far the search went and every property's verdict.
#[derive(Clone, Debug)]
pub struct Bounded {
    pub states: usize,
    pub unique_states: usize,
    /// The state budget or the depth limit stopped the search before it explored everything
    /// within its bounds: no safety property is `held`, only held within the explored part.
    pub partial: bool,
    pub properties: Vec<BoundedProperty>,
}

impl ModelArgs {
    /// The check `mqcheck check` runs with these options, `--strategy strategy` and
    /// `--max-states max_states`, on one thread (so the same every run), without its output:
    /// for the matrix's exhaustive evidence.
    pub fn bounded<S: System>(
        &self,
        strategy: Strategy,
        max_states: usize,
    ) -> Result<Bounded, ConfigError> {
        const MAX_DEPTH: usize = 3000;
        let (model, _) = self.model::<S>()?;
        let checker = model
            .checker()
            .target_max_depth(MAX_DEPTH)
            .target_state_count(max_states);
        Ok(match strategy {
            Strategy::Bfs => Bounded::of(checker.spawn_bfs().join(), max_states, MAX_DEPTH),
            Strategy::Dfs => Bounded::of(checker.spawn_dfs().join(), max_states, MAX_DEPTH),
        })
    }
}

impl Bounded {
    /// The verdicts of the finished search `done`.
    fn of<S: System>(
        done: impl Checker<CheckModel<S>>,
        max_states: usize,
        max_depth: usize,
    ) -> Self {
        let partial = done.state_count() >= max_states || done.max_depth() >= max_depth;
        let properties = done
            .model()
            .properties()
            .iter()
            .map(|property| {
                let p = PropertyVerdict::of(&done, property, partial);
                let (counterexample, why) = p
                    .violation
                    .map_or((Vec::new(), Vec::new()), |v| (v.counterexample, v.why));
                BoundedProperty {
                    name: p.name,
                    verdict: p.verdict,
                    counterexample,
                    why,
                }
            })
            .collect();
        Bounded {
            states: done.state_count(),
            unique_states: done.unique_state_count(),
            partial,
            properties,
        }
    }
}
