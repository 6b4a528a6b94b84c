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
//! | `partition` of a single broker from its clients | an `iptables` `DROP` on the broker's own link, in its network namespace ([`crate::network`]); a one-way split drops only what the muted side sends |
//! | `loss` | an `iptables` rule that drops each packet on the broker's link with the fault's probability |
//! | `partition` of one cluster node from the rest (the leader isolated, or a side with one node and no client) | the same `DROP` on that node's link: each node runs in a namespace of its own on a bridge |
//! | `partition` that keeps a client beside the broker, or cuts a group of nodes off, loss or a one-way split in a cluster | not done: the harness cuts one server's link, from everyone at once |
//! | `clock` | not done: the processes share the machine's clock |
//! | `duplicate`, `reorder` | not done: TCP on a real network never delivers either |
//!
//! What is not done is said in the run's notes, never silently dropped.

use crate::model::CastNode;
use crate::network::Hole;
use mqcheck_brokers::Role;
use mqcheck_sim::{FaultOp, Schedule, Split, Target};

/// Who an action hits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    /// A broker server process, by its place among the model's servers (`n0` is 0): one for a
    /// single broker, one per node of a cluster.
    Server(usize),
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
    /// A hole in the broker's network opens ([`crate::network`]), and closes again.
    Open(Hole),
    Close(Hole),
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
    /// Broker server processes the run needs: the model's servers when brokered, else none.
    pub servers: usize,
}

impl Plan {
    /// Maps `schedule` onto the real processes of a system whose model cast is `cast`: with
    /// `brokered`, each server is a broker process (one, or a cluster's nodes); without (ZeroMQ), servers are peers the
    /// harness runs, as consumers are. A fault on a producer is skipped: the real publisher has
    /// no outbox to resend from.
    pub fn new(schedule: &Schedule, cast: &[CastNode], brokered: bool) -> Plan {
        let mut plan = Plan {
            window_ms: schedule.window_ms,
            ..Plan::default()
        };
        let servers: Vec<&CastNode> = cast.iter().filter(|n| n.role == Role::Server).collect();
        if brokered {
            plan.servers = servers.len();
        }
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
                FaultOp::Partition { .. } | FaultOp::Loss { .. } => {
                    match hole(&f.op, cast, &servers, brokered) {
                        Ok((server, hole)) => {
                            for (at, starts, act) in [
                                (f.at_ms, true, Act::Open(hole)),
                                (end, false, Act::Close(hole)),
                            ] {
                                let who = Who::Server(server);
                                timeline.push((
                                    at,
                                    starts,
                                    Action {
                                        at_ms: at,
                                        who,
                                        act,
                                    },
                                ));
                            }
                        }
                        Err(why) => plan.skipped.push(format!(
                            "{} at {} ms: {why}",
                            f.op.fault().name(),
                            f.at_ms
                        )),
                    }
                    continue;
                }
                FaultOp::Clock { .. } => {
                    plan.skipped.push(format!(
                        "clock at {} ms: the real processes share this machine's clock",
                        f.at_ms
                    ));
                    continue;
                }
                FaultOp::Duplicate { .. } | FaultOp::Reorder => {
                    plan.skipped.push(format!(
                        "{} at {} ms: TCP on a real network never does this",
                        f.op.fault().name(),
                        f.at_ms
                    ));
                    continue;
                }
            };
            // The leader is the first server: a single broker, or the cluster node the clients
            // declare the queue on, which leads it until a fault moves the leadership; the real
            // run cannot follow the model's later elections, so a later "leader" is that node too.
            let whom: Vec<&CastNode> = match target {
                Target::Leader => servers.iter().take(1).copied().collect(),
                Target::Majority => servers
                    .iter()
                    .take(servers.len() / 2 + 1)
                    .copied()
                    .collect(),
                Target::Node(i) => cast.get(*i).into_iter().collect(),
            };
            let mut hit = false;
            for node in whom {
                let server = servers.iter().position(|n| n.name == node.name);
                let who = match (node.role, server) {
                    (Role::Server, Some(i)) if brokered => Who::Server(i),
                    (Role::Server | Role::Consumer, _) => Who::Client(node.name.clone()),
                    (Role::Producer | Role::Infrastructure, _) => {
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
                // Holes stack: each open has its own close.
                Act::Open(_) | Act::Close(_) => plan.actions.push(a),
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

impl Plan {
    /// Does the run need the broker behind a network of its own?
    pub fn needs_network(&self) -> bool {
        self.actions.iter().any(|a| matches!(a.act, Act::Open(_)))
    }
}

/// The hole a model partition or loss makes, and the server whose link it is in, or why the
/// real run cannot make it. The harness cuts one server's own link, so it separates that server
/// from everyone at once: a single broker from every client, or one node of a cluster (each node
/// in a namespace of its own on a bridge) from the other nodes and every client. It cannot cut
/// one client from another, nor a group of nodes from the rest.
fn hole(
    op: &FaultOp,
    cast: &[CastNode],
    servers: &[&CastNode],
    brokered: bool,
) -> Result<(usize, Hole), String> {
    if !brokered {
        return Err(
            "the peers share the test process's loopback, with no link of their own to cut".into(),
        );
    }
    let place = |server: &CastNode| {
        cast.iter()
            .position(|n| n.name == server.name)
            .expect("a server is in the cast")
    };
    let client = |i: &usize| {
        matches!(
            cast.get(*i).map(|n| n.role),
            Some(Role::Producer | Role::Consumer)
        )
    };
    let clients: Vec<usize> = (0..cast.len()).filter(client).collect();
    let single = servers.len() == 1;
    if !single && cast.iter().any(|n| n.role == Role::Infrastructure) {
        return Err("the brokers share this machine's loopback and its file system (the shared store), with no link of their own to cut".into());
    }
    match op {
        FaultOp::Loss { per_mille } if single => Ok((
            0,
            Hole::Loss {
                per_mille: *per_mille,
            },
        )),
        FaultOp::Partition {
            split: Split::IsolateLeader,
        } => Ok((0, Hole::Partition)),
        FaultOp::Partition {
            split: Split::Halves(side),
        } => {
            // The side of the server cut alone: no client and no other server beside it.
            let alone = servers.iter().enumerate().find(|(_, server)| {
                let at = place(server);
                let with = |i: &usize| *i != at && side.contains(i) == side.contains(&at);
                !clients.iter().any(with) && !servers.iter().map(|s| place(s)).any(|i| with(&i))
            });
            match alone {
                Some((i, _)) => Ok((i, Hole::Partition)),
                None if single => Err("it keeps a client on the broker's side; the harness cuts the broker from every client or none".into()),
                None => Err("it cuts no node off alone; the harness cuts one node's link, from the other nodes and every client at once".into()),
            }
        }
        FaultOp::Partition {
            split: Split::OneWay(mute),
        } if single => {
            let at = place(servers[0]);
            if mute.contains(&at) && !clients.iter().any(|c| mute.contains(c)) {
                Ok((0, Hole::Muted))
            } else if !mute.contains(&at) && clients.iter().all(|c| mute.contains(c)) {
                Ok((0, Hole::Deaf))
            } else {
                Err("it mutes some clients and not others; the harness mutes the broker's link or every client's".into())
            }
        }
        FaultOp::Loss { .. } | FaultOp::Partition { .. } => Err(
            "in a cluster the harness only cuts one node off alone (loss and one-way splits between nodes are not made)"
                .into(),
        ),
        other => Err(format!("{} is not a network fault", other.fault().name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqcheck_sim::ScheduledFault;

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
                (1_000, Who::Server(0), Act::Crash),
                (3_000, Who::Server(0), Act::Restart),
                (4_000, Who::Client("c0".into()), Act::Pause),
                (5_000, Who::Client("c0".into()), Act::Resume),
                (6_000, Who::Server(0), Act::Open(Hole::Partition)),
                (7_000, Who::Server(0), Act::Close(Hole::Partition)),
            ]
        );
        assert!(plan.needs_network());
        assert_eq!(plan.skipped.len(), 2, "{:?}", plan.skipped);
        assert!(plan.skipped[0].contains("power"));
        assert!(plan.skipped[1].contains("p0"));
    }

    fn network(op: FaultOp, cast: &[CastNode], brokered: bool) -> Plan {
        let schedule = Schedule {
            window_ms: 10_000,
            faults: vec![fault(1_000, 2_000, op)],
        };
        Plan::new(&schedule, cast, brokered)
    }

    fn opened(plan: &Plan) -> Option<Hole> {
        plan.actions.iter().find_map(|a| match a.act {
            Act::Open(h) => Some(h),
            _ => None,
        })
    }

    #[test]
    fn a_partition_cuts_the_brokers_link_only_when_it_separates_the_broker_from_every_client() {
        let split = |split| FaultOp::Partition { split };
        let alone = network(split(Split::Halves(vec![0])), &cast(), true);
        assert_eq!(opened(&alone), Some(Hole::Partition));
        let with_client = network(split(Split::Halves(vec![0, 2])), &cast(), true);
        assert_eq!(opened(&with_client), None);
        assert!(with_client.skipped[0].contains("client on the broker's side"));
        let muted = network(split(Split::OneWay(vec![0])), &cast(), true);
        assert_eq!(opened(&muted), Some(Hole::Muted));
        let deaf = network(split(Split::OneWay(vec![1, 2])), &cast(), true);
        assert_eq!(opened(&deaf), Some(Hole::Deaf));
        let some = network(split(Split::OneWay(vec![2])), &cast(), true);
        assert_eq!(opened(&some), None);
        let loss = network(FaultOp::Loss { per_mille: 300 }, &cast(), true);
        assert_eq!(opened(&loss), Some(Hole::Loss { per_mille: 300 }));
        assert_eq!(
            loss.actions[1].act,
            Act::Close(Hole::Loss { per_mille: 300 })
        );
        assert_eq!(loss.actions[1].at_ms, 3_000);
    }

    #[test]
    fn peers_in_one_process_get_no_network_faults_and_a_cluster_node_is_cut_off_alone() {
        let cut = FaultOp::Partition {
            split: Split::IsolateLeader,
        };
        let peers = network(cut.clone(), &cast(), false);
        assert!(peers.actions.is_empty() && !peers.needs_network());
        assert!(peers.skipped[0].contains("loopback"));
        let mut cluster = cast();
        for name in ["n2", "n3"] {
            cluster.push(CastNode {
                name: name.into(),
                role: Role::Server,
            });
        }
        let leader = network(cut.clone(), &cluster, true);
        assert_eq!(opened(&leader), Some(Hole::Partition));
        assert_eq!(leader.actions[0].who, Who::Server(0));
        assert_eq!(leader.servers, 3);
        let halves = |side: Vec<usize>| FaultOp::Partition {
            split: Split::Halves(side),
        };
        let n2_alone = network(halves(vec![3]), &cluster, true);
        assert_eq!(opened(&n2_alone), Some(Hole::Partition));
        assert_eq!(n2_alone.actions[0].who, Who::Server(1));
        let two_apart = network(halves(vec![3, 4]), &cluster, true);
        assert!(two_apart.actions.is_empty());
        assert!(
            two_apart.skipped[0].contains("alone"),
            "{:?}",
            two_apart.skipped
        );
        let loss = network(FaultOp::Loss { per_mille: 100 }, &cluster, true);
        assert!(loss.actions.is_empty());
        let mut shared_store = cluster.clone();
        shared_store.push(CastNode {
            name: "store".into(),
            role: Role::Infrastructure,
        });
        let pair = network(cut, &shared_store, true);
        assert!(pair.actions.is_empty());
        assert!(pair.skipped[0].contains("shared store"));
        let clock = network(
            FaultOp::Clock {
                target: Target::Node(0),
                rate: 500,
            },
            &cast(),
            true,
        );
        assert!(clock.skipped[0].contains("share this machine's clock"));
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
