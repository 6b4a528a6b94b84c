//! `mqcheck matrix`: each cell's attribution, on configurations whose breaking fault is known.

use crate::common::mqcheck;
use serde_json::Value;

/// What `mqcheck matrix ARGS --json FILE --markdown FILE` wrote and printed.
struct Written {
    /// The JSON's one row.
    row: Value,
    markdown: String,
    stdout: String,
}

/// `mqcheck matrix ARGS` with `--json` and `--markdown`, which must select one row.
fn matrix(args: &[&str]) -> Written {
    let base = std::env::temp_dir().join(format!(
        "mqcheck-matrix-{}-{}",
        std::process::id(),
        args.join("-").replace([' ', ',', '/', '\''], "_")
    ));
    // Appended, not `with_extension`: a row name with a dot ("Kafka 3.6") would make that
    // replace the arguments after the dot, and two tests' files would be one.
    let (json, md) = (
        std::path::PathBuf::from(format!("{}.json", base.display())),
        std::path::PathBuf::from(format!("{}.md", base.display())),
    );
    let mut words = vec!["matrix"];
    words.extend(args);
    words.extend(["--json", json.to_str().unwrap()]);
    words.extend(["--markdown", md.to_str().unwrap()]);
    let out = mqcheck(&words);
    assert!(
        [0, 1, 3].contains(&out.code),
        "{words:?}: {}{}",
        out.stdout,
        out.stderr
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let markdown = std::fs::read_to_string(&md).unwrap();
    std::fs::remove_file(&json).unwrap();
    std::fs::remove_file(&md).unwrap();
    let rows = m["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{words:?} selects one row");
    Written {
        row: rows[0].clone(),
        markdown,
        stdout: out.stdout,
    }
}

/// `mqcheck matrix ARGS`, its one row's cells for `guarantee`: class → cell.
fn cells(args: &[&str], guarantee: &str) -> Value {
    matrix(args).row["cells"][guarantee].clone()
}

fn verdict<'a>(cells: &'a Value, class: &str) -> &'a str {
    cells[class]["verdict"].as_str().unwrap()
}

#[test]
fn kafka_safe_loses_acknowledged_records_only_to_power_loss() {
    let cells = cells(
        &[
            "--broker",
            "kafka",
            "--row",
            "safe",
            "--faults",
            "crash,power,pause,network,clock",
            "--seeds",
            "4",
        ],
        "at-least-once",
    );
    for class in ["crash", "pause", "network", "clock"] {
        assert_eq!(verdict(&cells, class), "held", "{class}: {}", cells[class]);
    }
    let power = &cells["power"];
    assert_eq!(power["verdict"], "broken", "{power}");
    assert_eq!(power["counterexample"]["kind"], "lost");
    assert_eq!(
        power["counterexample"]["broken_by"],
        serde_json::json!(["power"])
    );
}

#[test]
fn rabbitmq_quorum_safe_is_at_least_once_under_every_realistic_fault() {
    let cells = cells(
        &[
            "--broker",
            "rabbitmq",
            "--row",
            "quorum, safe",
            "--faults",
            "crash,power,pause,network,clock,tcp",
            "--seeds",
            "6",
        ],
        "at-least-once",
    );
    for class in ["crash", "power", "pause", "network", "clock", "tcp"] {
        let cell = &cells[class];
        assert_eq!(verdict(&cells, class), "held", "{class}: {cell}");
        assert!(
            cell.get("check").is_none(),
            "the check is the row's: {cell}"
        );
        // Held means tested: acknowledged, delivered, and faults of the class took effect.
        for count in ["acknowledged", "delivered", "faults_applied"] {
            assert!(cell[count].as_u64().unwrap() > 0, "{class}: {cell}");
        }
    }
}

#[test]
fn zeromq_push_pull_reorders_only_beyond_tcp() {
    let cells = cells(
        &[
            "--broker",
            "zeromq",
            "--row",
            "push-pull",
            "--faults",
            "all",
            "--seeds",
            "12",
            "--messages",
            "100",
        ],
        "ordering",
    );
    for class in ["crash", "power", "pause", "network", "clock", "tcp"] {
        assert_eq!(verdict(&cells, class), "held", "{class}: {}", cells[class]);
    }
    let beyond = &cells["beyond-tcp"];
    assert_eq!(beyond["verdict"], "broken", "{beyond}");
    assert_eq!(beyond["counterexample"]["kind"], "reordered");
    assert_eq!(
        beyond["counterexample"]["broken_by"],
        serde_json::json!(["beyond-tcp"])
    );
    let schedule = beyond["counterexample"]["minimal_schedule"]
        .as_array()
        .unwrap();
    assert!(
        schedule
            .iter()
            .all(|f| f.as_str().unwrap().contains("reordering")),
        "shrunk to reordering alone: {schedule:?}"
    );
}

#[test]
fn a_cell_that_delivered_nothing_is_inconclusive_not_held() {
    // A minimum ISR above the replication factor refuses every acks=all produce (Kafka 3.6).
    let cells = cells(
        &[
            "--broker",
            "kafka",
            "--row",
            "min.insync.replicas=4, Kafka 3.6",
            "--faults",
            "crash",
            "--seeds",
            "2",
        ],
        "at-least-once",
    );
    assert_eq!(
        verdict(&cells, "crash"),
        "inconclusive",
        "{}",
        cells["crash"]
    );
    assert!(cells["crash"]["reason"]
        .as_str()
        .unwrap()
        .contains("nothing was acknowledged"));
}

#[test]
fn a_row_that_acknowledged_nothing_is_inconclusive_in_every_guarantee_and_in_its_check() {
    let written = matrix(&[
        "--broker",
        "kafka",
        "--row",
        "min.insync.replicas=4, Kafka 3.6",
        "--faults",
        "crash",
        "--seeds",
        "2",
        "--check-states",
        "2000",
    ]);
    for g in ["at-least-once", "at-most-once", "ordering"] {
        let cell = &written.row["cells"][g]["crash"];
        assert_eq!(cell["acknowledged"], 0, "{g}: {cell}");
        assert_eq!(cell["verdict"], "inconclusive", "{g}: {cell}");
    }
    let check = &written.row["check"];
    let unreached: Vec<&str> = check["unreached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(unreached.contains(&"a record is acknowledged"), "{check}");
    for (g, c) in check["guarantees"].as_object().unwrap() {
        assert_ne!(
            c["verdict"], "held",
            "{g}: a check that acknowledged nothing held nothing"
        );
    }
    assert!(
        !written.markdown.contains("| held ("),
        "{}",
        written.markdown
    );
}

#[test]
fn a_held_cell_says_what_it_exercised() {
    let written = matrix(&[
        "--broker",
        "rabbitmq",
        "--row",
        "quorum, safe",
        "--faults",
        "crash",
        "--check",
        "at-least-once",
        "--seeds",
        "3",
        "--check-states",
        "2000",
    ]);
    let cell = &written.row["cells"]["at-least-once"]["crash"];
    assert_eq!(cell["verdict"], "held", "{cell}");
    // A quorum queue under crashes: some crashes strike with messages in flight, and some take
    // down a leader, so a new one is elected.
    let (in_flight, elections) = (&cell["faults_in_flight"], &cell["leader_elections"]);
    assert!(in_flight.as_u64().unwrap() > 0, "{cell}");
    assert!(
        in_flight.as_u64() <= cell["faults_applied"].as_u64(),
        "{cell}"
    );
    assert!(elections.as_u64().unwrap() > 0, "{cell}");
    let words = format!(
        "held (3 seeds: {} acknowledged, {} delivered, {} faults ({in_flight} with messages in flight), {elections} leader elections)",
        cell["acknowledged"], cell["delivered"], cell["faults_applied"]
    );
    assert!(
        written.markdown.contains(&words),
        "{words} in {}",
        written.markdown
    );
    // Beside it, the bounded check, cut short by its budget: never plain "held".
    let check = &written.row["check"];
    assert_eq!(check["partial"], true, "{check}");
    let verdict = check["guarantees"]["at-least-once"]["verdict"]
        .as_str()
        .unwrap();
    assert!(
        ["held within the explored part", "not judged"].contains(&verdict),
        "{check}"
    );
    assert!(
        written.markdown.contains(&format!("| {verdict} (")),
        "{}",
        written.markdown
    );
}

#[test]
fn a_row_whose_check_breaks_a_guarantee_reports_its_states_and_counterexample() {
    // A consumer that dies holding an unacknowledged delivery gets it again (RabbitMQ's
    // defaults): the checker finds the path within its budget.
    let written = matrix(&[
        "--broker",
        "rabbitmq",
        "--row",
        "defaults",
        "--faults",
        "crash",
        "--check",
        "at-most-once",
        "--seeds",
        "2",
    ]);
    let check = &written.row["check"];
    let states = check["states"].as_u64().unwrap();
    assert!(states >= 30_000, "{check}");
    let g = &check["guarantees"]["at-most-once"];
    assert_eq!(g["verdict"], "violated", "{check}");
    let x = &g["counterexample"];
    assert!(x["steps"].as_u64().unwrap() > 0, "{x}");
    assert!(
        x["why"][0]
            .as_str()
            .unwrap()
            .contains("delivered p0:0 2 times"),
        "{x}"
    );
    assert!(
        x["schedule"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("crash")),
        "{x}"
    );
    assert!(
        x["story"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("redelivered=true")),
        "{x}"
    );
    assert!(
        written.stdout.contains("rabbitmq · defaults: 30,"),
        "{}",
        written.stdout
    );
    assert!(
        written.stdout.contains("at-most-once violated"),
        "{}",
        written.stdout
    );
    assert!(
        written
            .markdown
            .contains("## Bounded checks' counterexamples"),
        "{}",
        written.markdown
    );
    assert!(
        written.markdown.contains("mqcheck check --broker rabbitmq"),
        "{}",
        written.markdown
    );
}

#[test]
fn a_sweep_violation_the_tiny_check_cannot_reach_is_a_disagreement() {
    // Kafka's safe row loses records to simultaneous power loss of the replicas; a check of
    // 1000 states never gets there.
    let written = matrix(&[
        "--broker",
        "kafka",
        "--row",
        "safe",
        "--faults",
        "power",
        "--check",
        "at-least-once",
        "--seeds",
        "4",
        "--check-states",
        "1000",
    ]);
    assert_eq!(
        written.row["cells"]["at-least-once"]["power"]["verdict"],
        "broken"
    );
    let g = &written.row["check"]["guarantees"]["at-least-once"];
    assert_eq!(g["disagrees"], "not-reached", "{g}");
    assert!(
        g["disagreement"]
            .as_str()
            .unwrap()
            .contains("the sweep breaks at-least-once under power (lost"),
        "{g}"
    );
    assert!(
        written
            .stdout
            .contains("disagrees with the sweep on at-least-once (not reached by the check)"),
        "{}",
        written.stdout
    );
    assert!(
        written.markdown.contains("## Where the engines disagree"),
        "{}",
        written.markdown
    );
}

#[test]
fn the_check_budget_is_validated_and_zero_turns_the_check_off() {
    let out = mqcheck(&["matrix", "--check-states", "many"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--check-states"), "{}", out.stderr);
    let written = matrix(&[
        "--broker",
        "zeromq",
        "--row",
        "push-pull",
        "--faults",
        "crash",
        "--seeds",
        "1",
        "--check-states",
        "0",
    ]);
    assert!(written.row.get("check").is_none(), "{}", written.row);
    assert!(
        !written.stdout.contains("bounded checks"),
        "{}",
        written.stdout
    );
}

/// The repairs `--repair` finds for the row's `guarantee` under `class`.
fn repairs(args: &[&str], guarantee: &str, class: &str) -> Vec<Vec<String>> {
    let mut words = args.to_vec();
    words.extend(["--faults", class, "--check", guarantee, "--repair"]);
    let cells = cells(&words, guarantee);
    assert_eq!(cells[class]["verdict"], "broken", "{}", cells[class]);
    serde_json::from_value(cells[class]["repairs"].clone()).unwrap()
}

#[test]
fn repair_of_kafka_acks_1_under_a_process_crash_includes_acks_all() {
    let found = repairs(
        &[
            "--broker",
            "kafka",
            "--row",
            "acks=1",
            "--seeds",
            "16",
            "--messages",
            "100",
        ],
        "at-least-once",
        "crash",
    );
    assert!(found.contains(&vec!["acks=all".to_string()]), "{found:?}");
}

#[test]
fn repair_of_rabbitmq_auto_ack_is_manual_acknowledgement() {
    let found = repairs(
        &["--broker", "rabbitmq", "--row", "auto_ack", "--seeds", "6"],
        "at-least-once",
        "crash",
    );
    assert!(
        found.contains(&vec!["auto_ack=false".to_string()]),
        "{found:?}"
    );
}

/// The page `matrix --html` writes for Kafka's `acks=1` row over 3 seeds (its cells break under
/// several classes), in a file named after `tag`.
fn html_report(tag: &str) -> String {
    let file =
        std::env::temp_dir().join(format!("mqcheck-matrix-{}-{tag}.html", std::process::id()));
    let out = mqcheck(&[
        "matrix",
        "--broker",
        "kafka",
        "--row",
        "acks=1",
        "--seeds",
        "3",
        "--html",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.code, 1,
        "acks=1 is violated: {}{}",
        out.stdout, out.stderr
    );
    let page = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    page
}

/// The text between `start` (included) and the first `end` after it.
fn between<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    let from = page
        .find(start)
        .unwrap_or_else(|| panic!("no `{start}` in the page"));
    let len = page[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no `{end}` after `{start}`"));
    &page[from..from + len]
}

#[test]
fn html_report_has_the_claims_the_cells_and_every_counterexample_with_its_story_and_plot() {
    let page = html_report("content");
    assert_eq!(
        page,
        html_report("again"),
        "the same arguments write the same bytes"
    );
    // Self-contained: nothing fetched, nothing run.
    for outside in ["<script", "<link", "src=", "<img", "@import"] {
        assert!(!page.contains(outside), "`{outside}` in the page");
    }
    assert!(
        page.match_indices("url(")
            .all(|(i, _)| page[i..].starts_with("url(#")),
        "only references inside the page"
    );
    // The claims, with their verdicts and conditions.
    let claims = between(&page, "<section id=\"claims\">", "</section>");
    assert!(claims.contains("Kafka is at-least-once"), "{claims}");
    assert!(
        claims.contains("<span class=\"conditional\">conditional</span>"),
        "{claims}"
    );
    assert!(claims.contains("broken by power loss"), "{claims}");
    // The table: a column per fault class, a row per guarantee.
    let table = between(&page, "<table class=\"cells\" id=\"matrix\">", "</table>");
    for class in [
        "crash",
        "power",
        "pause",
        "network",
        "clock",
        "beyond-tcp",
        "tcp",
    ] {
        assert!(
            table.contains(&format!("<th>{class}</th>")),
            "{class}: {table}"
        );
    }
    assert!(
        table.contains(
            "<td class=\"broken\"><a href=\"#cx-0-at-least-once-power\">broken by power loss: lost"
        ),
        "{table}"
    );
    // Every broken cell links to its counterexample, and every counterexample is there.
    let broken = table.matches("<td class=\"broken\">").count();
    let articles: Vec<&str> = page
        .split("<article class=\"counterexample\"")
        .skip(1)
        .collect();
    assert!(broken > 1, "{table}");
    assert_eq!(articles.len(), broken, "one counterexample per broken cell");
    for article in &articles {
        let id = between(article, "id=\"", "\">");
        assert!(table.contains(&format!("href=\"#{}\"", &id[4..])), "{id}");
        // The story, as `replay` tells it.
        let story = between(article, "<pre class=\"story\">", "</pre>");
        assert!(story.lines().count() > 3, "{id}: {story}");
        // The sequence diagram, the violated property in its title.
        let diagram = between(article, "<figure class=\"diagram\">", "</figure>");
        assert!(
            diagram.starts_with("<figure class=\"diagram\"><svg"),
            "{id}: a diagram"
        );
        let guarantee = ["at-least-once", "at-most-once", "ordering"]
            .into_iter()
            .find(|g| id.starts_with(&format!("id=\"cx-0-{g}-")))
            .unwrap_or_else(|| panic!("{id}: a guarantee of the row"));
        assert!(
            diagram.contains(&format!("\nVIOLATED {guarantee}\n</text>")),
            "{id}: {diagram}"
        );
        // The plot: sends, acknowledgements, deliveries, and a shaded window per fault that
        // took effect (plus the legend's swatch).
        let plot = between(article, "<figure class=\"plot\">", "</figure>");
        assert!(plot.contains("<svg"), "{id}: a plot");
        for line in ["sends", "acknowledgements", "deliveries"] {
            assert!(
                plot.contains(&format!("\n{line}\n</text>")),
                "{id}: {line} in {plot}"
            );
        }
        let schedule = between(article, "<ul class=\"schedule\">", "</ul>");
        let took = schedule
            .split("<li>")
            .skip(1)
            .filter(|f| !f.contains("→ no effect") && !f.contains("→ never started"))
            .count();
        let shaded = plot.matches("opacity=\"0.18\" fill=\"#D62728\"").count();
        assert!(
            took > 0,
            "{id}: the shrunk schedule needs a fault: {schedule}"
        );
        assert_eq!(shaded, took + 1, "{id}: {schedule}");
    }
    let power = between(&page, "id=\"cx-0-at-least-once-power\"", "</article>");
    assert!(
        power.contains("at-least-once violated under power: lost"),
        "{power}"
    );
    assert!(
        power.contains("nemesis  power loss:"),
        "the story's fault: {power}"
    );
}

#[test]
fn html_report_to_a_path_that_cannot_be_written_is_bad_input_before_any_work() {
    crate::common::bad_input(
        &[
            "matrix",
            "--broker",
            "kafka",
            "--html",
            "/nonexistent/directory/report.html",
        ],
        "--html",
    );
}
