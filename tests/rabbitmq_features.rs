//! RabbitMQ features of issue 12: the delivery-count rules of 3.13/4.0–4.2 and 4.3 and the
//! delivery limit, publisher `basic.nack`, dead-letter queues that a consumer reads. The quorum
//! queue's state machine is driven command by command; the rest through the `mqcheck` binary as
//! a user runs it.

#[path = "scenarios/common.rs"]
#[allow(dead_code)]
mod common;

use common::{check, held, violated};
use mqcheck_brokers::rabbitmq::{
    Command, DeathReason, DeliveryCountRule, Fifo, RabbitMq, RabbitMsg, Returned, Settings,
};
use mqcheck_brokers::{Config, System, Workload};
use mqcheck_invariants::MsgId;
use serde_json::Value;
use stateright::actor::Id;

const PUBLISHER: usize = 3;
const CONSUMER: usize = 4;

fn settings(sets: &[&str], rule: DeliveryCountRule) -> Settings {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse("rabbitmq", &RabbitMq::keys(), &sets).expect("valid config");
    RabbitMq::validate(&config).expect("accepted");
    let mut s = RabbitMq::build(&config, Workload::new(3, 1, 1)).settings;
    s.delivery_count = rule;
    s
}

fn enqueue(seq: u64) -> Command {
    Command::Enqueue {
        publisher: Id::from(PUBLISHER),
        channel: 1,
        seq,
        msg: MsgId {
            producer: 0,
            seq: seq as u32,
        },
    }
}

fn checkout() -> Command {
    Command::Checkout {
        consumer: Id::from(CONSUMER),
        channel: 1,
        prefetch: 1,
        auto_ack: false,
    }
}

/// The `x-delivery-count` of each delivery among the effects.
fn counts(fx: &[(Id, RabbitMsg)]) -> Vec<u32> {
    fx.iter()
        .filter_map(|(_, m)| match m {
            RabbitMsg::Deliver { delivery_count, .. } => Some(*delivery_count),
            _ => None,
        })
        .collect()
}

/// Message 1 checked out by the consumer (checkout at index 2), then returned `returned` once:
/// the delivery count its redelivery carries, or `None` if it was dropped.
fn count_after(rule: DeliveryCountRule, limit: &str, returned: Returned) -> Option<u32> {
    let s = settings(&["queue.type=quorum", limit], rule);
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    assert_eq!(counts(&f.apply(2, &checkout(), &s)), vec![0]);
    let back = match returned {
        Returned::ConsumerDown => f.apply(
            3,
            &Command::Down {
                consumer: Id::from(CONSUMER),
                checkout: 2,
            },
            &s,
        ),
        _ => f.apply(
            3,
            &Command::Return {
                consumer: Id::from(CONSUMER),
                checkout: 2,
                id: 1,
                returned,
            },
            &s,
        ),
    };
    if returned == Returned::ConsumerDown {
        // The consumer is gone: a new one attaches to receive it.
        return counts(&f.apply(4, &checkout(), &s)).first().copied();
    }
    if !f.messages.contains_key(&1) {
        return None;
    }
    counts(&back).first().copied()
}

#[test]
fn every_return_counts_before_4_3() {
    for returned in [
        Returned::Requeued,
        Returned::Rejected,
        Returned::ConsumerDown,
    ] {
        assert_eq!(
            count_after(DeliveryCountRule::EveryReturn, "delivery-limit=5", returned),
            Some(1),
            "{returned:?}"
        );
    }
}

#[test]
fn from_4_3_basic_nack_requeue_does_not_count_but_reject_and_consumer_down_do() {
    let rule = DeliveryCountRule::FailedDeliveries;
    assert_eq!(
        count_after(rule, "delivery-limit=5", Returned::Requeued),
        Some(0)
    );
    assert_eq!(
        count_after(rule, "delivery-limit=5", Returned::Rejected),
        Some(1)
    );
    assert_eq!(
        count_after(rule, "delivery-limit=5", Returned::ConsumerDown),
        Some(1)
    );
    // With delivery-limit=0 the first counted return drops the message, an uncounted one
    // never; -1 is no limit.
    assert_eq!(
        count_after(rule, "delivery-limit=0", Returned::Rejected),
        None
    );
    assert_eq!(
        count_after(rule, "delivery-limit=0", Returned::Requeued),
        Some(0)
    );
    assert_eq!(
        count_after(rule, "delivery-limit=-1", Returned::Rejected),
        Some(1)
    );
}

/// The default limit is 20 (4.x): returned 20 times a message is still there, the 21st counted
/// return drops it (`count > limit`).
#[test]
fn the_default_delivery_limit_is_20() {
    let s = settings(&["queue.type=quorum"], DeliveryCountRule::FailedDeliveries);
    assert_eq!(s.delivery_limit, Some(20));
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    f.apply(2, &checkout(), &s);
    let reject = Command::Return {
        consumer: Id::from(CONSUMER),
        checkout: 2,
        id: 1,
        returned: Returned::Rejected,
    };
    for n in 1..=20 {
        assert_eq!(counts(&f.apply(2 + n, &reject, &s)), vec![n as u32]);
    }
    assert!(counts(&f.apply(23, &reject, &s)).is_empty());
    assert!(f.messages.is_empty(), "dropped after the 21st return");
}

fn lost_explanation(json: &Value) -> String {
    json["properties"]["at-least-once"]["why"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The bounded check's two messages include a poison message: with `delivery-limit=1` and
/// `basic.reject` its second rejection passes the limit and drops it, without any fault.
#[test]
fn check_finds_the_poison_message_dropped_past_the_delivery_limit() {
    let (code, json) = check(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set delivery-limit=1 --faults none",
    );
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["verdict"], "violated");
    assert!(
        lost_explanation(&json).contains("passed delivery-limit"),
        "{json}"
    );
    // 4.3: basic.nack requeue=true does not count, so the same consumer never hits the limit.
    let (code, json) = check(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set consumer.nack.method=basic.nack --set delivery-limit=1 --faults none",
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["verdict"], "held");
}

/// The quorum `auto_ack` loss within the default state budget: a consumer crash with a delivery
/// in flight.
#[test]
fn check_finds_the_quorum_auto_ack_loss_under_crashes() {
    let (code, json) =
        check("--broker rabbitmq --set queue.type=quorum --set auto_ack=true --faults crash");
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["properties"]["at-least-once"]["verdict"], "violated");
    assert!(json["states"].as_u64().unwrap() < 10_000_000);
}

#[test]
fn sim_basic_nack_requeue_never_reaches_the_limit_from_4_3() {
    held(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set consumer.nack.method=basic.nack --set delivery-limit=1 --faults none --seeds 10",
        &["at-least-once"],
    );
    let v = violated(
        "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set consumer.nack.method=basic.reject --set delivery-limit=1 --faults none --seeds 10",
        "at-least-once",
    );
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("passed delivery-limit"),
        "{v}"
    );
}

/// A full queue with `x-overflow=reject-publish` nacks the publish: without `publisher.retry`
/// the application records the nacked messages failed (fewer delivered, and at-least-once still
/// holds, since none was counted sent); with it, each nacked message is published again until
/// confirmed, so every routed message (27 of 30 per seed, 3 seeds) is delivered.
#[test]
fn publisher_nack_from_reject_publish_is_not_a_confirm() {
    for (queue, pace) in [("classic", 100), ("quorum", 10)] {
        let args = |retry: bool| {
            format!(
                "--broker rabbitmq --set queue.type={queue} --set x-max-length=5 --set x-overflow=reject-publish --set publisher.retry={retry} --faults none --messages 30 --rate {pace} --consumer-delay-ms 4000 --seeds 3"
            )
        };
        let delivered = |json: &Value| json["stats"]["messages_delivered"].as_u64().expect("count");
        let failed = held(&args(false), &["at-least-once", "at-most-once"]);
        assert!(delivered(&failed) < 81, "{queue}: no publish was nacked");
        let retried = held(&args(true), &["at-least-once", "at-most-once"]);
        assert_eq!(
            delivered(&retried),
            81,
            "{queue}: a nacked message was not republished"
        );
    }
}

/// `rabbit_fifo:evaluate_limit/4`: enqueues already committed are accepted past the limit; the
/// enqueuers are blocked once the ready messages exceed `x-max-length` and unblocked only at or
/// below 80% of it.
#[test]
fn quorum_reject_publish_blocks_over_the_limit_and_unblocks_below_the_soft_limit() {
    let s = settings(
        &[
            "queue.type=quorum",
            "x-max-length=5",
            "x-overflow=reject-publish",
        ],
        DeliveryCountRule::FailedDeliveries,
    );
    let mut f = Fifo::default();
    for seq in 1..=5 {
        f.apply(seq, &enqueue(seq), &s);
        assert!(!f.reject_publish, "blocked at {seq} ready messages");
    }
    f.apply(6, &enqueue(6), &s);
    assert!(f.reject_publish && f.ready.len() == 6);
    // The consumer takes messages one by one (prefetch 1): 5 ready is not yet low enough.
    f.apply(7, &checkout(), &s);
    assert!(f.reject_publish, "unblocked at 5 ready messages");
    f.apply(
        8,
        &Command::Settle {
            consumer: Id::from(CONSUMER),
            checkout: 7,
            id: 1,
        },
        &s,
    );
    assert_eq!(f.ready.len(), 4);
    assert!(
        !f.reject_publish,
        "still blocked at 4 ready messages (80% of 5)"
    );
}

#[test]
fn x_max_length_with_drop_head_is_refused() {
    let sets: Vec<String> = ["x-max-length=5"].iter().map(|s| s.to_string()).collect();
    let config = Config::parse("rabbitmq", &RabbitMq::keys(), &sets).expect("valid keys");
    let err = RabbitMq::validate(&config).expect_err("drop-head is not modelled");
    assert!(format!("{err:?}").contains("x-overflow"), "{err:?}");
}

/// The dead letters among the effects: (delivery tag, reason).
fn dead_letters(fx: &[(Id, RabbitMsg)]) -> Vec<(u64, DeathReason)> {
    fx.iter()
        .filter_map(|(_, m)| match m {
            RabbitMsg::DeliverDeadLetter { tag, reason, .. } => Some((*tag, *reason)),
            _ => None,
        })
        .collect()
}

/// `rabbit_fifo_dlx:discard/4`: a consumer going down past `delivery-limit` (a return its
/// handler never saw) dead-letters the message to the dead-letter queue, whose consumer reads
/// it with the reason and settles it; a return of the dead-letter consumer's own attachment puts
/// an unsettled dead letter back; a rejection with `requeue=false` is reason `rejected`. Without
/// a dead-letter exchange the same message is gone and nothing is delivered.
#[test]
fn dead_letters_reach_the_dead_letter_queue_and_its_consumer() {
    let down = |checkout| Command::Down {
        consumer: Id::from(CONSUMER),
        checkout,
    };
    let rule = DeliveryCountRule::FailedDeliveries;
    let s = settings(
        &[
            "queue.type=quorum",
            "delivery-limit=0",
            "dead-letter-exchange=dlx",
        ],
        rule,
    );
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    f.apply(2, &checkout(), &s);
    assert!(dead_letters(&f.apply(3, &down(2), &s)).is_empty());
    assert!(f.messages.is_empty() && f.dead_letters.contains_key(&1));
    // A consumer attaches: it reads the dead letter; its channel goes down before it settles, and
    // the next attachment reads it again, then settles it.
    let fx = f.apply(4, &checkout(), &s);
    assert_eq!(dead_letters(&fx), vec![(1, DeathReason::DeliveryLimit)]);
    f.apply(5, &down(4), &s);
    assert_eq!(
        dead_letters(&f.apply(6, &checkout(), &s)),
        vec![(1, DeathReason::DeliveryLimit)]
    );
    let settle = Command::Settle {
        consumer: Id::from(CONSUMER),
        checkout: 6,
        id: 1,
    };
    f.apply(7, &settle, &s);
    assert!(f.dead_letters.is_empty() && f.dead_ready.is_empty());
    // basic.reject requeue=false: reason `rejected`.
    f.apply(8, &enqueue(2), &s);
    let discard = Command::Discard {
        consumer: Id::from(CONSUMER),
        checkout: 6,
        id: 8,
    };
    assert_eq!(
        dead_letters(&f.apply(9, &discard, &s)),
        vec![(8, DeathReason::Rejected)]
    );

    let s = settings(&["queue.type=quorum", "delivery-limit=0"], rule);
    let mut f = Fifo::default();
    f.apply(1, &enqueue(1), &s);
    f.apply(2, &checkout(), &s);
    f.apply(3, &down(2), &s);
    assert!(dead_letters(&f.apply(4, &checkout(), &s)).is_empty());
    assert!(f.messages.is_empty() && f.dead_letters.is_empty());
}

/// Under consumer crashes a message can pass the delivery limit through its consumer's channel
/// going down, which no handler sees. With a dead-letter exchange the consumer of the dead-letter
/// queue reads it, so every run's loss is named dead-lettered; without one RabbitMQ drops it
/// silently, and the same run (seed 0) reports it lost.
#[test]
fn a_consumer_down_past_the_delivery_limit_is_dead_lettered_not_lost() {
    let args = |dlx: &str| {
        format!(
            "--broker rabbitmq --set queue.type=quorum --set consumer.nack=requeue --set delivery-limit=1 --set dead-letter-exchange={dlx} --faults crash --messages 40 --seeds 1"
        )
    };
    let v = violated(&args("dlx"), "at-least-once");
    assert_eq!(v["kind"], "dead-lettered", "{v}");
    assert!(
        v["explanation"]
            .as_str()
            .unwrap()
            .contains("x-death reason delivery_limit"),
        "{v}"
    );
    let v = violated(&args("none"), "at-least-once");
    assert_eq!(v["kind"], "lost", "{v}");
}
