//! Throughput of the simulator against the bare engine it runs on.
//!
//! Prints, for the standard Kafka scenario (3 brokers, 1 producer, 1 consumer, 100 messages, all
//! faults TCP allows): runs per second, actor messages moved per second of wall time, application deliveries
//! per second, and simulated time per wall time; then, in the same run, the message rate of a bare
//! madsim ping-pong between two nodes — the ceiling any harness on madsim can reach.
//!
//! Last, for each Kafka anomaly of the foundation issue, the wall time until the first seed that
//! shows it (seeds run in order on one thread, as `mqcheck sim` would meet them).
//!
//! `cargo bench --bench engine`

use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use mqcheck_brokers::kafka::Kafka;
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::{check, Invariant};
use mqcheck_sim::{run, schedule_for, FaultSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ROUND_TRIPS: u64 = 200_000;

fn ping_pong() -> (u64, Duration) {
    let runtime = Runtime::with_seed_and_config(1, madsim::Config::default());
    let started = Instant::now();
    runtime.block_on(async {
        let handle = Handle::current();
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let ponger = handle.create_node().ip(b.ip()).build();
        let pinger = handle.create_node().ip(a.ip()).build();
        ponger.spawn(async move {
            let ep = Endpoint::bind(b).await.unwrap();
            loop {
                let (msg, from) = ep.recv_from_raw(0).await.unwrap();
                ep.send_to_raw(from, 0, msg).await.unwrap();
            }
        });
        pinger
            .spawn(async move {
                let ep = Endpoint::bind(a).await.unwrap();
                madsim::time::sleep(Duration::from_millis(1)).await;
                for i in 0..ROUND_TRIPS {
                    ep.send_to_raw(b, 0, Box::new(i)).await.unwrap();
                    ep.recv_from_raw(0).await.unwrap();
                }
            })
            .await
            .unwrap();
    });
    (ROUND_TRIPS * 2, started.elapsed())
}

/// Seeds run in order until `invariant` is violated: (first violating seed, wall time).
fn first_counterexample(sets: &[&str], faults: &str, invariant: Invariant) -> (u64, Duration) {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse("kafka", &Kafka::keys(), &sets).unwrap();
    let kafka = Kafka::build(&config, WORKLOAD);
    let faults: FaultSet = faults.parse().unwrap();
    let started = Instant::now();
    for seed in 0.. {
        let r = run(&kafka, seed, &schedule_for(&kafka, seed, &faults), false);
        if !check(invariant, &r.history, &Kafka::ordering()).is_empty() {
            return (seed, started.elapsed());
        }
    }
    unreachable!("seeds are unbounded")
}

const WORKLOAD: Workload = Workload {
    messages: 100,
    producers: 1,
    consumers: 1,
    rate: None,
    handler_ms: None,
    consumer_delay_ms: 0,
    keys: None,
    producer_crashes: false,
    rewind: None,
};

fn main() {
    let seeds = 200;
    let config = Config::parse("kafka", &Kafka::keys(), &[]).unwrap();
    let kafka = Kafka::build(
        &config,
        Workload {
            messages: 100,
            producers: 1,
            consumers: 1,
            ..Workload::default()
        },
    );
    let faults = FaultSet::tcp();
    let started = Instant::now();
    let (mut moved, mut delivered, mut simulated) = (0u64, 0u64, 0u64);
    for seed in 0..seeds {
        let schedule = schedule_for(&kafka, seed, &faults);
        let r = run(&kafka, seed, &schedule, false);
        moved += r.delivered;
        delivered += r.history.deliveries() as u64;
        simulated += r.simulated_ms;
    }
    let wall = started.elapsed().as_secs_f64();
    let harness_rate = moved as f64 / wall;
    println!("standard Kafka scenario, {seeds} seeds on one thread, every fault TCP allows:");
    println!(
        "  runs/s                         {:>12.1}",
        seeds as f64 / wall
    );
    println!("  actor messages moved/s         {harness_rate:>12.0}");
    println!(
        "  deliveries to the app/s        {:>12.0}",
        delivered as f64 / wall
    );
    println!(
        "  simulated time / wall time     {:>12.0}x",
        simulated as f64 / 1000.0 / wall
    );
    let (messages, elapsed) = ping_pong();
    let engine_rate = messages as f64 / elapsed.as_secs_f64();
    println!("bare madsim ping-pong, two nodes, {ROUND_TRIPS} round trips:");
    println!("  messages/s                     {engine_rate:>12.0}");
    println!(
        "harness / engine message rate   {:>12.2} (target: at least 0.5)",
        harness_rate / engine_rate
    );
    println!("time to the first counterexample (target: under 1 s each):");
    let anomalies: [(&str, &[&str], &str, Invariant); 7] = [
        (
            "acks=1, leader crash",
            &["acks=1", "enable.idempotence=false"],
            "crash",
            Invariant::AtLeastOnce,
        ),
        (
            "acks=0, packet loss",
            &["acks=0", "enable.idempotence=false"],
            "loss",
            Invariant::AtLeastOnce,
        ),
        (
            "unclean leader election",
            &[
                "unclean.leader.election.enable=true",
                "min.insync.replicas=2",
            ],
            "crash,partition",
            Invariant::AtLeastOnce,
        ),
        (
            "high-watermark truncation",
            &["log.truncation=high-watermark", "min.insync.replicas=2"],
            "crash,pause",
            Invariant::AtLeastOnce,
        ),
        (
            "retries reorder (no idempotence)",
            &["enable.idempotence=false", "retries=5"],
            "crash,pause,partition",
            Invariant::Ordering,
        ),
        (
            "retries duplicate (no idempotence)",
            &["enable.idempotence=false", "retries=5"],
            "crash,pause,partition",
            Invariant::AtMostOnce,
        ),
        (
            "commit before processing",
            &["consumer.commit=before-processing", "min.insync.replicas=2"],
            "crash",
            Invariant::AtLeastOnce,
        ),
    ];
    for (name, sets, faults, invariant) in anomalies {
        let (seed, took) = first_counterexample(sets, faults, invariant);
        println!(
            "  {name:<36} {invariant:<14} seed {seed:>4}  {:>7.3} s",
            took.as_secs_f64()
        );
    }
}
