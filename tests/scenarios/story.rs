//! `mqcheck replay`'s story, its filters, the fault schedule as it happened, and the schedule
//! file: saved by `replay --schedule-out`, run again by `sim --schedule` and `replay --schedule`.

use crate::common::mqcheck;
use crate::drawing::{labels, render};
use serde_json::Value;

/// Kafka with `acks=1`: seed 91 loses `p0:32` to a crash of the followers, then of the leader.
const KAFKA_91: &[&str] = &[
    "replay",
    "--broker",
    "kafka",
    "--set",
    "acks=1",
    "--set",
    "enable.idempotence=false",
    "--faults",
    "crash",
    "--check",
    "at-least-once",
    "--seed",
    "91",
];

fn replay(extra: &[&str]) -> String {
    let out = mqcheck(&[KAFKA_91, extra].concat());
    assert_eq!(out.code, 1, "the replay reproduces: {}", out.stderr);
    out.stdout
}

/// The timeline's lines: from the `timeline:` header to the blank line after it.
fn timeline(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("timeline:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_story_is_short_and_tells_the_message_the_faults_and_the_verdict() {
    let out = replay(&[]);
    let story = timeline(&out);
    assert!(
        story.len() < 80,
        "a story of a few dozen lines, not {}:\n{out}",
        story.len()
    );
    for step in [
        "p0       app: send p0:32",
        "n1       <- p0: Produce p0 p0:32",
        "p0       app: ack p0:32",
        "nemesis  crash: n2, n3 down",
        "nemesis  crash: n1 down",
        // The new leader without the record, and a follower truncating to it.
        "<- ctl: PartitionChange p0 leader=n3 epoch=4 isr=[n3]",
        "<- n3: OffsetsForLeaderEpochResponse p0 epoch=1 end=32",
    ] {
        assert!(
            story.iter().any(|l| l.contains(step)),
            "the story shows {step}:\n{out}"
        );
    }
    // What is left out is folded, with counts, and the drain's chatter is one line.
    assert!(story
        .iter()
        .any(|l| l.contains("steps until") && l.contains("Fetch ×")));
    assert_eq!(story.iter().filter(|l| l.contains("idle steps")).count(), 1);
    // The schedule as it happened: a crash that found every server down says so.
    assert!(out.contains("crash a majority of the servers → n2, n3 down until 9.738s"));
    assert!(out.contains("crash the leader → no effect: every server already down"));
    // The checker's explanations come last: the first twenty, then how many more.
    let violations = out.find("violation(s):").unwrap();
    assert!(violations > out.find("timeline:").unwrap());
    let explained: Vec<&str> = out[violations..]
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        explained[0].contains("p0:32 was acknowledged to its producer"),
        "{}",
        explained[0]
    );
    let (last, listed) = explained.split_last().unwrap();
    assert!(
        listed
            .iter()
            .all(|l| l.contains("was acknowledged to its producer")),
        "{out}"
    );
    assert_eq!(*last, "  … and 48 more", "{out}");
    // The whole timeline is far longer, with the same steps.
    let full = replay(&["--full"]);
    let every = timeline(&full);
    assert!(every.len() > 10 * story.len(), "{}", every.len());
    assert!(every.iter().any(|l| l.contains("p0       app: ack p0:32")));
    assert_eq!(every.iter().filter(|l| l.contains("idle steps")).count(), 1);
}

#[test]
fn replay_filters_by_node_and_time() {
    let out = replay(&["--full", "--node", "c0"]);
    let lines = timeline(&out);
    assert!(lines.len() > 20, "{out}");
    for line in &lines {
        let (node, text) = (&line[11..20], &line[20..]);
        assert!(
            node.trim() == "c0"
                || node.trim() == "…"
                || text.starts_with("<- c0:")
                || (node.trim() == "nemesis" && text.contains("c0")),
            "{line}"
        );
    }
    let out = replay(&["--full", "--from", "16s", "--to", "16200ms"]);
    let lines = timeline(&out);
    assert!(lines.len() > 5, "{out}");
    for line in &lines {
        let secs: f64 = line
            .trim_start()
            .split('s')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((16.0..=16.2).contains(&secs), "{line}");
    }
    // The story's filters keep its own steps.
    let story = replay(&["--node", "p0"]);
    let steps = timeline(&story);
    assert!(
        steps.iter().any(|l| l.contains("app: ack p0:32")),
        "{story}"
    );
    assert!(steps.iter().all(|l| !l.contains("PartitionChange")));
    for (flag, value, names) in [
        ("--node", "n9", "n9"),
        ("--from", "soon", "--from"),
        ("--to", "9.5.1s", "--to"),
    ] {
        let out = mqcheck(&[KAFKA_91, &[flag, value]].concat());
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert!(out.stderr.contains(names), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    let out = mqcheck(&[KAFKA_91, &["--from", "5s", "--to", "4s"]].concat());
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--from"), "{}", out.stderr);
}

/// A violating seed of each broker, small enough to replay in well under a second.
const VIOLATIONS: &[&str] = &[
    "--broker kafka --set acks=1 --set enable.idempotence=false --faults crash --check at-least-once --seed 91",
    "--broker rabbitmq --set queue.type=quorum --set auto_ack=true --faults crash --check at-least-once --seed 0",
    "--broker zeromq --set pattern=pub-sub --set syncpub=true --set ZMQ_SNDHWM=5 --set message.bytes=65536 --faults pause --messages 200 --check at-least-once --seed 0",
    "--broker rocketmq --set flushDiskType=ASYNC_FLUSH --faults power --check at-least-once --seed 2",
    "--broker activemq --set deliveryMode=NON_PERSISTENT --faults crash --check at-least-once --seed 0",
];

#[test]
fn a_saved_schedule_reproduces_its_violation_for_each_broker() {
    let dir = std::env::temp_dir().join(format!("mqcheck-story-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for args in VIOLATIONS {
        let broker = args.split_whitespace().nth(1).unwrap();
        let path = dir.join(format!("{broker}.json"));
        let file = path.to_str().unwrap();
        let mut words = vec!["replay"];
        words.extend(args.split_whitespace());
        words.extend(["--schedule-out", file]);
        let out = mqcheck(&words);
        assert_eq!(out.code, 1, "{broker}: {}{}", out.stdout, out.stderr);
        let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(saved["broker"], broker);
        assert_eq!(saved["shrunk"], true);
        assert_eq!(saved["check"], "at-least-once");
        assert_eq!(saved["violation"]["invariant"], "at-least-once");
        assert!(saved["schedule"]["faults"].as_array().is_some());
        assert_eq!(
            saved["command"].as_str().unwrap(),
            format!("mqcheck sim --schedule {file}")
        );
        // `sim --schedule` runs exactly that schedule: its one seed, violated.
        let sim = mqcheck(&["sim", "--schedule", file, "--json"]);
        assert_eq!(sim.code, 1, "{broker}: {}{}", sim.stdout, sim.stderr);
        let report: Value = serde_json::from_str(&sim.stdout).unwrap();
        let entry = &report["invariants"]["at-least-once"];
        assert_eq!(entry["held"], false, "{broker}");
        assert_eq!(report["stats"]["runs"], 1);
        assert_eq!(
            entry["first_violation"]["replay"].as_str().unwrap(),
            format!("mqcheck replay --schedule {file}")
        );
        assert_eq!(
            entry["first_violation"]["explanation"], saved["violation"]["explanation"],
            "{broker}: the schedule shows the violation it was saved with"
        );
        let again = mqcheck(&["replay", "--schedule", file]);
        assert_eq!(again.code, 1, "{broker}: {}", again.stdout);
        assert!(again
            .stdout
            .contains(&format!("fault schedule from {file}")));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_schedule_file_is_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("mqcheck-bad-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let schedule = r#""schedule":{"window_ms":5000,"faults":[{"at_ms":100,"for_ms":200,"fault":"crash","target":{"node":0}}]}"#;
    let cases = [
        (
            write("not-json.json", "crash n1 at 3s"),
            "not a schedule file",
        ),
        (
            write("no-schedule.json", r#"{"broker":"kafka"}"#),
            "schedule",
        ),
        (
            write(
                "broker.json",
                &format!(r#"{{"broker":"kafak",{schedule}}}"#),
            ),
            "kafak",
        ),
        (
            write(
                "set.json",
                &format!(r#"{{"broker":"kafka","sets":["acks=2"],{schedule}}}"#),
            ),
            "acks",
        ),
        (
            write(
                "messages.json",
                &format!(r#"{{"broker":"kafka","messages":0,{schedule}}}"#),
            ),
            "--messages",
        ),
        // Node 0 is Kafka's controller, which never crashes.
        (
            write(
                "target.json",
                &format!(r#"{{"broker":"kafka",{schedule}}}"#),
            ),
            "never hits",
        ),
        (
            dir.join("missing.json").to_str().unwrap().to_string(),
            "cannot read",
        ),
    ];
    for (file, names) in &cases {
        for verb in ["sim", "replay"] {
            let out = mqcheck(&[verb, "--schedule", file]);
            assert_eq!(out.code, 2, "{verb} {file}: {}{}", out.stdout, out.stderr);
            assert!(out.stderr.contains(names), "{names}: {}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
            assert!(!out.stderr.contains("panicked"));
        }
    }
    // The file carries the setup: a flag it replaces is refused, not silently ignored.
    let (file, _) = &cases[5];
    let out = mqcheck(&["sim", "--schedule", file, "--set", "acks=1"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--set"), "{}", out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `replay --svg` draws what the timeline prints: a title naming the broker, its settings and
/// the violated property, one row per printed line (the story, folded), arrows for messages and
/// dots for faults; it renders, stays a few hundred pixels tall, and is the same bytes each time.
#[test]
fn replay_draws_its_story_as_a_sequence_diagram() {
    let dir = std::env::temp_dir().join(format!("mqcheck-replay-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("a.svg"), dir.join("b.svg"));
    let out = replay(&["--svg", a.to_str().unwrap()]);
    replay(&["--svg", b.to_str().unwrap()]);
    let drawing = std::fs::read_to_string(&a).expect("--svg writes the file");
    assert_eq!(
        drawing,
        std::fs::read_to_string(&b).unwrap(),
        "deterministic"
    );
    let labels = labels(&drawing);
    assert_eq!(
        labels[..3],
        [
            "kafka acks=1 enable.idempotence=false --faults crash",
            "VIOLATED at-least-once",
            "why: lost: p0:32 was acknowledged to its producer at 0.699 s but group 0 never \
             delivered it",
        ]
    );
    assert!(
        labels[3].starts_with("seed 91, the story of p0:32"),
        "{}",
        labels[3]
    );
    for node in ["n1", "n2", "n3", "p0", "ctl", "c0"] {
        assert!(labels.iter().any(|l| l == node), "a lifeline for {node}");
    }
    // One row per line the timeline printed, in the same words and order.
    let squeezed = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let story: Vec<String> = timeline(&out).iter().map(|l| squeezed(l)).collect();
    let rows = &labels[labels.len() - story.len()..];
    assert_eq!(rows, &story[..]);
    assert!(rows
        .iter()
        .any(|r| r.contains("steps until") && r.contains("Fetch ×")));
    // A message is an arrow from its sender; a fault a red dot on each node it hit.
    assert!(
        drawing.matches("class=\"arrow\"").count() >= 10,
        "arrows drawn"
    );
    let crash_row = story
        .iter()
        .position(|l| l.contains("crash: n2, n3 down"))
        .expect("the first crash");
    assert!(crash_row > 0);
    assert!(
        drawing.matches("fill=\"#c00\"").count() >= 3,
        "crash dots drawn"
    );
    let (width, height) = render(&drawing);
    assert!(height <= 2000, "height bounded by folding: {height} px");
    assert!(width <= 1600, "{width} px wide");
    // The whole timeline on request: far taller.
    replay(&["--full", "--svg", b.to_str().unwrap()]);
    let full = crate::drawing::labels(&std::fs::read_to_string(&b).unwrap());
    assert!(full.len() > 5 * labels.len(), "{} rows", full.len());
    // An unwritable path is bad input, before the run.
    let bad = mqcheck(&[KAFKA_91, &["--svg", "/nonexistent/x.svg"]].concat());
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}
