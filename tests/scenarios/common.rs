//! Runs the `mqcheck` binary the way a user does, and reads its JSON.

use serde_json::Value;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn mqcheck(args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args(args)
        .output()
        .expect("mqcheck runs");
    Outcome {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `mqcheck SUBCOMMAND ARGS --json`, parsed: the exit code and the report on stdout.
fn json(subcommand: &str, args: &str) -> (i32, Value) {
    let mut words: Vec<&str> = vec![subcommand];
    words.extend(args.split_whitespace());
    words.push("--json");
    let out = mqcheck(&words);
    assert!(
        !out.stderr.contains("panicked"),
        "mqcheck panicked: {}",
        out.stderr
    );
    let json: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}{}", out.stdout, out.stderr));
    (out.code, json)
}

/// `mqcheck sim ARGS --json`, parsed.
pub fn sim(args: &str) -> (i32, Value) {
    json("sim", args)
}

/// Asserts `invariant` was violated, and returns the first violation (seed, replay, explanation).
pub fn violated(args: &str, invariant: &str) -> Value {
    let (code, json) = sim(&format!("{args} --check {invariant}"));
    let inv = &json["invariants"][invariant];
    assert_eq!(
        inv["held"],
        Value::Bool(false),
        "expected {invariant} violated by `mqcheck sim {args}`, got {inv}"
    );
    assert_eq!(code, 1, "a violation exits 1");
    inv["first_violation"].clone()
}

/// Asserts every listed invariant held in every run.
pub fn held(args: &str, invariants: &[&str]) -> Value {
    let (code, json) = sim(&format!("{args} --check {}", invariants.join(",")));
    for invariant in invariants {
        let inv = &json["invariants"][*invariant];
        assert_eq!(
            inv["held"],
            Value::Bool(true),
            "expected {invariant} held by `mqcheck sim {args}`, got {inv}"
        );
    }
    assert_eq!(code, 0, "all held exits 0");
    json
}

/// Asserts a run is a function of its seed and arguments: `replay ARGS` prints the same timeline
/// byte for byte twice, and `sim ARGS` over 20 seeds reports the same figures twice.
pub fn assert_deterministic(args: &str) {
    let mut words = vec!["replay", "--full"];
    words.extend(args.split_whitespace());
    words.extend(["--faults", "all", "--seed", "7", "--messages", "30"]);
    let (a, b) = (mqcheck(&words), mqcheck(&words));
    assert!(
        a.stdout.contains("timeline:") && a.stdout.len() > 1000,
        "a replay prints a timeline: {}",
        a.stdout
    );
    assert_eq!(a.stdout, b.stdout);
    let sweep = format!("{args} --faults all --seeds 20 --seed 3");
    let ((_, x), (_, y)) = (sim(&sweep), sim(&sweep));
    assert_eq!(x["invariants"], y["invariants"]);
    assert_eq!(x["stats"]["simulated_ms"], y["stats"]["simulated_ms"]);
    assert_eq!(
        x["stats"]["messages_delivered"],
        y["stats"]["messages_delivered"]
    );
}

/// Replays a violation that `violated` returned, asserting the replay reproduces it (exit 1).
pub fn reproduce(violation: &Value) -> Outcome {
    let r = replay(violation["replay"].as_str().expect("a replay command"));
    assert_eq!(
        r.code, 1,
        "the replay reproduces the violation:\n{}",
        r.stdout
    );
    r
}

/// Runs a replay command line printed by `sim`, printing the whole timeline (`--full`).
pub fn replay(command: &str) -> Outcome {
    let mut words: Vec<&str> = command.split_whitespace().skip(1).collect();
    words.push("--full");
    mqcheck(&words)
}

/// `mqcheck check ARGS --json`, parsed.
pub fn check(args: &str) -> (i32, Value) {
    json("check", args)
}

/// Kills the child when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `mqcheck ARGS`, failing the test if it is still running after 20 s.
pub fn mqcheck_within_20s(args: &[&str]) -> (i32, String, String) {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mqcheck"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqcheck starts"),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "`mqcheck {}` still running after 20 s",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let _ = child.0.stdout.take().unwrap().read_to_string(&mut stdout);
    let _ = child.0.stderr.take().unwrap().read_to_string(&mut stderr);
    (status.code().expect("exited"), stdout, stderr)
}

/// Asserts `mqcheck ARGS` is bad input: exit 2, nothing on stdout, one `error:` line that
/// names `key`.
pub fn bad_input(args: &[&str], key: &str) {
    let (code, stdout, stderr) = mqcheck_within_20s(args);
    let command = args.join(" ");
    assert!(
        !stderr.contains("panicked"),
        "`mqcheck {command}` panicked: {stderr}"
    );
    assert_eq!(code, 2, "`mqcheck {command}` is bad input: {stderr}");
    assert_eq!(stdout, "", "`mqcheck {command}` prints nothing on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "`mqcheck {command}` says one line: {stderr}"
    );
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(key),
        "`mqcheck {command}` names {key}: {stderr}"
    );
}
