//! Quorum queues: a Raft group (Ra) replicating the commands of the `rabbit_fifo` state machine.
//!
//! # Channels on any node
//!
//! A channel lives on the node its client connected to; its queue client (`rabbit_fifo_client`)
//! sends commands to the member it takes for the leader and keeps each pending until the leader
//! says it was applied (`{applied, …}`). A member that does not lead rejects a command, naming
//! the leader it knows (`not_leader`); on that, and on hearing of a new leader (`leader_change`,
//! which the model's channels learn from their node's Raft member), the channel sends its pending
//! commands again, in order (`resend_all_pending/1`). Only the leader carries out the state
//! machine's effects: it tells the command's node it was applied and sends confirms and
//! deliveries to the channels' nodes ([`RabbitMsg::RaEvent`]). A consumer is its channel process
//! (node and pid): a leader change keeps it with what it has checked out, and only its channel
//! going down (`handle_down/3`) returns its messages. `noconnection` (3.13: return at once; 4.x:
//! `suspected_down`, return after `consumer_disconnected_timeout`) is not modelled. Read at
//! rabbitmq-server `v4.3.5` and `v3.13.7`.
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
use super::protocol::{Command, Entry, Index, Origin, RabbitMsg, Term};
use super::{
    ClientNode, RabbitOut, RabbitTimer, Settings, ELECTION_TIMEOUT, MAX_APPEND, RAFT_HEARTBEAT,
};
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

/// A channel on this node that uses the quorum queue (`rabbit_channel` with its queue client).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QuorumChannel {
    /// The channel process's pid on this node, unique across the node's restarts.
    pub pid: u64,
    /// The consumer key: the index of its checkout, once the leader said it was applied.
    pub checkout: Option<Index>,
    /// The msg id of the last delivery passed to the client (`last_msg_id`): the next one
    /// expected is one more. `None` is `undefined`, as a checkout's reply leaves it: the next
    /// delivery is taken whatever its id.
    pub last_msg_id: Option<u64>,
}

/// The `rabbit_fifo_client`s of the channels on this node, as one: the commands they sent to the
/// leader and have not heard applied, which they send again to each new leader
/// (`resend_all_pending/1`), in the order they were first sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FifoClients {
    /// The member the commands go to.
    pub leader: Option<Id>,
    /// The leader (and its term) this node's member last reported: a change is a
    /// `leader_change` event.
    pub seen: Option<(Term, Id)>,
    pub next_seq: u64,
    /// Sent and not yet applied, by sequence number: the sending channel's pid (`None` for a
    /// consumer's down, which outlives its channel) and the command.
    pub pending: BTreeMap<u64, (Option<u64>, Command)>,
    pub channels: BTreeMap<Id, QuorumChannel>,
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
    /// The channel process: its node, where the leader sends its deliveries, and its pid there.
    pub node: Id,
    pub pid: u64,
    /// The index of the checkout that attached it (the consumer key the channel uses): commands
    /// of an older attachment are ignored.
    pub checkout: Index,
    pub prefetch: u32,
    pub auto_ack: bool,
    /// Checked out, by the index of their enqueue: the msg id each was delivered with.
    pub checked_out: BTreeMap<Index, u64>,
    /// The msg id of its next delivery (`next_msg_id`): its deliveries are numbered from 0.
    pub next_msg_id: u64,
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
                node,
                pid,
            } => {
                let same = self
                    .consumers
                    .get_mut(consumer)
                    .filter(|c| c.node == *node && c.pid == *pid);
                if let Some(c) = same {
                    // The same channel's checkout again (its `rabbit_fifo_client` resent it to a
                    // new leader): `update_consumer/8` keeps what it has checked out; the key is
                    // the checkout the channel last heard applied.
                    c.prefetch = *prefetch;
                    c.auto_ack = *auto_ack;
                    c.checkout = index;
                } else {
                    self.detach(*consumer, settings);
                    self.consumers.insert(
                        *consumer,
                        FifoConsumer {
                            channel: *channel,
                            node: *node,
                            pid: *pid,
                            checkout: index,
                            prefetch: *prefetch,
                            auto_ack: *auto_ack,
                            checked_out: BTreeMap::new(),
                            next_msg_id: 0,
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
            .is_some_and(|c| c.checkout == checkout && c.checked_out.remove(&id).is_some())
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
            for id in c.checked_out.keys().rev() {
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
            let msg_id = con.next_msg_id;
            con.next_msg_id += 1;
            if con.auto_ack {
                self.messages.remove(&id);
            } else {
                con.checked_out.insert(id, msg_id);
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

    /// Appends a command as leader and replicates it; `from` is told when it is applied.
    fn propose(
        &self,
        me: Id,
        s: &mut NodeState,
        command: Command,
        from: Option<Origin>,
        o: &mut RabbitOut,
    ) {
        let term = s.quorum.term;
        s.quorum.log.push_back_mut(Entry {
            term,
            command,
            from,
        });
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
            // The member steps down; the channels on this node stay, and send to the next
            // leader.
            o.cancel_timer(RabbitTimer::RaftHeartbeat);
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
        self.propose(me, s, Command::Noop, None, o);
        self.leader_seen(me, s, o);
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
            let entry = s.quorum.log[index as usize - 1].clone();
            let fx = s.quorum.fifo.apply(index, &entry.command, &self.settings);
            if s.quorum.is_leader() && s.quorum.leader == Some(me) {
                if let Some(from) = entry.from {
                    let applied = RabbitMsg::RaApplied {
                        seq: from.seq,
                        index,
                    };
                    self.to_node(me, s, from.node, applied, o);
                }
                // Effects go to the channel processes, on their nodes: a confirm to the
                // enqueuer's, the rest to the consumer's.
                for (client, msg) in fx {
                    let to = match msg {
                        RabbitMsg::Confirm { .. } => entry.from.map(|f| (f.node, None)),
                        _ => s.quorum.fifo.consumers.get(&client).map(|c| (c.node, Some(c.pid))),
                    };
                    let msg_id = match msg {
                        RabbitMsg::Deliver { tag, .. } => s
                            .quorum
                            .fifo
                            .consumers
                            .get(&client)
                            .and_then(|c| c.checked_out.get(&tag).copied()),
                        _ => None,
                    };
                    if let Some((node, pid)) = to {
                        let event = RabbitMsg::RaEvent {
                            client,
                            pid,
                            msg_id,
                            msg: Box::new(msg),
                        };
                        self.to_node(me, s, node, event, o);
                    }
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
            RabbitMsg::RaCommand { seq, command } => self.ra_command(me, s, src, seq, command, o),
            RabbitMsg::RaRejected { leader } => self.rejected(me, s, leader, o),
            RabbitMsg::RaApplied { seq, index } => self.applied(s, seq, index),
            RabbitMsg::RaEvent {
                client,
                pid,
                msg_id,
                msg,
            } => self.channel_event(me, s, client, pid, msg_id, *msg, o),
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
                self.leader_seen(me, s, o);
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

    /// Sends a message to a node, or handles it here when the node is this one.
    fn to_node(&self, me: Id, s: &mut NodeState, node: Id, msg: RabbitMsg, o: &mut RabbitOut) {
        if node == me {
            self.quorum_peer_msg(me, s, me, msg, o);
        } else {
            o.send(node, msg);
        }
    }

    /// A channel's command reaches a member: the leader appends it and will tell the channel's
    /// node when it is applied; any other member rejects it, naming the leader it knows
    /// (`{rejected, {not_leader, Leader, Seq}}`).
    fn ra_command(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        seq: u64,
        command: Command,
        o: &mut RabbitOut,
    ) {
        if s.quorum.is_leader() {
            self.propose(me, s, command, Some(Origin { node: src, seq }), o);
        } else {
            let leader = s.quorum.leader;
            self.to_node(me, s, src, RabbitMsg::RaRejected { leader }, o);
        }
    }

    /// `not_leader`: the channels send their pending commands to the leader named, unless they
    /// already send to it; with none named they wait for a leader (4.3.5's
    /// `handle_ra_event/4` does nothing either).
    fn rejected(&self, me: Id, s: &mut NodeState, leader: Option<Id>, o: &mut RabbitOut) {
        if let Some(l) = leader.filter(|l| s.fifo_clients.leader != Some(*l)) {
            s.fifo_clients.leader = Some(l);
            self.resend_all_pending(me, s, o);
        }
    }

    /// This node's member heard of a leader, in a new term or a new one: for the channels here a
    /// `leader_change` event, on which they resend their pending commands to it.
    fn leader_seen(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let Some(l) = s.quorum.leader else {
            return;
        };
        let seen = Some((s.quorum.term, l));
        if s.fifo_clients.seen == seen {
            return;
        }
        s.fifo_clients.seen = seen;
        s.fifo_clients.leader = Some(l);
        self.resend_all_pending(me, s, o);
    }

    /// `resend_all_pending/1`: every command not yet applied, in the order first sent (a
    /// repeated enqueue is dropped by its sequence number, a repeated checkout of the same
    /// channel updates its consumer, a repeated settle finds nothing to settle).
    fn resend_all_pending(&self, me: Id, s: &mut NodeState, o: &mut RabbitOut) {
        let Some(leader) = s.fifo_clients.leader else {
            return;
        };
        let pending: Vec<(u64, Command)> = s
            .fifo_clients
            .pending
            .iter()
            .map(|(seq, (_, c))| (*seq, c.clone()))
            .collect();
        for (seq, command) in pending {
            self.to_node(me, s, leader, RabbitMsg::RaCommand { seq, command }, o);
        }
    }

    /// A channel's `rabbit_fifo_client` sends a command to the leader it knows (or keeps it
    /// until it knows one). `owner` is the channel's pid; `None` for a consumer's down, which
    /// outlives its channel.
    fn fifo_send(
        &self,
        me: Id,
        s: &mut NodeState,
        owner: Option<u64>,
        command: Command,
        o: &mut RabbitOut,
    ) {
        s.fifo_clients.next_seq += 1;
        let seq = s.fifo_clients.next_seq;
        s.fifo_clients.pending.insert(seq, (owner, command.clone()));
        if let Some(leader) = s.fifo_clients.leader {
            self.to_node(me, s, leader, RabbitMsg::RaCommand { seq, command }, o);
        }
    }

    /// `{applied, ...}`: the command is done; a checkout's index is its channel's consumer key.
    fn applied(&self, s: &mut NodeState, seq: u64, index: Index) {
        let Some((_, command)) = s.fifo_clients.pending.remove(&seq) else {
            return;
        };
        if let Command::Checkout { consumer, pid, .. } = command {
            if let Some(ch) = s
                .fifo_clients
                .channels
                .get_mut(&consumer)
                .filter(|c| c.pid == pid)
            {
                ch.checkout = Some(index);
                // `checkout/5`: the reply cannot tell which deliveries are still on their way
                // (the model's reply does not carry `next_msg_id`), so the next is taken as it
                // comes (`undefined`).
                ch.last_msg_id = None;
            }
        }
    }

    /// A `rabbit_fifo` effect for a client whose channel is here: the channel passes it on (a
    /// confirm on a transactional channel counts towards its commit instead). A consumer's
    /// effect for a channel process that is gone is dropped: a member that restarted replays its
    /// log and, once it leads, carries out the effects of what it applies, which an earlier
    /// leader may have carried out for a channel long closed.
    #[allow(clippy::too_many_arguments)]
    fn channel_event(
        &self,
        me: Id,
        s: &mut NodeState,
        client: Id,
        pid: Option<u64>,
        msg_id: Option<u64>,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        if pid.is_some_and(|p| s.fifo_clients.channels.get(&client).map(|c| c.pid) != Some(p)) {
            return;
        }
        if let Some(id) = msg_id {
            self.handle_delivery(me, s, client, id, msg, o);
            return;
        }
        if let RabbitMsg::Confirm { channel, seq } = msg {
            if self.tx_settled(s, client, (channel, seq), false, o) {
                return;
            }
        }
        to_client(s, client, msg, o);
    }

    /// `rabbit_fifo_client:handle_delivery/4`: a delivery with the next msg id is passed on; one
    /// whose id is past the next is preceded by the missing ones, fetched from this node's member
    /// (`get_missing_deliveries/4`: `{get_checked_out, ConsumerId, From..To}` as an aux command to
    /// the local server, answered from its applied state: fewer may come back, for what it has
    /// not applied or the consumer no longer holds); one already seen (id ≤ `last_msg_id`) is
    /// dropped.
    fn handle_delivery(
        &self,
        me: Id,
        s: &mut NodeState,
        client: Id,
        id: u64,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        let Some(ch) = s.fifo_clients.channels.get(&client) else {
            return;
        };
        let pid = ch.pid;
        let next = ch.last_msg_id.map_or(id, |l| l + 1);
        if id < next {
            return;
        }
        let mut missing: Vec<(u64, RabbitMsg)> = Vec::new();
        let fifo = &s.quorum.fifo;
        if let Some(con) = fifo.consumers.get(&client).filter(|c| c.node == me && c.pid == pid) {
            for (index, msg_id) in &con.checked_out {
                if (next..id).contains(msg_id) {
                    let m = &fifo.messages[index];
                    missing.push((
                        *msg_id,
                        RabbitMsg::Deliver {
                            channel: con.channel,
                            tag: *index,
                            msg: m.msg,
                            published_on: m.channel,
                            redelivered: m.acquired > 1,
                            delivery_count: m.delivery_count,
                        },
                    ));
                }
            }
        }
        missing.sort_by_key(|(msg_id, _)| *msg_id);
        if let Some(ch) = s.fifo_clients.channels.get_mut(&client) {
            ch.last_msg_id = Some(id);
        }
        for (_, m) in missing {
            to_client(s, client, m, o);
        }
        to_client(s, client, msg, o);
    }

    /// `connection.open` on a running node: the channel process starts here, whichever member
    /// leads (with `client.node=leader` a node that does not lead sends the client there).
    fn quorum_accept(&self, s: &mut NodeState, client: Id, o: &mut RabbitOut) {
        if self.settings.client_node == ClientNode::Leader && !s.quorum.is_leader() {
            o.send(
                client,
                RabbitMsg::NotLeader {
                    leader: s.quorum.leader,
                },
            );
            return;
        }
        s.disk.channel_pids += 1;
        let pid = s.disk.channel_pids;
        self.save(s, o);
        s.fifo_clients.channels.insert(
            client,
            QuorumChannel {
                pid,
                checkout: None,
                last_msg_id: None,
            },
        );
        self.accept_client(s, client, o);
    }

    /// AMQP methods from a client, on the node its connection is open on: its channel's
    /// `rabbit_fifo_client` makes them commands for the leader, wherever that is.
    pub(super) fn quorum_client_msg(
        &self,
        me: Id,
        s: &mut NodeState,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        if msg == RabbitMsg::Open {
            return self.quorum_accept(s, src, o);
        }
        let Some(ch) = s.fifo_clients.channels.get(&src).cloned() else {
            return;
        };
        match msg {
            RabbitMsg::Publish {
                channel,
                seq,
                msg,
                mandatory,
                ..
            } => {
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
                    self.fifo_send(me, s, Some(ch.pid), command, o);
                }
            }
            RabbitMsg::Consume {
                channel,
                prefetch,
                auto_ack,
            } => {
                let command = Command::Checkout {
                    consumer: src,
                    channel,
                    prefetch,
                    auto_ack,
                    node: me,
                    pid: ch.pid,
                };
                self.fifo_send(me, s, Some(ch.pid), command, o);
            }
            RabbitMsg::Ack { tag } | RabbitMsg::Nack { tag, .. } => {
                let Some(checkout) = ch.checkout else {
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
                self.fifo_send(me, s, Some(ch.pid), command, o);
            }
            _ => {}
        }
    }

    /// A client's connection is gone, and its channel with it: what the channel had not had
    /// applied dies with it, and the leader, which monitors the channel process, sees it down
    /// (`handle_down/3`): its consumer's messages go back to the queue. The model's node sends
    /// that `down` for the leader's monitor, to whichever member leads.
    pub(super) fn quorum_client_gone(
        &self,
        me: Id,
        s: &mut NodeState,
        client: Id,
        o: &mut RabbitOut,
    ) {
        let Some(ch) = s.fifo_clients.channels.remove(&client) else {
            return;
        };
        s.fifo_clients
            .pending
            .retain(|_, (owner, _)| *owner != Some(ch.pid));
        if let Some(checkout) = ch.checkout {
            let down = Command::Down {
                consumer: client,
                checkout,
            };
            self.fifo_send(me, s, None, down, o);
        }
    }
}
