//! `mqcheck matrix`: the comparison article's claims, broker by broker, configuration by
//! configuration, each guarantee swept under each fault class on its own and under their
//! combination; each counterexample attributed to the classes its shrunk schedule needs; each
//! claim of the article confirmed, refuted or stated with its conditions, from those cells.

pub mod cells;
pub mod claims;
pub mod evidence;
mod html;
mod render;
mod repair;

use crate::check::ModelArgs;
use crate::output::OutputFile;
use crate::report::Verdict;
use crate::simulate::progress;
use crate::spec::{bad, int, BrokerArgs, SimArgs, Simulated, Sizes, Spec, WorkloadArgs};
use crate::BAD_INPUT;
use cells::{Cell, Class};
use clap::Args;
use indicatif::ProgressBar;
use mqcheck_brokers::{dispatch, ConfigError, Job, Scenario, System, BROKERS};
use mqcheck_invariants::Invariant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct MatrixCmd {
    /// Brokers to run: a comma list (default: every broker `mqcheck list` names).
    #[arg(long)]
    pub broker: Option<String>,
    /// Only the rows (named configurations) of this name; repeat for several.
    #[arg(long = "row", value_name = "NAME")]
    pub rows: Vec<String>,
    /// Fault classes, one sweep each: `all`, or a comma list of crash, power, pause, network
    /// (partition and loss), clock, beyond-tcp (duplicate and reorder), tcp (every fault TCP
    /// allows, together).
    #[arg(long, default_value = "all", value_parser = Class::parse_list)]
    pub faults: cells::Classes,
    /// Guarantees to judge: a comma list of at-least-once, at-most-once, ordering, atomicity,
    /// replay (judged with consumers that rewind `--rewind` records, 10 by default).
    #[arg(long, default_value = CHECKS)]
    pub check: String,
    /// Seeds per row and fault class.
    #[arg(long, default_value_t = 20, value_parser = int(1u64, u64::MAX))]
    pub seeds: u64,
    /// Messages each producer sends in every run.
    #[arg(long, default_value_t = 40, value_parser = int(1u32, Simulated::MAX.messages))]
    pub messages: u32,
    #[arg(long, default_value_t = 1, value_parser = int(1, Simulated::MAX.producers))]
    pub producers: u32,
    #[arg(long, default_value_t = 1, value_parser = int(0, Simulated::MAX.consumers))]
    pub consumers: u32,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Runs each counterexample's shrinking may spend.
    #[arg(long, default_value_t = 24, value_parser = int(0usize, 10_000))]
    pub shrink_budget: usize,
    /// For each broken cell (beyond TCP aside), search the broker's keys for the smallest
    /// changes from the row's configuration (single changes, then pairs) under which the class
    /// no longer breaks the guarantee in any of the seeds. Slow: opt in, with `--row`.
    #[arg(long)]
    pub repair: bool,
    /// The state budget of each row's bounded model check (`mqcheck check` with one message, one
    /// process and one network fault on a path, the faults of `--faults`); 0 turns it off.
    #[arg(long, default_value_t = 30_000, value_parser = int(0usize, 10_000_000))]
    pub check_states: usize,
    /// Also write the matrix as JSON (schema `mqcheck-matrix/1`, docs/matrix.md) to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the matrix as Markdown to this file (`--markdown docs/matrix.md` regenerates
    /// the page).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Also write the matrix as one self-contained HTML page to this file: the claims, the
    /// cells, and every counterexample replayed with its story, sequence diagram and plot.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// A matrix written earlier with `--json`: print what changed since.
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
}

/// The JSON's schema name and version: bumped whenever a field changes meaning or goes away.
pub const SCHEMA: &str = "mqcheck-matrix/1";

/// The whole matrix, as `--json` writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Matrix {
    pub schema: String,
    /// The command line that reproduces it.
    pub command: String,
    pub seeds: u64,
    pub classes: Vec<Class>,
    pub rows: Vec<Row>,
    pub claims: Vec<claims::Claim>,
}

/// One row: a broker in a named configuration, swept under each fault class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub broker: String,
    pub configuration: String,
    pub settings: Vec<String>,
    /// What the row tests, in the article's terms.
    pub claim: String,
    /// Guarantee → fault class → cell.
    pub cells: BTreeMap<String, BTreeMap<Class, Cell>>,
    /// The row's bounded model check beside the sweeps (absent with `--check-states 0`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub check: Option<evidence::RowCheck>,
}

struct MatrixJob<'a> {
    cmd: &'a MatrixCmd,
    bar: &'a ProgressBar,
}

impl MatrixCmd {
    /// The broker's selected rows with their setups and their checks' options, validated.
    fn select<S: System>(&self) -> Result<Vec<(Scenario, Spec, Option<ModelArgs>)>, ConfigError> {
        let mut rows = Vec::new();
        for scenario in S::scenarios() {
            if !self.rows.is_empty() && !self.rows.iter().any(|r| r == scenario.name) {
                continue;
            }
            // Consumers rewind in the replay column's own sweep only (`replay_spec`).
            let workload = WorkloadArgs {
                rewind: None,
                ..self.workload.clone()
            };
            let mut setup = BrokerArgs::<Simulated>::new(
                S::NAME,
                scenario.sets.iter().map(|s| s.to_string()).collect(),
                self.messages,
                workload.clone(),
            );
            let consumers = S::row_consumers(&scenario).unwrap_or(self.consumers);
            setup.producers = self.producers;
            setup.consumers = consumers;
            let others = self.checks_but_replay();
            let args = SimArgs {
                setup,
                check: if others.is_empty() {
                    Invariant::DEFAULT_CHECKS.into()
                } else {
                    others.clone()
                },
            };
            let mut spec = args.validate::<S>()?;
            if others.is_empty() {
                spec.checks.clear();
            }
            let model = (self.check_states > 0)
                .then(|| {
                    evidence::model_args::<S>(
                        &args.setup.sets,
                        &self.faults.0,
                        consumers,
                        &workload,
                    )
                })
                .transpose()?;
            rows.push((scenario, spec, model));
        }
        Ok(rows)
    }

    /// The brokers asked for, checked.
    fn brokers(&self) -> Result<Vec<&'static str>, ConfigError> {
        let Some(list) = &self.broker else {
            return Ok(BROKERS.to_vec());
        };
        let mut brokers = Vec::new();
        for word in list.split(',').map(str::trim) {
            let b = BROKERS.iter().find(|b| **b == word).ok_or_else(|| {
                bad(
                    "broker",
                    format!("unknown broker '{word}' (allowed: {})", BROKERS.join(", ")),
                )
            })?;
            if !brokers.contains(b) {
                brokers.push(*b);
            }
        }
        Ok(brokers)
    }
}

/// Counts the selected rows (and so validates them) before any work.
struct SelectJob<'a>(&'a MatrixCmd);

impl Job for SelectJob<'_> {
    type Output = Result<Vec<&'static str>, ConfigError>;
    fn run<S: System>(self) -> Self::Output {
        Ok(self
            .0
            .select::<S>()?
            .into_iter()
            .map(|(s, _, _)| s.name)
            .collect())
    }
}

impl Job for MatrixJob<'_> {
    type Output = Result<Vec<Row>, ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let mut rows = Vec::new();
        for (scenario, spec, model) in self.cmd.select::<S>()? {
            self.bar
                .set_message(format!("{} · {}", S::NAME, scenario.name));
            // The bounded check runs on one thread beside the sweeps, which keep the others busy.
            let (cells, settings, bounded) = std::thread::scope(|scope| {
                let bounded = model.as_ref().map(|args| {
                    scope.spawn(|| evidence::bounded_check::<S>(args, self.cmd.check_states))
                });
                let (cells, settings) = self.cells::<S>(&scenario, &spec);
                let bounded = bounded.map(|h| h.join().expect("the bounded check panicked"));
                (cells, settings, bounded)
            });
            let check = match (&model, bounded) {
                (Some(args), Some(bounded)) => Some(evidence::check_row::<S>(
                    args,
                    bounded?,
                    self.cmd.check_states,
                    self.cmd.seeds,
                    &cells,
                )?),
                _ => None,
            };
            rows.push(Row {
                broker: S::NAME.into(),
                configuration: scenario.name.into(),
                settings,
                claim: scenario.claim.into(),
                cells,
                check,
            });
        }
        Ok(rows)
    }
}

impl MatrixJob<'_> {
    /// One row's cells: a sweep per fault class and guarantee, the replay column's own sweep,
    /// and the repairs `--repair` asks for.
    fn cells<S: System>(
        &self,
        scenario: &Scenario,
        spec: &Spec,
    ) -> (BTreeMap<String, BTreeMap<Class, Cell>>, Vec<String>) {
        let settings: Vec<String> = scenario.sets.iter().map(|s| s.to_string()).collect();
        let mut cells = if spec.checks.is_empty() {
            BTreeMap::new()
        } else {
            cells::sweep_row::<S>(
                spec,
                &self.cmd.faults.0,
                self.cmd.seeds,
                self.cmd.shrink_budget,
                self.bar,
            )
        };
        if self.cmd.asks_replay() {
            let replay = match self.cmd.replay_spec::<S>(spec) {
                Ok(replay) => {
                    self.bar
                        .inc_length(self.cmd.faults.0.len() as u64 * self.cmd.seeds);
                    cells::sweep_row::<S>(
                        &replay,
                        &self.cmd.faults.0,
                        self.cmd.seeds,
                        self.cmd.shrink_budget,
                        self.bar,
                    )
                }
                Err(why) => BTreeMap::from([(
                    Invariant::Replay.name().to_string(),
                    cells::not_supported(&self.cmd.faults.0, &why),
                )]),
            };
            cells.extend(replay);
        }
        if self.cmd.repair {
            for &inv in &spec.checks {
                let Some(by_class) = cells.get_mut(inv.name()) else {
                    continue;
                };
                for (class, cell) in by_class.iter_mut() {
                    if cell.verdict == cells::CellVerdict::Broken && *class != Class::BeyondTcp {
                        self.bar.set_message(format!(
                            "{} · {} · repairing {inv} under {}",
                            S::NAME,
                            scenario.name,
                            class.name()
                        ));
                        cell.repairs = Some(repair::repairs::<S>(
                            spec,
                            &settings,
                            *class,
                            inv,
                            self.cmd.seeds,
                        ));
                    }
                }
            }
        }
        (cells, settings)
    }
}

/// By default every row is asked every property; atomicity only means something in a row whose
/// workload has transactions or multipart messages (elsewhere its cells read "—"), replay only
/// for a broker whose consumers rewind (elsewhere "not supported").
const CHECKS: &str = "at-least-once,at-most-once,ordering,atomicity,replay";

/// How many records the replay column's consumers rewind when `--rewind` does not say.
const REWIND: u32 = 10;

impl MatrixCmd {
    /// Is replay among the guarantees asked?
    fn asks_replay(&self) -> bool {
        self.check
            .split(',')
            .any(|w| w.trim() == Invariant::Replay.name())
    }

    /// `--check` without replay, which runs its own sweep.
    fn checks_but_replay(&self) -> String {
        self.check
            .split(',')
            .map(str::trim)
            .filter(|w| *w != Invariant::Replay.name())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The replay column's sweep: the row's configuration with consumers that rewind `--rewind`
    /// records (default [`REWIND`]), judged for replay alone, so the other columns keep the
    /// row's own consumers. `Err` says why not when the broker's consumers cannot rewind, or
    /// cannot in this row's configuration ([`System::replay_row`]).
    fn replay_spec<S: System>(&self, spec: &Spec) -> Result<Spec, String> {
        S::rewind().ok_or_else(|| format!("{} consumers cannot rewind", S::NAME))?;
        S::replay_row(&spec.setup.config)?;
        let mut replay = spec.clone();
        replay.setup.workload.rewind = Some(self.workload.rewind.unwrap_or(REWIND));
        replay.checks = vec![Invariant::Replay];
        Ok(replay)
    }
}

impl MatrixCmd {
    /// The command line that reproduces this matrix.
    fn command(&self) -> String {
        let mut words = vec!["mqcheck".to_string(), "matrix".into()];
        if let Some(b) = &self.broker {
            words.extend(["--broker".into(), b.clone()]);
        }
        for r in &self.rows {
            words.extend(["--row".into(), format!("'{r}'")]);
        }
        let faults: Vec<&str> = self.faults.0.iter().map(|c| c.name()).collect();
        words.extend([
            "--faults".into(),
            faults.join(","),
            "--seeds".into(),
            self.seeds.to_string(),
            "--messages".into(),
            self.messages.to_string(),
            "--producers".into(),
            self.producers.to_string(),
            "--consumers".into(),
            self.consumers.to_string(),
        ]);
        let w = self
            .workload
            .workload(self.messages, self.producers, self.consumers);
        words.extend(WorkloadArgs::words(&w));
        if self.check != CHECKS {
            words.extend(["--check".into(), self.check.clone()]);
        }
        if self.repair {
            words.push("--repair".into());
        }
        words.extend(["--check-states".into(), self.check_states.to_string()]);
        words.join(" ")
    }

    /// Everything checked before the first sweep: brokers, rows, output files, the old matrix.
    fn prepare(&self) -> Result<Prepared, ConfigError> {
        let brokers = self.brokers()?;
        let mut rows = 0;
        let mut names = Vec::new();
        for broker in &brokers {
            let selected = dispatch(broker, SelectJob(self))??;
            rows += selected.len();
            names.extend(selected);
        }
        for r in &self.rows {
            if !names.contains(&r.as_str()) {
                let mut allowed = Vec::new();
                for broker in &brokers {
                    allowed.extend(dispatch(broker, RowNames)?.iter().map(|n| format!("'{n}'")));
                }
                return Err(bad(
                    "row",
                    format!(
                        "no row '{r}' in {} (allowed: {})",
                        brokers.join(", "),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        if self.faults.0.is_empty() {
            return Err(bad("faults", "no fault class given".into()));
        }
        let old = self
            .compare
            .as_ref()
            .map(|p| render::read_old(p))
            .transpose()?;
        Ok(Prepared {
            brokers,
            rows,
            markdown: OutputFile::maybe("markdown", self.markdown.as_ref())?,
            json: OutputFile::maybe("json", self.json.as_ref())?,
            html: OutputFile::maybe("html", self.html.as_ref())?,
            old,
        })
    }

    pub fn run(&self) -> u8 {
        let p = match self.prepare() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return BAD_INPUT;
            }
        };
        let bar = progress((p.rows * self.faults.0.len()) as u64 * self.seeds, "matrix");
        crate::output::sweeping(true);
        let mut rows = Vec::new();
        for broker in &p.brokers {
            match dispatch(
                broker,
                MatrixJob {
                    cmd: self,
                    bar: &bar,
                },
            ) {
                Ok(Ok(r)) => rows.extend(r),
                Ok(Err(e)) | Err(e) => {
                    eprintln!("error: {e}");
                    return BAD_INPUT;
                }
            }
        }
        crate::output::sweeping(false);
        bar.finish_and_clear();
        let claims = claims::claims(&rows, &self.faults.0);
        let matrix = Matrix {
            schema: SCHEMA.into(),
            command: self.command(),
            seeds: self.seeds,
            classes: self.faults.0.clone(),
            rows,
            claims,
        };
        let mut out = render::terminal(&matrix);
        if let Some(old) = &p.old {
            out.push_str(&render::compare(old, &matrix));
        }
        crate::output::emit(&out);
        let written = p
            .markdown
            .map_or(Ok(()), |mut f| f.write(&render::markdown(&matrix)))
            .and_then(|()| {
                p.json.map_or(Ok(()), |mut f| {
                    f.write(&format!(
                        "{}\n",
                        serde_json::to_string_pretty(&matrix).expect("matrix serializes")
                    ))
                })
            })
            .and_then(|()| {
                p.html
                    .map_or(Ok(()), |mut f| f.write(&html::page(self, &matrix)?))
            });
        if let Err(e) = written {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
        if crate::output::interrupted() {
            eprintln!("inconclusive: interrupted; the rows not swept were not tested");
            return crate::INCONCLUSIVE;
        }
        // A row's bounded check adds evidence: its violation is one, but a check its budget
        // stopped leaves the sweeps' verdict as it is (its cells say how far it went).
        let checked = matrix
            .rows
            .iter()
            .filter_map(|r| r.check.as_ref())
            .map(evidence::RowCheck::verdict)
            .filter(|v| *v == Verdict::Violated);
        Verdict::combine(
            matrix
                .rows
                .iter()
                .flat_map(|r| r.cells.values())
                .map(cells::combined)
                .chain(checked),
        )
        .code()
    }
}

struct Prepared {
    brokers: Vec<&'static str>,
    rows: usize,
    markdown: Option<OutputFile>,
    json: Option<OutputFile>,
    html: Option<OutputFile>,
    old: Option<Matrix>,
}

struct RowNames;

impl Job for RowNames {
    type Output = Vec<&'static str>;
    fn run<S: System>(self) -> Self::Output {
        S::scenarios().into_iter().map(|s| s.name).collect()
    }
}
