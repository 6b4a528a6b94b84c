//! Quorum queues: a Raft group (Ra) replicating the commands of the `rabbit_fifo` state machine.
//!
//! # Returns and the delivery limit
//!
//! A checked-out message comes back to the queue when its consumer returns it (`basic.nack` or
//! `basic.reject` with `requeue=true`) or when the consumer's channel goes down. Which of these
//! raise the message's delivery count — shown as `x-delivery-count` and compared with
//! `delivery-limit` — changed between releases ([`DeliveryCountRule`]):
//!
//! - 3.13 (`rabbit_fifo:return_one/5`, tag v3.13.7): every return increments `delivery_count`,
//!   a consumer down included (`return_all`); no default limit.
//! - 4.0–4.2 (`return_one/8`, tags v4.0.0, v4.2.9): every return increments `acquired_count`
//!   (`incr_msg/3`), which is compared with the limit and shown as `x-delivery-count`
//!   (`rabbit_fifo_client:add_delivery_count_header/2`); the channel sends a plain `return` for
//!   both `basic.nack` and `basic.reject` with requeue.
//! - 4.3 (rabbitmq-server #15387, commit 84432522bf; tag v4.3.0): only failed deliveries count
//!   (`incr_msg_headers/3` with `DeliveryFailed`). `basic.reject` requeue=true becomes `modify`
//!   with `delivery_failed=true`, `basic.nack` requeue=true a plain `requeue` that does not count;
//!   a consumer down returns with `delivery_failed=true` (`maybe_return_all`, `Reason == down`).
//!
//! A message whose count passes the limit (`count > delivery-limit`) is dead-lettered or dropped
//! instead of returned. Since 4.0 a quorum queue without a `delivery-limit` gets 20
//! (`rabbit_quorum_queue`'s `?DEFAULT_DELIVERY_LIMIT`).
//!
//! # Single active consumer
//!
//! With `x-single-active-consumer` the service queue ([`Fifo::service`]) holds the active
//! consumer alone and [`Fifo::waiting`] the others, in the order they checked out. A checkout
//! while a consumer is active waits (`rabbit_fifo:update_consumer/8`); the active consumer's
//! `down` returns its checked-out messages as any consumer down does and then activates the head
//! of the line (`activate_next_consumer/2`), which is served the returned messages first. The
//! dead-letter queue below is served to the active consumer only.
//!
//! # Dead-lettering
//!
//! `rabbit_fifo_dlx:discard/4` decides what becomes of a message rejected with `requeue=false`
//! (reason `rejected`) or past the delivery limit (reason `delivery_limit`). Without a
//! dead-letter exchange the message is dropped, and only a global counter
//! (`messages_dead_lettered`, strategy `disabled`) records it: no client can tell it from a loss.
//! With one (`dead-letter-exchange=dlx`, the default `at-most-once` strategy) the leader
//! publishes it to the exchange, which routes it to the dead-letter queue, where a consumer reads
//! it with an `x-death` header naming the reason. That is how an application learns that the
//! broker, not a fault, took a message away — also when the return that passed the limit was its
//! own channel going down, which its handler never saw. The model keeps the dead-letter queue in
//! this state machine ([`Fifo::dead_letters`]) and every consumer of the queue also consumes it.
//! RabbitMQ's dead-letter queue is a queue of its own, and at-most-once dead-lettering can lose a
//! message whose leader fails before the target queue has it; the model's never loses one, so it
//! can miss that loss but never reports one RabbitMQ would not have.

use super::node::{to_client, Node, NodeState};
use super::protocol::{Command, Entry, Index, RabbitMsg, Term};
use super::{RabbitOut, RabbitTimer, Settings, ELECTION_TIMEOUT, MAX_APPEND, RAFT_HEARTBEAT};
use crate::timers::retry;
use mqcheck_invariants::MsgId;
use rpds::VectorSync;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RaftRole {
    Follower,
    Candidate {
        votes: BTreeSet<Id>,
    },
    Leader {
        /// Next index to send to each follower (optimistic: raised as entries are sent).
        next: BTreeMap<Id, Index>,
        /// Highest index each follower is known to hold.
        matched: BTreeMap<Id, Index>,
    },
}

/// One member of the quorum queue's Raft group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumState {
    pub role: RaftRole,
    pub term: Term,
    pub voted_for: Option<Id>,
    pub log: VectorSync<Entry>,
    pub commit: Index,
    pub applied: Index,
    /// The leader this member last heard from, as a hint for clients.
    pub leader: Option<Id>,
    pub fifo: Fifo,
}

impl QuorumState {
    pub fn new(term: Term, voted_for: Option<Id>, log: VectorSync<Entry>) -> Self {
        QuorumState {
            role: RaftRole::Follower,
            term,
            voted_for,
            log,
            commit: 0,
            applied: 0,
            leader: None,
            fifo: Fifo::default(),
        }
    }

    pub fn last_index(&self) -> Index {
        self.log.len() as Index
    }

    fn term_at(&self, index: Index) -> Term {
        if index == 0 {
            0
        } else {
            self.log[index as usize - 1].term
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, RaftRole::Leader { .. })
    }
}

/// A message in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FifoMsg {
    pub msg: MsgId,
    /// The channel it was published on.
    pub channel: u32,
    /// Times it was handed to a consumer: a later delivery is flagged redelivered.
    pub acquired: u32,
    /// The returns [`DeliveryCountRule`] counts: the `x-delivery-count` header, and what
    /// `delivery-limit` is compared with.
    pub delivery_count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FifoConsumer {
    /// The channel it consumes on: deliveries carry it.
    pub channel: u32,
    /// The index of the checkout that attached it: commands of an older attachment are ignored.
    pub checkout: Index,
    pub prefetch: u32,
    pub auto_ack: bool,
    pub checked_out: BTreeSet<Index>,
    /// Dead letters handed to it and not yet settled.
    pub dead_letters_out: BTreeSet<Index>,
}

/// Why a message was dead-lettered: the `reason` of its `x-death` header
/// (`rabbit_dead_letter:reason()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeathReason {
    /// `basic.reject` or `basic.nack` with `requeue=false`.
    Rejected,
    /// Its delivery count passed `delivery-limit`.
    DeliveryLimit,
}

impl std::fmt::Display for DeathReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeathReason::Rejected => "rejected",
            DeathReason::DeliveryLimit => "delivery_limit",
        })
    }
}

/// A message in the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeadLetter {
    pub msg: MsgId,
    pub reason: DeathReason,
}

/// Which returns of a checked-out message raise its delivery count — the count `delivery-limit`
/// is compared with and the `x-delivery-count` header shows — by release (`rabbit_fifo`'s
/// `return_one/8`). Chosen once, in `Settings::from_config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryCountRule {
    /// 3.13 and 4.0–4.2: every return counts — `basic.nack` and `basic.reject` with requeue
    /// (both a plain `return` command from the channel) and the consumer's channel going down
    /// (`return_all`). 3.13 increments `delivery_count`; 4.0–4.2 increment `acquired_count` on
    /// every return, compare it with the limit and show it as `x-delivery-count`.
    EveryReturn,
    /// 4.3 (rabbitmq-server #15387, commit 84432522bf): failed deliveries only. `basic.reject`
    /// requeue=true is a `modify` with `delivery_failed=true` and counts; `basic.nack`
    /// requeue=true is a plain `requeue` that does not (so a message can be returned without
    /// end); a consumer going down returns its messages with `delivery_failed=true` (`return_all`
    /// with `Reason == down`) and counts.
    FailedDeliveries,
}

/// Why a checked-out message went back to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Returned {
    /// `basic.nack` requeue=true.
    Requeued,
    /// `basic.reject` requeue=true.
    Rejected,
    /// The consumer's channel is gone (its connection closed, or the client attached again).
    ConsumerDown,
}

impl DeliveryCountRule {
    /// Does this return raise the message's delivery count?
    pub fn counts(self, returned: Returned) -> bool {
        match self {
            DeliveryCountRule::EveryReturn => true,
            DeliveryCountRule::FailedDeliveries => returned != Returned::Requeued,
        }
    }
}

/// `rabbit_fifo`: the queue as every member computes it from the committed log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fifo {
    /// Messages by the index of their enqueue.
    pub messages: BTreeMap<Index, FifoMsg>,
    pub ready: VecDeque<Index>,
    pub consumers: BTreeMap<Id, FifoConsumer>,
    /// Round-robin service order. With `x-single-active-consumer`, the active consumer alone.
    pub service: VecDeque<Id>,
    /// `x-single-active-consumer`: the attached consumers that are not active, in the order they
    /// attached (`waiting_consumers`, sorted by priority, then credit, then consumer key — the
    /// checkout's index — in 4.x; appended in 3.13: the same order for the model's consumers,
    /// which share one prefetch and have no priority).
    pub waiting: VecDeque<Id>,
    /// Publish sequence numbers enqueued per (publisher, channel): a repeated enqueue is
    /// confirmed again but not enqueued twice.
    pub enqueuers: BTreeMap<(Id, u32), BTreeSet<u64>>,
    /// The dead-letter queue (`dead-letter-exchange=dlx`), by the index of the message's enqueue:
    /// what the queue dead-lettered, until a consumer settles it.
    pub dead_letters: BTreeMap<Index, DeadLetter>,
    /// Dead letters waiting for a consumer, oldest first.
    pub dead_ready: VecDeque<Index>,
    /// `x-overflow=reject-publish`: the enqueuers were sent `{queue_status, reject_publish}`
    /// (the ready messages passed `x-max-length`) and not yet `go` (back at or below 80% of it).
    pub reject_publish: bool,
}

impl Fifo {
    /// Applies the command at `index`; returns the effects (messages to clients) the leader
    /// carries out.
    pub fn apply(
        &mut self,
        index: Index,
        command: &Command,
        settings: &Settings,
    ) -> Vec<(Id, RabbitMsg)> {
        let mut fx = Vec::new();
        match command {
            Command::Noop => {}
            Command::Enqueue {
                publisher,
                channel,
                seq,
                msg,
            } => {
                let seen = self.enqueuers.entry((*publisher, *channel)).or_default();
                if seen.insert(*seq) {
                    self.messages.insert(
                        index,
                        FifoMsg {
                            msg: *msg,
                            channel: *channel,
                            acquired: 0,
                            delivery_count: 0,
                        },
                    );
                    self.ready.push_back(index);
                }
                fx.push((
                    *publisher,
                    RabbitMsg::Confirm {
                        channel: *channel,
                        seq: *seq,
                    },
                ));
            }
            Command::Checkout {
                consumer,
                channel,
                prefetch,
                auto_ack,
            } => {
                self.detach(*consumer, settings);
                self.consumers.insert(
                    *consumer,
                    FifoConsumer {
                        channel: *channel,
                        checkout: index,
                        prefetch: *prefetch,
                        auto_ack: *auto_ack,
                        checked_out: BTreeSet::new(),
                        dead_letters_out: BTreeSet::new(),
                    },
                );
                // `update_consumer/8`: with a single active consumer, a new consumer waits
                // while another is active (`add_waiting/2`); `basic.consume-ok` either way.
                if settings.single_active && !self.service.is_empty() {
                    self.waiting.push_back(*consumer);
                } else {
                    self.service.push_back(*consumer);
                }
                fx.push((*consumer, RabbitMsg::ConsumeOk));
            }
            Command::Settle {
                consumer,
                checkout,
                id,
            } => {
                if self.take(*consumer, *checkout, *id) {
                    self.messages.remove(id);
                } else if self.take_dead_letter(*consumer, *checkout, *id) {
                    self.dead_letters.remove(id);
                }
            }
            Command::Return {
                consumer,
                checkout,
                id,
                returned,
            } => {
                if self.take(*consumer, *checkout, *id) {
                    self.give_back(*id, *returned, settings);
                }
            }
            Command::Discard {
                consumer,
                checkout,
                id,
            } => {
                if self.take(*consumer, *checkout, *id) {
                    self.dead_letter(*id, DeathReason::Rejected, settings);
                }
            }
            Command::Down { consumer, checkout } => {
                if self
                    .consumers
                    .get(consumer)
                    .is_some_and(|c| c.checkout == *checkout)
                {
                    self.detach(*consumer, settings);
                }
            }
        }
        self.assign(&mut fx);
        self.evaluate_limit(settings);
        fx
    }

    /// `rabbit_fifo:evaluate_limit/4` with `reject_publish`: the limit is checked after each
    /// command, so enqueues already in the log are accepted past it; the enqueuers are blocked
    /// once the ready messages exceed `x-max-length` and unblocked at or below
    /// `trunc(x-max-length * 0.8)` (`is_below_soft_limit/1`, `?LOW_LIMIT`).
    fn evaluate_limit(&mut self, settings: &Settings) {
        let Some(max) = settings.max_length else {
            return;
        };
        let ready = self.ready.len() as u64;
        if ready > u64::from(max) {
            self.reject_publish = true;
        } else if ready * 10 <= u64::from(max) * 8 {
            self.reject_publish = false;
        }
    }

    /// Takes message `id` back from the consumer's checked-out set, if this attachment holds it.
    fn take(&mut self, consumer: Id, checkout: Index, id: Index) -> bool {
        self.consumers
            .get_mut(&consumer)
            .is_some_and(|c| c.checkout == checkout && c.checked_out.remove(&id))
    }

    /// Takes dead letter `id` back from the consumer, if this attachment holds it.
    fn take_dead_letter(&mut self, consumer: Id, checkout: Index, id: Index) -> bool {
        self.consumers
            .get_mut(&consumer)
            .is_some_and(|c| c.checkout == checkout && c.dead_letters_out.remove(&id))
    }

    /// `rabbit_fifo_dlx:discard/4`: out of the queue, into the dead-letter queue if there is a
    /// dead-letter exchange, and otherwise gone.
    fn dead_letter(&mut self, id: Index, reason: DeathReason, settings: &Settings) {
        let m = self.messages.remove(&id).expect("checked out");
        if settings.dead_letter {
            self.dead_letters
                .insert(id, DeadLetter { msg: m.msg, reason });
            self.dead_ready.push_back(id);
        }
    }

    /// A returned message goes back to the front of the queue, or, once its delivery count
    /// passes `delivery-limit`, out of it: dead-lettered or dropped.
    fn give_back(&mut self, id: Index, returned: Returned, settings: &Settings) {
        let m = self.messages.get_mut(&id).expect("checked out");
        if settings.delivery_count.counts(returned) {
            m.delivery_count += 1;
        }
        if settings
            .delivery_limit
            .is_some_and(|l| m.delivery_count > l)
        {
            self.dead_letter(id, DeathReason::DeliveryLimit, settings);
        } else {
            self.ready.push_front(id);
        }
    }

    /// Removes a consumer, returning its checked-out messages (the newest first, so they end up
    /// at the front in their order). A waiting consumer holds none and just leaves the waiting
    /// list (`handle_waiting_consumer_down/2`); when the single active consumer goes, the first
    /// waiting one is activated (`cancel_consumer/5`, then `activate_next_consumer/2`) and is
    /// served the returned messages first, flagged redelivered.
    fn detach(&mut self, consumer: Id, settings: &Settings) {
        if let Some(c) = self.consumers.remove(&consumer) {
            for id in c.checked_out.iter().rev() {
                self.give_back(*id, Returned::ConsumerDown, settings);
            }
            for id in c.dead_letters_out.iter().rev() {
                self.dead_ready.push_front(*id);
            }
            self.service.retain(|s| *s != consumer);
            self.waiting.retain(|s| *s != consumer);
            if self.service.is_empty() {
                if let Some(next) = self.waiting.pop_front() {
                    self.service.push_back(next);
                }
            }
        }
    }

    /// Hands ready messages to consumers with credit, round robin.
    fn assign(&mut self, fx: &mut Vec<(Id, RabbitMsg)>) {
        while !self.ready.is_empty() {
            let mut found = None;
            for _ in 0..self.service.len() {
                let c = self.service.pop_front().expect("not empty");
                self.service.push_back(c);
                let con = &self.consumers[&c];
                if con.auto_ack
                    || con.prefetch == 0
                    || (con.checked_out.len() as u32) < con.prefetch
                {
                    found = Some(c);
                    break;
                }
            }
            let Some(c) = found else { break };
            let id = self.ready.pop_front().expect("not empty");
            let m = self.messages.get_mut(&id).expect("ready messages exist");
            let redelivered = m.acquired > 0;
            m.acquired += 1;
            fx.push((
                c,
                RabbitMsg::Deliver {
                    channel: self.consumers[&c].channel,
                    tag: id,
                    msg: m.msg,
                    published_on: m.channel,
                    redelivered,
                    delivery_count: m.delivery_count,
                },
            ));
            let con = self.consumers.get_mut(&c).expect("registered");
            if con.auto_ack {
                self.messages.remove(&id);
            } else {
                con.checked_out.insert(id);
            }
        }
        self.assign_dead_letters(fx);
    }

    /// Hands the dead-letter queue to the consumers, round robin. The dead-letter queue's
    /// consumer is modelled without a prefetch limit: it only records what it reads.
    fn assign_dead_letters(&mut self, fx: &mut Vec<(Id, RabbitMsg)>) {
        while !self.service.is_empty() {
            let Some(id) = self.dead_ready.pop_front() else {
                break;
            };
            let c = self.service.pop_front().expect("not empty");
            self.service.push_back(c);
            let d = &self.dead_letters[&id];
            let con = self.consumers.get_mut(&c).expect("registered");
            fx.push((
                c,
                RabbitMsg::DeliverDeadLetter {
                    channel: con.channel,
                    tag: id,
                    msg: d.msg,
                    reason: d.reason,
                },
            ));
            if con.auto_ack {
                self.dead_letters.remove(&id);
            } else {
                con.dead_letters_out.insert(id);
            }
        }
    }
}

impl Node {
    fn peers(&self, me: Id) -> impl Iterator<Item = Id> + '_ {
        self.settings
            .node_ids()
            .into_iter()
            .filter(move |p| *p != me)
    }

    pub(super) fn quorum_start(&self, s: &mut NodeState, o: &mut RabbitOut) {
        s.quorum = QuorumState::new(s.disk.term, s.disk.voted_for, s.disk.log.clone());
        o.set_timer(RabbitTimer::Election, retry(ELECTION_TIMEOUT));
    }

    fn quorum_save(&self, s: &mut NodeState, o: &mut RabbitOut) {
        s.disk.term = s.quorum.term;
        s.disk.voted_for = s.quorum.voted_for;
        s.disk.log = s.quorum.log.clone();
        self.save(s, o);
    }

    /// Appends a command as leader and replicates it.
    fn propose(&self, me: Id, s: &mut NodeState, command: Command, o: &mut RabbitOut) {
        let term = s.quorum.term;
        s.quorum.log.push_back_mut(Entry { term, command });
        self.quorum_save(s, o);
        for p in self.peers(me).collect::<Vec<_>>() {
            self.send_append(s, p, o);
        }
        self.advance_commit(me, s, o);
    }

    fn send_append(&self, s: &mut NodeState, to: Id, o: &mut RabbitOut) {
        let q = &mut s.quorum;
        let last = q.last_index();
        let RaftRole::Leader { next, .. } = &mut q.role else {
            return;
        };
        let from = next
            .get(&to)
            .copied()
            .unwrap_or(last + 1)
            .clamp(1, last + 1);
        let until = (from - 1 + MAX_APPEND as Index).min(last);
        let entries: Vec<Entry> = (from..=until)
            .map(|i| q.log[i as usize - 1].clone())
            .collect();
        next.insert(to, until + 1);
        let prev_index = from - 1;
        let msg = RabbitMsg::AppendEntries {
            term: q.term,
            prev_index,
            prev_term: if prev_index == 0 {
                0
            } else {
                q.log[prev_index as usize - 1].term
            },
            entries,
            commit: q.commit,
        };
        o.send(to, msg);
    }

    fn become_follower(&self, s: &mut NodeState, term: Term, o: &mut RabbitOut) {
        let was_leader = s.quorum.is_leader();
        if term > s.quorum.term {
            s.quorum.term = term;
            s.quorum.voted_for = None;
            self.quorum_save(s, o);
        }
        s.quorum.role = RaftRole::Follower;
        if was_leader {
            o.cancel_timer(RabbitTimer::RaftHeartbeat);
            self.drop_clients(s, None, o);
        }
        o.set_timer(RabbitTimer::Election, retry(ELECTION_TIMEOUT));
    }

    fn become_leader(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let last = s.quorum.last_index();
        let peers: Vec<Id> = self.peers(me).collect();
        s.quorum.role = RaftRole::Leader {
            next: peers.iter().map(|p| (*p, last + 1)).collect(),
            matched: peers.iter().map(|p| (*p, 0)).collect(),
        };
        s.quorum.leader = Some(me);
        o.cancel_timer(RabbitTimer::Election);
        o.set_timer(RabbitTimer::RaftHeartbeat, retry(RAFT_HEARTBEAT));
        self.propose(me, s, Command::Noop, o);
    }

    /// The leader commits the highest index of its own term that a majority holds.
    fn advance_commit(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let q = &s.quorum;
        let RaftRole::Leader { matched, .. } = &q.role else {
            return;
        };
        let mut commit = q.commit;
        for n in (q.commit + 1..=q.last_index()).rev() {
            let holders = 1 + matched.values().filter(|m| **m >= n).count();
            if q.term_at(n) == q.term && holders >= self.settings.majority() {
                commit = n;
                break;
            }
        }
        if commit > q.commit {
            s.quorum.commit = commit;
            self.apply_committed(me, s, o);
        }
    }

    fn apply_committed(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        while s.quorum.applied < s.quorum.commit {
            s.quorum.applied += 1;
            let index = s.quorum.applied;
            let command = s.quorum.log[index as usize - 1].command.clone();
            let fx = s.quorum.fifo.apply(index, &command, &self.settings);
            if s.quorum.is_leader() && s.quorum.leader == Some(me) {
                for (to, msg) in fx {
                    if let RabbitMsg::Confirm { channel, seq } = msg {
                        if self.tx_settled(s, to, (channel, seq), false, o) {
                            continue;
                        }
                    }
                    to_client(s, to, msg, o);
                }
            }
        }
    }

    pub(super) fn quorum_timeout(
        &self,
        me: Id,
        s: &mut NodeState,
        timer: &RabbitTimer,
        o: &mut RabbitOut,
    ) {
        match timer {
            RabbitTimer::Election if !s.quorum.is_leader() => {
                s.quorum.term += 1;
                s.quorum.voted_for = Some(me);
                s.quorum.leader = None;
                s.quorum.role = RaftRole::Candidate {
                    votes: BTreeSet::from([me]),
                };
                self.quorum_save(s, o);
                o.set_timer(RabbitTimer::Election, retry(ELECTION_TIMEOUT));
                if self.settings.majority() == 1 {
                    self.become_leader(me, s, o);
                    return;
                }
                let (term, last_index) = (s.quorum.term, s.quorum.last_index());
                let last_term = s.quorum.term_at(last_index);
                for p in self.peers(me) {
                    o.send(
                        p,
                        RabbitMsg::RequestVote {
                            term,
                            last_index,
                            last_term,
                        },
                    );
                }
            }
            RabbitTimer::RaftHeartbeat if s.quorum.is_leader() => {
                for p in self.peers(me).collect::<Vec<_>>() {
                    self.send_append(s, p, o);
                }
                o.set_timer(RabbitTimer::RaftHeartbeat, retry(RAFT_HEARTBEAT));
            }
            _ => {}
        }
    }

    /// Raft traffic between members.
    pub(super) fn quorum_peer_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        match msg {
            RabbitMsg::Disconnected => {
                // Resend from what the follower is known to hold.
                if let RaftRole::Leader { next, matched } = &mut s.quorum.role {
                    next.insert(src, matched.get(&src).copied().unwrap_or(0) + 1);
                }
            }
            RabbitMsg::RequestVote {
                term,
                last_index,
                last_term,
            } => {
                if term > s.quorum.term {
                    self.become_follower(s, term, o);
                }
                let q = &s.quorum;
                let my_last = q.last_index();
                let up_to_date = last_term > q.term_at(my_last)
                    || (last_term == q.term_at(my_last) && last_index >= my_last);
                let granted = term == q.term
                    && q.voted_for.is_none_or(|v| v == src)
                    && up_to_date
                    && !q.is_leader();
                if granted {
                    s.quorum.voted_for = Some(src);
                    self.quorum_save(s, o);
                    o.set_timer(RabbitTimer::Election, retry(ELECTION_TIMEOUT));
                }
                o.send(
                    src,
                    RabbitMsg::Vote {
                        term: s.quorum.term,
                        granted,
                    },
                );
            }
            RabbitMsg::Vote { term, granted } => {
                if term > s.quorum.term {
                    self.become_follower(s, term, o);
                    return;
                }
                let won = match &mut s.quorum.role {
                    RaftRole::Candidate { votes } if term == s.quorum.term && granted => {
                        votes.insert(src);
                        votes.len() >= self.settings.majority()
                    }
                    _ => false,
                };
                if won {
                    self.become_leader(me, s, o);
                }
            }
            RabbitMsg::AppendEntries {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => {
                if term < s.quorum.term {
                    let reply = RabbitMsg::AppendReply {
                        term: s.quorum.term,
                        success: false,
                        last_index: s.quorum.last_index(),
                    };
                    o.send(src, reply);
                    return;
                }
                if term > s.quorum.term || !matches!(s.quorum.role, RaftRole::Follower) {
                    self.become_follower(s, term, o);
                }
                s.quorum.leader = Some(src);
                o.set_timer(RabbitTimer::Election, retry(ELECTION_TIMEOUT));
                let q = &mut s.quorum;
                if prev_index > q.last_index() || q.term_at(prev_index) != prev_term {
                    let last_index = q.last_index().min(prev_index.saturating_sub(1));
                    let reply = RabbitMsg::AppendReply {
                        term: q.term,
                        success: false,
                        last_index,
                    };
                    o.send(src, reply);
                    return;
                }
                let mut changed = false;
                for (k, entry) in entries.iter().enumerate() {
                    let index = prev_index + 1 + k as Index;
                    if index <= q.last_index() {
                        if q.term_at(index) == entry.term {
                            continue;
                        }
                        // A conflicting suffix: this member's uncommitted entries are replaced.
                        while q.last_index() >= index {
                            q.log.drop_last_mut();
                        }
                    }
                    q.log.push_back_mut(entry.clone());
                    changed = true;
                }
                let matched = prev_index + entries.len() as Index;
                if commit > q.commit {
                    q.commit = commit.min(matched).max(q.commit);
                }
                let term = q.term;
                if changed {
                    self.quorum_save(s, o);
                }
                self.apply_committed(me, s, o);
                o.send(
                    src,
                    RabbitMsg::AppendReply {
                        term,
                        success: true,
                        last_index: matched,
                    },
                );
            }
            RabbitMsg::AppendReply {
                term,
                success,
                last_index,
            } => {
                if term > s.quorum.term {
                    self.become_follower(s, term, o);
                    return;
                }
                if term != s.quorum.term {
                    return;
                }
                let last = s.quorum.last_index();
                let RaftRole::Leader { next, matched } = &mut s.quorum.role else {
                    return;
                };
                if success {
                    let m = matched.entry(src).or_insert(0);
                    *m = (*m).max(last_index);
                    let n = next.entry(src).or_insert(1);
                    *n = (*n).max(last_index + 1);
                    let more = *n <= last;
                    self.advance_commit(me, s, o);
                    if more {
                        self.send_append(s, src, o);
                    }
                } else {
                    next.insert(src, last_index + 1);
                    self.send_append(s, src, o);
                }
            }
            _ => {}
        }
    }

    /// AMQP methods from a client, at a quorum queue member.
    pub(super) fn quorum_client_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        if !s.quorum.is_leader() {
            if !matches!(msg, RabbitMsg::Heartbeat | RabbitMsg::Disconnected) {
                o.send(
                    src,
                    RabbitMsg::NotLeader {
                        leader: s.quorum.leader,
                    },
                );
            }
            return;
        }
        match msg {
            RabbitMsg::Open => self.accept_client(s, src, o),
            RabbitMsg::Publish {
                channel,
                seq,
                msg,
                mandatory,
                ..
            } if s.clients.contains(&src) => {
                let routed = self.settings.route(msg.seq);
                if routed.unroutable {
                    self.unroutable(s, src, (channel, seq), mandatory, o);
                } else if s.quorum.fifo.reject_publish {
                    // The channel's `rabbit_fifo_client` holds `queue_status = reject_publish`
                    // and refuses the enqueue itself (`rabbit_fifo_client:enqueue/4`), which
                    // `rabbit_quorum_queue:deliver/3` turns into a `rejected` action: a nack.
                    self.reject_publish(s, src, (channel, seq), o);
                } else {
                    let command = Command::Enqueue {
                        publisher: src,
                        channel,
                        seq,
                        msg,
                    };
                    self.propose(me, s, command, o);
                }
            }
            RabbitMsg::Consume {
                channel,
                prefetch,
                auto_ack,
            } if s.clients.contains(&src) => {
                let command = Command::Checkout {
                    consumer: src,
                    channel,
                    prefetch,
                    auto_ack,
                };
                self.propose(me, s, command, o);
            }
            RabbitMsg::Ack { tag } | RabbitMsg::Nack { tag, .. } if s.clients.contains(&src) => {
                let Some(checkout) = s.quorum.fifo.consumers.get(&src).map(|c| c.checkout) else {
                    return;
                };
                let (consumer, id) = (src, tag);
                let command = match msg {
                    RabbitMsg::Nack {
                        requeue: true,
                        reject,
                        ..
                    } => Command::Return {
                        consumer,
                        checkout,
                        id,
                        returned: if reject {
                            Returned::Rejected
                        } else {
                            Returned::Requeued
                        },
                    },
                    RabbitMsg::Nack { requeue: false, .. } => Command::Discard {
                        consumer,
                        checkout,
                        id,
                    },
                    _ => Command::Settle {
                        consumer,
                        checkout,
                        id,
                    },
                };
                self.propose(me, s, command, o);
            }
            _ => {}
        }
    }

    /// A client's connection is gone: its consumer, if any, is down.
    pub(super) fn quorum_client_gone(
        &self,
        me: Id,
        s: &mut NodeState,
        client: Id,
        o: &mut RabbitOut,
    ) {
        if !s.quorum.is_leader() {
            return;
        }
        if let Some(checkout) = s.quorum.fifo.consumers.get(&client).map(|c| c.checkout) {
            self.propose(
                me,
                s,
                Command::Down {
                    consumer: client,
                    checkout,
                },
                o,
            );
        }
    }
}
