//! Kafka's configuration: its keys with their defaults and allowed values, the combinations
//! Kafka refuses, the typed [`Settings`], and the values Kafka actually runs with.

use super::Acks;
use crate::config::Allowed::{Bool, Int, OneOf};
use crate::{Config, ConfigError, Key, Workload};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `log.truncation`: how a follower finds where its log diverges from the new leader's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Truncation {
    /// KIP-101 refined by KIP-279 and KIP-320 (Kafka 2.1 on).
    LeaderEpoch,
    /// KIP-101 as it shipped in 0.11: the leader answers only an offset, no epoch.
    Kip101,
    /// Before KIP-101.
    HighWatermark,
}

/// `version`: the Kafka release whose broker behaviour the model follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V3_6,
    V3_9,
    V4_1,
}

impl Version {
    /// KAFKA-15583 (3.7): the high watermark stays put while the ISR is below the minimum, and
    /// the minimum is capped at the replication factor.
    pub fn strict_min_isr(self) -> bool {
        self >= Version::V3_9
    }

    /// KIP-890 part 2, transaction version 2 (4.0): the coordinator bumps the producer epoch at
    /// every `EndTxn` and writes the markers under the new epoch, so a record of an ended
    /// transaction is fenced at every partition it reaches late.
    pub fn epoch_bump_per_transaction(self) -> bool {
        self >= Version::V4_1
    }
}

/// `auto.offset.reset`: where a consumer starts when its group has no committed offset, or its
/// position is out of the log's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

/// `isolation.level`: what a consumer may read of transactional records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Isolation {
    /// Everything below the high watermark, aborted records included (Kafka's default).
    ReadUncommitted,
    /// Only below the last stable offset, without the records of aborted transactions.
    ReadCommitted,
}

/// `consumer.commit`: where the consumer commits its offset relative to processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommitMode {
    AfterProcessing,
    BeforeProcessing,
    Auto,
}

/// The validated configuration, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    pub version: Version,
    pub brokers: usize,
    pub partitions: u32,
    pub replication_factor: usize,
    pub min_insync_replicas: usize,
    pub unclean_leader_election: bool,
    pub replica_lag_time_max: Duration,
    /// `replica.fetch.wait.max.ms`: how long a leader holds a follower's fetch that finds nothing.
    pub replica_fetch_wait: Duration,
    pub flush_messages: Option<u64>,
    pub truncation: Truncation,
    pub broker_session_timeout: Duration,
    /// KRaft `broker.heartbeat.interval.ms`: a broker's heartbeat period to the controller.
    pub broker_heartbeat_interval: Duration,
    pub acks: Acks,
    pub retries: u64,
    pub idempotence: bool,
    pub max_in_flight: usize,
    /// `transactional.id` set: each producer application uses its own name as its id.
    pub transactional: bool,
    /// The application's transactions: records per transaction, and every how many
    /// transactions it aborts one (0: never).
    pub transaction_records: u32,
    pub transaction_abort_every: u32,
    /// `transaction.partition.verification.enable` (KIP-890 part 1, 3.6): a leader asks the
    /// coordinator before it lets a transactional producer open a transaction at a partition.
    pub txn_verification: bool,
    pub isolation: Isolation,
    pub delivery_timeout: Duration,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub commit: CommitMode,
    pub offset_reset: OffsetReset,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// `fetch.max.wait.ms`: how long a leader holds a consumer's fetch that finds nothing.
    pub fetch_max_wait: Duration,
    pub workload: Workload,
}

/// Kafka's `Long.MAX_VALUE` default for `flush.messages`: never force an fsync.
const NEVER: u64 = i64::MAX as u64;
const INT_MAX: u64 = i32::MAX as u64;

fn ms(config: &Config, key: &str) -> Duration {
    Duration::from_millis(config.int(key))
}

impl Settings {
    /// The ISR size an `acks=all` produce needs, and from 3.7 the high watermark too:
    /// `Partition.effectiveMinIsr`, min(`min.insync.replicas`, replication factor), from
    /// KAFKA-15583; before it `min.insync.replicas` as set, so a minimum above the replication
    /// factor refuses every `acks=all` produce.
    /// Eligible Leader Replicas (KIP-966): metadata version 4.0-IV1 supports them and 4.1 turns
    /// them on for new clusters (`eligible.leader.replicas.version=1`). A KRaft feature, so only
    /// with KRaft's truncation (`log.truncation=leader-epoch`).
    pub fn eligible_leader_replicas(&self) -> bool {
        self.version >= Version::V4_1 && self.truncation == Truncation::LeaderEpoch
    }

    pub fn effective_min_isr(&self) -> usize {
        if self.version.strict_min_isr() {
            self.min_insync_replicas.min(self.replication_factor)
        } else {
            self.min_insync_replicas
        }
    }

    pub fn from_config(config: &Config, workload: Workload) -> Settings {
        let acks = match config.str("acks") {
            "0" => Acks::Zero,
            "1" => Acks::One,
            _ => Acks::All,
        };
        let max_in_flight = config.int("max.in.flight.requests.per.connection") as usize;
        let retries = config.int("retries");
        // Kafka 3.x: idempotence is on by default, but silently off when the user set a
        // conflicting acks/in-flight/retries without asking for idempotence explicitly.
        let transactional = config.str("transactional.id") != "null";
        let idempotence = config.bool("enable.idempotence")
            && (config.is_set("enable.idempotence")
                || (acks == Acks::All && max_in_flight <= 5 && retries > 0));
        let flush = config.int("flush.messages");
        Settings {
            version: match config.str("version") {
                "3.6" => Version::V3_6,
                "3.9" => Version::V3_9,
                _ => Version::V4_1,
            },
            brokers: config.int("nodes") as usize,
            partitions: config.int("partitions") as u32,
            replication_factor: config.int("replication.factor") as usize,
            min_insync_replicas: config.int("min.insync.replicas") as usize,
            unclean_leader_election: config.bool("unclean.leader.election.enable"),
            replica_lag_time_max: ms(config, "replica.lag.time.max.ms"),
            replica_fetch_wait: ms(config, "replica.fetch.wait.max.ms"),
            flush_messages: (flush != NEVER).then_some(flush),
            truncation: match config.str("log.truncation") {
                "high-watermark" => Truncation::HighWatermark,
                "kip-101" => Truncation::Kip101,
                _ => Truncation::LeaderEpoch,
            },
            broker_session_timeout: ms(config, "broker.session.timeout.ms"),
            broker_heartbeat_interval: ms(config, "broker.heartbeat.interval.ms"),
            acks,
            retries,
            idempotence,
            max_in_flight,
            transactional,
            transaction_records: config.int("transaction.records") as u32,
            transaction_abort_every: config.int("transaction.abort.every") as u32,
            txn_verification: config.bool("transaction.partition.verification.enable"),
            isolation: match config.str("isolation.level") {
                "read_committed" => Isolation::ReadCommitted,
                _ => Isolation::ReadUncommitted,
            },
            delivery_timeout: ms(config, "delivery.timeout.ms")
                .max(ms(config, "request.timeout.ms")),
            request_timeout: ms(config, "request.timeout.ms"),
            retry_backoff: ms(config, "retry.backoff.ms"),
            commit: match config.str("consumer.commit") {
                "before-processing" => CommitMode::BeforeProcessing,
                "auto" => CommitMode::Auto,
                _ => CommitMode::AfterProcessing,
            },
            offset_reset: match config.str("auto.offset.reset") {
                "latest" => OffsetReset::Latest,
                _ => OffsetReset::Earliest,
            },
            auto_commit_interval: ms(config, "auto.commit.interval.ms"),
            session_timeout: ms(config, "session.timeout.ms"),
            heartbeat_interval: ms(config, "heartbeat.interval.ms"),
            fetch_max_wait: ms(config, "fetch.max.wait.ms"),
            workload,
        }
    }
}

/// The configuration keys, with Kafka's names, defaults and allowed values.
pub(super) fn keys() -> Vec<Key> {
    vec![
        Key::new(
            "version",
            "4.1",
            OneOf(&["3.6", "3.9", "4.1"]),
            "the Kafka release modelled (3.7 made the minimum ISR strict, KAFKA-15583)",
        ),
        Key::new(
            "nodes",
            "3",
            Int { min: 1, max: 9 },
            "brokers in the cluster",
        ),
        Key::new(
            "partitions",
            "1",
            Int { min: 1, max: 8 },
            "partitions of the topic",
        ),
        Key::new(
            "replication.factor",
            "3",
            Int { min: 1, max: 9 },
            "replicas per partition",
        ),
        Key::new(
            "min.insync.replicas",
            "1",
            Int { min: 1, max: 9 },
            "ISR size an acks=all produce needs",
        ),
        Key::new(
            "unclean.leader.election.enable",
            "false",
            Bool,
            "elect an out-of-sync replica when no ISR member is alive",
        ),
        Key::new(
            "replica.lag.time.max.ms",
            "30000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "how long a follower may lag before it leaves the ISR",
        ),
        Key::new(
            "replica.fetch.wait.max.ms",
            "500",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "how long a leader holds a follower's fetch that finds no new records",
        ),
        Key::new(
            "flush.messages",
            "9223372036854775807",
            Int { min: 1, max: NEVER },
            "fsync after this many records (default: never; rely on the page cache)",
        ),
        Key::new(
            "log.truncation",
            "leader-epoch",
            OneOf(&["leader-epoch", "kip-101", "high-watermark"]),
            "how followers truncate on leader change (KIP-101/279/320, KIP-101 alone, or before)",
        ),
        Key::new(
            "broker.session.timeout.ms",
            "9000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "how long the controller waits for a broker heartbeat before fencing it",
        ),
        Key::new(
            "broker.heartbeat.interval.ms",
            "2000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "a broker's heartbeat period to the controller",
        ),
        Key::new(
            "acks",
            "all",
            OneOf(&["0", "1", "all", "-1"]),
            "replicas that must have a record before the producer is answered",
        ),
        Key::new(
            "retries",
            "2147483647",
            Int {
                min: 0,
                max: INT_MAX,
            },
            "producer retries of a failed batch",
        ),
        Key::new(
            "enable.idempotence",
            "true",
            Bool,
            "producer ids and sequence numbers: no duplicates or reordering from retries",
        ),
        Key::new(
            "max.in.flight.requests.per.connection",
            "5",
            Int { min: 1, max: 100 },
            "unacknowledged batches per connection",
        ),
        Key::new(
            "transactional.id",
            "null",
            OneOf(&["null", "producer"]),
            "null: no transactions; producer: each producer application takes its name (p0, p1, ...) as its transactional.id, kept across restarts",
        ),
        Key::new(
            "transaction.records",
            "4",
            Int { min: 1, max: 100 },
            "the application's records per transaction (transactional.id=producer)",
        ),
        Key::new(
            "transaction.abort.every",
            "5",
            Int { min: 0, max: 1000 },
            "the application aborts every Nth transaction (0: never)",
        ),
        Key::new(
            "transaction.partition.verification.enable",
            "true",
            Bool,
            "a leader verifies with the coordinator before a producer opens a transaction at it (KIP-890 part 1, 3.6)",
        ),
        Key::new(
            "isolation.level",
            "read_uncommitted",
            OneOf(&["read_uncommitted", "read_committed"]),
            "what consumers read: everything below the high watermark, or committed records below the last stable offset",
        ),
        Key::new(
            "delivery.timeout.ms",
            "120000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "time a send may take, retries included, before it fails",
        ),
        Key::new(
            "request.timeout.ms",
            "30000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "time a request waits for its response",
        ),
        Key::new(
            "retry.backoff.ms",
            "100",
            Int {
                min: 0,
                max: INT_MAX,
            },
            "pause before a retry",
        ),
        Key::new(
            "consumer.commit",
            "after-processing",
            OneOf(&["after-processing", "before-processing", "auto"]),
            "where the consumer commits offsets",
        ),
        Key::new(
            "auto.offset.reset",
            "earliest",
            OneOf(&["earliest", "latest"]),
            "where a group without a committed offset starts (Kafka's default is latest; see docs/kafka.md)",
        ),
        Key::new(
            "auto.commit.interval.ms",
            "5000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "auto-commit period (consumer.commit=auto)",
        ),
        Key::new(
            "session.timeout.ms",
            "45000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "how long the coordinator waits for a consumer heartbeat",
        ),
        Key::new(
            "heartbeat.interval.ms",
            "3000",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "consumer heartbeat period",
        ),
        Key::new(
            "fetch.max.wait.ms",
            "500",
            Int {
                min: 1,
                max: INT_MAX,
            },
            "how long a leader holds a consumer's fetch that finds no new records",
        ),
    ]
}

/// Refuses the combinations Kafka refuses, after each key was validated on its own.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let nodes = config.int("nodes");
    let rf = config.int("replication.factor");
    if rf > nodes {
        return Err(ConfigError::new(
            "replication.factor",
            format!("replication.factor {rf} is larger than the {nodes} available brokers (nodes) (INVALID_REPLICATION_FACTOR)"),
        ));
    }
    let transactional = config.str("transactional.id") != "null";
    if transactional && !Settings::from_config(config, Workload::default()).idempotence {
        return Err(ConfigError::new(
            "transactional.id",
            "Cannot set a transactional.id without also enabling idempotence (ProducerConfig): enable.idempotence=false, or acks, max.in.flight.requests.per.connection or retries turned it off",
        ));
    }
    if config.is_set("enable.idempotence") && config.bool("enable.idempotence") {
        let acks = config.str("acks");
        if acks != "all" && acks != "-1" {
            return Err(ConfigError::new(
                "acks",
                format!("acks={acks} conflicts with enable.idempotence=true: Kafka requires acks=all for the idempotent producer (allowed with idempotence: all, -1)"),
            ));
        }
        let in_flight = config.int("max.in.flight.requests.per.connection");
        if in_flight > 5 {
            return Err(ConfigError::new(
                "max.in.flight.requests.per.connection",
                format!("max.in.flight.requests.per.connection={in_flight} conflicts with enable.idempotence=true: Kafka requires at most 5 (allowed with idempotence: 1 to 5)"),
            ));
        }
        if config.int("retries") == 0 {
            return Err(ConfigError::new(
                "retries",
                "retries=0 conflicts with enable.idempotence=true: Kafka requires retries > 0 for the idempotent producer",
            ));
        }
    }
    let delivery = config.int("delivery.timeout.ms");
    let request = config.int("request.timeout.ms");
    // Kafka rejects the pair only when the user set delivery.timeout.ms; otherwise it raises
    // it to request.timeout.ms with a warning.
    if delivery < request && config.is_set("delivery.timeout.ms") {
        return Err(ConfigError::new(
            "delivery.timeout.ms",
            format!("delivery.timeout.ms={delivery} must be at least linger.ms + request.timeout.ms ({request})"),
        ));
    }
    // KafkaConfig's startup checks (`require`): the wait must not exceed the lag allowed "to
    // prevent frequent changes in ISR", nor the follower's socket timeout, which the model's
    // followers take from request.timeout.ms (replica.socket.timeout.ms has the same 30 s
    // default and is not a key here).
    let fetch_wait = config.int("replica.fetch.wait.max.ms");
    let lag = config.int("replica.lag.time.max.ms");
    if fetch_wait > lag {
        return Err(ConfigError::new(
            "replica.fetch.wait.max.ms",
            format!("replica.fetch.wait.max.ms={fetch_wait} should always be less than or equal to replica.lag.time.max.ms={lag}"),
        ));
    }
    let socket = config.int("request.timeout.ms");
    if fetch_wait > socket {
        return Err(ConfigError::new(
            "replica.fetch.wait.max.ms",
            format!("replica.fetch.wait.max.ms={fetch_wait} exceeds the followers' socket timeout, request.timeout.ms={socket} here (replica.socket.timeout.ms in Kafka)"),
        ));
    }
    let heartbeat = config.int("heartbeat.interval.ms");
    let session = config.int("session.timeout.ms");
    if heartbeat >= session {
        return Err(ConfigError::new(
            "heartbeat.interval.ms",
            format!("heartbeat.interval.ms={heartbeat} must be lower than session.timeout.ms={session}"),
        ));
    }
    Ok(())
}

/// The values Kafka actually runs with: idempotence silently off, `delivery.timeout.ms` raised
/// to `request.timeout.ms`.
pub(super) fn effective(config: &Config) -> Config {
    let s = Settings::from_config(config, Workload::default());
    config
        .clone()
        .adjusted("enable.idempotence", s.idempotence.to_string())
        .adjusted(
            "delivery.timeout.ms",
            (s.delivery_timeout.as_millis() as u64).to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(sets: &[&str]) -> Result<(), ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        validate(&Config::parse("kafka", &keys(), &sets)?)
    }

    /// KafkaConfig has no `require` on the broker heartbeat against the session: Kafka starts
    /// with any pair (since KAFKA-19432 it logs an ERROR when the heartbeat is above half the
    /// session), its controller then fences the broker between heartbeats. The model runs what
    /// Kafka runs.
    #[test]
    fn a_broker_heartbeat_longer_than_the_session_is_accepted_as_kafka_accepts_it() {
        assert!(validated(&["broker.heartbeat.interval.ms=4501"]).is_ok());
        assert!(validated(&[
            "broker.session.timeout.ms=1000",
            "broker.heartbeat.interval.ms=2000",
        ])
        .is_ok());
    }

    /// The consumer's `Heartbeat` refuses a heartbeat not lower than the session timeout.
    #[test]
    fn a_consumer_heartbeat_must_be_shorter_than_its_session() {
        assert!(validated(&["heartbeat.interval.ms=44999"]).is_ok());
        let e = validated(&["heartbeat.interval.ms=45000"]).unwrap_err();
        assert_eq!(e.key, "heartbeat.interval.ms");
        assert!(
            e.message.contains("heartbeat.interval.ms=45000")
                && e.message.contains("session.timeout.ms=45000"),
            "{e}"
        );
    }
}
