//! The schedule file: one fault schedule with everything needed to run it again — the broker,
//! its settings, the workload, the seed, the checks — and the violation it showed
//! (`mqcheck replay --schedule-out FILE`; `mqcheck sim --schedule FILE` and `mqcheck replay
//! --schedule FILE` run it, `mqcheck conform --schedule FILE` plays it on the real broker).
//!
//! Settings the file leaves out are the commands' defaults; fields a reader does not know are
//! ignored.

use crate::fault::{Cast, FaultOp, Schedule, Split, Target};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The violation a saved schedule showed when it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileViolation {
    pub invariant: String,
    pub kind: String,
    pub explanation: String,
}

/// A schedule file, as `replay --schedule-out` writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFile {
    /// `--broker`.
    pub broker: String,
    /// `--set KEY=VALUE`, each.
    #[serde(default)]
    pub sets: Vec<String>,
    /// `--faults`: the faults the schedule was drawn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// The workload: `--messages`, `--producers`, `--consumers`, `--rate`, `--handler-ms`,
    /// `--consumer-delay-ms`, `--keys`, `--producer-crashes`, `--rewind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_delay_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u32>,
    #[serde(default)]
    pub producer_crashes: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind: Option<u32>,
    /// `--check`: a comma list of invariants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The seed the run uses (madsim's scheduling, latencies and random choices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Whether `schedule` is the shrunk one rather than the one the seed drew.
    #[serde(default)]
    pub shrunk: bool,
    /// What running it showed when it was saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violation: Option<FileViolation>,
    /// The command that runs it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    pub schedule: Schedule,
}

impl ScheduleFile {
    /// Reads and parses a schedule file; the error is one line naming the file.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}: not a schedule file ({e}; expected a JSON object with \"broker\" and \"schedule\", see docs/replay.md)",
                path.display()
            )
        })
    }
}

impl Schedule {
    /// Checks a schedule read from a file against the nodes it will run on: every node it names
    /// exists and may be hit by the fault, every rate is one the nemesis can apply.
    pub fn validate(&self, cast: &Cast) -> Result<(), String> {
        let n = cast.names.len();
        let faulty: Vec<&str> = cast
            .faulty
            .iter()
            .map(|i| cast.names[*i].as_str())
            .collect();
        for (k, f) in self.faults.iter().enumerate() {
            let at = format!("fault {} ({})", k + 1, f.op.fault().name());
            let target = |t: &Target| match t {
                Target::Node(i) if !cast.faulty.contains(i) => Err(format!(
                    "{at} targets node {i}, which this workload never hits (allowed: {})",
                    faulty.join(", ")
                )),
                _ => Ok(()),
            };
            match &f.op {
                FaultOp::Crash { target: t }
                | FaultOp::Power { target: t }
                | FaultOp::Pause { target: t } => target(t)?,
                FaultOp::Clock { target: t, rate } => {
                    target(t)?;
                    if !(1..=100_000).contains(rate) {
                        return Err(format!(
                            "{at}: rate {rate} (allowed: per mille of real time, 1 to 100000)"
                        ));
                    }
                }
                FaultOp::Partition {
                    split: Split::Halves(side) | Split::OneWay(side),
                } => {
                    if let Some(i) = side.iter().find(|i| **i >= n) {
                        return Err(format!(
                            "{at} names node {i} (allowed: node indices 0 to {})",
                            n - 1
                        ));
                    }
                }
                FaultOp::Loss { per_mille } | FaultOp::Duplicate { per_mille } => {
                    if *per_mille > 1000 {
                        return Err(format!("{at}: per_mille {per_mille} (allowed: 0 to 1000)"));
                    }
                }
                FaultOp::Partition { .. } | FaultOp::Reorder => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::ScheduledFault;

    fn cast() -> Cast {
        Cast {
            names: vec!["n1".into(), "ctl".into(), "c0".into()],
            faulty: vec![0, 2],
            clients: vec![2],
        }
    }

    #[test]
    fn a_schedule_file_round_trips_and_reads_with_fields_it_does_not_know() {
        let file = ScheduleFile {
            broker: "kafka".into(),
            sets: vec!["acks=1".into()],
            seed: Some(7),
            schedule: Schedule {
                window_ms: 5_000,
                faults: vec![ScheduledFault {
                    at_ms: 100,
                    for_ms: 200,
                    op: FaultOp::Crash {
                        target: Target::Node(0),
                    },
                }],
            },
            ..ScheduleFile::default()
        };
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(serde_json::from_str::<ScheduleFile>(&text).unwrap(), file);
        let extra = text.replacen('{', "{\"extra\":true,", 1);
        assert_eq!(serde_json::from_str::<ScheduleFile>(&extra).unwrap(), file);
        let missing = ScheduleFile::read(Path::new("/nonexistent/schedule.json")).unwrap_err();
        assert!(missing.starts_with("/nonexistent/schedule.json: cannot read it"));
    }

    #[test]
    fn a_schedule_naming_a_node_the_workload_never_hits_is_refused() {
        let fault = |op| Schedule {
            window_ms: 5_000,
            faults: vec![ScheduledFault {
                at_ms: 0,
                for_ms: 100,
                op,
            }],
        };
        let crash = |i| FaultOp::Crash {
            target: Target::Node(i),
        };
        assert!(fault(crash(2)).validate(&cast()).is_ok());
        let e = fault(crash(1)).validate(&cast()).unwrap_err();
        assert!(e.contains("allowed: n1, c0"), "{e}");
        let e = fault(FaultOp::Loss { per_mille: 1001 })
            .validate(&cast())
            .unwrap_err();
        assert!(e.contains("per_mille 1001"), "{e}");
        let split = FaultOp::Partition {
            split: Split::Halves(vec![3]),
        };
        assert!(fault(split).validate(&cast()).is_err());
    }
}
