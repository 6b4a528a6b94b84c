//! The scenarios, and the comparison of a real run with the model.

use crate::model::{ask, Kinds, ModelQuery, ModelSide, CHECKS};
use crate::plan::{Act, Plan, Who};
use mqcheck_brokers::{Config, Workload};
use mqcheck_invariants::{History, Invariant, Kind, Violation};
use mqcheck_sim::{
    evaluate, FaultOp, FaultSet, Schedule, ScheduleFile, ScheduledFault, Split, Target,
};
use std::collections::BTreeSet;
use std::fmt::Write;

/// A fault of a scenario's schedule: at, for (ms), what, which node of the model's cast.
#[derive(Clone, Copy, Debug)]
pub enum Strike {
    Crash(u64, u64, usize),
    Pause(u64, u64, usize),
    /// The broker cut off from every client.
    Partition(u64, u64),
    /// This many packets per mille lost on the broker's link.
    Loss(u64, u64, u32),
}

/// One configuration of a broker's matrix that the real broker runs, with a fault schedule in
/// the model's vocabulary and what the model says about it.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub broker: &'static str,
    pub sets: &'static [&'static str],
    /// The faults the model's seed sweep may inject (`--faults`).
    pub faults: &'static str,
    pub messages: u32,
    /// Messages per second the producer sends, and milliseconds the consumer's application
    /// spends on one: the same in the model and on the real broker.
    pub rate: u32,
    pub handler_ms: u32,
    pub window_ms: u64,
    pub strikes: &'static [Strike],
    /// Anomalies the model reports here that the real broker must show too.
    pub claims: &'static [Kind],
    /// Invariants the model says hold here, which must hold on the real broker too.
    pub guarantees: &'static [Invariant],
}

/// How many times a scenario runs on the real broker, at most, to show every claim.
pub const ATTEMPTS: u32 = 3;

/// Every scenario, in the order CI runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "push-pull, consumer crash",
        broker: "zeromq",
        sets: &["pattern=push-pull"],
        faults: "crash",
        messages: 300,
        rate: 100,
        handler_ms: 10,
        window_ms: 3_000,
        strikes: &[Strike::Crash(1_000, 500, 1)],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::AtMostOnce, Invariant::Ordering],
    },
    Scenario {
        name: "push-pull, PUSH connects, consumer crash",
        broker: "zeromq",
        sets: &["pattern=push-pull", "bind=pull"],
        faults: "crash",
        messages: 300,
        rate: 100,
        handler_ms: 10,
        window_ms: 3_000,
        strikes: &[Strike::Crash(1_000, 500, 1)],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::AtMostOnce, Invariant::Ordering],
    },
    Scenario {
        name: "pub-sub, slow joiner",
        broker: "zeromq",
        sets: &["pattern=pub-sub", "syncpub=false"],
        faults: "none",
        messages: 100,
        rate: 100,
        handler_ms: 1,
        window_ms: 1_000,
        strikes: &[],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::AtMostOnce, Invariant::Ordering],
    },
    Scenario {
        name: "pub-sub, subscriber crash",
        broker: "zeromq",
        sets: &["pattern=pub-sub"],
        faults: "crash",
        messages: 300,
        rate: 100,
        handler_ms: 1,
        window_ms: 3_000,
        strikes: &[Strike::Crash(1_000, 500, 1)],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::AtMostOnce, Invariant::Ordering],
    },
    Scenario {
        name: "req-rep, Lazy Pirate, server crash",
        broker: "zeromq",
        sets: &["pattern=req-rep", "client=lazy-pirate"],
        faults: "crash",
        messages: 30,
        rate: 20,
        handler_ms: 200,
        window_ms: 3_000,
        strikes: &[Strike::Crash(1_000, 1_000, 1)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce],
    },
    Scenario {
        name: "classic queue, confirms, manual acks, broker crash",
        broker: "rabbitmq",
        sets: &["nodes=1"],
        faults: "crash",
        messages: 200,
        rate: 50,
        handler_ms: 10,
        window_ms: 5_000,
        strikes: &[Strike::Crash(2_000, 2_000, 0)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "quorum queue, confirms, manual acks, broker crash",
        broker: "rabbitmq",
        sets: &["nodes=1", "queue.type=quorum"],
        faults: "crash",
        messages: 200,
        rate: 50,
        handler_ms: 30,
        window_ms: 5_000,
        strikes: &[Strike::Crash(2_000, 2_000, 0)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "quorum queue on three nodes, confirms, manual acks, leader crash",
        broker: "rabbitmq",
        sets: &["nodes=3", "queue.type=quorum"],
        faults: "crash",
        messages: 200,
        rate: 50,
        handler_ms: 30,
        window_ms: 6_000,
        strikes: &[Strike::Crash(2_000, 3_000, 0)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "quorum queue on three nodes, confirms, manual acks, leader partitioned from the other nodes and the clients",
        broker: "rabbitmq",
        sets: &["nodes=3", "queue.type=quorum"],
        faults: "partition",
        messages: 200,
        rate: 50,
        handler_ms: 30,
        window_ms: 12_000,
        strikes: &[Strike::Partition(2_000, 6_000)],
        claims: &[],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "classic queue, automatic acks, consumer crash",
        broker: "rabbitmq",
        sets: &["nodes=1", "auto_ack=true"],
        faults: "crash",
        messages: 200,
        rate: 100,
        handler_ms: 40,
        window_ms: 5_000,
        strikes: &[Strike::Crash(1_500, 1_000, 2)],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::AtMostOnce, Invariant::Ordering],
    },
    Scenario {
        name: "transient messages, broker crash",
        broker: "rabbitmq",
        sets: &["nodes=1", "delivery_mode=1"],
        faults: "crash",
        messages: 200,
        rate: 100,
        handler_ms: 40,
        window_ms: 5_000,
        strikes: &[Strike::Crash(1_500, 2_000, 0)],
        claims: &[Kind::Lost],
        guarantees: &[Invariant::Ordering],
    },
    Scenario {
        name: "classic queue, confirms, manual acks, broker partitioned from its clients",
        broker: "rabbitmq",
        sets: &["nodes=1"],
        faults: "partition",
        messages: 200,
        rate: 50,
        handler_ms: 10,
        window_ms: 6_000,
        strikes: &[Strike::Partition(1_500, 3_000)],
        claims: &[],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "classic queue, confirms, manual acks, 20% packet loss",
        broker: "rabbitmq",
        sets: &["nodes=1"],
        faults: "loss",
        messages: 200,
        rate: 50,
        handler_ms: 10,
        window_ms: 6_000,
        strikes: &[Strike::Loss(1_000, 4_000, 200)],
        claims: &[],
        guarantees: &[
            Invariant::AtLeastOnce,
            Invariant::AtMostOnce,
            Invariant::Ordering,
        ],
    },
    Scenario {
        name: "persistent, synchronous sends, listener acks, broker crash",
        broker: "activemq",
        sets: &[],
        faults: "crash",
        messages: 200,
        rate: 50,
        // A busy consumer: the message in the handler when the broker dies is the one whose
        // ack is lost (with 10 ms the consumer is idle half the time, and 3 attempts once showed
        // no duplicate).
        handler_ms: 30,
        window_ms: 5_000,
        strikes: &[Strike::Crash(2_000, 2_000, 0)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "persistent, synchronous sends, listener acks, broker partitioned from its clients",
        broker: "activemq",
        sets: &[],
        faults: "partition",
        messages: 200,
        rate: 50,
        handler_ms: 10,
        window_ms: 6_000,
        strikes: &[Strike::Partition(1_500, 3_000)],
        claims: &[],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "non-persistent, broker crash",
        broker: "activemq",
        sets: &["deliveryMode=NON_PERSISTENT"],
        faults: "crash",
        messages: 200,
        rate: 100,
        handler_ms: 40,
        window_ms: 5_000,
        strikes: &[Strike::Crash(1_500, 2_000, 0)],
        claims: &[Kind::Lost],
        guarantees: &[],
    },
    Scenario {
        name: "listener acks, queuePrefetch=50, consumer crash",
        broker: "activemq",
        sets: &["queuePrefetch=50"],
        faults: "crash",
        messages: 200,
        rate: 100,
        handler_ms: 40,
        window_ms: 5_000,
        strikes: &[Strike::Crash(1_500, 1_000, 2)],
        claims: &[Kind::Duplicate],
        guarantees: &[Invariant::AtLeastOnce],
    },
    Scenario {
        name: "receive(), AUTO_ACKNOWLEDGE, consumer crash",
        broker: "activemq",
        sets: &["consumer.api=receive"],
        faults: "crash",
        messages: 200,
        rate: 100,
        handler_ms: 40,
        window_ms: 5_000,
        strikes: &[Strike::Crash(1_500, 1_000, 2)],
        claims: &[Kind::Lost],
        guarantees: &[],
    },
    Scenario {
        name: "master/slave on a shared KahaDB, failover clients, master crash",
        broker: "activemq",
        sets: &["failover=true", "transport=failover"],
        faults: "crash",
        messages: 200,
        rate: 50,
        handler_ms: 30,
        window_ms: 25_000,
        // Down for longer than the slave's lockAcquireSleepInterval (10 s) and its recovery, so
        // the slave takes over before the old master is back.
        strikes: &[Strike::Crash(2_000, 20_000, 0)],
        claims: &[],
        guarantees: &[Invariant::AtLeastOnce, Invariant::Ordering],
    },
    Scenario {
        name: "master/slave on a shared KahaDB, failover clients, master paused",
        broker: "activemq",
        sets: &["failover=true", "transport=failover"],
        faults: "pause",
        messages: 200,
        rate: 50,
        handler_ms: 30,
        window_ms: 20_000,
        // Stopped for longer than lockAcquireSleepInterval: the slave tries the lock at least
        // once while the master is stopped.
        strikes: &[Strike::Pause(2_000, 12_000, 0)],
        claims: &[],
        guarantees: &[
            Invariant::AtLeastOnce,
            Invariant::AtMostOnce,
            Invariant::Ordering,
        ],
    },
];

impl Scenario {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            window_ms: self.window_ms,
            faults: self
                .strikes
                .iter()
                .map(|s| {
                    let (at_ms, for_ms, op) = match *s {
                        Strike::Crash(at, d, n) => (
                            at,
                            d,
                            FaultOp::Crash {
                                target: Target::Node(n),
                            },
                        ),
                        Strike::Pause(at, d, n) => (
                            at,
                            d,
                            FaultOp::Pause {
                                target: Target::Node(n),
                            },
                        ),
                        Strike::Partition(at, d) => (
                            at,
                            d,
                            FaultOp::Partition {
                                split: Split::IsolateLeader,
                            },
                        ),
                        Strike::Loss(at, d, per_mille) => (at, d, FaultOp::Loss { per_mille }),
                    };
                    ScheduledFault { at_ms, for_ms, op }
                })
                .collect(),
        }
    }

    pub fn case(&self) -> Case {
        Case {
            title: format!("{} · {}", self.broker, self.name),
            broker: self.broker.into(),
            sets: self.sets.iter().map(|s| s.to_string()).collect(),
            faults: self.faults.parse().expect("scenario fault sets are valid"),
            messages: self.messages,
            rate: self.rate,
            handler_ms: self.handler_ms,
            schedule: self.schedule(),
            seed: 0,
            claims: self.claims.to_vec(),
            guarantees: self.guarantees.to_vec(),
        }
    }
}

/// The scenarios of one broker.
pub fn scenarios(broker: &str) -> Vec<&'static Scenario> {
    SCENARIOS.iter().filter(|s| s.broker == broker).collect()
}

/// The brokers that have a real counterpart here.
pub const REAL_BROKERS: &[&str] = &["rabbitmq", "activemq", "zeromq"];

/// What to run, on both sides.
#[derive(Clone, Debug)]
pub struct Case {
    pub title: String,
    pub broker: String,
    pub sets: Vec<String>,
    pub faults: FaultSet,
    pub messages: u32,
    pub rate: u32,
    pub handler_ms: u32,
    pub schedule: Schedule,
    /// The first seed the model runs the exact schedule with.
    pub seed: u64,
    pub claims: Vec<Kind>,
    pub guarantees: Vec<Invariant>,
}

/// Defaults for a replayed counterexample whose file leaves the workload to the model's defaults:
/// the model's own workload size, at a fixed pace (real clients need one). A file that sets
/// `--rate` or `--handler-ms` is replayed at its own pace, so that the model's run of the schedule
/// beside the real one is the run that was shrunk.
const REPLAY_MESSAGES: u32 = 100;
const REPLAY_RATE: u32 = 50;
const REPLAY_HANDLER_MS: u32 = 10;

impl Case {
    /// A model counterexample's schedule, to replay on the real broker. The sweep injects the
    /// kinds of fault the schedule has.
    pub fn from_file(file: &ScheduleFile) -> Result<Case, String> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for f in &file.schedule.faults {
            names.insert(f.op.fault().name());
        }
        let faults = if names.is_empty() {
            "none".to_string()
        } else {
            names.into_iter().collect::<Vec<_>>().join(",")
        };
        Ok(Case {
            title: format!("{} · replay of a model schedule", file.broker),
            broker: file.broker.clone(),
            sets: file.sets.clone(),
            faults: faults.parse().map_err(|e| format!("--schedule: {e}"))?,
            messages: file.messages.unwrap_or(REPLAY_MESSAGES),
            rate: file.rate.unwrap_or(REPLAY_RATE),
            handler_ms: file.handler_ms.unwrap_or(REPLAY_HANDLER_MS),
            schedule: file.schedule.clone(),
            seed: file.seed.unwrap_or(0),
            claims: Vec::new(),
            guarantees: Vec::new(),
        })
    }

    fn workload(&self) -> Workload {
        Workload {
            rate: Some(self.rate),
            handler_ms: Some(self.handler_ms),
            ..Workload::new(self.messages, 1, 1)
        }
    }
}

/// What the real side runs: the model's configuration, the workload and the plan.
#[derive(Clone, Debug)]
pub struct RealSpec {
    pub broker: String,
    pub config: Config,
    pub messages: u32,
    pub rate: u32,
    pub handler_ms: u32,
    pub plan: Plan,
}

/// What the real side produced.
#[derive(Clone, Debug)]
pub struct RealRun {
    pub history: History,
    /// What the run could not do as the model would, in words.
    pub notes: Vec<String>,
    pub wall_ms: u64,
    /// The history had settled (every send answered, every acknowledged message delivered)
    /// before the drain's time ran out.
    pub settled: bool,
    /// Per server of ActiveMQ's master/slave pair, the times it took the KahaDB lock and opened
    /// its connector, as its log says; empty for other systems.
    pub masters: Vec<usize>,
}

/// Why a comparison could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConformError {
    /// Bad input: an unknown broker, key or value, or one the real runner does not run.
    Input(String),
    /// The harness failed: a missing package, a broker that never came up.
    Harness(String),
}

impl std::fmt::Display for ConformError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConformError::Input(e) | ConformError::Harness(e) => f.write_str(e),
        }
    }
}

/// The configuration keys each real runner honours; any other key set explicitly is refused,
/// so a comparison never runs the real broker in a configuration other than the model's.
pub fn supported_keys(broker: &str) -> &'static [&'static str] {
    match broker {
        "rabbitmq" => &[
            "nodes",
            "queue.type",
            "auto_ack",
            "delivery_mode",
            "publisher.confirms",
            "publisher.retry",
            "publisher.confirm_timeout",
            "prefetch",
        ],
        "activemq" => &[
            "deliveryMode",
            "useAsyncSend",
            "queuePrefetch",
            "acknowledgeMode",
            "consumer.api",
            "transport",
            "failover",
            "locker",
            "lockAcquireSleepInterval",
            "lockKeepAlivePeriod",
        ],
        "zeromq" => &[
            "pattern",
            "bind",
            "client",
            "syncpub",
            "ZMQ_SNDHWM",
            "ZMQ_RCVHWM",
            "lazy-pirate.timeout",
            "lazy-pirate.retries",
        ],
        _ => &[],
    }
}

/// Refuses a broker that has no real runner here.
pub fn check_supported_broker(broker: &str) -> Result<(), String> {
    if REAL_BROKERS.contains(&broker) {
        return Ok(());
    }
    Err(format!(
        "--broker {broker}: no real broker to run here (allowed: {}; Kafka, RocketMQ and ActiveMQ Artemis are not in the package registries this machine reaches)",
        REAL_BROKERS.join(", ")
    ))
}

/// Refuses what the real runner cannot run, before anything starts.
pub fn check_supported(broker: &str, config: &Config) -> Result<(), String> {
    check_supported_broker(broker)?;
    let keys = supported_keys(broker);
    for set in config.explicit() {
        let key = set.split('=').next().unwrap_or_default();
        if !keys.contains(&key) {
            return Err(format!(
                "--set {set}: the real {broker} runner does not run this key (allowed: {})",
                keys.join(", ")
            ));
        }
    }
    if broker == "activemq" {
        let ack = config.str("acknowledgeMode");
        if !["AUTO_ACKNOWLEDGE", "CLIENT_ACKNOWLEDGE"].contains(&ack) {
            return Err(format!(
                "--set acknowledgeMode={ack}: the real activemq runner's STOMP clients do not run it (allowed: AUTO_ACKNOWLEDGE, CLIENT_ACKNOWLEDGE)"
            ));
        }
        if config.bool("failover") && config.str("locker") != "shared-file" {
            return Err(format!(
                "--set locker={}: the real activemq runner has no shared database for LeaseDatabaseLocker (allowed: shared-file)",
                config.str("locker")
            ));
        }
        if config.str("transport") == "failover" && config.str("consumer.api") == "receive" {
            return Err("--set consumer.api=receive: with transport=failover the real activemq runner's consumer poison-acks duplicates, and STOMP's ack:auto has no NACK (allowed with transport=failover: listener)".into());
        }
    }
    if broker == "rabbitmq" {
        let nodes = config.int("nodes");
        let quorum = config.str("queue.type") == "quorum";
        if !(nodes == 1 || nodes == 3 && quorum) {
            return Err(format!(
                "--set nodes={nodes}: the real rabbitmq runner starts one node, or three for a quorum queue (allowed: nodes=1; nodes=3 with queue.type=quorum)"
            ));
        }
    }
    Ok(())
}

/// Runs the real side.
#[cfg(feature = "real-brokers")]
pub fn run_real(spec: &RealSpec) -> Result<RealRun, String> {
    match spec.broker.as_str() {
        "rabbitmq" => crate::rabbitmq::run(spec).map_err(|e| e.to_string()),
        "activemq" => crate::activemq::run(spec).map_err(|e| e.to_string()),
        "zeromq" => crate::zeromq::run(spec),
        other => Err(format!("no real runner for {other}")),
    }
}

/// Refuses, before anything starts, to run real brokers from a build without their clients.
pub fn check_real_clients() -> Result<(), String> {
    if cfg!(feature = "real-brokers") {
        Ok(())
    } else {
        Err(NO_REAL_CLIENTS.into())
    }
}

const NO_REAL_CLIENTS: &str = "this build has no real-broker clients: rebuild with `cargo build --release --features real-brokers`";

/// Runs the real side: not in this build.
#[cfg(not(feature = "real-brokers"))]
pub fn run_real(_spec: &RealSpec) -> Result<RealRun, String> {
    Err(NO_REAL_CLIENTS.into())
}

/// A real run beside the model.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub case: Case,
    pub model: ModelSide,
    pub real: RealRun,
    pub violations: Vec<Violation>,
    pub plan: Plan,
}

/// The model's seed sweep size when not told otherwise.
pub const SEEDS: u64 = 300;

/// Runs the model and then the real broker for one case.
pub fn compare(case: &Case, seeds: u64) -> Result<Comparison, ConformError> {
    let model = ask(ModelQuery {
        broker: case.broker.clone(),
        sets: case.sets.clone(),
        faults: case.faults.clone(),
        workload: case.workload(),
        seeds: 0..seeds,
        schedule: case.schedule.clone(),
        schedule_seeds: case.seed..case.seed + 5,
    })
    .map_err(|e| ConformError::Input(e.to_string()))?;
    check_supported(&case.broker, &model.config).map_err(ConformError::Input)?;
    let plan = Plan::new(&case.schedule, &model.cast, case.broker != "zeromq");
    let real = run_real(&RealSpec {
        broker: case.broker.clone(),
        config: model.config.clone(),
        messages: case.messages,
        rate: case.rate,
        handler_ms: case.handler_ms,
        plan: plan.clone(),
    })
    .map_err(ConformError::Harness)?;
    let violations = evaluate(&real.history, &CHECKS, &model.ordering);
    Ok(Comparison {
        case: case.clone(),
        model,
        real,
        violations,
        plan,
    })
}

/// Runs a scenario up to [`ATTEMPTS`] times, until the real broker showed every claim.
pub fn attempt(scenario: &Scenario, seeds: u64) -> Result<Vec<Comparison>, ConformError> {
    let case = scenario.case();
    let mut runs: Vec<Comparison> = Vec::new();
    for _ in 0..ATTEMPTS {
        runs.push(compare(&case, seeds)?);
        let seen: BTreeSet<Kind> = runs.iter().flat_map(|c| c.real_kinds()).collect();
        if case.claims.iter().all(|k| seen.contains(k)) {
            break;
        }
    }
    Ok(runs)
}

impl Comparison {
    /// Every kind of violation the real broker showed.
    pub fn real_kinds(&self) -> BTreeSet<Kind> {
        self.violations.iter().map(|v| v.kind).collect()
    }

    /// Kinds the model allows here: its seed sweep and its runs of the exact schedule.
    pub fn model_kinds(&self) -> BTreeSet<Kind> {
        let mut k = self.model.sweep.all();
        k.extend(self.model.schedule.all());
        k
    }

    /// Soundness: kinds the real broker showed that the model never produced.
    pub fn divergences(&self) -> Vec<Kind> {
        let allowed = self.model_kinds();
        self.real_kinds()
            .into_iter()
            .filter(|k| !allowed.contains(k))
            .collect()
    }

    /// Guarantees of the scenario the real broker broke.
    pub fn broken_guarantees(&self) -> Vec<Invariant> {
        self.case
            .guarantees
            .iter()
            .copied()
            .filter(|g| self.violations.iter().any(|v| v.invariant == *g))
            .collect()
    }

    /// Why the real run tested nothing, if it did not.
    pub fn inconclusive(&self) -> Option<&'static str> {
        if self.real.history.acks() == 0 {
            Some("nothing was acknowledged")
        } else if self.real.history.deliveries() == 0 {
            Some("nothing was delivered")
        } else {
            None
        }
    }

    /// Exit status: 3 when the real run tested nothing, 1 when the real broker violated an
    /// invariant or showed a kind the model never produces, else 0.
    pub fn code(&self) -> u8 {
        if self.inconclusive().is_some() {
            3
        } else if !self.violations.is_empty() || !self.divergences().is_empty() {
            1
        } else {
            0
        }
    }

    /// The real history's verdicts beside the model's, in a few lines.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let h = &self.real.history;
        let _ = writeln!(out, "conform {}", self.case.title);
        let sets = self.model.config.explicit();
        if !sets.is_empty() {
            let _ = writeln!(out, "  {}", sets.join(" "));
        }
        let _ = writeln!(
            out,
            "real run: {} sends, {} acknowledged, {} deliveries in {:.1} s of wall time{}",
            h.sends(),
            h.acks(),
            h.deliveries(),
            self.real.wall_ms as f64 / 1000.0,
            if self.real.settled {
                ""
            } else {
                "; the drain ended unsettled"
            }
        );
        for a in &self.plan.actions {
            let who = match &a.who {
                Who::Server(i) if self.plan.servers > 1 => {
                    format!("{} node n{i}", self.case.broker)
                }
                Who::Server(_) => format!("the {} server", self.case.broker),
                Who::Client(name) => name.clone(),
            };
            let what = match (a.act, &a.who) {
                (Act::Crash, Who::Server(_)) => "SIGKILL".into(),
                (Act::Restart, Who::Server(_)) => "restart on the same data".into(),
                (Act::Pause, Who::Server(_)) => "SIGSTOP".into(),
                (Act::Resume, Who::Server(_)) => "SIGCONT".into(),
                (Act::Crash, Who::Client(_)) => {
                    "crash: connection dropped with what it held".into()
                }
                (Act::Restart, Who::Client(_)) => "restart".into(),
                (Act::Pause, Who::Client(_)) => "pause".into(),
                (Act::Resume, Who::Client(_)) => "resume".into(),
                (Act::Open(hole), _) => format!("its link {}", hole.describe()),
                (Act::Close(hole), _) => format!("its link heals ({} ends)", hole.describe()),
            };
            let _ = writeln!(out, "  at {:>6} ms: {who}: {what}", a.at_ms);
        }
        for s in self.plan.skipped.iter().chain(&self.real.notes) {
            let _ = writeln!(out, "  note: {s}");
        }
        let _ = writeln!(
            out,
            "{:<15} {:<34} model: {} seeds of --faults {} · this schedule × {}",
            "", "real broker", self.model.sweep.runs, self.case.faults, self.model.schedule.runs
        );
        for inv in CHECKS.iter().chain([&Invariant::NoUnexpected]) {
            let real: BTreeSet<&str> = self
                .violations
                .iter()
                .filter(|v| v.invariant == *inv)
                .map(|v| v.kind.name())
                .collect();
            let count = self
                .violations
                .iter()
                .filter(|v| v.invariant == *inv)
                .count();
            let real = if real.is_empty() {
                "held".to_string()
            } else {
                format!(
                    "VIOLATED: {} ({count})",
                    real.into_iter().collect::<Vec<_>>().join(", ")
                )
            };
            let _ = writeln!(
                out,
                "{:<15} {:<34} {} · {}",
                inv.name(),
                real,
                tally(&self.model.sweep, *inv),
                tally(&self.model.schedule, *inv)
            );
        }
        for v in self.violations.iter().take(3) {
            let _ = writeln!(out, "  real: {v}");
        }
        if self.violations.len() > 3 {
            let _ = writeln!(out, "  … and {} more", self.violations.len() - 3);
        }
        if !self.case.claims.is_empty() {
            let seen = self.real_kinds();
            let claims: Vec<String> = self
                .case
                .claims
                .iter()
                .map(|k| {
                    let how = if seen.contains(k) {
                        "seen"
                    } else {
                        "not seen in this run"
                    };
                    format!("{} {how}", k.name())
                })
                .collect();
            let _ = writeln!(
                out,
                "the model's claims on the real broker: {}",
                claims.join(", ")
            );
        }
        if !self.case.guarantees.is_empty() {
            let broken = self.broken_guarantees();
            let names: Vec<String> = self
                .case
                .guarantees
                .iter()
                .map(|g| {
                    let how = if broken.contains(g) { "BROKEN" } else { "held" };
                    format!("{g} {how}")
                })
                .collect();
            let _ = writeln!(out, "guarantees in both: {}", names.join(", "));
        }
        let divergences = self.divergences();
        if divergences.is_empty() {
            let _ = writeln!(
                out,
                "soundness: every kind of violation the real broker showed is one the model produces"
            );
        } else {
            let names: Vec<&str> = divergences.iter().map(|k| k.name()).collect();
            let _ = writeln!(
                out,
                "DIVERGENCE: the real broker showed {} that the model never produced here",
                names.join(", ")
            );
        }
        if let Some(why) = self.inconclusive() {
            let _ = writeln!(out, "inconclusive: {why}");
        }
        out
    }
}

fn tally(k: &Kinds, inv: Invariant) -> String {
    match k.violated.get(&inv) {
        None => format!("held in {}", k.runs),
        Some((runs, kinds)) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            format!("violated in {runs}/{} ({})", k.runs, names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqcheck_brokers::{dispatch, Job, System};

    struct Keys;
    impl Job for Keys {
        type Output = Vec<String>;
        fn run<S: System>(self) -> Vec<String> {
            S::keys().into_iter().map(|k| k.name.to_string()).collect()
        }
    }

    #[test]
    fn every_scenario_is_a_configuration_the_model_accepts_and_the_real_runner_runs() {
        for s in SCENARIOS {
            let case = s.case();
            let model = ask(ModelQuery {
                broker: case.broker.clone(),
                sets: case.sets.clone(),
                faults: case.faults.clone(),
                workload: case.workload(),
                seeds: 0..1,
                schedule: case.schedule.clone(),
                schedule_seeds: 0..1,
            })
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            check_supported(s.broker, &model.config).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let plan = Plan::new(&case.schedule, &model.cast, s.broker != "zeromq");
            assert_eq!(plan.actions.len(), 2 * s.strikes.len(), "{}", s.name);
            assert!(plan.skipped.is_empty(), "{}: {:?}", s.name, plan.skipped);
        }
    }

    #[test]
    fn every_supported_key_is_a_model_key() {
        for broker in REAL_BROKERS {
            let keys = dispatch(broker, Keys).unwrap();
            for k in supported_keys(broker) {
                assert!(keys.iter().any(|m| m == k), "{broker}: {k}");
            }
        }
    }

    #[test]
    fn a_key_the_real_runner_does_not_run_is_refused() {
        let model = ask(ModelQuery {
            broker: "rabbitmq".into(),
            sets: vec!["nodes=1".into(), "mandatory=true".into()],
            faults: "none".parse().unwrap(),
            workload: Workload::new(5, 1, 1),
            seeds: 0..1,
            schedule: Schedule::default(),
            schedule_seeds: 0..1,
        })
        .unwrap();
        let err = check_supported("rabbitmq", &model.config).unwrap_err();
        assert!(err.starts_with("--set mandatory=true"), "{err}");
        assert!(check_supported("kafka", &model.config)
            .unwrap_err()
            .contains("Kafka, RocketMQ and ActiveMQ Artemis"));
    }

    #[test]
    fn the_model_produces_every_claim_of_every_scenario() {
        for s in SCENARIOS {
            let case = s.case();
            let model = ask(ModelQuery {
                broker: case.broker.clone(),
                sets: case.sets.clone(),
                faults: case.faults.clone(),
                workload: case.workload(),
                seeds: 0..SEEDS,
                schedule: case.schedule.clone(),
                schedule_seeds: 0..5,
            })
            .unwrap();
            let mut kinds = model.sweep.all();
            kinds.extend(model.schedule.all());
            for claim in s.claims {
                assert!(
                    kinds.contains(claim),
                    "{}: {claim:?} not in {kinds:?}",
                    s.name
                );
            }
            for g in s.guarantees {
                assert!(
                    !model.sweep.violated.contains_key(g),
                    "{}: the model violates {g}",
                    s.name
                );
            }
        }
    }
}
