//! RocketMQ's structural invariants, checked by the model checker in every state it reaches.
//!
//! - `DispatchBound`: every broker's ConsumeQueues index only CommitLog entries below its
//!   dispatch bound (`getConfirmOffset`: the flushed position in 5.3 with SYNC_FLUSH, the end
//!   otherwise), each in the queue it was put to; so no pull, which reads the ConsumeQueues
//!   only, hands a consumer an entry past the bound.

use super::{RocketMq, RocketState};
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

pub(super) fn invariants() -> Vec<StateInvariant<RocketMq>> {
    vec![StateInvariant {
        name: "DispatchBound",
        holds: dispatch_bound,
    }]
}
