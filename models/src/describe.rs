//! Steps and states in the broker's vocabulary, for counterexamples and the Explorer.

use crate::model::{CheckModel, CheckState, Step, StepOf};
use mqcheck_brokers::{Names, System};
use mqcheck_diagram::{Diagram, Row};
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
/// partition fault, a grey band per run of folded steps.
pub fn diagram<S: System>(
    model: &CheckModel<S>,
    title: &[String],
    steps: &[StepReport],
    full: bool,
) -> String {
    let told: Vec<Told> = if full {
        steps.iter().map(Told::Step).collect()
    } else {
        story(steps)
    };
    let lane = |name: &Option<String>| {
        model
            .nodes
            .iter()
            .position(|n| Some(&n.name) == name.as_ref())
            .expect("a step names the model's nodes")
    };
    let rows = told
        .iter()
        .map(|told| match told {
            Told::Folded(n) => Row::Folded {
                label: format!(
                    "… {n} step{} folded: timers, heartbeats, empty polls, repeats",
                    if *n == 1 { "" } else { "s" }
                ),
            },
            Told::Step(step) => {
                let label = format!("{}. {}", step.index, step.text);
                match step.kind {
                    "deliver" => Row::Message {
                        from: lane(&step.src),
                        to: vec![lane(&step.dst)],
                        label,
                    },
                    "crash" | "power-loss" | "isolate" | "pause" | "clock-fast" => Row::Fault {
                        lanes: vec![lane(&step.node)],
                        label,
                    },
                    _ if step.node.is_some() => Row::Event {
                        lanes: vec![lane(&step.node)],
                        label,
                    },
                    _ => Row::Note { label },
                }
            }
        })
        .collect();
    Diagram {
        title: title.to_vec(),
        lanes: model.nodes.iter().map(|n| n.name.clone()).collect(),
        rows,
    }
    .svg()
}
