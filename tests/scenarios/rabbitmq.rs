//! RabbitMQ fault scenarios: each documented anomaly is found, each documented guarantee holds,
//! through the same code path as the CLI (`mqcheck sim … --json`, `mqcheck replay`).

use crate::common::{assert_deterministic, held, mqcheck, reproduce, violated};
use std::collections::BTreeMap;

/// The deliveries a replay's timeline shows, per message: whether each was flagged redelivered.
fn deliveries(replay_stdout: &str) -> BTreeMap<String, Vec<bool>> {
    let mut out: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for line in replay_stdout.lines() {
        if let Some(rest) = line.split("app: deliver ").nth(1) {
            let msg = rest.split_whitespace().next().unwrap().to_string();
            out.entry(msg)
                .or_default()
                .push(rest.contains("(redelivered)"));
        }
    }
    out
}

#[test]
fn auto_ack_loses_what_a_crashed_consumer_had_not_handled() {
    let v = violated(
        "--broker rabbitmq --set queue.type=quorum --set auto_ack=true --faults crash --seeds 300",
        "at-least-once",
    );
    assert_eq!(v["kind"], "lost");
    reproduce(&v);
    // The same faults with manual acknowledgements lose nothing.
    held(
        "--broker rabbitmq --set queue.type=quorum --set auto_ack=false --faults crash --seeds 300",
        &["at-least-once"],
    );
}

#[test]
fn manual_ack_redelivers_after_a_crash_flagged_redelivered() {
    let args =
        "--broker rabbitmq --set queue.type=quorum --set auto_ack=false --faults crash --seeds 300";
    let v = violated(args, "at-most-once");
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("flagged redelivered"),
        "{v}"
    );
    let r = reproduce(&v);
    let ds = deliveries(&r.stdout);
    let repeated: Vec<_> = ds.iter().filter(|(_, d)| d.len() > 1).collect();
    assert!(!repeated.is_empty(), "the replay shows a redelivery");
    for (msg, flags) in ds {
        // redelivered=false only on a message's first delivery; every later one is flagged.
        assert!(flags[1..].iter().all(|f| *f), "{msg}: {flags:?}");
    }
}

/// `redelivered=false` means never delivered before: over the timelines of a few seeds of each
/// queue type under crashes and partitions, a message's later deliveries are all flagged.
#[test]
fn redelivered_false_only_on_a_first_delivery() {
    let mut repeated = 0;
    for queue in ["classic", "mirrored", "quorum"] {
        for seed in 0..30 {
            let seed = seed.to_string();
            let set = format!("queue.type={queue}");
            // Mirroring is 3.x: 4.0 removed it.
            let version = if queue == "mirrored" { "3.13" } else { "4.3" };
            let version = format!("version={version}");
            let args = [
                "replay",
                "--full",
                "--broker",
                "rabbitmq",
                "--set",
                &set,
                "--set",
                &version,
                "--faults",
                "crash,partition",
                "--messages",
                "40",
                "--check",
                "at-least-once",
                "--seed",
                &seed,
            ];
            let r = mqcheck(&args);
            for (msg, flags) in deliveries(&r.stdout) {
                assert!(
                    flags[1..].iter().all(|f| *f),
                    "{queue} seed {seed}: {msg} delivered again unflagged: {flags:?}"
                );
                repeated += usize::from(flags.len() > 1);
            }
        }
    }
    assert!(repeated > 0, "some message was delivered more than once");
}

/// Seeds (of 0..30) whose timeline shows a message stored twice: two deliveries of it, neither
/// flagged redelivered.
fn stored_twice(retry: &str) -> usize {
    (0..30)
        .filter(|seed| {
            let seed = seed.to_string();
            let args = [
                "replay",
                "--full",
                "--broker",
                "rabbitmq",
                "--set",
                "queue.type=quorum",
                "--set",
                retry,
                "--faults",
                "loss",
                "--check",
                "at-least-once",
                "--seed",
                &seed,
            ];
            deliveries(&mqcheck(&args).stdout)
                .into_values()
                .any(|flags| flags.iter().filter(|f| !**f).count() >= 2)
        })
        .count()
}

#[test]
fn a_lost_confirm_with_publisher_retry_stores_a_message_twice() {
    violated(
        "--broker rabbitmq --set queue.type=quorum --set publisher.confirms=true --set publisher.retry=true --faults loss --seeds 300",
        "at-most-once",
    );
    assert!(
        stored_twice("publisher.retry=true") > 0,
        "republished copies"
    );
    // Without retry the duplicates are redeliveries only: the queue never holds a message twice.
    assert_eq!(stored_twice("publisher.retry=false"), 0);
}

#[test]
fn quorum_queue_with_confirms_and_manual_acks_keeps_every_confirmed_message() {
    let json = held(
        "--broker rabbitmq --set queue.type=quorum --set publisher.confirms=true --set publisher.retry=true \
         --set auto_ack=false --set delivery_mode=2 --faults crash,partition,loss,pause --seeds 500",
        &["at-least-once"],
    );
    assert_eq!(json["stats"]["runs"], 500);
    // Nine messages in ten are routable; runs that deliver nothing would hold vacuously.
    assert!(json["stats"]["messages_delivered"].as_u64().unwrap() >= 500 * 90);
}

/// Jepsen's 2014 analysis: five nodes, a mirrored queue on all of them, `pause_minority`,
/// random partitions: confirmed messages lost (before 3.3.5's `pause_minority_guard`, and
/// still, more rarely, after: see `rabbitmq_mnesia.rs`). With `ignore` too, whose two sides keep
/// a leader each after the heal.
#[test]
fn mirrored_queue_under_jepsens_partitions() {
    let base = "--broker rabbitmq --set version=3.13 --set queue.type=mirrored --set nodes=5 --set ha-mode=all \
                --set ha-sync-mode=automatic --set net_ticktime=15 --faults partition --seeds 200";
    let v = violated(
        &format!("{base} --set cluster_partition_handling=ignore"),
        "at-least-once",
    );
    let r = reproduce(&v);
    // Split brain: a promoted mirror on the other side serves the consumer, while the publisher's
    // confirmed messages sit with the first leader, n1.
    let served_elsewhere = r
        .stdout
        .lines()
        .any(|l| l.contains(" c0 ") && l.contains("connection.open-ok") && !l.contains("<- n1:"));
    assert!(served_elsewhere, "{}", r.stdout);
}

#[test]
fn transient_messages_die_with_their_node_and_persistent_ones_do_not() {
    violated(
        "--broker rabbitmq --set delivery_mode=1 --faults crash --seeds 200",
        "at-least-once",
    );
    held(
        "--broker rabbitmq --set delivery_mode=2 --faults crash,power --seeds 200",
        &["at-least-once"],
    );
}

#[test]
fn delivery_limit_drops_a_poison_message() {
    let v = violated(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set delivery-limit=1 --faults none --seeds 3 --messages 20",
        "at-least-once",
    );
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("delivery-limit"),
        "{v}"
    );
    assert_eq!(v["kind"], "dead-lettered", "{v}");
    // Without a limit the message comes back until the application handles it.
    held(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set delivery-limit=-1 --faults none --seeds 3 --messages 20",
        &["at-least-once"],
    );
}

#[test]
fn competing_consumers_reorder_only_outside_the_promise() {
    // RabbitMQ promises publish order to one consumer's channel ("Queues", Message Ordering):
    // three consumers share the queue and each hands its share over in order.
    held(
        "--broker rabbitmq --set queue.type=quorum --consumers 3 --faults none --seeds 20",
        &["ordering"],
    );
    // Inside the promise a reordering is still found: a network that reorders lifts TCP's FIFO
    // under one channel.
    let v = violated(
        "--broker rabbitmq --set queue.type=quorum --faults reorder --seeds 20",
        "ordering",
    );
    assert_eq!(v["kind"], "reordered");
    held(
        "--broker rabbitmq --set queue.type=quorum --consumers 1 --faults none --seeds 20",
        &["ordering", "at-least-once", "at-most-once"],
    );
}

#[test]
fn mandatory_returns_unroutable_messages() {
    let args = [
        "replay",
        "--full",
        "--broker",
        "rabbitmq",
        "--set",
        "exchange.type=topic",
        "--set",
        "mandatory=true",
        "--faults",
        "none",
        "--messages",
        "20",
        "--seed",
        "1",
    ];
    let r = mqcheck(&args);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // Message 9's routing key matches no binding: returned, never delivered.
    assert!(r.stdout.contains("basic.return NO_ROUTE"), "{}", r.stdout);
    assert!(r.stdout.contains("app: fail p0:9: basic.return"));
    assert!(!r.stdout.contains("app: deliver p0:9 "));
    // An alternate exchange bound to the queue takes it instead.
    let ae = [
        "replay",
        "--full",
        "--broker",
        "rabbitmq",
        "--set",
        "exchange.type=topic",
        "--set",
        "alternate-exchange=ae",
        "--faults",
        "none",
        "--messages",
        "20",
        "--seed",
        "1",
    ];
    let r = mqcheck(&ae);
    assert!(r.stdout.contains("app: deliver p0:9 "), "{}", r.stdout);
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    assert_deterministic("--broker rabbitmq --set version=3.13 --set queue.type=mirrored");
}

#[test]
fn bad_input_names_the_key_and_exits_2() {
    for (args, word) in [
        (
            "sim --broker rabbitmq --set queue.type=quorum --set ha-params=2",
            "ha-params",
        ),
        (
            "sim --broker rabbitmq --set queue.type=classic --set ha-sync-mode=automatic",
            "ha-sync-mode",
        ),
        (
            "sim --broker rabbitmq --set version=3.13 --set queue.type=mirrored --set ha-mode=all --set ha-params=2",
            "ha-params",
        ),
        (
            "sim --broker rabbitmq --set queue.type=quorum --set durable=false",
            "durable",
        ),
        (
            "sim --broker rabbitmq --set queue.type=classic --set delivery-limit=3",
            "delivery-limit",
        ),
        (
            "sim --broker rabbitmq --set publisher.confirms=false --set publisher.retry=true",
            "publisher.retry",
        ),
        (
            "sim --broker rabbitmq --set auto_ack=true --set consumer.nack=requeue",
            "consumer.nack",
        ),
        (
            "sim --broker rabbitmq --set queue.type=stream",
            "queue.type",
        ),
        (
            "sim --broker rabbitmq --set delivery_mode=3",
            "delivery_mode",
        ),
    ] {
        let words: Vec<&str> = args.split_whitespace().collect();
        let out = mqcheck(&words);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, 2, "{args}: {text}");
        assert!(!text.contains("panicked"), "{args}: {text}");
        assert!(text.contains(word), "{args} should name {word}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    }
}

#[test]
fn crashed_publishers_republish_their_outbox_and_quorum_queues_lose_nothing() {
    held(
        "--broker rabbitmq --set queue.type=quorum --producer-crashes --faults crash --seeds 200",
        &["at-least-once", "ordering"],
    );
}
