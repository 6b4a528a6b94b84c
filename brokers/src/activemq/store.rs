//! The shared store of shared-store master/slave (`failover=true`): the file server that holds
//! KahaDB's journal and `KahaDB/lock` for both brokers, and, under `locker=lease`, the database
//! that holds the lease row. Reliable infrastructure: it never crashes, and its clock is the
//! true time.

use super::kahadb::KahaDb;
use super::protocol::{AmqMsg, Record};
use super::{AmqOut, AmqTimer, Locker, Settings, TICK};
use crate::timers::exact;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub struct SharedStore {
    pub settings: Settings,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreState {
    /// The journal as every broker reads it: what reached the file server.
    pub journal: KahaDb,
    /// What each broker machine wrote and has not yet flushed (fsync, or the close of its files
    /// when its process ends): in its own page cache, in nobody else's view.
    pub unflushed: BTreeMap<Id, Vec<Record>>,
    /// The brokers whose current process introduced itself and has not been seen to end.
    pub open: BTreeSet<Id>,
    /// The process holding the OS lock on `KahaDB/lock`.
    pub lock: Option<Id>,
    /// The lease row (`ACTIVEMQ_LOCK`): `BROKER_NAME` and `TIME`, as the holder's clock wrote it.
    pub lease: Option<(Id, u64)>,
    /// Under `locker=lease`: the host's clock (ms), the brokers' NTP server.
    pub clock: Option<u64>,
}

impl SharedStore {
    pub fn start(&self, o: &mut AmqOut) -> StoreState {
        let lease = self.settings.locker == Locker::Lease;
        if lease {
            o.set_timer(AmqTimer::Tick, exact(TICK));
        }
        StoreState {
            journal: KahaDb::default(),
            unflushed: BTreeMap::new(),
            open: BTreeSet::new(),
            lock: None,
            lease: None,
            clock: lease.then_some(0),
        }
    }

    /// `broker`'s writes reach the file server, where the other broker reads them.
    fn flush(s: &mut StoreState, broker: Id) {
        if let Some(records) = s.unflushed.remove(&broker) {
            s.journal.write(records, true);
        }
    }

    /// A new process on `broker`'s machine. If the store never saw the earlier one close, the
    /// machine went down without its process closing anything (a power loss): its unflushed
    /// writes died with its page cache, and the lock server releases its lock as it reboots
    /// (NLM's reboot notification, NFSv4's new client verifier).
    fn hello(s: &mut StoreState, broker: Id) {
        if s.open.insert(broker) {
            return;
        }
        s.unflushed.remove(&broker);
        if s.lock == Some(broker) {
            s.lock = None;
        }
    }

    pub fn on_msg(&self, s: &mut StoreState, src: Id, msg: AmqMsg, o: &mut AmqOut) {
        match msg {
            AmqMsg::Hello => Self::hello(s, src),
            AmqMsg::Disconnected => {
                // The process died: its kernel closed its files, flushing what it had written
                // (`nfs_file_flush`) before releasing its locks (`locks_remove_posix`).
                Self::flush(s, src);
                if s.lock == Some(src) {
                    s.lock = None;
                }
                s.open.remove(&src);
            }
            AmqMsg::TryLock => {
                let granted = s.lock.is_none_or(|holder| holder == src);
                if granted {
                    s.lock = Some(src);
                }
                o.send(src, AmqMsg::Locked { granted });
            }
            AmqMsg::LeaseObtain { time, now } => {
                let updated = s.lease.is_none_or(|(_, t)| t < now);
                if updated {
                    s.lease = Some((src, time));
                }
                o.send(src, AmqMsg::LeaseResult { updated });
            }
            AmqMsg::LeaseUpdate { time } => {
                let updated = s.lease.is_some_and(|(holder, _)| holder == src);
                if updated {
                    s.lease = Some((src, time));
                }
                o.send(src, AmqMsg::LeaseResult { updated });
            }
            AmqMsg::ReadJournal => {
                let journal = s.journal.clone();
                o.send(src, AmqMsg::Journal { journal });
            }
            AmqMsg::Write { records, sync } => {
                s.unflushed.entry(src).or_default().extend(records);
                if sync {
                    Self::flush(s, src);
                }
                o.send(src, AmqMsg::Written);
            }
            AmqMsg::Sync | AmqMsg::Flush => Self::flush(s, src),
            AmqMsg::NtpQuery => {
                if let Some(ms) = s.clock {
                    o.send(src, AmqMsg::NtpTime { ms });
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut StoreState, timer: &AmqTimer, o: &mut AmqOut) {
        if let (AmqTimer::Tick, Some(clock)) = (timer, s.clock.as_mut()) {
            *clock += TICK.as_millis() as u64;
            o.set_timer(AmqTimer::Tick, exact(TICK));
        }
    }
}
