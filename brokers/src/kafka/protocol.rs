//! The Kafka requests and responses the model exchanges, named after the real APIs.

use super::config::Isolation;
use super::log::{LeaderEpoch, ProducerSeq, Record, TxnResult};
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
    /// Eligible Leader Replicas (KIP-966): replicas that left the ISR while it was below
    /// `min.insync.replicas`, so they hold every committed record; empty without ELR.
    pub elr: Vec<Id>,
    /// The last leader, kept when the ISR became empty (`lastKnownElr` as
    /// `useLastKnownLeaderInBalancedRecovery` uses it); empty without ELR.
    pub last_known_elr: Vec<Id>,
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
    ProducerFenced,
    ConcurrentTransactions,
    InvalidTxnState,
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
            ErrorCode::ProducerFenced => "PRODUCER_FENCED",
            ErrorCode::ConcurrentTransactions => "CONCURRENT_TRANSACTIONS",
            ErrorCode::InvalidTxnState => "INVALID_TXN_STATE",
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
    /// A consumer's `isolation.level` (KIP-98); followers read everything.
    pub isolation: Isolation,
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
        /// For a `read_committed` fetch: the aborted transactions among the records, as
        /// producer id and first offset (`FetchResponse.abortedTransactions`).
        aborted: Vec<(u32, u64)>,
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
    /// incarnation's id is assigned when the model is built. A transactional producer asks with
    /// its `transactional.id` (here its producer application's index) at every start, and with
    /// its current id and epoch to bump the epoch after a failed transaction (KIP-360).
    InitProducerId {
        transactional_id: Option<u32>,
        producer: Option<(u32, u16)>,
    },
    InitProducerIdResponse {
        producer_id: u32,
        epoch: u16,
        error: Option<ErrorCode>,
    },
    Produce {
        partition: Partition,
        request: u64,
        msg: MsgId,
        producer_seq: Option<ProducerSeq>,
        /// A transactional batch carries its `transactional.id`.
        transactional_id: Option<u32>,
        acks: Acks,
    },
    ProduceResponse {
        partition: Partition,
        request: u64,
        result: Result<u64, ErrorCode>,
    },

    // Transactions (the controller doubles as transaction coordinator).
    /// A partition joins the producer's transaction; with `verify_only` a leader asks whether it
    /// already has (KIP-890 part 1), and the answer goes back to the leader.
    AddPartitionsToTxn {
        transactional_id: u32,
        producer_id: u32,
        epoch: u16,
        partition: Partition,
        verify_only: bool,
    },
    AddPartitionsToTxnResponse {
        transactional_id: u32,
        partition: Partition,
        verify_only: bool,
        error: Option<ErrorCode>,
    },
    EndTxn {
        transactional_id: u32,
        producer_id: u32,
        epoch: u16,
        result: TxnResult,
    },
    /// The coordinator's answer once the decision is in its log (`PrepareCommit` or
    /// `PrepareAbort`), before the markers are written; with KIP-890 part 2 it carries the
    /// bumped epoch.
    EndTxnResponse {
        epoch: u16,
        error: Option<ErrorCode>,
    },
    /// The coordinator has the partition's leader append a transaction marker. `round` names
    /// the transaction's end at the coordinator, so a stale answer is ignored.
    WriteTxnMarkers {
        transactional_id: u32,
        producer_id: u32,
        epoch: u16,
        partition: Partition,
        result: TxnResult,
        round: u64,
    },
    WriteTxnMarkersResponse {
        transactional_id: u32,
        partition: Partition,
        round: u64,
        error: Option<ErrorCode>,
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
        isolation: Isolation,
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
        )?;
        if !self.elr.is_empty() {
            write!(f, " elr={}", ids(&self.elr))?;
        }
        Ok(())
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
                let msgs: Vec<String> = records
                    .iter()
                    .map(|r| match r.control {
                        Some(result) => format!("{result:?}({})", r.msg.producer),
                        None => r.msg.to_string(),
                    })
                    .collect();
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
            InitProducerId {
                transactional_id, ..
            } => match transactional_id {
                Some(t) => write!(f, "InitProducerId transactional.id=p{t}"),
                None => write!(f, "InitProducerId"),
            },
            InitProducerIdResponse {
                producer_id,
                epoch,
                error,
            } => write!(
                f,
                "InitProducerIdResponse producer_id={producer_id:#x} epoch={epoch}{}",
                err(error)
            ),
            Produce {
                partition,
                msg,
                transactional_id,
                ..
            } => {
                let txn = if transactional_id.is_some() {
                    " (transactional)"
                } else {
                    ""
                };
                write!(f, "Produce p{partition} {msg}{txn}")
            }
            AddPartitionsToTxn {
                partition,
                epoch,
                verify_only,
                ..
            } => {
                let verify = if *verify_only { " verify" } else { "" };
                write!(f, "AddPartitionsToTxn p{partition} epoch={epoch}{verify}")
            }
            AddPartitionsToTxnResponse {
                partition, error, ..
            } => write!(f, "AddPartitionsToTxnResponse p{partition}{}", err(error)),
            EndTxn { epoch, result, .. } => write!(f, "EndTxn {result:?} epoch={epoch}"),
            EndTxnResponse { epoch, error } => {
                write!(f, "EndTxnResponse epoch={epoch}{}", err(error))
            }
            WriteTxnMarkers {
                partition,
                epoch,
                result,
                ..
            } => write!(f, "WriteTxnMarkers p{partition} {result:?} epoch={epoch}"),
            WriteTxnMarkersResponse {
                partition, error, ..
            } => write!(f, "WriteTxnMarkersResponse p{partition}{}", err(error)),
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
            ListOffsets { partition, .. } => write!(f, "ListOffsets p{partition} latest"),
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
