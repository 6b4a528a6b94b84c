//! A Kafka broker: the replicas it hosts, as leader or follower.

use super::config::Isolation;
use super::log::{CommitLog, LeaderEpoch, ProducerCheck, ProducerSeq, Record, TxnResult};
use super::protocol::{
    Acks, ErrorCode, FetchRequest, Fetcher, KafkaMsg, Partition, PartitionState,
};
use super::{
    exact, retry, KafkaDisk, KafkaOut, KafkaTimer, Settings, Truncation, ALTER_PARTITION_RETRY,
    FETCH_BACKOFF, HW_CHECKPOINT, MAX_FETCH_RECORDS,
};
use crate::Durable;
use stateright::actor::Id;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Broker {
    pub settings: Settings,
}

/// What a broker has on disk: one log per hosted partition and the high-watermark checkpoint
/// (`replication-offset-checkpoint`, written every few seconds and fsynced).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerDisk {
    pub logs: BTreeMap<Partition, CommitLog>,
    pub hw_checkpoint: BTreeMap<Partition, u64>,
    /// How many times this broker process started (written and fsynced at startup, like
    /// KRaft's incarnation id): the controller tells a restart from a retried registration.
    pub incarnation: u32,
}

impl Durable for BrokerDisk {
    fn after_power_loss(&self) -> Self {
        let mut disk = self.clone();
        for (p, log) in disk.logs.iter_mut() {
            log.truncate(log.flushed);
            if let Some(hw) = disk.hw_checkpoint.get_mut(p) {
                *hw = (*hw).min(log.end_offset());
            }
        }
        disk
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerState {
    pub replicas: Vec<Replica>,
    pub incarnation: u32,
    /// Produce requests read from a muted connection, in arrival order: the network layer reads
    /// a connection's next request only once the previous one is answered
    /// (`SocketServer.Processor`: `selector.mute` on receive, `tryUnmuteChannel` once the
    /// response is sent), so a client's answers come back in the order of its requests.
    pub muted: Vec<(Id, KafkaMsg)>,
    /// Transactional produce requests held while the coordinator verifies that their
    /// partition is in the producer's transaction (KIP-890 part 1, `AddPartitionsToTxnManager`),
    /// each with the `transactional.id` asked about.
    pub verifying: Vec<(Id, KafkaMsg)>,
}

/// Is `client`'s connection muted: does a produce of its wait for the high watermark, or for
/// the coordinator's verification?
fn is_muted(s: &BrokerState, client: Id) -> bool {
    s.verifying.iter().any(|(c, _)| *c == client)
        || s.replicas.iter().any(|r| match &r.role {
            ReplicaRole::Leader(l) => l.delayed_produce.iter().any(|d| d.client == client),
            _ => false,
        })
}

/// One partition replica on this broker.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    pub partition: Partition,
    pub log: CommitLog,
    pub high_watermark: u64,
    pub hw_checkpoint: u64,
    /// The controller's latest record of this partition, as this broker learned it.
    pub known: Option<PartitionState>,
    pub role: ReplicaRole,
    /// Correlation id of this follower's latest fetch.
    pub correlation: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReplicaRole {
    /// No leader known, or the partition is offline.
    Idle,
    Leader(LeaderState),
    Follower {
        leader: Id,
        /// Waiting for the OffsetsForLeaderEpoch answer before fetching (KIP-101).
        truncating: bool,
    },
}

/// A produce request waiting for the high watermark to pass its record (`acks=all`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DelayedProduce {
    pub client: Id,
    pub request: u64,
    pub offset: u64,
    /// A transaction marker the coordinator asked for (its `transactional.id` and round), not a
    /// producer's record: markers are written with `acks=all` too.
    pub marker: Option<(u32, u64)>,
}

impl DelayedProduce {
    /// The answer to the request, once the high watermark passed its record or it failed.
    fn response(&self, partition: Partition, result: Result<u64, ErrorCode>) -> KafkaMsg {
        match self.marker {
            Some((transactional_id, round)) => KafkaMsg::WriteTxnMarkersResponse {
                transactional_id,
                partition,
                round,
                error: result.err(),
            },
            None => KafkaMsg::ProduceResponse {
                partition,
                request: self.request,
                result,
            },
        }
    }
}

/// An empty fetch held until data arrives or its wait passes (the fetch purgatory).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DelayedFetch {
    pub fetcher: Id,
    pub request: FetchRequest,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderState {
    pub epoch: LeaderEpoch,
    pub isr: Vec<Id>,
    /// The ISR this leader asked the controller for and has not heard back about.
    pub pending_isr: Option<Vec<Id>>,
    /// Each follower's log end offset, as its last fetch showed.
    pub follower_leo: BTreeMap<Id, u64>,
    pub delayed_produce: Vec<DelayedProduce>,
    pub delayed_fetch: Vec<DelayedFetch>,
}

impl LeaderState {
    /// Takes the held fetches of one kind out of the purgatory, to be answered now.
    fn release(&mut self, kind: Fetcher) -> Vec<DelayedFetch> {
        let (released, kept) = std::mem::take(&mut self.delayed_fetch)
            .into_iter()
            .partition(|f| f.request.fetcher == kind);
        self.delayed_fetch = kept;
        released
    }

    /// The "maximal ISR" of KIP-497: a pending expansion counts towards the high watermark at
    /// once, a pending shrink only once the controller accepted it.
    fn maximal_isr(&self) -> Vec<Id> {
        let mut isr = self.isr.clone();
        for id in self.pending_isr.iter().flatten() {
            if !isr.contains(id) {
                isr.push(*id);
            }
        }
        isr
    }
}

impl Broker {
    fn controller(&self) -> Id {
        self.settings.controller()
    }

    pub fn start(&self, id: Id, disk: Option<&BrokerDisk>, o: &mut KafkaOut) -> BrokerState {
        let replicas = (0..self.settings.partitions)
            .filter(|p| self.settings.replicas(*p).contains(&id))
            .map(|p| {
                let log = disk
                    .and_then(|d| d.logs.get(&p).cloned())
                    .unwrap_or_default();
                let hw = disk
                    .and_then(|d| d.hw_checkpoint.get(&p).copied())
                    .unwrap_or(0)
                    .min(log.end_offset());
                Replica {
                    partition: p,
                    log,
                    high_watermark: hw,
                    hw_checkpoint: hw,
                    known: None,
                    role: ReplicaRole::Idle,
                    correlation: 0,
                }
            })
            .collect();
        let s = BrokerState {
            replicas,
            incarnation: disk.map_or(0, |d| d.incarnation) + 1,
            muted: Vec::new(),
            verifying: Vec::new(),
        };
        self.save(&s, o);
        o.send(
            self.controller(),
            KafkaMsg::BrokerRegistration {
                incarnation: s.incarnation,
            },
        );
        o.set_timer(
            KafkaTimer::Registration,
            retry(self.settings.broker_heartbeat_interval),
        );
        o.set_timer(KafkaTimer::HwCheckpoint, retry(HW_CHECKPOINT));
        s
    }

    fn save(&self, s: &BrokerState, o: &mut KafkaOut) {
        o.save(KafkaDisk::Server(BrokerDisk {
            logs: s
                .replicas
                .iter()
                .map(|r| (r.partition, r.log.clone()))
                .collect(),
            hw_checkpoint: s
                .replicas
                .iter()
                .map(|r| (r.partition, r.hw_checkpoint))
                .collect(),
            incarnation: s.incarnation,
        }));
    }

    pub fn on_msg(&self, id: Id, s: &mut BrokerState, src: Id, msg: KafkaMsg, o: &mut KafkaOut) {
        if matches!(msg, KafkaMsg::Produce { .. }) && is_muted(s, src) {
            s.muted.push((src, msg));
            return;
        }
        self.handle(id, s, src, msg, o);
        self.unmute(id, s, o);
    }

    pub fn on_timeout(&self, id: Id, s: &mut BrokerState, timer: &KafkaTimer, o: &mut KafkaOut) {
        self.handle_timeout(s, timer, o);
        self.unmute(id, s, o);
    }

    /// Reads the held requests of every connection whose answer went out, oldest first.
    fn unmute(&self, id: Id, s: &mut BrokerState, o: &mut KafkaOut) {
        while let Some(i) = s.muted.iter().position(|(c, _)| !is_muted(s, *c)) {
            let (src, msg) = s.muted.remove(i);
            self.handle(id, s, src, msg, o);
        }
    }

    fn handle(&self, id: Id, s: &mut BrokerState, src: Id, msg: KafkaMsg, o: &mut KafkaOut) {
        match msg {
            KafkaMsg::Disconnected => {
                // A closed connection's unread requests are gone with it.
                s.muted.retain(|(c, _)| *c != src);
                s.verifying.retain(|(c, _)| *c != src);
                // The replica fetcher reconnects to its leader and asks again after a backoff.
                for r in &s.replicas {
                    if matches!(r.role, ReplicaRole::Follower { leader, .. } if leader == src) {
                        o.set_timer(KafkaTimer::ReplicaFetch(r.partition), exact(FETCH_BACKOFF));
                    }
                }
            }
            KafkaMsg::PartitionChange(states) | KafkaMsg::BrokerHeartbeatResponse(states)
                if src == self.controller() =>
            {
                o.cancel_timer(KafkaTimer::Registration);
                o.set_timer(
                    KafkaTimer::BrokerHeartbeat,
                    retry(self.settings.broker_heartbeat_interval),
                );
                for ps in states {
                    self.apply_partition_state(id, s, ps, o);
                }
            }
            KafkaMsg::AlterPartitionResponse { state, error } if src == self.controller() => {
                if error.is_some() {
                    // Refused (KIP-841): fall back to the committed ISR, and let the lag and
                    // catch-up rules propose again.
                    if let Some(r) = replica_mut(s, state.partition) {
                        if let ReplicaRole::Leader(l) = &mut r.role {
                            l.pending_isr = None;
                            o.cancel_timer(KafkaTimer::AlterPartitionRetry(state.partition));
                        }
                    }
                }
                self.apply_partition_state(id, s, state, o);
            }
            KafkaMsg::Fetch(request) => self.on_fetch(s, src, request, o),
            KafkaMsg::ListOffsets {
                partition,
                isolation,
            } => {
                // The latest offset a consumer may read from: the high watermark, or for
                // read_committed the last stable offset (`UnifiedLog.fetchOffsetByTimestamp`,
                // LATEST_TIMESTAMP).
                let (offset, error) = match replica(s, partition) {
                    Some(r) if matches!(r.role, ReplicaRole::Leader(_)) => {
                        (read_limit(r, Fetcher::Consumer, isolation), None)
                    }
                    _ => (0, Some(ErrorCode::NotLeaderOrFollower)),
                };
                o.send(
                    src,
                    KafkaMsg::ListOffsetsResponse {
                        partition,
                        offset,
                        error,
                    },
                );
            }
            KafkaMsg::FetchResponse {
                partition,
                correlation,
                offset,
                records,
                high_watermark,
                log_end_offset,
                error,
                ..
            } => self.on_fetch_response(
                s,
                src,
                partition,
                correlation,
                offset,
                records,
                high_watermark,
                log_end_offset,
                error,
                o,
            ),
            KafkaMsg::OffsetsForLeaderEpoch {
                partition,
                leader_epoch,
                requested_epoch,
            } => {
                let Some(r) = replica(s, partition) else {
                    return;
                };
                let reply = match &r.role {
                    ReplicaRole::Leader(l) if l.epoch == leader_epoch => {
                        let (epoch, end_offset) = match self.settings.truncation {
                            // KIP-101 as shipped: where the next epoch starts, and no epoch.
                            Truncation::Kip101 => (0, r.log.start_offset_of(requested_epoch + 1)),
                            _ => r.log.end_offset_for_epoch(requested_epoch),
                        };
                        KafkaMsg::OffsetsForLeaderEpochResponse {
                            partition,
                            epoch,
                            end_offset,
                            error: None,
                        }
                    }
                    ReplicaRole::Leader(l) => KafkaMsg::OffsetsForLeaderEpochResponse {
                        partition,
                        epoch: 0,
                        end_offset: 0,
                        error: Some(epoch_error(leader_epoch, l.epoch)),
                    },
                    _ => KafkaMsg::OffsetsForLeaderEpochResponse {
                        partition,
                        epoch: 0,
                        end_offset: 0,
                        error: Some(ErrorCode::NotLeaderOrFollower),
                    },
                };
                o.send(src, reply);
            }
            KafkaMsg::OffsetsForLeaderEpochResponse {
                partition,
                epoch,
                end_offset,
                error,
            } => {
                let Some(r) = replica_mut(s, partition) else {
                    return;
                };
                let ReplicaRole::Follower {
                    leader,
                    truncating: true,
                } = r.role
                else {
                    return;
                };
                if leader != src {
                    return;
                }
                if error.is_some() {
                    o.set_timer(KafkaTimer::ReplicaFetch(partition), exact(FETCH_BACKOFF));
                    return;
                }
                // `AbstractFetcherThread.getOffsetTruncationState`. KIP-101's answer has no epoch:
                // cut at the leader's offset. KIP-279: cut where the leader's answer and this
                // log's own end of that epoch agree; if this log does not have the leader's
                // epoch, cut to where its own earlier epoch ends and ask again.
                let leo = r.log.end_offset();
                let (own_epoch, own_end) = r.log.end_offset_for_epoch(epoch);
                let (cut, complete) = if epoch == 0 || own_epoch == 0 {
                    (end_offset.min(leo), true)
                } else if own_epoch != epoch {
                    (own_end.min(leo), false)
                } else {
                    (own_end.min(end_offset).min(leo), true)
                };
                if cut < leo {
                    r.log.truncate(cut);
                    r.high_watermark = r.high_watermark.min(cut);
                    self.save(s, o);
                }
                let r = replica_mut(s, partition).expect("replica exists");
                let request = if complete {
                    r.role = ReplicaRole::Follower {
                        leader,
                        truncating: false,
                    };
                    self.fetch_request(r)
                } else {
                    self.epoch_request(r)
                };
                o.send(leader, request);
                o.set_timer(
                    KafkaTimer::ReplicaFetch(partition),
                    exact(self.settings.request_timeout),
                );
            }
            KafkaMsg::Produce { .. } => self.on_produce(s, src, msg, false, o),
            KafkaMsg::AddPartitionsToTxnResponse {
                transactional_id,
                partition,
                verify_only: true,
                error,
            } if src == self.controller() => {
                // The verification's answer: the held produce requests of that producer at that
                // partition go on (`AddPartitionsToTxnManager`'s callback), or fail.
                let (answered, kept): (Vec<_>, Vec<_>) =
                    std::mem::take(&mut s.verifying).into_iter().partition(|(_, m)| {
                        matches!(m, KafkaMsg::Produce { partition: p, transactional_id: Some(t), .. }
                            if *p == partition && *t == transactional_id)
                    });
                s.verifying = kept;
                for (client, produce) in answered {
                    match error {
                        None => self.on_produce(s, client, produce, true, o),
                        Some(e) => {
                            if let KafkaMsg::Produce {
                                partition, request, ..
                            } = produce
                            {
                                o.send(
                                    client,
                                    KafkaMsg::ProduceResponse {
                                        partition,
                                        request,
                                        result: Err(e),
                                    },
                                );
                            }
                        }
                    }
                }
                if !s.verifying.iter().any(|(_, m)| {
                    matches!(m, KafkaMsg::Produce { partition: p, .. } if *p == partition)
                }) {
                    o.cancel_timer(KafkaTimer::VerifyRetry(partition));
                }
            }
            KafkaMsg::WriteTxnMarkers {
                transactional_id,
                producer_id,
                epoch,
                partition,
                result,
                round,
            } if src == self.controller() => self.on_marker(
                s,
                src,
                (transactional_id, round),
                ProducerSeq {
                    producer_id,
                    epoch,
                    sequence: 0,
                },
                partition,
                result,
                o,
            ),
            _ => {}
        }
    }

    fn handle_timeout(&self, s: &mut BrokerState, timer: &KafkaTimer, o: &mut KafkaOut) {
        match timer {
            KafkaTimer::Registration => {
                let incarnation = s.incarnation;
                o.send(
                    self.controller(),
                    KafkaMsg::BrokerRegistration { incarnation },
                );
                o.set_timer(
                    KafkaTimer::Registration,
                    retry(self.settings.broker_heartbeat_interval),
                );
            }
            KafkaTimer::BrokerHeartbeat => {
                o.send(self.controller(), KafkaMsg::BrokerHeartbeat);
                o.set_timer(
                    KafkaTimer::BrokerHeartbeat,
                    retry(self.settings.broker_heartbeat_interval),
                );
            }
            KafkaTimer::HwCheckpoint => {
                let mut changed = false;
                for r in s.replicas.iter_mut() {
                    changed |= r.hw_checkpoint != r.high_watermark;
                    r.hw_checkpoint = r.high_watermark;
                }
                if changed {
                    self.save(s, o);
                }
                o.set_timer(KafkaTimer::HwCheckpoint, retry(HW_CHECKPOINT));
            }
            KafkaTimer::FetchWait(p) => {
                let Some(r) = replica_mut(s, *p) else { return };
                if let ReplicaRole::Leader(l) = &mut r.role {
                    let waiting = std::mem::take(&mut l.delayed_fetch);
                    for f in waiting {
                        let reply = fetch_response(r, &f.request, None);
                        o.send(f.fetcher, reply);
                    }
                }
            }
            KafkaTimer::FollowerLag(p, follower) => {
                let Some(r) = replica_mut(s, *p) else { return };
                let ReplicaRole::Leader(l) = &mut r.role else {
                    return;
                };
                if l.pending_isr.is_some() {
                    o.set_timer(timer.clone(), exact(FETCH_BACKOFF));
                } else if l.isr.contains(follower) {
                    // Not caught up for replica.lag.time.max.ms: ask to drop it from the ISR.
                    let new_isr: Vec<Id> =
                        l.isr.iter().copied().filter(|i| i != follower).collect();
                    self.alter_partition(r, new_isr, o);
                }
            }
            KafkaTimer::AlterPartitionRetry(p) => {
                let Some(r) = replica_mut(s, *p) else { return };
                if let ReplicaRole::Leader(l) = &r.role {
                    if let Some(isr) = l.pending_isr.clone() {
                        self.alter_partition(r, isr, o);
                    }
                }
            }
            KafkaTimer::VerifyRetry(p) => {
                // The coordinator has not answered: ask again for every held request.
                let asks: Vec<KafkaMsg> = s
                    .verifying
                    .iter()
                    .filter_map(|(_, m)| verification(m).filter(|_| partition_of(m) == Some(*p)))
                    .collect();
                for ask in asks {
                    o.send(self.controller(), ask);
                }
                if s.verifying.iter().any(|(_, m)| partition_of(m) == Some(*p)) {
                    o.set_timer(timer.clone(), exact(self.settings.request_timeout));
                }
            }
            KafkaTimer::ReplicaFetch(p) => {
                let Some(r) = replica_mut(s, *p) else { return };
                if let ReplicaRole::Follower { leader, truncating } = r.role {
                    let request = if truncating {
                        self.epoch_request(r)
                    } else {
                        self.fetch_request(r)
                    };
                    o.send(leader, request);
                    o.set_timer(timer.clone(), exact(self.settings.request_timeout));
                }
            }
            _ => {}
        }
    }

    /// Applies the controller's record of a partition: a new leader epoch makes this replica
    /// leader or follower; a new partition epoch under the same leader is an ISR change.
    fn apply_partition_state(
        &self,
        id: Id,
        s: &mut BrokerState,
        ps: PartitionState,
        o: &mut KafkaOut,
    ) {
        let Some(r) = replica_mut(s, ps.partition) else {
            return;
        };
        let p = ps.partition;
        let newer_leader = r
            .known
            .as_ref()
            .is_none_or(|k| ps.leader_epoch > k.leader_epoch);
        let newer_isr = r.known.as_ref().is_some_and(|k| {
            ps.leader_epoch == k.leader_epoch && ps.partition_epoch > k.partition_epoch
        });
        if !newer_leader && !newer_isr {
            return;
        }
        r.known = Some(ps.clone());
        if newer_leader {
            self.step_down(r, o);
            match ps.leader {
                Some(leader) if leader == id => {
                    let followers: Vec<Id> =
                        ps.replicas.iter().copied().filter(|f| *f != id).collect();
                    for f in &followers {
                        if ps.isr.contains(f) {
                            o.set_timer(
                                KafkaTimer::FollowerLag(p, *f),
                                exact(self.settings.replica_lag_time_max),
                            );
                        }
                    }
                    r.role = ReplicaRole::Leader(LeaderState {
                        epoch: ps.leader_epoch,
                        isr: ps.isr.clone(),
                        pending_isr: None,
                        follower_leo: followers.into_iter().map(|f| (f, 0)).collect(),
                        delayed_produce: Vec::new(),
                        delayed_fetch: Vec::new(),
                    });
                    self.maybe_advance_hw(r, o);
                }
                Some(leader) => {
                    let truncating = match self.settings.truncation {
                        Truncation::LeaderEpoch | Truncation::Kip101 => true,
                        Truncation::HighWatermark => {
                            // Before KIP-101 a new follower cut its log at its own high
                            // watermark — which may lag the leader's.
                            let hw = r.high_watermark;
                            if hw < r.log.end_offset() {
                                r.log.truncate(hw);
                            }
                            false
                        }
                    };
                    r.role = ReplicaRole::Follower { leader, truncating };
                    let request = if truncating {
                        self.epoch_request(r)
                    } else {
                        self.fetch_request(r)
                    };
                    o.send(leader, request);
                    o.set_timer(
                        KafkaTimer::ReplicaFetch(p),
                        exact(self.settings.request_timeout),
                    );
                    self.save(s, o);
                }
                None => r.role = ReplicaRole::Idle,
            }
        } else if let ReplicaRole::Leader(l) = &mut r.role {
            l.isr = ps.isr.clone();
            if l.pending_isr.as_ref() == Some(&ps.isr) {
                o.cancel_timer(KafkaTimer::AlterPartitionRetry(p));
            }
            l.pending_isr = None;
            for f in l.follower_leo.keys() {
                if ps.isr.contains(f) {
                    o.set_timer(
                        KafkaTimer::FollowerLag(p, *f),
                        exact(self.settings.replica_lag_time_max),
                    );
                }
            }
            self.maybe_advance_hw(r, o);
        }
    }

    /// Leaves leadership: waiting produce requests fail, held fetches are answered.
    fn step_down(&self, r: &mut Replica, o: &mut KafkaOut) {
        let p = r.partition;
        if let ReplicaRole::Leader(l) = std::mem::replace(&mut r.role, ReplicaRole::Idle) {
            for d in l.delayed_produce {
                o.send(d.client, d.response(p, Err(ErrorCode::NotLeaderOrFollower)));
            }
            for f in l.delayed_fetch {
                o.send(
                    f.fetcher,
                    fetch_response(r, &f.request, Some(ErrorCode::NotLeaderOrFollower)),
                );
            }
            for f in l.follower_leo.keys() {
                o.cancel_timer(KafkaTimer::FollowerLag(p, *f));
            }
            o.cancel_timer(KafkaTimer::FetchWait(p));
            o.cancel_timer(KafkaTimer::AlterPartitionRetry(p));
        }
        o.cancel_timer(KafkaTimer::ReplicaFetch(p));
    }

    fn alter_partition(&self, r: &mut Replica, new_isr: Vec<Id>, o: &mut KafkaOut) {
        let ReplicaRole::Leader(l) = &mut r.role else {
            return;
        };
        let partition_epoch = r.known.as_ref().map_or(0, |k| k.partition_epoch);
        o.send(
            self.controller(),
            KafkaMsg::AlterPartition {
                partition: r.partition,
                leader_epoch: l.epoch,
                partition_epoch,
                new_isr: new_isr.clone(),
            },
        );
        l.pending_isr = Some(new_isr);
        o.set_timer(
            KafkaTimer::AlterPartitionRetry(r.partition),
            exact(ALTER_PARTITION_RETRY),
        );
    }

    /// The follower's next fetch: from its log end, under a fresh correlation id.
    fn fetch_request(&self, r: &mut Replica) -> KafkaMsg {
        r.correlation += 1;
        KafkaMsg::Fetch(FetchRequest {
            partition: r.partition,
            offset: r.log.end_offset(),
            leader_epoch: self.current_epoch(r),
            fetcher: Fetcher::Replica,
            isolation: Isolation::ReadUncommitted,
            correlation: r.correlation,
        })
    }

    fn epoch_request(&self, r: &Replica) -> KafkaMsg {
        KafkaMsg::OffsetsForLeaderEpoch {
            partition: r.partition,
            leader_epoch: self.current_epoch(r),
            requested_epoch: r.log.latest_epoch(),
        }
    }

    fn current_epoch(&self, r: &Replica) -> LeaderEpoch {
        r.known.as_ref().map_or(0, |k| k.leader_epoch)
    }

    fn on_fetch(&self, s: &mut BrokerState, src: Id, request: FetchRequest, o: &mut KafkaOut) {
        let FetchRequest {
            partition,
            offset,
            leader_epoch,
            fetcher,
            isolation,
            ..
        } = request;
        let Some(r) = replica_mut(s, partition) else {
            o.send(src, not_leader(&request));
            return;
        };
        let epoch_fencing = self.settings.truncation == Truncation::LeaderEpoch;
        let error = match &r.role {
            ReplicaRole::Leader(l) => {
                // Followers always carry their leader epoch; consumers do from KIP-320 on (0
                // means a client that does not).
                let carries_epoch = fetcher == Fetcher::Replica || leader_epoch > 0;
                if epoch_fencing && carries_epoch && leader_epoch != l.epoch {
                    Some(epoch_error(leader_epoch, l.epoch))
                } else if offset > r.log.end_offset() {
                    Some(ErrorCode::OffsetOutOfRange)
                } else {
                    None
                }
            }
            _ => Some(ErrorCode::NotLeaderOrFollower),
        };
        if error.is_some() {
            o.send(src, fetch_response(r, &request, error));
            return;
        }
        if fetcher == Fetcher::Replica {
            let leo = r.log.end_offset();
            let hw = r.high_watermark;
            let epoch_start = match &r.role {
                ReplicaRole::Leader(l) => r.log.start_offset_of(l.epoch),
                _ => 0,
            };
            let ReplicaRole::Leader(l) = &mut r.role else {
                unreachable!("checked above")
            };
            l.follower_leo.insert(src, offset);
            if offset >= leo {
                // Caught up with the leader's log end: restart its lag clock.
                o.set_timer(
                    KafkaTimer::FollowerLag(partition, src),
                    exact(self.settings.replica_lag_time_max),
                );
            }
            let in_isr = l.maximal_isr().contains(&src);
            if !in_isr && l.pending_isr.is_none() && offset >= hw && offset >= epoch_start {
                let mut new_isr = l.isr.clone();
                new_isr.push(src);
                self.alter_partition(r, new_isr, o);
            }
            self.maybe_advance_hw(r, o);
        }
        if offset >= read_limit(r, fetcher, isolation) {
            let ReplicaRole::Leader(l) = &mut r.role else {
                unreachable!("checked above")
            };
            // One timer per partition's purgatory, armed with the wait of the fetch that found it
            // empty; everything held is answered together. Kafka keeps a deadline per fetch
            // (its `max_wait_ms`); sharing one keeps the idle long polls in step.
            if l.delayed_fetch.is_empty() {
                let wait = match fetcher {
                    Fetcher::Replica => self.settings.replica_fetch_wait,
                    Fetcher::Consumer => self.settings.fetch_max_wait,
                };
                o.set_timer(KafkaTimer::FetchWait(partition), exact(wait));
            }
            l.delayed_fetch.push(DelayedFetch {
                fetcher: src,
                request,
            });
        } else {
            o.send(src, fetch_response(r, &request, None));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_fetch_response(
        &self,
        s: &mut BrokerState,
        src: Id,
        partition: Partition,
        correlation: u64,
        offset: u64,
        records: Vec<Record>,
        high_watermark: u64,
        log_end_offset: u64,
        error: Option<ErrorCode>,
        o: &mut KafkaOut,
    ) {
        let Some(r) = replica_mut(s, partition) else {
            return;
        };
        let ReplicaRole::Follower {
            leader,
            truncating: false,
        } = r.role
        else {
            return;
        };
        if leader != src || correlation != r.correlation || offset != r.log.end_offset() {
            return; // not the answer to the fetch outstanding
        }
        match error {
            Some(ErrorCode::OffsetOutOfRange) => {
                // Our log runs past the leader's: cut back to its end and fetch again.
                r.log.truncate(log_end_offset);
                r.high_watermark = r.high_watermark.min(log_end_offset);
                let fetch = self.fetch_request(r);
                o.send(leader, fetch);
                o.set_timer(
                    KafkaTimer::ReplicaFetch(partition),
                    exact(self.settings.request_timeout),
                );
                self.save(s, o);
                return;
            }
            Some(_) => {
                o.set_timer(KafkaTimer::ReplicaFetch(partition), exact(FETCH_BACKOFF));
                return;
            }
            None => {}
        }
        let appended = !records.is_empty();
        for record in records {
            r.log.append(record);
        }
        r.log.maybe_flush(self.settings.flush_messages);
        r.high_watermark = r.high_watermark.max(high_watermark.min(r.log.end_offset()));
        let fetch = self.fetch_request(r);
        o.send(leader, fetch);
        o.set_timer(
            KafkaTimer::ReplicaFetch(partition),
            exact(self.settings.request_timeout),
        );
        if appended {
            self.save(s, o);
        }
    }

    /// A producer's record. A transactional one that would open a transaction at this
    /// partition is first verified with the coordinator where verification is on (KIP-890
    /// part 1): without it, a record that arrives after its transaction ended opens a
    /// transaction no coordinator knows (a hanging transaction, KIP-664), and the producer's
    /// next transaction to add this partition commits or aborts it with its own.
    fn on_produce(
        &self,
        s: &mut BrokerState,
        src: Id,
        produce: KafkaMsg,
        verified: bool,
        o: &mut KafkaOut,
    ) {
        let KafkaMsg::Produce {
            partition,
            request,
            msg,
            producer_seq,
            transactional_id,
            acks,
        } = produce.clone()
        else {
            return;
        };
        let respond = |o: &mut KafkaOut, result| {
            if acks != Acks::Zero {
                o.send(
                    src,
                    KafkaMsg::ProduceResponse {
                        partition,
                        request,
                        result,
                    },
                );
            }
        };
        let Some(r) = replica_mut(s, partition) else {
            respond(o, Err(ErrorCode::NotLeaderOrFollower));
            return;
        };
        let ReplicaRole::Leader(l) = &r.role else {
            respond(o, Err(ErrorCode::NotLeaderOrFollower));
            return;
        };
        if acks == Acks::All && l.isr.len() < self.settings.effective_min_isr() {
            respond(o, Err(ErrorCode::NotEnoughReplicas));
            return;
        }
        let epoch = l.epoch;
        let check = producer_seq.map_or(ProducerCheck::Append, |p| r.log.check_producer(p));
        let opens = producer_seq.is_some_and(|p| r.log.ongoing_transaction(p.producer_id).is_none());
        if check == ProducerCheck::Append
            && transactional_id.is_some()
            && opens
            && self.settings.txn_verification
            && !verified
        {
            if let Some(ask) = verification(&produce) {
                o.send(self.controller(), ask);
            }
            o.set_timer(
                KafkaTimer::VerifyRetry(partition),
                exact(self.settings.request_timeout),
            );
            s.verifying.push((src, produce));
            return;
        }
        let record = Record {
            epoch,
            msg,
            producer_seq,
            transactional: transactional_id.is_some(),
            control: None,
        };
        let offset = match check {
            ProducerCheck::Append => self.append(r, record),
            // A retry of a batch already in the log: answer with its offset (KIP-98).
            ProducerCheck::Duplicate(offset) => offset,
            ProducerCheck::Fenced => {
                respond(o, Err(ErrorCode::InvalidProducerEpoch));
                return;
            }
            ProducerCheck::OutOfOrder => {
                respond(o, Err(ErrorCode::OutOfOrderSequence));
                return;
            }
        };
        let ReplicaRole::Leader(l) = &mut r.role else {
            unreachable!("checked above")
        };
        // New data releases the followers' held fetches.
        let held = l.release(Fetcher::Replica);
        if acks == Acks::All {
            l.delayed_produce.push(DelayedProduce {
                client: src,
                request,
                offset,
                marker: None,
            });
        } else {
            respond(o, Ok(offset));
        }
        for f in held {
            o.send(f.fetcher, fetch_response(r, &f.request, None));
        }
        self.maybe_advance_hw(r, o);
        self.save(s, o);
    }

    fn append(&self, r: &mut Replica, record: Record) -> u64 {
        let offset = r.log.append(record);
        r.log.maybe_flush(self.settings.flush_messages);
        offset
    }

    /// `WriteTxnMarkers`: the leader ends the producer's open transaction here with a control
    /// record, answered once the high watermark passes it (`KafkaApis.handleWriteTxnMarkersRequest`
    /// appends with `acks=all`). The marker is written even where the producer has no open
    /// transaction (it then ends nothing, but its epoch still fences older batches); a
    /// repeated request for the marker just written (the producer's last record here, same
    /// epoch and result) waits for that one instead.
    #[allow(clippy::too_many_arguments)]
    fn on_marker(
        &self,
        s: &mut BrokerState,
        src: Id,
        ask: (u32, u64),
        producer: ProducerSeq,
        partition: Partition,
        result: TxnResult,
        o: &mut KafkaOut,
    ) {
        let (transactional_id, round) = ask;
        let answer = |error| KafkaMsg::WriteTxnMarkersResponse {
            transactional_id,
            partition,
            round,
            error,
        };
        let Some(r) = replica_mut(s, partition) else {
            o.send(src, answer(Some(ErrorCode::NotLeaderOrFollower)));
            return;
        };
        let ReplicaRole::Leader(l) = &r.role else {
            o.send(src, answer(Some(ErrorCode::NotLeaderOrFollower)));
            return;
        };
        if l.isr.len() < self.settings.effective_min_isr() {
            o.send(src, answer(Some(ErrorCode::NotEnoughReplicas)));
            return;
        }
        let epoch = l.epoch;
        let pid = producer.producer_id;
        let written = r
            .log
            .last_marker(pid)
            .filter(|(_, e, res)| *e == producer.epoch && *res == result)
            .map(|(offset, _, _)| offset);
        let offset = match written {
            Some(offset) => offset,
            None => self.append(
                r,
                Record {
                    epoch,
                    msg: mqcheck_invariants::MsgId {
                        producer: transactional_id,
                        seq: 0,
                    },
                    producer_seq: Some(producer),
                    transactional: true,
                    control: Some(result),
                },
            ),
        };
        let ReplicaRole::Leader(l) = &mut r.role else {
            unreachable!("checked above")
        };
        let held = l.release(Fetcher::Replica);
        l.delayed_produce.push(DelayedProduce {
            client: src,
            request: round,
            offset,
            marker: Some(ask),
        });
        for f in held {
            o.send(f.fetcher, fetch_response(r, &f.request, None));
        }
        self.maybe_advance_hw(r, o);
        self.save(s, o);
    }

    /// The high watermark is the smallest log end offset in the (maximal) ISR; it never goes
    /// back on a leader. From 3.7 it does not move while the ISR is below the effective minimum
    /// (`Partition.maybeIncrementLeaderHW`, KAFKA-15583): before, a record could be committed,
    /// and read, on fewer replicas than `min.insync.replicas`. Produces below it complete; when
    /// it advances, consumers' held fetches are answered.
    fn maybe_advance_hw(&self, r: &mut Replica, o: &mut KafkaOut) {
        let leo = r.log.end_offset();
        let ReplicaRole::Leader(l) = &mut r.role else {
            return;
        };
        let hw = l
            .maximal_isr()
            .iter()
            .map(|m| l.follower_leo.get(m).copied().unwrap_or(leo))
            .min()
            .unwrap_or(leo)
            .min(leo);
        let frozen = self.settings.version.strict_min_isr()
            && l.isr.len() < self.settings.effective_min_isr();
        let advanced = !frozen && hw > r.high_watermark;
        if advanced {
            r.high_watermark = hw;
        }
        let hw = r.high_watermark;
        let enough = l.isr.len() >= self.settings.effective_min_isr();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut l.delayed_produce)
            .into_iter()
            .partition(|d| d.offset < hw);
        l.delayed_produce = waiting;
        // A retried batch already below the high watermark completes at once, too.
        for d in done {
            let result = if enough {
                Ok(d.offset)
            } else {
                Err(ErrorCode::NotEnoughReplicasAfterAppend)
            };
            o.send(d.client, d.response(r.partition, result));
        }
        if !advanced {
            return;
        }
        for f in l.release(Fetcher::Consumer) {
            o.send(f.fetcher, fetch_response(r, &f.request, None));
        }
    }
}

fn replica(s: &BrokerState, p: Partition) -> Option<&Replica> {
    s.replicas.iter().find(|r| r.partition == p)
}

fn replica_mut(s: &mut BrokerState, p: Partition) -> Option<&mut Replica> {
    s.replicas.iter_mut().find(|r| r.partition == p)
}

fn epoch_error(theirs: LeaderEpoch, ours: LeaderEpoch) -> ErrorCode {
    if theirs < ours {
        ErrorCode::FencedLeaderEpoch
    } else {
        ErrorCode::UnknownLeaderEpoch
    }
}

/// How far a fetcher may read: a follower to the log end, a consumer to the high watermark,
/// or for `read_committed` to the last stable offset.
fn read_limit(r: &Replica, fetcher: Fetcher, isolation: Isolation) -> u64 {
    match (fetcher, isolation) {
        (Fetcher::Replica, _) => r.log.end_offset(),
        (Fetcher::Consumer, Isolation::ReadUncommitted) => r.high_watermark,
        (Fetcher::Consumer, Isolation::ReadCommitted) => {
            r.log.last_stable_offset(r.high_watermark)
        }
    }
}

/// The partition of a held produce request.
fn partition_of(produce: &KafkaMsg) -> Option<Partition> {
    match produce {
        KafkaMsg::Produce { partition, .. } => Some(*partition),
        _ => None,
    }
}

/// The verification a transactional produce request needs: `AddPartitionsToTxn` with
/// `verifyOnly`, sent by the leader to the producer's coordinator.
fn verification(produce: &KafkaMsg) -> Option<KafkaMsg> {
    match produce {
        KafkaMsg::Produce {
            partition,
            producer_seq: Some(p),
            transactional_id: Some(t),
            ..
        } => Some(KafkaMsg::AddPartitionsToTxn {
            transactional_id: *t,
            producer_id: p.producer_id,
            epoch: p.epoch,
            partition: *partition,
            verify_only: true,
        }),
        _ => None,
    }
}

fn not_leader(request: &FetchRequest) -> KafkaMsg {
    KafkaMsg::FetchResponse {
        partition: request.partition,
        correlation: request.correlation,
        offset: request.offset,
        records: Vec::new(),
        high_watermark: 0,
        log_end_offset: 0,
        aborted: Vec::new(),
        error: Some(ErrorCode::NotLeaderOrFollower),
    }
}

fn fetch_response(r: &Replica, request: &FetchRequest, error: Option<ErrorCode>) -> KafkaMsg {
    let offset = request.offset;
    let limit = read_limit(r, request.fetcher, request.isolation);
    let records = if error.is_some() {
        Vec::new()
    } else {
        r.log.read(offset, limit, MAX_FETCH_RECORDS)
    };
    let aborted = match request.isolation {
        Isolation::ReadCommitted if !records.is_empty() => {
            r.log.aborted_transactions(offset, offset + records.len() as u64)
        }
        _ => Vec::new(),
    };
    KafkaMsg::FetchResponse {
        partition: r.partition,
        correlation: request.correlation,
        offset,
        records,
        high_watermark: r.high_watermark,
        log_end_offset: r.log.end_offset(),
        aborted,
        error,
    }
}
