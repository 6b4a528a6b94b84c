//! The checkers. Each is a pure function from a [`History`] to its violations, in a fixed order.

use crate::{
    secs, GroupId, History, Invariant, Kind, MsgId, Op, OrderingPromise, TxnOutcome, Violation,
};
use std::collections::{BTreeMap, BTreeSet};

/// Runs the checker for `invariant`; ordering is judged inside `promise`.
pub fn check(invariant: Invariant, history: &History, promise: &OrderingPromise) -> Vec<Violation> {
    match invariant {
        Invariant::AtLeastOnce => at_least_once(history),
        Invariant::AtMostOnce => at_most_once(history),
        Invariant::Ordering => ordering(history, promise),
        Invariant::NoUnexpected => no_unexpected(history),
        Invariant::Atomicity => atomicity(history),
        Invariant::Replay => replay(history),
    }
}

/// One delivery, flattened out of the history for the checkers' convenience.
struct Delivery {
    /// Where the delivery is in the history's events.
    index: usize,
    time_ms: u64,
    msg: MsgId,
    group: GroupId,
    consumer: u32,
    scope: u32,
    position: Option<u64>,
    session: u64,
    redelivered: Option<bool>,
}

fn deliveries(history: &History) -> Vec<Delivery> {
    history
        .events
        .iter()
        .enumerate()
        .filter_map(|(index, e)| match &e.op {
            Op::Deliver {
                msg,
                group,
                consumer,
                scope,
                position,
                session,
                redelivered,
            } => Some(Delivery {
                index,
                time_ms: e.time_ms,
                msg: *msg,
                group: *group,
                consumer: *consumer,
                scope: *scope,
                position: *position,
                session: *session,
                redelivered: *redelivered,
            }),
            _ => None,
        })
        .collect()
}

/// Acknowledged messages never delivered to a group of their audience: lost, or dead-lettered
/// when the broker's own dead-letter policy took the message away rather than a fault.
pub fn at_least_once(history: &History) -> Vec<Violation> {
    let mut audience: BTreeMap<MsgId, &[GroupId]> = BTreeMap::new();
    let mut acked: BTreeMap<MsgId, u64> = BTreeMap::new();
    let mut discarded: BTreeMap<MsgId, &str> = BTreeMap::new();
    let mut dead_lettered: BTreeMap<MsgId, &str> = BTreeMap::new();
    for e in &history.events {
        match &e.op {
            Op::Send {
                msg, audience: a, ..
            } => {
                audience.insert(*msg, a);
            }
            Op::Ack { msg } => {
                acked.entry(*msg).or_insert(e.time_ms);
            }
            Op::Discard { msg, reason } => {
                discarded.entry(*msg).or_insert(reason);
            }
            Op::DeadLetter { msg, reason } => {
                dead_lettered.entry(*msg).or_insert(reason);
            }
            _ => {}
        }
    }
    let delivered: BTreeSet<(MsgId, GroupId)> = deliveries(history)
        .iter()
        .map(|d| (d.msg, d.group))
        .collect();
    let mut out = Vec::new();
    for (msg, at) in acked {
        let groups = audience.get(&msg).copied().unwrap_or(&[]);
        let missing: Vec<GroupId> = groups
            .iter()
            .copied()
            .filter(|g| !delivered.contains(&(msg, *g)))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let elsewhere = groups.len() > missing.len();
        let groups_text = missing
            .iter()
            .map(|g| format!("group {g}"))
            .collect::<Vec<_>>()
            .join(", ");
        let (kind, why) = match (dead_lettered.get(&msg), discarded.get(&msg)) {
            (Some(r), _) => (Kind::DeadLettered, format!("; it was dead-lettered: {r}")),
            (None, Some(r)) => (Kind::Lost, format!("; it was discarded: {r}")),
            (None, None) => (Kind::Lost, String::new()),
        };
        out.push(Violation {
            invariant: crate::Invariant::AtLeastOnce,
            kind,
            msgs: vec![msg],
            explanation: format!(
                "{msg} was acknowledged to its producer at {} but {groups_text} never delivered it{}{why}",
                secs(at),
                if elsewhere { " (other groups did)" } else { "" },
            ),
        });
    }
    out
}

/// Messages handed to one group's application more than once. A consumer's replay after a
/// rewind reads again on purpose: its re-reads are the replay checker's, not duplicates.
pub fn at_most_once(history: &History) -> Vec<Violation> {
    let replayed = replay_reads(history);
    let resent: BTreeSet<MsgId> = history
        .events
        .iter()
        .filter_map(|e| match e.op {
            Op::Resend { msg } => Some(msg),
            _ => None,
        })
        .collect();
    let mut by_msg: BTreeMap<(GroupId, MsgId), Vec<Delivery>> = BTreeMap::new();
    for d in deliveries(history)
        .into_iter()
        .filter(|d| !replayed.contains(&d.index))
    {
        by_msg.entry((d.group, d.msg)).or_default().push(d);
    }
    let mut out = Vec::new();
    for ((group, msg), ds) in by_msg {
        if ds.len() < 2 {
            continue;
        }
        let positions: BTreeSet<u64> = ds.iter().filter_map(|d| d.position).collect();
        let times = ds
            .iter()
            .map(|d| format!("{} by consumer {}", secs(d.time_ms), d.consumer))
            .collect::<Vec<_>>()
            .join(", ");
        let why = if positions.len() > 1 {
            let list = positions
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" and ");
            let again = if resent.contains(&msg) {
                ": its producer restarted and sent it again, in a new producer session"
            } else {
                ""
            };
            format!("it is stored more than once, at positions {list}{again}")
        } else if ds.iter().skip(1).any(|d| d.redelivered == Some(true)) {
            "the broker redelivered it, flagged redelivered".to_string()
        } else if resent.contains(&msg) {
            "its producer restarted and sent it again, in a new producer session".to_string()
        } else {
            "it was consumed again from the same position".to_string()
        };
        out.push(Violation {
            invariant: Invariant::AtMostOnce,
            kind: Kind::Duplicate,
            msgs: vec![msg],
            explanation: format!(
                "group {group} delivered {msg} {} times ({times}): {why}",
                ds.len()
            ),
        });
    }
    out
}

/// Send order broken within a (scope, producer) for a group; skips and rewinds within a session.
/// Only what `promise` covers is judged: outside it nothing is out of order. A consumer's replay
/// after a rewind is the replay checker's to judge, and no step of its walk.
pub fn ordering(history: &History, promise: &OrderingPromise) -> Vec<Violation> {
    let replayed = replay_reads(history);
    let all: Vec<Delivery> = deliveries(history)
        .into_iter()
        .filter(|d| !replayed.contains(&d.index))
        .collect();
    let acked: BTreeSet<MsgId> = history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Ack { msg } => Some(*msg),
            _ => None,
        })
        .collect();
    let redelivered = |d: &Delivery| promise.excludes_redelivered && d.redelivered == Some(true);
    let promised =
        |d: &Delivery| !redelivered(d) && (!promise.acknowledged_only || acked.contains(&d.msg));
    let mut out = Vec::new();

    // Reordered: compare each group's first deliveries with the producer's send order.
    let mut seen: BTreeSet<(GroupId, MsgId)> = BTreeSet::new();
    // (group, (consumer, session) when the promise is per session, scope, producer).
    type Key = (GroupId, Option<(u32, u64)>, u32, u32);
    let mut highest: BTreeMap<Key, MsgId> = BTreeMap::new();
    for d in all.iter().filter(|d| promised(d)) {
        if !seen.insert((d.group, d.msg)) {
            continue; // a redelivery is a duplicate, not a reordering
        }
        let session = promise
            .per_consumer_session
            .then_some((d.consumer, d.session));
        let key = (d.group, session, d.scope, d.msg.producer);
        match highest.get(&key) {
            Some(prev) if prev.seq > d.msg.seq => out.push(Violation {
                invariant: Invariant::Ordering,
                kind: Kind::Reordered,
                msgs: vec![*prev, d.msg],
                explanation: format!(
                    "group {} first delivered {} at {} after {}, but {} was {}sent first (scope {}{})",
                    d.group,
                    d.msg,
                    secs(d.time_ms),
                    prev,
                    d.msg,
                    if promise.acknowledged_only {
                        "acknowledged and "
                    } else {
                        ""
                    },
                    d.scope,
                    session.map_or(String::new(), |(c, s)| format!(
                        ", consumer {c} session {s}"
                    ))
                ),
            }),
            _ => {
                highest.insert(key, d.msg);
            }
        }
    }

    // Skips and rewinds: positions known to exist in each scope, and each consumer session's walk.
    let mut known: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for d in &all {
        if let Some(p) = d.position {
            known.entry(d.scope).or_default().insert(p);
        }
    }
    let polls = polls(history);
    // Each session's last step: position, message, where it is in the history, and the recorded
    // poll it came in, if any.
    type Step = (u64, MsgId, usize, Option<usize>);
    let mut last: BTreeMap<(GroupId, u32, u32, u64), Step> = BTreeMap::new();
    for d in all.iter().filter(|d| !redelivered(d)) {
        let Some(pos) = d.position else { continue };
        let key = (d.group, d.consumer, d.scope, d.session);
        let before = last.get(&key).copied();
        // A delivery came in the consumer's last recorded poll if that poll spans its position
        // and the session's previous step came before the poll or in it, lower: a poll's
        // records are handed over in order before the next poll of the scope.
        let poll = polls
            .range(..d.index)
            .rev()
            .find(|(_, p)| (p.group, p.consumer, p.scope) == (d.group, d.consumer, d.scope))
            .filter(|(at, p)| {
                (p.from..p.to).contains(&pos)
                    && before.is_none_or(|(prev, _, prev_at, prev_poll)| {
                        prev_at < **at || (prev_poll == Some(**at) && prev < pos)
                    })
            })
            .map(|(at, _)| *at);
        if let Some((prev, prev_msg, _, prev_poll)) = before {
            if pos <= prev {
                out.push(Violation {
                    invariant: Invariant::Ordering,
                    kind: Kind::NonmonotonicPoll,
                    msgs: vec![prev_msg, d.msg],
                    explanation: format!(
                        "consumer {} of group {} went back from position {prev} ({prev_msg}) to {pos} ({}) at {} without a rebalance",
                        d.consumer, d.group, d.msg, secs(d.time_ms)
                    ),
                });
            } else if let Some(skipped) = known
                .get(&d.scope)
                .and_then(|k| k.range(prev + 1..pos).next())
            {
                let (kind, within) = if poll.is_some() && poll == prev_poll {
                    (Kind::IntPollSkip, " within one poll")
                } else {
                    (Kind::PollSkip, "")
                };
                out.push(Violation {
                    invariant: Invariant::Ordering,
                    kind,
                    msgs: vec![prev_msg, d.msg],
                    explanation: format!(
                        "consumer {} of group {} jumped from position {prev} ({prev_msg}) to {pos} ({}) at {}{within}, skipping position {skipped} without a rebalance",
                        d.consumer, d.group, d.msg, secs(d.time_ms)
                    ),
                });
            }
        }
        last.insert(key, (pos, d.msg, d.index, poll));
    }
    out
}

/// A recorded [`Op::Poll`]: whose, and which positions it spans.
struct PollSpan {
    group: GroupId,
    consumer: u32,
    scope: u32,
    from: u64,
    to: u64,
}

/// The recorded polls by their index in the history's events.
fn polls(history: &History) -> BTreeMap<usize, PollSpan> {
    history
        .events
        .iter()
        .enumerate()
        .filter_map(|(index, e)| match e.op {
            Op::Poll {
                group,
                consumer,
                scope,
                from,
                to,
            } => Some((
                index,
                PollSpan {
                    group,
                    consumer,
                    scope,
                    from,
                    to,
                },
            )),
            _ => None,
        })
        .collect()
}

/// Deliveries of messages that no producer ever sent.
pub fn no_unexpected(history: &History) -> Vec<Violation> {
    let sent: BTreeSet<MsgId> = history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Send { msg, .. } => Some(*msg),
            _ => None,
        })
        .collect();
    let mut reported = BTreeSet::new();
    deliveries(history)
        .into_iter()
        .filter(|d| !sent.contains(&d.msg) && reported.insert(d.msg))
        .map(|d| Violation {
            invariant: Invariant::NoUnexpected,
            kind: Kind::Unexpected,
            msgs: vec![d.msg],
            explanation: format!(
                "group {} delivered {} at {} but no producer ever sent it",
                d.group,
                d.msg,
                secs(d.time_ms)
            ),
        })
        .collect()
}

/// Multipart messages and transactions torn apart, and aborted transactions read: see
/// [`multipart`] and [`transactions`].
pub fn atomicity(history: &History) -> Vec<Violation> {
    let mut out = multipart(history);
    out.extend(transactions(history));
    out
}

/// Transactions that did not reach a group whole or not at all: a group delivered some of a
/// committed (or in-doubt) transaction's messages but not the others addressed to it (`torn`),
/// or delivered a message of an aborted transaction (`aborted-read`, Adya's G1a; the explanation
/// quotes the failure the client was told of its messages, where it recorded one). A committed
/// transaction no group ever saw is at-least-once's business (its messages were acknowledged),
/// not atomicity's; interleaving with other producers' messages is allowed.
pub fn transactions(history: &History) -> Vec<Violation> {
    let mut audience: BTreeMap<MsgId, &[GroupId]> = BTreeMap::new();
    let mut failed: BTreeMap<MsgId, &str> = BTreeMap::new();
    let mut ended = Vec::new();
    for e in &history.events {
        match &e.op {
            Op::Send {
                msg, audience: a, ..
            } => {
                audience.insert(*msg, a);
            }
            Op::Fail { msg, reason } => {
                failed.insert(*msg, reason);
            }
            Op::Transaction { txn, msgs, outcome } => ended.push((*txn, msgs, *outcome, e.time_ms)),
            _ => {}
        }
    }
    // A message some transaction committed (or may have) is not aborted, whatever else aborted it.
    let kept: BTreeSet<MsgId> = ended
        .iter()
        .filter(|(_, _, outcome, _)| *outcome != TxnOutcome::Aborted)
        .flat_map(|(_, msgs, _, _)| msgs.iter().copied())
        .collect();
    let mut delivered: BTreeMap<GroupId, BTreeSet<MsgId>> = BTreeMap::new();
    for d in deliveries(history) {
        delivered.entry(d.group).or_default().insert(d.msg);
    }
    let list = |msgs: &[MsgId]| {
        msgs.iter()
            .map(MsgId::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    for (txn, msgs, outcome, at) in ended {
        for (group, got) in &delivered {
            let seen: Vec<MsgId> = msgs.iter().copied().filter(|m| got.contains(m)).collect();
            if seen.is_empty() {
                continue;
            }
            if outcome == TxnOutcome::Aborted {
                let read: Vec<MsgId> = seen.into_iter().filter(|m| !kept.contains(m)).collect();
                if !read.is_empty() {
                    let told = read
                        .iter()
                        .find_map(|m| failed.get(m))
                        .map(|reason| format!(" (the client was told: {reason})"))
                        .unwrap_or_default();
                    out.push(Violation {
                        invariant: Invariant::Atomicity,
                        kind: Kind::AbortedRead,
                        explanation: format!(
                            "group {group} delivered {} of transaction {txn} [{}], which the producer aborted at {}{told}",
                            list(&read),
                            list(msgs),
                            secs(at)
                        ),
                        msgs: read,
                    });
                }
                continue;
            }
            let missing: Vec<MsgId> = msgs
                .iter()
                .copied()
                .filter(|m| !got.contains(m))
                .filter(|m| audience.get(m).is_some_and(|a| a.contains(group)))
                .collect();
            if !missing.is_empty() {
                out.push(Violation {
                    invariant: Invariant::Atomicity,
                    kind: Kind::Torn,
                    msgs: msgs.clone(),
                    explanation: format!(
                        "group {group} delivered {} of transaction {txn} [{}] ({} at {}) but never {}",
                        list(&seen),
                        list(msgs),
                        outcome.name(),
                        secs(at),
                        list(&missing)
                    ),
                });
            }
        }
    }
    out
}

/// Multipart messages torn apart: a group got some parts but not all, or a consumer handed its
/// application a part out of its place (without the part before it, or with another message in
/// between).
pub fn multipart(history: &History) -> Vec<Violation> {
    let messages: Vec<&[MsgId]> = history
        .events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Multipart { parts } => Some(parts.as_slice()),
            _ => None,
        })
        .collect();
    let mut part_of: BTreeMap<MsgId, (usize, usize)> = BTreeMap::new();
    for (m, parts) in messages.iter().enumerate() {
        for (i, part) in parts.iter().enumerate() {
            part_of.insert(*part, (m, i));
        }
    }
    let list = |parts: &[MsgId]| {
        parts
            .iter()
            .map(MsgId::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = deliveries(history);
    let mut out = Vec::new();
    // All or none, per group.
    let mut got: BTreeMap<(GroupId, usize), BTreeSet<MsgId>> = BTreeMap::new();
    for d in &all {
        if let Some((m, _)) = part_of.get(&d.msg) {
            got.entry((d.group, *m)).or_default().insert(d.msg);
        }
    }
    for ((group, m), parts) in &got {
        let missing: Vec<MsgId> = messages[*m]
            .iter()
            .copied()
            .filter(|p| !parts.contains(p))
            .collect();
        if !missing.is_empty() {
            out.push(Violation {
                invariant: Invariant::Atomicity,
                kind: Kind::Torn,
                msgs: messages[*m].to_vec(),
                explanation: format!(
                    "group {group} delivered part of the multipart message [{}] but never {}",
                    list(messages[*m]),
                    list(&missing)
                ),
            });
        }
    }
    // Consecutive, per consumer: each part follows the one before it.
    let mut expect: BTreeMap<(GroupId, u32), (usize, usize)> = BTreeMap::new();
    for d in &all {
        let key = (d.group, d.consumer);
        let at = part_of.get(&d.msg).copied();
        let awaited = expect.remove(&key);
        let in_place = match (awaited, at) {
            (Some(want), Some(got)) => want == got,
            (Some(_), None) => false,
            (None, at) => at.is_none_or(|(_, i)| i == 0),
        };
        if !in_place {
            let m = at.or(awaited).map_or(0, |(m, _)| m);
            out.push(Violation {
                invariant: Invariant::Atomicity,
                kind: Kind::Torn,
                msgs: messages[m].to_vec(),
                explanation: format!(
                    "consumer {} of group {} delivered {} at {} out of its place in a multipart message{}",
                    d.consumer,
                    d.group,
                    d.msg,
                    secs(d.time_ms),
                    awaited.map_or(String::new(), |(m, i)| format!(
                        ": the next part due was {} of [{}]",
                        messages[m][i],
                        list(messages[m])
                    ))
                ),
            });
            continue;
        }
        if let Some((m, i)) = at {
            if i + 1 < messages[m].len() {
                expect.insert(key, (m, i + 1));
            }
        }
    }
    out
}

/// How a consumer's replay after a rewind ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplayEnd {
    /// It read a position at or past where it had rewound from: it read its way back.
    Complete,
    /// It rewound again first.
    Rewound,
    /// A new session began in its scope (a rebalance, a restart): it may have been assigned
    /// elsewhere.
    Interrupted,
    /// The history ended in the middle of it.
    Unfinished,
}

/// One rewind and what the consumer read after it.
pub(crate) struct Replay {
    time_ms: u64,
    group: GroupId,
    consumer: u32,
    scope: u32,
    session: u64,
    from: u64,
    to: u64,
    /// What was read at each position from `to` up to `from` before the rewind, by anyone.
    before: BTreeMap<u64, MsgId>,
    /// The replay's deliveries: event index, position, message, time.
    reads: Vec<(usize, u64, MsgId, u64)>,
    pub(crate) end: ReplayEnd,
}

/// Every rewind in the history with its replay, in the order of the rewinds.
pub(crate) fn replays(history: &History) -> Vec<Replay> {
    let mut out: Vec<Replay> = Vec::new();
    let mut read: BTreeMap<(u32, u64), MsgId> = BTreeMap::new();
    // (group, consumer, scope) → the replay in progress.
    let mut open: BTreeMap<(GroupId, u32, u32), usize> = BTreeMap::new();
    for (index, e) in history.events.iter().enumerate() {
        match &e.op {
            Op::Rewind {
                group,
                consumer,
                scope,
                session,
                from,
                to,
            } => {
                if let Some(r) = open.remove(&(*group, *consumer, *scope)) {
                    out[r].end = ReplayEnd::Rewound;
                }
                let before = read
                    .range((*scope, *to)..(*scope, *from))
                    .map(|(&(_, p), &m)| (p, m))
                    .collect();
                open.insert((*group, *consumer, *scope), out.len());
                out.push(Replay {
                    time_ms: e.time_ms,
                    group: *group,
                    consumer: *consumer,
                    scope: *scope,
                    session: *session,
                    from: *from,
                    to: *to,
                    before,
                    reads: Vec::new(),
                    end: ReplayEnd::Unfinished,
                });
            }
            Op::Deliver {
                msg,
                group,
                consumer,
                scope,
                position,
                session,
                ..
            } => {
                // A broker may keep a consumer's sessions per scope (one per queue it reads):
                // only a new session in the replay's own scope ends it.
                open.retain(|&(g, c, sc), r| {
                    let other_session = g == *group
                        && c == *consumer
                        && sc == *scope
                        && out[*r].session != *session;
                    if other_session {
                        out[*r].end = ReplayEnd::Interrupted;
                    }
                    !other_session
                });
                let Some(pos) = *position else { continue };
                if let Some(&r) = open.get(&(*group, *consumer, *scope)) {
                    if pos >= out[r].from {
                        out[r].end = ReplayEnd::Complete;
                        open.remove(&(*group, *consumer, *scope));
                    } else {
                        out[r].reads.push((index, pos, *msg, e.time_ms));
                    }
                }
                read.entry((*scope, pos)).or_insert(*msg);
            }
            _ => {}
        }
    }
    out
}

/// The indices of the deliveries that are re-reads of a replay.
fn replay_reads(history: &History) -> BTreeSet<usize> {
    replays(history)
        .iter()
        .flat_map(|r| r.reads.iter().map(|&(index, ..)| index))
        .collect()
}

/// Replay consistency, as Jepsen's Kafka checker judges offsets: a position of a scope holds one
/// message for good, and a consumer that rewinds reads again what was read there before.
///
/// - `inconsistent-offsets`: two reads of one position of a scope (by any consumer, rewound or
///   not) saw different messages: the log was rewritten under a position someone had read.
/// - `replay-skip`: after rewinding from `from` to `to`, the consumer passed over a position
///   between them that had been read before, without reading it again; judged up to its last
///   re-read, and to `from` once it read past `from` or rewound again (a replay the history
///   ends in, or a new session cuts, is judged on what it re-read).
/// - `replay-reordered`: within a replay, the consumer read a position at or before one it had
///   already re-read.
///
/// Nothing here excuses retention or compaction: no model here deletes a record from a log on
/// purpose.
pub fn replay(history: &History) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut at: BTreeMap<(u32, u64), Vec<Delivery>> = BTreeMap::new();
    for d in deliveries(history) {
        if let Some(p) = d.position {
            let seen = at.entry((d.scope, p)).or_default();
            if seen.iter().all(|s| s.msg != d.msg) {
                seen.push(d);
            }
        }
    }
    for ((scope, pos), reads) in at.iter().filter(|(_, r)| r.len() > 1) {
        let list = reads
            .iter()
            .map(|d| {
                format!(
                    "{} (group {} consumer {} at {})",
                    d.msg,
                    d.group,
                    d.consumer,
                    secs(d.time_ms)
                )
            })
            .collect::<Vec<_>>()
            .join(", then as ");
        out.push(Violation {
            invariant: Invariant::Replay,
            kind: Kind::InconsistentOffsets,
            msgs: reads.iter().map(|d| d.msg).collect(),
            explanation: format!("position {pos} of scope {scope} was read as {list}"),
        });
    }
    for r in replays(history) {
        let who = format!(
            "consumer {} of group {} rewound scope {} from position {} to {} at {}",
            r.consumer,
            r.group,
            r.scope,
            r.from,
            r.to,
            secs(r.time_ms)
        );
        let mut last: Option<(u64, MsgId)> = None;
        for &(_, pos, msg, time) in &r.reads {
            if let Some((prev, prev_msg)) = last.filter(|(prev, _)| pos <= *prev) {
                out.push(Violation {
                    invariant: Invariant::Replay,
                    kind: Kind::ReplayReordered,
                    msgs: vec![prev_msg, msg],
                    explanation: format!(
                        "{who}; it re-read position {prev} ({prev_msg}), then went back to position {pos} ({msg}) at {}",
                        secs(time)
                    ),
                });
                continue;
            }
            // A broker may attach a rewound consumer before `to` (it clamps an offset to a
            // shorter log): nothing before its first re-read is skipped.
            let start = last.map_or(r.to, |(prev, _)| prev + 1).min(pos);
            if let Some((&skipped, &skipped_msg)) = r.before.range(start..pos).next() {
                out.push(Violation {
                    invariant: Invariant::Replay,
                    kind: Kind::ReplaySkip,
                    msgs: vec![skipped_msg, msg],
                    explanation: format!(
                        "{who}; it re-read position {pos} ({msg}) at {} without re-reading position {skipped}, where {skipped_msg} had been read",
                        secs(time)
                    ),
                });
            }
            last = Some((pos, msg));
        }
        if matches!(r.end, ReplayEnd::Complete | ReplayEnd::Rewound) {
            let start = last.map_or(r.to, |(prev, _)| prev + 1);
            if let Some((&skipped, &skipped_msg)) = r.before.range(start..r.from).next() {
                let ended = if r.end == ReplayEnd::Complete {
                    "read on past it"
                } else {
                    "rewound again"
                };
                out.push(Violation {
                    invariant: Invariant::Replay,
                    kind: Kind::ReplaySkip,
                    msgs: vec![skipped_msg],
                    explanation: format!(
                        "{who}; it {ended} without re-reading position {skipped}, where {skipped_msg} had been read"
                    ),
                });
            }
        }
    }
    out
}
