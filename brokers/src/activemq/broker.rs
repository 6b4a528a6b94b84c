//! The broker: its transport connections with their inactivity monitors, the queue and its
//! subscriptions, and the KahaDB store behind it.

use super::kahadb::KahaDb;
use super::protocol::{AckType, AmqMsg, Record, Seq};
use super::{AmqDisk, AmqOut, AmqTimer, Settings, SyncStrategy, APPEND};
use crate::timers::{exact, retry};
use mqcheck_invariants::MsgId;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};

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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerState {
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
    pub connections: BTreeMap<Id, Connection>,
    /// The queue's consumers in dispatch order: round robin moves the one served last to the end.
    pub consumers: Vec<Id>,
    /// `Queue.messageGroupOwners`, in memory only.
    pub groups: MessageGroupMap,
}

impl Broker {
    pub fn start(&self, store: Option<KahaDb>, o: &mut AmqOut) -> BrokerState {
        let store = store.unwrap_or_default();
        let (recovered, dead_letters, next_seq) = store.replay();
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
        o.set_timer(AmqTimer::KeepAlive, retry(self.settings.max_inactivity / 3));
        if self.settings.sync_strategy == SyncStrategy::Periodic {
            o.set_timer(AmqTimer::Fsync, exact(self.settings.sync_interval));
        }
        BrokerState {
            producer_audit: store.producer_audit(),
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
                },
            );
            o.set_timer(AmqTimer::ClientSilent(src), exact(self.settings.max_inactivity));
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
        o.set_timer(AmqTimer::ClientSilent(src), exact(self.settings.max_inactivity));
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
                s.queue.insert(seq, entry);
                if persistent {
                    let then = if response_required { respond } else { Then::Nothing };
                    let add = Record::Add {
                        seq,
                        msg,
                        producer,
                        group,
                    };
                    self.store(s, add, response_required, then, o);
                } else if response_required {
                    // The memory store answers at once.
                    o.send(src, AmqMsg::Response { conn, command });
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
        o.cancel_timer(AmqTimer::ClientSilent(client));
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
        match timer {
            AmqTimer::KeepAlive => {
                for (client, c) in &s.connections {
                    o.send(*client, AmqMsg::KeepAlive { conn: c.conn });
                }
                o.set_timer(AmqTimer::KeepAlive, retry(self.settings.max_inactivity / 3));
            }
            AmqTimer::ClientSilent(client) => {
                // The inactivity monitor fails the transport; the client reads the close.
                if let Some(c) = s.connections.get(client) {
                    o.send(*client, AmqMsg::Closed { conn: c.conn });
                }
                self.connection_gone(s, *client, o);
            }
            AmqTimer::Append => self.append(s, o),
            AmqTimer::Fsync => {
                if s.store.dirty() {
                    s.store.fsync();
                    self.save(s, o);
                }
                o.set_timer(AmqTimer::Fsync, exact(self.settings.sync_interval));
            }
            _ => {}
        }
    }

    /// `DataFileAppender`'s writer thread: the batch goes to the operating system, forced to
    /// disk if one of its writes needs it; then the responses and held-back dispatches go out.
    fn append(&self, s: &mut BrokerState, o: &mut AmqOut) {
        let batch = std::mem::take(&mut s.batch);
        let force = batch.iter().any(|p| p.sync && p.record.is_some());
        let records: Vec<Record> = batch.iter().filter_map(|p| p.record.clone()).collect();
        for r in &records {
            if let Record::Add {
                seq, msg, producer, ..
            } = r
            {
                if let Some(e) = s.queue.get_mut(seq) {
                    e.stored = true;
                }
                // setLastStoredSequenceId: the audit learns what the store holds.
                let last = s.producer_audit.entry((msg.producer, *producer)).or_insert(msg.seq);
                *last = (*last).max(msg.seq);
            }
        }
        if !records.is_empty() {
            s.store.write(records, force);
            self.save(s, o);
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
                        s.queue.insert(h.seq, QueueEntry { stored: true, ..h.entry });
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
