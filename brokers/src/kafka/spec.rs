//! Kafka's structural invariants, after the TLA+ specifications of its replication protocol
//! (Jack Vanlightly's `kafka-tlaplus`, Jason Gustafson's `kafka-specification`), checked by the
//! model checker in every state it reaches. Each reads the controller's partition records and
//! the live brokers' replicas; a broker that is down has no replica to judge.
//!
//! - `LeaderInIsr`: a partition's leader is a member of its ISR (an unclean election makes the
//!   elected replica the whole ISR, so this holds even then).
//! - `StrongIsr`: every live ISR member holds every record below the leader's high watermark,
//!   the same records at the same offsets. This is what `acks=all` relies on; a power loss that
//!   takes unflushed records from an ISR member breaks it.
//! - `LeaderCompleteness`: the leader holds every record some live replica knows committed
//!   (below that replica's high watermark). Unclean election and high-watermark truncation break
//!   it.
//! - `LogMatching`: two replicas that hold a record of the same leader epoch at the same offset
//!   hold the same records up to it (Raft's Log Matching, which leader-epoch truncation restores
//!   and high-watermark truncation does not).
//! - `Idempotence`: every replica's log holds the records of one idempotent producer id — one
//!   producer session — each once and in send order: retries and epoch bumps neither duplicate
//!   nor reorder (KIP-98, KIP-360). Across sessions (a restarted producer's new id) it promises
//!   nothing; a broker that loses its producer state (unclean election, power loss) may break it.
//!   Transaction markers are not records of the producer's and are left out.

use super::{CommitLog, Kafka, KafkaState, Partition, PartitionState, Replica, ReplicaRole};
use crate::{StateInvariant, SystemView};
use stateright::actor::Id;
use std::collections::BTreeMap;

fn partitions<'a>(view: &'a SystemView<'_, Kafka>) -> &'a [PartitionState] {
    view.nodes
        .iter()
        .find_map(|n| match n.state {
            Some(KafkaState::Controller(c)) => Some(c.partitions.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

/// The live replicas of `partition`, by broker id.
fn replicas<'a>(view: &'a SystemView<'_, Kafka>, partition: Partition) -> Vec<(Id, &'a Replica)> {
    view.nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match n.state {
            Some(KafkaState::Broker(b)) => b
                .replicas
                .iter()
                .find(|r| r.partition == partition)
                .map(|r| (Id::from(i), r)),
            _ => None,
        })
        .collect()
}

/// Do the two logs hold the same records below `offset`?
fn same_prefix(a: &CommitLog, b: &CommitLog, offset: u64) -> bool {
    a.end_offset() >= offset
        && b.end_offset() >= offset
        && a.records()
            .zip(b.records())
            .take(offset as usize)
            .all(|(x, y)| x == y)
}

/// The replica that leads `p` in the controller's current epoch, if it is up and knows it.
fn leader<'a>(view: &'a SystemView<'_, Kafka>, p: &PartitionState) -> Option<&'a Replica> {
    let id = p.leader?;
    replicas(view, p.partition)
        .into_iter()
        .find(|(i, r)| {
            *i == id && matches!(&r.role, ReplicaRole::Leader(l) if l.epoch == p.leader_epoch)
        })
        .map(|(_, r)| r)
}

fn leader_in_isr(view: &SystemView<'_, Kafka>) -> bool {
    partitions(view)
        .iter()
        .all(|p| p.leader.is_none_or(|l| p.isr.contains(&l)))
}

fn strong_isr(view: &SystemView<'_, Kafka>) -> bool {
    partitions(view).iter().all(|p| {
        let Some(lead) = leader(view, p) else {
            return true;
        };
        replicas(view, p.partition)
            .into_iter()
            .filter(|(id, _)| p.isr.contains(id))
            .all(|(_, r)| same_prefix(&lead.log, &r.log, lead.high_watermark))
    })
}

fn leader_completeness(view: &SystemView<'_, Kafka>) -> bool {
    partitions(view).iter().all(|p| {
        let Some(lead) = leader(view, p) else {
            return true;
        };
        replicas(view, p.partition).into_iter().all(|(_, r)| {
            let committed = r.high_watermark.min(r.log.end_offset());
            same_prefix(&lead.log, &r.log, committed)
        })
    })
}

fn log_matching(view: &SystemView<'_, Kafka>) -> bool {
    partitions(view).iter().all(|p| {
        let live = replicas(view, p.partition);
        live.iter().enumerate().all(|(i, (_, a))| {
            live[i + 1..].iter().all(|(_, b)| {
                // The last offset where both hold a record of the same epoch.
                let last_match = a
                    .log
                    .records()
                    .zip(b.log.records())
                    .enumerate()
                    .filter(|(_, (x, y))| x.epoch == y.epoch)
                    .map(|(o, _)| o as u64 + 1)
                    .last()
                    .unwrap_or(0);
                same_prefix(&a.log, &b.log, last_match)
            })
        })
    })
}

fn idempotence(view: &SystemView<'_, Kafka>) -> bool {
    partitions(view).iter().all(|p| {
        replicas(view, p.partition).into_iter().all(|(_, r)| {
            let mut last: BTreeMap<u32, u32> = BTreeMap::new();
            r.log.records().all(|rec| {
                let Some(ps) = rec.producer_seq.filter(|_| rec.control.is_none()) else {
                    return true;
                };
                last.insert(ps.producer_id, rec.msg.seq)
                    .is_none_or(|before| before < rec.msg.seq)
            })
        })
    })
}

pub(super) fn invariants() -> Vec<StateInvariant<Kafka>> {
    vec![
        StateInvariant {
            name: "LeaderInIsr",
            holds: leader_in_isr,
        },
        StateInvariant {
            name: "StrongIsr",
            holds: strong_isr,
        },
        StateInvariant {
            name: "LeaderCompleteness",
            holds: leader_completeness,
        },
        StateInvariant {
            name: "LogMatching",
            holds: log_matching,
        },
        StateInvariant {
            name: "Idempotence",
            holds: idempotence,
        },
    ]
}
