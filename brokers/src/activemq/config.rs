//! ActiveMQ Classic's configuration: the broker's (`<broker>`, `<kahaDB>`, the destination
//! policy), the connection factory's and the redelivery policy's keys with their defaults, the
//! values ActiveMQ accepts, and the typed [`Settings`].

use crate::config::Allowed::{Bool, Int, OneOf, Signed};
use crate::{Config, ConfigError, Key, Workload};
use stateright::actor::Id;
use std::time::Duration;

/// `journalDiskSyncStrategy` (`Journal.JournalDiskSyncStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncStrategy {
    /// fsync every write of a command that requires a response.
    Always,
    /// fsync from the checkpoint thread every `journalDiskSyncInterval`.
    Periodic,
    /// Never fsync: the operating system writes back when it likes.
    Never,
}

/// The shared store's locker (`<kahaDB><locker>`): `SharedFileLocker` (`shared-file-locker`,
/// the default) or `LeaseDatabaseLocker` (`lease-database-locker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Locker {
    /// An OS file lock on `KahaDB/lock`: held by the process until it dies.
    SharedFile,
    /// A lease row in a shared database, renewed by the holder's keep-alive and expiring by the
    /// clocks of the brokers that read it.
    Lease,
}

/// The JMS session's `acknowledgeMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    Auto,
    Client,
    DupsOk,
    Individual,
    Transacted,
}

impl AckMode {
    /// `ActiveMQMessageConsumer.isAutoAcknowledgeEach`: AUTO, and DUPS_OK on a queue, acknowledge
    /// each message as it is consumed (DUPS_OK batches only on topics).
    pub fn acks_each(self) -> bool {
        matches!(self, AckMode::Auto | AckMode::DupsOk)
    }
}

/// `RedeliveryPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Redelivery {
    /// `None` for -1, no maximum.
    pub maximum: Option<u32>,
    pub initial_delay: Duration,
    pub delay: Duration,
    pub exponential: bool,
    pub multiplier: u32,
}

impl Redelivery {
    /// Past the limit once a message's redelivery counter exceeds `maximumRedeliveries`.
    pub fn exceeded(&self, counter: u32) -> bool {
        self.maximum.is_some_and(|m| counter > m)
    }

    /// The delay before redelivery number `counter` (1 for the first), as
    /// `ActiveMQMessageConsumer.rollback` computes it: `initialRedeliveryDelay`, then
    /// `getNextRedeliveryDelay` once per earlier redelivery.
    pub fn delay_for(&self, counter: u32) -> Duration {
        let mut d = self.initial_delay;
        for _ in 1..counter {
            d = if d > Duration::ZERO && self.exponential && self.multiplier > 1 {
                d * self.multiplier
            } else {
                self.delay
            };
        }
        d
    }
}

/// The validated configuration, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `deliveryMode=PERSISTENT`.
    pub persistent: bool,
    /// `<broker persistent="true">`: persistent messages go to KahaDB, not to the memory store.
    pub broker_persistent: bool,
    pub use_async_send: bool,
    pub always_sync_send: bool,
    pub send_timeout: Option<Duration>,
    /// `transport=failover`: the clients' `failover:` transport.
    pub failover: bool,
    /// `failover=true`: two brokers over one shared KahaDB, the first to take the lock the master
    /// (shared-store master/slave).
    pub master_slave: bool,
    pub locker: Locker,
    /// `lockKeepAlivePeriod` (`LockableServiceSupport`): 0, no keep-alive.
    pub lock_keep_alive: Option<Duration>,
    /// `lockAcquireSleepInterval` (`AbstractLocker`), also the lease's duration.
    pub lock_acquire_interval: Duration,
    /// `producer.transacted=true`: the producer's session is transacted
    /// (`createSession(true, SESSION_TRANSACTED)`) and commits every [`super::TRANSACTION_SIZE`]
    /// messages.
    pub transacted: bool,
    pub sync_strategy: SyncStrategy,
    pub sync_interval: Duration,
    pub concurrent_store_and_dispatch: bool,
    pub prefetch: u32,
    pub max_inactivity: Duration,
    pub persist_redelivered: bool,
    pub ack_mode: AckMode,
    /// `consumer.api=receive`: the application calls `receive()` instead of registering a
    /// `MessageListener`.
    pub receive: bool,
    pub optimize_acknowledge: bool,
    pub optimize_timeout: Duration,
    pub redelivery: Redelivery,
    pub non_blocking_redelivery: bool,
    /// `consumer.fail=every-tenth`.
    pub fail: bool,
    pub exclusive: bool,
    /// `messageGroups=true`: the producer sets `JMSXGroupID` to the workload's key.
    pub message_groups: bool,
    /// The connection factory's `checkForDuplicates`, `auditDepth` and
    /// `auditMaximumProducerNumber`: the consumer connection's duplicate check.
    pub check_for_duplicates: bool,
    pub audit_depth: u32,
    pub audit_producers: u32,
    /// The queue's cursor audit (`PolicyEntry`/`BaseDestination` `enableAudit`, `maxAuditDepth`,
    /// `maxProducersToAudit`): a persistent send whose `MessageId` the cursor saw is a duplicate,
    /// poison-acked by `duplicateFromStore` (to `ActiveMQ.DLQ` with
    /// `sendDuplicateFromStoreToDLQ`).
    pub enable_audit: bool,
    pub max_audit_depth: u32,
    pub max_producers_to_audit: u32,
    pub send_duplicate_from_store_to_dlq: bool,
    pub workload: Workload,
}

impl Settings {
    /// The brokers' nodes: node 0, and under `failover=true` the second broker, which follows
    /// the clients.
    pub fn brokers(&self) -> Vec<Id> {
        let mut brokers = vec![Id::from(0)];
        if self.master_slave {
            brokers.push(Id::from(self.clients() + 1));
        }
        brokers
    }

    /// The shared store's node (the file server, and the database of a lease), after the
    /// second broker.
    pub fn store_id(&self) -> Id {
        Id::from(self.clients() + 2)
    }

    fn clients(&self) -> usize {
        (self.workload.producers + self.workload.consumers) as usize
    }

    /// Do the brokers share a KahaDB and take turns by its lock? Not with `persistent=false`,
    /// under which the broker ignores its KahaDB (and so its locker).
    pub fn shared_store(&self) -> bool {
        self.master_slave && self.broker_persistent
    }

    /// `ActiveMQSession.send`: a send goes one-way unless something asks for a response —
    /// a `sendTimeout`, `alwaysSyncSend`, or a persistent message outside a transaction
    /// without `useAsyncSend` (`txid != null` makes a persistent send one-way).
    pub fn sync_send(&self) -> bool {
        self.send_timeout.is_some()
            || self.always_sync_send
            || (self.persistent && !self.use_async_send && !self.transacted)
    }

    pub fn from_config(config: &Config, workload: Workload) -> Settings {
        let ms = |key: &str| Duration::from_millis(config.int(key));
        let maximum = config.signed("maximumRedeliveries");
        Settings {
            persistent: config.str("deliveryMode") == "PERSISTENT",
            broker_persistent: config.bool("persistent"),
            use_async_send: config.bool("useAsyncSend"),
            always_sync_send: config.bool("alwaysSyncSend"),
            send_timeout: Some(ms("sendTimeout")).filter(|d| !d.is_zero()),
            failover: config.str("transport") == "failover",
            master_slave: config.bool("failover"),
            locker: match config.str("locker") {
                "lease" => Locker::Lease,
                _ => Locker::SharedFile,
            },
            lock_keep_alive: Some(ms("lockKeepAlivePeriod")).filter(|d| !d.is_zero()),
            lock_acquire_interval: ms("lockAcquireSleepInterval"),
            transacted: config.bool("producer.transacted"),
            sync_strategy: match config.str("journalDiskSyncStrategy") {
                "periodic" => SyncStrategy::Periodic,
                "never" => SyncStrategy::Never,
                _ => SyncStrategy::Always,
            },
            sync_interval: ms("journalDiskSyncInterval"),
            concurrent_store_and_dispatch: config.bool("concurrentStoreAndDispatchQueues"),
            prefetch: config.int("queuePrefetch") as u32,
            max_inactivity: ms("maxInactivityDuration"),
            persist_redelivered: config.bool("persistJMSRedelivered"),
            ack_mode: match config.str("acknowledgeMode") {
                "CLIENT_ACKNOWLEDGE" => AckMode::Client,
                "DUPS_OK_ACKNOWLEDGE" => AckMode::DupsOk,
                "INDIVIDUAL_ACKNOWLEDGE" => AckMode::Individual,
                "SESSION_TRANSACTED" => AckMode::Transacted,
                _ => AckMode::Auto,
            },
            receive: config.str("consumer.api") == "receive",
            optimize_acknowledge: config.bool("optimizeAcknowledge"),
            optimize_timeout: ms("optimizeAcknowledgeTimeOut"),
            redelivery: Redelivery {
                maximum: u32::try_from(maximum).ok(),
                initial_delay: ms("initialRedeliveryDelay"),
                delay: ms("redeliveryDelay"),
                exponential: config.bool("useExponentialBackOff"),
                multiplier: config.int("backOffMultiplier") as u32,
            },
            non_blocking_redelivery: config.bool("nonBlockingRedelivery"),
            fail: config.str("consumer.fail") == "every-tenth",
            exclusive: config.bool("consumer.exclusive"),
            message_groups: config.bool("messageGroups"),
            check_for_duplicates: config.bool("checkForDuplicates"),
            audit_depth: config.int("auditDepth") as u32,
            audit_producers: config.int("auditMaximumProducerNumber") as u32,
            enable_audit: config.bool("enableAudit"),
            max_audit_depth: config.int("maxAuditDepth") as u32,
            max_producers_to_audit: config.int("maxProducersToAudit") as u32,
            send_duplicate_from_store_to_dlq: config.bool("sendDuplicateFromStoreToDLQ"),
            workload,
        }
    }
}

/// The configuration keys, with ActiveMQ's names, defaults and allowed values.
pub(super) fn keys() -> Vec<Key> {
    let int = |min, max| Int { min, max };
    vec![
        Key::new(
            "persistent",
            "true",
            Bool,
            "<broker persistent>: false keeps every message in memory only",
        ),
        Key::new(
            "deliveryMode",
            "PERSISTENT",
            OneOf(&["PERSISTENT", "NON_PERSISTENT"]),
            "the producer's JMS delivery mode",
        ),
        Key::new(
            "useAsyncSend",
            "false",
            Bool,
            "send persistent messages one-way, without waiting for the broker's response",
        ),
        Key::new(
            "alwaysSyncSend",
            "false",
            Bool,
            "wait for the broker's response to every send, non-persistent ones too",
        ),
        Key::new(
            "sendTimeout",
            "0",
            int(0, 600_000),
            "ms a synchronous send waits for its response before failing (0: for ever); > 0 makes every send synchronous",
        ),
        Key::new(
            "transport",
            "tcp",
            OneOf(&["tcp", "failover"]),
            "the clients' broker URI: tcp://, or failover:(tcp://…), which reconnects and replays the sends waiting for a response",
        ),
        Key::new(
            "failover",
            "false",
            Bool,
            "shared-store master/slave: two brokers over one shared KahaDB, the first to take the lock the master, the other waiting for it; the clients' failover:(…) URI lists both (tcp:// names the first)",
        ),
        Key::new(
            "locker",
            "shared-file",
            OneOf(&["shared-file", "lease"]),
            "failover=true: the store's locker: an OS lock on KahaDB/lock (released when its process dies), or a lease in a shared database renewed every lockKeepAlivePeriod and expiring by the brokers' clocks",
        ),
        Key::new(
            "lockKeepAlivePeriod",
            "0",
            int(0, 600_000),
            "ms between the master's checks of its lock (lease: renewals); 0: never checked, so a lease is never renewed",
        ),
        Key::new(
            "lockAcquireSleepInterval",
            "10000",
            int(1, 600_000),
            "ms a slave sleeps between attempts to take the lock; the lease's duration",
        ),
        Key::new(
            "producer.transacted",
            "false",
            Bool,
            "the producer's session is transacted: its sends are held by the broker until the commit (every 4 messages), which needs a response; sends one-way unless sendTimeout or alwaysSyncSend",
        ),
        Key::new(
            "journalDiskSyncStrategy",
            "always",
            OneOf(&["always", "periodic", "never"]),
            "KahaDB: when the journal is fsynced",
        ),
        Key::new(
            "journalDiskSyncInterval",
            "1000",
            int(1, 600_000),
            "KahaDB: ms between two fsyncs with journalDiskSyncStrategy=periodic",
        ),
        Key::new(
            "concurrentStoreAndDispatchQueues",
            "true",
            Bool,
            "KahaDB: dispatch a persistent message while its journal write is pending (an ack first cancels the write)",
        ),
        Key::new(
            "queuePrefetch",
            "1000",
            int(1, 32_767),
            "unacknowledged messages the broker dispatches to one queue consumer",
        ),
        Key::new(
            "maxInactivityDuration",
            "30000",
            int(1000, 600_000),
            "ms of silence after which the inactivity monitor fails a connection",
        ),
        Key::new(
            "persistJMSRedelivered",
            "false",
            Bool,
            "destination policy: journal the redelivered flag before a first dispatch, so it survives a restart",
        ),
        Key::new(
            "acknowledgeMode",
            "AUTO_ACKNOWLEDGE",
            OneOf(&[
                "AUTO_ACKNOWLEDGE",
                "CLIENT_ACKNOWLEDGE",
                "DUPS_OK_ACKNOWLEDGE",
                "INDIVIDUAL_ACKNOWLEDGE",
                "SESSION_TRANSACTED",
            ]),
            "the consumer's JMS session acknowledge mode",
        ),
        Key::new(
            "consumer.api",
            "listener",
            OneOf(&["listener", "receive"]),
            "the application's MessageListener, or a receive() loop",
        ),
        Key::new(
            "optimizeAcknowledge",
            "false",
            Bool,
            "AUTO_ACKNOWLEDGE: acknowledge in batches (65 % of the prefetch, or optimizeAcknowledgeTimeOut)",
        ),
        Key::new(
            "optimizeAcknowledgeTimeOut",
            "300",
            int(1, 600_000),
            "ms after which an optimized acknowledgement batch is sent anyway",
        ),
        Key::new(
            "maximumRedeliveries",
            "6",
            Signed { min: -1, max: 1000 },
            "redelivery policy: redeliveries before a poison ack sends the message to ActiveMQ.DLQ (-1: no limit)",
        ),
        Key::new(
            "initialRedeliveryDelay",
            "1000",
            int(0, 600_000),
            "redelivery policy: ms before the first redelivery",
        ),
        Key::new(
            "redeliveryDelay",
            "1000",
            int(0, 600_000),
            "redelivery policy: ms before each later redelivery",
        ),
        Key::new(
            "useExponentialBackOff",
            "false",
            Bool,
            "redelivery policy: multiply the delay by backOffMultiplier each time",
        ),
        Key::new(
            "backOffMultiplier",
            "5",
            int(1, 100),
            "redelivery policy: the exponential back-off's factor",
        ),
        Key::new(
            "nonBlockingRedelivery",
            "false",
            Bool,
            "deliver later messages while a rolled-back one waits for its redelivery",
        ),
        Key::new(
            "consumer.fail",
            "never",
            OneOf(&["never", "every-tenth"]),
            "the application's handler throws on the first seven deliveries of every tenth message",
        ),
        Key::new(
            "consumer.exclusive",
            "false",
            Bool,
            "exclusive consumer: the broker dispatches to one consumer at a time",
        ),
        Key::new(
            "messageGroups",
            "false",
            Bool,
            "the producer sets JMSXGroupID to the message's key: the broker pins each group to one consumer (an LRU map of 1024 groups) until that consumer goes",
        ),
        Key::new(
            "checkForDuplicates",
            "true",
            Bool,
            "the consumer's connection poison-acks a message it was dispatched before (to ActiveMQ.DLQ) instead of delivering it again",
        ),
        Key::new(
            "auditDepth",
            "2048",
            int(1, 1_000_000),
            "checkForDuplicates: the window of producer sequence numbers remembered per producer",
        ),
        Key::new(
            "auditMaximumProducerNumber",
            "64",
            int(1, 10_000),
            "checkForDuplicates: the producers remembered (least recently seen forgotten first)",
        ),
        Key::new(
            "enableAudit",
            "true",
            Bool,
            "the queue cursor's audit: a persistent send of a MessageId the cursor saw before is a duplicate, poison-acked instead of dispatched again",
        ),
        Key::new(
            "maxAuditDepth",
            "2048",
            int(1, 1_000_000),
            "enableAudit: the window of producer sequence numbers remembered per producer (BaseDestination's default; a policyEntry sets a queue's as maxQueueAuditDepth, 10000)",
        ),
        Key::new(
            "maxProducersToAudit",
            "1024",
            int(1, 10_000),
            "enableAudit: the producers remembered (least recently seen forgotten first; a policyEntry's default is 64)",
        ),
        Key::new(
            "sendDuplicateFromStoreToDLQ",
            "false",
            Bool,
            "a duplicate the cursor audit caught also goes to ActiveMQ.DLQ (by default it is only poison-acked: removed from the store)",
        ),
    ]
}

/// ActiveMQ refuses no combination of these keys at startup: each was validated on its own
/// (an unknown `journalDiskSyncStrategy` fails `JournalDiskSyncStrategy.valueOf`, an unknown
/// acknowledge mode `createSession`). `optimizeAcknowledge` outside AUTO_ACKNOWLEDGE is ignored,
/// as ActiveMQ ignores it. A lease renewed less often than it lasts
/// (`lockKeepAlivePeriod` > `lockAcquireSleepInterval`, or 0) only draws a warning from
/// `LeaseDatabaseLocker.doStart`; `persistent=false` under `failover=true` only one from
/// `BrokerService.setPersistenceAdapter`, which ignores the KahaDB (and so its locker): both
/// brokers run as masters with memory stores.
///
/// The model refuses one combination as meaningless: `failover=true` with `transport=tcp`. A
/// `tcp://amq1` client never reaches `amq2` once it is the master, so what that master stores
/// would read as lost when it is only out of the clients' reach.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    if config.bool("failover") && config.str("transport") != "failover" {
        return Err(ConfigError::new(
            "transport",
            "failover=true needs clients that can reach either broker: transport=tcp names amq1 only (allowed with failover=true: failover)",
        ));
    }
    Ok(())
}
