//! The Kafka requests and responses the model exchanges, named after the real APIs.

use super::log::{LeaderEpoch, ProducerSeq, Record};
use mqcheck_invariants::MsgId;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::fmt;

pub type Partition = u32;

/// The producer's `acks`: how many replicas must have a record before the leader answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: no response at all; the send succeeds once the request is on the wire.
    Zero,
    /// `acks=1`: the leader answers once it has appended the record.
    One,
    /// `acks=all` (`-1`): the leader answers once the high watermark passes the record, that is
    /// once every member of the ISR has it.
    All,
}

/// The controller's record of one partition (KRaft's `PartitionRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: Partition,
    pub replicas: Vec<Id>,
    pub leader: Option<Id>,
    pub leader_epoch: LeaderEpoch,
    pub isr: Vec<Id>,
    /// Bumped on every change, leader or ISR: fences stale AlterPartition requests (KIP-497).
    pub partition_epoch: u32,
}

/// Error codes, with Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorCode {
    NotLeaderOrFollower,
    NotEnoughReplicas,
    NotEnoughReplicasAfterAppend,
    OutOfOrderSequence,
    InvalidProducerEpoch,
    FencedLeaderEpoch,
    UnknownLeaderEpoch,
    OffsetOutOfRange,
    IllegalGeneration,
    InvalidUpdateVersion,
    IneligibleReplica,
}

impl ErrorCode {
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NotLeaderOrFollower => "NOT_LEADER_OR_FOLLOWER",
            ErrorCode::NotEnoughReplicas => "NOT_ENOUGH_REPLICAS",
            ErrorCode::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
            ErrorCode::OutOfOrderSequence => "OUT_OF_ORDER_SEQUENCE_NUMBER",
            ErrorCode::InvalidProducerEpoch => "INVALID_PRODUCER_EPOCH",
            ErrorCode::FencedLeaderEpoch => "FENCED_LEADER_EPOCH",
            ErrorCode::UnknownLeaderEpoch => "UNKNOWN_LEADER_EPOCH",
            ErrorCode::OffsetOutOfRange => "OFFSET_OUT_OF_RANGE",
            ErrorCode::IllegalGeneration => "ILLEGAL_GENERATION",
            ErrorCode::InvalidUpdateVersion => "INVALID_UPDATE_VERSION",
            ErrorCode::IneligibleReplica => "INELIGIBLE_REPLICA",
        }
    }
}

/// Who sent a Fetch: a follower replica, or a consumer (which may only read below the high
/// watermark).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Fetcher {
    Replica,
    Consumer,
}

/// A Fetch, from a follower or a consumer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FetchRequest {
    pub partition: Partition,
    pub offset: u64,
    /// KIP-320: the fetcher's current leader epoch, so stale leaders and followers are fenced.
    pub leader_epoch: LeaderEpoch,
    pub fetcher: Fetcher,
    /// Matches the response to its request, as Kafka's correlation id does: a fetcher acts on
    /// the answer to the one fetch it has outstanding, not on stray or duplicated answers.
    pub correlation: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KafkaMsg {
    /// Not a wire message: the client library's notice that the TCP connection to the sender was
    /// reset. Kafka's `NetworkClient` fails the requests in flight on it (`NETWORK_EXCEPTION`)
    /// and reconnects.
    Disconnected,
    // Broker ↔ controller (KRaft broker lifecycle, simplified).
    BrokerRegistration {
        incarnation: u32,
    },
    BrokerHeartbeat,
    /// The controller's answer to a heartbeat: the partitions the broker hosts, as KRaft
    /// brokers replay them from the metadata log, in case a push was lost.
    BrokerHeartbeatResponse(Vec<PartitionState>),
    /// The controller's view of the partitions a broker hosts, pushed when they change.
    PartitionChange(Vec<PartitionState>),
    AlterPartition {
        partition: Partition,
        leader_epoch: LeaderEpoch,
        partition_epoch: u32,
        new_isr: Vec<Id>,
    },
    /// The controller's answer: the partition as it now stands, and why a change was refused.
    AlterPartitionResponse {
        state: PartitionState,
        error: Option<ErrorCode>,
    },

    // Replication.
    Fetch(FetchRequest),
    FetchResponse {
        partition: Partition,
        correlation: u64,
        offset: u64,
        records: Vec<Record>,
        high_watermark: u64,
        log_end_offset: u64,
        error: Option<ErrorCode>,
    },
    OffsetsForLeaderEpoch {
        partition: Partition,
        leader_epoch: LeaderEpoch,
        requested_epoch: LeaderEpoch,
    },
    OffsetsForLeaderEpochResponse {
        partition: Partition,
        epoch: LeaderEpoch,
        end_offset: u64,
        error: Option<ErrorCode>,
    },

    // Producer.
    Metadata,
    MetadataResponse(Vec<PartitionState>),
    /// A restarted idempotent producer asks for a new producer id (KIP-98); the first
    /// incarnation's id is assigned when the model is built.
    InitProducerId,
    InitProducerIdResponse {
        producer_id: u32,
    },
    Produce {
        partition: Partition,
        request: u64,
        msg: MsgId,
        producer_seq: Option<ProducerSeq>,
        acks: Acks,
    },
    ProduceResponse {
        partition: Partition,
        request: u64,
        result: Result<u64, ErrorCode>,
    },

    // Consumer group (the controller doubles as group coordinator).
    JoinGroup,
    SyncGroup {
        generation: u32,
        partitions: Vec<Partition>,
    },
    Heartbeat {
        generation: u32,
    },
    HeartbeatResponse {
        error: Option<ErrorCode>,
    },
    OffsetFetch {
        generation: u32,
        partition: Partition,
    },
    /// The group's committed offset, `None` if it has none, with the leader epoch of the
    /// record before it (KIP-320; 0 when unknown).
    OffsetFetchResponse {
        generation: u32,
        partition: Partition,
        offset: Option<u64>,
        leader_epoch: LeaderEpoch,
    },
    OffsetCommit {
        generation: u32,
        partition: Partition,
        offset: u64,
        leader_epoch: LeaderEpoch,
    },
    /// `ListOffsets` for the latest offset: a consumer resetting to `latest` asks the leader.
    ListOffsets {
        partition: Partition,
    },
    ListOffsetsResponse {
        partition: Partition,
        offset: u64,
        error: Option<ErrorCode>,
    },
    OffsetCommitResponse {
        partition: Partition,
        offset: u64,
        error: Option<ErrorCode>,
    },
}

/// A client's view of a MetadataResponse: the leader of each partition, where there is one.
pub fn leaders(states: &[PartitionState]) -> Vec<Option<Id>> {
    states.iter().map(|p| p.leader).collect()
}

fn ids(ids: &[Id]) -> String {
    let names: Vec<String> = ids
        .iter()
        .map(|i| format!("n{}", usize::from(*i)))
        .collect();
    format!("[{}]", names.join(","))
}

fn leader(l: Option<Id>) -> String {
    l.map_or("none".into(), |i| format!("n{}", usize::from(i)))
}

impl fmt::Display for PartitionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{} leader={} epoch={} isr={}",
            self.partition,
            leader(self.leader),
            self.leader_epoch,
            ids(&self.isr)
        )
    }
}

fn err(e: &Option<ErrorCode>) -> String {
    e.map_or(String::new(), |e| format!(" error={}", e.name()))
}

impl fmt::Display for KafkaMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KafkaMsg::*;
        match self {
            Disconnected => write!(f, "connection reset"),
            BrokerRegistration { incarnation } => {
                write!(f, "BrokerRegistration incarnation={incarnation}")
            }
            BrokerHeartbeat => write!(f, "BrokerHeartbeat"),
            BrokerHeartbeatResponse(_) => write!(f, "BrokerHeartbeatResponse"),
            PartitionChange(ps) => {
                let s: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                write!(f, "PartitionChange {}", s.join("; "))
            }
            AlterPartition {
                partition,
                leader_epoch,
                new_isr,
                ..
            } => write!(
                f,
                "AlterPartition p{partition} epoch={leader_epoch} isr={}",
                ids(new_isr)
            ),
            AlterPartitionResponse { state, error } => {
                write!(f, "AlterPartitionResponse {state}{}", err(error))
            }
            Fetch(r) => write!(
                f,
                "Fetch p{} offset={} epoch={} ({:?})",
                r.partition, r.offset, r.leader_epoch, r.fetcher
            ),
            FetchResponse {
                partition,
                offset,
                records,
                high_watermark,
                error,
                ..
            } => {
                let msgs: Vec<String> = records.iter().map(|r| r.msg.to_string()).collect();
                write!(
                    f,
                    "FetchResponse p{partition} offset={offset} records=[{}] hw={high_watermark}{}",
                    msgs.join(","),
                    err(error)
                )
            }
            OffsetsForLeaderEpoch {
                partition,
                requested_epoch,
                ..
            } => write!(
                f,
                "OffsetsForLeaderEpoch p{partition} epoch={requested_epoch}"
            ),
            OffsetsForLeaderEpochResponse {
                partition,
                epoch,
                end_offset,
                error,
            } => write!(
                f,
                "OffsetsForLeaderEpochResponse p{partition} epoch={epoch} end={end_offset}{}",
                err(error)
            ),
            Metadata => write!(f, "Metadata"),
            MetadataResponse(ps) => {
                let s: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                write!(f, "MetadataResponse {}", s.join("; "))
            }
            InitProducerId => write!(f, "InitProducerId"),
            InitProducerIdResponse { producer_id } => {
                write!(f, "InitProducerIdResponse producer_id={producer_id:#x}")
            }
            Produce { partition, msg, .. } => write!(f, "Produce p{partition} {msg}"),
            ProduceResponse {
                partition, result, ..
            } => match result {
                Ok(o) => write!(f, "ProduceResponse p{partition} offset={o}"),
                Err(e) => write!(f, "ProduceResponse p{partition} error={}", e.name()),
            },
            JoinGroup => write!(f, "JoinGroup"),
            SyncGroup {
                generation,
                partitions,
            } => write!(
                f,
                "SyncGroup generation={generation} partitions={partitions:?}"
            ),
            Heartbeat { generation } => write!(f, "Heartbeat generation={generation}"),
            HeartbeatResponse { error } => write!(f, "HeartbeatResponse{}", err(error)),
            OffsetFetch { partition, .. } => write!(f, "OffsetFetch p{partition}"),
            OffsetFetchResponse {
                partition, offset, ..
            } => match offset {
                Some(offset) => write!(f, "OffsetFetchResponse p{partition} committed={offset}"),
                None => write!(f, "OffsetFetchResponse p{partition} no committed offset"),
            },
            ListOffsets { partition } => write!(f, "ListOffsets p{partition} latest"),
            ListOffsetsResponse {
                partition,
                offset,
                error,
            } => write!(f, "ListOffsetsResponse p{partition} offset={offset}{}", err(error)),
            OffsetCommit {
                partition, offset, ..
            } => write!(f, "OffsetCommit p{partition} offset={offset}"),
            OffsetCommitResponse {
                partition,
                offset,
                error,
            } => write!(
                f,
                "OffsetCommitResponse p{partition} offset={offset}{}",
                err(error)
            ),
        }
    }
}
