//! `mqcheck matrix`: the comparison article's claims, broker by broker, configuration by
//! configuration, each verdict with its evidence.

use crate::output::OutputFile;
use crate::report::{SimReport, Verdict};
use crate::simulate::{progress, simulate};
use crate::spec::{int, BrokerArgs, SimArgs, Simulated, Sizes, WorkloadArgs, DEFAULT_FAULTS};
use crate::BAD_INPUT;
use clap::Args;
use indicatif::ProgressBar;
use mqcheck_brokers::{dispatch, Job, System, BROKERS};
use mqcheck_invariants::Invariant;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct MatrixCmd {
    /// Seeds per configuration.
    #[arg(long, default_value_t = 100, value_parser = int(1u64, u64::MAX))]
    pub seeds: u64,
    /// Messages each producer sends in every run.
    #[arg(long, default_value_t = 100, value_parser = int(1u32, Simulated::MAX.messages))]
    pub messages: u32,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Also write the matrix as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the matrix as a Markdown table to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

/// One row: a broker in a named configuration, all faults, every invariant.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub broker: &'static str,
    pub configuration: &'static str,
    pub settings: Vec<&'static str>,
    pub claim: &'static str,
    pub report: SimReport,
}

struct MatrixJob<'a> {
    cmd: &'a MatrixCmd,
    bar: &'a ProgressBar,
}

impl Job for MatrixJob<'_> {
    type Output = Result<Vec<Row>, mqcheck_brokers::ConfigError>;

    fn run<S: System>(self) -> Self::Output {
        let mut rows = Vec::new();
        for scenario in S::scenarios() {
            let args = SimArgs {
                setup: BrokerArgs::new(
                    S::NAME,
                    scenario.sets.iter().map(|s| s.to_string()).collect(),
                    self.cmd.messages,
                    self.cmd.workload.clone(),
                ),
                check: CHECKS.into(),
            };
            let spec = args.validate::<S>()?;
            self.bar
                .set_message(format!("{} · {}", S::NAME, scenario.name));
            rows.push(Row {
                broker: S::NAME,
                configuration: scenario.name,
                settings: scenario.sets.to_vec(),
                claim: scenario.claim,
                report: without_untested_atomicity(simulate::<S>(
                    &spec,
                    0,
                    self.cmd.seeds,
                    self.bar,
                    None,
                )),
            });
        }
        Ok(rows)
    }
}

/// Every row is asked every property; atomicity only means something in a row whose workload has
/// transactions or multipart messages.
const CHECKS: &str = "at-least-once,at-most-once,ordering,atomicity";

/// A row with no transaction or multipart message has no atomicity to judge: it is left out of
/// the row's verdict (the cell reads "—") rather than making the row inconclusive.
fn without_untested_atomicity(mut report: SimReport) -> SimReport {
    let atomicity = report
        .invariants
        .get_mut(Invariant::Atomicity.name())
        .expect("every selectable invariant is reported");
    if atomicity.checked && !atomicity.tested {
        atomicity.checked = false;
        atomicity.held = None;
        (report.verdict, report.reason) =
            SimReport::conclude(&report.invariants, &report.coverage, report.interrupted);
    }
    report
}

fn cell(report: &SimReport, inv: Invariant) -> String {
    let i = &report.invariants[inv.name()];
    match i.held {
        Some(true) => format!("held ({} seeds)", report.stats.runs),
        Some(false) => format!(
            "**violated** ({}/{}, seed {})",
            i.violations,
            report.stats.runs,
            i.first_violation.as_ref().map_or(0, |f| f.seed)
        ),
        None if i.checked => "inconclusive".into(),
        None => "—".into(),
    }
}

pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| broker | configuration | claim tested | at-least-once | at-most-once | ordering | atomicity |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|");
    for r in rows {
        let settings = if r.settings.is_empty() {
            "defaults".to_string()
        } else {
            format!("`{}`", r.settings.join("` `"))
        };
        let _ = writeln!(
            s,
            "| {} | {}: {} | {} | {} | {} | {} | {} |",
            r.broker,
            r.configuration,
            settings,
            r.claim,
            cell(&r.report, Invariant::AtLeastOnce),
            cell(&r.report, Invariant::AtMostOnce),
            cell(&r.report, Invariant::Ordering),
            cell(&r.report, Invariant::Atomicity),
        );
    }
    let faults: mqcheck_sim::FaultSet = DEFAULT_FAULTS.parse().expect("a preset");
    let _ = writeln!(
        s,
        "\nAll rows run with every fault TCP allows (`--faults {DEFAULT_FAULTS}`: {}); duplication and reordering, which TCP never delivers to an application, are left out.\nCounterexamples (each replays from its seed):\n",
        faults.list().replace(',', ", ")
    );
    for r in rows {
        for inv in Invariant::SELECTABLE
            .into_iter()
            .chain([Invariant::NoUnexpected])
        {
            if let Some(f) = &r.report.invariants[inv.name()].first_violation {
                let _ = writeln!(
                    s,
                    "- {} {} — {inv} ({}): {}\n  `{}`",
                    r.broker, r.configuration, f.kind, f.explanation, f.replay
                );
            }
        }
    }
    s
}

impl MatrixCmd {
    pub fn run(&self) -> u8 {
        let files = OutputFile::maybe("markdown", self.markdown.as_ref())
            .and_then(|md| Ok((md, OutputFile::maybe("json", self.json.as_ref())?)));
        let (markdown_file, json_file) = match files {
            Ok(files) => files,
            Err(e) => {
                eprintln!("error: {e}");
                return BAD_INPUT;
            }
        };
        let mut jobs = 0;
        for broker in BROKERS {
            jobs += dispatch(broker, CountJob).expect("listed brokers dispatch");
        }
        let bar = progress(jobs as u64 * self.seeds, "matrix");
        let mut rows = Vec::new();
        for broker in BROKERS {
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
        bar.finish_and_clear();
        let table = markdown(&rows);
        crate::output::emit(&table);
        let written = markdown_file
            .map_or(Ok(()), |mut f| f.write(&table))
            .and_then(|()| {
                json_file.map_or(Ok(()), |mut f| {
                    f.write(&serde_json::to_string_pretty(&rows).expect("matrix serializes"))
                })
            });
        if let Err(e) = written {
            eprintln!("error: {e}");
            return BAD_INPUT;
        }
        let verdict = Verdict::combine(rows.iter().map(|r| r.report.verdict));
        if verdict == Verdict::Inconclusive {
            let reasons: Vec<String> = rows
                .iter()
                .filter_map(|r| {
                    let reason = r.report.reason.as_ref()?;
                    Some(format!("{} {}: {reason}", r.broker, r.configuration))
                })
                .collect();
            eprintln!("inconclusive: {}", reasons.join("; "));
        }
        verdict.code()
    }
}

struct CountJob;

impl Job for CountJob {
    type Output = usize;
    fn run<S: System>(self) -> usize {
        S::scenarios().len()
    }
}
