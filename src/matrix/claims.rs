//! The article's claims (`shared/reference/article-claims.md`: its duplication, ordering and
//! transactions dimensions) and their verdicts, generated from the cells: confirmed, refuted, or
//! true only with the configuration and under the faults the cells name.

use super::cells::{join_and, Cell, CellVerdict, Class};
use super::Row;
use mqcheck_invariants::Invariant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the article says a broker guarantees (`true`) or does not (`false`).
struct Said {
    broker: &'static str,
    guarantee: Invariant,
    holds: bool,
    claim: &'static str,
}

const fn said(
    broker: &'static str,
    guarantee: Invariant,
    holds: bool,
    claim: &'static str,
) -> Said {
    Said {
        broker,
        guarantee,
        holds,
        claim,
    }
}

/// The article's table, dimension by dimension: duplication ("at-least-once and at-most-once"),
/// ordering, transactions. A broker the article does not name has no claims; ZeroMQ's "no
/// transactions" is about a feature, which the atomicity of its multipart messages does not
/// judge.
const ARTICLE: &[Said] = &[
    said(
        "kafka",
        Invariant::AtLeastOnce,
        true,
        "Kafka is at-least-once",
    ),
    said(
        "kafka",
        Invariant::AtMostOnce,
        true,
        "Kafka is at-most-once",
    ),
    said(
        "kafka",
        Invariant::Ordering,
        true,
        "Kafka is ordered within a partition",
    ),
    said(
        "kafka",
        Invariant::Atomicity,
        true,
        "Kafka has transactions",
    ),
    said(
        "rabbitmq",
        Invariant::AtLeastOnce,
        true,
        "RabbitMQ is at-least-once",
    ),
    said(
        "rabbitmq",
        Invariant::AtMostOnce,
        true,
        "RabbitMQ is at-most-once",
    ),
    said(
        "rabbitmq",
        Invariant::Ordering,
        false,
        "RabbitMQ is not ordered",
    ),
    said(
        "rabbitmq",
        Invariant::Atomicity,
        true,
        "RabbitMQ has transactions",
    ),
    said(
        "zeromq",
        Invariant::AtLeastOnce,
        false,
        "ZeroMQ is not at-least-once (lost messages are lost)",
    ),
    said(
        "zeromq",
        Invariant::AtMostOnce,
        false,
        "ZeroMQ is not at-most-once",
    ),
    said(
        "zeromq",
        Invariant::Ordering,
        false,
        "ZeroMQ is not ordered",
    ),
    said(
        "rocketmq",
        Invariant::AtLeastOnce,
        true,
        "RocketMQ is at-least-once",
    ),
    said("rocketmq", Invariant::Ordering, true, "RocketMQ is ordered"),
    said(
        "rocketmq",
        Invariant::Atomicity,
        true,
        "RocketMQ has transactions",
    ),
    said(
        "activemq",
        Invariant::AtLeastOnce,
        true,
        "ActiveMQ is at-least-once",
    ),
    said(
        "activemq",
        Invariant::Ordering,
        false,
        "ActiveMQ is not ordered",
    ),
    said(
        "activemq",
        Invariant::Atomicity,
        true,
        "ActiveMQ has transactions",
    ),
    said(
        "kafka",
        Invariant::Replay,
        true,
        "Kafka replays by partition offset",
    ),
    said(
        "rocketmq",
        Invariant::Replay,
        true,
        "RocketMQ replays by timestamp",
    ),
    said(
        "rabbitmq",
        Invariant::Replay,
        false,
        "RabbitMQ has no replay",
    ),
];

/// The verdict on one claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimVerdict {
    /// True as the article states it: out of the box, under every fault the matrix ran.
    Confirmed,
    /// False: the guarantee the article claims breaks in every configuration, or the one it
    /// denies holds in some configuration under every fault TCP allows.
    Refuted,
    /// True only with some configuration, or only under some faults.
    Conditional,
    /// No row tested it.
    NotTested,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub broker: String,
    pub guarantee: String,
    /// The article's words.
    pub claim: String,
    /// The article says the broker gives the guarantee (`false`: says it does not).
    pub article_says_it_holds: bool,
    pub verdict: ClaimVerdict,
    /// The conditions and the evidence, in a sentence generated from the cells.
    pub explanation: String,
}

/// One row's cells for one guarantee, judged.
struct Judged<'a> {
    row: &'a Row,
    cells: &'a BTreeMap<Class, Cell>,
}

impl Judged<'_> {
    fn verdict(&self, class: Class) -> Option<CellVerdict> {
        self.cells.get(&class).map(|c| c.verdict)
    }

    /// Held under every realistic class that ran, and under their combination.
    fn holds_everywhere(&self, classes: &[Class]) -> bool {
        classes
            .iter()
            .all(|c| self.verdict(*c) == Some(CellVerdict::Held))
    }

    fn held(&self, classes: &[Class]) -> Vec<Class> {
        self.with(classes, CellVerdict::Held)
    }

    fn broken(&self, classes: &[Class]) -> Vec<Class> {
        self.with(classes, CellVerdict::Broken)
    }

    fn with(&self, classes: &[Class], v: CellVerdict) -> Vec<Class> {
        classes
            .iter()
            .copied()
            .filter(|c| self.verdict(*c) == Some(v))
            .collect()
    }

    fn tested(&self) -> bool {
        self.cells.values().any(|c| {
            !matches!(
                c.verdict,
                CellVerdict::NotTested | CellVerdict::NotSupported
            )
        })
    }

    /// "`acks=all` `min.insync.replicas=2`", or "its defaults".
    fn settings(&self) -> String {
        settings(&self.row.settings)
    }

    /// What breaks it under `classes`: "power loss (lost, seed 29)", each class once.
    fn breaks(&self, classes: &[Class]) -> String {
        let parts: Vec<String> = self
            .broken(classes)
            .into_iter()
            .map(|class| {
                let c = self.cells[&class]
                    .counterexample
                    .as_ref()
                    .expect("a broken cell has its counterexample");
                if c.broken_by.is_empty() {
                    format!(
                        "{} (needing no fault: {}, seed {})",
                        class.words(),
                        c.kind,
                        c.seed
                    )
                } else if class == Class::Tcp {
                    format!(
                        "{} together ({}, seed {})",
                        names(&c.broken_by),
                        c.kind,
                        c.seed
                    )
                } else {
                    format!("{} ({}, seed {})", class.words(), c.kind, c.seed)
                }
            })
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        join_and(&parts)
    }
}

fn settings(sets: &[String]) -> String {
    if sets.is_empty() {
        "its defaults".into()
    } else {
        sets.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn names(classes: &[Class]) -> String {
    if Class::REALISTIC
        .into_iter()
        .chain([Class::Tcp])
        .all(|c| classes.contains(&c))
    {
        return "every fault TCP allows, each class alone and together".into();
    }
    let alone: Vec<&str> = classes
        .iter()
        .filter(|c| **c != Class::Tcp)
        .map(|c| c.words())
        .collect();
    let alone = join_and(&alone);
    // The combined sweep holding beside a class that breaks alone is sampling, not a
    // contradiction: its seeds missed what the class's own sweep found.
    match (classes.contains(&Class::Tcp), alone.is_empty()) {
        (false, _) => alone,
        (true, true) => "every fault TCP allows together, whose seeds missed what breaks it".into(),
        (true, false) => format!(
            "{alone}, and in the sweep of every fault TCP allows together, whose seeds missed \
             what breaks it"
        ),
    }
}

/// Every claim the article makes about a broker with rows, judged from the rows' cells.
pub fn claims(rows: &[Row], classes: &[Class]) -> Vec<Claim> {
    let realistic: Vec<Class> = Class::REALISTIC
        .into_iter()
        .chain([Class::Tcp])
        .filter(|c| classes.contains(c))
        .collect();
    let mut out = Vec::new();
    for said in ARTICLE {
        let judged: Vec<Judged> = rows
            .iter()
            .filter(|r| r.broker == said.broker)
            .filter_map(|row| {
                let cells = row.cells.get(said.guarantee.name())?;
                Some(Judged { row, cells })
            })
            .filter(Judged::tested)
            .collect();
        let asked = rows
            .iter()
            .any(|r| r.broker == said.broker && r.cells.contains_key(said.guarantee.name()));
        if !asked {
            continue;
        }
        let unsupported = rows
            .iter()
            .filter(|r| r.broker == said.broker)
            .filter_map(|r| r.cells.get(said.guarantee.name()))
            .all(|cells| {
                cells
                    .values()
                    .all(|c| c.verdict == CellVerdict::NotSupported)
            });
        let (verdict, explanation) = if unsupported {
            (
                ClaimVerdict::NotTested,
                "not supported by the model: its consumers cannot rewind".to_string(),
            )
        } else if judged.is_empty() || realistic.is_empty() {
            (
                ClaimVerdict::NotTested,
                "no configuration's workload gives it anything to judge".to_string(),
            )
        } else if said.holds {
            positive(&judged, &realistic, classes)
        } else if said.guarantee == Invariant::Replay {
            lacking(&judged, &realistic, classes)
        } else {
            negative(&judged, &realistic, classes)
        };
        out.push(Claim {
            broker: said.broker.into(),
            guarantee: said.guarantee.name().into(),
            claim: said.claim.into(),
            article_says_it_holds: said.holds,
            verdict,
            explanation,
        });
    }
    out
}

/// "; beyond TCP it breaks: duplicate (seed 3)", when the beyond-TCP sweep ran and broke it.
fn beyond(j: &Judged, classes: &[Class]) -> String {
    if !classes.contains(&Class::BeyondTcp) || j.broken(&[Class::BeyondTcp]).is_empty() {
        return String::new();
    }
    let c = j.cells[&Class::BeyondTcp]
        .counterexample
        .as_ref()
        .expect("a broken cell has its counterexample");
    format!("; beyond TCP it breaks ({}, seed {})", c.kind, c.seed)
}

/// The settings of the rows, at most [`LISTED`] of them: "`a=1`, or `b=2`, or 3 more".
fn alternatives(rows: &[&Judged]) -> String {
    let mut with: Vec<String> = rows.iter().take(LISTED).map(|j| j.settings()).collect();
    if rows.len() > LISTED {
        with.push(format!("{} more", rows.len() - LISTED));
    }
    with.join(", or with ")
}

/// What breaks each row, at most [`LISTED`] of them: "with `acks=1` by process crash (lost,
/// seed 3); …".
fn each_broken(rows: &[&Judged], realistic: &[Class]) -> String {
    let mut each: Vec<String> = rows
        .iter()
        .take(LISTED)
        .map(|j| format!("with {} by {}", j.settings(), j.breaks(realistic)))
        .collect();
    if rows.len() > LISTED {
        each.push(format!("and {} more", rows.len() - LISTED));
    }
    each.join("; ")
}

/// How many configurations a claim's sentence names before "N more".
const LISTED: usize = 3;

/// A guarantee the article claims.
fn positive(judged: &[Judged], realistic: &[Class], classes: &[Class]) -> (ClaimVerdict, String) {
    let defaults = judged.iter().find(|j| j.row.settings.is_empty());
    let everywhere: Vec<&Judged> = judged
        .iter()
        .filter(|j| j.holds_everywhere(realistic))
        .collect();
    if let Some(d) = defaults.filter(|d| d.holds_everywhere(realistic)) {
        return (
            ClaimVerdict::Confirmed,
            format!(
                "holds out of the box under {}{}",
                names(realistic),
                beyond(d, classes)
            ),
        );
    }
    let out_of_the_box = defaults
        .filter(|d| !d.broken(realistic).is_empty())
        .map(|d| {
            let held = d.held(realistic);
            let held = if held.is_empty() {
                String::new()
            } else {
                format!("holds under {} but is ", names(&held))
            };
            format!(
                "; out of the box it {held}broken by {}",
                d.breaks(realistic)
            )
        })
        .unwrap_or_default();
    if let Some(first) = everywhere.first() {
        return (
            ClaimVerdict::Conditional,
            format!(
                "holds with {} under {}{}{out_of_the_box}",
                alternatives(&everywhere),
                names(realistic),
                beyond(first, classes)
            ),
        );
    }
    // The row that holds under the most classes, the earliest of equals.
    let best = judged
        .iter()
        .max_by_key(|j| {
            (
                j.held(realistic).len(),
                std::cmp::Reverse(j.broken(realistic).len()),
            )
        })
        .expect("some row");
    let held = best.held(realistic);
    if held.is_empty() {
        let broken: Vec<&Judged> = judged
            .iter()
            .filter(|j| !j.broken(realistic).is_empty())
            .collect();
        return (
            ClaimVerdict::Refuted,
            format!(
                "broken in every configuration: {}",
                each_broken(&broken, realistic)
            ),
        );
    }
    // For each class that breaks the best row, the settings of rows it does not break.
    let unless: Vec<String> = best
        .broken(realistic)
        .into_iter()
        .filter_map(|class| {
            let fixes: Vec<String> = judged
                .iter()
                .filter(|j| j.verdict(class) == Some(CellVerdict::Held))
                .map(|j| {
                    let extra: Vec<String> = j
                        .row
                        .settings
                        .iter()
                        .filter(|s| !best.row.settings.contains(s))
                        .cloned()
                        .collect();
                    settings(&extra)
                })
                .filter(|s| s != "its defaults")
                .collect();
            (!fixes.is_empty()).then(|| format!("{} unless {}", class.words(), fixes.join(" or ")))
        })
        .collect();
    let out_of_the_box = if best.row.settings.is_empty() {
        String::new()
    } else {
        out_of_the_box
    };
    let unless = if unless.is_empty() {
        String::new()
    } else {
        format!(" (held under {})", unless.join("; "))
    };
    (
        ClaimVerdict::Conditional,
        format!(
            "holds with {} under {}; broken by {}{unless}{}{out_of_the_box}",
            best.settings(),
            names(&held),
            best.breaks(realistic),
            beyond(best, classes)
        ),
    )
}

/// A guarantee the article denies.
fn negative(judged: &[Judged], realistic: &[Class], classes: &[Class]) -> (ClaimVerdict, String) {
    let everywhere: Vec<&Judged> = judged
        .iter()
        .filter(|j| j.holds_everywhere(realistic))
        .collect();
    if let Some(first) = everywhere.first() {
        return (
            ClaimVerdict::Refuted,
            format!(
                "it holds with {} under {}{}",
                alternatives(&everywhere),
                names(realistic),
                beyond(first, classes)
            ),
        );
    }
    let broken: Vec<&Judged> = judged
        .iter()
        .filter(|j| !j.broken(realistic).is_empty())
        .collect();
    let each = each_broken(&broken, realistic);
    if broken.len() == judged.len() {
        (
            ClaimVerdict::Confirmed,
            format!("broken in every configuration: {each}"),
        )
    } else {
        (
            ClaimVerdict::Conditional,
            format!(
                "never shown to hold under every fault, but broken only {each}; the other configurations are inconclusive"
            ),
        )
    }
}

/// A feature the article says a broker lacks (replay): a configuration whose consumers rewind
/// and re-read consistently under some fault class shows that it has it, whatever breaks it
/// under the others; only when none does is it judged as a denied guarantee.
fn lacking(judged: &[Judged], realistic: &[Class], classes: &[Class]) -> (ClaimVerdict, String) {
    let best = judged
        .iter()
        .filter(|j| !j.held(realistic).is_empty())
        .max_by_key(|j| {
            (
                j.held(realistic).len(),
                std::cmp::Reverse(j.broken(realistic).len()),
            )
        });
    let Some(best) = best else {
        return negative(judged, realistic, classes);
    };
    let broken = if best.broken(realistic).is_empty() {
        String::new()
    } else {
        format!("; broken by {}", best.breaks(realistic))
    };
    (
        ClaimVerdict::Refuted,
        format!(
            "it replays with {} under {}{broken}{}",
            best.settings(),
            names(&best.held(realistic)),
            beyond(best, classes)
        ),
    )
}

impl ClaimVerdict {
    pub fn name(self) -> &'static str {
        match self {
            ClaimVerdict::Confirmed => "confirmed",
            ClaimVerdict::Refuted => "refuted",
            ClaimVerdict::Conditional => "conditional",
            ClaimVerdict::NotTested => "not tested",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Kafka's transactions row as the matrix once judged it: power loss breaks atomicity alone,
    /// while the combined sweep's seeds held.
    fn transactions_row(combined: &str) -> Row {
        let cell = |verdict: &str| {
            let mut c = json!({
                "verdict": verdict, "runs": 20, "violations": 0, "acknowledged": 800,
                "delivered": 800, "faults_applied": 40,
            });
            if verdict == "broken" {
                c["violations"] = json!(1);
                c["counterexample"] = json!({
                    "seed": 9, "kind": "torn", "explanation": "", "replay": "",
                    "broken_by": ["power"], "minimal_schedule": [],
                });
            }
            c
        };
        serde_json::from_value(json!({
            "broker": "kafka",
            "configuration": "transactions",
            "settings": ["transactional.id=producer"],
            "claim": "Kafka has transactions",
            "cells": { "atomicity": {
                "crash": cell("held"), "power": cell("broken"), "pause": cell("held"),
                "network": cell("held"), "clock": cell("held"), "tcp": cell(combined),
            }},
        }))
        .unwrap()
    }

    fn explanation(rows: &[Row]) -> String {
        let classes = [Class::REALISTIC.as_slice(), &[Class::Tcp]].concat();
        let found = claims(rows, &classes);
        let claim = found
            .iter()
            .find(|c| c.claim == "Kafka has transactions")
            .unwrap();
        assert_eq!(claim.verdict, ClaimVerdict::Conditional, "{claim:?}");
        claim.explanation.clone()
    }

    #[test]
    fn a_replay_that_power_loss_breaks_still_refutes_no_replay() {
        let mut row = transactions_row("broken");
        row.broker = "rabbitmq".into();
        row.settings = vec!["queue.type=stream".into()];
        let cells = row.cells.remove("atomicity").unwrap();
        row.cells.insert("replay".into(), cells);
        let classes = [Class::REALISTIC.as_slice(), &[Class::Tcp]].concat();
        let found = claims(&[row.clone()], &classes);
        let claim = found
            .iter()
            .find(|c| c.claim == "RabbitMQ has no replay")
            .unwrap();
        assert_eq!(claim.verdict, ClaimVerdict::Refuted, "{claim:?}");
        assert!(
            claim.explanation.starts_with(
                "it replays with `queue.type=stream` under process crash, pause, network faults \
                 and clock skew; broken by power loss (torn, seed 9)"
            ),
            "{claim:?}"
        );
        // A replay broken under every class that ran is no evidence of the feature.
        for cell in row.cells.get_mut("replay").unwrap().values_mut() {
            *cell = row_cell_broken();
        }
        let found = claims(&[row], &classes);
        let claim = found
            .iter()
            .find(|c| c.claim == "RabbitMQ has no replay")
            .unwrap();
        assert_eq!(claim.verdict, ClaimVerdict::Confirmed, "{claim:?}");
    }

    /// A broken cell of [`transactions_row`].
    fn row_cell_broken() -> Cell {
        transactions_row("held").cells["atomicity"][&Class::Power].clone()
    }

    #[test]
    fn a_combined_sweep_that_held_beside_a_broken_class_is_said_to_have_missed_it() {
        let text = explanation(&[transactions_row("held")]);
        assert!(
            text.contains(
                "under process crash, pause, network faults and clock skew, and in the sweep of \
                 every fault TCP allows together, whose seeds missed what breaks it; broken by \
                 power loss (torn, seed 9)"
            ),
            "{text}"
        );
        let text = explanation(&[transactions_row("broken")]);
        assert!(
            text.contains("under process crash, pause, network faults and clock skew; broken by"),
            "{text}"
        );
        assert!(!text.contains("missed"), "{text}");
    }
}
