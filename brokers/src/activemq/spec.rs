//! ActiveMQ's structural invariants, checked by the model checker in every state it reaches.
//!
//! - `OneLockOwner`: a queue message dispatched to a consumer is locked by that consumer's
//!   subscription and by no other (`QueueMessageReference.lockOwner`): it is in the in-flight
//!   set of exactly the consumer the queue names, and every in-flight message of a consumer is
//!   a queued message locked by it. A message locked twice would be dispatched twice without a
//!   failure; one locked by nobody's subscription would never return to the queue.
//! - `OneMaster`: under `failover=true` with `locker=shared-file`, at most one live broker holds
//!   the lock (recovering or master) at a time. The OS lock on `KahaDB/lock` has one holder,
//!   kept while its process lives — paused or cut off included — and released only when the
//!   process dies (or, after a power loss, when its machine reboots): the locker guarantees it.
//!   A lease does not (it expires by the brokers' clocks while its holder runs), so the
//!   property is not asked of `locker=lease`.

use super::{ActiveMq, AmqState, Locker, Phase};
use crate::{StateInvariant, SystemView};

fn one_lock_owner(view: &SystemView<'_, ActiveMq>) -> bool {
    view.nodes.iter().all(|n| match n.state {
        Some(AmqState::Broker(b)) => {
            let owners_hold = b.queue.iter().all(|(seq, e)| {
                e.dispatched.is_none_or(|c| {
                    b.connections
                        .get(&c)
                        .and_then(|c| c.consumer.as_ref())
                        .is_some_and(|d| d.contains(seq))
                })
            });
            let held_are_owned = b.connections.iter().all(|(id, c)| {
                c.consumer.iter().flatten().all(|seq| {
                    b.queue
                        .get(seq)
                        .is_some_and(|e| e.dispatched == Some(*id))
                })
            });
            owners_hold && held_are_owned
        }
        _ => true,
    })
}

fn one_master(view: &SystemView<'_, ActiveMq>) -> bool {
    let locked: Vec<Locker> = view
        .nodes
        .iter()
        .filter_map(|n| match n.state {
            Some(AmqState::Broker(b)) => b.ha.as_ref().filter(|h| h.phase != Phase::Slave),
            _ => None,
        })
        .map(|h| h.locker)
        .collect();
    locked.len() <= 1 || locked.contains(&Locker::Lease)
}

pub(super) fn invariants() -> Vec<StateInvariant<ActiveMq>> {
    vec![
        StateInvariant {
            name: "OneLockOwner",
            holds: one_lock_owner,
        },
        StateInvariant {
            name: "OneMaster",
            holds: one_master,
        },
    ]
}
