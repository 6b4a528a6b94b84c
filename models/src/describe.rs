//! Steps and states in the broker's vocabulary, for counterexamples and the Explorer.

use crate::model::{CheckModel, CheckState, Step, StepOf};
use mqcheck_brokers::System;
use mqcheck_invariants::secs;
use stateright::actor::Actor;
use stateright::actor::Id;
use stateright::Path;

/// A message as the broker's trace names it, or its `Debug` form for chatter.
fn message<S: System>(msg: &<S::Actor as Actor>::Msg) -> String {
    S::describe(msg).unwrap_or_else(|| format!("{msg:?}"))
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
            format!("{} → {}: {}", n(*src), n(*dst), message::<S>(msg))
        }
        Step::Timeout { node, timer, at } => {
            format!("{} at {}: timer {timer:?} fires", n(*node), secs(*at))
        }
        Step::Random { node, value, .. } => format!("{}: draws {value:?}", n(*node)),
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

/// A state as the Explorer shows it: time, what the nemesis did, each node in the broker's own
/// terms, and the packets in flight.
pub fn state<S: System>(
    state: &CheckState<S>,
    f: &mut std::fmt::Formatter<'_>,
) -> std::fmt::Result {
    writeln!(f, "time {}", secs(state.now))?;
    let n = &state.nemesis;
    writeln!(
        f,
        "nemesis: {} crashes, {} network faults{}",
        n.crashes,
        n.net_faults,
        match n.isolated {
            Some((id, _, at)) => format!(", node {} isolated until {}", usize::from(id), secs(at)),
            None => String::new(),
        }
    )?;
    for (i, slot) in state.nodes.iter().enumerate() {
        match &slot.state {
            Some(s) => writeln!(f, "[{i}] {}", S::show(s))?,
            None => writeln!(f, "[{i}] DOWN")?,
        }
    }
    for ((src, dst), queue) in &state.network {
        for msg in queue.iter() {
            writeln!(
                f,
                "in flight {} → {}: {}",
                usize::from(*src),
                usize::from(*dst),
                message::<S>(msg)
            )?;
        }
    }
    Ok(())
}

/// A counterexample as an SVG sequence diagram: one lifeline per node, one row per step, an
/// arrow per delivered packet.
pub fn svg<S: System>(model: &CheckModel<S>, path: &Path<CheckState<S>, StepOf<S>>) -> String {
    const COL: usize = 110;
    const ROW: usize = 24;
    let steps = path.clone().into_actions();
    let nodes = model.nodes.len();
    let width = COL * (nodes + 4);
    let height = ROW * (steps.len() + 3);
    let x = |id: Id| COL / 2 + COL * usize::from(id);
    let mut out = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='monospace' font-size='11'>\n"
    );
    for (i, node) in model.nodes.iter().enumerate() {
        let cx = x(Id::from(i));
        out += &format!(
            "<text x='{cx}' y='14' text-anchor='middle' font-weight='bold'>{}</text>\n<line x1='{cx}' y1='20' x2='{cx}' y2='{height}' stroke='#bbb'/>\n",
            escape(&node.name)
        );
    }
    for (row, action) in steps.iter().enumerate() {
        let y = ROW * (row + 2);
        let label = escape(&step(model, action));
        let text_x = COL * nodes + 10;
        match action {
            Step::Deliver { src, dst, .. } => {
                out += &format!(
                    "<line x1='{}' y1='{}' x2='{}' y2='{y}' stroke='#333' marker-end='url(#a)'/>\n",
                    x(*src),
                    y - ROW / 2,
                    x(*dst)
                );
            }
            Step::Crash { node: id, .. }
            | Step::PowerLoss { node: id, .. }
            | Step::Isolate(id)
            | Step::Pause(id)
            | Step::ClockFast(id) => {
                out += &format!("<circle cx='{}' cy='{y}' r='6' fill='#c00'/>\n", x(*id));
            }
            _ => {}
        }
        out += &format!("<text x='{text_x}' y='{y}'>{}. {label}</text>\n", row + 1);
    }
    out += "<defs><marker id='a' markerWidth='8' markerHeight='8' refX='8' refY='4' orient='auto'><path d='M0,0 L8,4 L0,8 z'/></marker></defs>\n</svg>\n";
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
