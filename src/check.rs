//! `mqcheck check` and `mqcheck explore`: the bounded exhaustive check of a broker model.

use crate::report::Verdict;
use crate::spec::{bad, range, WorkloadArgs};
use crate::HELD;
use clap::{Args, ValueEnum};
use mqcheck_brokers::{Config, ConfigError, Job, System};
use mqcheck_models::{describe, Bounds, CheckModel, CheckState};
use mqcheck_sim::FaultSet;
use serde::Serialize;
use stateright::{Checker, Expectation, Model};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    Bfs,
    Dfs,
}

/// What to check, as the user typed it.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Broker model (see `mqcheck list`).
    #[arg(long)]
    pub broker: String,
    /// Set a configuration key, with the broker's own name: `--set acks=1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Faults the nemesis may place anywhere: `tcp` (every fault TCP allows: crash, power,
    /// pause, partition, loss, clock), `all` (adds duplicate and reorder), `none`, or a comma
    /// list of faults and presets.
    #[arg(long, default_value = "tcp")]
    pub faults: String,
    /// Messages each producer sends.
    #[arg(long, default_value_t = 2)]
    pub messages: u32,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Process faults on one path: crashes, power losses, pauses, fast clocks.
    #[arg(long, default_value_t = 1)]
    pub max_crashes: u32,
    /// Network faults on one path: lost segments, partitions, duplicated or reordered packets.
    #[arg(long, default_value_t = 1)]
    pub max_net_faults: u32,
}

#[derive(Args, Clone, Debug)]
pub struct CheckCmd {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Checker threads. With one, BFS reports the shortest counterexample, the same every run.
    /// With more, it reports the first any thread meets, which may differ from run to run and be
    /// a little longer (the verdicts and state counts do not change).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    #[arg(long, value_enum, default_value = "bfs")]
    pub strategy: Strategy,
    /// Stop exploring paths longer than this many steps.
    #[arg(long, default_value_t = 3000)]
    pub max_depth: usize,
    /// Merge states that differ only by a shift in time (time-translation symmetry; the one
    /// symmetry that is sound in these models). Stateright applies it in depth-first search only,
    /// so it needs `--strategy dfs`.
    #[arg(long)]
    pub symmetry: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write the first counterexample as an SVG sequence diagram.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
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
        let config = Config::parse(&self.broker, &S::keys(), &self.sets)?;
        S::validate(&config)?;
        let faults: FaultSet = self.faults.parse().map_err(|e| bad("faults", e))?;
        let workload = self.workload.workload(
            range("messages", self.messages, 1, 5)?,
            range("producers", self.producers, 1, 2)?,
            range("consumers", self.consumers, 0, 2)?,
        )?;
        let max_crashes = range("max-crashes", self.max_crashes, 0, 3)? as usize;
        let max_net_faults = range("max-net-faults", self.max_net_faults, 0, 3)? as usize;
        let system = S::build(&config, workload);
        let bounds = Bounds {
            workload,
            faults,
            max_crashes,
            max_net_faults,
        };
        Ok((CheckModel::new(&system, bounds), S::effective(&config)))
    }
}

/// One property's verdict, for `--json`.
#[derive(Serialize)]
struct PropertyReport {
    expectation: &'static str,
    held: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    counterexample: Option<Vec<String>>,
    /// The checker's explanation of each violation at the counterexample's last state.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explorer: Option<String>,
}

#[derive(Serialize)]
struct CheckReport {
    broker: String,
    config: BTreeMap<String, String>,
    bounds: BTreeMap<&'static str, serde_json::Value>,
    states: usize,
    unique_states: usize,
    max_depth: usize,
    /// Some runs were cut at `--max-depth` before they ended.
    depth_limit_reached: bool,
    /// States that differ only by a shift in time were merged (`--symmetry`).
    symmetry: bool,
    /// `violated` if a safety property failed; `inconclusive` if a coverage property was not
    /// reached or `--max-depth` cut runs; `held` otherwise.
    verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    seconds: f64,
    properties: BTreeMap<&'static str, PropertyReport>,
}

impl Job for CheckCmd {
    type Output = Result<u8, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let (model, config) = self.model.model::<S>()?;
        let mut checker = model.checker().target_max_depth(self.max_depth);
        checker = checker.threads(self.threads.max(1));
        if self.symmetry {
            if self.strategy != Strategy::Dfs {
                return Err(bad(
                    "symmetry",
                    "--symmetry needs --strategy dfs: stateright reduces by symmetry in depth-first search only (allowed: --strategy dfs)".into(),
                ));
            }
            checker = checker.symmetry_fn(CheckState::<S>::representative);
        }
        let started = Instant::now();
        match self.strategy {
            Strategy::Bfs => self.conclude(checker.spawn_bfs(), config, started),
            Strategy::Dfs => self.conclude(checker.spawn_dfs(), config, started),
        }
    }
}

impl CheckCmd {
    /// Waits for the checker, printing stateright's progress lines, then reports every property.
    fn conclude<S: System>(
        &self,
        running: impl Checker<CheckModel<S>>,
        config: Config,
        started: Instant,
    ) -> Result<u8, ConfigError> {
        let mut progress: Box<dyn std::io::Write> = if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        let done = running.report(&mut Progress(&mut progress));
        let seconds = started.elapsed().as_secs_f64();
        let model = done.model();
        let properties = model.properties();
        let bounds = model.bounds.clone();
        let mut reports = BTreeMap::new();
        let mut text = String::new();
        let mut failed = false;
        let mut unreached = Vec::new();
        let mut svg_written = false;
        for property in &properties {
            let path = done.discovery(property.name);
            let (expectation, held) = match property.expectation {
                Expectation::Always => ("always", path.is_none()),
                Expectation::Sometimes => ("sometimes", path.is_some()),
                Expectation::Eventually => ("eventually", path.is_none()),
            };
            match property.expectation {
                Expectation::Sometimes if !held => unreached.push(property.name),
                _ => failed |= !held,
            }
            let counterexample = match (&property.expectation, &path) {
                (Expectation::Sometimes, _) | (_, None) => None,
                (_, Some(path)) => Some(path),
            };
            let steps = counterexample.map(|path| {
                path.clone()
                    .into_actions()
                    .iter()
                    .map(|a| describe::step(model, a))
                    .collect::<Vec<_>>()
            });
            let explorer = counterexample.map(|path| format!("#/steps/{}", path.encode(model)));
            // Structural invariants have no words of their own: their story is the explanation.
            let why = counterexample
                .map(|path| {
                    mqcheck_models::properties::explain(model, property.name, path.last_state())
                })
                .filter(|why| !why.is_empty());
            match (&property.expectation, held) {
                (Expectation::Sometimes, true) => {
                    text += &format!("reached   {} (coverage)\n", property.name)
                }
                (Expectation::Sometimes, false) => {
                    text += &format!(
                        "UNREACHED {} (coverage): the model never got there within these bounds, so its other verdicts say little\n",
                        property.name
                    )
                }
                (_, true) => text += &format!("held      {}\n", property.name),
                (_, false) => {
                    text += &format!("VIOLATED  {}\n", property.name);
                    let actions = counterexample.map(|p| p.clone().into_actions()).unwrap_or_default();
                    let mut skipped = 0;
                    let mut recent: std::collections::VecDeque<String> = Default::default();
                    for (i, action) in actions.iter().enumerate() {
                        let line = describe::step(model, action);
                        // Routine steps, and a step told a moment ago (a poll loop), are counted.
                        if describe::routine::<S>(action) || recent.contains(&line) {
                            skipped += 1;
                            continue;
                        }
                        text += &format!("  {:>5}. {line}\n", i + 1);
                        recent.push_back(line);
                        if recent.len() > 8 {
                            recent.pop_front();
                        }
                    }
                    text += &format!(
                        "  ({} steps; {skipped} not shown: timers, heartbeats, empty polls, repeats)\n",
                        actions.len()
                    );
                    for why in why.iter().flatten() {
                        text += &format!("  why: {why}\n");
                    }
                    text += &format!(
                        "  open in the Explorer (mqcheck explore, same options): {}\n",
                        explorer.clone().unwrap_or_default()
                    );
                    if let (Some(file), Some(path), false) = (&self.svg, counterexample, svg_written)
                    {
                        let svg = describe::svg(model, path);
                        if let Err(e) = std::fs::write(file, svg) {
                            return Err(bad(
                                "svg",
                                format!("cannot write --svg {}: {e}", file.display()),
                            ));
                        }
                        svg_written = true;
                    }
                }
            }
            reports.insert(
                property.name,
                PropertyReport {
                    expectation,
                    held,
                    counterexample: steps,
                    why,
                    explorer,
                },
            );
        }
        let cut = done.max_depth() >= self.max_depth;
        if cut {
            text += &format!(
                "note: some runs reached --max-depth {} before they ended; at-least-once was not judged on them\n",
                self.max_depth
            );
        }
        let mut why = Vec::new();
        if !unreached.is_empty() {
            why.push(format!("coverage unreached: {}", unreached.join(", ")));
        }
        if cut {
            why.push(format!("--max-depth {} cut some runs", self.max_depth));
        }
        let (verdict, reason) = if failed {
            (Verdict::Violated, None)
        } else if why.is_empty() {
            (Verdict::Held, None)
        } else {
            let reason = why.join("; ");
            text += &format!("inconclusive: {reason}\n");
            (Verdict::Inconclusive, Some(reason))
        };
        let mut bounds_json = BTreeMap::new();
        bounds_json.insert("messages", bounds.workload.messages.into());
        bounds_json.insert("producers", bounds.workload.producers.into());
        bounds_json.insert("consumers", bounds.workload.consumers.into());
        bounds_json.insert("faults", bounds.faults.to_string().into());
        bounds_json.insert("max_crashes", bounds.max_crashes.into());
        bounds_json.insert("max_net_faults", bounds.max_net_faults.into());
        bounds_json.insert("max_depth", self.max_depth.into());
        let w = bounds.workload;
        if let Some(rate) = w.rate {
            bounds_json.insert("rate", rate.into());
        }
        if let Some(ms) = w.handler_ms {
            bounds_json.insert("handler_ms", ms.into());
        }
        if w.consumer_delay_ms > 0 {
            bounds_json.insert("consumer_delay_ms", w.consumer_delay_ms.into());
        }
        if let Some(keys) = w.keys {
            bounds_json.insert("keys", keys.into());
        }
        let report = CheckReport {
            broker: S::NAME.to_string(),
            config: config.values().clone(),
            bounds: bounds_json,
            states: done.state_count(),
            unique_states: done.unique_state_count(),
            max_depth: done.max_depth(),
            depth_limit_reached: cut,
            symmetry: self.symmetry,
            verdict,
            reason,
            seconds,
            properties: reports,
        };
        if self.json {
            crate::emit(&(serde_json::to_string_pretty(&report).expect("serializable") + "\n"));
        } else {
            crate::emit(&text);
        }
        Ok(verdict.code())
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
        // Stateright's server panics on an address it cannot bind: find out first.
        drop(
            std::net::TcpListener::bind(addr)
                .map_err(|e| bad("addr", format!("cannot listen on --addr {addr}: {e}")))?,
        );
        crate::emit(&format!(
            "Stateright Explorer for {} on http://{addr}/ (Ctrl-C stops it)\n",
            S::NAME
        ));
        model.checker().serve(addr);
        Ok(HELD)
    }
}

/// Prints stateright's progress lines (`Checking. states=…` and `Done. states=…, unique=…,
/// depth=…, sec=…`); the verdicts follow in the broker's vocabulary rather than as `Debug` paths.
struct Progress<'a>(&'a mut dyn std::io::Write);

impl<M: Model> stateright::report::Reporter<M> for Progress<'_> {
    fn delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(250)
    }

    fn report_checking(&mut self, data: stateright::report::ReportData) {
        let _ = std::io::Write::write_fmt(
            self.0,
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
