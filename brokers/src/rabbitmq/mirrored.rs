//! Classic queues, mirrored or not: a leader holding the messages, and (with an `ha-mode`
//! policy) mirrors kept up to date by the leader's multicast.
//!
//! Promotion follows `rabbit_mirror_queue_misc:remove_from_queue` and `promote_slave`
//! (rabbitmq-server v3.13.7, `deps/rabbit/src/rabbit_mirror_queue_misc.erl`), which every
//! mirror runs on each GM `members_changed` (`rabbit_mirror_queue_slave`, `gm_deaths`): the dead
//! members leave the record and, while its master is dead, the oldest live mirror takes over.

use super::node::{to_client, Node, NodeState};
use super::protocol::{RabbitMsg, Stored};
use super::{Promote, QueueType, RabbitOut, RabbitTimer, FSYNC_INTERVAL};
use crate::timers::exact;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The queue's record in the cluster's metadata (Mnesia's `rabbit_queue` table), as one node's
/// replica holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueRecord {
    /// Bumped at every promotion.
    pub epoch: u32,
    /// Bumped at every membership change under one leader.
    pub version: u32,
    pub leader: Id,
    /// Oldest first: the order promotion follows.
    pub mirrors: Vec<Id>,
    pub synced: Vec<Id>,
}

impl QueueRecord {
    fn msg(&self) -> RabbitMsg {
        RabbitMsg::QueueRecord {
            epoch: self.epoch,
            version: self.version,
            leader: self.leader,
            mirrors: self.mirrors.clone(),
            synced: self.synced.clone(),
        }
    }

    /// Mnesia serialises the transactions that write the record (a write lock on every
    /// replica), so the replicas of one connected cluster apply the same writes in the same
    /// order. The model has no lock manager: a write is applied if it follows the replica's
    /// copy in that order — a promotion after the changes under the previous leader, two
    /// concurrent promotions (two mirrors that each saw the leader die first) by node. Only
    /// writes of running peers reach a replica: nothing crosses a partition, a paused node
    /// writes nothing, and a booting node takes the tables whole from a running peer.
    fn newer_than(&self, other: &QueueRecord) -> bool {
        (self.epoch, self.version, std::cmp::Reverse(self.leader))
            > (other.epoch, other.version, std::cmp::Reverse(other.leader))
    }
}

/// A publish waiting for its confirm: every mirror must have it, and a persistent message the
/// fsync.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    pub publisher: Id,
    pub channel: u32,
    pub seq: u64,
    pub waiting: BTreeSet<Id>,
    pub fsync: bool,
}

/// A consumer attached to the leader.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClassicConsumer {
    pub channel: u32,
    pub prefetch: u32,
    pub auto_ack: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClassicState {
    pub record: Option<QueueRecord>,
    pub leader: bool,
    /// A mirror under the recorded leader.
    pub mirror: bool,
    /// This mirror holds the whole queue: it was synchronised (or started with the cluster).
    pub in_sync: bool,
    /// Every message the queue holds, ready or unacknowledged, by its position.
    pub messages: BTreeMap<u64, Stored>,
    pub next_id: u64,
    // The leader's own bookkeeping.
    pub ready: VecDeque<u64>,
    pub unacked: BTreeMap<u64, Id>,
    pub consumers: BTreeMap<Id, ClassicConsumer>,
    /// The consumers in the order they attached, rotated as they are served round robin (not
    /// with a single active consumer: then it is the order the waiting ones take over in).
    pub service: VecDeque<Id>,
    /// `x-single-active-consumer`: the consumer the queue delivers to (`active_consumer`).
    pub active: Option<Id>,
    pub pending: BTreeMap<u64, Pending>,
    /// Unsynchronised mirrors, with the first position they received.
    pub joined_at: BTreeMap<Id, u64>,
    /// Writes since the last fsync.
    pub dirty: bool,
    /// A mirror heard the recorded leader die, and no newer record came since: the promotion
    /// rule its death calls for (`ha-promote-on-shutdown` or `ha-promote-on-failure`).
    pub headless: Option<Promote>,
}

impl ClassicState {
    pub fn leads(&self) -> bool {
        self.leader
    }
}

impl Node {
    fn mirrored(&self) -> bool {
        self.settings.queue_type == QueueType::Mirrored
    }

    fn initial_record(&self) -> QueueRecord {
        let mirrors = self.settings.initial_mirrors();
        QueueRecord {
            epoch: 0,
            version: 0,
            leader: Id::from(0),
            synced: mirrors.clone(),
            mirrors,
        }
    }

    /// The queue replica starts. On the cluster's first start the record is the declared one
    /// and every initial mirror is in sync. `loaded` are the tables a running peer sent (and
    /// which peers it saw down): this node's previous queue process died, so it recovers the
    /// queue from its message store only if the record still names it leader and no live mirror
    /// can take over (the queue waited for its leader, as with `when-synced`); a mirror comes
    /// back empty. Without `loaded`, this node was the last one down and loads its own copy of
    /// the durable record, which lists no mirrors (`rabbit_durable_queue` keeps no mirror pids:
    /// they all died).
    pub(super) fn classic_start(
        &self,
        me: Id,
        s: &mut NodeState,
        loaded: Option<(QueueRecord, Vec<Id>)>,
        o: &mut RabbitOut,
    ) {
        if !self.settings.durable {
            // A transient queue is deleted when its node stops, and declared again empty.
            s.disk.store.clear();
            s.disk.fsynced.clear();
        }
        let fresh = s.disk.record.is_none();
        let (mut record, recover) = match (loaded, &s.disk.record) {
            (Some((record, down)), _) if self.mirrored() => {
                let rule = self.settings.promote_on_failure;
                let successor = record.mirrors.iter().any(|m| {
                    *m != me
                        && !down.contains(m)
                        && (rule == Promote::Always || record.synced.contains(m))
                });
                let recover = record.leader == me && !successor;
                (record, recover)
            }
            (None, Some(r)) if self.mirrored() => {
                let durable = QueueRecord {
                    mirrors: Vec::new(),
                    synced: Vec::new(),
                    ..r.clone()
                };
                (durable, r.leader == me)
            }
            _ => {
                let r = self.initial_record();
                let lead = r.leader == me;
                (r, lead)
            }
        };
        if !fresh {
            record.mirrors.retain(|m| *m != me);
            record.synced.retain(|m| *m != me);
        }
        s.classic = ClassicState::default();
        if recover {
            let c = &mut s.classic;
            c.leader = true;
            c.messages = s.disk.store.clone();
            c.ready = c.messages.keys().copied().collect();
            c.next_id = c.messages.keys().last().map_or(0, |l| l + 1);
            for m in &record.mirrors {
                if !record.synced.contains(m) {
                    c.joined_at.insert(*m, c.next_id);
                }
            }
        } else {
            s.disk.store.clear();
        }
        s.classic.mirror = fresh && record.mirrors.contains(&me);
        s.classic.in_sync = s.classic.mirror && record.synced.contains(&me);
        s.classic.record = Some(record.clone());
        s.disk.record = Some(record);
        if recover && !fresh && self.mirrored() {
            self.replace_mirrors(me, s, o);
            s.classic.record.as_mut().expect("started").version += 1;
            self.broadcast_record(me, s, o);
        }
        self.save(s, o);
    }

    fn store(&self, s: &mut NodeState, id: u64, stored: &Stored, o: &mut RabbitOut) {
        if stored.persistent && self.settings.durable {
            s.disk.store.insert(id, stored.clone());
            self.written(s, o);
        }
    }

    fn unstore(&self, s: &mut NodeState, id: u64, o: &mut RabbitOut) {
        if s.disk.store.remove(&id).is_some() {
            self.written(s, o);
        }
    }

    /// The store changed: saved to the page cache now, fsynced with the next batch.
    fn written(&self, s: &mut NodeState, o: &mut RabbitOut) {
        self.save(s, o);
        if !s.classic.dirty {
            s.classic.dirty = true;
            o.set_timer(RabbitTimer::Fsync, exact(FSYNC_INTERVAL));
        }
    }

    fn live_mirrors(&self, s: &NodeState) -> Vec<Id> {
        s.classic
            .record
            .iter()
            .flat_map(|r| r.mirrors.iter().copied())
            .filter(|m| !s.down.contains(m))
            .collect()
    }

    fn broadcast_record(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let record = s.classic.record.clone().expect("a leader has a record");
        for p in self.settings.node_ids() {
            if p != me {
                o.send(p, record.msg());
            }
        }
        s.disk.record = Some(record);
        self.save(s, o);
    }

    pub(super) fn classic_timeout(
        &self,
        s: &mut NodeState,
        timer: &RabbitTimer,
        o: &mut RabbitOut,
    ) {
        if *timer == RabbitTimer::Fsync && s.classic.dirty {
            s.classic.dirty = false;
            s.disk.fsynced = s.disk.store.clone();
            self.save(s, o);
            let ids: Vec<u64> = s.classic.pending.keys().copied().collect();
            for id in ids {
                s.classic.pending.get_mut(&id).expect("listed").fsync = false;
                self.maybe_confirm(s, id, o);
            }
        }
    }

    fn maybe_confirm(&self, s: &mut NodeState, id: u64, o: &mut RabbitOut) {
        let ready = s
            .classic
            .pending
            .get(&id)
            .is_some_and(|p| p.waiting.is_empty() && !p.fsync);
        if ready {
            let p = s.classic.pending.remove(&id).expect("pending");
            self.confirm(s, p.publisher, (p.channel, p.seq), o);
        }
    }

    pub(super) fn classic_client_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        if !s.classic.leader {
            if !matches!(msg, RabbitMsg::Heartbeat) {
                let leader = s
                    .classic
                    .record
                    .as_ref()
                    .map(|r| r.leader)
                    .filter(|l| *l != me);
                o.send(src, RabbitMsg::NotLeader { leader });
            }
            return;
        }
        match msg {
            RabbitMsg::Open => self.accept_client(s, src, o),
            RabbitMsg::Publish {
                channel,
                seq,
                msg,
                persistent,
                mandatory,
            } if s.clients.contains(&src) => {
                if self.settings.route(msg.seq).unroutable {
                    self.unroutable(s, src, (channel, seq), mandatory, o);
                    return;
                }
                // `rabbit_amqqueue_process:will_overflow/2`: the ready messages plus this one
                // over `x-max-length` and the publish is dropped, nacked when confirms are on
                // (`send_reject_publish/2`); a publish with no confirms is dropped silently.
                if self
                    .settings
                    .max_length
                    .is_some_and(|max| s.classic.ready.len() as u64 + 1 > u64::from(max))
                {
                    self.reject_publish(s, src, (channel, seq), o);
                    return;
                }
                let id = s.classic.next_id;
                s.classic.next_id += 1;
                let stored = Stored {
                    msg,
                    channel,
                    persistent,
                    delivered: false,
                };
                s.classic.messages.insert(id, stored.clone());
                s.classic.ready.push_back(id);
                self.store(s, id, &stored, o);
                let epoch = s.classic.record.as_ref().map_or(0, |r| r.epoch);
                let waiting: BTreeSet<Id> = self.live_mirrors(s).into_iter().collect();
                for m in &waiting {
                    let stored = stored.clone();
                    o.send(*m, RabbitMsg::MirrorPublish { epoch, id, stored });
                }
                s.classic.pending.insert(
                    id,
                    Pending {
                        publisher: src,
                        channel,
                        seq,
                        waiting,
                        fsync: persistent && self.settings.durable,
                    },
                );
                self.maybe_confirm(s, id, o);
                self.deliver(me, s, o);
            }
            RabbitMsg::Consume {
                channel,
                prefetch,
                auto_ack,
            } if s.clients.contains(&src) => {
                self.detach(s, src);
                let consumer = ClassicConsumer {
                    channel,
                    prefetch,
                    auto_ack,
                };
                s.classic.consumers.insert(src, consumer);
                s.classic.service.push_back(src);
                // `handle_call({basic_consume, …})`: with a single active consumer, the new
                // consumer is active only if none is.
                if self.settings.single_active && s.classic.active.is_none() {
                    s.classic.active = Some(src);
                }
                to_client(s, src, RabbitMsg::ConsumeOk, o);
                self.deliver(me, s, o);
            }
            RabbitMsg::Ack { tag } | RabbitMsg::Nack { tag, .. } => {
                if s.classic.unacked.get(&tag) != Some(&src) {
                    return;
                }
                s.classic.unacked.remove(&tag);
                if matches!(msg, RabbitMsg::Nack { requeue: true, .. }) {
                    s.classic.ready.push_front(tag);
                } else {
                    self.drop_message(me, s, tag, o);
                }
                self.deliver(me, s, o);
            }
            _ => {}
        }
    }

    /// Detaches a consumer, requeueing its unacknowledged deliveries at the front. If it was the
    /// single active consumer, the one that attached first among the rest takes over
    /// (`rabbit_amqqueue_process:new_single_active_consumer_after_channel_down/4`, which takes
    /// `rabbit_queue_consumers:get_consumer/1`, the head of the consumers' queue).
    fn detach(&self, s: &mut NodeState, consumer: Id) {
        let c = &mut s.classic;
        if c.consumers.remove(&consumer).is_some() {
            c.service.retain(|x| *x != consumer);
            if c.active == Some(consumer) {
                c.active = c.service.front().copied();
            }
            let mine: Vec<u64> = c
                .unacked
                .iter()
                .filter(|(_, by)| **by == consumer)
                .map(|(id, _)| *id)
                .collect();
            for id in mine.iter().rev() {
                c.unacked.remove(id);
                c.ready.push_front(*id);
            }
        }
    }

    pub(super) fn classic_client_gone(
        &self,
        me: Id,
        s: &mut NodeState,
        client: Id,
        o: &mut RabbitOut,
    ) {
        if s.classic.leader {
            self.detach(s, client);
            self.deliver(me, s, o);
        }
    }

    /// A message leaves the queue (acked, auto-acked, rejected): mirrors drop it too.
    fn drop_message(&self, me: Id, s: &mut NodeState, id: u64, o: &mut RabbitOut) {
        s.classic.messages.remove(&id);
        self.unstore(s, id, o);
        let epoch = s.classic.record.as_ref().map_or(0, |r| r.epoch);
        for m in self.live_mirrors(s) {
            o.send(m, RabbitMsg::MirrorDrop { epoch, id });
        }
        // A mirror is synchronised once nothing older than it remains.
        let oldest = s
            .classic
            .messages
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX);
        let caught_up: Vec<Id> = s
            .classic
            .joined_at
            .iter()
            .filter(|(_, j)| oldest >= **j)
            .map(|(m, _)| *m)
            .collect();
        if !caught_up.is_empty() {
            for m in caught_up {
                s.classic.joined_at.remove(&m);
                self.sync_mirror(s, m, o);
            }
            s.classic.record.as_mut().expect("a leader").version += 1;
            self.broadcast_record(me, s, o);
        }
    }

    /// Hands ready messages to consumers with credit, round robin; with a single active
    /// consumer, to that one only (`rabbit_queue_consumers:deliver/5`).
    fn deliver(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let mut auto_acked = Vec::new();
        while !s.classic.ready.is_empty() {
            let c = &mut s.classic;
            let credit = |c: &ClassicState, id: Id| {
                let con = &c.consumers[&id];
                let held = c.unacked.values().filter(|by| **by == id).count() as u32;
                con.auto_ack || con.prefetch == 0 || held < con.prefetch
            };
            let mut found = None;
            if self.settings.single_active {
                found = c.active.filter(|id| credit(c, *id));
            } else {
                for _ in 0..c.service.len() {
                    let id = c.service.pop_front().expect("not empty");
                    c.service.push_back(id);
                    if credit(c, id) {
                        found = Some(id);
                        break;
                    }
                }
            }
            let Some(consumer) = found else { break };
            let id = c.ready.pop_front().expect("not empty");
            let stored = c.messages.get_mut(&id).expect("ready messages exist");
            let redelivered = stored.delivered;
            stored.delivered = true;
            let (msg, stored) = (stored.msg, stored.clone());
            let deliver = RabbitMsg::Deliver {
                channel: c.consumers[&consumer].channel,
                tag: id,
                msg,
                published_on: stored.channel,
                redelivered,
                delivery_count: 0,
            };
            let auto_ack = c.consumers[&consumer].auto_ack;
            to_client(s, consumer, deliver, o);
            let c = &mut s.classic;
            if auto_ack {
                auto_acked.push(id);
            } else {
                c.unacked.insert(id, consumer);
                if s.disk.store.contains_key(&id) {
                    self.store(s, id, &stored, o);
                }
            }
        }
        for id in auto_acked {
            self.drop_message(me, s, id, o);
        }
    }

    pub(super) fn classic_peer_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        let leader = s.classic.record.as_ref().map(|r| r.leader);
        match msg {
            RabbitMsg::MirrorPublish { epoch, id, stored }
                if leader == Some(src) && s.classic.mirror =>
            {
                s.classic.messages.insert(id, stored.clone());
                s.classic.next_id = s.classic.next_id.max(id + 1);
                self.store(s, id, &stored, o);
                o.send(src, RabbitMsg::MirrorPublishOk { epoch, id });
            }
            RabbitMsg::MirrorPublishOk { id, .. } if s.classic.leader => {
                if let Some(p) = s.classic.pending.get_mut(&id) {
                    p.waiting.remove(&src);
                }
                self.maybe_confirm(s, id, o);
            }
            RabbitMsg::MirrorDrop { id, .. } if leader == Some(src) && s.classic.mirror => {
                s.classic.messages.remove(&id);
                self.unstore(s, id, o);
            }
            RabbitMsg::MirrorSync { messages, .. } if leader == Some(src) && s.classic.mirror => {
                s.classic.messages = messages.iter().cloned().collect();
                s.classic.in_sync = true;
                for (id, stored) in messages {
                    self.store(s, id, &stored, o);
                }
            }
            RabbitMsg::QueueRecord {
                epoch,
                version,
                leader,
                mirrors,
                synced,
            } if self.mirrored() && !s.partitioned.contains(&src) && !s.down.contains(&src) => {
                let theirs = QueueRecord {
                    epoch,
                    version,
                    leader,
                    mirrors,
                    synced,
                };
                self.on_record(me, s, theirs, o);
            }
            RabbitMsg::NodeUp if s.classic.leader && self.mirrored() => self.node_up(me, s, src, o),
            _ => {}
        }
    }

    /// A running peer wrote the record (a leader's membership change, a promotion).
    fn on_record(&self, me: Id, s: &mut NodeState, theirs: QueueRecord, o: &mut RabbitOut) {
        let mine = s.classic.record.clone().expect("started");
        if !theirs.newer_than(&mine) {
            return;
        }
        let was_leader = s.classic.leader;
        // A mirror stays a mirror, contents and all, under a promoted leader; a node that was
        // not one joins empty and unsynchronised, until the leader synchronises it.
        let joined = theirs.mirrors.contains(&me) && !s.classic.mirror;
        s.classic.leader = theirs.leader == me;
        if was_leader && !s.classic.leader {
            // Another leader won: this one's contents are discarded; clients go there.
            self.drop_clients(s, Some(theirs.leader), o);
            s.classic = ClassicState::default();
        }
        if joined {
            s.classic.messages.clear();
            s.disk.store.clear();
            s.classic.in_sync = false;
        }
        s.classic.mirror = theirs.mirrors.contains(&me);
        if !s.classic.mirror && !s.classic.leader {
            s.classic.messages.clear();
            s.disk.store.clear();
        }
        s.classic.headless = None;
        s.classic.record = Some(theirs.clone());
        s.disk.record = Some(theirs);
        self.save(s, o);
    }

    /// The application started on a peer (`rabbit_mirror_queue_misc:on_node_up`): whatever
    /// replica it had is gone, so the leader drops it and, to keep the policy's replicas, adds
    /// mirrors on the nodes that are up — that peer among them — as new mirrors.
    fn node_up(&self, me: Id, s: &mut NodeState, peer: Id, o: &mut RabbitOut) {
        let before = s.classic.record.clone();
        if before.as_ref().is_some_and(|r| r.mirrors.contains(&peer)) {
            self.drop_mirror(s, peer, o);
        }
        self.replace_mirrors(me, s, o);
        if s.classic.record != before {
            s.classic.record.as_mut().expect("started").version += 1;
            self.broadcast_record(me, s, o);
        }
    }

    /// GM drops a dead mirror: confirms stop waiting for it (a channel takes a queue process's
    /// `noconnection` exit as benign: `rabbit_channel:handle_publishing_queue_down`).
    fn drop_mirror(&self, s: &mut NodeState, peer: Id, o: &mut RabbitOut) {
        let r = s.classic.record.as_mut().expect("started");
        r.mirrors.retain(|m| *m != peer);
        r.synced.retain(|m| *m != peer);
        s.classic.joined_at.remove(&peer);
        let ids: Vec<u64> = s.classic.pending.keys().copied().collect();
        for id in ids {
            s.classic
                .pending
                .get_mut(&id)
                .expect("listed")
                .waiting
                .remove(&peer);
            self.maybe_confirm(s, id, o);
        }
    }

    /// A new mirror: it learns the record first, then — with `ha-sync-mode=automatic`, or if
    /// the queue is empty — receives the whole queue; otherwise it stays unsynchronised until
    /// everything older than it is gone.
    fn add_mirror(&self, s: &mut NodeState, mirror: Id, o: &mut RabbitOut) {
        let sync = self.settings.ha_sync_automatic || s.classic.messages.is_empty();
        let r = s.classic.record.as_mut().expect("started");
        r.mirrors.push(mirror);
        if sync && !r.synced.contains(&mirror) {
            r.synced.push(mirror);
        }
        r.version += 1;
        o.send(mirror, r.msg());
        if sync {
            self.sync_mirror(s, mirror, o);
        } else {
            s.classic.joined_at.insert(mirror, s.classic.next_id);
        }
    }

    /// The mirror receives the whole queue and counts as synchronised from now on; the mirror
    /// itself trusts nothing else (a record can be older than its last restart).
    fn sync_mirror(&self, s: &mut NodeState, mirror: Id, o: &mut RabbitOut) {
        let epoch = s.classic.record.as_ref().map_or(0, |r| r.epoch);
        let messages: Vec<(u64, Stored)> = s.classic.messages.clone().into_iter().collect();
        o.send(mirror, RabbitMsg::MirrorSync { epoch, messages });
        let record = s.classic.record.as_mut().expect("started");
        if !record.synced.contains(&mirror) {
            record.synced.push(mirror);
        }
    }

    pub(super) fn classic_peer_down(
        &self,
        me: Id,
        s: &mut NodeState,
        peer: Id,
        shutdown: bool,
        o: &mut RabbitOut,
    ) {
        if !self.mirrored() {
            return;
        }
        let record = s.classic.record.clone().expect("started");
        if s.classic.leader && record.mirrors.contains(&peer) {
            // GM drops the mirror, and a replacement is added.
            self.drop_mirror(s, peer, o);
            s.classic.record.as_mut().expect("started").version += 1;
            self.replace_mirrors(me, s, o);
            self.broadcast_record(me, s, o);
        } else if !s.classic.leader {
            if record.leader == peer {
                if !s.classic.mirror {
                    return;
                }
                s.classic.headless = Some(if shutdown {
                    self.settings.promote_on_shutdown
                } else {
                    self.settings.promote_on_failure
                });
            } else if record.mirrors.contains(&peer) {
                // Every live member takes the dead mirror out of its copy.
                let r = s.classic.record.as_mut().expect("started");
                r.mirrors.retain(|m| *m != peer);
                r.synced.retain(|m| *m != peer);
            } else {
                return;
            }
            if let Some(rule) = s.classic.headless {
                self.take_over(me, s, rule, o);
            }
        }
    }

    /// `rabbit_mirror_queue_misc:remove_from_queue`, run on every GM membership change: while
    /// the record's leader is dead, the oldest live mirror the rule allows is promoted — also
    /// when the one chosen at the leader's death has died since without taking over.
    fn take_over(&self, me: Id, s: &mut NodeState, rule: Promote, o: &mut RabbitOut) {
        let record = s.classic.record.as_ref().expect("started");
        let successor = record
            .mirrors
            .iter()
            .copied()
            .filter(|m| !s.down.contains(m))
            .find(|m| {
                let synced = if *m == me {
                    s.classic.in_sync
                } else {
                    record.synced.contains(m)
                };
                rule == Promote::Always || synced
            });
        if successor == Some(me) {
            self.promote(me, s, o);
        }
    }

    /// ha-mode=exactly: keep `ha-params` replicas on the nodes that are up.
    fn replace_mirrors(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        loop {
            let r = s.classic.record.as_ref().expect("started");
            if r.mirrors.len() + 1 >= self.settings.ha_replicas {
                return;
            }
            let Some(free) = self
                .settings
                .node_ids()
                .into_iter()
                .find(|n| *n != me && !r.mirrors.contains(n) && !s.down.contains(n))
            else {
                return;
            };
            self.add_mirror(s, free, o);
        }
    }

    /// The oldest eligible mirror takes over: everything it holds is requeued, flagged
    /// redelivered, since it cannot tell what its predecessor delivered.
    fn promote(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let c = &mut s.classic;
        let old = c.record.clone().expect("started");
        let mirrors: Vec<Id> = old
            .mirrors
            .iter()
            .copied()
            .filter(|m| *m != me && !s.down.contains(m))
            .collect();
        let synced = old
            .synced
            .iter()
            .copied()
            .filter(|m| mirrors.contains(m))
            .collect();
        c.record = Some(QueueRecord {
            epoch: old.epoch + 1,
            version: 0,
            leader: me,
            mirrors,
            synced,
        });
        c.leader = true;
        c.mirror = false;
        c.headless = None;
        for stored in c.messages.values_mut() {
            stored.delivered = true;
        }
        c.ready = c.messages.keys().copied().collect();
        c.next_id = c.messages.keys().last().map_or(0, |l| l + 1).max(c.next_id);
        self.replace_mirrors(me, s, o);
        self.broadcast_record(me, s, o);
    }
}
