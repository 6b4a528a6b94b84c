//! Faults, and the seeded nemesis that turns a seed into a fault schedule (swarm testing).

pub use mqcheck_faults::{Fault, FaultSet};
use mqcheck_invariants::secs_unspaced;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which node a crash, power loss or pause hits: resolved when the fault starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Whichever live server leads something at that moment (a random live server if none).
    Leader,
    /// A fixed node, by index.
    Node(usize),
    /// A random majority of the live servers at once (Jepsen's `:majority`).
    Majority,
}

/// How a partition splits the nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// The current leader alone on one side.
    IsolateLeader,
    /// These nodes on one side, the rest on the other.
    Halves(Vec<usize>),
    /// These nodes cannot send to the rest, but hear them.
    OneWay(Vec<usize>),
}

/// One fault with its extent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum FaultOp {
    Crash {
        target: Target,
    },
    Power {
        target: Target,
    },
    Pause {
        target: Target,
    },
    Partition {
        split: Split,
    },
    /// Each packet is dropped with probability `per_mille / 1000`.
    Loss {
        per_mille: u32,
    },
    Duplicate {
        per_mille: u32,
    },
    Reorder,
    /// The target's clock runs at `rate` per mille of real time ([`mqcheck_faults::clock`]).
    Clock {
        target: Target,
        rate: u32,
    },
}

/// A fault from `at_ms` for `for_ms` of simulated time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScheduledFault {
    pub at_ms: u64,
    pub for_ms: u64,
    #[serde(flatten)]
    pub op: FaultOp,
}

/// The nemesis's plan for one run: faults within a window, after which everything heals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schedule {
    pub window_ms: u64,
    pub faults: Vec<ScheduledFault>,
}

/// What the nemesis needs to know about the nodes: their names and which may crash or pause.
#[derive(Clone, Debug)]
pub struct Cast {
    pub names: Vec<String>,
    pub faulty: Vec<usize>,
    /// Faulty nodes that are clients (consumers, and producers under `--producer-crashes`): the
    /// nemesis aims some crashes at them.
    pub clients: Vec<usize>,
}

impl FaultOp {
    /// The kind of fault this is, in the shared vocabulary.
    pub fn fault(&self) -> Fault {
        match self {
            FaultOp::Crash { .. } => Fault::Crash,
            FaultOp::Power { .. } => Fault::Power,
            FaultOp::Pause { .. } => Fault::Pause,
            FaultOp::Partition { .. } => Fault::Partition,
            FaultOp::Loss { .. } => Fault::Loss,
            FaultOp::Duplicate { .. } => Fault::Duplicate,
            FaultOp::Reorder => Fault::Reorder,
            FaultOp::Clock { .. } => Fault::Clock,
        }
    }
}

/// A fraction given per mille, as a percentage: `11.9%`.
pub fn percent(per_mille: u32) -> String {
    format!("{}.{}%", per_mille / 10, per_mille % 10)
}

/// A clock rate given per mille of real time, as a factor: `1.250×`.
pub fn rate(per_mille: u32) -> String {
    format!("{}.{:03}×", per_mille / 1000, per_mille % 1000)
}

impl FaultOp {
    /// What the fault does, with node names: `crash n1`, `packet loss 11.9%`.
    pub fn what(&self, names: &[String]) -> String {
        let name = |i: usize| names.get(i).map_or("?", String::as_str).to_string();
        let list = |ids: &[usize]| {
            let ids: Vec<String> = ids.iter().map(|i| name(*i)).collect();
            format!("{{{}}}", ids.join(","))
        };
        let target = |t: &Target| match t {
            Target::Leader => "the leader".to_string(),
            Target::Node(i) => name(*i),
            Target::Majority => "a majority of the servers".to_string(),
        };
        match self {
            FaultOp::Crash { target: t } => format!("crash {}", target(t)),
            FaultOp::Power { target: t } => format!("power loss on {}", target(t)),
            FaultOp::Pause { target: t } => format!("pause {}", target(t)),
            FaultOp::Partition { split } => match split {
                Split::IsolateLeader => "partition isolating the leader".to_string(),
                Split::Halves(side) => format!("partition {} from the rest", list(side)),
                Split::OneWay(side) => {
                    format!("one-way partition: {} cannot send to the rest", list(side))
                }
            },
            FaultOp::Loss { per_mille } => format!("packet loss {}", percent(*per_mille)),
            FaultOp::Duplicate { per_mille } => {
                format!("packet duplication {}", percent(*per_mille))
            }
            FaultOp::Reorder => "reordering".to_string(),
            FaultOp::Clock { target: t, rate: r } => {
                format!("clock of {} runs at {}", target(t), rate(*r))
            }
        }
    }
}

/// What a scheduled fault did in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect: what it did (`n1, n2 down`), until when.
    Took { what: String, until_ms: u64 },
    /// It found nothing to act on, for this reason (`every server already down`).
    NoEffect(String),
    /// It starts at or after the end of the fault window, so it never began.
    NotStarted,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Took { what, until_ms } => {
                write!(f, "{what} until {}", secs_unspaced(*until_ms))
            }
            Outcome::NoEffect(why) => write!(f, "no effect: {why}"),
            Outcome::NotStarted => write!(f, "never started: after the fault window"),
        }
    }
}

impl ScheduledFault {
    /// One line, with node names: `at 1.200s for 5.000s: crash n1`.
    pub fn describe(&self, cast: &Cast) -> String {
        format!(
            "at {} for {}: {}",
            secs_unspaced(self.at_ms),
            secs_unspaced(self.for_ms),
            self.op.what(&cast.names)
        )
    }
}

impl Schedule {
    /// Draws the faults for one seed: each seed enables its own subset of the allowed faults
    /// and its own intensity (swarm testing): a fault window between a sixth of `max_window_ms`
    /// and all of it, with a few faults placed at random times inside.
    pub fn generate(seed: u64, allowed: &FaultSet, cast: &Cast, max_window_ms: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6e65_6d65_7369_7321);
        let allowed: Vec<Fault> = allowed
            .0
            .iter()
            .copied()
            .filter(|f| !cast.faulty.is_empty() || !f.hits_process())
            .collect();
        let window_ms = rng.gen_range(max_window_ms / 6..=max_window_ms);
        if allowed.is_empty() {
            return Schedule {
                window_ms,
                faults: Vec::new(),
            };
        }
        let mut enabled: Vec<Fault> = allowed
            .iter()
            .copied()
            .filter(|_| rng.gen_bool(0.6))
            .collect();
        if enabled.is_empty() {
            enabled.push(*allowed.choose(&mut rng).expect("not empty"));
        }
        let count = rng.gen_range(3..=15);
        let mut faults: Vec<ScheduledFault> = (0..count)
            .map(|_| {
                let fault = *enabled.choose(&mut rng).expect("not empty");
                let at_ms = rng.gen_range(0..window_ms);
                let for_ms = rng.gen_range(500..=45_000);
                let op = match fault {
                    Fault::Crash => FaultOp::Crash {
                        target: pick_target(&mut rng, cast),
                    },
                    Fault::Power => FaultOp::Power {
                        target: pick_target(&mut rng, cast),
                    },
                    Fault::Pause => FaultOp::Pause {
                        target: pick_target(&mut rng, cast),
                    },
                    Fault::Partition => FaultOp::Partition {
                        split: pick_split(&mut rng, cast),
                    },
                    Fault::Loss => FaultOp::Loss {
                        per_mille: rng.gen_range(10..=300),
                    },
                    Fault::Duplicate => FaultOp::Duplicate {
                        per_mille: rng.gen_range(10..=300),
                    },
                    Fault::Reorder => FaultOp::Reorder,
                    // From a quarter of real time to four times it: slow and fast clocks.
                    Fault::Clock => FaultOp::Clock {
                        target: pick_target(&mut rng, cast),
                        rate: if rng.gen_bool(0.5) {
                            rng.gen_range(250..1000)
                        } else {
                            rng.gen_range(1001..=4000)
                        },
                    },
                };
                ScheduledFault { at_ms, for_ms, op }
            })
            .collect();
        faults.sort_by_key(|f| f.at_ms);
        Schedule { window_ms, faults }
    }
}

/// Most crashes aim at the leader; the rest at a majority of the servers, a client, or any
/// faulty node.
fn pick_target(rng: &mut StdRng, cast: &Cast) -> Target {
    match rng.gen_range(0..5) {
        0 | 1 => Target::Leader,
        2 => Target::Majority,
        3 if !cast.clients.is_empty() => {
            Target::Node(*cast.clients.choose(rng).expect("not empty"))
        }
        _ => Target::Node(*cast.faulty.choose(rng).expect("not empty")),
    }
}

fn pick_split(rng: &mut StdRng, cast: &Cast) -> Split {
    let n = cast.names.len();
    let mut side: Vec<usize> = (0..n).filter(|_| rng.gen_bool(0.5)).collect();
    if side.is_empty() || side.len() == n {
        side = vec![rng.gen_range(0..n)];
    }
    match rng.gen_range(0..3) {
        0 => Split::IsolateLeader,
        1 => Split::Halves(side),
        _ => Split::OneWay(side),
    }
}
