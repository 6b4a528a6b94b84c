//! A consumer-group member: fetches into a buffer, hands records to the application one at a
//! time, and commits offsets before processing, after it, or on a timer.
//!
//! With `--rewind N` it also replays: each time it has caught up with a partition (a fetch
//! found nothing new) after reading records it had not read before, it seeks back `N` records
//! (`KafkaConsumer.seek(partition, position - N)`, to the log start if fewer) and reads them
//! again, as an application re-processing a partition does. The seek carries no leader epoch,
//! as `seek(TopicPartition, long)` does not: the consumer validates nothing until it fetches a
//! record again.

use super::log::{LeaderEpoch, TxnResult};
use super::protocol::{leaders, ErrorCode, FetchRequest, Fetcher, KafkaMsg, Partition};
use super::{
    exact, retry, CommitMode, KafkaDisk, KafkaOut, KafkaRandom, KafkaTimer, OffsetReset, Settings,
    Truncation,
};
use crate::AppLog;
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Processing times a run may draw: milliseconds the application spends on one record.
pub const PROCESSING: [u64; 3] = [1, 5, 20];
/// How long a consumer waits for its group assignment before asking again.
const JOIN_RETRY: Duration = Duration::from_millis(5000);

#[derive(Clone, Debug)]
pub struct Consumer {
    pub settings: Settings,
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerState {
    /// The application's record of what it processed and committed.
    pub app: AppLog,
    pub generation: Option<u32>,
    pub assigned: Vec<Partition>,
    pub leaders: Vec<Option<Id>>,
    /// Each partition's leader epoch, as the latest metadata said.
    pub epochs: Vec<LeaderEpoch>,
    /// The leader epoch of the last record fetched from each partition.
    pub last_epoch: BTreeMap<Partition, LeaderEpoch>,
    /// Partitions whose position must be validated against the new leader before fetching
    /// (KIP-320): the log may have been truncated under it.
    /// Next offset to fetch, per assigned partition, once the committed offset is known.
    pub position: BTreeMap<Partition, u64>,
    /// Fetches outstanding, by partition, with their correlation ids.
    pub fetching: BTreeMap<Partition, u64>,
    pub correlation: u64,
    /// Fetched but not yet handed to the application, with their offsets and leader epochs:
    /// lost, not delivered, on a crash.
    pub buffer: VecDeque<(Partition, u64, LeaderEpoch, MsgId)>,
    /// Offset after the last record the application processed, and that record's leader epoch.
    pub processed: BTreeMap<Partition, (u64, LeaderEpoch)>,
    /// Partitions resetting to the latest offset (`auto.offset.reset=latest`), asking the leader.
    pub resetting: BTreeSet<Partition>,
    /// Commits sent and not yet answered.
    pub committing: BTreeMap<Partition, (u64, LeaderEpoch)>,
    pub committed: BTreeMap<Partition, u64>,
    pub validating: BTreeSet<Partition>,
    pub processing: bool,
    /// Per partition, the position up to which the consumer had read when it took the
    /// partition up or last rewound it: it rewinds again only once it has read past it.
    pub rewound: BTreeMap<Partition, u64>,
    /// Time the application spends on one record (drawn per run).
    pub processing_time: Duration,
}

impl Consumer {
    fn coordinator(&self) -> Id {
        self.settings.controller()
    }

    pub fn start(&self, app: AppLog, o: &mut KafkaOut) -> ConsumerState {
        o.choose_random(
            "processing",
            self.settings
                .workload
                .handling(&PROCESSING)
                .into_iter()
                .map(KafkaRandom::Processing)
                .collect(),
        );
        if app.is_empty() && self.settings.workload.consumer_delay_ms > 0 {
            o.set_timer(
                KafkaTimer::Start,
                exact(self.settings.workload.consumer_delay()),
            );
        } else {
            self.join(o);
        }
        ConsumerState {
            app,
            generation: None,
            assigned: Vec::new(),
            leaders: vec![None; self.settings.partitions as usize],
            epochs: vec![0; self.settings.partitions as usize],
            last_epoch: BTreeMap::new(),
            validating: BTreeSet::new(),
            resetting: BTreeSet::new(),
            position: BTreeMap::new(),
            fetching: BTreeMap::new(),
            correlation: 0,
            buffer: VecDeque::new(),
            processed: BTreeMap::new(),
            committing: BTreeMap::new(),
            committed: BTreeMap::new(),
            processing: false,
            rewound: BTreeMap::new(),
            processing_time: Duration::from_millis(PROCESSING[1]),
        }
    }

    /// The application subscribes: joins the group, asks for metadata, starts its timers.
    fn join(&self, o: &mut KafkaOut) {
        o.send(self.coordinator(), KafkaMsg::JoinGroup);
        o.set_timer(KafkaTimer::JoinRetry, exact(JOIN_RETRY));
        o.send(self.coordinator(), KafkaMsg::Metadata);
        o.set_timer(
            KafkaTimer::MetadataRefresh,
            retry(Duration::from_millis(500)),
        );
        o.set_timer(
            KafkaTimer::GroupHeartbeat,
            retry(self.settings.heartbeat_interval),
        );
        if self.settings.commit == CommitMode::Auto {
            o.set_timer(
                KafkaTimer::AutoCommit,
                exact(self.settings.auto_commit_interval),
            );
        }
    }

    fn record(&self, s: &mut ConsumerState, op: Op, o: &mut KafkaOut) {
        s.app.push(op);
        o.save(KafkaDisk::Client(s.app.clone()));
    }

    /// Forgets the assignment and everything fetched for it (an eager rebalance revokes all).
    fn revoke(&self, s: &mut ConsumerState) {
        s.generation = None;
        s.assigned.clear();
        s.position.clear();
        s.fetching.clear();
        s.buffer.clear();
        s.processed.clear();
        s.committing.clear();
        s.committed.clear();
        s.last_epoch.clear();
        s.validating.clear();
        s.resetting.clear();
        s.rewound.clear();
    }

    fn rejoin(&self, s: &mut ConsumerState, o: &mut KafkaOut) {
        self.revoke(s);
        o.send(self.coordinator(), KafkaMsg::JoinGroup);
        o.set_timer(KafkaTimer::JoinRetry, exact(JOIN_RETRY));
    }

    pub fn on_msg(&self, s: &mut ConsumerState, src: Id, msg: KafkaMsg, o: &mut KafkaOut) {
        match msg {
            KafkaMsg::Disconnected => {
                // Requests in flight on the reset connection failed: ask again after a backoff.
                let backoff = exact(self.settings.retry_backoff);
                for p in s.assigned.clone() {
                    let from_leader =
                        s.leaders[p as usize] == Some(src) && s.fetching.contains_key(&p);
                    let from_coordinator = src == self.coordinator()
                        && (!s.position.contains_key(&p) || s.committing.contains_key(&p));
                    if from_leader || from_coordinator {
                        o.set_timer(KafkaTimer::ConsumerFetch(p), backoff.clone());
                    }
                    if from_coordinator && s.committing.contains_key(&p) {
                        o.set_timer(KafkaTimer::CommitRetry(p), backoff.clone());
                    }
                }
                if src == self.coordinator() && s.generation.is_none() {
                    o.set_timer(KafkaTimer::JoinRetry, backoff);
                }
            }
            KafkaMsg::SyncGroup {
                generation,
                partitions,
            } => {
                if s.generation.is_some_and(|g| g >= generation) {
                    return;
                }
                self.revoke(s);
                o.cancel_timer(KafkaTimer::JoinRetry);
                s.generation = Some(generation);
                s.assigned = partitions;
                for p in s.assigned.clone() {
                    self.fetch(s, p, o);
                }
            }
            KafkaMsg::OffsetFetchResponse {
                generation,
                partition,
                offset,
                leader_epoch,
            } if s.generation == Some(generation)
                && s.assigned.contains(&partition)
                && !s.position.contains_key(&partition)
                && !s.resetting.contains(&partition) =>
            {
                match offset {
                    Some(offset) => {
                        s.committed.insert(partition, offset);
                        // KIP-320: the committed offset's epoch is validated against the
                        // leader before the first fetch, as after a leader change.
                        if self.detects_truncation() && leader_epoch > 0 {
                            s.last_epoch.insert(partition, leader_epoch);
                            s.validating.insert(partition);
                        }
                        self.start_at(s, partition, offset, leader_epoch, o);
                    }
                    None => self.reset(s, partition, o),
                }
            }
            KafkaMsg::ListOffsetsResponse {
                partition,
                offset,
                error,
            } if s.resetting.contains(&partition) => {
                o.cancel_timer(KafkaTimer::ConsumerFetch(partition));
                if error.is_some() {
                    self.stale_leader(s, partition, o);
                    return;
                }
                s.resetting.remove(&partition);
                self.start_at(s, partition, offset, 0, o);
            }
            KafkaMsg::MetadataResponse(states) => {
                s.leaders = leaders(&states);
                for st in &states {
                    let p = st.partition;
                    let newer = st.leader_epoch > s.epochs[p as usize];
                    s.epochs[p as usize] = st.leader_epoch;
                    if newer && self.detects_truncation() && s.last_epoch.contains_key(&p) {
                        s.validating.insert(p);
                    }
                }
                if s.leaders.iter().any(Option::is_none) {
                    o.set_timer(
                        KafkaTimer::MetadataRefresh,
                        retry(Duration::from_millis(500)),
                    );
                }
                // Partitions still without a leader wait for their fetch timer: asking again at
                // once would loop as fast as the network while an election is pending.
                for p in s.assigned.clone() {
                    if s.leaders[p as usize].is_some() {
                        self.fetch(s, p, o);
                    }
                }
            }
            KafkaMsg::HeartbeatResponse { error: Some(_) } => self.rejoin(s, o),
            KafkaMsg::FetchResponse {
                partition,
                correlation,
                offset,
                records,
                aborted,
                error,
                ..
            } => {
                if s.fetching.get(&partition) != Some(&correlation)
                    || s.position.get(&partition) != Some(&offset)
                {
                    return;
                }
                s.fetching.remove(&partition);
                o.cancel_timer(KafkaTimer::ConsumerFetch(partition));
                match error {
                    Some(ErrorCode::OffsetOutOfRange)
                        if self.detects_truncation() && s.last_epoch.contains_key(&partition) =>
                    {
                        // The log was truncated under our position: find where it diverges.
                        s.validating.insert(partition);
                        self.fetch(s, partition, o);
                    }
                    Some(ErrorCode::OffsetOutOfRange) => {
                        s.position.remove(&partition);
                        self.reset(s, partition, o);
                    }
                    Some(_) => self.stale_leader(s, partition, o),
                    None if records.is_empty() => {
                        if !self.rewind(s, partition, o) {
                            self.fetch(s, partition, o)
                        }
                    }
                    None => {
                        let mut next = offset;
                        // The first and last offsets handed over, and whether any between them
                        // was not (a marker, an aborted record).
                        let mut buffered: Option<(u64, u64)> = None;
                        let mut gapped = false;
                        // `CompletedFetch`: a read_committed consumer skips the records of the
                        // aborted transactions the response lists (from a transaction's first
                        // offset to its abort marker); no one hands markers to the application.
                        let mut aborted: VecDeque<(u32, u64)> = aborted.into();
                        let mut aborting: BTreeSet<u32> = BTreeSet::new();
                        for r in records {
                            while aborted.front().is_some_and(|(_, first)| *first <= next) {
                                let (pid, _) = aborted.pop_front().expect("checked");
                                aborting.insert(pid);
                            }
                            let pid = r.producer_seq.map(|p| p.producer_id);
                            s.last_epoch.insert(partition, r.epoch);
                            match r.control {
                                Some(TxnResult::Abort) => {
                                    if let Some(pid) = pid {
                                        aborting.remove(&pid);
                                    }
                                }
                                Some(TxnResult::Commit) => {}
                                None if r.transactional
                                    && pid.is_some_and(|p| aborting.contains(&p)) => {}
                                None => {
                                    s.buffer.push_back((partition, next, r.epoch, r.msg));
                                    gapped |= buffered.is_some_and(|(_, last)| last + 1 < next);
                                    buffered = Some((buffered.map_or(next, |(first, _)| first), next));
                                }
                            }
                            next += 1;
                        }
                        s.position.insert(partition, next);
                        if let Some((from, last)) = buffered.filter(|_| gapped) {
                            let op = Op::Poll {
                                group: 0,
                                consumer: self.index,
                                scope: partition,
                                from,
                                to: last + 1,
                            };
                            self.record(s, op, o);
                        }
                        if buffered.is_none() {
                            // Only markers and aborted records: read on.
                            self.fetch(s, partition, o);
                        } else if self.settings.commit == CommitMode::BeforeProcessing {
                            let epoch = s.last_epoch[&partition];
                            self.commit(s, partition, next, epoch, o);
                        } else {
                            self.process_soon(s, o);
                        }
                    }
                }
            }
            KafkaMsg::OffsetsForLeaderEpochResponse {
                partition,
                end_offset,
                error,
                ..
            } if s.validating.contains(&partition) => {
                o.cancel_timer(KafkaTimer::ConsumerFetch(partition));
                if error.is_some() {
                    self.stale_leader(s, partition, o);
                    return;
                }
                s.validating.remove(&partition);
                if let Some(position) = s.position.get_mut(&partition) {
                    // Records from the divergence point on are gone: resume there.
                    *position = (*position).min(end_offset);
                }
                self.fetch(s, partition, o);
            }
            KafkaMsg::OffsetCommitResponse {
                partition,
                offset,
                error,
            } => {
                if s.committing.get(&partition).map(|c| c.0) != Some(offset) {
                    return;
                }
                s.committing.remove(&partition);
                o.cancel_timer(KafkaTimer::CommitRetry(partition));
                if error.is_some() {
                    // CommitFailedException: the group moved on without us.
                    self.rejoin(s, o);
                    return;
                }
                s.committed.insert(partition, offset);
                let op = Op::Commit {
                    group: 0,
                    consumer: self.index,
                    scope: partition,
                    position: offset,
                };
                self.record(s, op, o);
                match self.settings.commit {
                    CommitMode::BeforeProcessing => self.process_soon(s, o),
                    CommitMode::AfterProcessing => self.fetch(s, partition, o),
                    CommitMode::Auto => {}
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ConsumerState, timer: &KafkaTimer, o: &mut KafkaOut) {
        match timer {
            KafkaTimer::Start => self.join(o),
            KafkaTimer::JoinRetry if s.generation.is_none() => {
                self.rejoin(s, o);
            }
            KafkaTimer::GroupHeartbeat => {
                if let Some(generation) = s.generation {
                    o.send(self.coordinator(), KafkaMsg::Heartbeat { generation });
                }
                o.set_timer(
                    KafkaTimer::GroupHeartbeat,
                    retry(self.settings.heartbeat_interval),
                );
            }
            KafkaTimer::MetadataRefresh if s.leaders.iter().any(Option::is_none) => {
                o.send(self.coordinator(), KafkaMsg::Metadata);
                o.set_timer(
                    KafkaTimer::MetadataRefresh,
                    retry(Duration::from_millis(500)),
                );
            }
            KafkaTimer::ConsumerFetch(p) => {
                // A request timed out, or a backoff ended.
                s.fetching.remove(p);
                if s.assigned.contains(p) {
                    self.fetch(s, *p, o);
                }
            }
            KafkaTimer::CommitRetry(p) => {
                if let (Some(&(offset, leader_epoch)), Some(generation)) =
                    (s.committing.get(p), s.generation)
                {
                    o.send(
                        self.coordinator(),
                        KafkaMsg::OffsetCommit {
                            generation,
                            partition: *p,
                            offset,
                            leader_epoch,
                        },
                    );
                    o.set_timer(timer.clone(), exact(self.settings.request_timeout));
                }
            }
            KafkaTimer::AutoCommit => {
                for p in s.assigned.clone() {
                    let processed = s.processed.get(&p).copied();
                    if let Some((offset, epoch)) = processed {
                        if s.committed.get(&p) != Some(&offset) && !s.committing.contains_key(&p) {
                            self.commit(s, p, offset, epoch, o);
                        }
                    }
                }
                o.set_timer(
                    KafkaTimer::AutoCommit,
                    exact(self.settings.auto_commit_interval),
                );
            }
            KafkaTimer::Process => {
                s.processing = false;
                self.process_one(s, o);
            }
            _ => {}
        }
    }

    /// Takes up partition `p` at `offset`, the record before it of `epoch`.
    fn start_at(
        &self,
        s: &mut ConsumerState,
        p: Partition,
        offset: u64,
        epoch: LeaderEpoch,
        o: &mut KafkaOut,
    ) {
        s.position.insert(p, offset);
        s.processed.insert(p, (offset, epoch));
        s.rewound.insert(p, offset);
        self.fetch(s, p, o);
    }

    /// `--rewind N`: once caught up with `p` (nothing buffered, nothing new to fetch) after
    /// reading past where it last rewound, seeks `N` records back and fetches from there. Says
    /// whether it did.
    fn rewind(&self, s: &mut ConsumerState, p: Partition, o: &mut KafkaOut) -> bool {
        let (Some(back), Some(&from), Some(generation)) = (
            self.settings.workload.rewind,
            s.position.get(&p),
            s.generation,
        ) else {
            return false;
        };
        let caught_up = !s.buffer.iter().any(|(bp, _, _, _)| *bp == p)
            && s.processed.get(&p).map(|(offset, _)| *offset) == Some(from);
        if !caught_up || s.rewound.get(&p).is_some_and(|&r| r >= from) {
            return false;
        }
        let to = from.saturating_sub(u64::from(back));
        s.position.insert(p, to);
        s.rewound.insert(p, from);
        // `seek(TopicPartition, long)` forgets the position's leader epoch.
        s.last_epoch.remove(&p);
        s.validating.remove(&p);
        let op = Op::Rewind {
            group: 0,
            consumer: self.index,
            scope: p,
            session: u64::from(generation),
            from,
            to,
        };
        self.record(s, op, o);
        self.fetch(s, p, o);
        true
    }

    /// `auto.offset.reset`: `earliest` starts from the log start; `latest` asks the leader for
    /// its latest offset, skipping every record already there — a new group never sees what was
    /// produced before it joined (the Kafka documentation's `auto.offset.reset`).
    fn reset(&self, s: &mut ConsumerState, p: Partition, o: &mut KafkaOut) {
        match self.settings.offset_reset {
            OffsetReset::Earliest => self.start_at(s, p, 0, 0, o),
            OffsetReset::Latest => {
                s.resetting.insert(p);
                self.fetch(s, p, o);
            }
        }
    }

    /// Fetches the next records of `p` unless something for it is still buffered or committing;
    /// first asks the coordinator where the group left off, or the leader for its latest offset.
    fn fetch(&self, s: &mut ConsumerState, p: Partition, o: &mut KafkaOut) {
        if s.resetting.contains(&p) && s.generation.is_some() {
            match s.leaders[p as usize] {
                Some(leader) => o.send(
                    leader,
                    KafkaMsg::ListOffsets {
                        partition: p,
                        isolation: self.settings.isolation,
                    },
                ),
                None => o.send(self.coordinator(), KafkaMsg::Metadata),
            }
            o.set_timer(
                KafkaTimer::ConsumerFetch(p),
                exact(self.settings.request_timeout),
            );
            return;
        }
        let (Some(&offset), Some(_)) = (s.position.get(&p), s.generation) else {
            if let Some(generation) = s.generation {
                o.send(
                    self.coordinator(),
                    KafkaMsg::OffsetFetch {
                        generation,
                        partition: p,
                    },
                );
                o.set_timer(
                    KafkaTimer::ConsumerFetch(p),
                    exact(self.settings.request_timeout),
                );
            }
            return;
        };
        let blocked = s.fetching.contains_key(&p)
            || s.buffer.iter().any(|(bp, _, _, _)| *bp == p)
            || (self.settings.commit != CommitMode::Auto && s.committing.contains_key(&p));
        if blocked {
            return;
        }
        match s.leaders[p as usize] {
            Some(leader) if s.validating.contains(&p) => {
                o.send(
                    leader,
                    KafkaMsg::OffsetsForLeaderEpoch {
                        partition: p,
                        leader_epoch: s.epochs[p as usize],
                        requested_epoch: s.last_epoch.get(&p).copied().unwrap_or(0),
                    },
                );
                o.set_timer(
                    KafkaTimer::ConsumerFetch(p),
                    exact(self.settings.request_timeout),
                );
            }
            Some(leader) => {
                s.correlation += 1;
                o.send(
                    leader,
                    KafkaMsg::Fetch(FetchRequest {
                        partition: p,
                        offset,
                        leader_epoch: if self.detects_truncation() {
                            s.epochs[p as usize]
                        } else {
                            0
                        },
                        fetcher: Fetcher::Consumer,
                        isolation: self.settings.isolation,
                        correlation: s.correlation,
                    }),
                );
                s.fetching.insert(p, s.correlation);
                o.set_timer(
                    KafkaTimer::ConsumerFetch(p),
                    exact(self.settings.request_timeout),
                );
            }
            None => {
                o.send(self.coordinator(), KafkaMsg::Metadata);
                o.set_timer(
                    KafkaTimer::ConsumerFetch(p),
                    exact(Duration::from_millis(500)),
                );
            }
        }
    }

    /// The leader refused us: our metadata is stale. Forget the leader; after
    /// `retry.backoff.ms` the fetch timer asks the controller again, as Kafka's clients back off
    /// before a metadata refresh (asking at once would loop as fast as the network while an
    /// election is pending).
    fn stale_leader(&self, s: &mut ConsumerState, partition: Partition, o: &mut KafkaOut) {
        s.leaders[partition as usize] = None;
        o.set_timer(
            KafkaTimer::ConsumerFetch(partition),
            exact(self.settings.retry_backoff),
        );
    }

    /// KIP-320's consumer half came with leader-epoch truncation (Kafka 2.1): fetches carry the
    /// leader epoch and positions are validated after a leader change. Before it, a consumer
    /// past the log end just reset to `auto.offset.reset`.
    fn detects_truncation(&self) -> bool {
        self.settings.truncation == Truncation::LeaderEpoch
    }

    fn commit(
        &self,
        s: &mut ConsumerState,
        p: Partition,
        offset: u64,
        leader_epoch: LeaderEpoch,
        o: &mut KafkaOut,
    ) {
        let Some(generation) = s.generation else {
            return;
        };
        s.committing.insert(p, (offset, leader_epoch));
        o.send(
            self.coordinator(),
            KafkaMsg::OffsetCommit {
                generation,
                partition: p,
                offset,
                leader_epoch,
            },
        );
        o.set_timer(
            KafkaTimer::CommitRetry(p),
            exact(self.settings.request_timeout),
        );
    }

    fn process_soon(&self, s: &mut ConsumerState, o: &mut KafkaOut) {
        if !s.processing && !s.buffer.is_empty() {
            s.processing = true;
            o.set_timer(KafkaTimer::Process, exact(s.processing_time));
        }
    }

    /// Hands the next buffered record to the application: this is a delivery.
    fn process_one(&self, s: &mut ConsumerState, o: &mut KafkaOut) {
        let Some(&(p, offset, epoch, msg)) = s.buffer.front() else {
            return;
        };
        if self.settings.commit == CommitMode::BeforeProcessing && s.committing.contains_key(&p) {
            return; // processing waits for the commit; its answer resumes it
        }
        s.buffer.pop_front();
        s.processed.insert(p, (offset + 1, epoch));
        let op = Op::Deliver {
            msg,
            group: 0,
            consumer: self.index,
            scope: p,
            position: Some(offset),
            session: u64::from(s.generation.unwrap_or(0)),
            redelivered: None,
        };
        self.record(s, op, o);
        if !s.buffer.iter().any(|(bp, _, _, _)| *bp == p) {
            match self.settings.commit {
                CommitMode::AfterProcessing => self.commit(s, p, offset + 1, epoch, o),
                CommitMode::BeforeProcessing | CommitMode::Auto => self.fetch(s, p, o),
            }
        }
        self.process_soon(s, o);
    }
}
