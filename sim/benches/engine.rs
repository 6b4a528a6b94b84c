//! Throughput of the simulator against the bare engine it runs on.
//!
//! Prints, for the standard Kafka scenario (3 brokers, 1 producer, 1 consumer, 100 messages, all
//! faults): runs per second, actor messages moved per second of wall time, application deliveries
//! per second, and simulated time per wall time; then, in the same run, the message rate of a bare
//! madsim ping-pong between two nodes — the ceiling any harness on madsim can reach.
//!
//! `cargo bench -p mqcheck-sim --bench engine`

use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use mqcheck_brokers::kafka::Kafka;
use mqcheck_brokers::{Config, System, Workload};
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

fn main() {
    let seeds = 200;
    let config = Config::parse("kafka", &Kafka::keys(), &[]).unwrap();
    let kafka = Kafka::build(
        &config,
        Workload {
            messages: 100,
            producers: 1,
            consumers: 1,
        },
    );
    let faults = FaultSet::all();
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
    println!("standard Kafka scenario, {seeds} seeds on one thread, all faults:");
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
}
