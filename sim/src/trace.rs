//! The readable timeline of a run, and what a replay shows of it: the story of a violation or the
//! whole timeline, filtered by node and time, with what is left out folded into one line.
//!
//! The story is chosen here, for every broker alike, from what the lines are: the lines that name
//! the violation's messages (as [`MsgId`] prints them: sends, appends, replication, acks,
//! deliveries), the nemesis's faults that took effect, and the turns the broker marks
//! ([`mqcheck_brokers::System::notable`]: elections, truncations, ISR or membership changes) from
//! the first mention of those messages on.

use mqcheck_diagram::{Diagram, Row};
use mqcheck_invariants::{secs_unspaced, MsgId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// What a trace line records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A node's own event: it started.
    Node,
    /// A message the node received, as the broker describes it.
    Message,
    /// A message the broker marks as a turn of the story: an election, a truncation, an ISR or
    /// membership change.
    Turn,
    /// What a client's application saw (`app: ack p0:3`).
    App,
    /// The nemesis: a fault taking effect.
    Nemesis,
    /// The nemesis: a fault's end, the heal (in JSON a `nemesis` line too).
    #[serde(rename = "nemesis")]
    Recovery,
}

impl Kind {
    /// Is this a line of the nemesis: a fault, its end, the heal?
    pub fn nemesis(self) -> bool {
        matches!(self, Kind::Nemesis | Kind::Recovery)
    }
}

/// One line of a trace: simulated time, the node (or `nemesis`), what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceLine {
    pub time_ms: u64,
    pub node: String,
    pub kind: Kind,
    /// The sender of a received message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>9}  {:<8} {}",
            secs_unspaced(self.time_ms),
            self.node,
            self.text
        )
    }
}

/// Does `text` hold `token` as a whole word (`n1` in `n1, n2 down`, not in `n12`; `p0:3` in
/// `[p0:3,p0:4]`, not in `p0:30`)?
fn has_token(text: &str, token: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(token).any(|(i, _)| {
        !word(text[..i].chars().next_back()) && !word(text[i + token.len()..].chars().next())
    })
}

impl TraceLine {
    /// Does this line name `msg`?
    pub fn names(&self, msg: &MsgId) -> bool {
        has_token(&self.text, &msg.to_string())
    }

    /// Does this line concern `node`: a step at it, a message from it, a fault that names it?
    pub fn concerns(&self, node: &str) -> bool {
        self.node == node
            || self.from.as_deref() == Some(node)
            || (self.kind.nemesis() && has_token(&self.text, node))
    }

    /// What kind of step this is, for a folded line's counts: the message's name, the
    /// application's verb.
    fn label(&self) -> String {
        let mut words = self.text.split_whitespace();
        match self.kind {
            Kind::App => format!("app: {}", words.nth(1).unwrap_or_default()),
            Kind::Message | Kind::Turn => self
                .text
                .split_once(": ")
                .map_or(&self.text[..], |(_, t)| t)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            Kind::Node | Kind::Nemesis | Kind::Recovery => {
                words.next().unwrap_or_default().to_string()
            }
        }
    }
}

/// Does a line show something happening: an observation, a fault, a turn?
fn eventful(line: &TraceLine) -> bool {
    line.kind == Kind::App || line.kind == Kind::Turn || line.kind.nemesis()
}

/// The lines of the whole timeline but the drain's idle chatter: what follows the last
/// observation, fault or turn (the system polling itself until the run settles).
pub fn full(trace: &[TraceLine]) -> Vec<bool> {
    let end = trace.iter().rposition(eventful).unwrap_or(trace.len());
    (0..trace.len()).map(|i| i <= end).collect()
}

/// The lines of the story of `msgs`: every line that names one of them, every fault that took
/// effect, and the turns from the first mention of the messages on — each the first time a node
/// hears it from a peer, not when it hears the same again. Without messages, the turns of the
/// whole run.
pub fn story(trace: &[TraceLine], msgs: &[MsgId]) -> Vec<bool> {
    let mentions: Vec<bool> = trace
        .iter()
        .map(|l| msgs.iter().any(|m| l.names(m)))
        .collect();
    let first = mentions.iter().position(|m| *m).unwrap_or(0);
    // What each node last heard of each kind of turn from each peer: a turn that says it again
    // (a periodic route or membership answer) is routine.
    let mut told: BTreeMap<(&str, Option<&str>, String), &str> = BTreeMap::new();
    trace
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let new_turn = l.kind == Kind::Turn
                && told.insert((&l.node, l.from.as_deref(), l.label()), &l.text) != Some(&l.text);
            mentions[i] || l.kind.nemesis() || (new_turn && i >= first)
        })
        .collect()
}

/// Which lines a replay prints: those at or from one node, within a time window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub node: Option<String>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
}

impl Filter {
    fn admits(&self, line: &TraceLine) -> bool {
        self.node.as_deref().is_none_or(|n| line.concerns(n))
            && self.from_ms.is_none_or(|t| line.time_ms >= t)
            && self.to_ms.is_none_or(|t| line.time_ms <= t)
    }
}

/// One printed entry of a replay's timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    /// A step; with `fold`, consecutive steps of the same text are one entry: the nodes they
    /// happened at, how many there were, when the last was.
    Step {
        line: TraceLine,
        nodes: Vec<String>,
        count: usize,
        last_ms: u64,
    },
    /// Steps left out: how many, from when to when, the commonest kinds; `idle` when they are
    /// the drain's chatter after the run's last event.
    Folded {
        count: usize,
        from_ms: u64,
        to_ms: u64,
        kinds: Vec<(String, usize)>,
        idle: bool,
    },
}

/// The lines `keep` selects and `filter` admits, in order; each run of admitted lines left out
/// becomes one [`Shown::Folded`], and with `fold_repeats` consecutive steps of the same text one
/// [`Shown::Step`].
pub fn show(trace: &[TraceLine], keep: &[bool], filter: &Filter, fold_repeats: bool) -> Vec<Shown> {
    let idle_from = trace.iter().rposition(eventful).map_or(0, |i| i + 1);
    // A step joins the entry before it when that is a step of the same text.
    let step = |shown: &mut Vec<Shown>, line: &TraceLine| {
        if let Some(Shown::Step {
            line: first,
            nodes,
            count,
            last_ms,
        }) = shown.last_mut()
        {
            if fold_repeats && first.text == line.text {
                if !nodes.contains(&line.node) {
                    nodes.push(line.node.clone());
                }
                *count += 1;
                *last_ms = line.time_ms;
                return;
            }
        }
        shown.push(Shown::Step {
            line: line.clone(),
            nodes: vec![line.node.clone()],
            count: 1,
            last_ms: line.time_ms,
        });
    };
    let fold = |left_out: &mut Vec<usize>, shown: &mut Vec<Shown>| {
        let (Some(&a), Some(&b)) = (left_out.first(), left_out.last()) else {
            return;
        };
        left_out.clear();
        // One step left out takes the line it would be folded into: it is shown.
        if a == b {
            step(shown, &trace[a]);
            return;
        }
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for line in &trace[a..=b] {
            if !filter.admits(line) {
                continue;
            }
            let label = line.label();
            match kinds.iter_mut().find(|(k, _)| *k == label) {
                Some((_, n)) => *n += 1,
                None => kinds.push((label, 1)),
            }
        }
        kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
        shown.push(Shown::Folded {
            count: kinds.iter().map(|k| k.1).sum(),
            from_ms: trace[a].time_ms,
            to_ms: trace[b].time_ms,
            kinds,
            idle: a >= idle_from,
        });
    };
    let mut shown: Vec<Shown> = Vec::new();
    let mut left_out: Vec<usize> = Vec::new();
    for (i, line) in trace.iter().enumerate() {
        if !filter.admits(line) {
            continue;
        }
        if keep[i] {
            fold(&mut left_out, &mut shown);
            step(&mut shown, line);
        } else {
            left_out.push(i);
        }
    }
    fold(&mut left_out, &mut shown);
    shown
}

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shown::Step {
                line,
                nodes,
                count,
                last_ms,
            } => {
                write!(
                    f,
                    "{:>9}  {:<8} {}",
                    secs_unspaced(line.time_ms),
                    nodes.join(","),
                    line.text
                )?;
                if *count > nodes.len() {
                    write!(f, " (×{count}, the last at {})", secs_unspaced(*last_ms))?;
                }
                Ok(())
            }
            Shown::Folded {
                count,
                from_ms,
                to_ms,
                kinds,
                idle,
            } => {
                let mut counts: Vec<String> = kinds
                    .iter()
                    .take(3)
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect();
                if kinds.len() > 3 {
                    counts.push("…".to_string());
                }
                let what = if *idle {
                    "idle steps while the run settled"
                } else {
                    "steps"
                };
                write!(
                    f,
                    "{:>9}  …        {count} {what} until {}: {}",
                    secs_unspaced(*from_ms),
                    secs_unspaced(*to_ms),
                    counts.join(", ")
                )
            }
        }
    }
}

/// The replay's story (or whatever [`show`] selected) as a sequence diagram under `title`: one
/// lifeline per node of `trace`, in the order they started; an arrow per message, from its sender
/// to each node that received it; a red dot on each node a fault hit, a small dot where a fault
/// ends or a client's application acts; a grey band per folded run.
pub fn diagram(title: Vec<String>, trace: &[TraceLine], shown: &[Shown]) -> Diagram {
    let mut lanes: Vec<String> = Vec::new();
    for line in trace {
        if !line.kind.nemesis() && !lanes.contains(&line.node) {
            lanes.push(line.node.clone());
        }
    }
    let lane = |name: &str| lanes.iter().position(|l| l == name);
    // The printed line with its column padding squeezed out.
    let label = |shown: &Shown| {
        shown
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows = shown
        .iter()
        .map(|shown| match shown {
            Shown::Folded { .. } => Row::Folded {
                label: label(shown),
            },
            Shown::Step { line, nodes, .. } => {
                let label = label(shown);
                let at: Vec<usize> = if line.kind.nemesis() {
                    lanes
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| has_token(&line.text, l))
                        .map(|(i, _)| i)
                        .collect()
                } else {
                    nodes.iter().filter_map(|n| lane(n)).collect()
                };
                match (line.kind, line.from.as_deref().and_then(lane)) {
                    (Kind::Message | Kind::Turn, Some(from)) => Row::Message {
                        from,
                        to: at,
                        label,
                    },
                    _ if at.is_empty() => Row::Note { label },
                    (Kind::Nemesis, _) => Row::Fault { lanes: at, label },
                    _ => Row::Event { lanes: at, label },
                }
            }
        })
        .collect();
    Diagram { title, lanes, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time_ms: u64, node: &str, kind: Kind, text: &str) -> TraceLine {
        TraceLine {
            time_ms,
            node: node.into(),
            kind,
            from: text
                .strip_prefix("<- ")
                .and_then(|t| t.split_once(':'))
                .map(|(f, _)| f.to_string()),
            text: text.into(),
        }
    }

    fn trace() -> Vec<TraceLine> {
        vec![
            line(1, "n1", Kind::Node, "started"),
            line(10, "p0", Kind::App, "app: send p0:1 (scope 0)"),
            line(11, "n1", Kind::Message, "<- p0: Produce p0:1"),
            line(12, "n2", Kind::Message, "<- n1: Fetch offset=0"),
            line(13, "n2", Kind::Message, "<- n1: Fetch offset=0"),
            line(20, "p0", Kind::App, "app: send p0:10 (scope 0)"),
            line(21, "n1", Kind::Message, "<- p0: Produce p0:10"),
            line(22, "nemesis", Kind::Nemesis, "crash: n1 down"),
            line(30, "n2", Kind::Turn, "<- ctl: PartitionChange leader=n2"),
            line(30, "n3", Kind::Turn, "<- ctl: PartitionChange leader=n2"),
            line(31, "p0", Kind::App, "app: ack p0:1"),
            line(40, "n2", Kind::Message, "<- c0: Fetch offset=1"),
            line(41, "n2", Kind::Message, "<- c0: Fetch offset=1"),
        ]
    }

    #[test]
    fn a_token_is_a_whole_word() {
        assert!(has_token("[p0:3,p0:4]", "p0:3"));
        assert!(!has_token("p0:30", "p0:3"));
        assert!(!has_token("xp0:3", "p0:3"));
        assert!(has_token("crash: n1, n2 down", "n1"));
        assert!(!has_token("crash: n12 down", "n1"));
    }

    #[test]
    fn the_story_keeps_the_message_the_faults_and_the_turns_and_folds_the_rest() {
        let t = trace();
        let msg = MsgId {
            producer: 0,
            seq: 1,
        };
        let keep = story(&t, &[msg]);
        let shown = show(&t, &keep, &Filter::default(), true);
        let text: Vec<String> = shown.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 8, "{text:#?}");
        // One step left out is shown rather than folded.
        assert!(text[0].contains("n1       started"), "{}", text[0]);
        assert!(text[1].contains("app: send p0:1 "));
        assert!(text[2].contains("Produce p0:1"));
        assert!(
            text[3].contains("Fetch ×2, app: send ×1, Produce ×1"),
            "{}",
            text[3]
        );
        assert!(text[4].contains("crash: n1 down"));
        assert!(
            text[5].contains("n2,n3    <- ctl: PartitionChange"),
            "{}",
            text[5]
        );
        assert!(text[6].contains("app: ack p0:1"));
        assert!(
            text[7].contains("2 idle steps while the run settled"),
            "{}",
            text[7]
        );
    }

    #[test]
    fn the_full_timeline_leaves_out_only_the_idle_drain() {
        let t = trace();
        let keep = full(&t);
        assert_eq!(keep.iter().filter(|k| !**k).count(), 2);
        let shown = show(&t, &keep, &Filter::default(), false);
        assert_eq!(shown.len(), t.len() - 2 + 1);
    }

    #[test]
    fn filters_keep_one_node_and_one_window() {
        let t = trace();
        let keep = full(&t);
        let node = Filter {
            node: Some("n1".into()),
            ..Filter::default()
        };
        let shown = show(&t, &keep, &node, false);
        // n1's start, the two produces it received, the two fetches it sent, its crash.
        assert_eq!(shown.len(), 6, "{shown:#?}");
        let window = Filter {
            from_ms: Some(20),
            to_ms: Some(30),
            ..Filter::default()
        };
        let shown = show(&t, &keep, &window, false);
        assert_eq!(shown.len(), 5);
        assert!(shown.iter().all(|s| match s {
            Shown::Step { line, .. } => (20..=30).contains(&line.time_ms),
            Shown::Folded { .. } => false,
        }));
    }

    #[test]
    fn the_diagram_draws_each_shown_line_on_the_lifelines_it_concerns() {
        let mut trace = trace();
        trace.push(line(50, "nemesis", Kind::Recovery, "restart n1"));
        let keep = story(
            &trace,
            &[MsgId {
                producer: 0,
                seq: 1,
            }],
        );
        let shown = show(&trace, &keep, &Filter::default(), true);
        let d = diagram(vec!["title".into()], &trace, &shown);
        // Lifelines in the order the nodes first appear; `ctl` and `c0` only send here.
        assert_eq!(d.lanes, ["n1", "p0", "n2", "n3"]);
        let rows: Vec<&Row> = d.rows.iter().collect();
        assert_eq!(rows.len(), shown.len(), "one row per shown entry");
        assert_eq!(
            rows[2],
            &Row::Message {
                from: 1,
                to: vec![0],
                label: "0.011s n1 <- p0: Produce p0:1".into()
            }
        );
        assert!(matches!(rows[3], Row::Folded { label }
            if label == "0.012s … 4 steps until 0.021s: Fetch ×2, app: send ×1, Produce ×1"));
        assert_eq!(
            rows[4],
            &Row::Fault {
                lanes: vec![0],
                label: "0.022s nemesis crash: n1 down".into()
            }
        );
        // A turn two nodes heard from a node without a lifeline (`ctl` only sends here): a dot on
        // each; a fault's end and an application's step: a dot where they happen.
        assert!(matches!(rows[5], Row::Event { lanes, .. } if lanes == &[2, 3]));
        assert!(matches!(rows[6], Row::Event { lanes, label }
            if lanes == &[1] && label.ends_with("app: ack p0:1")));
        assert!(matches!(rows[8], Row::Event { lanes, label }
            if lanes == &[0] && label.ends_with("restart n1")));
    }
}
