//! The Stateright Explorer in a real browser: `mqcheck check` finds a counterexample and prints
//! its Explorer link, `mqcheck explore` serves the same model, headless Chromium follows the link
//! (the page builds the path step by step with JavaScript), and the state it shows is in Kafka's
//! terms with nodes named as everywhere else (`n1`, `ctl`, `isr=[n1,n2,n3]`).
//!
//! Needs Debian's `chromium` (`cargo test --release --features browser --test browser`); without
//! it the test fails saying what to install.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A model whose counterexample is short (about 50 steps), so the page replays it quickly:
/// truncation to the high watermark breaks Kafka's StrongIsr after one crash.
const MODEL: [&str; 6] = [
    "--broker",
    "kafka",
    "--set",
    "log.truncation=high-watermark",
    "--faults",
    "crash",
];

/// A child process ended when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Chromium, or a failure that says how to install it.
fn chromium() -> PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the browser test needs headless Chromium: install Debian's packages with \
             `apt-get install -y --no-install-recommends chromium chromium-driver`"
        )
    })
}

/// The Explorer link `mqcheck check` gives StrongIsr's counterexample.
fn explorer_link() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .arg("check")
        .args(MODEL)
        .arg("--json")
        .output()
        .expect("mqcheck check runs");
    assert_eq!(out.status.code(), Some(1), "StrongIsr is violated");
    let json: Value = serde_json::from_slice(&out.stdout).expect("check's JSON");
    let link = json["properties"]["StrongIsr"]["explorer"]
        .as_str()
        .unwrap_or_else(|| panic!("an Explorer link: {json}"))
        .to_string();
    assert!(link.starts_with("#/steps/"), "{link}");
    link
}

/// `mqcheck explore` on port 0, and the address it says it listens on.
fn explore() -> (Killed, String) {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_mqcheck"))
            .arg("explore")
            .args(MODEL)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mqcheck explore starts"),
    );
    let mut banner = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("explore names its address: {banner}"))
        .to_string();
    assert!(!addr.ends_with(":0"), "{banner}");
    (child, addr)
}

/// The page at `url` after its scripts ran, as Chromium leaves its DOM.
fn dump_dom(chromium: &PathBuf, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("mqcheck-chromium-{}", std::process::id()));
    let mut child = Killed(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                // Run the page's timers and fetches until it is idle, at most this long.
                "--virtual-time-budget=60000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts"),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).map(|_| dom)
    });
    let started = Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "chromium still running after 120 s on {url}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap().expect("chromium's DOM")
}

/// The text of the Explorer's "Current State" pane in a dumped DOM.
fn current_state(dom: &str) -> String {
    let pane = dom
        .split("<div class=\"font-code font-small color-dark")
        .nth(1)
        .unwrap_or_else(|| panic!("no state pane in the page: {dom}"));
    let text = pane
        .split_once('>')
        .unwrap()
        .1
        .split("</div>")
        .next()
        .unwrap();
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn explorer_follows_a_counterexample_and_shows_kafka_terms_and_node_names() {
    let chromium = chromium();
    let link = explorer_link();
    let (_explorer, addr) = explore();
    let dom = dump_dom(&chromium, &format!("http://{addr}/{link}"));
    let state = current_state(&dom);
    assert!(
        state.starts_with("time "),
        "the state, not a placeholder: {state}"
    );
    // Each node by name, in Kafka's terms.
    assert!(state.contains("\nctl: controller: alive=["), "{state}");
    for broker in ["n1", "n2", "n3"] {
        assert!(
            state.contains(&format!("\n{broker}: broker (incarnation ")),
            "{state}"
        );
    }
    assert!(
        state.contains("isr=[n"),
        "an ISR of named replicas: {state}"
    );
    assert!(state.contains("hw="), "high watermarks: {state}");
    assert!(
        state.contains("\np0: producer") && state.contains("\nc0: consumer"),
        "{state}"
    );
    // Nothing numbered by actor id, nothing in Rust's Debug form.
    for leak in ["isr=[1", "[0] ", "follower of 1", "Some(", "{"] {
        assert!(!state.contains(leak), "`{leak}` in {state}");
    }
    // The path followed: the crash the counterexample needs is on it, in words.
    assert!(
        dom.contains(" crashes (process; page cache kept; down "),
        "the path's crash"
    );
    // StrongIsr fails in the state the link leads to.
    assert!(dom.contains("StrongIsr"), "the properties are listed");
}
