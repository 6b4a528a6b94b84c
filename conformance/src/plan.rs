//! A model fault schedule turned into actions on real processes; the schedule file that carries
//! a model counterexample to the real broker is `mqcheck_sim::ScheduleFile`
//! (`mqcheck replay --schedule-out FILE`).
//!
//! The model's vocabulary maps onto a real single machine like this:
//!
//! | model fault | on the real broker |
//! |---|---|
//! | `crash` of a server | `SIGKILL` of its process group, restart on the same data when the fault ends |
//! | `crash` of a consumer | the client drops its connection (the kernel's close) and its unhandled deliveries, and reconnects when the fault ends |
//! | `pause` of a server | `SIGSTOP`, `SIGCONT` when the fault ends |
//! | `pause` of a consumer | the application stops reading until the fault ends |
//! | `power` | not done: a live kernel keeps the page cache, so a killed process cannot lose unsynced writes |
//! | `partition`, `loss`, `clock`, `duplicate`, `reorder` | not done here: they need network namespaces and `tc netem` |
//!
//! What is not done is said in the run's notes, never silently dropped.

use crate::model::CastNode;
use mqcheck_brokers::Role;
use mqcheck_sim::{FaultOp, Schedule, Target};

/// Who an action hits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// The broker server process.
    Server,
    /// A client (or, for ZeroMQ, a peer) by its model name: `c0`, `pull0`, `rep0`.
    Client(String),
}

/// What happens to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Act {
    Crash,
    Restart,
    Pause,
    Resume,
}

/// One action at a time after the run's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub at_ms: u64,
    pub who: Who,
    pub act: Act,
}

/// The actions for a schedule, in time order, and what could not be done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub skipped: Vec<String>,
    pub window_ms: u64,
}

impl Plan {
    /// Maps `schedule` onto the real processes of a system whose model cast is `cast`: with
    /// `brokered`, the one server is the broker process; without (ZeroMQ), servers are peers the
    /// harness runs, as consumers are. A fault on a producer is skipped: the real publisher has
    /// no outbox to resend from.
    pub fn new(schedule: &Schedule, cast: &[CastNode], brokered: bool) -> Plan {
        let mut plan = Plan {
            window_ms: schedule.window_ms,
            ..Plan::default()
        };
        let servers: Vec<&CastNode> = cast.iter().filter(|n| n.role == Role::Server).collect();
        // The timeline as the simulator plays it: a fault ends at the window's end at the
        // latest, and ends sort before starts at the same instant.
        let mut timeline: Vec<(u64, bool, Action)> = Vec::new();
        for f in &schedule.faults {
            let end = (f.at_ms + f.for_ms).min(schedule.window_ms);
            if f.at_ms >= end {
                continue;
            }
            let (target, acts) = match &f.op {
                FaultOp::Crash { target } => (target, (Act::Crash, Act::Restart)),
                FaultOp::Pause { target } => (target, (Act::Pause, Act::Resume)),
                FaultOp::Power { .. } => {
                    plan.skipped.push(format!(
                        "power at {} ms: a killed process on a live kernel keeps its page cache, so a power loss cannot be done honestly here",
                        f.at_ms
                    ));
                    continue;
                }
                other => {
                    plan.skipped.push(format!(
                        "{} at {} ms: network faults need network namespaces, not built here",
                        other.fault().name(),
                        f.at_ms
                    ));
                    continue;
                }
            };
            let whom: Vec<&CastNode> = match target {
                Target::Leader | Target::Majority => servers.clone(),
                Target::Node(i) => cast.get(*i).into_iter().collect(),
            };
            let mut hit = false;
            for node in whom {
                let who = match node.role {
                    Role::Server if brokered => Who::Server,
                    Role::Server | Role::Consumer => Who::Client(node.name.clone()),
                    Role::Producer | Role::Infrastructure => {
                        plan.skipped.push(format!(
                            "{} of {} at {} ms: the real producer has no outbox to resend from",
                            f.op.fault().name(),
                            node.name,
                            f.at_ms
                        ));
                        continue;
                    }
                };
                hit = true;
                timeline.push((
                    f.at_ms,
                    true,
                    Action {
                        at_ms: f.at_ms,
                        who: who.clone(),
                        act: acts.0,
                    },
                ));
                timeline.push((
                    end,
                    false,
                    Action {
                        at_ms: end,
                        who,
                        act: acts.1,
                    },
                ));
            }
            if !hit && servers.is_empty() && !matches!(target, Target::Node(_)) {
                plan.skipped.push(format!(
                    "{} of the leader at {} ms: no server in this system",
                    f.op.fault().name(),
                    f.at_ms
                ));
            }
        }
        timeline.sort_by_key(|a| (a.0, a.1));
        // One fault at a time per process: a start on a process already down or paused waits
        // for nothing and is dropped with its end, as the simulator's nemesis finds no live target.
        let mut busy: Vec<Who> = Vec::new();
        let mut dropped: Vec<(Who, Act)> = Vec::new();
        for (_, _, a) in timeline {
            match a.act {
                Act::Crash | Act::Pause => {
                    if busy.contains(&a.who) {
                        let end = if a.act == Act::Crash {
                            Act::Restart
                        } else {
                            Act::Resume
                        };
                        dropped.push((a.who.clone(), end));
                        continue;
                    }
                    busy.push(a.who.clone());
                    plan.actions.push(a);
                }
                Act::Restart | Act::Resume => {
                    if let Some(i) = dropped.iter().position(|d| d.0 == a.who && d.1 == a.act) {
                        dropped.remove(i);
                        continue;
                    }
                    busy.retain(|w| *w != a.who);
                    plan.actions.push(a);
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqcheck_sim::{ScheduledFault, Split};

    fn cast() -> Vec<CastNode> {
        [
            ("n1", Role::Server),
            ("p0", Role::Producer),
            ("c0", Role::Consumer),
        ]
        .into_iter()
        .map(|(name, role)| CastNode {
            name: name.into(),
            role,
        })
        .collect()
    }

    fn fault(at_ms: u64, for_ms: u64, op: FaultOp) -> ScheduledFault {
        ScheduledFault { at_ms, for_ms, op }
    }

    #[test]
    fn crashes_and_pauses_become_signals_and_the_rest_is_said_to_be_skipped() {
        let schedule = Schedule {
            window_ms: 10_000,
            faults: vec![
                fault(
                    1_000,
                    2_000,
                    FaultOp::Crash {
                        target: Target::Leader,
                    },
                ),
                fault(
                    4_000,
                    1_000,
                    FaultOp::Pause {
                        target: Target::Node(2),
                    },
                ),
                fault(
                    5_000,
                    1_000,
                    FaultOp::Power {
                        target: Target::Node(0),
                    },
                ),
                fault(
                    6_000,
                    1_000,
                    FaultOp::Partition {
                        split: Split::IsolateLeader,
                    },
                ),
                fault(
                    7_000,
                    9_000,
                    FaultOp::Crash {
                        target: Target::Node(1),
                    },
                ),
            ],
        };
        let plan = Plan::new(&schedule, &cast(), true);
        let acts: Vec<(u64, Who, Act)> = plan
            .actions
            .iter()
            .map(|a| (a.at_ms, a.who.clone(), a.act))
            .collect();
        assert_eq!(
            acts,
            vec![
                (1_000, Who::Server, Act::Crash),
                (3_000, Who::Server, Act::Restart),
                (4_000, Who::Client("c0".into()), Act::Pause),
                (5_000, Who::Client("c0".into()), Act::Resume),
            ]
        );
        assert_eq!(plan.skipped.len(), 3, "{:?}", plan.skipped);
        assert!(plan.skipped[0].contains("power"));
        assert!(plan.skipped[1].contains("partition"));
        assert!(plan.skipped[2].contains("p0"));
    }

    #[test]
    fn a_fault_on_a_process_already_down_is_dropped_with_its_end() {
        let schedule = Schedule {
            window_ms: 10_000,
            faults: vec![
                fault(
                    1_000,
                    5_000,
                    FaultOp::Crash {
                        target: Target::Node(0),
                    },
                ),
                fault(
                    2_000,
                    1_000,
                    FaultOp::Crash {
                        target: Target::Node(0),
                    },
                ),
            ],
        };
        let plan = Plan::new(&schedule, &cast(), true);
        let acts: Vec<(u64, Act)> = plan.actions.iter().map(|a| (a.at_ms, a.act)).collect();
        assert_eq!(acts, vec![(1_000, Act::Crash), (6_000, Act::Restart)]);
    }
}
