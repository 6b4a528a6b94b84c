//! A partition replica's `CommitLog`: records with the leader epoch that appended them, the part
//! already fsynced, and the leader-epoch lookups of KIP-101/KIP-279.

use mqcheck_invariants::MsgId;
use rpds::VectorSync;
use serde::{Deserialize, Serialize};

/// A leader epoch: bumped by the controller at every leader election.
pub type LeaderEpoch = u32;

/// What the idempotent producer stamps on a batch (KIP-98): its producer id, the producer epoch
/// (bumped by the client to restart its sequences, KIP-360), and the batch's sequence number
/// within the partition under that epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProducerSeq {
    pub producer_id: u32,
    pub epoch: u16,
    pub sequence: u32,
}

/// The leader's verdict on an idempotent batch, from the producer's state in the log
/// (`ProducerStateManager`, `ProducerAppendInfo.checkProducerEpoch` and `checkSequence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Append it.
    Append,
    /// A retry of a batch already in the log under the current epoch: its offset.
    Duplicate(u64),
    /// An epoch older than one already appended: `INVALID_PRODUCER_EPOCH`.
    Fenced,
    /// A gap in the sequence, or a new epoch not starting at 0: `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    OutOfOrder,
}

/// How a transaction ended at a partition: the control record (`EndTransactionMarker`) the
/// coordinator's `WriteTxnMarkers` has the leader append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TxnResult {
    Commit,
    Abort,
}

/// One record. Batches hold one record each in this model, so a record is also a batch: it
/// carries the producer id and sequence number the idempotent producer assigned (KIP-98), and
/// the batch's transactional flag. A control batch (`control`) holds a transaction marker and no
/// application record: its `msg` names the producer application, with `seq` 0, and its
/// `producer_seq` the producer id and the epoch of the marker (sequence 0, unused).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Record {
    pub epoch: LeaderEpoch,
    pub msg: MsgId,
    /// `None` for a non-idempotent producer.
    pub producer_seq: Option<ProducerSeq>,
    /// Written inside a transaction (`RecordBatch.isTransactional`).
    pub transactional: bool,
    /// A transaction marker (`RecordBatch.isControlBatch`).
    pub control: Option<TxnResult>,
}

impl Record {
    fn producer_id(&self) -> Option<u32> {
        self.producer_seq.map(|p| p.producer_id)
    }
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

    /// Where `producer_id`'s open transaction starts, if it has one here: its first
    /// transactional record after its last marker (`ProducerStateEntry.currentTxnFirstOffset`).
    pub fn ongoing_transaction(&self, producer_id: u32) -> Option<u64> {
        self.open_from(producer_id, self.end_offset())
    }

    /// The first transactional record of `producer_id` after its last marker below `upto`.
    fn open_from(&self, producer_id: u32, upto: u64) -> Option<u64> {
        let mut first = None;
        for (offset, r) in self.records.iter().enumerate().take(upto as usize).rev() {
            if r.producer_id() != Some(producer_id) {
                continue;
            }
            if r.control.is_some() {
                break;
            }
            if r.transactional {
                first = Some(offset as u64);
            }
        }
        first
    }

    /// The last marker of `producer_id`, if its last record here is one: its offset, epoch and
    /// result.
    pub fn last_marker(&self, producer_id: u32) -> Option<(u64, u16, TxnResult)> {
        let (offset, r) = self
            .records
            .iter()
            .enumerate()
            .rev()
            .find(|(_, r)| r.producer_id() == Some(producer_id))?;
        let epoch = r.producer_seq.map_or(0, |p| p.epoch);
        r.control.map(|result| (offset as u64, epoch, result))
    }

    /// The last stable offset (`UnifiedLog.lastStableOffset`): the high watermark, or the first
    /// offset of the earliest transaction not yet decided below it — open, or ended by a marker
    /// that is not below the high watermark yet (`ProducerStateManager` keeps a transaction
    /// unstable until its marker is replicated, `onHighWatermarkUpdated`).
    pub fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        let hw = high_watermark.min(self.end_offset());
        let producers: std::collections::BTreeSet<u32> = self
            .records
            .iter()
            .filter(|r| r.transactional)
            .filter_map(Record::producer_id)
            .collect();
        producers
            .into_iter()
            .filter_map(|pid| self.open_from(pid, hw))
            .fold(hw, u64::min)
    }

    /// The aborted transactions a `read_committed` fetch of `[from, to)` must filter
    /// (`UnifiedLog.collectAbortedTransactions`, from the aborted-transaction index): each as
    /// the producer id and the transaction's first offset, for those ended by an abort marker
    /// at or after `from` and begun before `to`.
    pub fn aborted_transactions(&self, from: u64, to: u64) -> Vec<(u32, u64)> {
        let mut aborted = Vec::new();
        for (offset, r) in self.records.iter().enumerate().skip(from as usize) {
            let (Some(TxnResult::Abort), Some(pid)) = (r.control, r.producer_id()) else {
                continue;
            };
            if let Some(first) = self.open_from(pid, offset as u64).filter(|f| *f < to) {
                aborted.push((pid, first));
            }
        }
        aborted.sort_by_key(|(_, first)| *first);
        aborted
    }

    /// Checks an idempotent batch against the last batch of its producer id in this log, as
    /// Kafka rebuilds the producer state from the log (`ProducerStateManager`). A duplicate is
    /// found only under the producer's current epoch (`ProducerStateEntry.findDuplicateBatch`;
    /// Kafka keeps the last 5 batches, which covers every retry with at most 5 in flight). A
    /// producer id the log does not know is accepted at any sequence (KIP-360).
    ///
    /// A transaction marker carries the producer's epoch too (`appendEndTxnMarker`): a marker of
    /// a newer epoch fences the older one and clears the sequences, so the next batch must start
    /// at 0 (KIP-890's epoch bump per transaction relies on it).
    pub fn check_producer(&self, batch: ProducerSeq) -> ProducerCheck {
        let marker_epoch = self
            .records
            .iter()
            .rev()
            .filter(|r| r.producer_id() == Some(batch.producer_id))
            .take_while(|r| r.control.is_some())
            .filter_map(|r| r.producer_seq.map(|p| p.epoch))
            .max();
        if marker_epoch.is_some_and(|e| batch.epoch < e) {
            return ProducerCheck::Fenced;
        }
        let mine = || {
            self.records
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, r)| r.control.is_none())
                .filter_map(|(offset, r)| r.producer_seq.map(|p| (offset as u64, p)))
                .filter(|(_, p)| p.producer_id == batch.producer_id)
        };
        let Some((_, last)) = mine().next() else {
            return ProducerCheck::Append;
        };
        if marker_epoch.is_some_and(|e| e > last.epoch) {
            return if batch.sequence == 0 {
                ProducerCheck::Append
            } else {
                ProducerCheck::OutOfOrder
            };
        }
        if batch.epoch == last.epoch {
            if let Some((offset, _)) = mine()
                .take_while(|(_, p)| p.epoch == last.epoch)
                .find(|(_, p)| p.sequence == batch.sequence)
            {
                return ProducerCheck::Duplicate(offset);
            }
        }
        if batch.epoch < last.epoch {
            ProducerCheck::Fenced
        } else if (batch.epoch > last.epoch && batch.sequence != 0)
            || (batch.epoch == last.epoch && batch.sequence != last.sequence + 1)
        {
            ProducerCheck::OutOfOrder
        } else {
            ProducerCheck::Append
        }
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
                    producer_seq: Some(ProducerSeq {
                        producer_id: 0,
                        epoch: 0,
                        sequence: i as u32,
                    }),
                    transactional: false,
                    control: None,
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
    fn producer_check_follows_producer_append_info() {
        let l = log(&[1, 1, 1]);
        let seq = |producer_id, epoch, sequence| ProducerSeq {
            producer_id,
            epoch,
            sequence,
        };
        assert_eq!(l.check_producer(seq(0, 0, 1)), ProducerCheck::Duplicate(1));
        assert_eq!(l.check_producer(seq(0, 0, 3)), ProducerCheck::Append);
        assert_eq!(l.check_producer(seq(0, 0, 4)), ProducerCheck::OutOfOrder);
        // A bumped epoch restarts at 0, and fences the old one.
        assert_eq!(l.check_producer(seq(0, 1, 0)), ProducerCheck::Append);
        assert_eq!(l.check_producer(seq(0, 1, 3)), ProducerCheck::OutOfOrder);
        let mut bumped = l.clone();
        bumped.append(Record {
            epoch: 1,
            msg: MsgId {
                producer: 0,
                seq: 9,
            },
            producer_seq: Some(seq(0, 1, 0)),
            transactional: false,
            control: None,
        });
        assert_eq!(bumped.check_producer(seq(0, 0, 1)), ProducerCheck::Fenced);
        assert_eq!(bumped.check_producer(seq(0, 0, 3)), ProducerCheck::Fenced);
        // An unknown producer id may start anywhere.
        assert_eq!(l.check_producer(seq(7, 0, 5)), ProducerCheck::Append);
    }
}
