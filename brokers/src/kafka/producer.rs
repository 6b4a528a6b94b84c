//! The producer: batches, in-flight requests, retries, and the idempotent producer's sequence
//! numbers.
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

use super::protocol::{leaders, Acks, KafkaMsg, Partition};
use super::{exact, retry, KafkaDisk, KafkaOut, KafkaRandom, KafkaTimer, Settings};
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::Id;
use std::collections::BTreeMap;
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
    /// The idempotent producer's sequence number within the partition.
    pub sequence: Option<u32>,
    pub attempts: u64,
    /// The request carrying it, while one is outstanding, and the broker it went to.
    pub in_flight: Option<u64>,
    pub sent_to: Option<Id>,
    /// Waiting out `retry.backoff.ms` before the next attempt.
    pub backing_off: bool,
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
    /// Producer id: a new one after a sequence reset (KIP-360's epoch bump); `None` while a
    /// restarted idempotent producer waits for `InitProducerId`'s answer.
    pub producer_id: Option<u32>,
    pub next_sequence: BTreeMap<Partition, u32>,
}

impl Producer {
    fn id(&self) -> MsgId {
        MsgId {
            producer: self.index,
            seq: 0,
        }
    }

    pub fn start(&self, app: AppLog, o: &mut KafkaOut) -> ProducerState {
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
        let outbox = app.outbox();
        let restarted = !app.is_empty();
        if restarted && self.settings.idempotence {
            o.send(self.settings.controller(), KafkaMsg::InitProducerId);
        }
        let mut s = ProducerState {
            app,
            pace: None,
            next: outbox.sent as u32,
            leaders: vec![None; self.settings.partitions as usize],
            batches: BTreeMap::new(),
            next_request: 0,
            producer_id: (!restarted).then_some(self.index << 16),
            next_sequence: BTreeMap::new(),
        };
        for msg in outbox.unacknowledged {
            self.enqueue(&mut s, msg.seq, o);
        }
        s
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
                        self.failed_attempt(s, seq, "NETWORK_EXCEPTION", o);
                    }
                }
            }
            KafkaMsg::InitProducerIdResponse { producer_id } if s.producer_id.is_none() => {
                s.producer_id = Some(producer_id);
                self.pump(s, o);
            }
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
                        s.batches.remove(&seq);
                        o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
                        let msg = MsgId { seq, ..self.id() };
                        self.record(s, Op::Ack { msg }, o);
                        self.pump(s, o);
                    }
                    Err(e) => self.failed_attempt(s, seq, e.name(), o),
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
                    self.failed_attempt(s, seq, "request.timeout.ms expired", o);
                }
            }
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
                    self.record(s, Op::Fail { msg, reason }, o);
                    if self.settings.idempotence {
                        self.reset_sequences(s, o);
                    }
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
        let seq = s.next;
        s.next += 1;
        let partition = self.settings.partition_for(seq);
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
        self.enqueue(s, seq, o);
        self.pump(s, o);
        if let Some(pace) = s.pace {
            o.set_timer(KafkaTimer::Send, exact(pace));
        }
    }

    /// Puts record `seq` in a batch of its own, numbered within its partition, with its
    /// `delivery.timeout.ms`.
    fn enqueue(&self, s: &mut ProducerState, seq: u32, o: &mut KafkaOut) {
        let partition = self.settings.partition_for(seq);
        let sequence = self.settings.idempotence.then(|| {
            let n = s.next_sequence.entry(partition).or_insert(0);
            *n += 1;
            *n - 1
        });
        s.batches.insert(
            seq,
            Batch {
                partition,
                sequence,
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
    /// to the head of its partition's queue (`RecordAccumulator.reenqueue`), so nothing newer is
    /// sent past it; what overtakes a retry is only what was already in flight. The idempotent
    /// producer sends nothing before it has a producer id.
    fn pump(&self, s: &mut ProducerState, o: &mut KafkaOut) {
        if self.settings.idempotence && s.producer_id.is_none() {
            return;
        }
        for p in 0..self.settings.partitions {
            let Some(leader) = s.leaders[p as usize] else {
                continue;
            };
            let mut in_flight = s
                .batches
                .values()
                .filter(|b| b.partition == p && b.in_flight.is_some())
                .count();
            let mut order: Vec<(u32, u32)> = s
                .batches
                .iter()
                .filter(|(_, b)| b.partition == p)
                .map(|(seq, b)| (b.sequence.unwrap_or(*seq), *seq))
                .collect();
            order.sort();
            for (_, seq) in order {
                if in_flight >= self.settings.max_in_flight {
                    break;
                }
                let b = &s.batches[&seq];
                if b.backing_off {
                    break;
                }
                if b.in_flight.is_some() {
                    continue;
                }
                let request = s.next_request;
                s.next_request += 1;
                let b = s.batches.get_mut(&seq).expect("batch exists");
                b.attempts += 1;
                o.send(
                    leader,
                    KafkaMsg::Produce {
                        partition: p,
                        request,
                        msg: MsgId { seq, ..self.id() },
                        producer_seq: s.producer_id.zip(b.sequence),
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

    /// A failed attempt is retried after `retry.backoff.ms` while `retries` allows. The
    /// idempotent producer also pulls back every later batch of the partition, to resend them
    /// in sequence order.
    fn failed_attempt(&self, s: &mut ProducerState, seq: u32, reason: &str, o: &mut KafkaOut) {
        let b = s.batches[&seq].clone();
        if b.attempts > self.settings.retries {
            s.batches.remove(&seq);
            o.cancel_timer(KafkaTimer::DeliveryTimeout(seq));
            let msg = MsgId { seq, ..self.id() };
            let reason = format!("{reason} after {} attempts", b.attempts);
            self.record(s, Op::Fail { msg, reason }, o);
            if self.settings.idempotence {
                self.reset_sequences(s, o);
            }
            self.pump(s, o);
            return;
        }
        for (other, ob) in s.batches.iter_mut() {
            let pulled_back = *other == seq
                || (self.settings.idempotence
                    && ob.partition == b.partition
                    && ob.sequence > b.sequence);
            if pulled_back {
                if let Some(r) = ob.in_flight.take() {
                    o.cancel_timer(KafkaTimer::RequestTimeout(r));
                }
                ob.backing_off = true;
            }
        }
        o.set_timer(KafkaTimer::RetryBackoff, exact(self.settings.retry_backoff));
        o.send(self.settings.controller(), KafkaMsg::Metadata);
    }

    /// After a batch of the idempotent producer fails for good, its sequence has a gap the
    /// leader would refuse forever: take a new producer id and renumber what is left.
    fn reset_sequences(&self, s: &mut ProducerState, o: &mut KafkaOut) {
        s.producer_id = s.producer_id.map(|id| id + 1);
        s.next_sequence.clear();
        for b in s.batches.values_mut() {
            let n = s.next_sequence.entry(b.partition).or_insert(0);
            b.sequence = Some(*n);
            *n += 1;
            if let Some(r) = b.in_flight.take() {
                o.cancel_timer(KafkaTimer::RequestTimeout(r));
            }
            b.backing_off = true;
        }
        o.set_timer(KafkaTimer::RetryBackoff, exact(self.settings.retry_backoff));
    }
}
