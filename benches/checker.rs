//! The model checker's speed against stateright's own reference, in one run.
//!
//! `cargo bench --bench checker` checks, with BFS on every core, stateright's Single Decree Paxos
//! example exactly as its `paxos check 3` does (3 clients, 3 servers, unordered network), then
//! mqcheck's standard Kafka check (`mqcheck check --broker kafka --faults crash`: the default
//! configuration, 2 messages, 1 crash). Each runs in a child process so its peak memory is its
//! own. It prints states/s and unique states/s for both and the ratio; the target is a Kafka
//! per-state rate at least half of Paxos'.

#[path = "reference/paxos.rs"]
mod paxos;

use mqcheck_brokers::kafka::Kafka;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_models::{Bounds, CheckModel};
use stateright::actor::Network;
use stateright::{Checker, Model};
use std::process::Command;
use std::time::Instant;

struct Figures {
    states: usize,
    unique: usize,
    seconds: f64,
    peak_kb: u64,
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
    }
}

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
    measure(CheckModel::new(&Kafka::build(&config, workload), bounds))
}

fn main() {
    // A child run: measure one model and print its figures as one line.
    if let Some(which) = std::env::args().skip_while(|a| a != "--model").nth(1) {
        let f = if which == "paxos" { paxos() } else { kafka() };
        println!("{} {} {} {}", f.states, f.unique, f.seconds, f.peak_kb);
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
        assert_eq!(v.len(), 4, "child output: {line}");
        Figures {
            states: v[0].parse().expect("states"),
            unique: v[1].parse().expect("unique"),
            seconds: v[2].parse().expect("seconds"),
            peak_kb: v[3].parse().expect("peak"),
        }
    };
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
