//! Steps and states in the broker's vocabulary, for counterexamples and the Explorer.

use crate::model::{CheckModel, CheckState, Step, StepOf};
use mqcheck_brokers::{Names, System};
use mqcheck_invariants::secs;
use serde::Serialize;
use stateright::actor::Id;
use stateright::Path;
use std::collections::VecDeque;

/// A timer or a random draw in its `Debug` form (`BrokerSession(Id(2))`, `Pace(40)`), with each
/// node id in it named (`BrokerSession(n2)`).
fn named<S: System>(model: &CheckModel<S>, thing: &impl std::fmt::Debug) -> String {
    let mut text = format!("{thing:?}");
    for (i, node) in model.nodes.iter().enumerate() {
        text = text.replace(&format!("Id({i})"), &node.name);
    }
    text
}

/// Is this step routine — a timer firing, or a packet the broker's trace leaves out (heartbeats,
/// empty polls)? A counterexample's story skips them.
pub fn routine<S: System>(step: &StepOf<S>) -> bool {
    match step {
        Step::Deliver { msg, .. } => S::describe(msg).is_none(),
        Step::Timeout { .. } | Step::Retransmit { .. } => true,
        _ => false,
    }
}

/// One step as a line of a story: `n1 → p0: ProduceResponse p0:0 offset 0`.
pub fn step<S: System>(model: &CheckModel<S>, step: &StepOf<S>) -> String {
    let n = |id| model.name(id).to_string();
    match step {
        Step::Deliver { src, dst, msg } => {
            format!("{} → {}: {}", n(*src), n(*dst), S::label(msg))
        }
        Step::Timeout { node, timer, at } => format!(
            "{} at {}: timer {} fires",
            n(*node),
            secs(*at),
            named(model, timer)
        ),
        Step::Random { node, value, .. } => {
            format!("{}: draws {}", n(*node), named(model, value))
        }
        Step::Crash { node, down_ms } => format!(
            "{} crashes (process; page cache kept; down {})",
            n(*node),
            secs(*down_ms)
        ),
        Step::PowerLoss { node, down_ms } => format!(
            "{} loses power (only fsynced data kept; down {})",
            n(*node),
            secs(*down_ms)
        ),
        Step::Restart { node, at } => {
            format!("{} at {}: restarts from its disk", n(*node), secs(*at))
        }
        Step::Lose(a, b) => format!(
            "the next segment {} → {} is lost: it waits for TCP's retransmission",
            n(*a),
            n(*b)
        ),
        Step::Retransmit { src, dst, at } => format!(
            "at {}: TCP retransmits {} → {}",
            secs(*at),
            n(*src),
            n(*dst)
        ),
        Step::Duplicate(a, b) => format!("the next packet {} → {} is duplicated", n(*a), n(*b)),
        Step::Reorder(a, b) => format!("the next two packets {} → {} swap places", n(*a), n(*b)),
        Step::Isolate(id) => format!(
            "{} is partitioned from every other node (its traffic waits)",
            n(*id)
        ),
        Step::Heal { at } => format!("at {}: the partition heals", secs(*at)),
        Step::Pause(id) => format!("{} pauses (it reads nothing, no timer fires)", n(*id)),
        Step::Resume { node, at } => {
            format!("{} at {}: resumes with its old view", n(*node), secs(*at))
        }
        Step::ClockFast(id) => format!("{}'s clock runs fast: its timers fire early", n(*id)),
        Step::ClockCorrect { node, at } => {
            format!("{} at {}: its clock is correct again", n(*node), secs(*at))
        }
    }
}

/// One step of a counterexample, structured: what kind of step, on which node or connection, when,
/// and the line [`step`] tells of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Its position on the path, from 1.
    pub index: usize,
    /// `deliver`, `timeout`, `random`, `crash`, `power-loss`, `restart`, `lose`, `retransmit`,
    /// `duplicate`, `reorder`, `isolate`, `heal`, `pause`, `resume`, `clock-fast` or
    /// `clock-correct`.
    pub kind: &'static str,
    /// The node it happens to (a timer, a draw, a process or clock fault, a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The connection it happens on (a delivery, a loss, a retransmission, a duplicate, a
    /// reorder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    /// Simulated time when it happens.
    pub at_ms: u64,
    /// How long a crashed or powered-off node stays down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_ms: Option<u64>,
    /// The step as a line of the story.
    pub text: String,
    /// A timer or chatter the text summary leaves out (see [`routine`]).
    #[serde(skip)]
    pub routine: bool,
}

/// Every step of `path`, structured.
pub fn steps<S: System>(
    model: &CheckModel<S>,
    path: &Path<CheckState<S>, StepOf<S>>,
) -> Vec<StepReport> {
    model
        .unfold(path)
        .into_iter()
        .filter_map(|(state, action)| Some((state, action?)))
        .enumerate()
        .map(|(i, (state, action))| report(model, i + 1, state.now, &action))
        .collect()
}

/// Where a step happens: on a node, on a connection, or across the cluster (a heal).
enum Place {
    On(Id),
    Link(Id, Id),
    Cluster,
}

/// Step `index` of a path, taken at `now`.
fn report<S: System>(
    model: &CheckModel<S>,
    index: usize,
    now: u64,
    action: &StepOf<S>,
) -> StepReport {
    use Place::{Cluster, Link, On};
    let (kind, place, at, down_ms) = match action {
        Step::Deliver { src, dst, .. } => ("deliver", Link(*src, *dst), None, None),
        Step::Timeout { node, at, .. } => ("timeout", On(*node), Some(*at), None),
        Step::Random { node, .. } => ("random", On(*node), None, None),
        Step::Crash { node, down_ms } => ("crash", On(*node), None, Some(*down_ms)),
        Step::PowerLoss { node, down_ms } => ("power-loss", On(*node), None, Some(*down_ms)),
        Step::Restart { node, at } => ("restart", On(*node), Some(*at), None),
        Step::Lose(src, dst) => ("lose", Link(*src, *dst), None, None),
        Step::Retransmit { src, dst, at } => ("retransmit", Link(*src, *dst), Some(*at), None),
        Step::Duplicate(src, dst) => ("duplicate", Link(*src, *dst), None, None),
        Step::Reorder(src, dst) => ("reorder", Link(*src, *dst), None, None),
        Step::Isolate(node) => ("isolate", On(*node), None, None),
        Step::Heal { at } => ("heal", Cluster, Some(*at), None),
        Step::Pause(node) => ("pause", On(*node), None, None),
        Step::Resume { node, at } => ("resume", On(*node), Some(*at), None),
        Step::ClockFast(node) => ("clock-fast", On(*node), None, None),
        Step::ClockCorrect { node, at } => ("clock-correct", On(*node), Some(*at), None),
    };
    let name = |id: Id| Some(model.name(id).to_string());
    let (node, src, dst) = match place {
        On(id) => (name(id), None, None),
        Link(a, b) => (None, name(a), name(b)),
        Cluster => (None, None, None),
    };
    StepReport {
        index,
        kind,
        node,
        src,
        dst,
        at_ms: at.unwrap_or(now),
        down_ms,
        text: step(model, action),
        routine: routine::<S>(action),
    }
}

/// A line of a counterexample's story: a step that matters, or a run of steps folded into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told<'a> {
    Step(&'a StepReport),
    /// This many routine steps (timers, heartbeats, empty polls) and repeats, folded.
    Folded(usize),
}

/// A counterexample's story: the steps that matter — faults, restarts, heals, and each message
/// of the broker's trace (elections, ISR and membership changes, sends, acknowledgements,
/// deliveries) unless it was told a moment ago (a poll loop) — with each run of the other steps
/// between them folded into one line. The text summary and the diagram both tell this story.
pub fn story(steps: &[StepReport]) -> Vec<Told<'_>> {
    let mut told = Vec::new();
    let mut recent: VecDeque<&str> = VecDeque::new();
    for step in steps {
        if step.routine || (step.kind == "deliver" && recent.contains(&step.text.as_str())) {
            match told.last_mut() {
                Some(Told::Folded(n)) => *n += 1,
                _ => told.push(Told::Folded(1)),
            }
            continue;
        }
        told.push(Told::Step(step));
        recent.push_back(&step.text);
        if recent.len() > 8 {
            recent.pop_front();
        }
    }
    told
}

/// A state as the Explorer shows it: time, what the nemesis did, each node by name in the
/// broker's own terms, and the packets in flight.
pub fn state<S: System>(
    state: &CheckState<S>,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    let names = Names(&state.names);
    writeln!(f, "time {}", secs(state.now))?;
    let n = &state.nemesis;
    writeln!(
        f,
        "nemesis: {} crashes, {} network faults{}",
        n.crashes,
        n.net_faults,
        match n.isolated {
            Some((id, _, at)) => format!(", {} isolated until {}", names.of(id), secs(at)),
            None => String::new(),
        }
    )?;
    for (slot, name) in state.nodes.iter().zip(state.names.iter()) {
        match &slot.state {
            Some(s) => writeln!(f, "{name}: {}", S::show(s, names))?,
            None => writeln!(f, "{name}: DOWN")?,
        }
    }
    for ((src, dst), queue) in &state.network {
        for msg in queue.iter() {
            writeln!(
                f,
                "in flight {} → {}: {}",
                names.of(*src),
                names.of(*dst),
                S::label(msg)
            )?;
        }
    }
    Ok(())
}

/// A path as an SVG sequence diagram, its story told (the Explorer's drawing; see [`diagram`]).
pub fn svg<S: System>(model: &CheckModel<S>, path: &Path<CheckState<S>, StepOf<S>>) -> String {
    let title = [format!("{}: the path so far", S::NAME)];
    diagram(model, &title, &steps(model, path), false)
}

/// Steps as an SVG sequence diagram under its `title` lines: one lifeline per node, one row per
/// step of the story (every step if `full`), an arrow per delivered packet, a dot per process or
/// partition fault, a grey band per run of folded steps. The drawing is as wide as its longest
/// label and as tall as its rows.
pub fn diagram<S: System>(
    model: &CheckModel<S>,
    title: &[String],
    steps: &[StepReport],
    full: bool,
) -> String {
    const COL: usize = 70;
    const ROW: usize = 20;
    // Monospace advance at these sizes is 0.6 em; a little more, so no label is clipped.
    const CHAR: usize = 7;
    const TITLE_CHAR: usize = 8;
    let rows: Vec<Told> = if full {
        steps.iter().map(Told::Step).collect()
    } else {
        story(steps)
    };
    let labels: Vec<String> = rows
        .iter()
        .map(|row| match row {
            Told::Step(step) => format!("{}. {}", step.index, step.text),
            Told::Folded(n) => format!(
                "… {n} step{} folded: timers, heartbeats, empty polls, repeats",
                if *n == 1 { "" } else { "s" }
            ),
        })
        .collect();
    let nodes = model.nodes.len();
    let lanes = COL * nodes;
    let longest = |texts: &[String]| texts.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let width = (lanes + 10 + CHAR * longest(&labels) + 10).max(TITLE_CHAR * longest(title) + 20);
    let names_y = 22 * title.len() + 24;
    let top = names_y + 16;
    let height = top + ROW * (rows.len() + 1);
    let x = |name: &Option<String>| {
        let i = model
            .nodes
            .iter()
            .position(|n| Some(&n.name) == name.as_ref())
            .expect("a step names the model's nodes");
        COL / 2 + COL * i
    };
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='monospace' font-size='11'>\n<rect width='{width}' height='{height}' fill='white'/>\n"
    );
    for (i, line) in title.iter().enumerate() {
        out += &format!(
            "<text x='10' y='{}' font-size='13' font-weight='bold'>{}</text>\n",
            22 * (i + 1),
            escape(line)
        );
    }
    for (i, node) in model.nodes.iter().enumerate() {
        let cx = COL / 2 + COL * i;
        out += &format!(
            "<text x='{cx}' y='{names_y}' text-anchor='middle' font-weight='bold'>{}</text>\n<line x1='{cx}' y1='{}' x2='{cx}' y2='{height}' stroke='#bbb'/>\n",
            escape(&node.name),
            names_y + 6
        );
    }
    for (row, (told, label)) in rows.iter().zip(&labels).enumerate() {
        let y = top + ROW * (row + 1);
        match told {
            Told::Folded(_) => {
                out += &format!(
                    "<rect x='0' y='{}' width='{lanes}' height='{}' fill='#eee'/>\n",
                    y - ROW + 6,
                    ROW - 4
                );
            }
            Told::Step(step) => match step.kind {
                "deliver" => {
                    out += &format!(
                        "<line x1='{}' y1='{}' x2='{}' y2='{y}' stroke='#333' marker-end='url(#a)'/>\n",
                        x(&step.src),
                        y - ROW / 2,
                        x(&step.dst)
                    );
                }
                "crash" | "power-loss" | "isolate" | "pause" | "clock-fast" => {
                    out += &format!(
                        "<circle cx='{}' cy='{y}' r='6' fill='#c00'/>\n",
                        x(&step.node)
                    );
                }
                _ => {}
            },
        }
        let fill = if matches!(told, Told::Folded(_)) {
            " fill='#777'"
        } else {
            ""
        };
        out += &format!(
            "<text x='{}' y='{y}'{fill}>{}</text>\n",
            lanes + 10,
            escape(label)
        );
    }
    out += "<defs><marker id='a' markerWidth='8' markerHeight='8' refX='8' refY='4' orient='auto'><path d='M0,0 L8,4 L0,8 z'/></marker></defs>\n</svg>\n";
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
