//! The message store (`DefaultMessageStore`): one CommitLog per broker, the ConsumeQueues as its
//! index, and what survives a crash or a power loss.

use super::protocol::{Message, Mq, QueueId};
use crate::Durable;
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
}

impl Durable for StoreDisk {
    /// Only the fsynced part of the CommitLog survives.
    fn after_power_loss(&self) -> Self {
        StoreDisk {
            commitlog: self.commitlog.truncated(self.commitlog.flushed),
            offsets: self.offsets.clone(),
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
