//! A partition replica's `CommitLog`: records with the leader epoch that appended them, the part
//! already fsynced, and the leader-epoch lookups of KIP-101/KIP-279.

use mqcheck_invariants::MsgId;
use rpds::VectorSync;
use serde::{Deserialize, Serialize};

/// A leader epoch: bumped by the controller at every leader election.
pub type LeaderEpoch = u32;

/// One record. Batches hold one record each in this model, so a record is also a batch: it
/// carries the producer id and sequence number the idempotent producer assigned (KIP-98).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Record {
    pub epoch: LeaderEpoch,
    pub msg: MsgId,
    /// Producer id and per-partition sequence; `None` for a non-idempotent producer.
    pub producer_seq: Option<(u32, u32)>,
}

/// The on-disk log of one partition replica. Records sit in a persistent vector: the broker
/// saves its log after every append, and a snapshot then costs nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitLog {
    records: VectorSync<Record>,
    /// Offsets below this were fsynced; the rest is only in the page cache.
    pub flushed: u64,
}

impl Default for CommitLog {
    fn default() -> Self {
        CommitLog::new(Vec::new(), 0)
    }
}

impl CommitLog {
    pub fn new(records: Vec<Record>, flushed: u64) -> Self {
        let mut log = CommitLog {
            records: VectorSync::new_sync(),
            flushed,
        };
        for r in records {
            log.records.push_back_mut(r);
        }
        log
    }

    /// The records, from offset 0.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &Record> {
        self.records.iter()
    }

    fn epoch_at(&self, offset: usize) -> LeaderEpoch {
        self.records[offset].epoch
    }

    /// The log end offset (LEO): the offset the next record gets.
    pub fn end_offset(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn append(&mut self, record: Record) -> u64 {
        self.records.push_back_mut(record);
        self.end_offset() - 1
    }

    /// Drops every record at or above `offset` (a follower's truncation, a power loss).
    pub fn truncate(&mut self, offset: u64) {
        while self.end_offset() > offset {
            self.records.drop_last_mut();
        }
        self.flushed = self.flushed.min(offset);
    }

    /// `flush.messages`: fsync once `every` records sit unflushed. `None` never forces a flush:
    /// Kafka's default, relying on replication and the OS page cache.
    pub fn maybe_flush(&mut self, every: Option<u64>) {
        if let Some(n) = every {
            if self.end_offset() - self.flushed >= n {
                self.flushed = self.end_offset();
            }
        }
    }

    /// The epoch of the last record (0 when the log is empty).
    pub fn latest_epoch(&self) -> LeaderEpoch {
        self.records.last().map_or(0, |r| r.epoch)
    }

    /// The first offset written in `epoch` or later (the leader-epoch cache's start offset).
    pub fn start_offset_of(&self, epoch: LeaderEpoch) -> u64 {
        // Epochs only grow along the log: binary search.
        let (mut lo, mut hi) = (0, self.records.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.epoch_at(mid) < epoch {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo as u64
    }

    /// The OffsetsForLeaderEpoch answer (KIP-101, refined by KIP-279): the largest epoch this log
    /// holds that is not above `epoch`, and the offset where that epoch ends here.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> (LeaderEpoch, u64) {
        let found = self
            .records
            .iter()
            .rev()
            .map(|r| r.epoch)
            .find(|e| *e <= epoch)
            .unwrap_or(0);
        (found, self.start_offset_of(found + 1))
    }

    /// Records from `offset` up to (not including) `limit`, at most `max` of them.
    pub fn read(&self, offset: u64, limit: u64, max: usize) -> Vec<Record> {
        let end = limit.min(self.end_offset());
        if offset >= end {
            return Vec::new();
        }
        (offset as usize..end as usize)
            .take(max)
            .map(|i| self.records[i].clone())
            .collect()
    }

    /// Where the records of `producer` stand: `Some(offset)` of the record with sequence `seq`
    /// if it is already in the log (a retried batch), and the last sequence seen.
    pub fn producer_state(&self, producer: u32, seq: u32) -> (Option<u64>, Option<u32>) {
        let mut duplicate = None;
        let mut last = None;
        for (offset, r) in self.records.iter().enumerate() {
            if let Some((p, s)) = r.producer_seq {
                if p == producer {
                    last = Some(s);
                    if s == seq {
                        duplicate = Some(offset as u64);
                    }
                }
            }
        }
        (duplicate, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(epochs: &[LeaderEpoch]) -> CommitLog {
        CommitLog::new(
            epochs
                .iter()
                .enumerate()
                .map(|(i, e)| Record {
                    epoch: *e,
                    msg: MsgId {
                        producer: 0,
                        seq: i as u32,
                    },
                    producer_seq: Some((0, i as u32)),
                })
                .collect(),
            0,
        )
    }

    #[test]
    fn offsets_for_leader_epoch_follow_kip_279() {
        let leader = log(&[1, 1, 3, 3]);
        // The follower's last epoch is 2, which the leader never had: it answers with epoch 1,
        // ending at offset 2, so a follower holding [1, 1, 2] truncates its epoch-2 record.
        assert_eq!(leader.end_offset_for_epoch(2), (1, 2));
        assert_eq!(leader.end_offset_for_epoch(3), (3, 4));
        assert_eq!(leader.end_offset_for_epoch(0), (0, 0));
        let follower = log(&[1, 1, 2]);
        assert_eq!(follower.end_offset_for_epoch(1), (1, 2));
    }

    #[test]
    fn power_loss_keeps_flushed_prefix_only() {
        let mut l = log(&[1, 1, 1]);
        l.maybe_flush(None);
        assert_eq!(l.flushed, 0);
        l.maybe_flush(Some(2));
        assert_eq!(l.flushed, 3);
        l.truncate(1);
        assert_eq!(l.flushed, 1);
    }

    #[test]
    fn producer_state_finds_retried_batches() {
        let l = log(&[1, 1, 1]);
        assert_eq!(l.producer_state(0, 1), (Some(1), Some(2)));
        assert_eq!(l.producer_state(0, 3), (None, Some(2)));
        assert_eq!(l.producer_state(7, 0), (None, None));
    }
}
