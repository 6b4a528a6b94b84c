//! The broker: its transport connections with their inactivity monitors, the queue and its
//! subscriptions, and the KahaDB store behind it.

use super::audit::{MessageAudit, MessageId};
use super::kahadb::KahaDb;
use super::protocol::{AckType, AmqMsg, Record, Seq};
use super::transport::{ReadCheck, READ_CHECK_INITIAL_DELAY};
use super::{AmqDisk, AmqOut, AmqTimer, Locker, Settings, SyncStrategy, APPEND, NTP_POLL, TICK};
use crate::timers::{exact, retry};
use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Broker {
    pub settings: Settings,
}

/// A message in the queue (`QueueMessageReference`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueEntry {
    pub msg: MsgId,
    /// The incarnation of its producer's `ProducerId`.
    pub producer: u32,
    /// `JMSXGroupID`.
    pub group: Option<u32>,
    pub persistent: bool,
    /// `redeliveryCounter`: > 0 dispatches it with `JMSRedelivered=true`.
    pub redelivery_counter: u32,
    /// Its `Add` is in the journal (or it needs none: non-persistent).
    pub stored: bool,
    /// The consumer it is dispatched to, unacknowledged.
    pub dispatched: Option<Id>,
    /// The `persistJMSRedelivered` update was journalled (or is in the batch).
    pub flag_stored: bool,
}

/// How long a broker process takes to start before its persistence adapter's locker runs.
const STARTUP: Duration = Duration::from_millis(100);

/// ntpd's step threshold (`tinker step`, 0.128 s): a larger offset is stepped at once.
const NTP_STEP: u64 = 128;

/// `CachedMessageGroupMapFactory`'s `cacheSize`.
pub const GROUP_CACHE_SIZE: usize = 1024;

/// `CachedMessageGroupMap`: the owner of each message group, an access-ordered LRU map of
/// [`GROUP_CACHE_SIZE`] groups, least recently used first; an evicted group is assigned afresh.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MessageGroupMap {
    pub owners: Vec<(u32, Id)>,
}

impl MessageGroupMap {
    /// `get`: the group's owner, now the most recently used.
    pub fn get(&mut self, group: u32) -> Option<Id> {
        let pos = self.owners.iter().position(|(g, _)| *g == group)?;
        let entry = self.owners.remove(pos);
        self.owners.push(entry);
        Some(entry.1)
    }

    /// `put`: the group now belongs to `consumer`; past the cache size the eldest is evicted.
    pub fn put(&mut self, group: u32, consumer: Id) {
        self.owners.retain(|(g, _)| *g != group);
        self.owners.push((group, consumer));
        if self.owners.len() > GROUP_CACHE_SIZE {
            self.owners.remove(0);
        }
    }

    /// `removeConsumer`: the consumer's groups have no owner.
    pub fn remove_consumer(&mut self, consumer: Id) {
        self.owners.retain(|(_, c)| *c != consumer);
    }
}

/// A client's transport connection as the broker sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Connection {
    pub conn: u32,
    /// Opened by a `failover:` transport.
    pub fault_tolerant: bool,
    /// A queue consumer (`ConsumerInfo`): its unacknowledged dispatches.
    pub consumer: Option<BTreeSet<Seq>>,
    /// The sends of its open local transactions, held until their commit (`CursorAddSync`).
    pub transaction: Vec<Held>,
    /// The broker's inactivity monitor on it.
    pub read_check: ReadCheck,
}

/// A send of a local transaction: numbered by the queue when it arrived
/// (`Queue.doMessageSend`), added to the queue's cursor only once the commit is stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Held {
    pub txn: u64,
    pub seq: Seq,
    pub entry: QueueEntry,
}

/// What the broker does once a write of the appender's batch completed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Then {
    Nothing,
    /// The response a synchronous send waits for.
    Respond { client: Id, conn: u32, command: u32 },
    /// The dispatch a `persistJMSRedelivered` update holds back.
    Dispatch { seq: Seq },
    /// A commit stored: its messages join the queue, and the commit's response goes out.
    Commit {
        client: Id,
        conn: u32,
        command: u32,
        held: Vec<Held>,
    },
}

/// A write in `DataFileAppender`'s batch: `None` once an acknowledgement cancelled it
/// (`concurrentStoreAndDispatchQueues`); `sync` when the command needs a response and the
/// strategy is `always`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub record: Option<Record>,
    pub sync: bool,
    pub then: Then,
}

/// Where a broker of a master/slave pair is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// A slave: waiting for the lock, its transport connector not started.
    Slave,
    /// It holds the lock: SharedFileLocker's sleep of one `lockKeepAlivePeriod`, then the
    /// journal read for recovery.
    Recovering,
    /// The master: recovered, serving clients.
    Master,
}

/// A broker of a shared-store master/slave pair (`failover=true`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ha {
    pub phase: Phase,
    pub locker: Locker,
    /// It introduced itself to the store (after [`STARTUP`]).
    pub booted: bool,
    /// `SharedFileLocker`'s `warned`: the lock was found held at least once.
    pub waited: bool,
    /// Under `locker=lease`: the machine's clock (`System.currentTimeMillis()`, ms), advanced by
    /// `TICK` each tick of the node's own timers, stepped by NTP; `None` until the first answer.
    pub clock: Option<u64>,
    /// A lease keep-alive waits for its update count.
    pub renewing: bool,
    /// Batches written to the shared store, waiting for the write (and fsync) to complete.
    pub writing: VecDeque<Vec<Pending>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerState {
    /// Under `failover=true` with a KahaDB: its part in the master/slave pair.
    pub ha: Option<Ha>,
    /// A copy of what was last saved.
    pub store: KahaDb,
    pub batch: Vec<Pending>,
    /// The queue, in broker sequence order.
    pub queue: BTreeMap<Seq, QueueEntry>,
    /// Messages in `ActiveMQ.DLQ`.
    pub dead_letters: BTreeSet<Seq>,
    pub next_seq: Seq,
    /// The last producer sequence number stored per (producer, `ProducerId` incarnation): a
    /// failover reconnect's replay of a send already stored is dropped.
    pub producer_audit: BTreeMap<(u32, u32), u32>,
    /// The queue cursor's `ActiveMQMessageAudit` (`enableAudit`): the `MessageId`s of the
    /// persistent messages it took in, in a window of `maxAuditDepth` per producer.
    pub cursor_audit: Option<MessageAudit>,
    pub connections: BTreeMap<Id, Connection>,
    /// The queue's consumers in dispatch order: round robin moves the one served last to the end.
    pub consumers: Vec<Id>,
    /// `Queue.messageGroupOwners`, in memory only.
    pub groups: MessageGroupMap,
}

impl Broker {
    pub fn start(&self, store: Option<KahaDb>, o: &mut AmqOut) -> BrokerState {
        if !self.settings.shared_store() {
            self.open_connector(o);
            return self.recovered(store.unwrap_or_default());
        }
        // A process of a master/slave pair starts as a slave: once up it asks for the lock (a
        // lease once its clock is set) and opens no connector until it holds it.
        o.set_timer(AmqTimer::Lock, exact(STARTUP));
        BrokerState {
            ha: Some(Ha {
                phase: Phase::Slave,
                locker: self.settings.locker,
                booted: false,
                waited: false,
                clock: None,
                renewing: false,
                writing: VecDeque::new(),
            }),
            ..self.recovered(KahaDb::default())
        }
    }

    /// The transport connector's and the store's periodic work.
    fn open_connector(&self, o: &mut AmqOut) {
        o.set_timer(AmqTimer::KeepAlive, retry(self.settings.max_inactivity / 3));
        if self.settings.sync_strategy == SyncStrategy::Periodic {
            o.set_timer(AmqTimer::Fsync, exact(self.settings.sync_interval));
        }
    }

    /// `MessageDatabase.recover`: the queue, the DLQ and the producer audit from the journal.
    fn recovered(&self, store: KahaDb) -> BrokerState {
        let (recovered, dead_letters, next_seq) = store.replay();
        // The store cursor pages the recovered messages in through `recoverMessage`, which
        // records each in the audit (`recordUniqueId`).
        let mut cursor_audit = self.settings.enable_audit.then(|| {
            MessageAudit::new(self.settings.max_audit_depth, self.settings.max_producers_to_audit)
        });
        if let Some(audit) = cursor_audit.as_mut() {
            for r in recovered.values() {
                audit.is_duplicate(MessageId::new(r.msg, r.producer));
            }
        }
        let queue = recovered
            .into_iter()
            .map(|(seq, r)| {
                let entry = QueueEntry {
                    msg: r.msg,
                    producer: r.producer,
                    group: r.group,
                    persistent: true,
                    redelivery_counter: u32::from(r.redelivered),
                    stored: true,
                    dispatched: None,
                    flag_stored: r.redelivered,
                };
                (seq, entry)
            })
            .collect();
        BrokerState {
            ha: None,
            producer_audit: store.producer_audit(),
            cursor_audit,
            store,
            batch: Vec::new(),
            queue,
            dead_letters,
            next_seq,
            connections: BTreeMap::new(),
            consumers: Vec::new(),
            groups: MessageGroupMap::default(),
        }
    }

    /// The broker's side of the lock and the shared store; `true` if `msg` was about them, or
    /// reached a broker that serves no clients.
    fn on_ha_msg(&self, s: &mut BrokerState, src: Id, msg: &AmqMsg, o: &mut AmqOut) -> bool {
        let Some(ha) = s.ha.as_mut() else {
            return false;
        };
        let st = self.settings.store_id();
        if src == st {
            match msg {
                AmqMsg::Locked { granted } if ha.phase == Phase::Slave => {
                    if !granted {
                        ha.waited = true;
                        o.set_timer(AmqTimer::Lock, exact(self.settings.lock_acquire_interval));
                    } else {
                        ha.phase = Phase::Recovering;
                        match self.settings.lock_keep_alive.filter(|_| ha.waited) {
                            // "ensure lockHolder has released; wait for one keepAlive iteration"
                            Some(period) => o.set_timer(AmqTimer::Lock, exact(period)),
                            None => o.send(st, AmqMsg::ReadJournal),
                        }
                    }
                }
                AmqMsg::LeaseResult { updated } => match ha.phase {
                    Phase::Slave if *updated => {
                        ha.phase = Phase::Recovering;
                        o.send(st, AmqMsg::ReadJournal);
                    }
                    Phase::Slave => {
                        o.set_timer(AmqTimer::Lock, exact(self.settings.lock_acquire_interval))
                    }
                    Phase::Master if ha.renewing => {
                        ha.renewing = false;
                        if !updated {
                            self.stop_broker(s, o);
                        }
                    }
                    _ => {}
                },
                AmqMsg::Journal { journal } if ha.phase == Phase::Recovering => {
                    let mut ha = s.ha.take().expect("a broker of a pair");
                    ha.phase = Phase::Master;
                    if let (Locker::Lease, Some(period)) = (ha.locker, self.settings.lock_keep_alive) {
                        o.set_timer(AmqTimer::Lock, exact(period));
                    }
                    let mut journal = journal.clone();
                    journal.fsync();
                    *s = self.recovered(journal);
                    s.ha = Some(ha);
                    self.open_connector(o);
                }
                AmqMsg::Written => {
                    if let Some(batch) = ha.writing.pop_front() {
                        self.written(s, batch, o);
                    }
                }
                AmqMsg::NtpTime { ms } => match ha.clock.as_mut() {
                    // ntpd steps a clock more than 128 ms off (its step threshold) at once.
                    Some(clock) if clock.abs_diff(*ms) > NTP_STEP => *clock = *ms,
                    Some(_) => {}
                    None => {
                        // The clock is set at boot: the locker starts.
                        ha.clock = Some(*ms);
                        self.obtain_lease(s, o);
                    }
                },
                _ => {}
            }
            return true;
        }
        if ha.phase == Phase::Master {
            return false;
        }
        if let AmqMsg::Connect { conn, .. } = msg {
            // No transport connector: the connection is refused.
            o.send(src, AmqMsg::Closed { conn: *conn });
        }
        true
    }

    /// `LeaseDatabaseLocker.doStart`: one attempt at the lease, with the machine's clock.
    fn obtain_lease(&self, s: &BrokerState, o: &mut AmqOut) {
        if let Some(now) = s.ha.as_ref().and_then(|h| h.clock) {
            let time = now + self.settings.lock_acquire_interval.as_millis() as u64;
            o.send(self.settings.store_id(), AmqMsg::LeaseObtain { time, now });
        }
    }

    /// `LockableServiceSupport.stopBroker` after a failed keep-alive: "no longer able to keep
    /// the exclusive lock so giving up being a master". The broker stops — its connections
    /// close, the journal writes its batch and closes its files — and, restart allowed, starts
    /// again as a slave asking for the lease.
    fn stop_broker(&self, s: &mut BrokerState, o: &mut AmqOut) {
        for (client, c) in &s.connections {
            o.send(*client, AmqMsg::Closed { conn: c.conn });
            o.cancel_timer(AmqTimer::ReadCheck(*client));
        }
        let st = self.settings.store_id();
        let records: Vec<Record> = s.batch.iter().filter_map(|p| p.record.clone()).collect();
        if !records.is_empty() {
            o.send(st, AmqMsg::Write { records, sync: false });
        }
        o.send(st, AmqMsg::Flush);
        for timer in [AmqTimer::KeepAlive, AmqTimer::Fsync, AmqTimer::Append, AmqTimer::Lock] {
            o.cancel_timer(timer);
        }
        let mut ha = s.ha.take().expect("a broker of a pair");
        ha.phase = Phase::Slave;
        ha.waited = false;
        ha.renewing = false;
        ha.writing.clear();
        *s = self.recovered(KahaDb::default());
        s.ha = Some(ha);
        self.obtain_lease(s, o);
    }

    /// The locker's timers: a slave's next attempt, SharedFileLocker's wait before recovering,
    /// a lease master's keep-alive; the machine's clock and its NTP daemon.
    fn on_ha_timeout(&self, s: &mut BrokerState, timer: &AmqTimer, o: &mut AmqOut) {
        let st = self.settings.store_id();
        let Some(ha) = s.ha.as_mut() else {
            return;
        };
        match (timer, ha.phase, ha.locker) {
            (AmqTimer::Lock, Phase::Slave, locker) if !ha.booted => {
                ha.booted = true;
                o.send(st, AmqMsg::Hello);
                match locker {
                    Locker::SharedFile => o.send(st, AmqMsg::TryLock),
                    Locker::Lease => {
                        o.send(st, AmqMsg::NtpQuery);
                        o.set_timer(AmqTimer::Tick, exact(TICK));
                        o.set_timer(AmqTimer::NtpPoll, exact(NTP_POLL));
                    }
                }
            }
            (AmqTimer::Lock, Phase::Slave, Locker::SharedFile) => o.send(st, AmqMsg::TryLock),
            (AmqTimer::Lock, Phase::Slave, Locker::Lease) => self.obtain_lease(s, o),
            (AmqTimer::Lock, Phase::Recovering, _) => o.send(st, AmqMsg::ReadJournal),
            (AmqTimer::Lock, Phase::Master, Locker::Lease) => {
                // scheduleAtFixedRate: one keep-alive at a time, each with the clock's reading.
                if let (false, Some(now)) = (ha.renewing, ha.clock) {
                    ha.renewing = true;
                    let time = now + self.settings.lock_acquire_interval.as_millis() as u64;
                    o.send(st, AmqMsg::LeaseUpdate { time });
                }
                if let Some(period) = self.settings.lock_keep_alive {
                    o.set_timer(AmqTimer::Lock, exact(period));
                }
            }
            (AmqTimer::Tick, ..) => {
                if let Some(clock) = ha.clock.as_mut() {
                    *clock += TICK.as_millis() as u64;
                }
                o.set_timer(AmqTimer::Tick, exact(TICK));
            }
            (AmqTimer::NtpPoll, ..) => {
                o.send(st, AmqMsg::NtpQuery);
                o.set_timer(AmqTimer::NtpPoll, exact(NTP_POLL));
            }
            _ => {}
        }
    }

    fn save(&self, s: &BrokerState, o: &mut AmqOut) {
        o.save(AmqDisk::Server(s.store.clone()));
    }

    /// Hands a write to the appender; the batch is written `APPEND` later.
    fn store(&self, s: &mut BrokerState, record: Record, needs_response: bool, then: Then, o: &mut AmqOut) {
        if s.batch.is_empty() {
            o.set_timer(AmqTimer::Append, exact(APPEND));
        }
        let sync = needs_response && self.settings.sync_strategy == SyncStrategy::Always;
        s.batch.push(Pending {
            record: Some(record),
            sync,
            then,
        });
    }

    pub fn on_msg(&self, s: &mut BrokerState, src: Id, msg: AmqMsg, o: &mut AmqOut) {
        if self.on_ha_msg(s, src, &msg, o) {
            return;
        }
        if let AmqMsg::Connect {
            conn,
            fault_tolerant,
        } = msg
        {
            // A new connection from a client replaces the one the broker knew.
            self.connection_gone(s, src, o);
            s.connections.insert(
                src,
                Connection {
                    conn,
                    fault_tolerant,
                    consumer: None,
                    transaction: Vec::new(),
                    read_check: ReadCheck::new(),
                },
            );
            o.set_timer(AmqTimer::ReadCheck(src), exact(READ_CHECK_INITIAL_DELAY));
            o.send(src, AmqMsg::Connected { conn });
            return;
        }
        if msg == AmqMsg::Disconnected {
            self.connection_gone(s, src, o);
            return;
        }
        let current = s.connections.get(&src).map(|c| c.conn);
        let conn = match &msg {
            AmqMsg::MessageSend { conn, .. }
            | AmqMsg::ConsumerInfo { conn }
            | AmqMsg::MessageAck { conn, .. }
            | AmqMsg::Commit { conn, .. }
            | AmqMsg::Rollback { conn, .. }
            | AmqMsg::KeepAlive { conn } => *conn,
            _ => return,
        };
        if current != Some(conn) {
            // A connection the broker closed: nothing on it counts.
            return;
        }
        if let Some(c) = s.connections.get_mut(&src) {
            c.read_check.received();
        }
        match msg {
            AmqMsg::ConsumerInfo { .. } => {
                if let Some(c) = s.connections.get_mut(&src) {
                    if c.consumer.is_none() {
                        c.consumer = Some(BTreeSet::new());
                        s.consumers.push(src);
                    }
                }
                self.dispatch(s, o);
            }
            AmqMsg::MessageSend {
                conn,
                command,
                producer,
                msg,
                persistent,
                response_required,
                group,
                transaction,
            } => {
                let persistent = persistent && self.settings.broker_persistent;
                let last = s.producer_audit.get(&(msg.producer, producer));
                let fault_tolerant = s.connections.get(&src).is_some_and(|c| c.fault_tolerant);
                if persistent && fault_tolerant && last.is_some_and(|l| *l >= msg.seq) {
                    // ProducerBrokerExchange.canDispatch: a replayed send the store already
                    // holds is suppressed, and answered.
                    if response_required {
                        o.send(src, AmqMsg::Response { conn, command });
                    }
                    return;
                }
                let seq = s.next_seq;
                s.next_seq += 1;
                let respond = Then::Respond {
                    client: src,
                    conn,
                    command,
                };
                let entry = QueueEntry {
                    msg,
                    producer,
                    group,
                    persistent,
                    redelivery_counter: 0,
                    stored: !persistent,
                    dispatched: None,
                    flag_stored: false,
                };
                if let Some(txn) = transaction {
                    // TransactionBroker.send: the queue's cursor gets the message at the
                    // commit (`CursorAddSync`); the add waits for it here.
                    if let Some(c) = s.connections.get_mut(&src) {
                        c.transaction.push(Held { txn, seq, entry });
                    }
                    if response_required {
                        o.send(src, AmqMsg::Response { conn, command });
                    }
                    return;
                }
                if persistent {
                    let then = if response_required { respond } else { Then::Nothing };
                    let add = Record::Add {
                        seq,
                        msg,
                        producer,
                        group,
                    };
                    // Queue.doMessageSend: the store's add comes first, then the cursor's.
                    self.store(s, add, response_required, then, o);
                    self.cursor_add(s, seq, entry, o);
                } else {
                    s.queue.insert(seq, entry);
                    if response_required {
                        // The memory store answers at once.
                        o.send(src, AmqMsg::Response { conn, command });
                    }
                }
                self.dispatch(s, o);
            }
            AmqMsg::MessageAck {
                kind,
                seqs,
                response_required,
                ..
            } => {
                for seq in seqs {
                    self.acknowledge(s, src, kind, seq, response_required, o);
                }
                self.dispatch(s, o);
            }
            AmqMsg::Commit { conn, command, txn } => self.commit(s, src, conn, command, txn, o),
            AmqMsg::Rollback { txn, .. } => {
                // LocalTransaction.rollback: the held sends are forgotten.
                if let Some(c) = s.connections.get_mut(&src) {
                    c.transaction.retain(|h| h.txn != txn);
                }
            }
            _ => {}
        }
    }

    /// A persistent message stored (or its add in the batch) joins the queue's cursor
    /// (`Queue.doPendingCursorAdditions`), unless it is a duplicate:
    /// - its `MessageId` is still in the index: KahaDB rejects the add
    ///   (`MessageDatabase.updateIndex`, "Duplicate message add attempt rejected") and the queue
    ///   does not dispatch it ("messageStore indicated duplicate add attempt … suppressing
    ///   duplicate dispatch");
    /// - the cursor's audit saw it (`AbstractStoreCursor.recoverMessage`: "cursor got duplicate
    ///   send", stored after all, `gotToTheStore`): `BaseDestination.duplicateFromStore`
    ///   poison-acks it with the cause "duplicate from store for queue://…", which removes it
    ///   from the store, and with `sendDuplicateFromStoreToDLQ` also sends it to `ActiveMQ.DLQ`.
    ///
    /// Without the audit (`enableAudit=false`), or once its window has moved past the number, a
    /// message consumed before is dispatched again.
    fn cursor_add(&self, s: &mut BrokerState, seq: Seq, entry: QueueEntry, o: &mut AmqOut) {
        let indexed = s
            .queue
            .values()
            .any(|e| e.persistent && (e.msg, e.producer) == (entry.msg, entry.producer));
        if indexed {
            return;
        }
        let id = MessageId::new(entry.msg, entry.producer);
        if !s.cursor_audit.as_mut().is_some_and(|a| a.is_duplicate(id)) {
            s.queue.insert(seq, entry);
            return;
        }
        let end = if self.settings.send_duplicate_from_store_to_dlq {
            s.dead_letters.insert(seq);
            Record::DeadLetter { seq }
        } else {
            Record::Remove { seq }
        };
        self.store(s, end, false, Then::Nothing, o);
    }

    /// `LocalTransaction.commit`: the transaction leaves the connection's context, its adds and
    /// the commit go to the journal (`KahaDBTransactionStore.commit`: the commit record synced
    /// as the strategy says, for a command that requires a response), and once written its
    /// messages join the queue and the response goes out. A transaction without persistent
    /// messages commits at once.
    fn commit(&self, s: &mut BrokerState, src: Id, conn: u32, command: u32, txn: u64, o: &mut AmqOut) {
        let Some(c) = s.connections.get_mut(&src) else {
            return;
        };
        let (held, others): (Vec<Held>, Vec<Held>) =
            std::mem::take(&mut c.transaction).into_iter().partition(|h| h.txn == txn);
        c.transaction = others;
        let adds: Vec<Record> = held
            .iter()
            .filter(|h| h.entry.persistent)
            .map(|h| Record::Add {
                seq: h.seq,
                msg: h.entry.msg,
                producer: h.entry.producer,
                group: h.entry.group,
            })
            .collect();
        let Some((last, earlier)) = adds.split_last() else {
            for h in held {
                s.queue.insert(h.seq, h.entry);
            }
            o.send(src, AmqMsg::Response { conn, command });
            self.dispatch(s, o);
            return;
        };
        for add in earlier {
            self.store(s, add.clone(), false, Then::Nothing, o);
        }
        let then = Then::Commit {
            client: src,
            conn,
            command,
            held,
        };
        self.store(s, last.clone(), true, then, o);
    }

    fn acknowledge(
        &self,
        s: &mut BrokerState,
        src: Id,
        kind: AckType,
        seq: Seq,
        response_required: bool,
        o: &mut AmqOut,
    ) {
        let Some(inflight) = s
            .connections
            .get_mut(&src)
            .and_then(|c| c.consumer.as_mut())
        else {
            return;
        };
        if kind == AckType::Redelivered {
            if inflight.contains(&seq) {
                if let Some(e) = s.queue.get_mut(&seq) {
                    e.redelivery_counter += 1;
                }
            }
            return;
        }
        if !inflight.remove(&seq) {
            return;
        }
        let Some(entry) = s.queue.remove(&seq) else {
            return;
        };
        if !entry.persistent {
            return;
        }
        if kind == AckType::Poison {
            s.dead_letters.insert(seq);
            self.store(s, Record::DeadLetter { seq }, response_required, Then::Nothing, o);
            return;
        }
        // KahaDBStore's StoreQueueTask: an ack that finds the add still waiting cancels it.
        let pending = s
            .batch
            .iter_mut()
            .find(|p| matches!(p.record, Some(Record::Add { seq: s, .. }) if s == seq));
        match pending {
            Some(p) if self.settings.concurrent_store_and_dispatch => p.record = None,
            _ => self.store(s, Record::Remove { seq }, response_required, Then::Nothing, o),
        }
    }

    /// `Queue.doActualDispatch`: each message in order to the first consumer with room in its
    /// prefetch, which then moves to the end of the list; an exclusive consumer takes all. A
    /// message of a group goes only to the group's owner (`assignMessageGroup`); a group without
    /// one is assigned to the consumer that takes its message, and a message whose owner is full
    /// waits while the ones behind it go on.
    fn dispatch(&self, s: &mut BrokerState, o: &mut AmqOut) {
        let prefetch = self.settings.prefetch as usize;
        let ready: Vec<Seq> = s
            .queue
            .iter()
            .filter(|(_, e)| e.dispatched.is_none() && self.available(e))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in ready {
            let candidates = if self.settings.exclusive {
                &s.consumers[..s.consumers.len().min(1)]
            } else {
                &s.consumers[..]
            };
            let room = |c: &Id| {
                s.connections
                    .get(c)
                    .and_then(|c| c.consumer.as_ref())
                    .is_some_and(|d| d.len() < prefetch)
            };
            let group = s.queue.get(&seq).and_then(|e| e.group);
            let owner = group.and_then(|g| s.groups.get(g));
            let Some(pos) = candidates
                .iter()
                .position(|c| room(c) && owner.is_none_or(|o| o == *c))
            else {
                if group.is_some() {
                    continue;
                }
                break;
            };
            let consumer = s.consumers[pos];
            if let (Some(g), None) = (group, owner) {
                s.groups.put(g, consumer);
            }
            if !self.settings.exclusive {
                s.consumers.remove(pos);
                s.consumers.push(consumer);
            }
            if let Some(d) = s
                .connections
                .get_mut(&consumer)
                .and_then(|c| c.consumer.as_mut())
            {
                d.insert(seq);
            }
            let entry = s.queue.get_mut(&seq).expect("ready entries are queued");
            entry.dispatched = Some(consumer);
            if self.settings.persist_redelivered && entry.persistent && !entry.flag_stored {
                // RegionBroker.preProcessDispatch: the flag is written before the dispatch.
                entry.flag_stored = true;
                self.store(s, Record::Redelivered { seq }, true, Then::Dispatch { seq }, o);
            } else {
                self.send_dispatch(s, seq, o);
            }
        }
    }

    /// May the message be dispatched yet? A persistent one waits for its journal write unless
    /// the store and the dispatch run concurrently (never with `persistJMSRedelivered`, AMQ-6133).
    fn available(&self, e: &QueueEntry) -> bool {
        e.stored || (self.settings.concurrent_store_and_dispatch && !self.settings.persist_redelivered)
    }

    fn send_dispatch(&self, s: &BrokerState, seq: Seq, o: &mut AmqOut) {
        let Some(e) = s.queue.get(&seq) else {
            return;
        };
        let Some(consumer) = e.dispatched else {
            return;
        };
        if let Some(c) = s.connections.get(&consumer) {
            o.send(
                consumer,
                AmqMsg::MessageDispatch {
                    conn: c.conn,
                    seq,
                    msg: e.msg,
                    producer: e.producer,
                    redelivery_counter: e.redelivery_counter,
                },
            );
        }
    }

    /// The connection is gone (reset, inactivity, or replaced by a new one): its consumer's
    /// unacknowledged messages return to the queue with their redelivery counter raised (the
    /// broker cannot know which of them reached the application: `LAST_DELIVERED_UNKNOWN`).
    fn connection_gone(&self, s: &mut BrokerState, client: Id, o: &mut AmqOut) {
        let Some(c) = s.connections.remove(&client) else {
            return;
        };
        o.cancel_timer(AmqTimer::ReadCheck(client));
        // TransactionBroker.removeConnection rolls back its open transactions: `c.transaction`
        // goes with the connection.
        s.consumers.retain(|c| *c != client);
        s.groups.remove_consumer(client);
        for seq in c.consumer.into_iter().flatten() {
            if let Some(e) = s.queue.get_mut(&seq) {
                e.dispatched = None;
                e.redelivery_counter += 1;
            }
        }
        self.dispatch(s, o);
    }

    pub fn on_timeout(&self, s: &mut BrokerState, timer: &AmqTimer, o: &mut AmqOut) {
        if s.ha.as_ref().is_some_and(|h| h.phase != Phase::Master)
            || matches!(timer, AmqTimer::Lock | AmqTimer::Tick | AmqTimer::NtpPoll)
        {
            self.on_ha_timeout(s, timer, o);
            return;
        }
        match timer {
            AmqTimer::KeepAlive => {
                for (client, c) in &s.connections {
                    o.send(*client, AmqMsg::KeepAlive { conn: c.conn });
                }
                o.set_timer(AmqTimer::KeepAlive, retry(self.settings.max_inactivity / 3));
            }
            AmqTimer::ReadCheck(client) => {
                let Some(c) = s.connections.get_mut(client) else {
                    return;
                };
                if c.read_check.inactive() {
                    // The inactivity monitor fails the transport; the client reads the close.
                    o.send(*client, AmqMsg::Closed { conn: c.conn });
                    self.connection_gone(s, *client, o);
                } else {
                    o.set_timer(AmqTimer::ReadCheck(*client), exact(self.settings.max_inactivity));
                }
            }
            AmqTimer::Append => self.append(s, o),
            AmqTimer::Fsync => {
                if s.store.dirty() {
                    s.store.fsync();
                    if s.ha.is_some() {
                        o.send(self.settings.store_id(), AmqMsg::Sync);
                    } else {
                        self.save(s, o);
                    }
                }
                o.set_timer(AmqTimer::Fsync, exact(self.settings.sync_interval));
            }
            _ => {}
        }
    }

    /// `DataFileAppender`'s writer thread: the batch goes to the operating system (of a pair,
    /// to the shared file), forced to disk if one of its writes needs it; once written the
    /// responses and held-back dispatches go out.
    fn append(&self, s: &mut BrokerState, o: &mut AmqOut) {
        let batch = std::mem::take(&mut s.batch);
        let force = batch.iter().any(|p| p.sync && p.record.is_some());
        let records: Vec<Record> = batch.iter().filter_map(|p| p.record.clone()).collect();
        if records.is_empty() {
            self.written(s, batch, o);
            return;
        }
        s.store.write(records.clone(), force);
        match s.ha.as_mut() {
            Some(ha) => {
                ha.writing.push_back(batch);
                o.send(self.settings.store_id(), AmqMsg::Write { records, sync: force });
            }
            None => {
                self.save(s, o);
                self.written(s, batch, o);
            }
        }
    }

    /// A batch is written: its adds are stored (the audit learns them), and what waited for it
    /// goes out.
    fn written(&self, s: &mut BrokerState, batch: Vec<Pending>, o: &mut AmqOut) {
        for p in &batch {
            if let Some(Record::Add {
                seq, msg, producer, ..
            }) = &p.record
            {
                if let Some(e) = s.queue.get_mut(seq) {
                    e.stored = true;
                }
                // setLastStoredSequenceId: the audit learns what the store holds.
                let last = s.producer_audit.entry((msg.producer, *producer)).or_insert(msg.seq);
                *last = (*last).max(msg.seq);
            }
        }
        for p in batch {
            match p.then {
                Then::Nothing => {}
                Then::Respond {
                    client,
                    conn,
                    command,
                } => {
                    if s.connections.get(&client).is_some_and(|c| c.conn == conn) {
                        o.send(client, AmqMsg::Response { conn, command });
                    }
                }
                Then::Dispatch { seq } => self.send_dispatch(s, seq, o),
                Then::Commit {
                    client,
                    conn,
                    command,
                    held,
                } => {
                    for h in held {
                        let entry = QueueEntry { stored: true, ..h.entry };
                        if entry.persistent {
                            self.cursor_add(s, h.seq, entry, o);
                        } else {
                            s.queue.insert(h.seq, entry);
                        }
                    }
                    if s.connections.get(&client).is_some_and(|c| c.conn == conn) {
                        o.send(client, AmqMsg::Response { conn, command });
                    }
                }
            }
        }
        self.dispatch(s, o);
    }
}
