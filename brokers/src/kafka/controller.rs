//! The controller: broker liveness, leader election, ISR changes — and, in this model, the group
//! coordinator with the committed offsets and the transaction coordinator (`coordinator.rs`).

use super::coordinator::TxnMetadata;
use super::log::LeaderEpoch;
use super::protocol::{ErrorCode, KafkaMsg, Partition, PartitionState};
use super::{exact, KafkaOut, KafkaTimer, Settings, Truncation};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub struct Controller {
    pub settings: Settings,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ControllerState {
    /// Brokers that heartbeat within `broker.session.timeout.ms` (unfenced).
    pub alive: BTreeSet<Id>,
    /// The incarnation each broker last registered with: a new one is a restarted broker, the
    /// same one a registration retried.
    pub registered: BTreeMap<Id, u32>,
    pub partitions: Vec<PartitionState>,
    pub group: Group,
    /// `__consumer_offsets`: the group's committed offset per partition, with its leader epoch.
    pub offsets: BTreeMap<Partition, (u64, LeaderEpoch)>,
    /// The next producer id `InitProducerId` hands out (KRaft allocates them from the metadata
    /// log, KIP-730): above every id assigned at build time, each with room for the producer's
    /// own epoch bumps.
    pub next_producer_id: u32,
    /// The transaction coordinator's `TransactionMetadata`, by `transactional.id`.
    pub transactions: BTreeMap<u32, TxnMetadata>,
}

/// The first producer id the controller hands out.
const FIRST_ALLOCATED_PRODUCER_ID: u32 = 1 << 31;

/// The consumer group as the coordinator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Group {
    pub generation: u32,
    pub members: BTreeSet<Id>,
    pub assignment: BTreeMap<Id, Vec<Partition>>,
}

impl Controller {
    pub fn start(&self, _o: &mut KafkaOut) -> ControllerState {
        let partitions = (0..self.settings.partitions)
            .map(|p| {
                let replicas = self.settings.replicas(p);
                PartitionState {
                    partition: p,
                    isr: replicas.clone(),
                    replicas,
                    elr: Vec::new(),
                    last_known_elr: Vec::new(),
                    leader: None,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }
            })
            .collect();
        ControllerState {
            alive: BTreeSet::new(),
            registered: BTreeMap::new(),
            partitions,
            group: Group::default(),
            offsets: BTreeMap::new(),
            next_producer_id: FIRST_ALLOCATED_PRODUCER_ID,
            transactions: BTreeMap::new(),
        }
    }

    pub fn on_msg(&self, s: &mut ControllerState, src: Id, msg: KafkaMsg, o: &mut KafkaOut) {
        match msg {
            KafkaMsg::BrokerRegistration { incarnation } => {
                // KRaft fences a restarted broker's old incarnation: it leaves every ISR and must
                // catch up again. The ZooKeeper-era controller that went with high-watermark
                // truncation only noticed a restart if the broker's session expired first, so a
                // fast restart kept its ISR membership.
                let restarted = s
                    .registered
                    .insert(src, incarnation)
                    .is_some_and(|old| old != incarnation);
                let fence_old = restarted && self.settings.truncation == Truncation::LeaderEpoch;
                let mut changed = if fence_old {
                    self.fence(s, src)
                } else {
                    Vec::new()
                };
                if restarted && self.settings.eligible_leader_replicas() {
                    changed.extend(self.forget_eligibility(s, src));
                }
                changed.extend(self.unfence(s, src));
                self.publish(s, changed, o);
                o.send(src, KafkaMsg::PartitionChange(self.hosted(s, src)));
                // The session starts with the registration: a broker that dies before its first
                // heartbeat is fenced like any other.
                o.set_timer(
                    KafkaTimer::BrokerSession(src),
                    exact(self.settings.broker_session_timeout),
                );
            }
            KafkaMsg::BrokerHeartbeat => {
                if !s.alive.contains(&src) {
                    let changed = self.unfence(s, src);
                    self.publish(s, changed, o);
                }
                o.set_timer(
                    KafkaTimer::BrokerSession(src),
                    exact(self.settings.broker_session_timeout),
                );
                o.send(src, KafkaMsg::BrokerHeartbeatResponse(self.hosted(s, src)));
            }
            KafkaMsg::AlterPartition {
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let Some(ps) = s.partitions.get_mut(partition as usize) else {
                    return;
                };
                // Only the current leader, at the current partition epoch, may change the ISR,
                // and only to live brokers (KIP-497, KIP-841).
                let valid = ps.leader == Some(src)
                    && ps.leader_epoch == leader_epoch
                    && ps.partition_epoch == partition_epoch
                    && new_isr.contains(&src)
                    && new_isr.iter().all(|b| s.alive.contains(b));
                let error = if ps.leader != Some(src) || ps.leader_epoch != leader_epoch {
                    Some(ErrorCode::FencedLeaderEpoch)
                } else if ps.partition_epoch != partition_epoch {
                    Some(ErrorCode::InvalidUpdateVersion)
                } else if !valid {
                    Some(ErrorCode::IneligibleReplica)
                } else {
                    None
                };
                if error.is_none() {
                    self.change_isr(ps, new_isr);
                    ps.partition_epoch += 1;
                }
                let state = ps.clone();
                if error.is_none() {
                    self.publish(s, vec![state.partition], o);
                }
                o.send(src, KafkaMsg::AlterPartitionResponse { state, error });
            }
            KafkaMsg::Metadata => o.send(src, KafkaMsg::MetadataResponse(s.partitions.clone())),
            KafkaMsg::InitProducerId {
                transactional_id: None,
                ..
            } => {
                let producer_id = s.next_producer_id;
                s.next_producer_id += 1 << 16;
                o.send(
                    src,
                    KafkaMsg::InitProducerIdResponse {
                        producer_id,
                        epoch: 0,
                        error: None,
                    },
                );
            }
            KafkaMsg::InitProducerId { .. }
            | KafkaMsg::AddPartitionsToTxn { .. }
            | KafkaMsg::EndTxn { .. }
            | KafkaMsg::WriteTxnMarkersResponse { .. }
            | KafkaMsg::Disconnected => self.on_txn_msg(s, src, msg, o),
            KafkaMsg::JoinGroup => {
                s.group.members.insert(src);
                o.set_timer(
                    KafkaTimer::MemberSession(src),
                    exact(self.settings.session_timeout),
                );
                self.rebalance(s, o);
            }
            KafkaMsg::Heartbeat { generation } => {
                let error = if s.group.members.contains(&src) && generation == s.group.generation {
                    o.set_timer(
                        KafkaTimer::MemberSession(src),
                        exact(self.settings.session_timeout),
                    );
                    None
                } else {
                    Some(ErrorCode::IllegalGeneration)
                };
                o.send(src, KafkaMsg::HeartbeatResponse { error });
            }
            KafkaMsg::OffsetFetch {
                generation,
                partition,
            } => o.send(
                src,
                KafkaMsg::OffsetFetchResponse {
                    generation,
                    partition,
                    offset: s.offsets.get(&partition).map(|c| c.0),
                    leader_epoch: s.offsets.get(&partition).map_or(0, |c| c.1),
                },
            ),
            KafkaMsg::OffsetCommit {
                generation,
                partition,
                offset,
                leader_epoch,
            } => {
                // A member of an older generation is fenced: its partitions may belong to
                // someone else by now.
                let owns = generation == s.group.generation
                    && s.group
                        .assignment
                        .get(&src)
                        .is_some_and(|ps| ps.contains(&partition));
                let error = if owns {
                    s.offsets.insert(partition, (offset, leader_epoch));
                    None
                } else {
                    Some(ErrorCode::IllegalGeneration)
                };
                o.send(
                    src,
                    KafkaMsg::OffsetCommitResponse {
                        partition,
                        offset,
                        error,
                    },
                );
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ControllerState, timer: &KafkaTimer, o: &mut KafkaOut) {
        match timer {
            KafkaTimer::BrokerSession(b) => {
                let changed = self.fence(s, *b);
                self.publish(s, changed, o);
            }
            KafkaTimer::MemberSession(c) if s.group.members.remove(c) => {
                self.rebalance(s, o);
            }
            KafkaTimer::TxnMarkerRetry(_) => self.send_markers(s, o),
            _ => {}
        }
    }

    /// Fences broker `b`: it leaves every ISR, and partitions it led elect a new leader. Without
    /// ELR the last member stays, so the partition knows who to wait for; with ELR the ISR may
    /// empty (`PartitionChangeBuilder.build`) and the last leader is remembered
    /// (`maybeUpdateLastKnownLeader`).
    fn fence(&self, s: &mut ControllerState, b: Id) -> Vec<Partition> {
        s.alive.remove(&b);
        let elr = self.settings.eligible_leader_replicas();
        let mut changed = Vec::new();
        for ps in s.partitions.iter_mut() {
            if !ps.replicas.contains(&b) {
                continue;
            }
            let was_leader = ps.leader == Some(b);
            if ps.isr.contains(&b) && (ps.isr.len() > 1 || elr) {
                let target: Vec<Id> = ps.isr.iter().copied().filter(|i| *i != b).collect();
                if target.is_empty() {
                    ps.last_known_elr = ps.leader.into_iter().collect();
                }
                self.change_isr(ps, target);
                ps.partition_epoch += 1;
                changed.push(ps.partition);
            }
            if was_leader {
                self.elect(ps, &s.alive);
                if !changed.contains(&ps.partition) {
                    changed.push(ps.partition);
                }
            }
        }
        changed
    }

    /// Unfences broker `b` and gives leaderless partitions a leader if it can be one.
    fn unfence(&self, s: &mut ControllerState, b: Id) -> Vec<Partition> {
        s.alive.insert(b);
        let mut changed = Vec::new();
        for ps in s.partitions.iter_mut() {
            if ps.leader.is_none() && ps.replicas.contains(&b) {
                self.elect(ps, &s.alive);
                if ps.leader.is_some() {
                    changed.push(ps.partition);
                }
            }
        }
        changed
    }

    /// `PartitionChangeBuilder.maybePopulateTargetElr`: with ELR, an ISR below
    /// `min.insync.replicas` moves the members it loses into the ELR, and one at or above it
    /// clears the ELR — the high watermark does not move while the ISR is below the minimum
    /// (KAFKA-15583), so an ELR member holds every committed record.
    fn change_isr(&self, ps: &mut PartitionState, target: Vec<Id>) {
        if self.settings.eligible_leader_replicas() {
            if target.len() >= self.settings.effective_min_isr() {
                ps.elr.clear();
                ps.last_known_elr.clear();
            } else {
                let elr: BTreeSet<Id> = ps.elr.iter().chain(&ps.isr).copied().collect();
                ps.elr = elr.into_iter().filter(|r| !target.contains(r)).collect();
            }
        }
        ps.isr = target;
    }

    /// A new incarnation of broker `b` registered: KRaft treats it as an unclean shutdown
    /// (`ClusterControlManager.registerBroker` on a new incarnation id, since KAFKA-16952;
    /// `ReplicationControlManager.handleBrokerUncleanShutdown`), so it leaves every ELR — its
    /// log may have lost what it had not flushed.
    fn forget_eligibility(&self, s: &mut ControllerState, b: Id) -> Vec<Partition> {
        let mut changed = Vec::new();
        for ps in s.partitions.iter_mut() {
            if ps.elr.contains(&b) {
                ps.elr.retain(|r| *r != b);
                ps.partition_epoch += 1;
                changed.push(ps.partition);
            }
        }
        changed
    }

    /// Elects the first live ISR member in replica order (`PartitionChangeBuilder.electAnyLeader`).
    /// With ELR and an empty ISR, the first live ELR member, whose ISR it becomes; with the ISR
    /// and the ELR both empty, the last known leader once it is back (`canElectLastKnownLeader`,
    /// an election Kafka counts as unclean). Otherwise, with unclean election enabled, the first
    /// live replica, whose log may lack committed records; an unclean election clears the ELR.
    fn elect(&self, ps: &mut PartitionState, alive: &BTreeSet<Id>) {
        let clean = ps
            .replicas
            .iter()
            .copied()
            .find(|r| ps.isr.contains(r) && alive.contains(r));
        let eligible = clean.or_else(|| {
            ps.isr
                .is_empty()
                .then(|| ps.replicas.iter().copied().find(|r| ps.elr.contains(r) && alive.contains(r)))
                .flatten()
        });
        let last_known = eligible.or_else(|| {
            (ps.isr.is_empty() && ps.elr.is_empty() && ps.last_known_elr.len() == 1)
                .then(|| ps.last_known_elr[0])
                .filter(|l| alive.contains(l))
        });
        let leader = last_known.or_else(|| {
            if self.settings.unclean_leader_election {
                ps.replicas.iter().copied().find(|r| alive.contains(r))
            } else {
                None
            }
        });
        if let Some(l) = leader.filter(|_| clean.is_none()) {
            ps.isr = vec![l];
            if eligible.is_some() {
                ps.elr.retain(|r| *r != l);
            } else {
                ps.elr.clear();
            }
            ps.last_known_elr.clear();
        }
        if leader.is_some() || ps.leader.is_some() {
            ps.leader = leader;
            ps.leader_epoch += 1;
            ps.partition_epoch += 1;
        }
    }

    /// Pushes changed partitions to their replicas (KRaft brokers would read them from the
    /// metadata log; heartbeats resend them in case a push is lost).
    fn publish(&self, s: &mut ControllerState, changed: Vec<Partition>, o: &mut KafkaOut) {
        for b in self.settings.broker_ids() {
            let states: Vec<PartitionState> = changed
                .iter()
                .map(|p| &s.partitions[*p as usize])
                .filter(|ps| ps.replicas.contains(&b))
                .cloned()
                .collect();
            if !states.is_empty() {
                o.send(b, KafkaMsg::PartitionChange(states));
            }
        }
        // A partition with a new leader gets its pending transaction markers from it.
        if !changed.is_empty() {
            self.send_markers(s, o);
        }
    }

    fn hosted(&self, s: &ControllerState, b: Id) -> Vec<PartitionState> {
        s.partitions
            .iter()
            .filter(|ps| ps.replicas.contains(&b))
            .cloned()
            .collect()
    }

    /// A new generation, partitions dealt out in turn over the sorted members (Kafka's
    /// `RoundRobinAssignor`); every member learns its share at once (an eager rebalance).
    fn rebalance(&self, s: &mut ControllerState, o: &mut KafkaOut) {
        s.group.generation += 1;
        let members: Vec<Id> = s.group.members.iter().copied().collect();
        s.group.assignment.clear();
        for (i, m) in members.iter().enumerate() {
            let parts: Vec<Partition> = (0..self.settings.partitions)
                .filter(|p| *p as usize % members.len() == i)
                .collect();
            s.group.assignment.insert(*m, parts.clone());
            o.send(
                *m,
                KafkaMsg::SyncGroup {
                    generation: s.group.generation,
                    partitions: parts,
                },
            );
        }
    }
}
