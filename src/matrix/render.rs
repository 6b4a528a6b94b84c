//! The matrix for people: the terminal's one line per row, the Markdown page (docs/matrix.md is
//! this output), and what changed since an earlier `--json`.

use super::cells::{broken_by_words, Cell, CellVerdict, Class, GUARANTEES};
use super::claims::ClaimVerdict;
use super::{Matrix, Row, SCHEMA};
use crate::spec::bad;
use mqcheck_brokers::ConfigError;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// A row's guarantee over every class in a few words: `held`, `broken — power: lost`,
/// `held under TCP; beyond-tcp: reordered`, `inconclusive`, `—`.
pub fn summary(cells: &BTreeMap<Class, Cell>) -> String {
    let kind = |c: &Cell| {
        c.counterexample
            .as_ref()
            .map_or(String::new(), |x| x.kind.clone())
    };
    let broken = |class: Class| {
        cells
            .get(&class)
            .filter(|c| c.verdict == CellVerdict::Broken)
    };
    if let Some(c) = cells.values().find(|c| {
        c.counterexample
            .as_ref()
            .is_some_and(|x| x.broken_by.is_empty())
    }) {
        return format!("broken without any fault: {}", kind(c));
    }
    let mut parts: Vec<String> = Class::REALISTIC
        .into_iter()
        .filter_map(|class| broken(class).map(|c| format!("{}: {}", class.name(), kind(c))))
        .collect();
    // The combination, where the single classes did not break it alone.
    if let Some(c) = broken(Class::Tcp) {
        let by = &c.counterexample.as_ref().expect("broken").broken_by;
        if !(by.len() == 1 && broken(by[0]).is_some()) {
            let names: Vec<&str> = by.iter().map(|b| b.name()).collect();
            parts.push(format!("{}: {}", names.join("+"), kind(c)));
        }
    }
    let under_tcp = if parts.is_empty() {
        let all_held = cells
            .iter()
            .filter(|(class, c)| **class != Class::BeyondTcp && c.verdict != CellVerdict::NotTested)
            .all(|(_, c)| c.verdict == CellVerdict::Held);
        if cells.values().all(|c| c.verdict == CellVerdict::NotTested) {
            "—".to_string()
        } else if cells
            .values()
            .all(|c| c.verdict == CellVerdict::NotSupported)
        {
            "not supported".to_string()
        } else if all_held {
            "held".to_string()
        } else {
            "inconclusive".to_string()
        }
    } else {
        format!("broken — {}", parts.join(", "))
    };
    match broken(Class::BeyondTcp) {
        Some(c) => format!("{under_tcp}; beyond-tcp: {}", kind(c)),
        None => under_tcp,
    }
}

fn settings(r: &Row) -> String {
    if r.settings.is_empty() {
        "defaults".into()
    } else {
        format!("`{}`", r.settings.join("` `"))
    }
}

/// One line per row, then the article's claims with their verdicts.
pub fn terminal(m: &Matrix) -> String {
    let mut s = String::new();
    let classes: Vec<&str> = m.classes.iter().map(|c| c.name()).collect();
    let _ = writeln!(
        s,
        "claims matrix · {} seeds per row and fault class ({})",
        m.seeds,
        classes.join(", ")
    );
    for r in &m.rows {
        let cells: Vec<String> = GUARANTEES
            .iter()
            .filter_map(|g| Some(format!("{g} {}", summary(r.cells.get(g.name())?))))
            .collect();
        let _ = writeln!(
            s,
            "{} · {}: {}",
            r.broker,
            r.configuration,
            cells.join(" · ")
        );
    }
    let checks = check_lines(m);
    if !checks.is_empty() {
        let _ = writeln!(
            s,
            "\nbounded checks (every path within 1 message, 1 process and 1 network fault, up to the state budget):"
        );
    }
    for line in checks {
        let _ = writeln!(s, "{line}");
    }
    let repairs = repair_lines(m);
    if !repairs.is_empty() {
        let _ = writeln!(
            s,
            "\nrepairs (the smallest changes under which the class no longer breaks it):"
        );
    }
    for line in repairs {
        let _ = writeln!(s, "{line}");
    }
    if !m.claims.is_empty() {
        let _ = writeln!(s, "\nthe article's claims:");
    }
    for c in &m.claims {
        let _ = writeln!(
            s,
            "{} · \"{}\": {} — {}",
            c.broker,
            c.claim,
            c.verdict.name(),
            c.explanation
        );
    }
    s
}

/// One line per checked row: `kafka · safe: 10,234 states, its budget spent · at-least-once not
/// judged (10,234 states) · …`, then what its coverage did not reach.
fn check_lines(m: &Matrix) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &m.rows {
        let Some(check) = &r.check else {
            continue;
        };
        let mut words = vec![check.extent()];
        words.extend(GUARANTEES.iter().filter_map(|g| {
            check
                .guarantees
                .get(g.name())
                .map(|c| format!("{g} {}", c.verdict))
        }));
        if !check.unreached.is_empty() {
            words.push(format!("unreached: {}", check.unreached.join(", ")));
        }
        let disagrees: Vec<String> = GUARANTEES
            .iter()
            .filter_map(|g| {
                let d = check.guarantees.get(g.name())?.disagrees?;
                Some(format!("{g} ({})", d.name()))
            })
            .collect();
        if !disagrees.is_empty() {
            words.push(format!(
                "disagrees with the sweep on {}",
                disagrees.join(", ")
            ));
        }
        lines.push(format!(
            "{} · {}: {}",
            r.broker,
            r.configuration,
            words.join(" · ")
        ));
    }
    lines
}

/// One line per guarantee on which the two engines disagree.
fn disagreements(m: &Matrix) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &m.rows {
        let Some(check) = &r.check else {
            continue;
        };
        for g in GUARANTEES {
            if let Some(d) = check
                .guarantees
                .get(g.name())
                .and_then(|c| c.disagreement.as_ref())
            {
                lines.push(format!("{} · {} · {g}: {d}", r.broker, r.configuration));
            }
        }
    }
    lines
}

/// One line per repaired cell: `kafka · acks=1 · at-least-once · crash: set `acks=all``.
pub fn repair_lines(m: &Matrix) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &m.rows {
        for g in GUARANTEES {
            let Some(cells) = r.cells.get(g.name()) else {
                continue;
            };
            for (class, cell) in cells {
                let Some(repairs) = &cell.repairs else {
                    continue;
                };
                let what = if repairs.is_empty() {
                    "no single or paired change of the broker's keys repairs it".to_string()
                } else {
                    let each: Vec<String> = repairs
                        .iter()
                        .map(|changes| format!("`{}`", changes.join("` `")))
                        .collect();
                    format!("set {}", each.join(", or "))
                };
                lines.push(format!(
                    "{} · {} · {g} · {}: {what}",
                    r.broker,
                    r.configuration,
                    class.name()
                ));
            }
        }
    }
    lines
}

/// The page's fixed part: how to read it, how it is made, the JSON schema.
const PREAMBLE: &str = r#"# The claims matrix

*Generated: `cargo run --release -- matrix --markdown docs/matrix.md` rewrites this page from the
same data as `--json`; do not edit it by hand.*

`mqcheck matrix` answers the comparison article (`shared/reference/article-claims.md`) claim by
claim. Each row is a named configuration of one broker (its `scenarios()`). Each row is swept once
per **fault class** — process crash (`crash`), machine crash (`power`), `pause`, `network`
(partitions and segment loss), `clock` skew, `beyond-tcp` (duplication and reordering, which TCP
never delivers to an application) — and once under `tcp`, every fault TCP allows together. A cell
is *held* only when the sweep acknowledged and delivered messages, a fault of its class took
effect, no run was cut short and no seed broke the guarantee; any other sweep is
*inconclusive* and says why (nothing acknowledged, runs cut short). A broken cell names the anomaly (lost, dead-lettered, duplicate, reordered,
nonmonotonic-poll, torn, …), how many seeds broke it, and its lowest seed, whose fault schedule is
shrunk — first whole kinds of fault, then single faults — so that it is attributed to the classes
it still needs ("broken by power loss"; "without any fault" when the workload alone breaks it). A
message the broker took away by its own dead-letter policy — RabbitMQ's `delivery-limit` or a
reject without requeue, ActiveMQ's `maximumRedeliveries`, RocketMQ's `maxReconsumeTimes` — is
*dead-lettered*, not *lost*: at-least-once to the application is still broken, but by the
configuration, not by a fault.

The article's claims are judged from the cells, not by hand: *confirmed* when the broker's defaults
give what the article says under every realistic fault; *conditional* when it holds only with some
configuration or only under some faults (the sentence names both, and which setting repairs a
breaking class); *refuted* when the guarantee the article claims breaks in every configuration, or
the one it denies holds in some configuration under every fault TCP allows.

A held cell says what it exercised: `held (20 seeds: 612 acknowledged, 598 delivered, 31 faults
(27 with messages in flight), 9 leader elections)` — acknowledged and delivered messages, the
faults that took effect, those of them that struck while a message was in flight (a send not yet
answered, an acknowledged message not yet delivered to every group, or a rewound consumer still
reading back — the run not yet settled: the moments a fault can cost something), and the leaderships taken after the first fault (leaving it out where there were
none), summed over its seeds. The JSON has them as `faults_in_flight` and `leader_elections`. A
fault in flight is judged from the history, not from which node held the message, so it says
that data was at stake somewhere when the fault struck, not that the struck node held it; the
bounded check's coverage names the leader change (`a leader changes` among what it reached or
did not).

**Exhaustive evidence.** Beside its sweeps each row runs `mqcheck check` on the row's
configuration with small bounds — one message, one producer, the row's consumers (at most two), at
most one process fault and one network fault on a path, the faults of the selected classes — up
to a budget of states (`--check-states N`, default 30000; `0` turns the check off), depth-first
on one thread, so the same every run. Within a budget breadth-first search explores only the first
few steps of every path and never sees a run end (where at-least-once is judged); depth-first
search follows whole runs. A check its budget stops says *held within the explored part*, never
*held*; with one message, ordering is *not tested*. Each check counterexample's faults are played
by the simulator as a schedule (at the path's times, on the same nodes, each until the step that
ends it; a single lost, duplicated or reordered segment becomes a millisecond of it on every link)
with the check's workload, under each seed of `--seeds`, as they are and shifted 5, 10, 20 and 40
ms later (the model's network delivers at once, the simulator's after a drawn latency). Where the
engines disagree the report says so: *not reached by the check* (the sweep broke the guarantee,
the check did not within its bounds), *not reproduced in the simulator* (the check broke it, its
schedule did not), *missed by the sweep* (the check broke it and the simulator reproduces it, but
no seed of the sweep did). The checks run unreduced, so their state budget bounds their work, one
after another, on a thread of their own beside the sweeps. Cost, measured with `time mqcheck
matrix` on the 2-core machine (2026-12-07, the load below 1 at the start): 49–54 s
of wall time and 80–89 s of CPU in two runs of the default (all five brokers, the replay column and every
row's check). A check's violation enters the exit
status (1); a check its budget stopped leaves the sweeps' verdict as it is, its cell saying how far
it went ("held within the explored part").

`mqcheck matrix --json FILE` writes the same data with schema `mqcheck-matrix/1`: `schema`,
`command` (the command line that reproduces it), `seeds` (per row and class), `classes`, `rows`
(each: `broker`, `configuration`, `settings`, `claim`, and `cells`: guarantee → class → cell with
`verdict` (`held`, `broken`, `inconclusive`, `not-tested`), `runs`, `violations`, `acknowledged`,
`delivered`, `faults_applied`, `faults_in_flight`, `leader_elections`, an optional `reason`, and for a broken cell its `counterexample`:
`seed`, `kind`, `explanation`, `replay` (a command), `broken_by` (classes; empty: no fault
needed), `minimal_schedule`), and with the bounded check `check`: `command` (the `mqcheck check`
that reruns it), `states`, `unique_states`, `partial` (its budget stopped it), `reached` and
`unreached` (its coverage properties), `guarantees`: guarantee → `verdict` (`held`, `held within
the explored part`, `violated`, `not judged`, `not tested`), for a violation its `counterexample`
(`steps`, `story`, `why`, `schedule` (the simulator's faults), `reproduced_by_seed` (absent: not
reproduced), `shifted_ms`), and where the engines disagree `disagrees` (`not-reached`,
`not-reproduced`, `sweep-missed`) and `disagreement` (a sentence)), and `claims` (each: `broker`, `guarantee`, `claim`,
`article_says_it_holds`, `verdict` (`confirmed`, `refuted`, `conditional`, `not-tested`),
`explanation`). `mqcheck matrix --compare OLD.json` prints every cell, bounded check and claim that changed
since. Options: `--broker` (comma list), `--row NAME` (repeatable), `--faults` (comma list of
classes, or `all`), `--check` (the guarantees), `--seeds`, `--shrink-budget`, `--check-states`, `--repair` (below), and
the workload flags of `sim`.

With `--repair`, each broken cell (beyond TCP aside) is searched for the smallest changes of the
broker's own keys — single changes from the row's configuration, then pairs — under which its class no
longer breaks the guarantee: each candidate first runs the seeds known to violate it, and a
survivor must then hold, tested, in every seed of the cell. A repair is evidence from those seeds
only: a change of a timer can move a violation out of a small seed range (more seeds weed it out).

`mqcheck matrix --html FILE` writes the same matrix as one self-contained page (inline CSS and SVG:
it fetches nothing, and the same command writes the same bytes): the claims, the rows, the cells
by fault class, and for every broken cell its counterexample, replayed from its seed with its
shrunk schedule: the schedule as it happened, the story `replay` tells, that story as a sequence
diagram (the violated property in its title), and a plot of sends, acknowledgements and
deliveries over simulated time, counted up, with the windows of the faults that took effect
shaded, as Jepsen's performance plots do, and the violation's messages marked. The page is
composed with maud (HTML written in Rust and checked at compile time, escaped by default, no
template files to ship or find at run time); the plots are drawn by plotters with its SVG backend
alone (no fonts, bitmaps or dates compiled in). Without `--html` nothing is replayed: the sweep
only keeps each shrunk schedule. Measured here (2 cores shared, load average 10): the default
matrix with `--html` replays 296 counterexamples into a 6.0 MB page in 33.1 s of CPU, against
31.5 s without it. The browser test (`cargo test --release --features browser
--test browser`) opens such a page in headless Chromium and takes this screenshot of
`mqcheck matrix --broker kafka --row acks=1 --seeds 3 --html FILE`:

![The HTML report of Kafka's acks=1 row: claims, cells, a counterexample's story, sequence diagram and plot](matrix-report.png)
"#;

/// The Markdown page: the preamble, the claims, a summary per row, every cell, and the
/// counterexamples with their shrunk schedules.
pub fn markdown(m: &Matrix) -> String {
    let mut s = String::from(PREAMBLE);
    let _ = writeln!(s, "\nThis page: `{}`.\n", m.command);
    let _ = writeln!(s, "## The article's claims\n");
    let _ = writeln!(
        s,
        "| broker | the article says | verdict | conditions and evidence |"
    );
    let _ = writeln!(s, "|---|---|---|---|");
    for c in &m.claims {
        let verdict = match c.verdict {
            ClaimVerdict::Refuted => format!("**{}**", c.verdict.name()),
            v => v.name().to_string(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {verdict} | {} |",
            c.broker, c.claim, c.explanation
        );
    }
    let _ = writeln!(s, "\n## Rows\n");
    let header: Vec<&str> = GUARANTEES.iter().map(|g| g.name()).collect();
    let _ = writeln!(
        s,
        "| broker | configuration | settings | claim tested | {} |",
        header.join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|---|{}", "---|".repeat(header.len()));
    for r in &m.rows {
        let cells: Vec<String> = GUARANTEES
            .iter()
            .map(|g| r.cells.get(g.name()).map_or("—".into(), summary))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.broker,
            r.configuration,
            settings(r),
            r.claim,
            cells.join(" | ")
        );
    }
    let _ = writeln!(s, "\n## Cells by fault class");
    let classes: Vec<&str> = m.classes.iter().map(|c| c.name()).collect();
    let mut broker = "";
    for r in &m.rows {
        if r.broker != broker {
            broker = &r.broker;
            let _ = writeln!(s, "\n### {broker}\n");
            let _ = writeln!(
                s,
                "| configuration | guarantee | {} | bounded check |",
                classes.join(" | ")
            );
            let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(classes.len()));
        }
        for g in GUARANTEES {
            let Some(cells) = r.cells.get(g.name()) else {
                continue;
            };
            if cells.values().all(|c| c.verdict == CellVerdict::NotTested) {
                continue;
            }
            let texts: Vec<String> = m
                .classes
                .iter()
                .map(|c| cells.get(c).map_or("—".into(), Cell::text))
                .collect();
            let checked = r
                .check
                .as_ref()
                .and_then(|c| c.text(g.name()))
                .unwrap_or_else(|| "—".into());
            let _ = writeln!(
                s,
                "| {} | {g} | {} | {checked} |",
                r.configuration,
                texts.join(" | ")
            );
        }
    }
    let disagreements = disagreements(m);
    if !disagreements.is_empty() {
        let _ = writeln!(
            s,
            "\n## Where the engines disagree\n\nA sweep counterexample the bounded check did not reach within its bounds, or a check counterexample whose fault schedule the simulator does not reproduce (or reproduces where the sweep never broke the guarantee):\n"
        );
    }
    for line in disagreements {
        let _ = writeln!(s, "- {line}");
    }
    check_counterexamples(&mut s, m);
    let repairs = repair_lines(m);
    if !repairs.is_empty() {
        let _ = writeln!(
            s,
            "\n## Repairs\n\nThe smallest changes of the broker's keys under which the class no longer breaks the guarantee in any seed (`--repair`):\n"
        );
    }
    for line in repairs {
        let _ = writeln!(s, "- {line}");
    }
    let _ = writeln!(
        s,
        "\n## Counterexamples\n\nOne per row and guarantee (under `tcp` where it broke there), each with its shrunk schedule and the command that replays it:\n"
    );
    for r in &m.rows {
        for g in GUARANTEES {
            let Some(cells) = r.cells.get(g.name()) else {
                continue;
            };
            let pick = cells
                .get(&Class::Tcp)
                .filter(|c| c.counterexample.is_some())
                .map(|c| (Class::Tcp, c))
                .or_else(|| {
                    cells
                        .iter()
                        .find(|(_, c)| c.counterexample.is_some())
                        .map(|(k, c)| (*k, c))
                });
            let Some((class, cell)) = pick else {
                continue;
            };
            let x = cell.counterexample.as_ref().expect("picked for it");
            let _ = writeln!(
                s,
                "- {} {} — {g} under `{}` ({}, broken {}): {}",
                r.broker,
                r.configuration,
                class.name(),
                x.kind,
                broken_by_words(&x.broken_by),
                x.explanation
            );
            if !x.minimal_schedule.is_empty() {
                let _ = writeln!(s, "  shrunk schedule: {}", x.minimal_schedule.join("; "));
            }
            let _ = writeln!(s, "  `{}`", x.replay);
        }
    }
    s
}

/// The bounded checks' counterexamples: each with its story, its schedule in the simulator and
/// whether that reproduced it, and the command that reruns the check.
fn check_counterexamples(s: &mut String, m: &Matrix) {
    let mut first = true;
    for r in &m.rows {
        let Some(check) = &r.check else {
            continue;
        };
        for g in GUARANTEES {
            let Some(x) = check
                .guarantees
                .get(g.name())
                .and_then(|c| c.counterexample.as_ref())
            else {
                continue;
            };
            if first {
                let _ = writeln!(
                    s,
                    "\n## Bounded checks' counterexamples\n\nThe shortest path the model checker found, its faults played by the simulator with the check's workload:\n"
                );
                first = false;
            }
            let _ = writeln!(
                s,
                "- {} {} — {g} ({}, {} steps): {}",
                r.broker,
                r.configuration,
                check.extent(),
                x.steps,
                x.why.join("; ")
            );
            let _ = writeln!(s, "  story: {}", x.story.join(" · "));
            let reproduced = match (x.reproduced_by_seed, x.shifted_ms) {
                (Some(seed), Some(ms)) if ms > 0 => {
                    format!("reproduced by simulator seed {seed}, the faults {ms} ms later")
                }
                (Some(seed), _) => format!("reproduced by simulator seed {seed}"),
                (None, _) => "not reproduced in the simulator".into(),
            };
            if x.schedule.is_empty() {
                let _ = writeln!(s, "  no fault on the path; {reproduced}");
            } else {
                let _ = writeln!(s, "  schedule: {}; {reproduced}", x.schedule.join("; "));
            }
            let _ = writeln!(s, "  `{}`", check.command);
        }
    }
}

/// The matrix `--compare` names, read before any work.
pub fn read_old(path: &Path) -> Result<Matrix, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        bad(
            "compare",
            format!("cannot read --compare {}: {e}", path.display()),
        )
    })?;
    let schema = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["schema"].as_str().map(String::from));
    if schema.as_deref() != Some(SCHEMA) {
        return Err(bad(
            "compare",
            format!(
                "--compare {} is not a matrix of schema {SCHEMA} (written by `mqcheck matrix --json`)",
                path.display()
            ),
        ));
    }
    serde_json::from_str(&text).map_err(|e| {
        bad(
            "compare",
            format!("--compare {} does not parse: {e}", path.display()),
        )
    })
}

/// Every cell and claim that differs between `old` and `new`, and rows only one of them has.
pub fn compare(old: &Matrix, new: &Matrix) -> String {
    let cells = |m: &Matrix| {
        let mut all = BTreeMap::new();
        for r in &m.rows {
            for (g, by_class) in &r.cells {
                for (class, cell) in by_class {
                    all.insert(
                        (r.broker.clone(), r.configuration.clone(), g.clone(), *class),
                        cell.text(),
                    );
                }
            }
        }
        all
    };
    let claims = |m: &Matrix| {
        m.claims
            .iter()
            .map(|c| {
                (
                    (c.broker.clone(), c.guarantee.clone()),
                    format!("{} — {}", c.verdict.name(), c.explanation),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let mut s = String::new();
    let (before, after) = (cells(old), cells(new));
    for (key, text) in &after {
        let (broker, row, g, class) = key;
        match before.get(key) {
            Some(was) if was == text => {}
            Some(was) => {
                let _ = writeln!(
                    s,
                    "  {broker} · {row} · {g} · {}: {was} → {text}",
                    class.name()
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {broker} · {row} · {g} · {}: new: {text}",
                    class.name()
                );
            }
        }
    }
    for (key, was) in &before {
        if !after.contains_key(key) {
            let (broker, row, g, class) = key;
            let _ = writeln!(
                s,
                "  {broker} · {row} · {g} · {}: gone (was {was})",
                class.name()
            );
        }
    }
    // The rows' bounded checks: a verdict per guarantee, with its evidence.
    let checks = |m: &Matrix| {
        let mut all = BTreeMap::new();
        for r in &m.rows {
            let Some(check) = &r.check else { continue };
            for g in check.guarantees.keys() {
                if let Some(text) = check.text(g) {
                    all.insert((r.broker.clone(), r.configuration.clone(), g.clone()), text);
                }
            }
        }
        all
    };
    let (before, after) = (checks(old), checks(new));
    for (key, text) in &after {
        let (broker, row, g) = key;
        match before.get(key) {
            Some(was) if was == text => {}
            Some(was) => {
                let _ = writeln!(
                    s,
                    "  {broker} · {row} · {g} · bounded check: {was} → {text}"
                );
            }
            None => {
                let _ = writeln!(s, "  {broker} · {row} · {g} · bounded check: new: {text}");
            }
        }
    }
    for (key, was) in &before {
        if !after.contains_key(key) {
            let (broker, row, g) = key;
            let _ = writeln!(
                s,
                "  {broker} · {row} · {g} · bounded check: gone (was {was})"
            );
        }
    }
    let (before, after) = (claims(old), claims(new));
    for (key, text) in &after {
        match before.get(key) {
            Some(was) if was == text => {}
            Some(was) => {
                let _ = writeln!(s, "  claim {} {}: {was} → {text}", key.0, key.1);
            }
            None => {
                let _ = writeln!(s, "  claim {} {}: new: {text}", key.0, key.1);
            }
        }
    }
    for (key, was) in &before {
        if !after.contains_key(key) {
            let _ = writeln!(s, "  claim {} {}: gone (was {was})", key.0, key.1);
        }
    }
    if s.is_empty() {
        "\nno change since the matrix compared with\n".into()
    } else {
        format!("\nchanged since the matrix compared with:\n{s}")
    }
}
