//! The Stateright Explorer in a real browser: `mqcheck check` finds a counterexample and prints
//! its Explorer link, `mqcheck explore` serves the same model, headless Chromium follows the link
//! (the page builds the path step by step with JavaScript), and the state it shows is in Kafka's
//! terms with nodes named as everywhere else (`n1`, `ctl`, `isr=[n1,n2,n3]`).
//!
//! And the matrix's HTML report (`matrix --html`) as Chromium parses and draws it: its table, a
//! sequence diagram and a plot, and a screenshot of the page (`docs/matrix-report.png` is one).
//!
//! Needs Debian's `chromium` (`cargo test --release --features browser --test browser`); without
//! it the test fails saying what to install.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Headless Chromium on `url` with `args` beside the usual ones, until it exits: its stdout.
fn headless(chromium: &PathBuf, args: &[&str], url: &str) -> String {
    // A profile of its own: the tests run in parallel, and a second Chromium on a profile in use
    // hands its URL to the first and exits printing nothing.
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "mqcheck-chromium-{}-{}",
        std::process::id(),
        STARTED.fetch_add(1, Ordering::SeqCst)
    ));
    let mut child = Killed(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .args(args)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium starts"),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
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
    reader.join().unwrap().expect("chromium's output")
}

/// The page at `url` after its scripts ran, as Chromium leaves its DOM.
fn dump_dom(chromium: &PathBuf, url: &str) -> String {
    // Run the page's timers and fetches until it is idle, at most this long.
    headless(
        chromium,
        &["--virtual-time-budget=60000", "--dump-dom"],
        url,
    )
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

/// The screenshot's size: the page's width, and tall enough for the claims, the table and the
/// first counterexample's story, diagram and plot.
const SHOT: (u32, u32) = (1280, 4200);

/// A PNG's width and height, from its header.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&png[12..16], b"IHDR", "a PNG header");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn matrix_report_shows_its_table_a_sequence_diagram_and_a_plot() {
    let chromium = chromium();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let page = dir.join("matrix-report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_mqcheck"))
        .args([
            "matrix", "--broker", "kafka", "--row", "acks=1", "--seeds", "3",
        ])
        .arg("--html")
        .arg(&page)
        .output()
        .expect("mqcheck matrix runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "acks=1 is violated: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", page.display());
    let dom = dump_dom(&chromium, &url);
    // Chromium's own tree: it put the rows into a tbody, so this is the parsed page, not the file.
    assert!(
        dom.contains("<table class=\"cells\" id=\"matrix\"><tbody><tr><th>broker</th>"),
        "the table of cells: {dom}"
    );
    assert!(dom.contains("<th>power</th>"), "a column per fault class");
    assert!(
        dom.contains("<a href=\"#cx-0-at-least-once-power\">broken by power loss: lost"),
        "a broken cell links to its counterexample"
    );
    let diagram = dom
        .split("<figure class=\"diagram\">")
        .nth(1)
        .expect("a sequence diagram");
    let diagram = &diagram[..diagram.find("</figure>").unwrap()];
    assert!(diagram.starts_with("<svg"), "{diagram}");
    assert!(diagram.contains("VIOLATED at-least-once"), "{diagram}");
    assert!(diagram.contains("power loss"), "the fault, in the diagram");
    let plot = dom.split("<figure class=\"plot\">").nth(1).expect("a plot");
    let plot = &plot[..plot.find("</figure>").unwrap()];
    assert!(plot.starts_with("<svg"), "{plot}");
    assert!(plot.contains("fault window"), "the shaded windows' legend");
    assert!(plot.contains("fill=\"#D62728\""), "a shaded fault window");

    let shot = dir.join("matrix-report.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &chromium,
        &[
            &format!("--screenshot={}", shot.display()),
            &format!("--window-size={},{}", SHOT.0, SHOT.1),
            "--hide-scrollbars",
        ],
        &url,
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot {}: {e}", shot.display()));
    assert_eq!(png_size(&png), SHOT, "the screenshot's size");
    println!("screenshot: {}", shot.display());
}
