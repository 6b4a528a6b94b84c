//! ActiveMQ Classic (5.18): one broker with a KahaDB store serving one queue — or, with
//! `failover=true`, a master and a slave over one shared KahaDB — JMS producers with persistent
//! or non-persistent, synchronous or one-way sends, and JMS consumers with their acknowledge
//! modes, prefetch and client-side redelivery to `ActiveMQ.DLQ`.
//!
//! # The mechanism
//!
//! ## Sending
//!
//! `ActiveMQSession.send` sends a message one-way (`asyncSendPacket`) when there is no
//! completion callback, `sendTimeout` ≤ 0, `alwaysSyncSend` is false, and the message is
//! non-persistent, or `useAsyncSend` is set, or the session is transacted. Otherwise it sends
//! it with `responseRequired` and blocks until the broker's `Response`. The defaults
//! (`deliveryMode=PERSISTENT`, `useAsyncSend=false`) make a persistent send synchronous and a
//! non-persistent one one-way: the application learns nothing more than that the command left.
//! A transacted session's sends are one-way too; the commit is what needs a response.
//! A synchronous send fails when the transport fails first, or when `sendTimeout` passes.
//!
//! ## KahaDB
//!
//! The broker gives each message a broker sequence number (the queue's order). A persistent
//! message is added to the store (`KahaDBStore.KahaDBMessageStore.addMessage`), a journal write
//! (`MessageDatabase.store`) that `DataFileAppender` collects into a batch and writes from its
//! own thread: the batch goes to the operating system, and is forced to disk (`file.sync()`) when
//! one of its writes asks for it. A write asks for it when `journalDiskSyncStrategy=always` (the
//! default; `Journal.JournalDiskSyncStrategy`) and its command requires a response:
//! `store(command, isEnableJournalDiskSyncs() && message.isResponseRequired(), …)`. So a
//! synchronous send is fsynced before its `Response`; a one-way send is not; and consumer acks,
//! sent one-way (`sendAcksAsync`), never are — after a power loss consumed messages come back.
//! With `periodic` the checkpoint thread fsyncs every `journalDiskSyncInterval` (1000 ms); with
//! `never`, nothing does. A process crash loses the batch (the broker's memory), a power loss
//! everything not fsynced. At start the index is rebuilt by replaying the journal
//! (`MessageDatabase.recover`).
//!
//! With `concurrentStoreAndDispatchQueues=true` (default) the broker dispatches a persistent
//! message while its add is still waiting in the store's queue (`StoreQueueTask`); an ack that
//! arrives first cancels the add, so neither the add nor the remove is written; the producer's
//! response follows the write (or its cancellation). With `false` the message is dispatched
//! only once written. With `persistJMSRedelivered` the add is synchronous (AMQ-6133) and, before
//! a first dispatch, the broker writes the redelivered flag (`RegionBroker.preProcessDispatch`,
//! `updateMessage`), so after a restart the message comes back flagged; without it the flag
//! is lost across a restart.
//!
//! ## Dispatch and the inactivity monitor
//!
//! `Queue.doActualDispatch` hands each message, in order, to the first consumer whose
//! prefetch (`queuePrefetch`, 1000) has room, and moves that consumer to the end of the list:
//! round robin within prefetch. An exclusive consumer (`consumer.exclusive`) gets everything
//! while it is the first. With `messageGroups=true` the producer sets `JMSXGroupID` to the
//! workload's key and `Queue.assignMessageGroup` sends a group's messages only to its owner in
//! `CachedMessageGroupMap` (an LRU map of 1024 groups, `CachedMessageGroupMapFactory`), assigning
//! an ownerless group to the consumer that takes its message; a message whose owner is full waits
//! while later ones go on. `removeSubscription` removes a gone consumer's groups
//! (`removeConsumer`), and the next consumer to take one of their messages owns them.
//!
//! A dispatched message stays the consumer's until it is acknowledged or
//! the consumer's connection goes: then `Queue.removeSubscription` returns it to the queue with
//! its redelivery counter raised (`LAST_DELIVERED_UNKNOWN`: the broker cannot tell what reached
//! the application), and it goes out with `JMSRedelivered=true`. The broker notices a gone
//! connection by its close (the kernel of a crashed process closes it) or by its inactivity
//! monitor (`AbstractInactivityMonitor`): both sides send `KeepAliveInfo` and fail the
//! connection after `maxInactivityDuration` (30 s) of silence. A paused consumer's messages go
//! elsewhere while it still holds them; when it resumes it handles what it had prefetched.
//!
//! ## Acknowledge modes (`ActiveMQMessageConsumer`)
//!
//! - `AUTO_ACKNOWLEDGE`, and `DUPS_OK_ACKNOWLEDGE` on a queue (`isAutoAcknowledgeEach`): a
//!   standard ack for each consumed message — with a listener after `onMessage` returns, with
//!   `receive()` before the message is returned to the application. `optimizeAcknowledge`
//!   batches them: an ack once 65 % of the prefetch is consumed, or at the first consumption
//!   after `optimizeAcknowledgeTimeOut` (300 ms).
//! - `CLIENT_ACKNOWLEDGE`: `message.acknowledge()` acks every message the session delivered so
//!   far; a listener that throws leaves its message among them ("Transacted or Client ack:
//!   Deliver the next message"), so the next acknowledge acks it away.
//! - `INDIVIDUAL_ACKNOWLEDGE`: one message per ack.
//! - `SESSION_TRANSACTED`: the application commits after each message; the commit needs a
//!   response, so under `always` it is fsynced.
//!
//! The application acknowledges after handling; on a failure (`consumer.fail=every-tenth`: the
//! handler throws on the first seven deliveries of every tenth message) an AUTO, DUPS_OK or
//! INDIVIDUAL listener's throw, a transacted rollback and a `receive()` loop's
//! `session.recover()` roll the message back: `rollback()` raises its redelivery counter, sends
//! a `REDELIVERED_ACK_TYPE` ack and redelivers it locally after `initialRedeliveryDelay`, then
//! `redeliveryDelay` (× `backOffMultiplier` with `useExponentialBackOff`), holding up the
//! messages behind it unless `nonBlockingRedelivery`, which lets them overtake. Once the
//! counter exceeds `maximumRedeliveries` (6; −1 for none) the client sends a poison ack and the
//! broker moves the message to `ActiveMQ.DLQ` — a non-persistent one is discarded
//! (`processNonPersistent=false`). The model notes either with the reason (`Op::Discard`).
//!
//! ## The failover transport and the producer audit
//!
//! With `transport=failover` (`failover:(tcp://…)`, `FailoverTransport`) a lost connection fails
//! nothing: the client reconnects and `ConnectionStateTracker` replays the commands still waiting
//! for a response — the producer's synchronous send. The broker marks such a connection fault
//! tolerant, and `ProducerBrokerExchange.canDispatch` drops a persistent send whose producer
//! sequence number is not above the last one the store holds for its `ProducerId` (the audit
//! learns it once the add is written, `setLastStoredSequenceId`, and KahaDB rebuilds it from the
//! journal at start), answering it as if stored. A restarted producer has a new `ProducerId`,
//! so its outbox is not audited. Acks made while disconnected are dropped; the broker redelivers.
//!
//! ## Transacted producers
//!
//! With `producer.transacted=true` the producer's session is transacted and the application
//! commits every [`TRANSACTION_SIZE`] messages. `ActiveMQSession.send` gives each send the
//! session's `LocalTransactionId` and sends it one-way (`txid != null`) unless `sendTimeout` or
//! `alwaysSyncSend` asks for a response. `TransactionBroker.send` passes it to the queue, which
//! numbers it but adds it to its cursor only at the commit (`Queue.tryOrderedCursorAdd`,
//! `CursorAddSync`): the model holds it with its connection. `TransactionContext.commit` sends
//! `COMMIT_ONE_PHASE` and blocks for the response; `LocalTransaction.commit` removes the
//! transaction from the connection's context and `KahaDBTransactionStore.commit` journals the
//! commit, synced under `always` (`isEnableJournalDiskSyncs`); once it is written the messages
//! join the queue all together and the response goes out. A connection that ends rolls its open
//! transactions back (`TransactionBroker.removeConnection`; a failover reconnect's new connection
//! stops the old one, `TransportConnection.processAddConnection`). Over `tcp://` a commit whose
//! response the lost connection took is in doubt to the application. The `failover:` transport
//! replays an open transaction's sends on the new connection, but a commit in flight it cannot
//! replay: `ConnectionStateTracker.restoreTransactions` answers it with
//! `TransactionRolledBackException` ("Transaction completion in doubt due to failover. Forcing
//! rollback") whether or not the broker committed it — and a consumer may read a transaction its
//! producer was told was rolled back.
//!
//! ## The consumer's duplicate check (`checkForDuplicates`)
//!
//! Every `MessageDispatch` a consumer receives is first checked against its connection's
//! `ConnectionAudit` (`ActiveMQMessageConsumer.dispatch`): an `ActiveMQMessageAudit` per queue,
//! a window of `auditDepth` (2048) producer sequence numbers per `ProducerId` for at most
//! `auditMaximumProducerNumber` (64) producers (`BitArrayBin`, an LRU map). A `MessageId` seen
//! before is not delivered: the consumer poison-acks it ("suppressing duplicate delivery on
//! connection") and the broker moves it to `ActiveMQ.DLQ`. A rollback forgets its message
//! (`rollbackDuplicate`); a transport interruption forgets the prefetched messages
//! (`clearMessagesInProgress`) and, for CLIENT_ACKNOWLEDGE only, the delivered ones
//! (`clearDeliveredList`). So under `failover:`, whose connection outlives its transports, a
//! message an AUTO_ACKNOWLEDGE listener was given and whose ack the interruption lost comes back
//! as a duplicate and is dead-lettered, not delivered twice; a `tcp://` client's new connection,
//! and a restarted consumer, start with an empty audit. A number below the window is never a
//! duplicate.
//!
//! ## The queue cursor's audit (`enableAudit`)
//!
//! `Queue.doMessageSend` stores a persistent message, then adds it to the queue's cursor, which
//! records its `MessageId` (`AbstractPendingMessageCursor.recordUniqueId`, an
//! `ActiveMQMessageAudit` of `maxAuditDepth` (2048) numbers per producer for
//! `maxProducersToAudit` (1024) producers), as it records the messages it pages in from the store.
//! A send of an id whose first copy is still indexed is rejected by KahaDB
//! (`MessageDatabase.updateIndex`) and not dispatched (`Queue.doPendingCursorAdditions`); one whose
//! first copy left the index is a "duplicate send" to the cursor
//! (`AbstractStoreCursor.recoverMessage`), stored after all (`gotToTheStore`), and
//! `BaseDestination.duplicateFromStore` poison-acks it away (to `ActiveMQ.DLQ` too with
//! `sendDuplicateFromStoreToDLQ`). With `enableAudit=false`, or past the window, it is dispatched
//! again. Each broker process has its own cursor: a message id two masters both journalled meets
//! its twin only at a later recovery, where the index decides.
//!
//! ## Shared-store master/slave and its lockers (`failover=true`)
//!
//! Two brokers, `amq1` and `amq2`, run over one KahaDB on shared storage (`store`, reliable
//! infrastructure: a file server, and under `locker=lease` the database too). Each starts as a
//! slave: `LockableServiceSupport.preStart` starts the persistence adapter's locker, and only
//! once it holds the lock does the broker recover the index by replaying the shared journal
//! and open its transport connector; until then connections are refused. The clients'
//! `failover:(tcp://amq1,tcp://amq2)` tries the next URI after each failure, so it reaches
//! whichever accepts (`tcp://` names `amq1` only).
//!
//! - `locker=shared-file` (`SharedFileLocker`, the default): `LockFile.lock` tries the OS lock
//!   on `KahaDB/lock`; held elsewhere, the broker logs "is now in slave mode" and sleeps
//!   `lockAcquireSleepInterval` (10000 ms, `AbstractLocker`) before trying again; a slave that
//!   waited sleeps one `lockKeepAlivePeriod` (default 0, `LockableServiceSupport`) after getting
//!   it. The lock is the process's: kept while it is paused or cut off from the store, released
//!   when it dies (its kernel closes its files, flushing what it wrote, then drops its locks),
//!   and after a power loss when its machine comes back (the lock server's reboot recovery).
//!   `LockFile.keepAlive` (the lock still valid, the file unmodified) never fails here.
//! - `locker=lease` (`LeaseDatabaseLocker`): a row `BROKER_NAME, TIME` in a shared database.
//!   A slave runs `UPDATE … SET BROKER_NAME=me, TIME=now+lockAcquireSleepInterval WHERE (TIME
//!   IS NULL OR TIME < now)` with `now` its own clock (`System.currentTimeMillis()`,
//!   `maxAllowableDiffFromDBTime=0`: no correction), sleeping `lockAcquireSleepInterval`
//!   between attempts; the master renews with `… WHERE BROKER_NAME=me` every
//!   `lockKeepAlivePeriod` (`scheduleAtFixedRate`; 0 for KahaDB, so never: only
//!   `JDBCPersistenceAdapter` defaults it to 30000 ms). The lease expires by the clocks of
//!   whoever reads it, while its holder runs on: a master paused (or cut off from the database)
//!   past the lease, or a clock fault (the slave's fast, the master's slow), gives two masters.
//!   A keep-alive that updates no row makes `LockableServiceSupport.keepLockAlive` call
//!   `stopBroker` ("no longer able to keep the exclusive lock so giving up being a master"):
//!   the broker stops — its connections close, its journal writes its batch and closes — and,
//!   restart allowed, starts again as a slave. Until then the old master serves the clients
//!   still connected to it and writes into the journal that the new master already replayed:
//!   sends it acknowledges are lost to the new master's index.
//!
//! The shared journal is the one KahaDB above, reached over the network: a batch the appender
//! writes goes to the store; a write that needs an fsync (`always`, a command that needs a
//! response) waits for the store's answer before its response goes out. What a broker wrote
//! without fsync is in its machine's page cache and nobody else's view: a process crash flushes
//! it (the close of its files), a power loss loses it. Under `locker=lease` each machine's clock
//! is a counter that a tick of its node's own timers advances by 100 ms, so the `clock` fault
//! makes it run fast or slow; the NTP daemon sets it from the store's host at boot and steps it
//! every 64 s when it is more than 128 ms off.
//!
//! ## Order
//!
//! JMS promises order per producer session to one consumer: competing consumers, redeliveries
//! and a consumer's reconnect (a new session) are outside the promise.
//!
//! # What is simplified
//!
//! One broker and one queue (with `ActiveMQ.DLQ`); no topics, selectors, priorities, expiry,
//! memory limits or networks of brokers. OpenWire is reduced to the commands above; a consumer
//! consumer sends its `ConsumerInfo` once its connection is open, and a `tcp://` client reconnects
//! after a second as an application with an exception listener would. The producer audit is a
//! last-sequence number per producer, not a window of 2048 over 64 producers (the model's sends are
//! sequential, so only the last one is ever replayed). Of master/slave: the store never
//! fails; an NFSv4 lease expiring under a master cut off from the file server for more than 90 s
//! is not modelled (the file lock is held until the process dies or its machine reboots);
//! `LeaseDatabaseLocker`'s check that it still holds the lease right after obtaining it, its
//! release on a clean stop, `failIfLocked`, and JDBC statement timeouts are left out; the
//! failover transport tries the URIs in order (`randomize` off). Two masters append to one
//! journal as if their writes never overlapped, and a broker sequence number both assigned is
//! ambiguous to a later replay (a real journal would be damaged more). A transacted producer has one transaction at a time, opened by its first
//! send (no `BEGIN`, no `maxUncommittedCount`); its adds are journalled with the commit instead of
//! as each send arrives (replay ignores an add without its commit, so the same survives), a
//! transaction without persistent messages commits without a write, and the application's
//! rollback after a failed send does not wait for its response. A transacted consumer does
//! not check for duplicates: its redeliveries after a failover belong to the transaction
//! (`previouslyDeliveredMessages`), which the model does not follow. The journal is a list
//! of records with two marks (written, fsynced) and the appender's batch, written 2 ms after its
//! first write; the index is derived by replaying the whole journal (no checkpoints). A
//! transacted consumer commits after each message without waiting for the commit's response.
//! Prefetch 0 (pull) is not modelled. See `docs/activemq.md`.
//!
//! # Sources
//!
//! apache/activemq 5.18.7: `ActiveMQSession.send`; `ActiveMQMessageConsumer` (`dispatch`,
//! `afterMessageIsConsumed`, `rollback`, `isAutoAcknowledgeEach`, `redeliveryExceeded`);
//! `RedeliveryPolicy.getNextRedeliveryDelay`; `broker.region.Queue` (`doActualDispatch`,
//! `removeSubscription`, `doMessageSend`, `assignMessageGroup`); `broker.region.group`
//! (`CachedMessageGroupMap`, `CachedMessageGroupMapFactory`); `RegionBroker.preProcessDispatch`;
//! `AbstractInactivityMonitor`; `transport.failover.FailoverTransport`,
//! `state.ConnectionStateTracker` (`restoreTransactions`), `TransactionContext` (`commit`,
//! `rollback`), `broker.TransactionBroker` (`send`, `removeConnection`),
//! `transaction.LocalTransaction.commit`, `TransportConnection.processAddConnection`,
//! `store.kahadb.KahaDBTransactionStore.commit` (read at commit c3580e79);
//! `broker.ProducerBrokerExchange.canDispatch`; `broker.region.cursors.AbstractPendingMessageCursor`,
//! `AbstractStoreCursor` (`recoverMessage`, `gotToTheStore`), `StoreQueueCursor`,
//! `BaseDestination.duplicateFromStore`, `policy.PolicyEntry.baseConfiguration`,
//! `MessageDatabase.updateIndex` (activemq-5.18.7);
//! `ConnectionAudit`, `ActiveMQMessageAuditNoSync`, `util.BitArrayBin` (commit c3580e79);
//! `store.kahadb.KahaDBStore`, `MessageDatabase` (`store`,
//! `recover`, the checkpoint thread's periodic sync), `disk.journal.DataFileAppender`,
//! `Journal.JournalDiskSyncStrategy`; `broker.LockableServiceSupport` (`preStart`,
//! `keepLockAlive`, `stopBroker`), `broker.AbstractLocker`, `store.SharedFileLocker`,
//! `util.LockFile` (`keepAlive`), `store.jdbc.LeaseDatabaseLocker` (`doStart`, `keepAlive`),
//! `store.jdbc.Statements` (`getLeaseObtainStatement`, `getLeaseUpdateStatement`),
//! `store.jdbc.JDBCPersistenceAdapter` (`DEFAULT_LOCK_KEEP_ALIVE_PERIOD`),
//! `BrokerService.setPersistenceAdapter` (commit c3580e79). ActiveMQ documentation: "What is the difference between
//! persistent and non-persistent delivery", "Async Sends", "KahaDB", "Redelivery Policy",
//! "What is the prefetch limit for?", "Exclusive Consumer", "ActiveMQ InactivityMonitor",
//! "Shared File System Master Slave", "Pluggable storage lockers".

mod audit;
mod broker;
mod config;
mod consumer;
mod kahadb;
mod producer;
pub mod protocol;
mod spec;
mod store;
mod transport;
mod view;

pub use broker::{
    Broker, BrokerState, Connection, Ha, Held, MessageGroupMap, Pending, Phase, QueueEntry, Then,
    GROUP_CACHE_SIZE,
};
pub use config::{AckMode, Locker, Redelivery, Settings, SyncStrategy};
pub use consumer::{Consumer, ConsumerState, Dispatched, Handling, FAILURES, HANDLING};
pub use kahadb::KahaDb;
pub use producer::{Producer, ProducerState, PACES, TRANSACTION_SIZE};
pub use store::{SharedStore, StoreState};
pub use protocol::{AckType, AmqMsg, Record, Seq};
pub use transport::Transport;

use crate::{AppLog, Config, ConfigError, Disk, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::{Op, OrderingPromise};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::time::Duration;

pub const NAME: &str = "activemq";

/// The broker is node 0; producers and consumers follow; under `failover=true` the second
/// broker and the shared store come last.
pub fn broker_id() -> Id {
    Id::from(0)
}
/// How long a client waits before connecting again.
pub const RECONNECT: Duration = Duration::from_millis(1000);
/// How long after its first write `DataFileAppender` writes a batch.
pub const APPEND: Duration = Duration::from_millis(2);
/// How far a machine's clock advances per tick of its node's own timers (`locker=lease`).
pub const TICK: Duration = Duration::from_millis(100);
/// The NTP daemon's poll interval (ntpd's default `minpoll` 6: 64 s).
pub const NTP_POLL: Duration = Duration::from_secs(64);

#[derive(Clone, Debug)]
pub enum AmqActor {
    Broker(Broker),
    Producer(Producer),
    Consumer(Consumer),
    Store(SharedStore),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AmqState {
    Broker(Box<BrokerState>),
    Producer(ProducerState),
    Consumer(ConsumerState),
    Store(Box<StoreState>),
}

/// What survives a restart: the broker's KahaDB journal, a client application's record.
pub type AmqDisk = Disk<KahaDb>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AmqTimer {
    // Broker.
    /// Send `KeepAliveInfo` on every connection.
    KeepAlive,
    /// The inactivity monitor's read check of a client's connection.
    ReadCheck(Id),
    /// `DataFileAppender` writes its batch.
    Append,
    /// `journalDiskSyncStrategy=periodic`: the checkpoint thread's fsync.
    Fsync,
    /// The locker: a slave's next attempt (`lockAcquireSleepInterval`), a master's keep-alive
    /// (`lockKeepAlivePeriod`).
    Lock,
    /// The machine's clock advances (`locker=lease`; the store's host too).
    Tick,
    /// The NTP daemon polls the time server.
    NtpPoll,
    // Clients.
    /// Connect (again).
    Connect,
    /// The inactivity monitor's read check of the connection to the broker.
    ClientReadCheck,
    /// The producing application's next send.
    Send,
    /// `sendTimeout` passed for the synchronous send in progress.
    SendTimeout,
    /// The consuming application's handler returns.
    Process,
    /// A rolled-back message's redelivery delay passed.
    Redeliver(Seq),
    /// `optimizeAcknowledgeTimeOut` passed.
    OptimizeAck,
    /// A consumer's late start (`--consumer-delay-ms`).
    Start,
}

/// What the clients' applications draw per run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AmqRandom {
    Pace(u64),
    Processing(u64),
}

pub type AmqOut = Out<AmqActor>;

/// The application writes what it observed to its durable log.
fn record(app: &mut AppLog, op: Op, o: &mut AmqOut) {
    app.push(op);
    o.save(AmqDisk::Client(app.clone()));
}

impl Actor for AmqActor {
    type Msg = AmqMsg;
    type Timer = AmqTimer;
    type State = AmqState;
    type Storage = AmqDisk;
    type Random = AmqRandom;

    fn on_start(&self, _id: Id, storage: &Option<AmqDisk>, o: &mut AmqOut) -> AmqState {
        match self {
            AmqActor::Broker(b) => {
                let store = storage.as_ref().and_then(Disk::server).cloned();
                AmqState::Broker(Box::new(b.start(store, o)))
            }
            AmqActor::Producer(p) => AmqState::Producer(p.start(Disk::restored_app_log(storage), o)),
            AmqActor::Consumer(c) => AmqState::Consumer(c.start(Disk::restored_app_log(storage), o)),
            AmqActor::Store(st) => AmqState::Store(Box::new(st.start(o))),
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<AmqState>, src: Id, msg: AmqMsg, o: &mut AmqOut) {
        match (self, state.to_mut()) {
            (AmqActor::Broker(b), AmqState::Broker(s)) => b.on_msg(s, src, msg, o),
            (AmqActor::Producer(p), AmqState::Producer(s)) => p.on_msg(s, src, msg, o),
            (AmqActor::Consumer(c), AmqState::Consumer(s)) => c.on_msg(s, src, msg, o),
            (AmqActor::Store(st), AmqState::Store(s)) => st.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<AmqState>, timer: &AmqTimer, o: &mut AmqOut) {
        match (self, state.to_mut()) {
            (AmqActor::Broker(b), AmqState::Broker(s)) => b.on_timeout(s, timer, o),
            (AmqActor::Producer(p), AmqState::Producer(s)) => p.on_timeout(s, timer, o),
            (AmqActor::Consumer(c), AmqState::Consumer(s)) => c.on_timeout(s, timer, o),
            (AmqActor::Store(st), AmqState::Store(s)) => st.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(&self, _id: Id, state: &mut Cow<AmqState>, random: &AmqRandom, o: &mut AmqOut) {
        match (self, state.to_mut(), random) {
            (AmqActor::Producer(p), AmqState::Producer(s), AmqRandom::Pace(ms)) => {
                p.on_pace(s, *ms, o)
            }
            (AmqActor::Consumer(_), AmqState::Consumer(s), AmqRandom::Processing(ms)) => {
                s.processing_time = Duration::from_millis(*ms);
            }
            _ => {}
        }
    }
}

/// An ActiveMQ Classic broker with its producers and the consumers of its queue.
#[derive(Clone, Debug)]
pub struct ActiveMq {
    pub settings: Settings,
}

impl System for ActiveMq {
    type Actor = AmqActor;
    type Storage = AmqDisk;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "ActiveMQ Classic: persistent and non-persistent sends, KahaDB journal sync, prefetch, JMS acknowledge modes, redelivery to ActiveMQ.DLQ, transacted producers, shared-store master/slave with its lockers"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "defaults",
                sets: &[],
                claim: "the article: ActiveMQ is at-least-once (persistent, synchronous sends, journalDiskSyncStrategy=always, AUTO_ACKNOWLEDGE listener)",
            },
            Scenario {
                name: "non-persistent",
                sets: &["deliveryMode=NON_PERSISTENT"],
                claim: "non-persistent delivery: one-way sends into the broker's memory",
            },
            Scenario {
                name: "useAsyncSend",
                sets: &["useAsyncSend=true"],
                claim: "async sends: persistent messages sent one-way",
            },
            Scenario {
                name: "journalDiskSyncStrategy=periodic",
                sets: &["journalDiskSyncStrategy=periodic"],
                claim: "KahaDB fsyncs once a second",
            },
            Scenario {
                name: "journalDiskSyncStrategy=never",
                sets: &["journalDiskSyncStrategy=never"],
                claim: "KahaDB never fsyncs",
            },
            Scenario {
                name: "receive, AUTO_ACKNOWLEDGE",
                sets: &["consumer.api=receive"],
                claim: "receive() acknowledges before the application sees the message",
            },
            Scenario {
                name: "CLIENT_ACKNOWLEDGE, failing handler",
                sets: &["acknowledgeMode=CLIENT_ACKNOWLEDGE", "consumer.fail=every-tenth"],
                claim: "message.acknowledge() acknowledges the messages the handler failed on",
            },
            Scenario {
                name: "redelivery policy",
                sets: &["consumer.fail=every-tenth"],
                claim: "seven failed deliveries send a message to ActiveMQ.DLQ",
            },
            Scenario {
                name: "failover transport",
                sets: &["transport=failover"],
                claim: "failover:(…): sends replayed after a reconnect, a replay of a stored send dropped by the producer audit, a redelivery to the same connection poison-acked by checkForDuplicates",
            },
            Scenario {
                name: "transacted producer, failover",
                sets: &["producer.transacted=true", "transport=failover"],
                claim: "the article: ActiveMQ has transactions (a transacted session commits every 4 messages; failover:(…) answers a commit in flight with TransactionRolledBackException, which the broker may have committed)",
            },
            Scenario {
                name: "shared-store master/slave",
                sets: &["failover=true", "transport=failover"],
                claim: "the article: ActiveMQ is simple master–slave (two brokers over one shared KahaDB, the OS lock on KahaDB/lock making one the master; failover:(…) clients)",
            },
            Scenario {
                name: "master/slave, lease locker",
                sets: &["failover=true", "transport=failover", "locker=lease", "lockKeepAlivePeriod=5000"],
                claim: "a lease in a shared database, renewed every 5 s and lasting 10 s: a paused master or a clock fault gives two masters",
            },
            Scenario {
                name: "exclusive consumer",
                sets: &["consumer.exclusive=true"],
                claim: "the article: ActiveMQ is not ordered (an exclusive consumer orders)",
            },
        ]
    }

    fn keys() -> Vec<Key> {
        config::keys()
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        config::validate(config)
    }

    fn build(config: &Config, workload: Workload) -> Self {
        ActiveMq {
            settings: Settings::from_config(config, workload),
        }
    }

    fn workload(&self) -> Workload {
        self.settings.workload
    }

    fn nodes(&self) -> Vec<Node<AmqActor>> {
        let s = &self.settings;
        let mut nodes = vec![Node {
            name: if s.master_slave { "amq1" } else { "broker" }.to_string(),
            role: Role::Server,
            actor: AmqActor::Broker(Broker {
                settings: s.clone(),
            }),
        }];
        for p in 0..s.workload.producers {
            nodes.push(Node {
                name: format!("p{p}"),
                role: Role::Producer,
                actor: AmqActor::Producer(Producer {
                    settings: s.clone(),
                    index: p,
                }),
            });
        }
        for c in 0..s.workload.consumers {
            nodes.push(Node {
                name: format!("c{c}"),
                role: Role::Consumer,
                actor: AmqActor::Consumer(Consumer {
                    settings: s.clone(),
                    index: c,
                }),
            });
        }
        if s.master_slave {
            nodes.push(Node {
                name: "amq2".to_string(),
                role: Role::Server,
                actor: AmqActor::Broker(Broker {
                    settings: s.clone(),
                }),
            });
        }
        if s.shared_store() {
            nodes.push(Node {
                name: "store".to_string(),
                role: Role::Infrastructure,
                actor: AmqActor::Store(SharedStore {
                    settings: s.clone(),
                }),
            });
        }
        nodes
    }

    fn app_log(storage: &AmqDisk) -> Option<&AppLog> {
        storage.app_log()
    }

    fn is_leader(state: &AmqState) -> bool {
        matches!(state, AmqState::Broker(b) if b.ha.as_ref().is_none_or(|h| h.phase == Phase::Master))
    }

    fn show(state: &AmqState, names: crate::Names<'_>) -> String {
        view::show(state, names)
    }

    fn invariants() -> Vec<crate::StateInvariant<ActiveMq>> {
        spec::invariants()
    }

    fn reset(_peer: Id) -> Option<AmqMsg> {
        Some(AmqMsg::Disconnected)
    }

    fn describe(msg: &AmqMsg) -> Option<String> {
        view::describe(msg)
    }

    fn label(msg: &AmqMsg) -> String {
        msg.to_string()
    }

    fn notable(msg: &AmqMsg) -> bool {
        view::notable(msg)
    }

    /// Per producer, to one consumer session, first deliveries only: competing consumers,
    /// redeliveries and reconnects reorder (JMS 2.0, 6.2.9 "Message order").
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            excludes_redelivered: true,
            per_consumer_session: true,
            ..OrderingPromise::default()
        }
    }

    fn fault_window(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn drain(&self) -> Duration {
        let s = &self.settings;
        // Dead connections noticed by both sides, every failing message's redeliveries
        // (blocking the consumer in turn), and the consumers reading the rest.
        let failing = if s.fail {
            let redeliveries = s.redelivery.maximum.unwrap_or(FAILURES).min(FAILURES);
            let per_message: Duration = (1..=redeliveries).map(|c| s.redelivery.delay_for(c)).sum();
            per_message * s.workload.messages.div_ceil(10) * s.workload.producers
        } else {
            Duration::ZERO
        };
        // A slave takes over within a lock attempt (a lease: once it expired).
        let takeover = if s.master_slave {
            s.lock_acquire_interval * 2
        } else {
            Duration::ZERO
        };
        s.max_inactivity * 2 + failing + takeover + Duration::from_secs(60)
    }

    fn workload_time(&self) -> Duration {
        self.settings.workload.duration(&PACES, &HANDLING)
    }

    fn sends(&self) -> usize {
        let w = &self.settings.workload;
        w.messages as usize * w.producers as usize
    }
}
