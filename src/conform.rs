//! `mqcheck conform`: the real broker beside its model (the `mqcheck-conformance` crate).
//!
//! Runs the broker's conformance scenarios, or one, or replays a model counterexample's fault
//! schedule (`replay --schedule-out FILE`) on the real broker, and prints the real history's
//! verdicts beside the model's. Needs a build with `--features real-brokers` and the broker's
//! Debian package.

use crate::output::emit;
use crate::spec::int;
use crate::{BAD_INPUT, HELD, INCONCLUSIVE, VIOLATED};
use clap::Args;
use mqcheck_conformance::scenario::{
    check_real_clients, check_supported_broker, compare, scenarios, Case, ConformError, SEEDS,
};
use mqcheck_sim::ScheduleFile;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct ConformCmd {
    /// The broker to run for real: rabbitmq, activemq or zeromq.
    #[arg(long)]
    pub broker: String,
    /// One scenario by name (default: every scenario of the broker).
    #[arg(long, conflicts_with = "schedule")]
    pub scenario: Option<String>,
    /// Replay this model fault schedule (`mqcheck replay --schedule-out FILE`) on the real
    /// broker.
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,
    /// Seeds of the model's sweep each comparison runs.
    #[arg(long, default_value_t = SEEDS, value_parser = int(1u64, 100_000))]
    pub seeds: u64,
}

impl ConformCmd {
    pub fn run(self) -> u8 {
        match self.cases() {
            Ok(cases) => self.compare(&cases),
            Err(e) => {
                eprintln!("error: {e}");
                BAD_INPUT
            }
        }
    }

    /// What to run, checked before anything starts.
    fn cases(&self) -> Result<Vec<Case>, String> {
        check_supported_broker(&self.broker)?;
        check_real_clients()?;
        if let Some(path) = &self.schedule {
            let file = ScheduleFile::read(path).map_err(|e| format!("--schedule {e}"))?;
            if file.broker != self.broker {
                return Err(format!(
                    "--schedule {}: the schedule is for {}, not --broker {}",
                    path.display(),
                    file.broker,
                    self.broker
                ));
            }
            return Ok(vec![Case::from_file(&file)?]);
        }
        let all = scenarios(&self.broker);
        match &self.scenario {
            None => Ok(all.into_iter().map(|s| s.case()).collect()),
            Some(name) => all
                .iter()
                .find(|s| s.name == name)
                .map(|s| vec![s.case()])
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|s| s.name).collect();
                    format!(
                        "--scenario {name}: no such {} scenario (allowed: {})",
                        self.broker,
                        names.join("; ")
                    )
                }),
        }
    }

    /// Runs each case; the exit status is the worst: a violation, else an inconclusive run.
    fn compare(&self, cases: &[Case]) -> u8 {
        let mut code = HELD;
        for case in cases {
            match compare(case, self.seeds) {
                Ok(c) => {
                    emit(&format!("{}\n", c.render()));
                    code = match (code, c.code()) {
                        (VIOLATED, _) | (_, VIOLATED) => VIOLATED,
                        (INCONCLUSIVE, _) | (_, INCONCLUSIVE) => INCONCLUSIVE,
                        _ => HELD,
                    };
                }
                Err(ConformError::Input(e)) => {
                    eprintln!("error: {e}");
                    return BAD_INPUT;
                }
                Err(ConformError::Harness(e)) => {
                    eprintln!("error: {}: {e}", case.title);
                    if code == HELD {
                        code = INCONCLUSIVE;
                    }
                }
            }
        }
        code
    }
}
