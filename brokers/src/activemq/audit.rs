//! The consumer connection's duplicate check (`checkForDuplicates`): `ConnectionAudit` keeps one
//! `ActiveMQMessageAudit` per queue, and that audit one `BitArrayBin` per `ProducerId`: a bit
//! per producer sequence number, in a window of `auditDepth` numbers that slides forward as
//! higher numbers arrive, for at most `auditMaximumProducerNumber` producers (an access-ordered
//! LRU map: the least recently seen producer is forgotten first).
//!
//! A number below the window is never a duplicate, so a message redelivered after the window
//! has moved past it reaches the application again.

use mqcheck_invariants::MsgId;
use std::collections::VecDeque;

/// `BitArray.LONG_SIZE`: the bits in one bin.
const LONG_SIZE: u64 = 64;

/// A `MessageId`: its `ProducerId` (the producer, and the incarnation of its `ProducerId`: a
/// restarted producer has a new one) and its producer sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    pub producer: (u32, u32),
    pub sequence: u64,
}

impl MessageId {
    pub fn new(msg: MsgId, incarnation: u32) -> Self {
        MessageId {
            producer: (msg.producer, incarnation),
            sequence: u64::from(msg.seq),
        }
    }
}

/// `BitArrayBin`: bins of 64 bits from `first` on; a number past the last bin drops the first
/// bins until it fits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BitArrayBin {
    /// `longFirstIndex`: the first number of the first bin, set by the first number seen
    /// (rounded down to a bin).
    first: Option<u64>,
    bins: VecDeque<u64>,
}

impl BitArrayBin {
    /// `maxNumberOfArrays = (windowSize + 1) / 64 + 1`.
    fn new(window: u32) -> Self {
        let bins = (u64::from(window) + 1) / LONG_SIZE + 1;
        BitArrayBin {
            first: None,
            bins: std::iter::repeat_n(0, bins as usize).collect(),
        }
    }

    /// `setBit`: sets or clears the number's bit and returns what it was; a number below the
    /// window has no bit, and reads as unset.
    fn set(&mut self, index: u64, value: bool) -> bool {
        let mut first = *self.first.get_or_insert(index - index % LONG_SIZE);
        if index < first {
            return false;
        }
        let max = self.bins.len();
        let mut bin = ((index - first) / LONG_SIZE) as usize;
        if bin >= max {
            // The window slides: the first bins go (all of them, past a long jump).
            let drop = bin - max + 1;
            for _ in 0..drop.min(max) {
                self.bins.pop_front();
                self.bins.push_back(0);
            }
            first += drop as u64 * LONG_SIZE;
            self.first = Some(first);
            bin = max - 1;
        }
        let bit = 1 << ((index - first) % LONG_SIZE);
        let was = self.bins[bin] & bit != 0;
        if value {
            self.bins[bin] |= bit;
        } else {
            self.bins[bin] &= !bit;
        }
        was
    }
}

/// `ActiveMQMessageAudit` for the consumer's queue, as its connection's `ConnectionAudit` holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageAudit {
    depth: u32,
    max_producers: usize,
    /// Least recently used first.
    producers: Vec<((u32, u32), BitArrayBin)>,
}

impl MessageAudit {
    pub fn new(depth: u32, max_producers: u32) -> Self {
        MessageAudit {
            depth,
            max_producers: max_producers as usize,
            producers: Vec::new(),
        }
    }

    /// The producer's bins, now the most recently used; a new producer may evict the eldest.
    fn bins(&mut self, producer: (u32, u32), create: bool) -> Option<&mut BitArrayBin> {
        match self.producers.iter().position(|(p, _)| *p == producer) {
            Some(i) => {
                let entry = self.producers.remove(i);
                self.producers.push(entry);
            }
            None if create => {
                self.producers.push((producer, BitArrayBin::new(self.depth)));
                if self.producers.len() > self.max_producers {
                    self.producers.remove(0);
                }
            }
            None => return None,
        }
        self.producers.last_mut().map(|(_, bins)| bins)
    }

    /// `isDuplicate`: records the message and says whether it had been recorded before.
    pub fn is_duplicate(&mut self, id: MessageId) -> bool {
        self.bins(id.producer, true)
            .is_some_and(|bins| bins.set(id.sequence, true))
    }

    /// `rollback`: forgets the message, so that its redelivery is not taken for a duplicate.
    pub fn rollback(&mut self, id: MessageId) {
        if let Some(bins) = self.bins(id.producer, false) {
            bins.set(id.sequence, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(producer: u32, sequence: u64) -> MessageId {
        MessageId {
            producer: (producer, 1),
            sequence,
        }
    }

    #[test]
    fn a_second_sight_is_a_duplicate_until_rolled_back() {
        let mut audit = MessageAudit::new(2048, 64);
        assert!(!audit.is_duplicate(id(0, 5)));
        assert!(audit.is_duplicate(id(0, 5)));
        assert!(!audit.is_duplicate(id(1, 5)), "another producer's number 5");
        audit.rollback(id(0, 5));
        assert!(!audit.is_duplicate(id(0, 5)));
    }

    #[test]
    fn the_window_slides_past_old_numbers() {
        // 64 numbers: (64 + 1) / 64 + 1 = 2 bins, numbers 0..128 until a higher one arrives.
        let mut audit = MessageAudit::new(64, 64);
        assert!(!audit.is_duplicate(id(0, 3)));
        assert!(!audit.is_duplicate(id(0, 127)));
        assert!(audit.is_duplicate(id(0, 3)), "still within the two bins");
        assert!(!audit.is_duplicate(id(0, 128)), "a third bin drops the first");
        assert!(!audit.is_duplicate(id(0, 3)), "below the window: not a duplicate");
        assert!(!audit.is_duplicate(id(0, 3)), "and never recorded");
        assert!(audit.is_duplicate(id(0, 127)));
        assert!(!audit.is_duplicate(id(0, 1_000_000)), "a long jump clears the window");
        assert!(!audit.is_duplicate(id(0, 127)), "below it now");
        assert!(audit.is_duplicate(id(0, 1_000_000)));
    }

    #[test]
    fn the_least_recently_seen_producer_is_forgotten() {
        let mut audit = MessageAudit::new(2048, 2);
        audit.is_duplicate(id(0, 1));
        audit.is_duplicate(id(1, 1));
        audit.is_duplicate(id(0, 2));
        audit.is_duplicate(id(2, 1));
        assert!(audit.is_duplicate(id(0, 1)), "producer 0 was used recently");
        assert!(!audit.is_duplicate(id(1, 1)), "producer 1 was evicted");
    }
}
