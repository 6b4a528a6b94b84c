//! RocketMQ's configuration: broker (`BrokerConfig`, `MessageStoreConfig`), producer
//! (`DefaultMQProducer`) and push consumer (`DefaultMQPushConsumer`) keys with RocketMQ's own
//! names and defaults, the combinations RocketMQ refuses at startup, and the typed [`Settings`].

use crate::config::Allowed::{Bool, Int, OneOf};
use crate::{Config, ConfigError, Key, Workload};
use std::time::Duration;

const INT_MAX: u64 = i32::MAX as u64;

/// `version`: which release's semantics the broker has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// 4.9.x: SYNC_MASTER waits for a slave (`CommitLog.submitReplicaRequest`), consumers see
    /// the CommitLog's end.
    V4_9,
    /// 5.3.x: SYNC_MASTER waits for `inSyncReplicas` (`CommitLog.handleHA`), and with
    /// SYNC_FLUSH consumers see only what was flushed (`CommitLog.getConfirmOffset`).
    V5_3,
}

/// `brokerRole` of each group's master (brokerId 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlushDiskType {
    AsyncFlush,
    SyncFlush,
}

/// `producer.selector`: how a send picks its MessageQueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `selectOneMessageQueue`: round robin over the route's queues, a retry avoiding the broker
    /// group of the attempt before.
    RoundRobin,
    /// A `MessageQueueSelector`: `hash(key) % queues.size()`, one attempt (`sendSelectImpl`).
    Hash,
}

/// `producer.accept`: which `SendResult` the application counts as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accept {
    SendOk,
    Any,
}

/// `consumer.listener`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Listener {
    /// `MessageListenerConcurrently`: a pool of consume threads.
    Concurrently,
    /// `MessageListenerOrderly`: one queue at a time, under the broker's queue lock.
    Orderly,
}

/// `messageModel`: who gets a message of the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageModel {
    /// Each message to one consumer of the group; the queues shared out by rebalancing, offsets
    /// on the broker (`RemoteBrokerOffsetStore`).
    Clustering,
    /// Each message to every consumer of the group; each consumer takes every queue, offsets in
    /// a local file (`LocalFileOffsetStore`).
    Broadcasting,
}

/// `consumer.reconsume`: when the application's handler returns RECONSUME_LATER.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reconsume {
    Never,
    /// Every tenth message, on its first attempt.
    EveryTenth,
    /// Every tenth message, on every attempt: a poison message.
    PoisonTenth,
}

/// `transaction`: whether producers are `TransactionMQProducer`s, and what their
/// application's local transaction (`executeLocalTransaction`) returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transaction {
    /// Plain sends (`DefaultMQProducer.send`).
    None,
    /// `sendMessageInTransaction`, every local transaction committed.
    Commit,
    /// `sendMessageInTransaction`, every fifth local transaction rolled back.
    RollbackSome,
}

/// The validated configuration, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    pub version: Version,
    pub groups: u32,
    pub slaves: u32,
    pub queues: u32,
    pub role: BrokerRole,
    pub flush: FlushDiskType,
    pub flush_interval: Duration,
    pub flush_least_pages: u64,
    pub flush_thorough_interval: Duration,
    pub sync_flush_timeout: Duration,
    pub slave_timeout: Duration,
    /// 5.x: acknowledgements (the master's own included) a SYNC_MASTER put waits for.
    pub in_sync_replicas: u32,
    pub retry_times: u32,
    pub send_timeout: Duration,
    pub retry_another_broker: bool,
    pub selector: Selector,
    pub accept: Accept,
    pub model: MessageModel,
    /// `consumeFromWhere` is CONSUME_FROM_FIRST_OFFSET: a queue without an offset starts at 0,
    /// not at the broker's max offset.
    pub from_first: bool,
    pub listener: Listener,
    pub consume_threads: u32,
    pub persist_offset_interval: Duration,
    pub reconsume: Reconsume,
    pub max_reconsume_times: u32,
    /// `messageDelayLevel`'s delays are divided by this.
    pub delay_divisor: u32,
    pub transaction: Transaction,
    /// `transactionCheckInterval`: between two rounds of `TransactionalMessageCheckService`.
    pub check_interval: Duration,
    /// `transactionTimeOut`: how old a half message must be before it is checked back.
    pub transaction_timeout: Duration,
    /// `transactionCheckMax`: check-backs before a half message is discarded.
    pub check_max: u32,
    /// `enableDLegerCommitLog`: each broker group is one DLedger (Raft) group.
    pub dledger: bool,
    /// `enableControllerMode` (5.x): the controller elects each group's master from its
    /// SyncStateSet.
    pub controller: bool,
    /// `allAckInSyncStateSet`: a SYNC_MASTER put waits for every member of the SyncStateSet.
    pub all_ack: bool,
    /// `minInSyncReplicas`: a SyncStateSet smaller than this refuses puts.
    pub min_in_sync_replicas: u32,
    /// `haMaxTimeSlaveNotCatchup`: a slave not caught up this long leaves the SyncStateSet.
    pub ha_max_time_not_catchup: Duration,
    /// `enableElectUncleanMaster` (the controller's): a master may be elected outside the
    /// SyncStateSet.
    pub unclean: bool,
    /// `transientStorePoolEnable`: puts go to an off-heap buffer that `CommitRealTimeService`
    /// commits to the page cache.
    pub transient_pool: bool,
    /// `commitIntervalCommitLog`.
    pub commit_interval: Duration,
    /// `commitCommitLogLeastPages`: pages a put's wake-up of the commit service needs.
    pub commit_least_pages: u64,
    pub workload: Workload,
}

fn ms(config: &Config, key: &str) -> Duration {
    Duration::from_millis(config.int(key))
}

impl Settings {
    pub fn from_config(config: &Config, workload: Workload) -> Settings {
        Settings {
            version: match config.str("version") {
                "4.9" => Version::V4_9,
                _ => Version::V5_3,
            },
            groups: config.int("brokerGroups") as u32,
            slaves: config.int("slavesPerGroup") as u32,
            queues: config.int("defaultTopicQueueNums") as u32,
            role: match config.str("brokerRole") {
                "SYNC_MASTER" => BrokerRole::SyncMaster,
                _ => BrokerRole::AsyncMaster,
            },
            flush: match config.str("flushDiskType") {
                "SYNC_FLUSH" => FlushDiskType::SyncFlush,
                _ => FlushDiskType::AsyncFlush,
            },
            flush_interval: ms(config, "flushIntervalCommitLog"),
            flush_least_pages: config.int("flushCommitLogLeastPages"),
            flush_thorough_interval: ms(config, "flushCommitLogThoroughInterval"),
            sync_flush_timeout: ms(config, "syncFlushTimeout"),
            slave_timeout: ms(config, "slaveTimeout"),
            in_sync_replicas: config.int("inSyncReplicas") as u32,
            retry_times: config.int("retryTimesWhenSendFailed") as u32,
            send_timeout: ms(config, "sendMsgTimeout"),
            retry_another_broker: config.bool("retryAnotherBrokerWhenNotStoreOK"),
            selector: match config.str("producer.selector") {
                "hash" => Selector::Hash,
                _ => Selector::RoundRobin,
            },
            accept: match config.str("producer.accept") {
                "any" => Accept::Any,
                _ => Accept::SendOk,
            },
            model: match config.str("messageModel") {
                "BROADCASTING" => MessageModel::Broadcasting,
                _ => MessageModel::Clustering,
            },
            from_first: config.str("consumeFromWhere") == "CONSUME_FROM_FIRST_OFFSET",
            listener: match config.str("consumer.listener") {
                "orderly" => Listener::Orderly,
                _ => Listener::Concurrently,
            },
            consume_threads: config.int("consumeThreadMax") as u32,
            persist_offset_interval: ms(config, "persistConsumerOffsetInterval"),
            reconsume: match config.str("consumer.reconsume") {
                "every-tenth" => Reconsume::EveryTenth,
                "poison-tenth" => Reconsume::PoisonTenth,
                _ => Reconsume::Never,
            },
            max_reconsume_times: config.int("maxReconsumeTimes") as u32,
            delay_divisor: config.int("messageDelayLevel.divisor") as u32,
            transaction: match config.str("transaction") {
                "commit" => Transaction::Commit,
                "rollback-some" => Transaction::RollbackSome,
                _ => Transaction::None,
            },
            check_interval: ms(config, "transactionCheckInterval"),
            transaction_timeout: ms(config, "transactionTimeOut"),
            check_max: config.int("transactionCheckMax") as u32,
            dledger: config.bool("enableDLegerCommitLog"),
            controller: config.bool("enableControllerMode"),
            all_ack: config.bool("allAckInSyncStateSet"),
            min_in_sync_replicas: config.int("minInSyncReplicas") as u32,
            ha_max_time_not_catchup: ms(config, "haMaxTimeSlaveNotCatchup"),
            unclean: config.bool("enableElectUncleanMaster"),
            transient_pool: config.bool("transientStorePoolEnable"),
            commit_interval: ms(config, "commitIntervalCommitLog"),
            commit_least_pages: config.int("commitCommitLogLeastPages"),
            workload,
        }
    }
}

/// The configuration keys, with RocketMQ's names, defaults and allowed values.
pub(super) fn keys() -> Vec<Key> {
    vec![
        Key::new(
            "version",
            "5.3",
            OneOf(&["4.9", "5.3"]),
            "the release whose semantics the brokers have (SYNC_MASTER, the dispatch bound)",
        ),
        Key::new(
            "brokerGroups",
            "2",
            Int { min: 1, max: 3 },
            "broker groups (brokerName), each a master and its slaves, each with the topic's queues",
        ),
        Key::new(
            "slavesPerGroup",
            "1",
            Int { min: 0, max: 2 },
            "slaves (brokerId > 0) per broker group",
        ),
        Key::new(
            "defaultTopicQueueNums",
            "4",
            Int { min: 1, max: 8 },
            "queues of the topic on each broker group",
        ),
        Key::new(
            "brokerRole",
            "ASYNC_MASTER",
            OneOf(&["ASYNC_MASTER", "SYNC_MASTER", "SLAVE"]),
            "role of each group's master (brokerId 0); its slaves are SLAVE",
        ),
        Key::new(
            "enableDLegerCommitLog",
            "false",
            Bool,
            "DLedger: each broker group's 1 + slavesPerGroup brokers are one Raft group (dLegerGroup = brokerName, dLegerPeers n0..; dLegerSelfId by brokerId); the elected leader is the master, a put answers once a majority appended it (before any fsync: DLedger flushes every 10 ms), consumers read up to the committed index; brokerRole, flushDiskType and inSyncReplicas do not apply",
        ),
        Key::new(
            "enableControllerMode",
            "false",
            Bool,
            "5.x controller mode: a controller (one process here, DLedger-replicated in deployments) keeps each group's SyncStateSet and master epoch and elects a new master from the SyncStateSet when the master is lost; the master is SYNC_MASTER, its slaves truncate to the epoch boundary when they reconnect; brokerRole does not apply",
        ),
        Key::new(
            "allAckInSyncStateSet",
            "false",
            Bool,
            "controller mode: a put waits for every member of the SyncStateSet (inSyncReplicas is then ignored), and consumers see only what all of them have",
        ),
        Key::new(
            "minInSyncReplicas",
            "1",
            Int { min: 1, max: 3 },
            "controller mode: a SyncStateSet smaller than this refuses puts (IN_SYNC_REPLICAS_NOT_ENOUGH)",
        ),
        Key::new(
            "haMaxTimeSlaveNotCatchup",
            "15000",
            Int { min: 1, max: INT_MAX },
            "controller mode: ms a slave may lag before the master removes it from the SyncStateSet",
        ),
        Key::new(
            "enableElectUncleanMaster",
            "false",
            Bool,
            "controller mode (the controller's ControllerConfig): with no live member of the SyncStateSet, elect any live replica",
        ),
        Key::new(
            "transientStorePoolEnable",
            "false",
            Bool,
            "the master writes puts to an off-heap buffer that CommitRealTimeService commits to the page cache: what is not committed is lost even on a process crash, and is neither dispatched nor replicated (4.9: only with ASYNC_FLUSH; slaves never use it)",
        ),
        Key::new(
            "commitIntervalCommitLog",
            "200",
            Int { min: 1, max: INT_MAX },
            "transientStorePoolEnable: ms between two commits of the buffer to the page cache",
        ),
        Key::new(
            "commitCommitLogLeastPages",
            "4",
            Int { min: 0, max: 1024 },
            "transientStorePoolEnable: uncommitted pages (here: records) with which a put's wake-up commits at once",
        ),
        Key::new(
            "flushDiskType",
            "ASYNC_FLUSH",
            OneOf(&["ASYNC_FLUSH", "SYNC_FLUSH"]),
            "ASYNC_FLUSH: a background flush; SYNC_FLUSH: group commit before the put returns",
        ),
        Key::new(
            "flushIntervalCommitLog",
            "500",
            Int { min: 1, max: INT_MAX },
            "ASYNC_FLUSH: ms between two flush attempts",
        ),
        Key::new(
            "flushCommitLogLeastPages",
            "4",
            Int { min: 0, max: 1024 },
            "ASYNC_FLUSH: dirty pages (here: records) a flush attempt needs",
        ),
        Key::new(
            "flushCommitLogThoroughInterval",
            "10000",
            Int { min: 1, max: INT_MAX },
            "ASYNC_FLUSH: ms between two flushes of whatever is dirty",
        ),
        Key::new(
            "syncFlushTimeout",
            "5000",
            Int { min: 1, max: INT_MAX },
            "SYNC_FLUSH: ms before a put returns FLUSH_DISK_TIMEOUT",
        ),
        Key::new(
            "slaveTimeout",
            "3000",
            Int { min: 1, max: INT_MAX },
            "SYNC_MASTER: ms before a put returns FLUSH_SLAVE_TIMEOUT",
        ),
        Key::new(
            "inSyncReplicas",
            "1",
            Int { min: 1, max: 3 },
            "5.x SYNC_MASTER: replicas (the master included) a put waits for; 1 waits for none",
        ),
        Key::new(
            "retryTimesWhenSendFailed",
            "2",
            Int { min: 0, max: 16 },
            "producer: further attempts of a sync send, each to another broker group",
        ),
        Key::new(
            "sendMsgTimeout",
            "3000",
            Int { min: 1, max: INT_MAX },
            "producer: ms for the whole send, retries included",
        ),
        Key::new(
            "retryAnotherBrokerWhenNotStoreOK",
            "false",
            Bool,
            "producer: retry a send whose status is not SEND_OK",
        ),
        Key::new(
            "producer.selector",
            "round-robin",
            OneOf(&["round-robin", "hash"]),
            "round-robin: selectOneMessageQueue; hash: a MessageQueueSelector, hash(key) % queues, no retry",
        ),
        Key::new(
            "producer.accept",
            "send-ok",
            OneOf(&["send-ok", "any"]),
            "which SendResult the application counts as sent: SEND_OK only, or any status",
        ),
        Key::new(
            "messageModel",
            "CLUSTERING",
            OneOf(&["CLUSTERING", "BROADCASTING"]),
            "CLUSTERING: each message to one consumer of the group, offsets on the broker; BROADCASTING: to every consumer, offsets in a local file, failures dropped",
        ),
        Key::new(
            "consumeFromWhere",
            "CONSUME_FROM_LAST_OFFSET",
            OneOf(&["CONSUME_FROM_LAST_OFFSET", "CONSUME_FROM_FIRST_OFFSET"]),
            "where a queue without a stored offset starts: the broker's max offset, or 0 (CLUSTERING's broker answers 0 for a young queue either way)",
        ),
        Key::new(
            "consumer.listener",
            "concurrently",
            OneOf(&["concurrently", "orderly"]),
            "MessageListenerConcurrently (a thread pool) or MessageListenerOrderly (queue locks)",
        ),
        Key::new(
            "consumeThreadMax",
            "20",
            Int { min: 1, max: 64 },
            "concurrently: consume threads",
        ),
        Key::new(
            "persistConsumerOffsetInterval",
            "5000",
            Int { min: 1, max: INT_MAX },
            "consumer: ms between two one-way offset commits to the broker",
        ),
        Key::new(
            "consumer.reconsume",
            "never",
            OneOf(&["never", "every-tenth", "poison-tenth"]),
            "when the handler returns RECONSUME_LATER: never, on the first attempt of every tenth message, or on every attempt of it",
        ),
        Key::new(
            "maxReconsumeTimes",
            "16",
            Int { min: 0, max: 16 },
            "concurrently: send-backs before a message goes to %DLQ% (RocketMQ's -1 means 16)",
        ),
        Key::new(
            "messageDelayLevel.divisor",
            "1",
            Int { min: 1, max: 10_000 },
            "the retry delays (messageDelayLevel 1s 5s 10s 30s 1m … 2h, level 3 + reconsumeTimes) divided by this, so a run can reach %DLQ%",
        ),
        Key::new(
            "transaction",
            "none",
            OneOf(&["none", "commit", "rollback-some"]),
            "producers: none sends plainly; commit and rollback-some send with sendMessageInTransaction, a half message then a one-way END_TRANSACTION, the local transaction committing always or rolling back every fifth",
        ),
        Key::new(
            "transactionCheckInterval",
            "30000",
            Int { min: 1, max: INT_MAX },
            "broker: ms between two check rounds over unresolved half messages (4.9's default was 60000)",
        ),
        Key::new(
            "transactionTimeOut",
            "6000",
            Int { min: 1, max: INT_MAX },
            "broker: ms a half message waits for its end request before it is checked back",
        ),
        Key::new(
            "transactionCheckMax",
            "15",
            Int { min: 1, max: 1000 },
            "broker: check-backs of a half message before it is discarded to TRANS_CHECK_MAX_TIME_TOPIC",
        ),
    ]
}

/// Refuses the combinations RocketMQ refuses, after each key was validated on its own.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    if config.str("brokerRole") == "SLAVE" {
        // BrokerStartup.createBrokerController: "Slave's brokerId must be > 0".
        return Err(ConfigError::new(
            "brokerRole",
            "brokerRole=SLAVE needs brokerId > 0, and brokerRole sets the role of each group's master, brokerId 0 (allowed for it: ASYNC_MASTER, SYNC_MASTER)",
        ));
    }
    if config.str("version") == "4.9" && config.is_set("inSyncReplicas") {
        return Err(ConfigError::new(
            "inSyncReplicas",
            "inSyncReplicas is a 5.x key (RIP-34); version 4.9's SYNC_MASTER always waits for one slave (allowed versions for it: 5.3)",
        ));
    }
    if config.str("version") == "4.9" {
        // 4.9's BrokerConfig and MessageStoreConfig have none of controller mode's keys.
        for key in [
            "enableControllerMode",
            "allAckInSyncStateSet",
            "minInSyncReplicas",
            "haMaxTimeSlaveNotCatchup",
            "enableElectUncleanMaster",
        ] {
            if config.is_set(key) {
                return Err(ConfigError::new(
                    key,
                    format!("{key} is a 5.x key (controller mode, RocketMQ 5.0); version 4.9 has no controller (allowed versions for it: 5.3)"),
                ));
            }
        }
    }
    if config.bool("enableControllerMode") && config.bool("enableDLegerCommitLog") {
        // BrokerStartup.createBrokerController: exit -4.
        return Err(ConfigError::new(
            "enableControllerMode",
            "The config enableControllerMode and enableDLegerCommitLog cannot both be true (allowed: enableControllerMode=true with enableDLegerCommitLog=false)",
        ));
    }
    if config.is_set("enableElectUncleanMaster") && !config.bool("enableControllerMode") {
        return Err(ConfigError::new(
            "enableElectUncleanMaster",
            "enableElectUncleanMaster is the controller's key (ControllerConfig); there is no controller without enableControllerMode=true (allowed with it: enableControllerMode=true)",
        ));
    }
    if config.str("transaction") != "none" && config.str("producer.selector") == "hash" {
        // TransactionMQProducer.sendMessageInTransaction takes no MessageQueueSelector.
        return Err(ConfigError::new(
            "producer.selector",
            "sendMessageInTransaction takes no MessageQueueSelector (allowed with transaction=commit or rollback-some: producer.selector=round-robin)",
        ));
    }
    Ok(())
}
