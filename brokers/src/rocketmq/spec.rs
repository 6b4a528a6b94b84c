//! RocketMQ's structural invariants, checked by the model checker in every state it reaches.
//!
//! - `DispatchBound`: every broker's ConsumeQueues index only CommitLog entries below its
//!   dispatch bound (`getConfirmOffset`: the flushed position in 5.3 with SYNC_FLUSH, the end
//!   otherwise), each in the queue it was put to; so no pull, which reads the ConsumeQueues
//!   only, hands a consumer an entry past the bound.
//! - `DLedgerElectionSafety` (with `enableDLegerCommitLog`): no two brokers lead the same
//!   term (each vote is persisted before it is given, so two majorities of one term share a
//!   voter who voted once), every DLedger master is its group's leader in its own view, and no
//!   broker's committed index passes its ledger's end.

use super::{DLedgerRole, RocketMq, RocketState};
use crate::{StateInvariant, SystemView};

fn dispatch_bound(view: &SystemView<'_, RocketMq>) -> bool {
    view.nodes.iter().all(|n| match n.state {
        Some(RocketState::Broker(b)) => {
            let log = &b.disk.commitlog;
            b.cq.dispatched <= b.confirm_offset()
                && b.cq.queues.iter().all(|(q, entries)| {
                    entries.iter().all(|at| {
                        *at < b.cq.dispatched && log.get(*at).is_some_and(|m| m.queue == *q)
                    })
                })
        }
        _ => true,
    })
}

fn dledger_election_safety(view: &SystemView<'_, RocketMq>) -> bool {
    let mut leaders = std::collections::BTreeSet::new();
    view.nodes.iter().all(|n| match n.state {
        Some(RocketState::Broker(b)) => match &b.dl {
            Some(dl) => {
                // A broker's name starts with its group's letter.
                let group = n.name.chars().next();
                let unique = dl.role != DLedgerRole::Leader
                    || leaders.insert((group, b.disk.dledger.term));
                unique
                    && (!b.master || dl.role == DLedgerRole::Leader)
                    && dl.committed <= b.disk.commitlog.end()
            }
            None => true,
        },
        _ => true,
    })
}

pub(super) fn invariants() -> Vec<StateInvariant<RocketMq>> {
    vec![
        StateInvariant {
            name: "DispatchBound",
            holds: dispatch_bound,
        },
        StateInvariant {
            name: "DLedgerElectionSafety",
            holds: dledger_election_safety,
        },
    ]
}
