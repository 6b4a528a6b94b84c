//! Apache Kafka: partition replication with an in-sync replica set, a high watermark, leader
//! epochs, idempotent producers and consumer groups that commit offsets.
//!
//! # The mechanism
//!
//! A topic is split into partitions; each partition is an append-only [`CommitLog`] replicated on
//! `replication.factor` brokers. One replica is the **leader**: producers write to it and
//! consumers read from it. The others are **followers**: they send `Fetch` requests to the leader,
//! exactly like consumers, and append what they get. A fetch that finds nothing new is a long
//! poll: the leader holds it in its purgatory until records arrive or the fetcher's wait passes
//! (`replica.fetch.wait.max.ms`, `fetch.max.wait.ms`), then answers empty.
//!
//! ## The ISR and the high watermark
//!
//! The leader tracks, per follower, the offset the follower last fetched from — which is that
//! follower's log end offset (LEO). The **in-sync replica set** (ISR) holds the replicas that have
//! caught up with the leader's LEO within the last `replica.lag.time.max.ms`; a follower that
//! lags longer is removed, and one that catches up again is added back. The leader does not
//! change the ISR itself: it asks the controller with `AlterPartition` (KIP-497), which checks
//! the leader epoch and partition epoch so a stale leader cannot shrink or grow anything.
//!
//! The **high watermark** (HW) is the smallest LEO in the ISR: every record below it is on every
//! in-sync replica. Consumers only ever see records below the HW. With `acks=all` the leader
//! answers a produce request when the HW passes the record; with `acks=1` as soon as it appended
//! it; with `acks=0` the producer never waits. `min.insync.replicas` makes an `acks=all` produce
//! fail with `NOT_ENOUGH_REPLICAS` while the ISR is smaller than that.
//!
//! Followers learn the HW from fetch responses, so a follower's HW lags the leader's. That lag is
//! the root of the pre-KIP-101 data loss the model reproduces.
//!
//! ## Leader election and truncation
//!
//! A controller (KRaft's quorum, modelled as one reliable actor) tracks broker liveness through
//! heartbeats (every `broker.heartbeat.interval.ms`, fenced after `broker.session.timeout.ms`
//! without one). When a leader is fenced, or restarts, it elects the
//! first live replica of the ISR and bumps the **leader epoch**. With
//! `unclean.leader.election.enable=true` and no ISR member alive, it elects any live replica,
//! which may lack committed records.
//!
//! From 4.1 the controller keeps **Eligible Leader Replicas** (KIP-966, `controller.rs`):
//! replicas that left an ISR already below `min.insync.replicas` — while the high watermark
//! stood still, so they hold every committed record. The ISR may then empty, and a live ELR
//! member is elected cleanly where 3.9 would wait for the last ISR member; a restarted broker (a
//! new incarnation, an unclean shutdown to KRaft) leaves the ELR, and with ISR and ELR empty the
//! last known leader is elected once it is back (`PartitionChangeBuilder`, apache/kafka 1eb7644).
//!
//! A new follower must cut off any suffix of its log the new leader does not have:
//!
//! - `log.truncation=high-watermark` (before KIP-101): the follower truncates to its own HW. A
//!   follower whose HW lagged drops records that were committed; if it then becomes leader, they
//!   are gone (KIP-101's first scenario; `KafkaTruncateToHighWatermark.tla`).
//! - `log.truncation=kip-101` (KIP-101 as shipped in 0.11, before KIP-279): the follower asks
//!   the leader with `OffsetsForLeaderEpoch` where its last epoch ends; the leader answers only
//!   with the start offset of its next epoch, and the follower cuts there. After consecutive fast
//!   leader changes a follower can keep a record of an epoch the leader never had at an offset
//!   where the leader holds another: the logs diverge (KIP-279, `Kip279.tla`). No fetch fencing.
//! - `log.truncation=leader-epoch` (KIP-101, KIP-279, KIP-320; the default since Kafka 2.1): the
//!   leader answers with the largest epoch it has up to the follower's and where that ends; the
//!   follower truncates only what diverges and, when it does not have the leader's epoch, cuts to
//!   the end of its own earlier epoch and asks again until the logs match
//!   (`AbstractFetcherThread.getOffsetTruncationState`). Fetches carry the leader epoch, so stale
//!   leaders and followers are fenced (`FENCED_LEADER_EPOCH`, `UNKNOWN_LEADER_EPOCH`).
//!
//! ## Producers
//!
//! Each record is one batch. A failed or timed-out request is retried after `retry.backoff.ms`
//! while `retries` and `delivery.timeout.ms` allow. With up to
//! `max.in.flight.requests.per.connection` batches outstanding, a retried batch can land after a
//! later one (reordering), and a retry of a batch whose response was lost writes it twice. A
//! broker reads a connection's requests one at a time (`SocketServer` mutes the connection until
//! the answer is sent), so a client's answers come back in request order. The
//! idempotent producer (`enable.idempotence`, KIP-98) numbers batches per partition; the leader
//! answers a repeated sequence with the original offset and refuses a gap with
//! `OUT_OF_ORDER_SEQUENCE_NUMBER`, so retries neither duplicate nor reorder. A batch that
//! expires or runs out of retries keeps its sequence, its fate unknown: the producer waits until
//! nothing of the partition is in flight, and only then, if a gap remains, bumps its producer
//! epoch and restarts the sequence at 0; the leader fences the older epoch
//! (`INVALID_PRODUCER_EPOCH`). A gap the leader reports for the next sequence bumps the epoch at
//! once; for a batch behind the last acknowledged it is only retried (KIP-360, `producer.rs`). Kafka refuses idempotence with `acks` other than `all`, with
//! more than 5 in flight, or with `retries=0`.
//! A restarted producer (`--producer-crashes`) resends its outbox under a new producer id
//! (`InitProducerId`), which the leader cannot tell from new records (`producer.rs`).
//! A record goes to its key's partition by murmur2, or without a key to the sticky partition
//! (`BuiltInPartitioner`, KIP-480, KIP-794; `partitioner.rs`).
//!
//! ## Consumer groups
//!
//! Consumers of one group split the partitions between them; the group coordinator (here the
//! controller) reassigns partitions when a member joins or misses `session.timeout.ms` of
//! heartbeats, bumping the generation. A consumer starts from its group's committed offset.
//! Where it commits decides the guarantee: `before-processing` loses the records between the
//! commit and a crash; `after-processing` processes them again after a crash; `auto` commits what
//! was processed every `auto.commit.interval.ms`.
//!
//! ## Transactions
//!
//! With `transactional.id` (KIP-98) a producer application runs transactions: `InitProducerId`
//! with its id (the coordinator bumps the producer epoch, fencing older incarnations, and aborts
//! a transaction they left open), `AddPartitionsToTxn` before a partition's first record,
//! transactional batches, then `EndTxn` once its batches are done (`TransactionManager`). The
//! coordinator (`coordinator.rs`, in the controller; its `__transaction_state` log is reliable
//! infrastructure here) answers `EndTxn` once the decision is written and has every partition's
//! leader append a commit or abort marker (`WriteTxnMarkers`). A leader's **last stable offset**
//! is the high watermark, or the first offset of the earliest transaction not decided below it
//! (`UnifiedLog.lastStableOffset`); `isolation.level=read_committed` consumers read up to it and
//! skip the aborted transactions the fetch response lists (`CompletedFetch`), while
//! `read_uncommitted`, Kafka's default, reads aborted records too. Before KIP-890 a produce
//! request the leader reads after its transaction ended opens a transaction no coordinator knows
//! (a hanging transaction, KIP-664), which the producer's next transaction at that partition
//! commits: an aborted read. KIP-890 part 1 (3.6, `transaction.partition.verification.enable`)
//! has the leader verify with the coordinator first; part 2 (4.0, `version=4.1`) bumps the epoch
//! at every `EndTxn`, so the late record is fenced by the marker's epoch. Jepsen's Bufstream
//! analysis (2024) found aborted reads, lost writes and torn transactions in Kafka's own protocol
//! through a delayed `EndTxn` (KAFKA-17754), which part 2 closes too; it needs a request to
//! overtake an older one on a new connection, which this model's one FIFO connection per pair
//! does not produce.
//!
//! # What is simplified
//!
//! The controller quorum and the group coordinator are one reliable actor (KRaft's own Raft log is
//! not what is being tested); a restarted broker registers anew and is fenced and unfenced at
//! once, as a new broker incarnation is. One record per batch. Consumers start from the earliest
//! offset when their group has no committed offset (Jepsen's choice; Kafka's default is
//! `latest`). A restarted consumer rejoins under its old member id (static membership, KIP-345).
//! The transaction coordinator never aborts on `transaction.timeout.ms`. See `docs/kafka.md`.
//!
//! # Sources
//!
//! Kafka documentation (`ProducerConfig`, `TopicConfig`, "Replication", "Message Delivery
//! Semantics", "Guarantees": one producer's records to a partition are appended in send order);
//! OpenChaos's order checker (the acknowledged sends, a subsequence of the deliveries); KIP-98
//! (idempotent producer) and KIP-360 (its recovery by epoch bumps), read in apache/kafka's
//! `Sender.completeBatch`, `Sender.sendProducerData`, `TransactionManager.canRetry`,
//! `handleFailedBatch`, `maybeResolveSequences`, `RecordAccumulator`'s drain and
//! `ProducerAppendInfo`; KIP-101 and KIP-279 (leader-epoch truncation),
//! KIP-320 (fencing with the leader epoch), KIP-497 (AlterPartition), KIP-345 (static
//! membership); the TLA+ specifications `hachikuji/kafka-specification`
//! (`KafkaTruncateToHighWatermark.tla`, `Kip279.tla`, `Kip320.tla`) and Jack Vanlightly's
//! `kafka-tlaplus`; Jepsen's Kafka analysis and its checker's anomaly names. Transactions:
//! KIP-98, KIP-664, KIP-890; `TransactionManager`, `TransactionCoordinator`,
//! `TransactionMetadata.prepareAbortOrCommit`, `TransactionMarkerChannelManager`,
//! `AddPartitionsToTxnManager`, `ProducerStateManager`, `UnifiedLog.lastStableOffset` and
//! `collectAbortedTransactions`, the consumer's `CompletedFetch`; Jepsen, "Bufstream 0.1.0"
//! (2024).

mod broker;
mod config;
mod consumer;
mod controller;
mod coordinator;
pub mod log;
mod partitioner;
mod producer;
pub mod protocol;
mod spec;
mod view;

pub use broker::{Broker, BrokerDisk, BrokerState, Replica, ReplicaRole};
pub use config::{CommitMode, Isolation, OffsetReset, Settings, Truncation, Version};
pub use coordinator::{TxnMetadata, TxnState};
pub use consumer::{Consumer, ConsumerState};
pub use controller::{Controller, ControllerState};
pub use log::{CommitLog, LeaderEpoch, ProducerCheck, ProducerSeq, Record, TxnResult};
pub use producer::{Producer, ProducerState};
pub use protocol::{Acks, ErrorCode, KafkaMsg, Partition, PartitionState};

pub(crate) use crate::timers::{exact, retry};
use crate::AppLog;
use crate::{Config, ConfigError, Disk, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::OrderingPromise;

use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::time::Duration;

pub const NAME: &str = "kafka";

/// How long a leader waits for the controller's answer to `AlterPartition` before asking again.
pub const ALTER_PARTITION_RETRY: Duration = Duration::from_millis(2000);
/// `replica.fetch.backoff.ms`: a follower's pause after a fetch error.
pub const FETCH_BACKOFF: Duration = Duration::from_millis(1000);
/// `replica.high.watermark.checkpoint.interval.ms`: how often the HW is written to disk.
pub const HW_CHECKPOINT: Duration = Duration::from_millis(5000);
/// Records per fetch response (a stand-in for `max.partition.fetch.bytes`).
pub const MAX_FETCH_RECORDS: usize = 16;

impl Settings {
    /// The controller's id; brokers are `1..=brokers`, then producers, then consumers.
    pub fn controller(&self) -> Id {
        Id::from(0)
    }

    pub fn broker_ids(&self) -> Vec<Id> {
        (1..=self.brokers).map(Id::from).collect()
    }

    /// Replica placement: partition `p` lives on `replication.factor` consecutive brokers
    /// starting at broker `p`, the first being the preferred leader.
    pub fn replicas(&self, partition: Partition) -> Vec<Id> {
        (0..self.replication_factor)
            .map(|i| Id::from(1 + (partition as usize + i) % self.brokers))
            .collect()
    }

    /// The partition of message `seq` if it carries a key (`--keys`): the default partitioner's
    /// murmur2 of the key (`partitioner.rs`). Without a key the sticky partitioner draws one.
    pub fn partition_for_key(&self, seq: u32) -> Option<Partition> {
        self.workload
            .key(seq)
            .map(|key| partitioner::partition_for_key(key, self.partitions))
    }

    pub fn consumer_ids(&self) -> Vec<Id> {
        let first = 1 + self.brokers + self.workload.producers as usize;
        (first..first + self.workload.consumers as usize)
            .map(Id::from)
            .collect()
    }
}

/// Every node of a Kafka deployment, as one actor type so the drivers can hold them together.
#[derive(Clone, Debug)]
pub enum KafkaActor {
    Controller(Controller),
    Broker(Broker),
    Producer(Producer),
    Consumer(Consumer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KafkaState {
    Controller(ControllerState),
    Broker(BrokerState),
    Producer(ProducerState),
    Consumer(ConsumerState),
}

/// What a node keeps across a restart: a broker's logs and checkpoints, a client application's
/// record of what it observed (an application's own durable output, kept whole).
pub type KafkaDisk = Disk<BrokerDisk>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KafkaTimer {
    // Broker.
    Registration,
    BrokerHeartbeat,
    HwCheckpoint,
    FetchWait(Partition),
    FollowerLag(Partition, Id),
    ReplicaFetch(Partition),
    AlterPartitionRetry(Partition),
    /// A transactional produce waits for the coordinator's verification.
    VerifyRetry(Partition),
    // Controller, group coordinator and transaction coordinator.
    BrokerSession(Id),
    MemberSession(Id),
    /// A transaction's markers wait to be written again (by `transactional.id`).
    TxnMarkerRetry(u32),
    // Producer.
    Send,
    RequestTimeout(u64),
    DeliveryTimeout(u32),
    RetryBackoff,
    MetadataRefresh,
    /// A transactional request the coordinator answered `CONCURRENT_TRANSACTIONS`, asked again.
    TxnRetry,
    // Consumer.
    GroupHeartbeat,
    JoinRetry,
    Process,
    ConsumerFetch(Partition),
    CommitRetry(Partition),
    AutoCommit,
    /// A consumer's late start (`--consumer-delay-ms`).
    Start,
}

/// What the clients' applications draw per run (swarm testing): the producer's pace
/// (milliseconds between two sends) and the consumer's processing time per record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KafkaRandom {
    Pace(u64),
    Processing(u64),
    /// The sticky partitioner's next partition for records without a key.
    StickyPartition(Partition),
}

pub type KafkaOut = Out<KafkaActor>;

impl Actor for KafkaActor {
    type Msg = KafkaMsg;
    type Timer = KafkaTimer;
    type State = KafkaState;
    type Storage = KafkaDisk;
    type Random = KafkaRandom;

    fn on_start(&self, id: Id, storage: &Option<KafkaDisk>, o: &mut KafkaOut) -> KafkaState {
        match self {
            KafkaActor::Controller(c) => KafkaState::Controller(c.start(o)),
            KafkaActor::Broker(b) => {
                KafkaState::Broker(b.start(id, storage.as_ref().and_then(Disk::server), o))
            }
            KafkaActor::Producer(p) => {
                KafkaState::Producer(p.start(Disk::restored_app_log(storage), o))
            }
            KafkaActor::Consumer(c) => {
                KafkaState::Consumer(c.start(Disk::restored_app_log(storage), o))
            }
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<KafkaState>,
        src: Id,
        msg: KafkaMsg,
        o: &mut KafkaOut,
    ) {
        match (self, state.to_mut()) {
            (KafkaActor::Controller(c), KafkaState::Controller(s)) => c.on_msg(s, src, msg, o),
            (KafkaActor::Broker(b), KafkaState::Broker(s)) => b.on_msg(id, s, src, msg, o),
            (KafkaActor::Producer(p), KafkaState::Producer(s)) => p.on_msg(s, src, msg, o),
            (KafkaActor::Consumer(c), KafkaState::Consumer(s)) => c.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<KafkaState>,
        timer: &KafkaTimer,
        o: &mut KafkaOut,
    ) {
        match (self, state.to_mut()) {
            (KafkaActor::Controller(c), KafkaState::Controller(s)) => c.on_timeout(s, timer, o),
            (KafkaActor::Broker(b), KafkaState::Broker(s)) => b.on_timeout(id, s, timer, o),
            (KafkaActor::Producer(p), KafkaState::Producer(s)) => p.on_timeout(s, timer, o),
            (KafkaActor::Consumer(c), KafkaState::Consumer(s)) => c.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(
        &self,
        _id: Id,
        state: &mut Cow<KafkaState>,
        random: &KafkaRandom,
        o: &mut KafkaOut,
    ) {
        match (self, state.to_mut(), random) {
            (KafkaActor::Producer(p), KafkaState::Producer(s), KafkaRandom::Pace(ms)) => {
                p.on_pace(s, *ms, o)
            }
            (
                KafkaActor::Producer(p),
                KafkaState::Producer(s),
                KafkaRandom::StickyPartition(partition),
            ) => p.on_sticky_partition(s, *partition, o),
            (KafkaActor::Consumer(_), KafkaState::Consumer(s), KafkaRandom::Processing(ms)) => {
                s.processing_time = Duration::from_millis(*ms);
            }
            _ => {}
        }
    }
}

/// A Kafka cluster with its producers and one consumer group.
#[derive(Clone, Debug)]
pub struct Kafka {
    pub settings: Settings,
}

impl System for Kafka {
    type Actor = KafkaActor;
    type Storage = KafkaDisk;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "Apache Kafka: partition leaders and followers, ISR, high watermark, leader epochs, idempotent producer, consumer groups"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "defaults",
                sets: &[],
                claim: "Kafka out of the box (acks=all, idempotence, min.insync.replicas=1, no fsync)",
            },
            Scenario {
                name: "acks=1",
                sets: &["acks=1", "enable.idempotence=false"],
                claim: "at-least-once with a leader-only acknowledgement",
            },
            Scenario {
                name: "acks=0",
                sets: &["acks=0", "enable.idempotence=false"],
                claim: "fire-and-forget producer",
            },
            Scenario {
                name: "unclean election",
                sets: &["unclean.leader.election.enable=true", "min.insync.replicas=2"],
                claim: "at-least-once when an out-of-sync replica may become leader",
            },
            Scenario {
                name: "pre-KIP-101 truncation",
                sets: &["log.truncation=high-watermark", "min.insync.replicas=2"],
                claim: "at-least-once with followers truncating to their high watermark",
            },
            Scenario {
                name: "retries without idempotence",
                sets: &["enable.idempotence=false", "retries=5", "max.in.flight.requests.per.connection=5"],
                claim: "ordering within a partition, 5 requests in flight, retries on",
            },
            Scenario {
                name: "in-flight 1, no idempotence",
                sets: &["enable.idempotence=false", "max.in.flight.requests.per.connection=1"],
                claim: "the article: max.in.flight.requests.per.connection=1 keeps send order across retries",
            },
            Scenario {
                name: "commit before processing",
                sets: &["consumer.commit=before-processing", "min.insync.replicas=2"],
                claim: "at-most-once consumption",
            },
            Scenario {
                name: "auto commit",
                sets: &["consumer.commit=auto", "min.insync.replicas=2"],
                claim: "enable.auto.commit=true",
            },
            Scenario {
                name: "safe",
                sets: &["acks=all", "replication.factor=3", "min.insync.replicas=2", "unclean.leader.election.enable=false", "enable.idempotence=true", "consumer.commit=after-processing"],
                claim: "the article: Kafka is at-least-once and ordered within a partition",
            },
            Scenario {
                name: "min.insync.replicas=4, Kafka 3.6",
                sets: &["version=3.6", "min.insync.replicas=4"],
                claim: "a minimum ISR above the replication factor refuses every acks=all produce",
            },
            Scenario {
                name: "min.insync.replicas=4, Kafka 4.1",
                sets: &["version=4.1", "min.insync.replicas=4"],
                claim: "from 3.7 the minimum ISR is capped at the replication factor (KAFKA-15583)",
            },
            Scenario {
                name: "safe + fsync",
                sets: &["min.insync.replicas=2", "flush.messages=1"],
                claim: "the safe configuration with an fsync per record, against power loss",
            },
            Scenario {
                name: "transactions, read_committed",
                sets: &[
                    "min.insync.replicas=2",
                    "transactional.id=producer",
                    "isolation.level=read_committed",
                ],
                claim: "the article: Kafka has transactions (a read_committed consumer, KIP-890)",
            },
            Scenario {
                name: "transactions, read_uncommitted",
                sets: &["min.insync.replicas=2", "transactional.id=producer"],
                claim: "transactions read by a consumer at Kafka's default isolation.level",
            },
        ]
    }

    fn keys() -> Vec<Key> {
        config::keys()
    }

    fn rewind() -> Option<&'static str> {
        Some("KafkaConsumer.seek to an earlier offset of the partition")
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn effective(config: &Config) -> Config {
        config::effective(config)
    }

    fn build(config: &Config, workload: Workload) -> Self {
        Kafka {
            settings: Settings::from_config(config, workload),
        }
    }

    fn workload(&self) -> Workload {
        self.settings.workload
    }

    fn nodes(&self) -> Vec<Node<KafkaActor>> {
        let s = &self.settings;
        let mut nodes = vec![Node {
            name: "ctl".into(),
            role: Role::Infrastructure,
            actor: KafkaActor::Controller(Controller {
                settings: s.clone(),
            }),
        }];
        for b in 1..=s.brokers {
            nodes.push(Node {
                name: format!("n{b}"),
                role: Role::Server,
                actor: KafkaActor::Broker(Broker {
                    settings: s.clone(),
                }),
            });
        }
        for p in 0..s.workload.producers {
            nodes.push(Node {
                name: format!("p{p}"),
                role: Role::Producer,
                actor: KafkaActor::Producer(Producer {
                    settings: s.clone(),
                    index: p,
                }),
            });
        }
        for c in 0..s.workload.consumers {
            nodes.push(Node {
                name: format!("c{c}"),
                role: Role::Consumer,
                actor: KafkaActor::Consumer(Consumer {
                    settings: s.clone(),
                    index: c,
                }),
            });
        }
        nodes
    }

    fn app_log(storage: &KafkaDisk) -> Option<&AppLog> {
        storage.app_log()
    }

    fn is_leader(state: &KafkaState) -> bool {
        match state {
            KafkaState::Broker(b) => b
                .replicas
                .iter()
                .any(|r| matches!(r.role, ReplicaRole::Leader(_))),
            _ => false,
        }
    }

    fn elects_leaders(&self) -> bool {
        true
    }

    fn invariants() -> Vec<crate::StateInvariant<Kafka>> {
        spec::invariants()
    }

    fn show(state: &KafkaState, names: crate::Names<'_>) -> String {
        view::show(state, names)
    }

    fn reset(_peer: Id) -> Option<KafkaMsg> {
        Some(KafkaMsg::Disconnected)
    }

    fn describe(msg: &KafkaMsg) -> Option<String> {
        view::describe(msg)
    }

    fn label(msg: &KafkaMsg) -> String {
        msg.to_string()
    }

    fn notable(msg: &KafkaMsg) -> bool {
        view::notable(msg)
    }

    /// Per partition, and only for acknowledged records: a failed or unanswered send may be in
    /// the log anywhere, or not at all (`RETRIES_DOC`; OpenChaos's order checker).
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            acknowledged_only: true,
            ..OrderingPromise::default()
        }
    }

    fn fault_window(&self) -> Duration {
        // Long enough for a follower to fall out of the ISR (replica.lag.time.max.ms) and for
        // fenced brokers to return; seeds draw shorter windows too, dense with faults.
        Duration::from_secs(60)
    }

    fn drain(&self) -> Duration {
        let s = &self.settings;
        // Long enough for a fenced member to expire, a retried send to time out, and a
        // rebalanced consumer to read to the end.
        s.session_timeout
            .max(s.request_timeout)
            .max(s.broker_session_timeout)
            * 2
            + Duration::from_secs(30)
    }

    fn workload_time(&self) -> Duration {
        self.settings
            .workload
            .duration(&producer::PACES, &consumer::PROCESSING)
    }

    fn sends(&self) -> usize {
        let w = &self.settings.workload;
        w.messages as usize * w.producers as usize
    }
}
