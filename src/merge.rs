//! `mqcheck merge`: the reports of a sweep's shards (`sim --shard I/N --json`) added up into the
//! report one sweep over the whole range gives, but for its wall time (the shards' sum).

use crate::output::emit;
use crate::report::{Coverage, InvariantReport, Seeds, SimReport, Stats};
use crate::BAD_INPUT;
use clap::Args;
use mqcheck_invariants::Invariant;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args, Clone, Debug)]
pub struct MergeCmd {
    /// The shards' reports, as `mqcheck sim --shard I/N --json` wrote them, in any order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

impl MergeCmd {
    pub fn run(&self) -> u8 {
        match self.merged() {
            Ok(report) => {
                if self.json {
                    emit(&format!(
                        "{}\n",
                        serde_json::to_string_pretty(&report).expect("report serializes")
                    ));
                } else {
                    emit(&report.human());
                }
                report.verdict.code()
            }
            Err(e) => {
                eprintln!("error: {e}");
                BAD_INPUT
            }
        }
    }

    fn merged(&self) -> Result<SimReport, String> {
        let mut shards = Vec::new();
        for file in &self.files {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let report: SimReport = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "{} is not a report of `mqcheck sim --json` ({e})",
                    file.display()
                )
            })?;
            shards.push((file, report));
        }
        shards.sort_by_key(|(_, r)| r.seeds.first);
        let (first_file, first) = &shards[0];
        let mut end = first.seeds.first;
        for (file, shard) in &shards {
            if shard.command != first.command {
                return Err(format!(
                    "{} is another sweep than {}: `{}` against `{}` (allowed: shards of one sweep)",
                    file.display(),
                    first_file.display(),
                    shard.command,
                    first.command
                ));
            }
            if shard.seeds.first != end {
                return Err(format!(
                    "{} starts at seed {}, where seed {end} was due (allowed: shards that cover one range, each seed once)",
                    file.display(),
                    shard.seeds.first
                ));
            }
            end += shard.seeds.count;
        }
        let sum = |f: fn(&SimReport) -> u64| shards.iter().map(|(_, r)| f(r)).sum::<u64>();
        let coverage = Coverage {
            runs: sum(|r| r.coverage.runs),
            incomplete_runs: sum(|r| r.coverage.incomplete_runs),
            sends: sum(|r| r.coverage.sends),
            acknowledged: sum(|r| r.coverage.acknowledged),
            delivered: sum(|r| r.coverage.delivered),
            atomic_units: sum(|r| r.coverage.atomic_units),
            faults_applied: sum(|r| r.coverage.faults_applied),
            faults_in_flight: sum(|r| r.coverage.faults_in_flight),
            leader_elections: sum(|r| r.coverage.leader_elections),
        };
        let interrupted = shards.iter().any(|(_, r)| r.interrupted);
        let mut invariants = BTreeMap::new();
        for (name, inv) in &first.invariants {
            let invariant: Invariant = name.parse()?;
            let each = || shards.iter().map(|(_, r)| &r.invariants[name]);
            let first_violation = each()
                .filter_map(|i| i.first_violation.clone())
                .min_by_key(|f| f.seed);
            let report = InvariantReport::new(
                invariant,
                inv.checked,
                &coverage,
                each().map(|i| i.violations).sum(),
                first_violation,
                interrupted,
            );
            invariants.insert(name.clone(), report);
        }
        let (verdict, reason) = SimReport::conclude(&invariants, &coverage, interrupted);
        Ok(SimReport {
            seeds: Seeds {
                first: first.seeds.first,
                count: end - first.seeds.first,
            },
            invariants,
            stats: Stats {
                runs: coverage.runs,
                wall_ms: sum(|r| r.stats.wall_ms),
                simulated_ms: sum(|r| r.stats.simulated_ms),
                messages_delivered: coverage.delivered,
            },
            coverage,
            verdict,
            reason,
            interrupted,
            ..first.clone()
        })
    }
}
