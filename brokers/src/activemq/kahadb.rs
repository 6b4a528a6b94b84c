//! KahaDB: the journal the broker appends to, what of it the operating system holds and what
//! was fsynced, and the index rebuilt from it by replay.

use super::protocol::{Record, Seq};
use crate::Durable;
use mqcheck_invariants::MsgId;
use rpds::VectorSync;
use std::collections::{BTreeMap, BTreeSet};

/// The journal as written to the operating system (`DataFileAppender`'s writes), of which the
/// first `fsynced` records were forced to disk. The appender's batch, not yet written, lives in
/// the broker's memory ([`super::broker::Pending`]) and dies with the process.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KahaDb {
    pub journal: VectorSync<Record>,
    pub fsynced: usize,
}

impl Default for KahaDb {
    fn default() -> Self {
        KahaDb {
            journal: VectorSync::new_sync(),
            fsynced: 0,
        }
    }
}

impl Durable for KahaDb {
    /// Only the fsynced prefix of the journal survives a power loss.
    fn after_power_loss(&self) -> Self {
        KahaDb {
            journal: self.journal.iter().take(self.fsynced).cloned().collect(),
            fsynced: self.fsynced,
        }
    }
}

/// A queue message as the index knows it after replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub msg: MsgId,
    /// The incarnation of its producer's `ProducerId`.
    pub producer: u32,
    /// Its `JMSXGroupID`.
    pub group: Option<u32>,
    /// A `persistJMSRedelivered` update was journalled: it goes out flagged redelivered.
    pub redelivered: bool,
}

impl KahaDb {
    /// Appends a written batch; `force` fsyncs the whole file (and so every earlier write).
    pub fn write(&mut self, records: impl IntoIterator<Item = Record>, force: bool) {
        for r in records {
            self.journal.push_back_mut(r);
        }
        if force {
            self.fsync();
        }
    }

    pub fn fsync(&mut self) {
        self.fsynced = self.journal.len();
    }

    /// Has something been written since the last fsync?
    pub fn dirty(&self) -> bool {
        self.fsynced < self.journal.len()
    }

    /// `MessageDatabase.recover`: replays the journal into the queue's index (in broker sequence
    /// order), the dead-letter queue's messages, and the next sequence number. An add of a
    /// message id the index holds already is rejected, as `updateIndex(KahaAddMessageCommand)`
    /// rejects it ("Duplicate message add attempt rejected", activemq-5.18.7): the
    /// `messageIdIndex` keeps the first; once that one is removed, the id may be added again.
    /// On one broker the producer audit keeps a duplicate out of the journal; two masters
    /// appending to one journal can put one there.
    pub fn replay(&self) -> (BTreeMap<Seq, Recovered>, BTreeSet<Seq>, Seq) {
        let mut queue = BTreeMap::<Seq, Recovered>::new();
        // Each add's message id: a remove, a dead letter or a redelivered flag goes by message id
        // (`messageIdIndex`), so to the copy the index kept.
        let mut ids = BTreeMap::<Seq, (MsgId, u32)>::new();
        let mut dead = BTreeSet::new();
        let mut next = 1;
        let indexed = |queue: &BTreeMap<Seq, Recovered>, id: Option<&(MsgId, u32)>| {
            let id = *id?;
            queue
                .iter()
                .find(|(_, m)| (m.msg, m.producer) == id)
                .map(|(seq, _)| *seq)
        };
        for r in self.journal.iter() {
            match r {
                Record::Add {
                    seq,
                    msg,
                    producer,
                    group,
                } => {
                    next = next.max(seq + 1);
                    ids.insert(*seq, (*msg, *producer));
                    if indexed(&queue, ids.get(seq)).is_none() {
                        queue.insert(
                            *seq,
                            Recovered {
                                msg: *msg,
                                producer: *producer,
                                group: *group,
                                redelivered: false,
                            },
                        );
                    }
                }
                Record::Remove { seq } => {
                    if let Some(kept) = indexed(&queue, ids.get(seq)) {
                        queue.remove(&kept);
                    }
                }
                Record::DeadLetter { seq } => {
                    if let Some(kept) = indexed(&queue, ids.get(seq)) {
                        queue.remove(&kept);
                        dead.insert(kept);
                    }
                }
                Record::Redelivered { seq } => {
                    if let Some(kept) = indexed(&queue, ids.get(seq)) {
                        if let Some(m) = queue.get_mut(&kept) {
                            m.redelivered = true;
                        }
                    }
                }
            }
        }
        (queue, dead, next)
    }

    /// The producer audit the store rebuilds from the journal (`producerSequenceIdTracker`):
    /// the last producer sequence number stored per producer.
    pub fn producer_audit(&self) -> BTreeMap<(u32, u32), u32> {
        let mut audit = BTreeMap::new();
        for r in self.journal.iter() {
            if let Record::Add { msg, producer, .. } = r {
                let last = audit.entry((msg.producer, *producer)).or_insert(msg.seq);
                *last = (*last).max(msg.seq);
            }
        }
        audit
    }
}
