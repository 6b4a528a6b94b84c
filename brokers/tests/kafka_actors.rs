//! Unit tests of the Kafka model's mechanisms, driving the actors directly: one message or timer
//! at a time, asserting on the commands each step emits and on the resulting state. No simulator,
//! no network: every delivery below is one the test chose.
//!
//! Node ids (messages=3, producers=1, consumers=1): 0 is the controller, 1..=3 the brokers, 4 the
//! producer, 5 the consumer. Partition 0 lives on brokers [1, 2, 3].

use mqcheck_brokers::kafka::protocol::{FetchRequest, Fetcher};
use mqcheck_brokers::kafka::{
    Acks, BrokerDisk, BrokerState, CommitLog, ConsumerState, ControllerState, ErrorCode, Isolation,
    Kafka, KafkaDisk, KafkaMsg, KafkaRandom, KafkaState, KafkaTimer, LeaderEpoch, PartitionState,
    ProducerSeq, ProducerState, Record, Replica, ReplicaRole, TxnResult,
};
use mqcheck_brokers::{AppLog, Durable, Workload};
use mqcheck_invariants::{MsgId, Op};
use stateright::actor::{Command, Id};
use std::collections::BTreeMap;

mod harness;

type Cmd = harness::Cmd<Kafka>;

const CTL: usize = 0;
const PRODUCER: usize = 4;
const CONSUMER: usize = 5;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The deployment: ctl, n1..n3, p0, c0.
type Cluster = harness::Actors<Kafka>;

impl Cluster {
    fn new(sets: &[&str]) -> Cluster {
        let kafka: Kafka = harness::system(
            sets,
            Workload {
                messages: 3,
                producers: 1,
                consumers: 1,
                ..Workload::default()
            },
        );
        let c = Cluster::of(&kafka);
        assert_eq!(c.actors.len(), 6, "ctl, n1..n3, p0, c0");
        c
    }

    fn controller(&self) -> &ControllerState {
        match self.state(CTL) {
            KafkaState::Controller(s) => s,
            s => panic!("not a controller: {s:?}"),
        }
    }

    fn partition(&self) -> &PartitionState {
        &self.controller().partitions[0]
    }

    fn broker(&self, i: usize) -> &BrokerState {
        match self.state(i) {
            KafkaState::Broker(s) => s,
            s => panic!("not a broker: {s:?}"),
        }
    }

    fn replica(&self, i: usize) -> &Replica {
        self.broker(i)
            .replicas
            .iter()
            .find(|r| r.partition == 0)
            .expect("broker hosts partition 0")
    }

    fn producer(&self) -> &ProducerState {
        match self.state(PRODUCER) {
            KafkaState::Producer(s) => s,
            s => panic!("not a producer: {s:?}"),
        }
    }

    fn consumer(&self) -> &ConsumerState {
        match self.state(CONSUMER) {
            KafkaState::Consumer(s) => s,
            s => panic!("not a consumer: {s:?}"),
        }
    }

    /// The leader epoch and ISR of broker `i`'s replica, if it leads.
    fn leader_view(&self, i: usize) -> Option<(LeaderEpoch, Vec<Id>)> {
        match &self.replica(i).role {
            ReplicaRole::Leader(l) => Some((l.epoch, l.isr.clone())),
            _ => None,
        }
    }
}

/// The messages sent that `pick` selects, with their destinations.
fn sends_where(cmds: &[Cmd], pick: impl Fn(&KafkaMsg) -> bool) -> Vec<(usize, KafkaMsg)> {
    harness::sends::<Kafka>(cmds)
        .into_iter()
        .filter(|(_, m)| pick(m))
        .collect()
}

fn timers_set(cmds: &[Cmd]) -> Vec<KafkaTimer> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::SetTimer(t, _) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn timers_cancelled(cmds: &[Cmd]) -> Vec<KafkaTimer> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::CancelTimer(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn saves(cmds: &[Cmd]) -> Vec<KafkaDisk> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Save(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn produce_responses(cmds: &[Cmd]) -> Vec<(usize, u64, Result<u64, ErrorCode>)> {
    harness::sends::<Kafka>(cmds)
        .into_iter()
        .filter_map(|(d, m)| match m {
            KafkaMsg::ProduceResponse {
                request, result, ..
            } => Some((d, request, result)),
            _ => None,
        })
        .collect()
}

/// Produce requests sent: (destination, request id, message seq, producer_seq, acks).
#[allow(clippy::type_complexity)]
fn produces(cmds: &[Cmd]) -> Vec<(usize, u64, u32, Option<ProducerSeq>, Acks)> {
    harness::sends::<Kafka>(cmds)
        .into_iter()
        .filter_map(|(d, m)| match m {
            KafkaMsg::Produce {
                request,
                msg,
                producer_seq,
                acks,
                ..
            } => Some((d, request, msg.seq, producer_seq, acks)),
            _ => None,
        })
        .collect()
}

/// A non-transactional producer's `InitProducerId`.
fn init_producer_id() -> KafkaMsg {
    KafkaMsg::InitProducerId {
        transactional_id: None,
        producer: None,
    }
}

/// A read_uncommitted consumer's `ListOffsets` for partition 0's latest offset.
fn list_offsets() -> KafkaMsg {
    KafkaMsg::ListOffsets {
        partition: 0,
        isolation: Isolation::ReadUncommitted,
    }
}

fn ids(ids: &[usize]) -> Vec<Id> {
    ids.iter().map(|i| Id::from(*i)).collect()
}

/// The controller's record of partition 0 (replicas [1, 2, 3]).
fn ps(
    leader: Option<usize>,
    leader_epoch: LeaderEpoch,
    isr: &[usize],
    epoch: u32,
) -> PartitionState {
    PartitionState {
        partition: 0,
        replicas: ids(&[1, 2, 3]),
        leader: leader.map(Id::from),
        leader_epoch,
        isr: ids(isr),
        elr: Vec::new(),
        last_known_elr: Vec::new(),
        partition_epoch: epoch,
    }
}

fn msg(seq: u32) -> MsgId {
    MsgId { producer: 0, seq }
}

fn record(epoch: LeaderEpoch, seq: u32) -> Record {
    Record {
        epoch,
        msg: msg(seq),
        producer_seq: None,
        transactional: false,
        control: None,
    }
}

/// A broker disk holding partition 0's log with records of the given epochs.
fn disk(epochs: &[LeaderEpoch], flushed: u64, hw: u64) -> KafkaDisk {
    let records = epochs
        .iter()
        .enumerate()
        .map(|(i, e)| record(*e, i as u32))
        .collect();
    KafkaDisk::Server(BrokerDisk {
        logs: BTreeMap::from([(0, CommitLog::new(records, flushed))]),
        hw_checkpoint: BTreeMap::from([(0, hw)]),
        incarnation: 0,
    })
}

fn epochs_of(r: &Replica) -> Vec<LeaderEpoch> {
    r.log.records().map(|r| r.epoch).collect()
}

fn fetch(offset: u64, leader_epoch: LeaderEpoch, fetcher: Fetcher, correlation: u64) -> KafkaMsg {
    KafkaMsg::Fetch(FetchRequest {
        partition: 0,
        offset,
        leader_epoch,
        fetcher,
        isolation: Isolation::ReadUncommitted,
        correlation,
    })
}

/// An idempotent batch's stamp: producer id, producer epoch, sequence.
fn pseq(producer_id: u32, epoch: u16, sequence: u32) -> Option<ProducerSeq> {
    Some(ProducerSeq {
        producer_id,
        epoch,
        sequence,
    })
}

fn produce(request: u64, seq: u32, producer_seq: Option<ProducerSeq>, acks: Acks) -> KafkaMsg {
    KafkaMsg::Produce {
        partition: 0,
        request,
        msg: msg(seq),
        producer_seq,
        transactional_id: None,
        acks,
    }
}

/// (records, high watermark, error) of the one FetchResponse sent to `dst`.
fn fetch_response(cmds: &[Cmd], dst: usize) -> (Vec<Record>, u64, Option<ErrorCode>) {
    let found: Vec<_> = harness::sent_to::<Kafka>(cmds, dst)
        .into_iter()
        .filter_map(|m| match m {
            KafkaMsg::FetchResponse {
                records,
                high_watermark,
                error,
                ..
            } => Some((records, high_watermark, error)),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one FetchResponse to {dst}: {cmds:?}");
    found.into_iter().next().unwrap()
}

/// Starts the controller and registers brokers `order`, one after the other.
fn registered(sets: &[&str], order: &[usize]) -> (Cluster, Vec<Vec<Cmd>>) {
    let mut c = Cluster::new(sets);
    assert!(c.start(CTL).is_empty());
    let outs = order
        .iter()
        .map(|b| c.deliver(CTL, *b, KafkaMsg::BrokerRegistration { incarnation: 1 }))
        .collect();
    (c, outs)
}

/// Starts broker `b` (from `storage`) and tells it the controller's record `state`.
fn broker_with(
    c: &mut Cluster,
    b: usize,
    storage: Option<KafkaDisk>,
    state: PartitionState,
) -> Vec<Cmd> {
    let incarnation = match &storage {
        Some(KafkaDisk::Server(d)) => d.incarnation + 1,
        _ => 1,
    };
    let out = c.restart(b, storage);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CTL),
        vec![KafkaMsg::BrokerRegistration { incarnation }]
    );
    c.deliver(b, CTL, KafkaMsg::PartitionChange(vec![state]))
}

// ---------------------------------------------------------------------------------------------
// 1. Controller
// ---------------------------------------------------------------------------------------------

#[test]
fn first_registrations_elect_the_first_isr_replica_at_epoch_1() {
    let (c, outs) = registered(&[], &[1, 2, 3]);
    let expected = ps(Some(1), 1, &[1, 2, 3], 1);
    assert_eq!(c.partition(), &expected);
    assert_eq!(c.controller().alive.len(), 3);
    // Broker 1's registration elected it and pushed the change to every replica, then answered
    // broker 1 with the partitions it hosts.
    let pushed = sends_where(&outs[0], |m| matches!(m, KafkaMsg::PartitionChange(_)));
    assert_eq!(
        pushed,
        vec![
            (1, KafkaMsg::PartitionChange(vec![expected.clone()])),
            (2, KafkaMsg::PartitionChange(vec![expected.clone()])),
            (3, KafkaMsg::PartitionChange(vec![expected.clone()])),
            (1, KafkaMsg::PartitionChange(vec![expected.clone()])),
        ]
    );
    assert!(timers_set(&outs[0]).contains(&KafkaTimer::BrokerSession(Id::from(1))));
    // Later registrations change nothing: each only learns the current state.
    for (i, b) in [(1, 2), (2, 3)] {
        assert_eq!(
            harness::sends::<Kafka>(&outs[i]),
            vec![(b, KafkaMsg::PartitionChange(vec![expected.clone()]))]
        );
        assert!(timers_set(&outs[i]).contains(&KafkaTimer::BrokerSession(Id::from(b))));
    }
}

#[test]
fn a_retried_registration_changes_nothing_but_a_new_incarnation_is_a_restart() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    let before = c.partition().clone();
    // The leader's registration answer was lost: it registers again, same process.
    c.deliver(CTL, 1, KafkaMsg::BrokerRegistration { incarnation: 1 });
    assert_eq!(c.partition(), &before);
    // The leader restarted: KRaft fences the old incarnation and elects another ISR member.
    c.deliver(CTL, 1, KafkaMsg::BrokerRegistration { incarnation: 2 });
    assert_eq!(c.partition(), &ps(Some(2), 2, &[2, 3], 3));
}

#[test]
fn first_live_isr_replica_is_elected_when_the_preferred_one_is_late() {
    let (c, _) = registered(&[], &[3, 1, 2]);
    assert_eq!(c.partition(), &ps(Some(3), 1, &[1, 2, 3], 1));
}

#[test]
fn fencing_the_leader_elects_the_next_live_isr_member() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    let out = c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    // ISR shrink and election each bump the partition epoch.
    let expected = ps(Some(2), 2, &[2, 3], 3);
    assert_eq!(c.partition(), &expected);
    assert!(!c.controller().alive.contains(&Id::from(1)));
    let mut pushed = harness::sends::<Kafka>(&out);
    pushed.sort();
    assert_eq!(
        pushed,
        vec![
            (1, KafkaMsg::PartitionChange(vec![expected.clone()])),
            (2, KafkaMsg::PartitionChange(vec![expected.clone()])),
            (3, KafkaMsg::PartitionChange(vec![expected])),
        ]
    );
}

#[test]
fn fencing_a_follower_only_shrinks_the_isr() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(3)));
    assert_eq!(c.partition(), &ps(Some(1), 1, &[1, 2], 2));
}

#[test]
fn fencing_the_last_isr_member_keeps_it_in_the_isr_and_leaves_no_leader() {
    // Before ELR (3.9): KRaft keeps the last member in the ISR.
    let (mut c, _) = registered(&["version=3.9"], &[1, 2, 3]);
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(2)));
    assert_eq!(c.partition(), &ps(Some(3), 3, &[3], 5));
    let out = c.fire(CTL, KafkaTimer::BrokerSession(Id::from(3)));
    let offline = ps(None, 4, &[3], 6);
    assert_eq!(c.partition(), &offline);
    assert!(c.controller().alive.is_empty());
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![KafkaMsg::PartitionChange(vec![offline.clone()])]
    );
    // Without unclean election, an out-of-sync replica coming back does not lead.
    c.deliver(CTL, 1, KafkaMsg::BrokerHeartbeat);
    assert_eq!(c.partition(), &offline);
    // The last ISR member coming back does.
    c.deliver(CTL, 3, KafkaMsg::BrokerHeartbeat);
    assert_eq!(c.partition(), &ps(Some(3), 5, &[3], 7));
}

#[test]
fn unclean_election_elects_a_live_out_of_sync_replica_with_isr_of_itself() {
    let (mut c, _) = registered(
        &["unclean.leader.election.enable=true", "version=3.9"],
        &[1, 2, 3],
    );
    for b in [1, 2, 3] {
        c.fire(CTL, KafkaTimer::BrokerSession(Id::from(b)));
    }
    assert_eq!(c.partition(), &ps(None, 4, &[3], 6));
    let out = c.deliver(CTL, 1, KafkaMsg::BrokerHeartbeat);
    let unclean = ps(Some(1), 5, &[1], 7);
    assert_eq!(c.partition(), &unclean);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![
            KafkaMsg::PartitionChange(vec![unclean.clone()]),
            KafkaMsg::BrokerHeartbeatResponse(vec![unclean]),
        ]
    );
}

/// [`ps`] with an ELR and a last known leader.
fn ps_elr(
    leader: Option<usize>,
    leader_epoch: LeaderEpoch,
    isr: &[usize],
    elr: &[usize],
    last_known: &[usize],
    epoch: u32,
) -> PartitionState {
    PartitionState {
        elr: ids(elr),
        last_known_elr: ids(last_known),
        ..ps(leader, leader_epoch, isr, epoch)
    }
}

/// KIP-966 (4.1): the last ISR member fenced leaves the ISR empty, joins the ELR (the ISR fell
/// below `min.insync.replicas`, 1 here) and is remembered as the last leader; an out-of-sync
/// replica coming back still does not lead, the ELR member does.
#[test]
fn with_elr_fencing_the_last_isr_member_empties_the_isr_into_the_elr() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(2)));
    assert_eq!(c.partition(), &ps(Some(3), 3, &[3], 5));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(3)));
    // The ISR change and the election each bump the partition epoch, as elsewhere in the model.
    let offline = ps_elr(None, 4, &[], &[3], &[3], 7);
    assert_eq!(c.partition(), &offline);
    c.deliver(CTL, 1, KafkaMsg::BrokerHeartbeat);
    assert_eq!(c.partition(), &offline);
    c.deliver(CTL, 3, KafkaMsg::BrokerHeartbeat);
    assert_eq!(c.partition(), &ps(Some(3), 5, &[3], 8));
}

/// KIP-966's point, with `min.insync.replicas=2`: a replica that left the ISR while it was below
/// the minimum holds every committed record (the high watermark stood still), so when the ISR
/// empties it is elected — where 3.9 waits for the last ISR member, offline. A restart (a new
/// incarnation, an unclean shutdown to KRaft) takes a replica out of the ELR.
#[test]
fn with_elr_a_replica_that_left_a_short_isr_leads_when_the_isr_empties() {
    let shrink = |version: &str| {
        let sets = ["min.insync.replicas=2", version];
        let (mut c, _) = registered(&sets, &[1, 2, 3]);
        c.fire(CTL, KafkaTimer::BrokerSession(Id::from(3)));
        c.fire(CTL, KafkaTimer::BrokerSession(Id::from(2)));
        c.deliver(CTL, 2, KafkaMsg::BrokerHeartbeat);
        c
    };
    let mut c = shrink("version=4.1");
    assert_eq!(c.partition(), &ps_elr(Some(1), 1, &[1], &[2], &[], 3));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    assert_eq!(c.partition(), &ps_elr(Some(2), 2, &[2], &[1], &[], 5));

    let mut c = shrink("version=3.9");
    assert_eq!(c.partition(), &ps(Some(1), 1, &[1], 3));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    assert_eq!(c.partition(), &ps(None, 2, &[1], 4));

    // Broker 2 restarted before broker 1 was fenced: no longer eligible, so the partition waits
    // for broker 1, its ELR member and last leader.
    let mut c = shrink("version=4.1");
    c.deliver(CTL, 2, KafkaMsg::BrokerRegistration { incarnation: 2 });
    assert_eq!(c.partition(), &ps(Some(1), 1, &[1], 4));
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(1)));
    assert_eq!(c.partition(), &ps_elr(None, 2, &[], &[1], &[1], 6));
    c.deliver(CTL, 1, KafkaMsg::BrokerHeartbeat);
    assert_eq!(c.partition(), &ps(Some(1), 3, &[1], 7));
}

#[test]
fn alter_partition_is_refused_from_a_non_leader_or_at_a_stale_epoch() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    let current = ps(Some(1), 1, &[1, 2, 3], 1);
    let alter = |leader_epoch, partition_epoch, isr: &[usize]| KafkaMsg::AlterPartition {
        partition: 0,
        leader_epoch,
        partition_epoch,
        new_isr: ids(isr),
    };
    let cases = [
        // A follower may not change the ISR, even with the right epochs.
        (2, alter(1, 1, &[1, 2]), ErrorCode::FencedLeaderEpoch),
        // The leader, at a stale leader epoch.
        (1, alter(0, 1, &[1, 2]), ErrorCode::FencedLeaderEpoch),
        // The leader, at a stale partition epoch.
        (1, alter(1, 0, &[1, 2]), ErrorCode::InvalidUpdateVersion),
        // An ISR without the leader.
        (1, alter(1, 1, &[2, 3]), ErrorCode::IneligibleReplica),
    ];
    for (src, request, error) in cases {
        let out = c.deliver(CTL, src, request.clone());
        assert_eq!(
            harness::sends::<Kafka>(&out),
            vec![(
                src,
                KafkaMsg::AlterPartitionResponse {
                    state: current.clone(),
                    error: Some(error),
                }
            )],
            "{request}"
        );
        assert_eq!(c.partition(), &current, "refused: nothing changes");
    }
}

#[test]
fn alter_partition_to_a_fenced_broker_is_refused() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    c.fire(CTL, KafkaTimer::BrokerSession(Id::from(3)));
    let current = ps(Some(1), 1, &[1, 2], 2);
    let out = c.deliver(
        CTL,
        1,
        KafkaMsg::AlterPartition {
            partition: 0,
            leader_epoch: 1,
            partition_epoch: 2,
            new_isr: ids(&[1, 2, 3]),
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(
            1,
            KafkaMsg::AlterPartitionResponse {
                state: current.clone(),
                error: Some(ErrorCode::IneligibleReplica),
            }
        )]
    );
    assert_eq!(c.partition(), &current);
}

#[test]
fn valid_alter_partition_bumps_the_partition_epoch_and_publishes() {
    let (mut c, _) = registered(&[], &[1, 2, 3]);
    let out = c.deliver(
        CTL,
        1,
        KafkaMsg::AlterPartition {
            partition: 0,
            leader_epoch: 1,
            partition_epoch: 1,
            new_isr: ids(&[1, 2]),
        },
    );
    let changed = ps(Some(1), 1, &[1, 2], 2);
    assert_eq!(c.partition(), &changed);
    let mut out = harness::sends::<Kafka>(&out);
    out.sort();
    assert_eq!(
        out,
        vec![
            (1, KafkaMsg::PartitionChange(vec![changed.clone()])),
            (
                1,
                KafkaMsg::AlterPartitionResponse {
                    state: changed.clone(),
                    error: None
                }
            ),
            (2, KafkaMsg::PartitionChange(vec![changed.clone()])),
            (3, KafkaMsg::PartitionChange(vec![changed])),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Broker as leader
// ---------------------------------------------------------------------------------------------

/// Broker 1 leading partition 0 at `epoch` with ISR `isr`, empty log.
fn leader(sets: &[&str], epoch: LeaderEpoch, isr: &[usize]) -> Cluster {
    let mut c = Cluster::new(sets);
    let out = broker_with(&mut c, 1, None, ps(Some(1), epoch, isr, 1));
    assert_eq!(c.leader_view(1), Some((epoch, ids(isr))));
    // Becoming leader sends nothing; it starts the followers' lag clocks.
    assert!(harness::sends::<Kafka>(&out).is_empty(), "{out:?}");
    for f in isr.iter().filter(|f| **f != 1) {
        assert!(timers_set(&out).contains(&KafkaTimer::FollowerLag(0, Id::from(*f))));
    }
    c
}

/// KAFKA-14359: a leader that has no state for a producer (`ProducerAppendInfo.checkSequence`:
/// no current epoch, so any first sequence) appends that producer's batch 4 when batches 0..3
/// were refused before it became leader; their retries are then out of order, and the producer
/// renumbers them after batch 4 once batch 0 expires: acknowledged records land out of send
/// order. Found by the simulator in the safe configuration when the brokers carry their epochs
/// (KIP-903); the mechanism is here whatever the seeds.
#[test]
fn a_leader_without_the_producers_state_takes_its_fifth_batch_first_kafka_14359() {
    let mut c = leader(&[], 1, &[1]);
    let seq = |sequence| {
        Some(ProducerSeq {
            producer_id: 0,
            epoch: 0,
            sequence,
        })
    };
    let out = c.deliver(1, PRODUCER, produce(5, 4, seq(4), Acks::One));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 5, Ok(0))]);
    let out = c.deliver(1, PRODUCER, produce(6, 0, seq(0), Acks::One));
    assert_eq!(
        produce_responses(&out),
        vec![(PRODUCER, 6, Err(ErrorCode::OutOfOrderSequence))]
    );
}

#[test]
fn acks_all_is_answered_once_the_high_watermark_passes_the_record() {
    let mut c = leader(&["min.insync.replicas=2"], 1, &[1, 2, 3]);
    let out = c.deliver(1, PRODUCER, produce(7, 0, None, Acks::All));
    assert!(produce_responses(&out).is_empty(), "held for the ISR");
    assert_eq!(c.replica(1).log.end_offset(), 1);
    assert_eq!(c.replica(1).high_watermark, 0);
    assert!(!saves(&out).is_empty(), "the append is written");

    // Follower 2 fetches the record, then reports it has it: the HW waits for follower 3.
    let out = c.deliver(1, 2, fetch(0, 1, Fetcher::Replica, 1));
    assert_eq!(fetch_response(&out, 2), (vec![record(1, 0)], 0, None));
    let out = c.deliver(1, 2, fetch(1, 1, Fetcher::Replica, 2));
    assert!(produce_responses(&out).is_empty());
    assert!(
        harness::sent_to::<Kafka>(&out, 2).is_empty(),
        "caught up: the fetch is held"
    );
    assert_eq!(
        c.replica(1).high_watermark,
        0,
        "min LEO of the ISR is 3's: 0"
    );

    // Follower 3 at offset 1: every ISR member has the record.
    let out = c.deliver(1, 3, fetch(1, 1, Fetcher::Replica, 1));
    assert_eq!(c.replica(1).high_watermark, 1);
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 7, Ok(0))]);
}

#[test]
fn a_connection_waiting_for_acks_all_is_muted_until_its_answer_goes_out() {
    let mut c = leader(&["min.insync.replicas=2"], 1, &[1, 2]);
    c.deliver(1, PRODUCER, produce(7, 0, None, Acks::All));
    // The next request on that connection is not read yet: nothing answered, nothing appended.
    let out = c.deliver(1, PRODUCER, produce(8, 1, None, Acks::All));
    assert!(produce_responses(&out).is_empty());
    assert_eq!(c.replica(1).log.end_offset(), 1);
    assert_eq!(c.broker(1).muted.len(), 1);
    // Follower 2 has record 0: 7 is answered, then 8 is read and appended, and waits in turn.
    c.deliver(1, 2, fetch(0, 1, Fetcher::Replica, 1));
    let out = c.deliver(1, 2, fetch(1, 1, Fetcher::Replica, 2));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 7, Ok(0))]);
    assert_eq!(c.replica(1).log.end_offset(), 2);
    assert!(c.broker(1).muted.is_empty());
}

#[test]
fn acks_all_with_isr_below_min_insync_gets_not_enough_replicas() {
    let mut c = leader(&["min.insync.replicas=2"], 1, &[1, 2, 3]);
    // The controller shrinks the ISR to the leader alone: same leader epoch, newer partition
    // epoch.
    c.deliver(
        1,
        CTL,
        KafkaMsg::PartitionChange(vec![ps(Some(1), 1, &[1], 2)]),
    );
    assert_eq!(c.leader_view(1), Some((1, ids(&[1]))));
    let out = c.deliver(1, PRODUCER, produce(1, 0, None, Acks::All));
    assert_eq!(
        produce_responses(&out),
        vec![(PRODUCER, 1, Err(ErrorCode::NotEnoughReplicas))]
    );
    assert_eq!(c.replica(1).log.end_offset(), 0, "nothing appended");
    // acks=1 does not care about min.insync.replicas.
    let out = c.deliver(1, PRODUCER, produce(2, 0, None, Acks::One));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 2, Ok(0))]);
}

#[test]
fn acks_1_is_answered_at_once() {
    let mut c = leader(&["min.insync.replicas=2"], 1, &[1, 2, 3]);
    let out = c.deliver(1, PRODUCER, produce(3, 0, None, Acks::One));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 3, Ok(0))]);
    assert_eq!(c.replica(1).high_watermark, 0, "before any follower has it");
    let out = c.deliver(1, PRODUCER, produce(4, 1, None, Acks::One));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 4, Ok(1))]);
    // acks=0: appended, never answered.
    let out = c.deliver(1, PRODUCER, produce(5, 2, None, Acks::Zero));
    assert!(produce_responses(&out).is_empty());
    assert_eq!(c.replica(1).log.end_offset(), 3);
}

#[test]
fn idempotent_retry_returns_the_original_offset_and_gaps_are_refused() {
    // ISR of the leader alone with min.insync.replicas=1: acks=all answers at once.
    let mut c = leader(&[], 1, &[1]);
    let pid = 9;
    let out = c.deliver(1, PRODUCER, produce(1, 0, pseq(pid, 0, 0), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 1, Ok(0))]);
    let out = c.deliver(1, PRODUCER, produce(2, 1, pseq(pid, 0, 1), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 2, Ok(1))]);

    // A retry of sequence 0 (its response was lost): the original offset, no second copy.
    let out = c.deliver(1, PRODUCER, produce(3, 0, pseq(pid, 0, 0), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 3, Ok(0))]);
    assert_eq!(c.replica(1).log.end_offset(), 2);

    // Sequence 3 after 1: a gap. A new epoch must start at 0.
    for (request, producer_seq) in [(4, pseq(pid, 0, 3)), (5, pseq(pid, 1, 2))] {
        let out = c.deliver(1, PRODUCER, produce(request, 4, producer_seq, Acks::All));
        assert_eq!(
            produce_responses(&out),
            vec![(PRODUCER, request, Err(ErrorCode::OutOfOrderSequence))]
        );
    }
    assert_eq!(
        c.replica(1).log.end_offset(),
        2,
        "refused batches are not appended"
    );
    // The next sequence is accepted.
    let out = c.deliver(1, PRODUCER, produce(6, 2, pseq(pid, 0, 2), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 6, Ok(2))]);
    // A bumped epoch starts at 0 and fences the old one (KIP-360): a late retry of the old
    // epoch is refused, even one whose sequence would follow, and is never a duplicate.
    let out = c.deliver(1, PRODUCER, produce(7, 3, pseq(pid, 1, 0), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 7, Ok(3))]);
    for (request, sequence) in [(8, 3), (9, 2)] {
        let out = c.deliver(
            1,
            PRODUCER,
            produce(request, 2, pseq(pid, 0, sequence), Acks::All),
        );
        assert_eq!(
            produce_responses(&out),
            vec![(PRODUCER, request, Err(ErrorCode::InvalidProducerEpoch))]
        );
    }
    // A producer id the log never saw is accepted at any sequence (KIP-360).
    let out = c.deliver(1, PRODUCER, produce(10, 5, pseq(pid + 1, 0, 4), Acks::All));
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 10, Ok(4))]);
    assert_eq!(c.replica(1).log.end_offset(), 5);
}

#[test]
fn consumers_only_see_records_below_the_high_watermark() {
    let mut c = leader(&["min.insync.replicas=2"], 1, &[1, 2, 3]);
    c.deliver(1, PRODUCER, produce(0, 0, None, Acks::One));
    c.deliver(1, PRODUCER, produce(1, 1, None, Acks::One));
    // Both followers have offset 0 only: HW 1, LEO 2.
    c.deliver(1, 2, fetch(1, 1, Fetcher::Replica, 1));
    c.deliver(1, 3, fetch(1, 1, Fetcher::Replica, 1));
    assert_eq!(c.replica(1).high_watermark, 1);
    assert_eq!(c.replica(1).log.end_offset(), 2);

    let out = c.deliver(1, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert_eq!(
        fetch_response(&out, CONSUMER),
        (vec![record(1, 0)], 1, None)
    );

    // At the HW the consumer's fetch is held, though the leader has offset 1.
    let out = c.deliver(1, CONSUMER, fetch(1, 1, Fetcher::Consumer, 2));
    assert!(
        harness::sent_to::<Kafka>(&out, CONSUMER).is_empty(),
        "{out:?}"
    );
    assert!(timers_set(&out).contains(&KafkaTimer::FetchWait(0)));

    // Follower 2 catching up is not enough; follower 3 too advances the HW and releases it.
    let out = c.deliver(1, 2, fetch(2, 1, Fetcher::Replica, 2));
    assert!(harness::sent_to::<Kafka>(&out, CONSUMER).is_empty());
    let out = c.deliver(1, 3, fetch(2, 1, Fetcher::Replica, 2));
    assert_eq!(c.replica(1).high_watermark, 2);
    assert_eq!(
        fetch_response(&out, CONSUMER),
        (vec![record(1, 1)], 2, None)
    );
}

#[test]
fn held_consumer_fetch_is_answered_empty_when_the_wait_ends() {
    let mut c = leader(&[], 1, &[1, 2, 3]);
    let out = c.deliver(1, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert!(harness::sent_to::<Kafka>(&out, CONSUMER).is_empty());
    let out = c.fire(1, KafkaTimer::FetchWait(0));
    assert_eq!(fetch_response(&out, CONSUMER), (vec![], 0, None));
}

/// The wait a `FetchWait` timer was armed with, among `cmds`.
fn fetch_wait(cmds: &[Cmd]) -> Option<std::time::Duration> {
    cmds.iter().find_map(|c| match c {
        Command::SetTimer(KafkaTimer::FetchWait(0), range) => Some(range.start),
        _ => None,
    })
}

#[test]
fn an_empty_fetch_is_held_for_its_fetchers_wait() {
    let sets = ["replica.fetch.wait.max.ms=700", "fetch.max.wait.ms=4000"];
    let ms = std::time::Duration::from_millis;
    let mut c = leader(&sets, 1, &[1, 2, 3]);
    let out = c.deliver(1, 2, fetch(0, 1, Fetcher::Replica, 1));
    assert_eq!(fetch_wait(&out), Some(ms(700)), "{out:?}");
    // The purgatory already has its timer: a consumer joining it is answered with the follower.
    let out = c.deliver(1, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert_eq!(fetch_wait(&out), None, "{out:?}");
    let out = c.fire(1, KafkaTimer::FetchWait(0));
    assert_eq!(fetch_response(&out, CONSUMER), (vec![], 0, None));

    let mut c = leader(&sets, 1, &[1, 2, 3]);
    let out = c.deliver(1, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert_eq!(fetch_wait(&out), Some(ms(4000)), "{out:?}");
}

#[test]
fn follower_fetch_with_a_stale_leader_epoch_is_fenced() {
    let mut c = leader(&[], 2, &[1, 2, 3]);
    c.deliver(1, PRODUCER, produce(0, 0, None, Acks::One));
    let out = c.deliver(1, 2, fetch(0, 1, Fetcher::Replica, 1));
    assert_eq!(
        fetch_response(&out, 2),
        (vec![], 0, Some(ErrorCode::FencedLeaderEpoch))
    );
    // A fenced fetch is no progress report.
    match &c.replica(1).role {
        ReplicaRole::Leader(l) => assert_eq!(l.follower_leo[&Id::from(2)], 0),
        r => panic!("still the leader: {r:?}"),
    }
    // An epoch from the future: this leader is the stale one.
    let out = c.deliver(1, 2, fetch(0, 3, Fetcher::Replica, 2));
    assert_eq!(
        fetch_response(&out, 2),
        (vec![], 0, Some(ErrorCode::UnknownLeaderEpoch))
    );
    // The current epoch is served.
    let out = c.deliver(1, 2, fetch(0, 2, Fetcher::Replica, 3));
    assert_eq!(fetch_response(&out, 2), (vec![record(2, 0)], 0, None));
    // A consumer stale by epoch is fenced too; one that sends no epoch (0) is not.
    let out = c.deliver(1, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert_eq!(
        fetch_response(&out, CONSUMER),
        (vec![], 0, Some(ErrorCode::FencedLeaderEpoch))
    );
    let out = c.deliver(1, CONSUMER, fetch(0, 0, Fetcher::Consumer, 2));
    assert!(
        harness::sent_to::<Kafka>(&out, CONSUMER).is_empty(),
        "held at the HW, not refused"
    );
}

#[test]
fn without_leader_epochs_a_stale_follower_fetch_is_served() {
    let mut c = leader(&["log.truncation=high-watermark"], 2, &[1, 2, 3]);
    c.deliver(1, PRODUCER, produce(0, 0, None, Acks::One));
    let out = c.deliver(1, 2, fetch(0, 1, Fetcher::Replica, 1));
    assert_eq!(fetch_response(&out, 2), (vec![record(2, 0)], 0, None));
}

#[test]
fn a_non_leader_refuses_produce_and_fetch() {
    let mut c = Cluster::new(&[]);
    broker_with(&mut c, 2, None, ps(Some(1), 1, &[1, 2, 3], 1));
    let out = c.deliver(2, PRODUCER, produce(0, 0, None, Acks::All));
    assert_eq!(
        produce_responses(&out),
        vec![(PRODUCER, 0, Err(ErrorCode::NotLeaderOrFollower))]
    );
    let out = c.deliver(2, CONSUMER, fetch(0, 1, Fetcher::Consumer, 1));
    assert_eq!(
        fetch_response(&out, CONSUMER),
        (vec![], 0, Some(ErrorCode::NotLeaderOrFollower))
    );
}

#[test]
fn losing_leadership_fails_held_produce_requests() {
    let mut c = leader(&[], 1, &[1, 2, 3]);
    c.deliver(1, PRODUCER, produce(7, 0, None, Acks::All));
    let out = c.deliver(
        1,
        CTL,
        KafkaMsg::PartitionChange(vec![ps(Some(2), 2, &[2, 3], 3)]),
    );
    assert_eq!(
        produce_responses(&out),
        vec![(PRODUCER, 7, Err(ErrorCode::NotLeaderOrFollower))]
    );
    assert!(matches!(
        c.replica(1).role,
        ReplicaRole::Follower { leader, truncating: true } if leader == Id::from(2)
    ));
}

#[test]
fn a_lagging_follower_is_dropped_through_the_controller_and_counts_until_then() {
    // The controller and the leader, wired by hand.
    let (mut c, _) = registered(&["min.insync.replicas=2"], &[1, 2, 3]);
    let state = c.partition().clone();
    broker_with(&mut c, 1, None, state);
    c.deliver(1, PRODUCER, produce(0, 0, None, Acks::All));
    c.deliver(1, 2, fetch(1, 1, Fetcher::Replica, 1));

    // Follower 3 never fetched for replica.lag.time.max.ms: the leader asks to drop it.
    let out = c.fire(1, KafkaTimer::FollowerLag(0, Id::from(3)));
    let alter = KafkaMsg::AlterPartition {
        partition: 0,
        leader_epoch: 1,
        partition_epoch: 1,
        new_isr: ids(&[1, 2]),
    };
    assert_eq!(harness::sends::<Kafka>(&out), vec![(CTL, alter.clone())]);
    // KIP-497: until the controller agrees, 3 still holds the HW back.
    assert_eq!(c.replica(1).high_watermark, 0);

    let out = c.deliver(CTL, 1, alter);
    let resp = harness::sent_to::<Kafka>(&out, 1)
        .into_iter()
        .find(|m| matches!(m, KafkaMsg::AlterPartitionResponse { .. }))
        .expect("answered");
    let out = c.deliver(1, CTL, resp);
    assert_eq!(c.leader_view(1), Some((1, ids(&[1, 2]))));
    assert_eq!(c.replica(1).high_watermark, 1);
    assert_eq!(produce_responses(&out), vec![(PRODUCER, 0, Ok(0))]);
}

#[test]
fn a_caught_up_follower_is_added_back_to_the_isr() {
    let mut c = leader(&[], 1, &[1, 2]);
    c.deliver(1, PRODUCER, produce(0, 0, None, Acks::One));
    c.deliver(1, 2, fetch(1, 1, Fetcher::Replica, 1));
    assert_eq!(c.replica(1).high_watermark, 1);
    // Follower 3 below the HW: not yet.
    let out = c.deliver(1, 3, fetch(0, 1, Fetcher::Replica, 1));
    assert!(harness::sent_to::<Kafka>(&out, CTL).is_empty());
    // At the HW: the leader proposes it.
    let out = c.deliver(1, 3, fetch(1, 1, Fetcher::Replica, 2));
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CTL),
        vec![KafkaMsg::AlterPartition {
            partition: 0,
            leader_epoch: 1,
            partition_epoch: 1,
            new_isr: ids(&[1, 2, 3]),
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Broker as follower
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_follower_asks_offsets_for_leader_epoch_before_fetching() {
    let mut c = Cluster::new(&[]);
    let out = broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1, 2], 0, 3)),
        ps(Some(1), 3, &[1, 2, 3], 4),
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(
            1,
            KafkaMsg::OffsetsForLeaderEpoch {
                partition: 0,
                leader_epoch: 3,
                requested_epoch: 2,
            }
        )]
    );
    assert!(matches!(
        c.replica(2).role,
        ReplicaRole::Follower { leader, truncating: true } if leader == Id::from(1)
    ));
    assert_eq!(c.replica(2).log.end_offset(), 3, "no truncation yet");
    // Fetch responses are ignored while truncating.
    let out = c.deliver(
        2,
        1,
        KafkaMsg::FetchResponse {
            partition: 0,
            correlation: 0,
            offset: 3,
            records: vec![record(3, 9)],
            high_watermark: 0,
            log_end_offset: 4,
            aborted: Vec::new(),
            error: None,
        },
    );
    assert!(out.is_empty());
    // An error answer: back off, then ask again.
    let out = c.deliver(
        2,
        1,
        KafkaMsg::OffsetsForLeaderEpochResponse {
            partition: 0,
            epoch: 0,
            end_offset: 0,
            error: Some(ErrorCode::UnknownLeaderEpoch),
        },
    );
    assert!(harness::sends::<Kafka>(&out).is_empty());
    assert_eq!(c.replica(2).log.end_offset(), 3);
    let out = c.fire(2, KafkaTimer::ReplicaFetch(0));
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(
            1,
            KafkaMsg::OffsetsForLeaderEpoch {
                partition: 0,
                leader_epoch: 3,
                requested_epoch: 2,
            }
        )]
    );
}

#[test]
fn kip_101_keeps_a_divergent_record_that_kip_279_truncates() {
    // KIP-279's case: the follower holds [1, 2], its epoch-2 record never replicated; the new
    // leader (epoch 3) holds [1, 1, 3]. KIP-101's leader answers only where epoch 3 starts, 2,
    // so the follower keeps its epoch-2 record at offset 1, where the leader has epoch 1.
    for (mode, kept) in [("kip-101", vec![1, 2]), ("leader-epoch", vec![1])] {
        let set = format!("log.truncation={mode}");
        let mut c = Cluster::new(&[set.as_str()]);
        let state = ps(Some(1), 3, &[1, 2, 3], 4);
        broker_with(&mut c, 1, Some(disk(&[1, 1, 3], 3, 0)), state.clone());
        let out = broker_with(&mut c, 2, Some(disk(&[1, 2], 2, 0)), state);
        let (_, request) = harness::sends::<Kafka>(&out).remove(0);
        let out = c.deliver(1, 2, request);
        let (_, answer) = harness::sends::<Kafka>(&out).remove(0);
        c.deliver(2, 1, answer);
        assert_eq!(epochs_of(c.replica(2)), kept, "{mode}");
    }
}

#[test]
fn leader_epoch_truncation_asks_again_until_the_logs_match() {
    // The leader (epoch 4) holds [1, 2, 2, 4], the follower [1, 1, 3]. Asked for epoch 3 the
    // leader answers epoch 2, ending at 3; the follower has no epoch 2, so it cuts to the end of
    // its own epoch 1 (2) and asks again for epoch 1, which ends at 1 on the leader. One round
    // would have kept [1, 1], diverging at offset 1.
    let mut c = Cluster::new(&[]);
    let state = ps(Some(1), 4, &[1, 2, 3], 5);
    broker_with(&mut c, 1, Some(disk(&[1, 2, 2, 4], 4, 0)), state.clone());
    let mut out = broker_with(&mut c, 2, Some(disk(&[1, 1, 3], 3, 0)), state);
    let mut asked = Vec::new();
    while let Some((_, request)) = sends_where(&out, |m| {
        matches!(m, KafkaMsg::OffsetsForLeaderEpoch { .. })
    })
    .pop()
    {
        if let KafkaMsg::OffsetsForLeaderEpoch {
            requested_epoch, ..
        } = request
        {
            asked.push(requested_epoch);
        }
        let answer = c.deliver(1, 2, request);
        let (_, answer) = harness::sends::<Kafka>(&answer).remove(0);
        out = c.deliver(2, 1, answer);
    }
    assert_eq!(asked, vec![3, 1]);
    assert_eq!(epochs_of(c.replica(2)), vec![1]);
    assert!(matches!(
        c.replica(2).role,
        ReplicaRole::Follower {
            truncating: false,
            ..
        }
    ));
}

#[test]
fn follower_truncates_only_the_divergent_suffix_kip_279() {
    let mut c = Cluster::new(&[]);
    // The new leader (epoch 3) has a third epoch-1 record the follower lacks, and never had the
    // follower's epoch-2 record. (The follower's HW checkpoint of 3 is artificial, to see it
    // capped.)
    broker_with(
        &mut c,
        1,
        Some(disk(&[1, 1, 1, 3], 4, 0)),
        ps(Some(1), 3, &[1, 2, 3], 4),
    );
    let out = broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1, 2], 3, 3)),
        ps(Some(1), 3, &[1, 2, 3], 4),
    );
    assert_eq!(c.replica(2).high_watermark, 3);

    let (_, request) = harness::sends::<Kafka>(&out).remove(0);
    let out = c.deliver(1, 2, request);
    // Epoch 2 is unknown to the leader: its largest epoch below is 1, ending at offset 3.
    let answer = KafkaMsg::OffsetsForLeaderEpochResponse {
        partition: 0,
        epoch: 1,
        end_offset: 3,
        error: None,
    };
    assert_eq!(harness::sends::<Kafka>(&out), vec![(2, answer.clone())]);

    // The follower's own epoch 1 ends at 2: it cuts there (the epoch-2 record), not at 3.
    let out = c.deliver(2, 1, answer);
    assert_eq!(
        epochs_of(c.replica(2)),
        vec![1, 1],
        "the epoch-2 record is cut, no more"
    );
    assert_eq!(c.replica(2).high_watermark, 2, "HW capped at the cut");
    assert!(!saves(&out).is_empty(), "truncation is written");
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![fetch(2, 3, Fetcher::Replica, 1)],
        "fetching from the cut"
    );
    // The leader's answer brings the follower level.
    let out = c.deliver(1, 2, fetch(2, 3, Fetcher::Replica, 1));
    let resp = harness::sent_to::<Kafka>(&out, 2).remove(0);
    c.deliver(2, 1, resp);
    assert_eq!(epochs_of(c.replica(2)), vec![1, 1, 1, 3]);
}

#[test]
fn follower_ahead_in_the_same_epoch_is_cut_to_the_leaders_end_of_it() {
    let mut c = Cluster::new(&[]);
    // KIP-101's case: same epoch, the follower has one record more than the new leader.
    broker_with(
        &mut c,
        1,
        Some(disk(&[1, 1], 2, 0)),
        ps(Some(1), 2, &[1, 2], 3),
    );
    let out = broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1, 1], 3, 0)),
        ps(Some(1), 2, &[1, 2], 3),
    );
    let (_, request) = harness::sends::<Kafka>(&out).remove(0);
    let out = c.deliver(1, 2, request);
    let (_, answer) = harness::sends::<Kafka>(&out).remove(0);
    assert_eq!(
        answer,
        KafkaMsg::OffsetsForLeaderEpochResponse {
            partition: 0,
            epoch: 1,
            end_offset: 2,
            error: None,
        }
    );
    c.deliver(2, 1, answer);
    assert_eq!(epochs_of(c.replica(2)), vec![1, 1]);
}

#[test]
fn follower_behind_the_leader_keeps_its_whole_log() {
    let mut c = Cluster::new(&[]);
    broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1], 2, 2)),
        ps(Some(1), 2, &[1, 2, 3], 2),
    );
    // The leader's epoch 1 ends past our log end: nothing diverges.
    let out = c.deliver(
        2,
        1,
        KafkaMsg::OffsetsForLeaderEpochResponse {
            partition: 0,
            epoch: 1,
            end_offset: 3,
            error: None,
        },
    );
    assert_eq!(epochs_of(c.replica(2)), vec![1, 1]);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![fetch(2, 2, Fetcher::Replica, 1)]
    );
    assert!(matches!(
        c.replica(2).role,
        ReplicaRole::Follower {
            truncating: false,
            ..
        }
    ));
}

#[test]
fn high_watermark_mode_truncates_to_the_followers_own_high_watermark() {
    let mut c = Cluster::new(&["log.truncation=high-watermark"]);
    // Three records, all of epoch 1 (so nothing diverges), but a HW checkpoint of 1.
    let out = broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1, 1], 3, 1)),
        ps(Some(1), 2, &[1, 2, 3], 2),
    );
    assert_eq!(epochs_of(c.replica(2)), vec![1], "cut at its own HW");
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(1, 2, Fetcher::Replica, 1))]
    );
    assert!(matches!(
        c.replica(2).role,
        ReplicaRole::Follower {
            truncating: false,
            ..
        }
    ));

    // The same disk under leader epochs keeps the records until the leader says otherwise.
    let mut c = Cluster::new(&[]);
    broker_with(
        &mut c,
        2,
        Some(disk(&[1, 1, 1], 3, 1)),
        ps(Some(1), 2, &[1, 2, 3], 2),
    );
    assert_eq!(epochs_of(c.replica(2)), vec![1, 1, 1]);
}

#[test]
fn follower_appends_fetched_records_and_learns_the_high_watermark() {
    let mut c = Cluster::new(&["log.truncation=high-watermark", "flush.messages=1"]);
    broker_with(&mut c, 2, None, ps(Some(1), 1, &[1, 2, 3], 1));
    let resp = |correlation, offset, records, high_watermark| KafkaMsg::FetchResponse {
        partition: 0,
        correlation,
        offset,
        records,
        high_watermark,
        log_end_offset: 2,
        aborted: Vec::new(),
        error: None,
    };
    // A stray answer (wrong correlation) is ignored.
    assert!(c
        .deliver(2, 1, resp(7, 0, vec![record(1, 0)], 1))
        .is_empty());
    let out = c.deliver(2, 1, resp(1, 0, vec![record(1, 0), record(1, 1)], 1));
    assert_eq!(c.replica(2).log.end_offset(), 2);
    assert_eq!(c.replica(2).log.flushed, 2, "flush.messages=1");
    assert_eq!(c.replica(2).high_watermark, 1);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![fetch(2, 1, Fetcher::Replica, 2)]
    );
    // A connection reset from the leader: fetch again after a backoff.
    let out = c.deliver(2, 1, KafkaMsg::Disconnected);
    assert_eq!(timers_set(&out), vec![KafkaTimer::ReplicaFetch(0)]);
    let out = c.fire(2, KafkaTimer::ReplicaFetch(0));
    assert_eq!(
        harness::sent_to::<Kafka>(&out, 1),
        vec![fetch(2, 1, Fetcher::Replica, 3)]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Producer
// ---------------------------------------------------------------------------------------------

/// A producer that learnt broker 1 leads partition 0, and has sent its three messages.
fn producer_sent_three(sets: &[&str]) -> (Cluster, Vec<Vec<Cmd>>) {
    let mut c = Cluster::new(sets);
    let out = c.start(PRODUCER);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CTL),
        vec![KafkaMsg::Metadata]
    );
    let out = c.random(PRODUCER, KafkaRandom::Pace(10));
    assert_eq!(timers_set(&out), vec![KafkaTimer::Send]);
    c.deliver(
        PRODUCER,
        CTL,
        KafkaMsg::MetadataResponse(vec![ps(Some(1), 1, &[1, 2, 3], 1)]),
    );
    let outs = (0..3).map(|_| c.fire(PRODUCER, KafkaTimer::Send)).collect();
    (c, outs)
}

fn app_ops(app: &AppLog) -> Vec<Op> {
    app.iter().cloned().collect()
}

fn acked(app: &AppLog) -> Vec<u32> {
    app.iter()
        .filter_map(|op| match op {
            Op::Ack { msg } => Some(msg.seq),
            _ => None,
        })
        .collect()
}

/// The producer of [`producer_sent_three`] with record 0 acknowledged, killed with 1 and 2 in
/// flight and restarted from its application log; it has drawn its pace and heard the metadata.
fn producer_restarted_with_two_in_doubt(sets: &[&str]) -> (Cluster, Vec<Cmd>) {
    let (mut c, _) = producer_sent_three(sets);
    c.deliver(
        PRODUCER,
        1,
        KafkaMsg::ProduceResponse {
            partition: 0,
            request: 0,
            result: Ok(0),
        },
    );
    let disk = KafkaDisk::Client(c.producer().app.clone());
    let start = c.restart(PRODUCER, Some(disk));
    assert_eq!(c.producer().next, 3, "the three sends are not made again");
    assert_eq!(
        c.producer().batches.keys().copied().collect::<Vec<_>>(),
        vec![1, 2],
        "the outbox: sent, never acknowledged"
    );
    c.random(PRODUCER, KafkaRandom::Pace(10));
    (c, start)
}

#[test]
fn a_restarted_idempotent_producer_resends_its_outbox_under_a_new_producer_id() {
    let (mut c, start) = producer_restarted_with_two_in_doubt(&[]);
    assert_eq!(
        harness::sent_to::<Kafka>(&start, CTL),
        vec![KafkaMsg::Metadata, init_producer_id()]
    );
    assert_eq!(c.producer().producer_id, None);
    let out = c.deliver(
        PRODUCER,
        CTL,
        KafkaMsg::MetadataResponse(vec![ps(Some(1), 1, &[1, 2, 3], 1)]),
    );
    assert!(produces(&out).is_empty(), "nothing before a producer id");

    // The controller hands out ids no producer was built with, a new one each time.
    let mut ctl = Cluster::new(&[]);
    ctl.start(CTL);
    let ids: Vec<KafkaMsg> = (0..2)
        .flat_map(|_| {
            harness::sent_to::<Kafka>(&ctl.deliver(CTL, PRODUCER, init_producer_id()), PRODUCER)
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            KafkaMsg::InitProducerIdResponse {
                producer_id: 0x8000_0000,
                epoch: 0,
                error: None,
            },
            KafkaMsg::InitProducerIdResponse {
                producer_id: 0x8001_0000,
                epoch: 0,
                error: None,
            },
        ]
    );

    let out = c.deliver(PRODUCER, CTL, ids[0].clone());
    let pid = 0x8000_0000;
    assert_eq!(
        produces(&out),
        vec![
            (1, 0, 1, pseq(pid, 0, 0), Acks::All),
            (1, 1, 2, pseq(pid, 0, 1), Acks::All),
        ],
        "the outbox, in send order, numbered from 0 under the new id: the leader cannot tell \
         it from new records, so what the old session stored is stored again"
    );
    c.deliver(
        PRODUCER,
        1,
        KafkaMsg::ProduceResponse {
            partition: 0,
            request: 0,
            result: Ok(3),
        },
    );
    let ops = app_ops(&c.producer().app);
    let sends = ops
        .iter()
        .filter(|op| matches!(op, Op::Send { .. }))
        .count();
    assert_eq!(sends, 3, "a resend records no second send");
    assert_eq!(acked(&c.producer().app), vec![0, 1]);
}

#[test]
fn a_restarted_producer_without_idempotence_resends_at_once() {
    let (mut c, start) = producer_restarted_with_two_in_doubt(&["enable.idempotence=false"]);
    assert_eq!(
        harness::sent_to::<Kafka>(&start, CTL),
        vec![KafkaMsg::Metadata]
    );
    let out = c.deliver(
        PRODUCER,
        CTL,
        KafkaMsg::MetadataResponse(vec![ps(Some(1), 1, &[1, 2, 3], 1)]),
    );
    assert_eq!(
        produces(&out),
        vec![(1, 0, 1, None, Acks::All), (1, 1, 2, None, Acks::All)]
    );
}

#[test]
fn without_idempotence_a_retry_is_overtaken_by_batches_in_flight() {
    let (mut c, outs) = producer_sent_three(&[
        "enable.idempotence=false",
        "retries=5",
        "max.in.flight.requests.per.connection=5",
    ]);
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(
            produces(out),
            vec![(1, i as u64, i as u32, None, Acks::All)],
            "batch {i} goes at once"
        );
    }
    // Batch 0 fails; 1 and 2 stay in flight.
    let out = c.deliver(
        PRODUCER,
        1,
        KafkaMsg::ProduceResponse {
            partition: 0,
            request: 0,
            result: Err(ErrorCode::NotLeaderOrFollower),
        },
    );
    assert!(produces(&out).is_empty(), "retried after the backoff");
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CTL),
        vec![KafkaMsg::Metadata]
    );
    assert!(timers_set(&out).contains(&KafkaTimer::RetryBackoff));
    assert!(!timers_cancelled(&out).contains(&KafkaTimer::RequestTimeout(1)));
    let b = &c.producer().batches;
    assert_eq!((b[&0].in_flight, b[&0].backing_off), (None, true));
    assert_eq!((b[&1].in_flight, b[&1].backing_off), (Some(1), false));
    assert_eq!((b[&2].in_flight, b[&2].backing_off), (Some(2), false));

    let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
    assert_eq!(
        produces(&out),
        vec![(1, 3, 0, None, Acks::All)],
        "only batch 0 again"
    );
    assert_eq!(c.producer().batches[&0].attempts, 1, "queued again once");

    // 1 and 2 land first: the partition's order is 1, 2, 0.
    for (request, offset) in [(1, 0), (2, 1), (3, 2)] {
        c.deliver(
            PRODUCER,
            1,
            KafkaMsg::ProduceResponse {
                partition: 0,
                request,
                result: Ok(offset),
            },
        );
    }
    assert_eq!(acked(&c.producer().app), vec![1, 2, 0]);
    assert!(c.producer().batches.is_empty());
}

fn produce_response(request: u64, result: Result<u64, ErrorCode>) -> KafkaMsg {
    KafkaMsg::ProduceResponse {
        partition: 0,
        request,
        result,
    }
}

#[test]
fn an_idempotent_retry_keeps_its_sequence_and_goes_alone() {
    let (mut c, outs) = producer_sent_three(&[]);
    let pid = c.producer().producer_id.expect("assigned when built");
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(
            produces(out),
            vec![(1, i as u64, i as u32, pseq(pid, 0, i as u32), Acks::All)]
        );
    }
    let out = c.deliver(
        PRODUCER,
        1,
        produce_response(0, Err(ErrorCode::NotLeaderOrFollower)),
    );
    assert!(produces(&out).is_empty());
    // 1 and 2 stay in flight and get their own answers (`Sender.completeBatch`).
    let b = &c.producer().batches;
    assert_eq!((b[&0].in_flight, b[&0].backing_off), (None, true));
    assert_eq!((b[&1].in_flight, b[&2].in_flight), (Some(1), Some(2)));
    // The leader refused them: 0 is missing. Not the next sequence, so only retried.
    for request in [1, 2] {
        c.deliver(
            PRODUCER,
            1,
            produce_response(request, Err(ErrorCode::OutOfOrderSequence)),
        );
    }
    assert_eq!(c.producer().producer_epoch, 0, "no bump");
    let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
    assert_eq!(
        produces(&out),
        vec![(1, 3, 0, pseq(pid, 0, 0), Acks::All)],
        "the lowest sequence alone, under its own number"
    );
    let out = c.deliver(PRODUCER, 1, produce_response(3, Ok(0)));
    assert_eq!(produces(&out), vec![(1, 4, 1, pseq(pid, 0, 1), Acks::All)]);
    let out = c.deliver(PRODUCER, 1, produce_response(4, Ok(1)));
    assert_eq!(produces(&out), vec![(1, 5, 2, pseq(pid, 0, 2), Acks::All)]);
    c.deliver(PRODUCER, 1, produce_response(5, Ok(2)));
    assert_eq!(acked(&c.producer().app), vec![0, 1, 2]);
}

#[test]
fn an_expired_batch_holds_its_partition_until_its_fate_is_known() {
    for later_acknowledged in [true, false] {
        // Two in flight: 0 and 1 are sent, 2 waits unnumbered.
        let (mut c, _) = producer_sent_three(&["max.in.flight.requests.per.connection=2"]);
        let pid = c.producer().producer_id.expect("assigned when built");
        assert_eq!(c.producer().batches[&2].producer_seq, None);
        // Batch 0 times out, is retried, and expires: its fate is unknown.
        c.fire(PRODUCER, KafkaTimer::RequestTimeout(0));
        let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
        assert_eq!(produces(&out), vec![(1, 2, 0, pseq(pid, 0, 0), Acks::All)]);
        let out = c.fire(PRODUCER, KafkaTimer::DeliveryTimeout(0));
        assert_eq!(c.producer().unresolved.get(&0), Some(&1), "unresolved");
        assert!(
            produces(&out).is_empty(),
            "2 is not numbered while 0 is unresolved"
        );
        assert_eq!(c.producer().batches[&2].producer_seq, None);
        if later_acknowledged {
            // 1 follows 0 in the log, so 0 is there: resolved without a bump, 2 goes on.
            let out = c.deliver(PRODUCER, 1, produce_response(1, Ok(1)));
            assert_eq!(produces(&out), vec![(1, 3, 2, pseq(pid, 0, 2), Acks::All)]);
            assert!(c.producer().unresolved.is_empty());
            assert_eq!(c.producer().producer_epoch, 0);
            continue;
        }
        // 1 is refused, retried alone, and expires too: the partition drains with a gap, and
        // only then is the epoch bumped and the sequence restarted for 2.
        c.deliver(
            PRODUCER,
            1,
            produce_response(1, Err(ErrorCode::NotLeaderOrFollower)),
        );
        let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
        assert_eq!(produces(&out), vec![(1, 3, 1, pseq(pid, 0, 1), Acks::All)]);
        assert_eq!(c.producer().producer_epoch, 0, "1 is still pending");
        let out = c.fire(PRODUCER, KafkaTimer::DeliveryTimeout(1));
        assert_eq!(
            c.producer().producer_epoch,
            1,
            "bumped once nothing was in flight"
        );
        assert_eq!(produces(&out), vec![(1, 4, 2, pseq(pid, 1, 0), Acks::All)]);
    }
}

#[test]
fn out_of_order_for_the_next_sequence_bumps_the_epoch_at_once() {
    let (mut c, _) = producer_sent_three(&[]);
    let pid = c.producer().producer_id.expect("assigned when built");
    // The leader knows the producer at another sequence (it lost its batches, say to an
    // unclean election): 0 is the next expected, so the gap is real.
    let out = c.deliver(
        PRODUCER,
        1,
        produce_response(0, Err(ErrorCode::OutOfOrderSequence)),
    );
    assert_eq!(c.producer().producer_epoch, 1);
    let b = &c.producer().batches;
    assert_eq!(
        [0, 1, 2].map(|i| b[&i].producer_seq),
        [pseq(pid, 1, 0), pseq(pid, 1, 1), pseq(pid, 1, 2)],
        "the refused batches, renumbered from 0 under the new epoch"
    );
    assert!(b.values().all(|b| b.reset));
    assert!(produces(&out).is_empty(), "0 waits out its backoff");
    // The old epoch's answers for 1 and 2 are only retried: no second bump.
    for request in [1, 2] {
        c.deliver(
            PRODUCER,
            1,
            produce_response(request, Err(ErrorCode::OutOfOrderSequence)),
        );
    }
    assert_eq!(c.producer().producer_epoch, 1);
    let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
    assert_eq!(produces(&out), vec![(1, 3, 0, pseq(pid, 1, 0), Acks::All)]);
}

#[test]
fn out_of_order_for_a_batch_behind_the_last_acknowledged_is_retried_until_it_expires() {
    // The leader refuses 0 (NOT_LEADER_OR_FOLLOWER) and, knowing nothing of the producer yet,
    // accepts 1 and 2 at their sequences (KIP-360): 0 is now behind the last acknowledged.
    let (mut c, _) = producer_sent_three(&[]);
    let pid = c.producer().producer_id.expect("assigned when built");
    c.deliver(
        PRODUCER,
        1,
        produce_response(0, Err(ErrorCode::NotLeaderOrFollower)),
    );
    c.deliver(PRODUCER, 1, produce_response(1, Ok(0)));
    c.deliver(PRODUCER, 1, produce_response(2, Ok(1)));
    assert_eq!(c.producer().sequences[&0].last_acked, Some(2));
    // Its retry is out of order, and it is not the next sequence (`isNextSequence`): retried
    // under its own number, no bump, as often as it comes back refused.
    for request in [3, 4] {
        let out = c.fire(PRODUCER, KafkaTimer::RetryBackoff);
        assert_eq!(
            produces(&out),
            vec![(1, request, 0, pseq(pid, 0, 0), Acks::All)]
        );
        c.deliver(
            PRODUCER,
            1,
            produce_response(request, Err(ErrorCode::OutOfOrderSequence)),
        );
        assert_eq!(c.producer().producer_epoch, 0, "no bump");
        assert!(c.producer().bump.is_empty());
    }
    // Until delivery.timeout.ms: it fails, never acknowledged, and the partition resolves
    // without a bump, since the last acknowledged sequence is the last one numbered.
    c.fire(PRODUCER, KafkaTimer::DeliveryTimeout(0));
    assert_eq!(acked(&c.producer().app), vec![1, 2]);
    assert!(app_ops(&c.producer().app)
        .iter()
        .any(|op| matches!(op, Op::Fail { msg, .. } if msg.seq == 0)));
    assert!(c.producer().unresolved.is_empty());
    assert_eq!(c.producer().producer_epoch, 0);
}

#[test]
fn in_flight_limit_holds_later_batches_back() {
    let (mut c, outs) = producer_sent_three(&[
        "enable.idempotence=false",
        "max.in.flight.requests.per.connection=1",
    ]);
    assert_eq!(produces(&outs[0]).len(), 1);
    assert!(produces(&outs[1]).is_empty());
    assert!(produces(&outs[2]).is_empty());
    let out = c.deliver(
        PRODUCER,
        1,
        KafkaMsg::ProduceResponse {
            partition: 0,
            request: 0,
            result: Ok(0),
        },
    );
    assert_eq!(produces(&out), vec![(1, 1, 1, None, Acks::All)]);
}

#[test]
fn exhausted_retries_fail_the_send() {
    let (mut c, _) = producer_sent_three(&["enable.idempotence=false", "retries=0"]);
    let out = c.deliver(
        PRODUCER,
        1,
        KafkaMsg::ProduceResponse {
            partition: 0,
            request: 0,
            result: Err(ErrorCode::NotEnoughReplicas),
        },
    );
    assert!(produces(&out).is_empty());
    assert!(matches!(
        app_ops(&c.producer().app).last(),
        Some(Op::Fail { msg, reason }) if msg.seq == 0 && reason.contains("NOT_ENOUGH_REPLICAS")
    ));
    assert!(!c.producer().batches.contains_key(&0));
}

#[test]
fn acks_0_records_the_ack_at_send_time() {
    let (c, outs) = producer_sent_three(&["acks=0", "enable.idempotence=false"]);
    for (i, out) in outs.iter().enumerate() {
        let seq = i as u32;
        assert_eq!(produces(out), vec![(1, i as u64, seq, None, Acks::Zero)]);
        assert!(timers_cancelled(out).contains(&KafkaTimer::DeliveryTimeout(seq)));
        assert!(!timers_set(out).contains(&KafkaTimer::RequestTimeout(i as u64)));
        // The application log saved with this send already holds its Ack.
        let Some(KafkaDisk::Client(app)) = saves(out).pop() else {
            panic!("the app log is saved")
        };
        assert!(matches!(
            app_ops(&app).last(),
            Some(Op::Ack { msg }) if msg.seq == seq
        ));
    }
    assert_eq!(acked(&c.producer().app), vec![0, 1, 2]);
    assert!(c.producer().batches.is_empty());
}

#[test]
fn producer_disconnect_fails_the_requests_in_flight_to_that_broker() {
    let (mut c, _) = producer_sent_three(&[]);
    let out = c.deliver(PRODUCER, 2, KafkaMsg::Disconnected);
    assert!(out.is_empty(), "nothing was in flight to broker 2");
    let out = c.deliver(PRODUCER, 1, KafkaMsg::Disconnected);
    assert!(timers_set(&out).contains(&KafkaTimer::RetryBackoff));
    assert!(c.producer().batches.values().all(|b| b.in_flight.is_none()));
}

// ---------------------------------------------------------------------------------------------
// 5. Consumer
// ---------------------------------------------------------------------------------------------

/// A consumer assigned partition 0 (leader 1 at epoch 1) from committed offset 0, with its first
/// fetch outstanding.
fn consumer_fetching(sets: &[&str]) -> Cluster {
    let mut c = consumer_assigned(sets);
    let out = c.deliver(
        CONSUMER,
        CTL,
        KafkaMsg::OffsetFetchResponse {
            generation: 1,
            partition: 0,
            offset: Some(0),
            leader_epoch: 0,
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(0, 1, Fetcher::Consumer, 1))]
    );
    c
}

/// A consumer assigned partition 0 (leader 1 at epoch 1), asking for its group's offset.
fn consumer_assigned(sets: &[&str]) -> Cluster {
    let mut c = Cluster::new(sets);
    let out = c.start(CONSUMER);
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CTL),
        vec![KafkaMsg::JoinGroup, KafkaMsg::Metadata]
    );
    c.deliver(
        CONSUMER,
        CTL,
        KafkaMsg::MetadataResponse(vec![ps(Some(1), 1, &[1, 2, 3], 1)]),
    );
    let out = c.deliver(
        CONSUMER,
        CTL,
        KafkaMsg::SyncGroup {
            generation: 1,
            partitions: vec![0],
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(
            CTL,
            KafkaMsg::OffsetFetch {
                generation: 1,
                partition: 0
            }
        )]
    );
    c
}

#[test]
fn a_group_without_a_committed_offset_resets_as_auto_offset_reset_says() {
    let no_offset = KafkaMsg::OffsetFetchResponse {
        generation: 1,
        partition: 0,
        offset: None,
        leader_epoch: 0,
    };
    let mut c = consumer_assigned(&["auto.offset.reset=earliest"]);
    let out = c.deliver(CONSUMER, CTL, no_offset.clone());
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(0, 1, Fetcher::Consumer, 1))]
    );

    // latest: the leader's high watermark; what is below it this group never reads.
    let mut c = consumer_assigned(&["auto.offset.reset=latest"]);
    let out = c.deliver(CONSUMER, CTL, no_offset);
    assert_eq!(harness::sends::<Kafka>(&out), vec![(1, list_offsets())]);
    let mut leader = leader(&[], 1, &[1]);
    leader.deliver(1, PRODUCER, produce(1, 0, None, Acks::One));
    leader.deliver(1, PRODUCER, produce(2, 1, None, Acks::One));
    let out = leader.deliver(1, CONSUMER, list_offsets());
    let answer = KafkaMsg::ListOffsetsResponse {
        partition: 0,
        offset: 2,
        error: None,
    };
    assert_eq!(
        harness::sent_to::<Kafka>(&out, CONSUMER),
        vec![answer.clone()]
    );
    let out = c.deliver(CONSUMER, 1, answer);
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(2, 1, Fetcher::Consumer, 1))]
    );
}

#[test]
fn a_committed_offset_carries_its_leader_epoch_and_is_validated_first() {
    // KIP-320: the group committed offset 5 after a record of epoch 1; the leader is at epoch
    // 2 now and may have truncated: the consumer asks where epoch 1 ends before fetching.
    let mut c = consumer_assigned(&[]);
    let out = c.deliver(
        CONSUMER,
        CTL,
        KafkaMsg::OffsetFetchResponse {
            generation: 1,
            partition: 0,
            offset: Some(5),
            leader_epoch: 1,
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(
            1,
            KafkaMsg::OffsetsForLeaderEpoch {
                partition: 0,
                leader_epoch: 1,
                requested_epoch: 1,
            }
        )]
    );
    let out = c.deliver(
        CONSUMER,
        1,
        KafkaMsg::OffsetsForLeaderEpochResponse {
            partition: 0,
            epoch: 1,
            end_offset: 3,
            error: None,
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(3, 1, Fetcher::Consumer, 1))]
    );
    // What it commits carries the epoch of the record before the offset.
    let mut c = consumer_fetching(&[]);
    c.deliver(CONSUMER, 1, two_records(1));
    c.fire(CONSUMER, KafkaTimer::Process);
    let out = c.fire(CONSUMER, KafkaTimer::Process);
    assert_eq!(harness::sent_to::<Kafka>(&out, CTL), vec![commit(2)]);
    let mut ctl = Cluster::new(&[]);
    ctl.start(CTL);
    ctl.deliver(CTL, CONSUMER, KafkaMsg::JoinGroup);
    ctl.deliver(CTL, CONSUMER, commit(2));
    assert_eq!(ctl.controller().offsets.get(&0), Some(&(2, 1)));
}

#[test]
fn from_3_7_the_high_watermark_waits_for_the_minimum_isr() {
    // The ISR is the leader alone, below min.insync.replicas=2 (KAFKA-15583).
    for (version, hw) in [("3.6", 1), ("3.9", 0), ("4.1", 0)] {
        let v = format!("version={version}");
        let mut c = leader(&[v.as_str(), "min.insync.replicas=2"], 1, &[1]);
        let out = c.deliver(1, PRODUCER, produce(1, 0, None, Acks::One));
        assert_eq!(
            produce_responses(&out),
            vec![(PRODUCER, 1, Ok(0))],
            "{version}"
        );
        assert_eq!(c.replica(1).high_watermark, hw, "{version}");
    }
}

#[test]
fn a_minimum_isr_above_the_replication_factor_is_capped_from_3_7() {
    for (version, appended) in [("3.6", 0), ("3.9", 1), ("4.1", 1)] {
        let v = format!("version={version}");
        let mut c = leader(&[v.as_str(), "min.insync.replicas=4"], 1, &[1, 2, 3]);
        let out = c.deliver(1, PRODUCER, produce(1, 0, None, Acks::All));
        let refused = vec![(PRODUCER, 1, Err(ErrorCode::NotEnoughReplicas))];
        if appended == 0 {
            assert_eq!(produce_responses(&out), refused, "{version}");
        } else {
            assert!(
                produce_responses(&out).is_empty(),
                "{version}: held for the ISR"
            );
        }
        assert_eq!(c.replica(1).log.end_offset(), appended, "{version}");
    }
}

fn two_records(correlation: u64) -> KafkaMsg {
    KafkaMsg::FetchResponse {
        partition: 0,
        correlation,
        offset: 0,
        records: vec![record(1, 0), record(1, 1)],
        high_watermark: 2,
        log_end_offset: 2,
        aborted: Vec::new(),
        error: None,
    }
}

/// The consumer's ops, abbreviated: ("deliver", offset) or ("commit", position).
fn consumer_ops(c: &Cluster) -> Vec<(&'static str, u64)> {
    c.consumer()
        .app
        .iter()
        .map(|op| match op {
            Op::Deliver { position, .. } => ("deliver", position.unwrap()),
            Op::Commit { position, .. } => ("commit", *position),
            op => panic!("a consumer records no {op:?}"),
        })
        .collect()
}

fn commit(offset: u64) -> KafkaMsg {
    KafkaMsg::OffsetCommit {
        generation: 1,
        partition: 0,
        offset,
        leader_epoch: 1,
    }
}

fn commit_ok(offset: u64) -> KafkaMsg {
    KafkaMsg::OffsetCommitResponse {
        partition: 0,
        offset,
        error: None,
    }
}

#[test]
fn a_poll_whose_records_leave_a_marker_out_is_recorded_and_a_contiguous_one_is_not() {
    // Offsets 0 and 2 are records, 1 a commit marker the application never sees: the two
    // deliveries are one poll with a hole, which the ordering checker needs to tell a skip inside
    // a poll (Jepsen's int-poll-skip) from one between polls.
    let marker = Record {
        control: Some(TxnResult::Commit),
        ..record(1, 9)
    };
    let mut c = consumer_fetching(&[]);
    c.deliver(
        CONSUMER,
        1,
        KafkaMsg::FetchResponse {
            partition: 0,
            correlation: 1,
            offset: 0,
            records: vec![record(1, 0), marker, record(1, 2)],
            high_watermark: 3,
            log_end_offset: 3,
            aborted: Vec::new(),
            error: None,
        },
    );
    c.fire(CONSUMER, KafkaTimer::Process);
    c.fire(CONSUMER, KafkaTimer::Process);
    let ops: Vec<&Op> = c.consumer().app.iter().collect();
    assert_eq!(
        ops[0],
        &Op::Poll {
            group: 0,
            consumer: 0,
            scope: 0,
            from: 0,
            to: 3
        }
    );
    assert!(matches!(
        ops[1],
        Op::Deliver {
            position: Some(0),
            ..
        }
    ));
    assert!(matches!(
        ops[2],
        Op::Deliver {
            position: Some(2),
            ..
        }
    ));

    // Contiguous records: no poll is recorded (`consumer_ops` panics on any op but deliveries
    // and commits).
    let mut c = consumer_fetching(&[]);
    c.deliver(CONSUMER, 1, two_records(1));
    c.fire(CONSUMER, KafkaTimer::Process);
    c.fire(CONSUMER, KafkaTimer::Process);
    assert_eq!(consumer_ops(&c), vec![("deliver", 0), ("deliver", 1)]);
}

#[test]
fn commit_before_processing_commits_before_delivering() {
    let mut c = consumer_fetching(&["consumer.commit=before-processing"]);
    let out = c.deliver(CONSUMER, 1, two_records(1));
    assert_eq!(harness::sends::<Kafka>(&out), vec![(CTL, commit(2))]);
    assert!(!timers_set(&out).contains(&KafkaTimer::Process));
    // Even if the processing timer fired, nothing is handed over before the commit is answered.
    c.fire(CONSUMER, KafkaTimer::Process);
    assert!(consumer_ops(&c).is_empty());

    let out = c.deliver(CONSUMER, CTL, commit_ok(2));
    assert!(timers_set(&out).contains(&KafkaTimer::Process));
    c.fire(CONSUMER, KafkaTimer::Process);
    let out = c.fire(CONSUMER, KafkaTimer::Process);
    assert_eq!(
        consumer_ops(&c),
        vec![("commit", 2), ("deliver", 0), ("deliver", 1)]
    );
    // All processed: fetch on, with no second commit.
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(2, 1, Fetcher::Consumer, 2))]
    );
}

#[test]
fn commit_after_processing_delivers_then_commits() {
    let mut c = consumer_fetching(&[]);
    let out = c.deliver(CONSUMER, 1, two_records(1));
    assert!(
        harness::sends::<Kafka>(&out).is_empty(),
        "no commit yet: {out:?}"
    );
    assert!(timers_set(&out).contains(&KafkaTimer::Process));
    let out = c.fire(CONSUMER, KafkaTimer::Process);
    assert!(
        harness::sends::<Kafka>(&out).is_empty(),
        "one record still buffered"
    );
    let out = c.fire(CONSUMER, KafkaTimer::Process);
    assert_eq!(harness::sends::<Kafka>(&out), vec![(CTL, commit(2))]);
    assert_eq!(consumer_ops(&c), vec![("deliver", 0), ("deliver", 1)]);

    let out = c.deliver(CONSUMER, CTL, commit_ok(2));
    assert_eq!(
        consumer_ops(&c),
        vec![("deliver", 0), ("deliver", 1), ("commit", 2)]
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(2, 1, Fetcher::Consumer, 2))]
    );
}

#[test]
fn a_connection_reset_from_the_leader_makes_the_consumer_fetch_again() {
    let mut c = consumer_fetching(&[]);
    // A reset from a broker it is not fetching from changes nothing.
    assert!(c.deliver(CONSUMER, 2, KafkaMsg::Disconnected).is_empty());
    let out = c.deliver(CONSUMER, 1, KafkaMsg::Disconnected);
    assert_eq!(timers_set(&out), vec![KafkaTimer::ConsumerFetch(0)]);
    assert!(
        harness::sends::<Kafka>(&out).is_empty(),
        "after retry.backoff.ms"
    );
    let out = c.fire(CONSUMER, KafkaTimer::ConsumerFetch(0));
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(1, fetch(0, 1, Fetcher::Consumer, 2))]
    );
    // The lost request's answer, should it arrive after all, is not taken.
    assert!(c.deliver(CONSUMER, 1, two_records(1)).is_empty());
    assert!(c.consumer().buffer.is_empty());
    c.deliver(CONSUMER, 1, two_records(2));
    assert_eq!(c.consumer().buffer.len(), 2);
}

#[test]
fn a_refused_commit_makes_the_consumer_rejoin() {
    let mut c = consumer_fetching(&[]);
    c.deliver(CONSUMER, 1, two_records(1));
    c.fire(CONSUMER, KafkaTimer::Process);
    c.fire(CONSUMER, KafkaTimer::Process);
    let out = c.deliver(
        CONSUMER,
        CTL,
        KafkaMsg::OffsetCommitResponse {
            partition: 0,
            offset: 2,
            error: Some(ErrorCode::IllegalGeneration),
        },
    );
    assert_eq!(
        harness::sends::<Kafka>(&out),
        vec![(CTL, KafkaMsg::JoinGroup)]
    );
    assert_eq!(c.consumer().generation, None);
    assert_eq!(consumer_ops(&c), vec![("deliver", 0), ("deliver", 1)]);
}

// ---------------------------------------------------------------------------------------------
// 6. Durable storage
// ---------------------------------------------------------------------------------------------

#[test]
fn power_loss_keeps_only_flushed_records_and_caps_the_hw_checkpoint() {
    let KafkaDisk::Server(after) = disk(&[1, 1, 1, 2, 2], 2, 4).after_power_loss() else {
        panic!("a broker disk stays one")
    };
    assert_eq!(
        after.logs[&0].records().cloned().collect::<Vec<_>>(),
        vec![record(1, 0), record(1, 1)]
    );
    assert_eq!(after.logs[&0].flushed, 2);
    assert_eq!(after.hw_checkpoint[&0], 2);
    // A checkpoint below the flushed prefix is kept as it is.
    let KafkaDisk::Server(after) = disk(&[1, 1, 1], 3, 1).after_power_loss() else {
        panic!()
    };
    assert_eq!(after.logs[&0].end_offset(), 3);
    assert_eq!(after.hw_checkpoint[&0], 1);
    // An application's log survives whole.
    let app: AppLog = [Op::Ack { msg: msg(0) }].into_iter().collect();
    assert_eq!(
        KafkaDisk::Client(app.clone()).after_power_loss(),
        KafkaDisk::Client(app)
    );
}

#[test]
fn a_broker_flushes_per_flush_messages_and_restarts_from_what_survived() {
    let mut c = leader(&["flush.messages=2"], 1, &[1]);
    // flush.messages=2: the second append fsyncs both, the third sits in the page cache.
    for (seq, flushed) in [(0, 0), (1, 2), (2, 2)] {
        let out = c.deliver(1, PRODUCER, produce(seq as u64, seq, None, Acks::One));
        let Some(KafkaDisk::Server(d)) = saves(&out).pop() else {
            panic!("every append is saved: {out:?}")
        };
        assert_eq!(d.logs[&0].flushed, flushed, "after record {seq}");
    }
    let out = c.fire(1, KafkaTimer::HwCheckpoint);
    let disk = saves(&out).pop().expect("the HW moved: checkpoint written");
    let KafkaDisk::Server(d) = &disk else {
        panic!()
    };
    assert_eq!((d.logs[&0].end_offset(), d.logs[&0].flushed), (3, 2));
    assert_eq!(d.hw_checkpoint[&0], 3);

    // Power loss, then restart: two records, and a HW no higher than the log.
    c.restart(1, Some(disk.after_power_loss()));
    assert_eq!(c.replica(1).log.end_offset(), 2);
    assert_eq!(c.replica(1).high_watermark, 2);
    assert_eq!(c.replica(1).role, ReplicaRole::Idle);
}
