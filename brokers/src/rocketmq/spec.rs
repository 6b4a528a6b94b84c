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
//! - `ControllerMasterInSyncStateSet` (with `enableControllerMode`): the controller's master of
//!   each group was elected from the group's SyncStateSet (or was the group's first master)
//!   and is still in it (`alterSyncStateSet` refuses a set without the master); a broker
//!   acting as master in the controller's current epoch of its group is that master; and every
//!   EpochFile ascends in epoch and start offset (`EpochFileCache.appendEntry`). With
//!   `enableElectUncleanMaster=true` the first part can fail: a master elected outside the set.

use super::{DLedgerRole, RocketMq, RocketState};
use crate::{StateInvariant, SystemView};

fn dispatch_bound(view: &SystemView<'_, RocketMq>) -> bool {
    view.nodes.iter().all(|n| match n.state {
        Some(RocketState::Broker(b)) => {
            let log = &b.disk.commitlog;
            // In controller mode the master's confirm offset may fall below what it dispatched
            // while its SyncStateSet was itself alone (`getConfirmOffset` then was the end): the
            // dispatch stops there until the members catch up.
            let bound = if b.ctl.is_some() { log.end() } else { b.confirm_offset() };
            b.cq.dispatched <= bound
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

fn controller_master_in_sync_state_set(view: &SystemView<'_, RocketMq>) -> bool {
    let Some(ctl) = view.nodes.iter().find_map(|n| match n.state {
        Some(RocketState::Controller(c)) => Some(c),
        _ => None,
    }) else {
        return true;
    };
    let elections = ctl.groups.values().all(|g| {
        g.master
            .is_none_or(|m| g.clean && g.sync_state_set.contains(&m))
    });
    elections
        && view.nodes.iter().all(|n| match n.state {
            Some(RocketState::Broker(b)) => {
                let Some(r) = &b.ctl else {
                    return true;
                };
                // A broker's name is its group's letter and its brokerId.
                let group = n.name.as_bytes()[0].saturating_sub(b'a') as u32;
                let broker = n.name[1..].parse::<u32>().map_or(0, |id| id + 1);
                let g = ctl.groups.get(&group);
                let current = g.is_some_and(|g| g.master_epoch == r.master_epoch);
                let ascending = b
                    .disk
                    .epochs
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
                ascending && (!b.master || !current || g.is_some_and(|g| g.master == Some(broker)))
            }
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
        StateInvariant {
            name: "ControllerMasterInSyncStateSet",
            holds: controller_master_in_sync_state_set,
        },
    ]
}
