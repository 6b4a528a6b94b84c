//! The model-to-real round trip through the binary, as a user does it: `mqcheck replay` shrinks a
//! model counterexample and saves its schedule, `mqcheck conform --schedule` plays that schedule on
//! the real RabbitMQ and prints the real history's verdicts beside the model's.
//!
//! Needs a build with the real brokers' clients and Debian's `rabbitmq-server`
//! (`cargo test --release --features real-brokers --test conform`); without the package the run
//! fails saying what to install.

use std::process::{Command, Output};

fn mqcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(args)
        .output()
        .expect("mqcheck runs")
}

/// RabbitMQ with automatic acknowledgements on one node, a consumer slower than the producer
/// (100 ms a message at 50 a second): seed 2 loses messages to one crash of the consumer, which
/// took them off the queue when they were pushed to it. The pace is the file's, so `conform`
/// runs the real broker and the model at the same one.
const MODEL: &[&str] = &[
    "--broker",
    "rabbitmq",
    "--set",
    "auto_ack=true",
    "--set",
    "nodes=1",
    "--faults",
    "crash",
    "--messages",
    "100",
    "--rate",
    "50",
    "--handler-ms",
    "100",
    "--check",
    "at-least-once",
    "--seed",
    "2",
];

#[test]
fn a_shrunk_model_counterexample_replays_on_real_rabbitmq_through_the_binary() {
    let file = std::env::temp_dir().join(format!("mqcheck-conform-{}.json", std::process::id()));
    let path = file.to_str().unwrap();
    let replay = mqcheck(&[&["replay"], MODEL, &["--schedule-out", path]].concat());
    let story = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "the model loses: {story}");
    assert!(
        story.contains("to 1 faults") && story.contains("crash c0 → c0 down"),
        "one consumer crash is all the loss needs: {story}"
    );

    let real = mqcheck(&["conform", "--broker", "rabbitmq", "--schedule", path]);
    let (out, err) = (
        String::from_utf8_lossy(&real.stdout),
        String::from_utf8_lossy(&real.stderr),
    );
    println!("{out}{err}");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.starts_with("conform rabbitmq · replay of a model schedule"),
        "no report (without Debian's rabbitmq-server, the error says to install it): {err}"
    );
    assert!(out.contains("auto_ack=true nodes=1"), "{out}");
    // The schedule's one fault was done to the real consumer, at the model's time.
    let crash = out
        .lines()
        .find(|l| l.contains("c0: crash: connection dropped with what it held"))
        .unwrap_or_else(|| panic!("the consumer is crashed for real: {out}"));
    assert!(crash.contains("at   6286 ms"), "{crash}");
    assert!(out.contains("c0: restart"), "{out}");
    // The row of the checked guarantee: the real verdict, then the model's sweep and this schedule
    // in the model, which loses as the replay said.
    let row = out
        .lines()
        .find(|l| l.starts_with("at-least-once "))
        .unwrap_or_else(|| panic!("an at-least-once row: {out}"));
    assert!(row.ends_with("· violated in 5/5 (lost)"), "{row}");
    assert!(
        !out.contains("inconclusive"),
        "the real run tested something: {out}"
    );
    // The real broker loses the messages it had pushed to the crashed consumer too (about 37 of
    // the 100: those sent and not yet handled), a kind the model produces: exit status 1.
    assert!(
        row.split_whitespace()
            .skip(1)
            .take(2)
            .eq(["VIOLATED:", "lost"]),
        "{row}"
    );
    assert!(
        out.contains(
            "soundness: every kind of violation the real broker showed is one the model produces"
        ),
        "{out}"
    );
    assert_eq!(real.status.code(), Some(1), "{out}{err}");
}
