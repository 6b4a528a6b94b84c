//! The model checker's speed against stateright's own reference, in one run.
//!
//! `cargo bench --bench checker` checks, with BFS on every core, stateright's Single Decree Paxos
//! example exactly as its `paxos check 3` does (3 clients, 3 servers, unordered network), then
//! mqcheck's standard Kafka check (`mqcheck check --broker kafka --faults crash`: the default
//! configuration, 2 messages, 1 crash, `--unreduced` so that every state is stored as in Paxos).
//! Each runs in a child process so its peak memory is its own. It prints states/s and unique states/s for both and the ratio; the target is a Kafka
//! per-state rate at least half of Paxos'.
//!
//! Then the reduction (docs/model-checking.md, "Reduction") against the unreduced search, in the
//! same run: the two-crash Kafka losses with Kafka's default timing (two brokers, one record, two
//! crashes: `unclean.leader.election.enable=true`, and KIP-101's `min.insync.replicas=2
//! log.truncation=high-watermark`), each reduced and `--unreduced`, with states, steps, seconds,
//! peak memory and the verdict of the property each must break. Before it, the same losses (and
//! the unclean election's at-least-once loss for a consumer that reads 30 s late) searched only
//! until that property is violated (`check --stop-at-violation`), depth and breadth first, each
//! reduced and unreduced: docs/model-checking.md, "Search order". The whole-space table takes
//! about forty minutes on two cores; `cargo bench --bench checker -- paxos` runs the first table
//! only, `-- reach` the until-violated one only, `-- reduction` the whole-space one only.

#[path = "reference/paxos.rs"]
mod paxos;

use mqcheck_brokers::kafka::Kafka;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_models::{Bounds, CheckModel};
use stateright::actor::Network;
use stateright::{Checker, HasDiscoveries, Model};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Figures {
    states: usize,
    unique: usize,
    seconds: f64,
    peak_kb: u64,
    /// Steps the reduction followed without storing their states.
    followed: usize,
    /// Was the property the check is about violated?
    violated: bool,
}

fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn measure<M>(model: M) -> Figures
where
    M: Model + Send + Sync + 'static,
    M::State: std::fmt::Debug + std::hash::Hash + Clone + PartialEq + Send + Sync,
    M::Action: std::fmt::Debug + Clone + PartialEq + Send + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let done = model.checker().threads(threads).spawn_bfs().join();
    Figures {
        states: done.state_count(),
        unique: done.unique_state_count(),
        seconds: started.elapsed().as_secs_f64(),
        peak_kb: peak_kb(),
        followed: 0,
        violated: false,
    }
}

/// How a two-crash check searches: the whole space breadth first (the second table), or until
/// `property` is violated (`--stop-at-violation`), depth or breadth first (the third).
#[derive(Clone, Copy, PartialEq)]
enum Search {
    Whole,
    UntilViolated { dfs: bool },
}

/// A search of the third table that has not met its violation after this long is stopped and
/// reported as such.
const REACH_LIMIT: Duration = Duration::from_secs(300);

/// A two-crash Kafka check with the default timing, reduced or not, judged on `property`.
fn two_crashes(check: usize, reduced: bool, search: Search) -> Figures {
    let (_, sets, property, consumer_delay_ms) = TWO_CRASHES[check];
    let mut sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    sets.extend(["nodes=2".into(), "replication.factor=2".into()]);
    let config = Config::parse("kafka", &Kafka::keys(), &sets).expect("valid settings");
    let workload = Workload {
        messages: 1,
        producers: 1,
        consumers: 1,
        consumer_delay_ms,
        ..Workload::default()
    };
    let bounds = Bounds {
        workload,
        faults: "crash".parse().expect("a fault list"),
        max_crashes: 2,
        max_net_faults: 1,
    };
    let model = CheckModel::new(&Kafka::build(&config, workload), bounds);
    let model = if reduced { model } else { model.unreduced() };
    let followed = model.followed();
    let stop = model.stop();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let checker = model.checker().threads(threads).target_max_depth(3000);
    let done = Done {
        started,
        stop,
        followed,
        property,
    };
    match search {
        Search::Whole => done.of(checker.spawn_bfs(), None),
        Search::UntilViolated { dfs } => {
            let checker = checker.finish_when(HasDiscoveries::AnyOf([property].into()));
            if dfs {
                done.of(checker.spawn_dfs(), Some(REACH_LIMIT))
            } else {
                done.of(checker.spawn_bfs(), Some(REACH_LIMIT))
            }
        }
    }
}

/// What a two-crash search needs to be measured when it is done.
struct Done {
    started: Instant,
    stop: Arc<AtomicBool>,
    followed: Arc<AtomicUsize>,
    property: &'static str,
}

impl Done {
    /// Waits for `running` (stopping it after `limit`, if any) and takes its figures.
    fn of(self, running: impl Checker<CheckModel<Kafka>>, limit: Option<Duration>) -> Figures {
        while !running.is_done() && limit.is_none_or(|l| self.started.elapsed() < l) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopped = !running.is_done();
        self.stop.store(true, Ordering::Relaxed);
        let done = running.join();
        let seconds = self.started.elapsed().as_secs_f64();
        let followed = self.followed.load(Ordering::Relaxed);
        // Switched off again so that the counterexample's path can be rebuilt.
        self.stop.store(false, Ordering::Relaxed);
        Figures {
            states: done.state_count(),
            unique: done.unique_state_count(),
            seconds,
            peak_kb: peak_kb(),
            followed,
            violated: !stopped && done.discovery(self.property).is_some(),
        }
    }
}

/// The two-crash checks: name, settings, the property each breaks, and how long the consumer
/// waits before it starts (ms). The second table runs the first two.
const TWO_CRASHES: [(&str, &[&str], &str, u32); 3] = [
    (
        "unclean election",
        &["unclean.leader.election.enable=true"],
        "LeaderCompleteness",
        0,
    ),
    (
        "KIP-101",
        &["min.insync.replicas=2", "log.truncation=high-watermark"],
        "StrongIsr",
        0,
    ),
    (
        "unclean election, late reader",
        &["unclean.leader.election.enable=true"],
        "at-least-once",
        30_000,
    ),
];

fn paxos() -> Figures {
    measure(
        paxos::PaxosModelCfg {
            client_count: 3,
            server_count: 3,
            network: Network::new_unordered_nonduplicating([]),
        }
        .into_model(),
    )
}

fn kafka() -> Figures {
    let config = Config::parse("kafka", &Kafka::keys(), &[]).expect("defaults parse");
    let workload = Workload {
        messages: 2,
        producers: 1,
        consumers: 1,
        ..Workload::default()
    };
    let bounds = Bounds {
        workload,
        faults: "crash".parse().expect("a fault list"),
        max_crashes: 1,
        max_net_faults: 1,
    };
    // Unreduced: this table compares the checkers' speed per state, every state stored.
    measure(CheckModel::new(&Kafka::build(&config, workload), bounds).unreduced())
}

fn main() {
    // A child run: measure one model and print its figures as one line.
    if let Some(which) = std::env::args().skip_while(|a| a != "--model").nth(1) {
        let f = match which.split_once(':') {
            Some((i, mode)) => {
                let (mode, search) = mode.split_once(':').unwrap_or((mode, "whole"));
                let search = match search {
                    "whole" => Search::Whole,
                    order => Search::UntilViolated {
                        dfs: order == "dfs",
                    },
                };
                two_crashes(i.parse().expect("an index"), mode == "reduced", search)
            }
            None if which == "paxos" => paxos(),
            None => kafka(),
        };
        println!(
            "{} {} {} {} {} {}",
            f.states, f.unique, f.seconds, f.peak_kb, f.followed, f.violated
        );
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let run = |which: &str| -> Figures {
        let out = Command::new(&exe)
            .args(["--model", which])
            .output()
            .expect("child runs");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let v: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(v.len(), 6, "child output: {line}");
        Figures {
            states: v[0].parse().expect("states"),
            unique: v[1].parse().expect("unique"),
            seconds: v[2].parse().expect("seconds"),
            peak_kb: v[3].parse().expect("peak"),
            followed: v[4].parse().expect("followed"),
            violated: v[5].parse().expect("violated"),
        }
    };
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runs = |table: &str| only.as_deref().is_none_or(|only| only == table);
    if runs("paxos") {
        paxos_table(&run);
    }
    if runs("reach") {
        reach_table(&run);
    }
    if runs("reduction") {
        reduction_table(&run);
    }
}

/// The two-crash losses with the default timing, searched until the property each breaks is
/// violated (`--stop-at-violation`), depth first and breadth first, each reduced and unreduced,
/// in the same run.
fn reach_table(run: &dyn Fn(&str) -> Figures) {
    println!();
    println!("two crashes, until violated    search                states     unique   followed    sec  peak MB  verdict");
    for (i, (name, _, property, _)) in TWO_CRASHES.iter().enumerate() {
        for order in ["dfs", "bfs"] {
            for mode in ["reduced", "unreduced"] {
                let f = run(&format!("{i}:{mode}:{order}"));
                println!(
                    "{name:<30} {order} {mode:<14} {:>10} {:>10} {:>10} {:>6.1} {:>8.1}  {property} {}",
                    f.states,
                    f.unique,
                    f.followed,
                    f.seconds,
                    f.peak_kb as f64 / 1024.0,
                    if f.violated {
                        "violated".to_string()
                    } else {
                        format!("not found in {} s", REACH_LIMIT.as_secs())
                    }
                );
            }
        }
    }
}

/// The reduction against the unreduced search on the two-crash checks, in the same run.
fn reduction_table(run: &dyn Fn(&str) -> Figures) {
    println!();
    println!("two crashes, default timing    search        states     unique   followed    sec  peak MB  verdict");
    for (i, (name, _, property, _)) in TWO_CRASHES.iter().take(2).enumerate() {
        let mut seconds = Vec::new();
        for mode in ["reduced", "unreduced"] {
            let f = run(&format!("{i}:{mode}"));
            println!(
                "{name:<30} {mode:<10} {:>10} {:>10} {:>10} {:>6.1} {:>8.1}  {property} {}",
                f.states,
                f.unique,
                f.followed,
                f.seconds,
                f.peak_kb as f64 / 1024.0,
                if f.violated { "violated" } else { "held" }
            );
            seconds.push(f.seconds);
        }
        println!(
            "{name:<30} reduced / unreduced wall time: {:.2}",
            seconds[0] / seconds[1]
        );
    }
}

/// Stateright's Paxos against mqcheck's standard Kafka check.
fn paxos_table(run: &dyn Fn(&str) -> Figures) {
    println!("model                               states     unique    sec   states/s   unique/s  peak MB");
    let mut rates = Vec::new();
    for (name, which) in [
        ("stateright paxos check 3", "paxos"),
        ("mqcheck kafka, crash, 2 msgs", "kafka"),
    ] {
        let f = run(which);
        let rate = f.states as f64 / f.seconds;
        let unique_rate = f.unique as f64 / f.seconds;
        println!(
            "{name:<30} {:>10} {:>10} {:>6.2} {:>10.0} {:>10.0} {:>8.1}",
            f.states,
            f.unique,
            f.seconds,
            rate,
            unique_rate,
            f.peak_kb as f64 / 1024.0
        );
        rates.push((rate, unique_rate));
    }
    println!(
        "kafka / paxos: states/s {:.2}, unique states/s {:.2} (target >= 0.5)",
        rates[1].0 / rates[0].0,
        rates[1].1 / rates[0].1
    );
}
