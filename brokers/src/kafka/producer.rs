//! The producer: batches, in-flight requests, retries, and the idempotent producer's sequence
//! numbers and their recovery.
//!
//! # The idempotent producer's recovery
//!
//! As Kafka's client does it (`Sender.completeBatch`, `Sender.failBatch`,
//! `Sender.sendProducerData`, `RecordAccumulator.shouldStopDrainBatchesForPartition`,
//! `TransactionManager.canRetry`, `isNextSequence`, `handleCompletedBatch`,
//! `maybeUpdateLastAckedSequence`, `requestIdempotentEpochBumpForPartition`, `handleFailedBatch`,
//! `markSequenceUnresolved`, `maybeResolveSequences`, `bumpIdempotentProducerEpoch`,
//! `TxnPartitionEntry.startSequencesAtBeginning`; KIP-360):
//!
//! - A batch gets its sequence when it is first sent, never before, and keeps it on every retry:
//!   the client never gives another sequence to a batch whose fate it does not know.
//! - While a retried batch waits, only the partition's lowest outstanding sequence is sent
//!   (in effect one request in flight); no new batch is numbered while an expired batch's fate is
//!   unresolved, nor under a new epoch while batches of the old one are outstanding.
//! - A batch that expires (`delivery.timeout.ms`) after a retry marks its partition
//!   **unresolved**. Once nothing of that partition is outstanding, the client sees whether the
//!   last acknowledged sequence reached it (the later batches succeeded, so it was written) or
//!   not; only then does it bump the producer **epoch** and restart the partition at sequence 0.
//! - `OUT_OF_ORDER_SEQUENCE_NUMBER` for the batch right after the last acknowledged one (or after
//!   the unresolved one) means a gap in the log: the epoch is bumped at once, and the batches
//!   still outstanding — which the leader refused too — are renumbered from 0 under it. An
//!   out-of-order answer for a batch that is not the next sequence (base sequence other than
//!   the last acknowledged + 1; the last acknowledged only grows) is only retried, without a
//!   bump, until `delivery.timeout.ms` fails it. The leader answers a connection's requests in
//!   order (see `broker.rs`), so such an answer comes after those of the batches sent before.
//! - A batch that fails for good with an error that says it was not written, before its retries
//!   ran out, bumps the epoch too; one whose retries ran out (`retries`) leaves the sequences
//!   alone, as its fate is unknown.
//!
//! The leader keeps, per producer id, the epoch and sequence of its last batch, rebuilt from the
//! log (`ProducerStateManager`, `ProducerAppendInfo`): a batch of an older epoch is refused
//! (`INVALID_PRODUCER_EPOCH`), a newer epoch must start at 0, the same epoch must continue the
//! sequence, and a retry of a batch of the current epoch gets its original offset.
//!
//! # After a restart (`--producer-crashes`)
//!
//! The application keeps an outbox: its log of sends and their callbacks ([`AppLog::outbox`]).
//! A restarted producer sends again, first and in send order, every record it sent and never
//! saw acknowledged — unanswered or definitely failed — then goes on with the records it had
//! not sent yet. A resend records no second `Op::Send`, only its acknowledgement or failure.
//!
//! The restarted client is a new `KafkaProducer` without a `transactional.id`: the idempotent
//! one asks for a new producer id (`InitProducerId`, KIP-98) and numbers its batches from 0
//! again, and holds its records until the id arrives. The brokers cannot tell its resends from
//! new records, so a resend of a record the old incarnation had stored is stored twice:
//! idempotence dedups the retries of one producer session only (KIP-98: "idempotence is only
//! guaranteed within a single producer session"; across sessions it takes a `transactional.id`,
//! which fences the old epoch). Without idempotence a resend is simply another record.

use super::log::{ProducerSeq, TxnResult};
use super::partitioner::sticky_choices;
use super::protocol::{leaders, Acks, ErrorCode, KafkaMsg, Partition};
use super::{exact, retry, KafkaDisk, KafkaOut, KafkaRandom, KafkaTimer, Settings};
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op, TxnOutcome};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Paces a run may draw: milliseconds between two sends.
pub const PACES: [u64; 3] = [20, 100, 400];

#[derive(Clone, Debug)]
pub struct Producer {
    pub settings: Settings,
    pub index: u32,
}

/// One record's batch, from `send()` until it is acknowledged or fails.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch {
    pub partition: Partition,
    /// The idempotent producer's id, epoch and sequence, assigned when the batch is first sent
    /// and changed only by an epoch bump (`ProducerBatch.resetProducerState`).
    pub producer_seq: Option<ProducerSeq>,
    /// `sequenceHasBeenReset`: an epoch bump renumbered it.
    pub reset: bool,
    /// Kafka's `ProducerBatch.attempts()`: how many times it was queued again for a retry.
    pub attempts: u64,
    /// The request carrying it, while one is outstanding, and the broker it went to.
    pub in_flight: Option<u64>,
    pub sent_to: Option<Id>,
    /// Waiting out `retry.backoff.ms` before the next attempt.
    pub backing_off: bool,
}

/// A partition's sequence numbers (`TxnPartitionEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionSequences {
    /// The producer id and epoch the partition's sequences run under.
    pub producer: (u32, u16),
    pub next_sequence: u32,
    pub last_acked: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProducerState {
    /// The application's record of what `send()` and its callbacks reported.
    pub app: AppLog,
    pub pace: Option<Duration>,
    pub next: u32,
    pub leaders: Vec<Option<Id>>,
    pub batches: BTreeMap<u32, Batch>,
    pub next_request: u64,
    /// `None` while a restarted idempotent producer waits for `InitProducerId`'s answer.
    pub producer_id: Option<u32>,
    pub producer_epoch: u16,
    pub sequences: BTreeMap<Partition, PartitionSequences>,
    /// `partitionsWithUnresolvedSequences`: partitions where a batch expired after a retry, with
    /// the sequence that must have been acknowledged last for it to count as written, plus one.
    pub unresolved: BTreeMap<Partition, u32>,
    /// `partitionsToRewriteSequences`: an epoch bump is due, restarting these partitions.
    pub bump: BTreeSet<Partition>,
    /// The transactional producer's `TransactionManager`, with a `transactional.id`.
    pub txn: Option<TxnClient>,
    /// The sticky partitioner's partition for the next record without a key, once drawn.
    pub sticky_partition: Option<Partition>,
    /// A draw of the sticky partition is under way: the application's `send()` waits for it.
    pub sticky_draw: bool,
}

/// Where a transactional producer stands (`TransactionManager.State`, coarser).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnPhase {
    /// `InitProducerId` asked, with the id and epoch to bump, if any (KIP-360).
    Initializing(Option<(u32, u16)>),
    /// No transaction open.
    Ready,
    /// `beginTransaction()` was called: the application sends.
    InTransaction,
    /// `commitTransaction()` or `abortTransaction()` was called: the batches finish first.
    Completing(TxnResult),
    /// `EndTxn` sent.
    Ending(TxnResult),
    /// Fenced by a newer incarnation, or the coordinator refused: the application stops.
    Fatal,
}

/// The transactional producer's state around its transactions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TxnClient {
    pub phase: TxnPhase,
    /// Transactions this application ended before the current one (read from its log).
    pub number: u64,
    /// The current transaction's records, in send order.
    pub msgs: Vec<u32>,
    /// Partitions in the transaction (`partitionsInTransaction`), and the one being added.
    pub added: BTreeSet<Partition>,
    pub adding: Option<Partition>,
    /// A send failed: the transaction can only abort (`transitionToAbortableError`).
    pub abortable: Option<String>,
    /// `epochBumpRequired`: after the abort, `InitProducerId` with the current id and epoch.
    pub bump: bool,
}

/// Errors worth a retry (`RetriableException`); `None` stands for a connection failure or a
/// request timeout. An older producer epoch is not retriable.
fn retriable(error: Option<ErrorCode>) -> bool {
    !matches!(
        error,
        Some(ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced | ErrorCode::InvalidTxnState)
    )
}

impl ProducerState {
    /// The batches of `p` holding a sequence and not yet done: `TxnPartitionEntry`'s in-flight
    /// batches, whether a request is outstanding or they wait for a retry.
    fn sequenced(&self, p: Partition) -> impl Iterator<Item = (&u32, &Batch)> {
        self.batches
            .iter()
            .filter(move |(_, b)| b.partition == p && b.producer_seq.is_some())
    }

    fn current(&self) -> (u32, u16) {
        (self.producer_id.unwrap_or(0), self.producer_epoch)
    }

    /// Is `sequence` the one after the last acknowledged of `p`?
    fn is_next_sequence(&self, p: Partition, sequence: u32) -> bool {
        let last = self.sequences.get(&p).and_then(|e| e.last_acked);
        sequence == last.map_or(0, |l| l + 1)
    }

    /// `startSequencesAtBeginning`: the partition's batches still holding a sequence are
    /// renumbered from 0 under the current epoch.
    fn start_sequences_at_beginning(&mut self, p: Partition) {
        let (producer_id, epoch) = self.current();
        let mut order: Vec<(u32, u32)> = self
            .sequenced(p)
            .map(|(seq, b)| (b.producer_seq.map_or(0, |x| x.sequence), *seq))
            .collect();
        order.sort();
        for (i, (_, seq)) in order.iter().enumerate() {
            let b = self.batches.get_mut(seq).expect("batch exists");
            b.producer_seq = Some(ProducerSeq {
                producer_id,
                epoch,
                sequence: i as u32,
            });
            b.reset = true;
        }
        self.sequences.insert(
            p,
            PartitionSequences {
                producer: (producer_id, epoch),
                next_sequence: order.len() as u32,
                last_acked: None,
            },
        );
    }

    /// `maybeResolveSequences`, then `bumpIdempotentEpochAndResetIdIfNeeded`: an unresolved
    /// partition with nothing outstanding is resolved, by the acknowledgements or by a bump.
    fn resolve_and_bump(&mut self) {
        for (p, _) in self.unresolved.clone() {
            if self.sequenced(p).next().is_some() {
                continue;
            }
            let next = self.sequences.get(&p).map_or(0, |e| e.next_sequence);
            if !self.is_next_sequence(p, next) {
                self.bump.insert(p);
            }
            self.unresolved.remove(&p);
        }
        if self.bump.is_empty() || self.producer_id.is_none() {
            return;
        }
        self.producer_epoch += 1;
        for p in std::mem::take(&mut self.bump) {
            self.start_sequences_at_beginning(p);
            self.unresolved.remove(&p);
        }
    }
}

impl Producer {
    fn id(&self) -> MsgId {
        MsgId {
            producer: self.index,
            seq: 0,
        }
    }

    pub fn start(&self, mut app: AppLog, o: &mut KafkaOut) -> ProducerState {
        o.send(self.settings.controller(), KafkaMsg::Metadata);
        o.set_timer(
            KafkaTimer::MetadataRefresh,
            retry(Duration::from_millis(500)),
        );
        o.choose_random(
            "pace",
            self.settings
                .workload
                .paces(&PACES)
                .into_iter()
                .map(KafkaRandom::Pace)
                .collect(),
        );
        let outbox = app.reopen();
        let restarted = !app.is_empty();
        let transactional = self.settings.transactional;
        if transactional {
            let init = KafkaMsg::InitProducerId {
                transactional_id: Some(self.index),
                producer: None,
            };
            o.send(self.settings.controller(), init);
        } else if restarted && self.settings.idempotence {
            let init = KafkaMsg::InitProducerId {
                transactional_id: None,
                producer: None,
            };
            o.send(self.settings.controller(), init);
        }
        let mut s = ProducerState {
            app,
            pace: None,
            next: outbox.sent as u32,
            leaders: vec![None; self.settings.partitions as usize],
            batches: BTreeMap::new(),
            next_request: 0,
            producer_id: (!restarted && !transactional).then_some(self.index << 16),
            producer_epoch: 0,
            sequences: BTreeMap::new(),
            unresolved: BTreeMap::new(),
            bump: BTreeSet::new(),
            txn: None,
            sticky_partition: None,
            sticky_draw: false,
        };
        if transactional {
            self.restart_transactions(&mut s, o);
        } else {
            // A resend goes to the partition its first send went to, which the application's
            // log recorded: the key's partition, or the sticky one it drew then.
            let partitions: BTreeMap<u32, Partition> = s
                .app
                .iter()
                .filter_map(|op| match op {
                    Op::Send { msg, scope, .. } => Some((msg.seq, *scope)),
                    _ => None,
                })
                .collect();
            for msg in outbox.unacknowledged {
                self.enqueue(&mut s, msg.seq, partitions[&msg.seq], o);
            }
        }
        s
    }

    /// A transactional application starts: a transaction its previous incarnation left
    /// unfinished ended as the coordinator decided — aborted by this start's `InitProducerId`
    /// if it was open, committed if `EndTxn` had prepared the commit — which the application
    /// cannot know: it records the transaction in doubt, its records failed, and goes on with
    /// new records (it does not send them again).
    fn restart_transactions(&self, s: &mut ProducerState, o: &mut KafkaOut) {
        let ended: BTreeSet<MsgId> = s
            .app
            .iter()
            .filter_map(|op| match op {
                Op::Transaction { msgs, .. } => Some(msgs.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let unfinished: Vec<MsgId> = s
            .app
            .iter()
            .filter_map(|op| match op {
                Op::Send { msg, .. } if !ended.contains(msg) => Some(*msg),
                _ => None,
            })
            .collect();
        let mut number = s
            .app
            .iter()
            .filter(|op| matches!(op, Op::Transaction { .. }))
            .count() as u64;
        if !unfinished.is_empty() {
            for msg in &unfinished {
                let reason = "transaction in doubt: the producer restarted".to_string();
                self.record(s, Op::Fail { msg: *msg, reason }, o);
            }
            let op = Op::Transaction {
                txn: self.txn_id(number),
                msgs: unfinished,
                outcome: TxnOutcome::InDoubt,
            };
            self.record(s, op, o);
            number += 1;
        }
        s.txn = Some(TxnClient {
            phase: TxnPhase::Initializing(None),
            number,
            msgs: Vec::new(),
            added: BTreeSet::new(),
            adding: None,
            abortable: None,
            bump: false,
        });
    }

    /// A transaction's name in the history: unique across the producers.
    fn txn_id(&self, number: u64) -> u64 {
        (u64::from(self.index) << 32) | number
    }

    /// The sticky partitioner drew its next partition: the waiting `send()` goes on.
    pub fn on_sticky_partition(&self, s: &mut ProducerState, partition: Partition, o: &mut KafkaOut) {
        s.sticky_partition = Some(partition);
        s.sticky_draw = false;
        self.send_next(s, o);
    }

    /// The partition of record `seq`: its key's, or the sticky partition, which the record uses
    /// up (one record fills a batch here). `None` while the next sticky partition is drawn: the
    /// draw is asked for, weighted by the partitions' queues of unsent batches.
    fn partition(&self, s: &mut ProducerState, seq: u32, o: &mut KafkaOut) -> Option<Partition> {
        if let Some(p) = self.settings.partition_for_key(seq) {
            return Some(p);
        }
        if self.settings.partitions <= 1 {
            return Some(0);
        }
        if let Some(p) = s.sticky_partition.take() {
            return Some(p);
        }
        if !s.sticky_draw {
            s.sticky_draw = true;
            let queued: Vec<Option<usize>> = (0..self.settings.partitions)
                .map(|p| {
                    s.leaders[p as usize].map(|_| {
                        s.batches
                            .values()
                            .filter(|b| b.partition == p && b.in_flight.is_none())
                            .count()
                    })
                })
                .collect();
            o.choose_random(
                "sticky partition",
                sticky_choices(&queued)
                    .into_iter()
                    .map(KafkaRandom::StickyPartition)
                    .collect(),
            );
        }
        None
    }

    pub fn on_pace(&self, s: &mut ProducerState, pace_ms: u64, o: &mut KafkaOut) {
        s.pace = Some(Duration::from_millis(pace_ms));
        o.set_timer(KafkaTimer::Send, exact(Duration::from_millis(pace_ms)));
    }

    fn record(&self, s: &mut ProducerState, op: Op, o: &mut KafkaOut) {
        s.app.push(op);
        o.save(KafkaDisk::Client(s.app.clone()));
    }

    pub fn on_msg(&self, s: &mut ProducerState, src: Id, msg: KafkaMsg, o: &mut KafkaOut) {
        match msg {
            KafkaMsg::Disconnected => {
                let lost: Vec<u32> = s
                    .batches
                    .iter()
                    .filter(|(_, b)| b.in_flight.is_some() && b.sent_to == Some(src))
                    .map(|(seq, _)| *seq)
                    .collect();
                for seq in lost {
                    if s.batches.get(&seq).is_some_and(|b| b.in_flight.is_some()) {
                        self.failed_attempt(s, seq, None, "NETWORK_EXCEPTION", o);
                    }
                }
            }
            KafkaMsg::InitProducerIdResponse {
                producer_id,
                epoch,
                error,
            } if s.txn.is_some() => self.initialized(s, producer_id, epoch, error, o),
            KafkaMsg::InitProducerIdResponse { producer_id, .. } if s.producer_id.is_none() => {
                s.producer_id = Some(producer_id);
                self.pump(s, o);
            }
            KafkaMsg::AddPartitionsToTxnResponse {
                partition,
                verify_only: false,
                error,
                ..
            } => {
                let Some(t) = s.txn.as_mut().filter(|t| t.adding == Some(partition)) else {
                    return;
                };
                t.adding = None;
                match error {
                    None => {
                        t.added.insert(partition);
                    }
                    Some(ErrorCode::ConcurrentTransactions) => {
                        // The last transaction's markers are still being written.
                        o.set_timer(KafkaTimer::TxnRetry, exact(self.settings.retry_backoff));
                        return;
                    }
                    Some(e) => {
                        self.give_up(s, e, o);
                        return;
                    }
                }
                self.pump(s, o);
            }
            KafkaMsg::EndTxnResponse { epoch, error } => self.ended(s, epoch, error, o),
            KafkaMsg::MetadataResponse(states) => {
                s.leaders = leaders(&states);
                if s.leaders.iter().any(Option::is_none) {
                    // An offline partition: ask again until it has a leader.
                    o.set_timer(
                        KafkaTimer::MetadataRefresh,
                        retry(Duration::from_millis(500)),
                    );
                }
                self.pump(s, o);
            }
            KafkaMsg::ProduceResponse {
                request, result, ..
            } => {
                let Some(seq) = s
                    .batches
                    .iter()
                    .find(|(_, b)| b.in_flight == Some(request))
                    .map(|(seq, _)| *seq)
                else {
                    return; // an abandoned attempt's late answer
                };
                o.cancel_timer(KafkaTimer::RequestTimeout(request));
                match result {
                    Ok(_) => {
                        let b = s.batches.remove(&seq).expect("found above");
                        if let Some(ps) = b.producer_seq {
                            // `handleCompletedBatch`: the last acknowledged sequence only grows.
                            let e = s.sequences.get_mut(&b.partition).expect("numbered");
                            e.last_acked = e.last_acked.max(Some(ps.sequence));
                        }
                        o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
                        // A transaction's records are acknowledged when it commits.
                        if s.txn.is_none() {
                            let msg = MsgId { seq, ..self.id() };
                            self.record(s, Op::Ack { msg }, o);
                        }
                        self.pump(s, o);
                    }
                    Err(e) => self.failed_attempt(s, seq, Some(e), e.name(), o),
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ProducerState, timer: &KafkaTimer, o: &mut KafkaOut) {
        match timer {
            KafkaTimer::Send => self.send_next(s, o),
            KafkaTimer::MetadataRefresh if s.leaders.iter().any(Option::is_none) => {
                o.send(self.settings.controller(), KafkaMsg::Metadata);
                o.set_timer(
                    KafkaTimer::MetadataRefresh,
                    retry(Duration::from_millis(500)),
                );
            }
            KafkaTimer::RequestTimeout(request) => {
                let found = s
                    .batches
                    .iter()
                    .find(|(_, b)| b.in_flight == Some(*request))
                    .map(|(seq, _)| *seq);
                if let Some(seq) = found {
                    self.failed_attempt(s, seq, None, "request.timeout.ms expired", o);
                }
            }
            KafkaTimer::TxnRetry => match s.txn.as_ref().map(|t| t.phase) {
                Some(TxnPhase::Initializing(producer)) => {
                    let init = KafkaMsg::InitProducerId {
                        transactional_id: Some(self.index),
                        producer,
                    };
                    o.send(self.settings.controller(), init);
                }
                _ => self.pump(s, o),
            },
            KafkaTimer::RetryBackoff => {
                for b in s.batches.values_mut() {
                    b.backing_off = false;
                }
                self.pump(s, o);
            }
            KafkaTimer::DeliveryTimeout(seq) => {
                if let Some(b) = s.batches.remove(seq) {
                    if let Some(r) = b.in_flight {
                        o.cancel_timer(KafkaTimer::RequestTimeout(r));
                    }
                    let msg = MsgId {
                        seq: *seq,
                        ..self.id()
                    };
                    let reason = "delivery.timeout.ms expired".to_string();
                    if s.txn.is_some() {
                        self.abortable(s, reason);
                        self.pump(s, o);
                        return;
                    }
                    self.record(s, Op::Fail { msg, reason }, o);
                    // An expired batch that was retried may or may not be in the log: hold the
                    // partition until what is outstanding tells (`markSequenceUnresolved`).
                    if let Some(ps) = b.producer_seq.filter(|_| b.attempts > 0) {
                        let next = s.unresolved.entry(b.partition).or_insert(0);
                        *next = (*next).max(ps.sequence + 1);
                    }
                    self.pump(s, o);
                }
            }
            _ => {}
        }
    }

    /// The application calls `send()` for its next message.
    fn send_next(&self, s: &mut ProducerState, o: &mut KafkaOut) {
        if s.next >= self.settings.workload.messages {
            return;
        }
        if let Some(t) = s.txn.as_mut() {
            match t.phase {
                // `beginTransaction()`.
                TxnPhase::Ready => {
                    t.phase = TxnPhase::InTransaction;
                    t.msgs.clear();
                    t.added.clear();
                    t.abortable = None;
                }
                TxnPhase::InTransaction => {}
                // The application waits for the last transaction to end.
                _ => {
                    if let Some(pace) = s.pace {
                        o.set_timer(KafkaTimer::Send, exact(pace));
                    }
                    return;
                }
            }
        }
        let seq = s.next;
        let Some(partition) = self.partition(s, seq, o) else {
            return;
        };
        s.next += 1;
        let audience = if self.settings.workload.consumers > 0 {
            vec![0]
        } else {
            Vec::new()
        };
        let msg = MsgId { seq, ..self.id() };
        self.record(
            s,
            Op::Send {
                msg,
                scope: partition,
                audience,
                key: self.settings.workload.key(seq),
            },
            o,
        );
        self.enqueue(s, seq, partition, o);
        let records = self.settings.transaction_records as usize;
        let last = s.next >= self.settings.workload.messages;
        let every = u64::from(self.settings.transaction_abort_every);
        if let Some(t) = s.txn.as_mut() {
            t.msgs.push(seq);
            if t.msgs.len() >= records || last {
                // The application ends the transaction: every `transaction.abort.every`-th it
                // aborts on purpose.
                let aborts = every > 0 && (t.number + 1) % every == 0;
                t.phase = TxnPhase::Completing(if aborts {
                    TxnResult::Abort
                } else {
                    TxnResult::Commit
                });
            }
        }
        self.pump(s, o);
        if let Some(pace) = s.pace {
            o.set_timer(KafkaTimer::Send, exact(pace));
        }
    }

    /// Puts record `seq` in a batch of its own for `partition`, with its `delivery.timeout.ms`.
    fn enqueue(&self, s: &mut ProducerState, seq: u32, partition: Partition, o: &mut KafkaOut) {
        s.batches.insert(
            seq,
            Batch {
                partition,
                producer_seq: None,
                reset: false,
                attempts: 0,
                in_flight: None,
                sent_to: None,
                backing_off: false,
            },
        );
        o.set_timer(
            KafkaTimer::DeliveryTimeout(seq),
            exact(self.settings.delivery_timeout),
        );
    }

    /// Sends what may be sent: per partition, up to `max.in.flight.requests.per.connection`
    /// outstanding requests, oldest batch first. A batch waiting out its retry backoff goes back
    /// to the head of its partition's queue, in sequence order (`RecordAccumulator.reenqueue`),
    /// so nothing newer is sent past it; what overtakes a retry is only what was already in
    /// flight. The idempotent producer first resolves and bumps (`Sender.runOnce`), sends
    /// nothing before it has a producer id, and drains as `shouldStopDrainBatchesForPartition`
    /// allows.
    fn pump(&self, s: &mut ProducerState, o: &mut KafkaOut) {
        let idempotent = self.settings.idempotence;
        if s.txn.is_some() {
            if !self.transaction_step(s, o) {
                return;
            }
        } else if idempotent {
            s.resolve_and_bump();
        }
        if idempotent && s.producer_id.is_none() {
            return;
        }
        for p in 0..self.settings.partitions {
            let Some(leader) = s.leaders[p as usize] else {
                continue;
            };
            if s.txn.as_ref().is_some_and(|t| !t.added.contains(&p)) {
                continue;
            }
            let mut in_flight = s
                .batches
                .values()
                .filter(|b| b.partition == p && b.in_flight.is_some())
                .count();
            let mut order: Vec<(bool, u32, u32)> = s
                .batches
                .iter()
                .filter(|(_, b)| b.partition == p && b.in_flight.is_none())
                .map(|(seq, b)| match b.producer_seq {
                    Some(ps) => (false, ps.sequence, *seq),
                    None => (true, 0, *seq),
                })
                .collect();
            order.sort();
            for (_, _, seq) in order {
                if in_flight >= self.settings.max_in_flight || s.batches[&seq].backing_off {
                    break;
                }
                if idempotent && !self.number(s, seq) {
                    break;
                }
                let request = s.next_request;
                s.next_request += 1;
                let b = s.batches.get_mut(&seq).expect("batch exists");
                o.send(
                    leader,
                    KafkaMsg::Produce {
                        partition: p,
                        request,
                        msg: MsgId { seq, ..self.id() },
                        producer_seq: b.producer_seq,
                        transactional_id: s.txn.as_ref().map(|_| self.index),
                        acks: self.settings.acks,
                    },
                );
                if self.settings.acks == Acks::Zero {
                    // Fire and forget: the send "succeeds" once the request is written.
                    s.batches.remove(&seq);
                    o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
                    let msg = MsgId { seq, ..self.id() };
                    self.record(s, Op::Ack { msg }, o);
                } else {
                    b.in_flight = Some(request);
                    b.sent_to = Some(leader);
                    in_flight += 1;
                    o.set_timer(
                        KafkaTimer::RequestTimeout(request),
                        exact(self.settings.request_timeout),
                    );
                }
            }
        }
    }

    /// May the idempotent producer send batch `seq` now (`shouldStopDrainBatchesForPartition`)?
    /// A retry goes only as the partition's lowest outstanding sequence; a new batch waits while
    /// the partition is unresolved or has batches of an older epoch outstanding, and is then
    /// numbered (`maybeUpdateProducerIdAndEpoch`).
    fn number(&self, s: &mut ProducerState, seq: u32) -> bool {
        let b = &s.batches[&seq];
        let p = b.partition;
        let first_in_flight = s
            .sequenced(p)
            .filter_map(|(_, b)| b.producer_seq.map(|x| x.sequence))
            .min();
        if let Some(ps) = b.producer_seq {
            return first_in_flight == Some(ps.sequence);
        }
        let current = s.current();
        let stale = s.sequences.get(&p).is_some_and(|e| e.producer != current);
        if first_in_flight.is_some() && stale || s.unresolved.contains_key(&p) {
            return false;
        }
        if stale || !s.sequences.contains_key(&p) {
            s.sequences.insert(
                p,
                PartitionSequences {
                    producer: current,
                    next_sequence: 0,
                    last_acked: None,
                },
            );
        }
        let e = s.sequences.get_mut(&p).expect("inserted");
        let sequence = e.next_sequence;
        e.next_sequence += 1;
        s.batches.get_mut(&seq).expect("batch exists").producer_seq = Some(ProducerSeq {
            producer_id: current.0,
            epoch: current.1,
            sequence,
        });
        true
    }

    /// A failed attempt (`error` is `None` for a lost connection or a request timeout) is
    /// retried after `retry.backoff.ms` while `retries` allows (`Sender.canRetry`); the batches
    /// still in flight behind it get their own answers.
    fn failed_attempt(
        &self,
        s: &mut ProducerState,
        seq: u32,
        error: Option<ErrorCode>,
        reason: &str,
        o: &mut KafkaOut,
    ) {
        let b = s.batches[&seq].clone();
        if let Some(r) = b.in_flight {
            o.cancel_timer(KafkaTimer::RequestTimeout(r));
        }
        let can_retry = b.attempts < self.settings.retries
            && if self.settings.idempotence {
                self.can_retry(s, &b, error)
            } else {
                retriable(error)
            };
        if can_retry {
            let b = s.batches.get_mut(&seq).expect("batch exists");
            b.attempts += 1;
            b.in_flight = None;
            b.backing_off = true;
            o.set_timer(KafkaTimer::RetryBackoff, exact(self.settings.retry_backoff));
            o.send(self.settings.controller(), KafkaMsg::Metadata);
            self.pump(s, o);
            return;
        }
        s.batches.remove(&seq);
        o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
        let msg = MsgId { seq, ..self.id() };
        let reason = format!("{reason} after {} attempts", b.attempts + 1);
        if s.txn.is_some() {
            if matches!(error, Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)) {
                self.give_up(s, error.expect("matched"), o);
                return;
            }
            self.abortable(s, reason);
            self.pump(s, o);
            return;
        }
        self.record(s, Op::Fail { msg, reason }, o);
        // `handleFailedBatch`: a gap the leader reported, or a batch the leader refused before
        // its retries ran out, restarts the sequences; a batch whose retries ran out on a
        // retriable error may be in the log, and changes nothing.
        if b.producer_seq.is_some()
            && (error == Some(ErrorCode::OutOfOrderSequence) || b.attempts < self.settings.retries)
        {
            s.bump.insert(b.partition);
        }
        self.pump(s, o);
    }

    /// `TransactionManager.canRetry` for the idempotent producer: an out-of-order answer is
    /// always retried, and bumps the epoch when it shows a real gap — the batch is the one after
    /// the last acknowledged (or after the unresolved one) and was not renumbered already.
    fn can_retry(&self, s: &mut ProducerState, b: &Batch, error: Option<ErrorCode>) -> bool {
        if error != Some(ErrorCode::OutOfOrderSequence) {
            return retriable(error);
        }
        let Some(ps) = b.producer_seq else {
            return true;
        };
        let p = b.partition;
        let unresolved = s.unresolved.get(&p).copied();
        if unresolved.is_none() && (b.reset || !s.is_next_sequence(p, ps.sequence)) {
            return true;
        }
        if unresolved.is_none_or(|next| next == ps.sequence) {
            if s.txn.is_some() {
                // The transactional producer fails the batch and aborts instead.
                return false;
            }
            s.bump.insert(p);
        }
        true
    }

    /// The transactional producer's step before sending (`Sender.maybeSendAndPollTransactionalRequest`):
    /// adds the next partition its batches need to the transaction, and ends the transaction
    /// once its batches are done. Says whether batches may be sent.
    fn transaction_step(&self, s: &mut ProducerState, o: &mut KafkaOut) -> bool {
        let (pid, epoch) = s.current();
        let Some(t) = s.txn.as_mut() else {
            return true;
        };
        match t.phase {
            TxnPhase::Initializing(_) | TxnPhase::Fatal | TxnPhase::Ending(_) | TxnPhase::Ready => {
                return false
            }
            TxnPhase::InTransaction | TxnPhase::Completing(_) => {}
        }
        if let TxnPhase::Completing(result) = t.phase {
            if result == TxnResult::Abort {
                // `abortUndrainedBatches`: what was never sent is dropped; what was sent is
                // resent until its fate is known.
                s.batches.retain(|seq, b| {
                    let keep = b.producer_seq.is_some();
                    if !keep {
                        o.cancel_timer(KafkaTimer::DeliveryTimeout(*seq));
                    }
                    keep
                });
            }
            if s.batches.is_empty() {
                let t = s.txn.as_mut().expect("transactional");
                t.phase = TxnPhase::Ending(result);
                if t.added.is_empty() {
                    // No partition joined: the coordinator knows of no transaction, and the
                    // client ends it without `EndTxn` (`TransactionManager.nextRequest`,
                    // `transactionStarted`).
                    self.ended(s, epoch, None, o);
                    return false;
                }
                o.send(
                    self.settings.controller(),
                    KafkaMsg::EndTxn {
                        transactional_id: self.index,
                        producer_id: pid,
                        epoch,
                        result,
                    },
                );
                return false;
            }
        }
        let t = s.txn.as_mut().expect("transactional");
        if t.adding.is_none() {
            let missing = s
                .batches
                .values()
                .map(|b| b.partition)
                .find(|p| !t.added.contains(p));
            if let Some(p) = missing {
                t.adding = Some(p);
                o.send(
                    self.settings.controller(),
                    KafkaMsg::AddPartitionsToTxn {
                        transactional_id: self.index,
                        producer_id: pid,
                        epoch,
                        partition: p,
                        verify_only: false,
                    },
                );
            }
        }
        true
    }

    /// `InitProducerId`'s answer: the producer id and epoch to run under, sequences from 0.
    fn initialized(
        &self,
        s: &mut ProducerState,
        producer_id: u32,
        epoch: u16,
        error: Option<ErrorCode>,
        o: &mut KafkaOut,
    ) {
        if !matches!(
            s.txn.as_ref().map(|t| t.phase),
            Some(TxnPhase::Initializing(_))
        ) {
            return;
        }
        match error {
            None => {
                s.producer_id = Some(producer_id);
                s.producer_epoch = epoch;
                s.sequences.clear();
                let t = s.txn.as_mut().expect("transactional");
                t.phase = TxnPhase::Ready;
                t.bump = false;
                self.pump(s, o);
            }
            Some(ErrorCode::ConcurrentTransactions) => {
                o.set_timer(KafkaTimer::TxnRetry, exact(self.settings.retry_backoff));
            }
            Some(e) => self.give_up(s, e, o),
        }
    }

    /// `EndTxn`'s answer: the transaction is decided. The application learns it here: a
    /// commit acknowledges its records, an abort fails them. With the epoch bumped per
    /// transaction (KIP-890 part 2) the answer carries the new epoch; before it, a transaction
    /// that failed bumps it with `InitProducerId` (KIP-360).
    fn ended(&self, s: &mut ProducerState, epoch: u16, error: Option<ErrorCode>, o: &mut KafkaOut) {
        let Some(TxnPhase::Ending(result)) = s.txn.as_ref().map(|t| t.phase) else {
            return;
        };
        if let Some(e) = error {
            self.give_up(s, e, o);
            return;
        }
        let current = s.current();
        let t = s.txn.as_mut().expect("transactional");
        let msgs: Vec<MsgId> = t.msgs.iter().map(|seq| MsgId { seq: *seq, ..self.id() }).collect();
        let reason = t
            .abortable
            .clone()
            .unwrap_or_else(|| "the application aborted the transaction".into());
        let number = t.number;
        t.number += 1;
        t.msgs.clear();
        t.added.clear();
        let bump = t.bump && !self.settings.version.epoch_bump_per_transaction();
        t.phase = if bump {
            TxnPhase::Initializing(Some(current))
        } else {
            TxnPhase::Ready
        };
        for msg in &msgs {
            let op = match result {
                TxnResult::Commit => Op::Ack { msg: *msg },
                TxnResult::Abort => Op::Fail {
                    msg: *msg,
                    reason: format!("transaction aborted: {reason}"),
                },
            };
            self.record(s, op, o);
        }
        let outcome = match result {
            TxnResult::Commit => TxnOutcome::Committed,
            TxnResult::Abort => TxnOutcome::Aborted,
        };
        let op = Op::Transaction {
            txn: self.txn_id(number),
            msgs,
            outcome,
        };
        self.record(s, op, o);
        if self.settings.version.epoch_bump_per_transaction() && epoch != s.producer_epoch {
            s.producer_epoch = epoch;
            s.sequences.clear();
        }
        if bump {
            let init = KafkaMsg::InitProducerId {
                transactional_id: Some(self.index),
                producer: Some(s.current()),
            };
            o.send(self.settings.controller(), init);
        }
        self.pump(s, o);
    }

    /// A send of the transaction failed: it can only abort, and the epoch is bumped after
    /// (`maybeTransitionToErrorState`, `epochBumpRequired`).
    fn abortable(&self, s: &mut ProducerState, reason: String) {
        let Some(t) = s.txn.as_mut() else {
            return;
        };
        t.bump = true;
        t.abortable.get_or_insert(reason);
        if matches!(t.phase, TxnPhase::InTransaction | TxnPhase::Completing(_)) {
            t.phase = TxnPhase::Completing(TxnResult::Abort);
        }
    }

    /// A fatal error (`PRODUCER_FENCED`, a refused transaction): the application closes the
    /// producer, its open transaction in doubt.
    fn give_up(&self, s: &mut ProducerState, error: ErrorCode, o: &mut KafkaOut) {
        let Some(t) = s.txn.as_mut() else {
            return;
        };
        t.phase = TxnPhase::Fatal;
        let number = t.number;
        let msgs: Vec<MsgId> = t.msgs.drain(..).map(|seq| MsgId { seq, ..self.id() }).collect();
        for (seq, b) in std::mem::take(&mut s.batches) {
            o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
            if let Some(r) = b.in_flight {
                o.cancel_timer(KafkaTimer::RequestTimeout(r));
            }
        }
        if msgs.is_empty() {
            return;
        }
        for msg in &msgs {
            let reason = format!("transaction in doubt: {}", error.name());
            self.record(s, Op::Fail { msg: *msg, reason }, o);
        }
        let op = Op::Transaction {
            txn: self.txn_id(number),
            msgs,
            outcome: TxnOutcome::InDoubt,
        };
        self.record(s, op, o);
    }
}
