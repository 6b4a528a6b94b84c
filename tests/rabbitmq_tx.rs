//! RabbitMQ's AMQP transactions (`publisher.tx=true`) through the `mqcheck` binary: what the
//! atomicity checker finds where RabbitMQ really tears a commit (a queue refusing part of it; a
//! quorum leader cut off after one of its enqueues reached a majority), what publishing again
//! makes of it (atomic in the end, duplicated), and that neither a rollback nor a closed channel
//! ever lets a held publish through.

#[path = "scenarios/common.rs"]
#[allow(dead_code)]
mod common;

use common::{bad_input, held, violated};

const TX: &str = "--broker rabbitmq --set publisher.tx=true";

/// A classic queue at `x-max-length=5` with `reject-publish` while the consumer starts late: the
/// queue takes the first message of the second commit and refuses the rest, and the channel
/// fails the commit ("partial tx completion") with that one enqueued. Without `publisher.retry`
/// the application gives the transaction up: torn. With it, it publishes the transaction again
/// until the queue has room: every message arrives, the one taken twice.
#[test]
fn a_commit_the_queue_refuses_in_part_is_torn_and_publishing_again_duplicates_it() {
    let args = |retry: bool| {
        format!(
            "{TX} --set queue.type=classic --set x-max-length=5 --set x-overflow=reject-publish --set publisher.retry={retry} --faults none --messages 30 --rate 100 --consumer-delay-ms 4000 --seeds 3"
        )
    };
    let v = violated(&args(false), "atomicity");
    assert_eq!(v["kind"], "torn", "{v}");
    let why = v["explanation"].as_str().expect("explained");
    assert!(why.contains("in doubt"), "{why}");
    held(&args(false), &["at-least-once", "at-most-once"]);
    held(&args(true), &["atomicity", "at-least-once"]);
    violated(&args(true), "at-most-once");
}

/// A quorum queue's commit is one Raft entry per publish. Seed 264: the leader n3 appends the
/// four enqueues of transaction 6 and is cut off once only the first has reached n2; n1 and n2
/// elect n1, which commits that one and overwrites the rest on n3. The channel on n3 never
/// answers the commit: in doubt, with one of four delivered — found, and with `publisher.retry`
/// repaired at the price of a duplicate.
#[test]
fn a_quorum_leader_cut_off_mid_commit_tears_the_transaction() {
    let args = |retry: bool| {
        format!(
            "{TX} --set queue.type=quorum --set publisher.retry={retry} --faults partition --seed 264 --seeds 1"
        )
    };
    let v = violated(&args(false), "atomicity");
    assert_eq!(v["kind"], "torn", "{v}");
    let why = v["explanation"].as_str().expect("explained");
    assert!(
        why.contains("transaction 6") && why.contains("in doubt") && why.contains("never p0:25"),
        "{why}"
    );
    held(&args(true), &["atomicity", "at-least-once"]);
    violated(&args(true), "at-most-once");
}

/// Rolled-back transactions (every third) and those whose channel closed before `tx.commit` are
/// never delivered (no aborted read), and every committed message arrives, under crashes and
/// partitions, on a classic and a quorum queue.
#[test]
fn rolled_back_and_discarded_publishes_are_never_delivered() {
    for queue in ["classic", "quorum"] {
        let json = held(
            &format!("{TX} --set queue.type={queue} --faults crash,partition --seeds 40"),
            &["atomicity", "at-least-once"],
        );
        assert_eq!(json["invariants"]["atomicity"]["tested"], true, "{queue}");
        let sends = json["coverage"]["sends"].as_u64().unwrap_or(0);
        let acked = json["coverage"]["acknowledged"].as_u64().unwrap_or(0);
        assert!(
            acked > 0 && acked < sends,
            "{queue}: some transactions committed, some rolled back: {json}"
        );
    }
}

#[test]
fn tx_and_confirm_mode_on_one_channel_are_bad_input() {
    bad_input(
        &[
            "sim",
            "--broker",
            "rabbitmq",
            "--set",
            "publisher.tx=true",
            "--set",
            "publisher.confirms=true",
        ],
        "publisher.confirms",
    );
    bad_input(
        &["sim", "--broker", "rabbitmq", "--set", "publisher.tx=maybe"],
        "publisher.tx",
    );
}
