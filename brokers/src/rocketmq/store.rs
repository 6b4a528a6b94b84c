//! The message store (`DefaultMessageStore`): one CommitLog per broker, the ConsumeQueues as its
//! index, and what survives a crash or a power loss.

use super::protocol::{Message, Mq, QueueId};
use crate::Durable;
use stateright::actor::Id;
use rpds::VectorSync;
use std::collections::BTreeMap;

/// The CommitLog: every message of every queue, appended in arrival order. Positions are
/// record indices, not byte offsets. `flushed` is how much of it was fsynced
/// (`getFlushedWhere`); the rest sits in the page cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitLog {
    pub entries: VectorSync<Message>,
    pub flushed: u64,
}

impl Default for CommitLog {
    fn default() -> Self {
        CommitLog {
            entries: VectorSync::new_sync(),
            flushed: 0,
        }
    }
}

impl CommitLog {
    /// `getMaxOffset`: where the next message goes.
    pub fn end(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn append(&mut self, m: Message) -> u64 {
        self.entries.push_back_mut(m);
        self.end()
    }

    pub fn dirty(&self) -> u64 {
        self.end() - self.flushed
    }

    pub fn flush(&mut self) {
        self.flushed = self.end();
    }

    pub fn get(&self, at: u64) -> Option<&Message> {
        self.entries.get(at as usize)
    }

    /// Drops every entry from `n` on (DLedger's `truncate`).
    pub fn truncate(&mut self, n: u64) {
        if n < self.end() {
            *self = self.truncated(n);
        }
    }

    /// The first `n` entries, as a recovery finds them.
    fn truncated(&self, n: u64) -> CommitLog {
        let mut log = CommitLog::default();
        for m in self.entries.iter().take(n as usize) {
            log.append(*m);
        }
        log.flushed = self.flushed.min(n);
        log
    }
}

/// A broker's disk: the CommitLog and `consumerOffset.json` (the offsets consumers committed,
/// written every `flushConsumerOffsetInterval`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StoreDisk {
    pub commitlog: CommitLog,
    pub offsets: BTreeMap<QueueId, u64>,
    /// With `enableDLegerCommitLog`: the CommitLog is DLedger's entry log, and this its Raft
    /// state.
    pub dledger: DLedgerDisk,
    /// Controller mode: the EpochFile (`EpochFileCache`), each master epoch with the CommitLog
    /// offset it started at, ascending in both.
    pub epochs: Vec<(u32, u64)>,
}

impl StoreDisk {
    /// `EpochFileCache.appendEntry`: refused unless both the epoch and the start offset are
    /// bigger than the last entry's.
    pub fn append_epoch(&mut self, epoch: u32, start: u64) -> bool {
        if let Some(&(e, o)) = self.epochs.last() {
            if e >= epoch || o >= start {
                return false;
            }
        }
        self.epochs.push((epoch, start));
        true
    }

    /// `lastEpoch`: -1 (here `None`) for an empty file.
    pub fn last_epoch(&self) -> Option<u32> {
        self.epochs.last().map(|(e, _)| *e)
    }

    /// `truncateFiles` (`DefaultMessageStore.truncateFiles` and `truncateSuffixByOffset`): the
    /// CommitLog, its ConsumeQueues and the epochs starting at or after `offset` go.
    pub fn truncate_to(&mut self, offset: u64, cq: &mut ConsumeQueues) {
        self.commitlog.truncate(offset);
        if cq.dispatched > offset {
            cq.truncate(offset);
        }
        self.epochs.retain(|(_, start)| *start < offset);
    }
}

/// `EpochFileCache.findConsistentPoint`: from the slave's last epoch down, the first epoch both
/// files have with the same start offset; the consistent offset is the lesser of the two
/// epochs' ends (an epoch ends where the next starts, the last at the log's end). `None`: no
/// common epoch.
pub fn consistent_point(local: &[(u32, u64)], local_end: u64, master: &[(u32, u64)], master_end: u64) -> Option<u64> {
    let end_of = |entries: &[(u32, u64)], i: usize, last: u64| {
        entries.get(i + 1).map_or(last, |(_, start)| *start)
    };
    (0..local.len()).rev().find_map(|i| {
        let (epoch, start) = local[i];
        let j = master.iter().position(|(e, _)| *e == epoch)?;
        (master[j].1 == start).then(|| end_of(local, i, local_end).min(end_of(master, j, master_end)))
    })
}

/// What DLedger keeps on disk besides the entries (`DLedgerMmapFileStore`, `MemberState`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DLedgerDisk {
    /// The term of each CommitLog entry (`DLedgerEntry.term`), position for position.
    pub terms: VectorSync<u64>,
    /// `currTerm` and `voteFor` (`MemberState.persistState`, the `currterm` file).
    pub term: u64,
    pub voted_for: Option<Id>,
    /// The committed index (as a count) `persistCheckPoint` last wrote, every
    /// `checkPointInterval`; the recovery takes it back, capped to the ledger's end.
    pub checkpoint: u64,
}

impl Default for DLedgerDisk {
    fn default() -> Self {
        DLedgerDisk {
            terms: VectorSync::new_sync(),
            term: 0,
            voted_for: None,
            checkpoint: 0,
        }
    }
}

impl DLedgerDisk {
    /// `ledgerEndTerm`: the last entry's term (0 for an empty ledger).
    pub fn end_term(&self) -> u64 {
        self.terms.last().copied().unwrap_or(0)
    }

    pub fn term_at(&self, at: u64) -> Option<u64> {
        self.terms.get(at as usize).copied()
    }

    /// Keeps the first `n` terms.
    pub fn truncate(&mut self, n: u64) {
        while self.terms.len() as u64 > n {
            self.terms.drop_last_mut();
        }
    }
}

impl Durable for StoreDisk {
    /// Only the fsynced part of the CommitLog (and so of DLedger's entries) survives.
    /// DLedger's `currterm` and checkpoint files are kept whole (a simplification: written
    /// without fsync, see the module doc).
    fn after_power_loss(&self) -> Self {
        let n = self.commitlog.flushed;
        let mut dledger = self.dledger.clone();
        dledger.truncate(n);
        // The EpochFile is kept (written without fsync, like DLedger's files); an epoch that
        // starts past the recovered end goes with the entries (`truncateSuffixByOffset`).
        let epochs = self.epochs.iter().copied().filter(|(_, start)| *start <= n).collect();
        StoreDisk {
            commitlog: self.commitlog.truncated(n),
            offsets: self.offsets.clone(),
            dledger,
            epochs,
        }
    }
}

/// What a RocketMQ node keeps on disk besides a client's application log: a broker's store, or a
/// BROADCASTING consumer's `offsets.json` (`LocalFileOffsetStore`: the offset of each queue it
/// consumed, written every `persistConsumerOffsetInterval` with `MixAll.string2File`, never
/// fsynced).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RocketFiles {
    Store(StoreDisk),
    LocalOffsets(BTreeMap<Mq, u64>),
}

impl RocketFiles {
    /// A broker's store (`None` for a consumer's offsets).
    pub fn store(&self) -> Option<&StoreDisk> {
        match self {
            RocketFiles::Store(store) => Some(store),
            RocketFiles::LocalOffsets(_) => None,
        }
    }
}

impl Durable for RocketFiles {
    /// The store keeps its fsynced part. `offsets.json` is kept whole: it is rewritten every few
    /// seconds and the kernel writes it back within its dirty-page expiry, so a power loss takes
    /// back at most its last rewrites — more re-reads, never fewer (a simplification).
    fn after_power_loss(&self) -> Self {
        match self {
            RocketFiles::Store(store) => RocketFiles::Store(store.after_power_loss()),
            RocketFiles::LocalOffsets(offsets) => RocketFiles::LocalOffsets(offsets.clone()),
        }
    }
}

/// The ConsumeQueues: per queue, the CommitLog positions of its messages, in the order
/// `ReputMessageService` dispatched them. A message's index here is its ConsumeQueue offset,
/// what consumers pull by and commit. Only what lies below the dispatch bound
/// (`getConfirmOffset`) is ever dispatched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConsumeQueues {
    pub queues: BTreeMap<QueueId, Vec<u64>>,
    /// `reputFromOffset`: the CommitLog position dispatched up to.
    pub dispatched: u64,
}

impl ConsumeQueues {
    /// `doReput` up to `bound`; returns the queues that got new entries.
    pub fn dispatch(&mut self, log: &CommitLog, bound: u64) -> Vec<QueueId> {
        let mut touched = Vec::new();
        while self.dispatched < bound.min(log.end()) {
            let m = log.get(self.dispatched).expect("below the end");
            self.queues.entry(m.queue).or_default().push(self.dispatched);
            if !touched.contains(&m.queue) {
                touched.push(m.queue);
            }
            self.dispatched += 1;
        }
        touched
    }

    /// Drops every entry at CommitLog position `n` or later (a DLedger follower's truncation
    /// below what it had dispatched: the ConsumeQueues rebuilt to the log, as a recovery does).
    pub fn truncate(&mut self, n: u64) {
        for q in self.queues.values_mut() {
            q.retain(|at| *at < n);
        }
        self.dispatched = self.dispatched.min(n);
    }

    /// `getMaxOffsetInQueue`.
    pub fn max_offset(&self, queue: QueueId) -> u64 {
        self.queues.get(&queue).map_or(0, |q| q.len() as u64)
    }

    /// Up to `n` messages of `queue` from ConsumeQueue offset `from`.
    pub fn read(&self, log: &CommitLog, queue: QueueId, from: u64, n: usize) -> Vec<(u64, Message)> {
        let Some(q) = self.queues.get(&queue) else {
            return Vec::new();
        };
        q.iter()
            .enumerate()
            .skip(from as usize)
            .take(n)
            .filter_map(|(i, at)| log.get(*at).map(|m| (i as u64, *m)))
            .collect()
    }
}

/// 5.x `BoundaryType`: which end of a run of equal timestamps a search by time returns, and
/// on which side of a timestamp no message has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Lower,
    Upper,
}

impl ConsumeQueues {
    /// The `storeTimestamp`s of `queue`'s messages, in ConsumeQueue order
    /// (`CommitLog.pickupStoreTimestamp` of each unit).
    fn stamps(&self, log: &CommitLog, queue: QueueId) -> Vec<i64> {
        self.queues.get(&queue).map_or(Vec::new(), |q| {
            q.iter()
                .map(|at| log.get(*at).map_or(-1, |m| m.store_ms as i64))
                .collect()
        })
    }

    /// 5.3 `ConsumeQueue.getOffsetInQueueByTime(timestamp, boundaryType)`
    /// (`binarySearchInQueueByTime`), over one mapped file, in units rather than bytes. It
    /// assumes the timestamps ascend: the two corner cases look at the last and the first unit
    /// only, and the binary search trusts each probe, so with timestamps out of order (a clock
    /// stepped back) it may return an offset before messages stored after `timestamp`, or
    /// past messages stored at or after it.
    pub fn offset_by_time(
        &self,
        log: &CommitLog,
        queue: QueueId,
        timestamp: u64,
        boundary: Boundary,
    ) -> u64 {
        let ts = self.stamps(log, queue);
        let Some(ceiling) = ts.len().checked_sub(1).map(|c| c as i64) else {
            // No mapped file yet.
            return 0;
        };
        let t = timestamp as i64;
        let at = |i: i64| ts[i as usize];
        let floor = 0;
        // Case 1: the last message is older than the timestamp.
        if at(ceiling) < t {
            return match boundary {
                Boundary::Lower => (ceiling + 1) as u64,
                Boundary::Upper => ceiling as u64,
            };
        }
        // Case 2: the first message is newer.
        if at(floor) > t {
            return 0;
        }
        let (mut low, mut high) = (floor, ceiling);
        let (mut target, mut left, mut right) = (-1i64, -1i64, -1i64);
        while high >= low {
            let mid = (low + high) / 2;
            let store = at(mid);
            if store < 0 {
                return 0;
            } else if store == t {
                target = mid;
                break;
            } else if store > t {
                high = mid - 1;
                right = mid;
            } else {
                low = mid + 1;
                left = mid;
            }
        }
        let offset = if target != -1 {
            // Neighbours may share the timestamp: walk to the end of the run.
            let mut found = target;
            match boundary {
                Boundary::Lower => {
                    while found > floor && at(found - 1) == t {
                        found -= 1;
                    }
                }
                Boundary::Upper => {
                    while found < ceiling && at(found + 1) == t {
                        found += 1;
                    }
                }
            }
            found
        } else {
            match boundary {
                Boundary::Lower => right,
                Boundary::Upper => left,
            }
        };
        offset.max(0) as u64
    }

    /// 4.9 `ConsumeQueue.getOffsetInQueueByTime(timestamp)`: a binary search without the corner
    /// cases or the walk along equal timestamps. An exact match anywhere in a run of equal
    /// timestamps is returned as found; without one, the nearer of the last probes below and
    /// above the timestamp, so it may return a message stored before `timestamp`. Timestamps out
    /// of order mislead it as they mislead 5.3's.
    pub fn offset_by_time_4_9(&self, log: &CommitLog, queue: QueueId, timestamp: u64) -> u64 {
        let ts = self.stamps(log, queue);
        if ts.is_empty() {
            return 0;
        }
        let t = timestamp as i64;
        let (mut low, mut high) = (0i64, ts.len() as i64 - 1);
        let (mut target, mut left, mut right) = (-1i64, -1i64, -1i64);
        let (mut left_value, mut right_value) = (-1i64, -1i64);
        while high >= low {
            let mid = (low + high) / 2;
            let store = ts[mid as usize];
            if store < 0 {
                return 0;
            } else if store == t {
                target = mid;
                break;
            } else if store > t {
                high = mid - 1;
                right = mid;
                right_value = store;
            } else {
                low = mid + 1;
                left = mid;
                left_value = store;
            }
        }
        let offset = if target != -1 {
            target
        } else if left_value == -1 {
            right
        } else if right_value == -1 {
            left
        } else if (t - left_value).abs() > (t - right_value).abs() {
            right
        } else {
            left
        };
        offset.max(0) as u64
    }
}
