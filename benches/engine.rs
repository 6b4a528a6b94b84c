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

/// A documented Kafka anomaly: the configuration, workload and faults that show it.
struct Anomaly {
    name: &'static str,
    sets: &'static [&'static str],
    faults: &'static str,
    invariant: Invariant,
    workload: Workload,
}

/// Seeds run in order until the anomaly's invariant is violated: (first violating seed, wall
/// time).
fn first_counterexample(a: &Anomaly) -> (u64, Duration) {
    let sets: Vec<String> = a.sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse("kafka", &Kafka::keys(), &sets).unwrap();
    let kafka = Kafka::build(&config, a.workload);
    let faults: FaultSet = a.faults.parse().unwrap();
    let started = Instant::now();
    for seed in 0.. {
        let r = run(&kafka, seed, &schedule_for(&kafka, seed, &faults), false);
        if !check(a.invariant, &r.history, &Kafka::ordering()).is_empty() {
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

/// Every anomaly of `anomalies.md`'s Kafka section the simulator judges (log divergence is a
/// `LogMatching` property of `mqcheck check` only), and those issue 11 added.
const ANOMALIES: [Anomaly; 12] = [
    Anomaly {
        name: "acks=1, leader crash",
        sets: &["acks=1", "enable.idempotence=false"],
        faults: "crash",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "acks=0, crash",
        sets: &["acks=0", "enable.idempotence=false"],
        faults: "crash",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "unclean leader election",
        sets: &[
            "unclean.leader.election.enable=true",
            "min.insync.replicas=2",
        ],
        faults: "crash,partition",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "high-watermark truncation",
        sets: &["log.truncation=high-watermark", "min.insync.replicas=2"],
        faults: "crash,pause",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "retries reorder (no idempotence)",
        sets: &["enable.idempotence=false", "retries=5"],
        faults: "crash,pause,partition",
        invariant: Invariant::Ordering,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "retries duplicate (no idempotence)",
        sets: &["enable.idempotence=false", "retries=5"],
        faults: "crash,pause,partition",
        invariant: Invariant::AtMostOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "commit before processing loses",
        sets: &["consumer.commit=before-processing", "min.insync.replicas=2"],
        faults: "crash",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "process before commit re-processes",
        sets: &["min.insync.replicas=2"],
        faults: "crash",
        invariant: Invariant::AtMostOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "page cache lost on power failure",
        sets: &["min.insync.replicas=2"],
        faults: "power",
        invariant: Invariant::AtLeastOnce,
        workload: WORKLOAD,
    },
    Anomaly {
        name: "a new group at latest skips records",
        sets: &["auto.offset.reset=latest"],
        faults: "none",
        invariant: Invariant::AtLeastOnce,
        workload: Workload {
            messages: 30,
            consumer_delay_ms: 3000,
            ..WORKLOAD
        },
    },
    Anomaly {
        name: "duplicates across producer sessions",
        sets: &["min.insync.replicas=2"],
        faults: "crash",
        invariant: Invariant::AtMostOnce,
        workload: Workload {
            producer_crashes: true,
            ..WORKLOAD
        },
    },
    Anomaly {
        name: "aborted read before KIP-890 (3.9)",
        sets: &[
            "version=3.9",
            "transaction.partition.verification.enable=false",
            "transactional.id=producer",
            "delivery.timeout.ms=3000",
            "request.timeout.ms=1000",
            "isolation.level=read_committed",
        ],
        faults: "partition,crash,pause,loss",
        invariant: Invariant::Atomicity,
        workload: Workload {
            messages: 40,
            ..WORKLOAD
        },
    },
];

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
    for a in &ANOMALIES {
        let (seed, took) = first_counterexample(a);
        println!(
            "  {:<38} {:<14} seed {seed:>4}  {:>7.3} s",
            a.name,
            a.invariant,
            took.as_secs_f64()
        );
    }
}
