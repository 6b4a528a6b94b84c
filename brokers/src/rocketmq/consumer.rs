//! The push consumer (`DefaultMQPushConsumerImpl`). CLUSTERING: rebalancing from the client's
//! own view (`RebalanceImpl`, `AllocateMessageQueueAveragely`), pulling into a ProcessQueue
//! per queue, consuming concurrently (`ConsumeMessageConcurrentlyService`) or orderly
//! (`ConsumeMessageOrderlyService`), and committing offsets one-way (`RemoteBrokerOffsetStore`).
//! BROADCASTING: every queue of the topic (`rebalanceByTopic`, no consumer list, no
//! `%RETRY%` subscription, no queue locks), offsets in a local file (`LocalFileOffsetStore`: read
//! at start, written every `persistConsumerOffsetInterval`; without one, a queue starts at the
//! broker's max offset, `computePullFromWhereWithException`), and a failed message dropped
//! (`processConsumeResult`: "BROADCASTING, the message consume failed, drop it").

use super::config::{Listener, MessageModel, Reconsume, Version};
use super::producer::{CLIENT_STARTUP, POLL_NAMESERVER};
use super::protocol::{Message, Mq, PullStatus, QueueId, RocketMsg, Route};
use super::store::RocketFiles;
use super::{exact, retry, RocketDisk, RocketOut, RocketRandom, RocketTimer, Settings};
use crate::AppLog;
use mqcheck_invariants::Op;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Handling times a run may draw: milliseconds per message (each message takes between one
/// and two and a half times that, so concurrent handlers finish out of order).
pub const HANDLING: [u64; 3] = [2, 10, 40];
/// `heartbeatBrokerInterval`.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// `RebalanceService`'s period.
const REBALANCE: Duration = Duration::from_secs(20);
/// `pullTimeDelayMillsWhenException`.
const PULL_AFTER_EXCEPTION: Duration = Duration::from_secs(3);
/// `consumerTimeoutMillisWhenSuspend`: the client's timeout for a held pull.
const PULL_TIMEOUT: Duration = Duration::from_secs(30);
/// The client's timeout for an offset query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// `suspendCurrentQueueTimeMillis`.
const SUSPEND: Duration = Duration::from_secs(1);
/// A message whose send-back failed is consumed again this much later.
const CONSUME_LATER: Duration = Duration::from_secs(5);
/// The client's timeout for a send-back.
const SEND_BACK_TIMEOUT: Duration = Duration::from_secs(3);
/// A slave that has not got that far: pull again after this (the client spins; the model waits).
const PULL_RETRY: Duration = Duration::from_secs(1);
/// `pullThresholdForQueue`: a ProcessQueue holding this many messages pulls later.
const PULL_THRESHOLD: usize = 1000;
/// `pullTimeDelayMillsWhenFlowControl`.
const FLOW_CONTROL: Duration = Duration::from_millis(50);
/// `REBALANCE_LOCK_INTERVAL`: orderly consumers relock their queues this often.
const LOCK_INTERVAL: Duration = Duration::from_secs(20);
/// `PULL_TIME_DELAY_MILLS_WHEN_SUSPEND`.
const PULL_WHEN_SUSPEND: Duration = Duration::from_secs(1);
/// 4.9 `MQClientInstance.resetOffset`'s sleep between dropping and resetting.
const RESET_SLEEP: Duration = Duration::from_secs(10);
/// `REBALANCE_LOCK_MAX_LIVE_TIME` on the client: a lock not renewed this long is expired.
const LEASE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Consumer {
    pub settings: Settings,
    pub index: u32,
}

/// A queue this consumer was allocated (`ProcessQueue` with its `PullRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcessQueue {
    /// The delivery session: new for every allocation.
    pub session: u64,
    /// The next offset to pull; `None` until the broker answered the offset query.
    pub next_offset: Option<u64>,
    /// Where the offset query went.
    pub asked: Option<Id>,
    /// `msgTreeMap`: pulled and not yet consumed.
    pub msgs: BTreeMap<u64, Message>,
    /// `queueOffsetMax`.
    pub max_pulled: Option<u64>,
    /// The pull in flight: its request and broker.
    pub pulling: Option<(u64, Id)>,
    /// Orderly: the broker lock is held and its lease not expired.
    pub locked: bool,
    /// Orderly: a message of this queue is in a handler.
    pub consuming: bool,
    /// Orderly: suspended a moment after a failure (`SUSPEND_CURRENT_QUEUE_A_MOMENT`).
    pub suspended: bool,
}

/// A message in a consume thread.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Running {
    pub mq: Mq,
    pub session: u64,
    pub offset: u64,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerState {
    pub app: AppLog,
    pub handling: Option<Duration>,
    pub started: bool,
    /// `topicSubscribeInfoTable`: the route as this consumer last heard it.
    pub route: Option<Route>,
    pub pqs: BTreeMap<Mq, ProcessQueue>,
    /// `RemoteBrokerOffsetStore.offsetTable`.
    pub offsets: BTreeMap<Mq, u64>,
    pub sessions: u64,
    pub next_request: u64,
    /// The consumer list asked for, and from whom.
    pub rebalancing: Option<(u64, Id)>,
    /// Orderly: queues allocated but not yet locked.
    pub locking: BTreeSet<Mq>,
    /// Concurrently: consume requests waiting for a thread.
    pub waiting: VecDeque<Running>,
    /// Consume threads at work, by thread.
    pub running: BTreeMap<u32, Running>,
    /// Concurrently: messages sent back to their broker, by request, with the broker.
    pub sent_back: BTreeMap<u64, (Running, Id)>,
    /// BROADCASTING: `offsets.json` as last written.
    pub stored: BTreeMap<Mq, u64>,
    /// `--rewind N`: per queue, the offsets and `storeTimestamp`s of the last messages the
    /// handler consumed (at most `N + 1`), which the application picks its reset time from.
    pub stamps: BTreeMap<Mq, VecDeque<(u64, u64)>>,
    /// `--rewind N`: per queue, the offset after the last message consumed.
    pub read: BTreeMap<Mq, u64>,
    /// `--rewind N`: per queue, how far it had read when it last asked for a reset: it asks
    /// again only once it has read past it.
    pub rewound: BTreeMap<Mq, u64>,
    /// Resets under way, by queue: how far it had read. The queue's next ProcessQueue starts
    /// where the reset put its offset, and that is the rewind.
    pub rewinding: BTreeMap<Mq, u64>,
    /// 4.9 `MQClientInstance.resetOffset` (synchronized): the offset tables the brokers sent,
    /// by broker group, the first one being applied while the consumer is suspended.
    pub resets: VecDeque<(u32, Vec<(QueueId, u64)>)>,
}

/// `AllocateMessageQueueAveragely.allocate`.
pub fn allocate(mq_all: &[Mq], cid_all: &[u32], me: u32) -> Vec<Mq> {
    let Some(index) = cid_all.iter().position(|c| *c == me) else {
        return Vec::new();
    };
    let (n, c) = (mq_all.len(), cid_all.len());
    if n == 0 {
        return Vec::new();
    }
    let m = n % c;
    let average = if n <= c {
        1
    } else if m > 0 && index < m {
        n / c + 1
    } else {
        n / c
    };
    let start = if m > 0 && index < m {
        index * average
    } else {
        index * average + m
    };
    let range = average.min(n.saturating_sub(start));
    (0..range).map(|i| mq_all[(start + i) % n]).collect()
}

impl Consumer {
    /// Starts with the application's log and, BROADCASTING, the offsets its last run wrote.
    pub fn start(&self, app: AppLog, stored: BTreeMap<Mq, u64>, o: &mut RocketOut) -> ConsumerState {
        o.choose_random(
            "handling",
            self.settings
                .workload
                .handling(&HANDLING)
                .into_iter()
                .map(RocketRandom::Handling)
                .collect(),
        );
        let mut s = ConsumerState {
            sessions: (app.len() as u64) << 16,
            app,
            handling: None,
            started: false,
            route: None,
            pqs: BTreeMap::new(),
            offsets: BTreeMap::new(),
            next_request: 0,
            rebalancing: None,
            locking: BTreeSet::new(),
            waiting: VecDeque::new(),
            running: BTreeMap::new(),
            sent_back: BTreeMap::new(),
            stored,
            stamps: BTreeMap::new(),
            read: BTreeMap::new(),
            rewound: BTreeMap::new(),
            rewinding: BTreeMap::new(),
            resets: VecDeque::new(),
        };
        let delay = self.settings.workload.consumer_delay();
        if s.app.is_empty() && !delay.is_zero() {
            o.set_timer(RocketTimer::Start, exact(delay));
        } else {
            self.begin(&mut s, o);
        }
        s
    }

    fn begin(&self, s: &mut ConsumerState, o: &mut RocketOut) {
        s.started = true;
        o.set_timer(RocketTimer::RouteRefresh, exact(CLIENT_STARTUP));
        o.set_timer(RocketTimer::Heartbeat, exact(HEARTBEAT));
        o.set_timer(RocketTimer::Rebalance, retry(REBALANCE));
        o.set_timer(
            RocketTimer::PersistOffset,
            exact(self.settings.persist_offset_interval),
        );
        if self.locks() {
            o.set_timer(RocketTimer::LockAll, exact(LOCK_INTERVAL));
        }
    }

    fn orderly(&self) -> bool {
        self.settings.listener == Listener::Orderly
    }

    fn broadcasting(&self) -> bool {
        self.settings.model == MessageModel::Broadcasting
    }

    /// Does this consumer take its queues under the broker's locks? Orderly and CLUSTERING only:
    /// BROADCASTING rebalances with `isOrder=false` and consumes without the lock.
    fn locks(&self) -> bool {
        self.orderly() && !self.broadcasting()
    }

    /// Writes the application's log and, BROADCASTING, `offsets.json` beside it.
    fn save(&self, s: &ConsumerState, o: &mut RocketOut) {
        o.save(if self.broadcasting() {
            RocketDisk::ClientFiles(s.app.clone(), RocketFiles::LocalOffsets(s.stored.clone()))
        } else {
            RocketDisk::Client(s.app.clone())
        });
    }

    fn request(s: &mut ConsumerState) -> u64 {
        s.next_request += 1;
        s.next_request
    }

    fn heartbeat(&self, s: &ConsumerState, o: &mut RocketOut) {
        for b in s.route.iter().flatten() {
            for id in b.master.iter().chain(&b.slaves) {
                o.send(
                    *id,
                    RocketMsg::Heartbeat {
                        consumer: self.index,
                    },
                );
            }
        }
    }

    /// Asks one broker for the group's consumers (`findConsumerIdList`); BROADCASTING takes
    /// every queue of the route at once.
    fn rebalance(&self, s: &mut ConsumerState, o: &mut RocketOut) {
        // 4.9: a consumer suspended for a reset does not rebalance (`doRebalance`, `pause`).
        if !s.resets.is_empty() {
            return;
        }
        if self.broadcasting() {
            self.reallocate(s, &[self.index], o);
            return;
        }
        let Some(broker) = s.route.iter().flatten().find_map(|b| b.readable()) else {
            return;
        };
        let request = Self::request(s);
        s.rebalancing = Some((request, broker));
        o.send(broker, RocketMsg::GetConsumerList { request });
    }

    /// `rebalanceByTopic` with the consumer list one broker gave.
    fn reallocate(&self, s: &mut ConsumerState, consumers: &[u32], o: &mut RocketOut) {
        let route = s.route.clone().unwrap_or_default();
        let readable: Vec<u32> = route
            .iter()
            .enumerate()
            .filter(|(_, b)| b.readable().is_some())
            .map(|(g, _)| g as u32)
            .collect();
        let topic: Vec<Mq> = readable
            .iter()
            .flat_map(|g| (0..self.settings.queues).map(|queue| Mq { group: *g, queue }))
            .collect();
        // The group's `%RETRY%` topic is a subscription of its own, allocated on its own.
        let retry: Vec<Mq> = readable
            .iter()
            .map(|g| Mq {
                group: *g,
                queue: self.settings.retry_queue(),
            })
            .collect();
        let mine: BTreeSet<Mq> = if self.broadcasting() {
            topic.into_iter().collect()
        } else {
            allocate(&topic, consumers, self.index)
                .into_iter()
                .chain(allocate(&retry, consumers, self.index))
                .collect()
        };
        let gone: Vec<Mq> = s.pqs.keys().filter(|mq| !mine.contains(mq)).copied().collect();
        for mq in gone {
            self.remove(s, mq, o);
        }
        s.locking.retain(|mq| mine.contains(mq));
        let new: Vec<Mq> = mine
            .into_iter()
            .filter(|mq| !s.pqs.contains_key(mq) && !s.locking.contains(mq))
            .collect();
        if self.locks() {
            // An orderly consumer takes a queue only once the broker locked it for it.
            for mq in &new {
                s.locking.insert(*mq);
            }
            self.lock(s, &new, o);
        } else {
            for mq in new {
                self.add(s, mq, o);
            }
        }
    }

    /// `removeUnnecessaryMessageQueue`: persist the offset one-way, forget it, and (orderly)
    /// unlock the queue once no handler holds it.
    fn remove(&self, s: &mut ConsumerState, mq: Mq, o: &mut RocketOut) {
        let Some(pq) = s.pqs.remove(&mq) else { return };
        if let Some(offset) = s.offsets.remove(&mq) {
            self.send_offset(s, mq, offset, o);
        }
        o.cancel_timer(RocketTimer::PullLater(mq));
        o.cancel_timer(RocketTimer::PullTimeout(mq));
        o.cancel_timer(RocketTimer::LeaseExpired(mq));
        if self.locks() && !pq.consuming {
            self.unlock(s, mq, o);
        }
    }

    fn unlock(&self, s: &ConsumerState, mq: Mq, o: &mut RocketOut) {
        if let Some(master) = Self::master(s, mq.group) {
            o.send(
                master,
                RocketMsg::Unlock {
                    consumer: self.index,
                    queues: vec![mq.queue],
                },
            );
        }
    }

    fn master(s: &ConsumerState, group: u32) -> Option<Id> {
        s.route.as_ref()?.get(group as usize)?.master
    }

    fn readable(s: &ConsumerState, group: u32) -> Option<Id> {
        s.route.as_ref()?.get(group as usize)?.readable()
    }

    fn send_offset(&self, s: &ConsumerState, mq: Mq, offset: u64, o: &mut RocketOut) {
        if self.broadcasting() {
            return;
        }
        if let Some(broker) = Self::readable(s, mq.group) {
            o.send(
                broker,
                RocketMsg::UpdateConsumerOffset {
                    queue: mq.queue,
                    offset,
                },
            );
        }
    }

    /// A new ProcessQueue: `computePullFromWhere` asks the broker for the committed offset;
    /// BROADCASTING reads `offsets.json`, and without an entry asks for the queue's max offset.
    fn add(&self, s: &mut ConsumerState, mq: Mq, o: &mut RocketOut) {
        let Some(broker) = Self::readable(s, mq.group) else {
            return;
        };
        s.sessions += 1;
        s.offsets.remove(&mq);
        let stored = s.stored.get(&mq).copied().filter(|_| self.broadcasting());
        let at_once = stored.is_some() || (self.broadcasting() && self.settings.from_first);
        s.pqs.insert(
            mq,
            ProcessQueue {
                session: s.sessions,
                next_offset: stored,
                asked: (!at_once).then_some(broker),
                // Orderly: added once locked; BROADCASTING: consumed without the lock.
                locked: self.orderly(),
                ..ProcessQueue::default()
            },
        );
        if self.locks() {
            o.set_timer(RocketTimer::LeaseExpired(mq), exact(LEASE));
        }
        if stored.is_some() {
            self.pull(s, mq, o);
            return;
        }
        if self.broadcasting() && self.settings.from_first {
            s.pqs.get_mut(&mq).expect("added").next_offset = Some(0);
            self.pull(s, mq, o);
            return;
        }
        let query = if self.broadcasting() {
            RocketMsg::GetMaxOffset { queue: mq.queue }
        } else {
            RocketMsg::QueryConsumerOffset { queue: mq.queue }
        };
        o.send(broker, query);
        o.set_timer(RocketTimer::PullTimeout(mq), exact(QUERY_TIMEOUT));
    }

    /// `LOCK_BATCH_MQ` to each group's master for `mqs`.
    fn lock(&self, s: &mut ConsumerState, mqs: &[Mq], o: &mut RocketOut) {
        let groups: BTreeSet<u32> = mqs.iter().map(|mq| mq.group).collect();
        for g in groups {
            let Some(master) = Self::master(s, g) else { continue };
            let request = Self::request(s);
            let queues = mqs.iter().filter(|mq| mq.group == g).map(|mq| mq.queue).collect();
            o.send(
                master,
                RocketMsg::LockBatch {
                    request,
                    consumer: self.index,
                    queues,
                },
            );
        }
    }

    fn pull(&self, s: &mut ConsumerState, mq: Mq, o: &mut RocketOut) {
        let Some(pq) = s.pqs.get(&mq) else { return };
        let Some(offset) = pq.next_offset else { return };
        if pq.pulling.is_some() {
            return;
        }
        if !s.resets.is_empty() {
            // `pullMessage`: "consumer was paused, execute pull request later".
            o.set_timer(RocketTimer::PullLater(mq), exact(PULL_WHEN_SUSPEND));
            return;
        }
        if self.orderly() && !pq.locked {
            o.set_timer(RocketTimer::PullLater(mq), exact(PULL_AFTER_EXCEPTION));
            return;
        }
        if pq.msgs.len() >= PULL_THRESHOLD {
            o.set_timer(RocketTimer::PullLater(mq), exact(FLOW_CONTROL));
            return;
        }
        let Some(broker) = Self::readable(s, mq.group) else {
            o.set_timer(RocketTimer::PullLater(mq), exact(PULL_AFTER_EXCEPTION));
            return;
        };
        let commit = if Self::master(s, mq.group) == Some(broker) {
            s.offsets.get(&mq).copied()
        } else {
            None
        };
        let request = Self::request(s);
        s.pqs.get_mut(&mq).expect("present").pulling = Some((request, broker));
        o.set_timer(RocketTimer::PullTimeout(mq), exact(PULL_TIMEOUT));
        o.send(
            broker,
            RocketMsg::Pull {
                request,
                queue: mq.queue,
                offset,
                commit,
            },
        );
    }

    fn pulled(&self, s: &mut ConsumerState, mq: Mq, status: PullStatus, o: &mut RocketOut) {
        let Some(pq) = s.pqs.get_mut(&mq) else { return };
        match status {
            PullStatus::Found(msgs) => {
                let session = pq.session;
                for (offset, message) in msgs {
                    if pq.next_offset.is_some_and(|n| offset < n) {
                        continue;
                    }
                    pq.msgs.insert(offset, message);
                    pq.max_pulled = Some(pq.max_pulled.map_or(offset, |m| m.max(offset)));
                    pq.next_offset = Some(offset + 1);
                    if !self.orderly() {
                        s.waiting.push_back(Running {
                            mq,
                            session,
                            offset,
                            message,
                        });
                    }
                }
                self.pull(s, mq, o);
                self.consume(s, o);
            }
            PullStatus::NoNewMsg => {
                self.rewind(s, mq, o);
                self.pull(s, mq, o)
            }
            PullStatus::OffsetMoved(offset) => {
                // The queue is dropped, the corrected offset committed; the next rebalance
                // takes it again from there.
                s.pqs.remove(&mq);
                s.offsets.insert(mq, offset);
                self.send_offset(s, mq, offset, o);
                s.offsets.remove(&mq);
            }
            PullStatus::Retry => o.set_timer(RocketTimer::PullLater(mq), exact(PULL_RETRY)),
        }
    }

    /// Hands messages to free consume threads: concurrently, in arrival order; orderly, the
    /// lowest offset of each locked queue no thread is busy with.
    fn consume(&self, s: &mut ConsumerState, o: &mut RocketOut) {
        let Some(base) = s.handling else { return };
        let threads = self.settings.consume_threads;
        loop {
            let Some(slot) = (0..threads).find(|t| !s.running.contains_key(t)) else {
                return;
            };
            let next = if self.orderly() {
                let pick = s
                    .pqs
                    .iter()
                    .find(|(_, pq)| {
                        pq.locked && !pq.consuming && !pq.suspended && !pq.msgs.is_empty()
                    })
                    .map(|(mq, pq)| {
                        let (offset, message) = pq.msgs.iter().next().expect("non-empty");
                        Running {
                            mq: *mq,
                            session: pq.session,
                            offset: *offset,
                            message: *message,
                        }
                    });
                if let Some(r) = &pick {
                    s.pqs.get_mut(&r.mq).expect("picked").consuming = true;
                }
                pick
            } else {
                // A request of a dropped ProcessQueue is not consumed (`ConsumeRequest.run`).
                loop {
                    match s.waiting.pop_front() {
                        Some(r) if s.pqs.get(&r.mq).is_some_and(|pq| pq.session == r.session) => {
                            break Some(r)
                        }
                        Some(_) => continue,
                        None => break None,
                    }
                }
            };
            let Some(r) = next else { return };
            o.set_timer(RocketTimer::Consume(slot), exact(handling_time(base, &r.message)));
            s.running.insert(slot, r);
        }
    }

    /// Does the application's handler return RECONSUME_LATER for this attempt?
    fn fails(&self, m: &Message) -> bool {
        m.msg.seq % 10 == 9
            && match self.settings.reconsume {
                Reconsume::Never => false,
                Reconsume::EveryTenth => m.reconsume == 0,
                Reconsume::PoisonTenth => true,
            }
    }

    /// A handler returned: CONSUME_SUCCESS takes effect (the delivery); RECONSUME_LATER sends
    /// the message back (concurrently) or suspends the queue (orderly).
    fn consumed(&self, s: &mut ConsumerState, slot: u32, o: &mut RocketOut) {
        let Some(r) = s.running.remove(&slot) else { return };
        let current = s.pqs.get(&r.mq).is_some_and(|pq| pq.session == r.session);
        if self.fails(&r.message) {
            if current {
                self.failed(s, r, o);
            }
        } else {
            s.app.push(Op::Deliver {
                msg: r.message.msg,
                group: self.settings.audience_of(self.index),
                consumer: self.index,
                scope: self.settings.scope(r.mq),
                position: Some(r.offset),
                session: r.session,
                redelivered: None,
            });
            self.save(s, o);
            if let Some(back) = self.settings.workload.rewind {
                let stamps = s.stamps.entry(r.mq).or_default();
                stamps.push_back((r.offset, r.message.store_ms));
                if stamps.len() > back as usize + 1 {
                    stamps.pop_front();
                }
                s.read.insert(r.mq, r.offset + 1);
            }
            if current {
                self.done(s, &r);
            } else if self.locks() && !s.pqs.contains_key(&r.mq) {
                // The queue was taken away while this handler ran: unlock it now.
                self.unlock(s, r.mq, o);
            }
        }
        self.consume(s, o);
    }

    /// The message leaves its ProcessQueue, and the offset moves.
    fn done(&self, s: &mut ConsumerState, r: &Running) {
        let known = s.offsets.get(&r.mq).copied().unwrap_or(0);
        let Some(pq) = s.pqs.get_mut(&r.mq).filter(|pq| pq.session == r.session) else {
            return;
        };
        pq.msgs.remove(&r.offset);
        pq.consuming = false;
        let offset = if self.orderly() {
            // `ProcessQueue.commit`: past what was taken.
            Some(r.offset + 1)
        } else {
            // `ProcessQueue.removeMessage`: the lowest offset still in flight, else past the
            // highest pulled; the store only ever increases it.
            let next = pq.msgs.keys().next().copied().or(pq.max_pulled.map(|m| m + 1));
            next.map(|n| n.max(known))
        };
        if let Some(offset) = offset {
            s.offsets.insert(r.mq, offset);
        }
    }

    fn failed(&self, s: &mut ConsumerState, r: Running, o: &mut RocketOut) {
        if self.broadcasting() && !self.orderly() {
            s.app.push(Op::Discard {
                msg: r.message.msg,
                reason: "BROADCASTING drops a message its handler failed (no %RETRY% topic)"
                    .to_string(),
            });
            self.save(s, o);
            self.done(s, &r);
            return;
        }
        if self.orderly() {
            // `checkReconsumeTimes`: the message stays, its reconsumeTimes counted locally, and
            // the queue waits a moment.
            let pq = s.pqs.get_mut(&r.mq).expect("current");
            pq.consuming = false;
            pq.suspended = true;
            if let Some(m) = pq.msgs.get_mut(&r.offset) {
                m.reconsume += 1;
            }
            o.set_timer(RocketTimer::Suspended(r.mq), exact(SUSPEND));
            return;
        }
        let request = Self::request(s);
        match Self::master(s, r.mq.group) {
            Some(master) => {
                o.send(
                    master,
                    RocketMsg::SendBack {
                        request,
                        message: r.message,
                    },
                );
                o.set_timer(RocketTimer::ConsumeLater(request), exact(SEND_BACK_TIMEOUT));
                s.sent_back.insert(request, (r, master));
            }
            // `submitConsumeRequestLater`.
            None => {
                o.set_timer(RocketTimer::ConsumeLater(request), exact(CONSUME_LATER));
                s.sent_back.insert(request, (r, self.settings.namesrv()));
            }
        }
    }

    /// `--rewind N`, orderly consumers: once caught up with `mq` (a pull found nothing new and
    /// every message pulled was consumed) after reading past where it last rewound, the
    /// application resets the group's offset by time (`mqadmin resetOffsetByTime`) to the
    /// `storeTimestamp` of the message it consumed `N` back (its oldest remembered one if it
    /// consumed fewer), for this queue, at the queue's master.
    fn rewind(&self, s: &mut ConsumerState, mq: Mq, o: &mut RocketOut) {
        let Some(back) = self.settings.workload.rewind else { return };
        let Some(pq) = s.pqs.get(&mq) else { return };
        let Some(&from) = s.read.get(&mq) else { return };
        let caught_up = pq.msgs.is_empty() && !pq.consuming && pq.next_offset == Some(from);
        // 4.9 resets every queue of the broker at once: one reset per broker at a time.
        let pending = match self.settings.version {
            Version::V5_3 => s.rewinding.contains_key(&mq),
            Version::V4_9 => {
                !s.resets.is_empty() || s.rewinding.keys().any(|m| m.group == mq.group)
            }
        };
        if !caught_up || pending || s.rewound.get(&mq).is_some_and(|&r| r >= from) {
            return;
        }
        let Some(master) = Self::master(s, mq.group) else { return };
        let stamps = s.stamps.get(&mq).cloned().unwrap_or_default();
        let target = from.saturating_sub(u64::from(back));
        let Some(&(_, timestamp)) = stamps.iter().find(|(at, _)| *at >= target) else {
            return;
        };
        s.rewound.insert(mq, from);
        s.rewinding.insert(mq, from);
        o.send(
            master,
            RocketMsg::ResetOffset {
                queue: mq.queue,
                timestamp,
            },
        );
    }

    /// A ProcessQueue of a queue being reset learnt where it starts: below where the consumer
    /// had read, that is its rewind.
    fn rewound(&self, s: &mut ConsumerState, mq: Mq, session: u64, to: u64, o: &mut RocketOut) {
        let Some(from) = s.rewinding.remove(&mq) else { return };
        if to < from {
            s.app.push(Op::Rewind {
                group: self.settings.audience_of(self.index),
                consumer: self.index,
                scope: self.settings.scope(mq),
                session,
                from,
                to,
            });
            self.save(s, o);
        }
    }

    /// 4.9 `MQClientInstance.resetOffset`, first half: the consumer is suspended, the
    /// ProcessQueues of the reset queues dropped and cleared, and it sleeps 10 s.
    fn suspend(&self, s: &mut ConsumerState, o: &mut RocketOut) {
        let Some((group, offsets)) = s.resets.front() else { return };
        for (queue, _) in offsets {
            let mq = Mq {
                group: *group,
                queue: *queue,
            };
            if let Some(pq) = s.pqs.get_mut(&mq) {
                // `setDropped(true)`, `clear()`: nothing more is pulled or consumed.
                pq.msgs.clear();
                pq.next_offset = None;
                pq.asked = None;
                pq.pulling = None;
                o.cancel_timer(RocketTimer::PullLater(mq));
                o.cancel_timer(RocketTimer::PullTimeout(mq));
            }
        }
        o.set_timer(RocketTimer::ResetSleep, exact(RESET_SLEEP));
    }

    /// ... second half: each reset queue's offset is written to the offset store, its
    /// ProcessQueue removed (`removeUnnecessaryMessageQueue` persists the offset to the broker
    /// and, orderly, unlocks the queue), and the consumer resumes with a rebalance, which takes
    /// the queues again from the reset offsets.
    fn reset_offsets(&self, s: &mut ConsumerState, o: &mut RocketOut) {
        let Some((group, offsets)) = s.resets.pop_front() else { return };
        for (queue, offset) in offsets {
            let mq = Mq { group, queue };
            if !s.pqs.contains_key(&mq) {
                continue;
            }
            s.offsets.insert(mq, offset);
            if let Some(&from) = s.read.get(&mq) {
                s.rewinding.insert(mq, from);
                s.rewound.insert(mq, from);
            }
            self.remove(s, mq, o);
        }
        if s.resets.is_empty() {
            self.rebalance(s, o);
        } else {
            self.suspend(s, o);
        }
    }

    pub fn on_handling(&self, s: &mut ConsumerState, ms: u64, o: &mut RocketOut) {
        s.handling = Some(Duration::from_millis(ms));
        self.consume(s, o);
    }

    pub fn on_msg(&self, s: &mut ConsumerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        if !s.started {
            return;
        }
        match msg {
            RocketMsg::RouteInfo(route) => {
                let first = s.route.is_none();
                s.route = Some(route);
                if first {
                    self.heartbeat(s, o);
                    self.rebalance(s, o);
                }
            }
            RocketMsg::ConsumerIdsChanged => self.rebalance(s, o),
            RocketMsg::ConsumerList { request, consumers }
                if s.rebalancing.is_some_and(|(r, _)| r == request) =>
            {
                s.rebalancing = None;
                self.reallocate(s, &consumers, o);
            }
            RocketMsg::ConsumerOffset { queue, offset } | RocketMsg::MaxOffset { queue, offset } => {
                let mq = Mq {
                    group: self.settings.group_of(src),
                    queue,
                };
                if let Some(pq) = s.pqs.get_mut(&mq).filter(|pq| pq.next_offset.is_none()) {
                    pq.next_offset = Some(offset);
                    pq.asked = None;
                    let session = pq.session;
                    o.cancel_timer(RocketTimer::PullTimeout(mq));
                    self.rewound(s, mq, session, offset, o);
                    self.pull(s, mq, o);
                }
            }
            RocketMsg::PullResult {
                request,
                queue,
                status,
            } => {
                let mq = Mq {
                    group: self.settings.group_of(src),
                    queue,
                };
                let Some(pq) = s.pqs.get_mut(&mq) else { return };
                if pq.pulling.is_some_and(|(r, _)| r == request) {
                    pq.pulling = None;
                    o.cancel_timer(RocketTimer::PullTimeout(mq));
                    self.pulled(s, mq, status, o);
                }
            }
            RocketMsg::Locked { queues, .. } => {
                let group = self.settings.group_of(src);
                for (mq, pq) in s.pqs.iter_mut().filter(|(mq, _)| mq.group == group) {
                    pq.locked = queues.contains(&mq.queue);
                    if pq.locked {
                        o.set_timer(RocketTimer::LeaseExpired(*mq), exact(LEASE));
                    }
                }
                let granted: Vec<Mq> = s
                    .locking
                    .iter()
                    .filter(|mq| mq.group == group && queues.contains(&mq.queue))
                    .copied()
                    .collect();
                for mq in granted {
                    s.locking.remove(&mq);
                    self.add(s, mq, o);
                }
                self.consume(s, o);
            }
            RocketMsg::SendBackResult { request } => {
                if let Some((r, _)) = s.sent_back.remove(&request) {
                    o.cancel_timer(RocketTimer::ConsumeLater(request));
                    if r.message.reconsume + 1 > self.settings.max_reconsume_times {
                        let reason = format!(
                            "dead-lettered to %DLQ% after {} send-backs (maxReconsumeTimes={})",
                            r.message.reconsume + 1,
                            self.settings.max_reconsume_times
                        );
                        s.app.push(Op::DeadLetter {
                            msg: r.message.msg,
                            reason,
                        });
                        self.save(s, o);
                    }
                    self.done(s, &r);
                }
            }
            RocketMsg::ResetConsumerClientOffset { offsets } => {
                s.resets.push_back((self.settings.group_of(src), offsets));
                if s.resets.len() == 1 {
                    self.suspend(s, o);
                }
            }
            RocketMsg::Disconnected => {
                for (request, (_, b)) in &s.sent_back {
                    if *b == src {
                        o.set_timer(RocketTimer::ConsumeLater(*request), exact(CONSUME_LATER));
                    }
                }
                let mqs: Vec<Mq> = s.pqs.keys().copied().collect();
                for mq in mqs {
                    let pq = s.pqs.get_mut(&mq).expect("listed");
                    if pq.pulling.is_some_and(|(_, b)| b == src) {
                        pq.pulling = None;
                        o.cancel_timer(RocketTimer::PullTimeout(mq));
                        o.set_timer(RocketTimer::PullLater(mq), exact(PULL_AFTER_EXCEPTION));
                    }
                    // The offset query failed: the queue is not taken this round.
                    if pq.next_offset.is_none() && pq.asked == Some(src) {
                        s.pqs.remove(&mq);
                    }
                }
                if s.rebalancing.is_some_and(|(_, b)| b == src) {
                    s.rebalancing = None;
                }
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut ConsumerState, timer: &RocketTimer, o: &mut RocketOut) {
        match timer {
            RocketTimer::Start => self.begin(s, o),
            RocketTimer::RouteRefresh => {
                o.send(self.settings.namesrv(), RocketMsg::GetRouteInfo);
                o.set_timer(RocketTimer::RouteRefresh, exact(POLL_NAMESERVER));
            }
            RocketTimer::Heartbeat => {
                self.heartbeat(s, o);
                o.set_timer(RocketTimer::Heartbeat, exact(HEARTBEAT));
            }
            RocketTimer::Rebalance => {
                self.rebalance(s, o);
                o.set_timer(RocketTimer::Rebalance, retry(REBALANCE));
            }
            RocketTimer::PersistOffset => {
                let offsets: Vec<(Mq, u64)> = s
                    .offsets
                    .iter()
                    .filter(|(mq, _)| s.pqs.contains_key(mq))
                    .map(|(mq, off)| (*mq, *off))
                    .collect();
                if self.broadcasting() {
                    // `LocalFileOffsetStore.persistAll`: the file's entries for these queues.
                    if !offsets.is_empty() {
                        s.stored.extend(offsets);
                        self.save(s, o);
                    }
                } else {
                    for (mq, offset) in offsets {
                        self.send_offset(s, mq, offset, o);
                    }
                }
                o.set_timer(
                    RocketTimer::PersistOffset,
                    exact(self.settings.persist_offset_interval),
                );
            }
            RocketTimer::LockAll => {
                let mqs: Vec<Mq> = s.pqs.keys().chain(&s.locking).copied().collect();
                self.lock(s, &mqs, o);
                o.set_timer(RocketTimer::LockAll, exact(LOCK_INTERVAL));
            }
            RocketTimer::LeaseExpired(mq) => {
                if let Some(pq) = s.pqs.get_mut(mq) {
                    pq.locked = false;
                }
            }
            RocketTimer::PullLater(mq) => self.pull(s, *mq, o),
            RocketTimer::PullTimeout(mq) => match s.pqs.get_mut(mq) {
                // The offset query timed out: the queue is not taken this round.
                Some(pq) if pq.next_offset.is_none() => {
                    s.pqs.remove(mq);
                }
                Some(pq) => {
                    pq.pulling = None;
                    o.set_timer(RocketTimer::PullLater(*mq), exact(PULL_AFTER_EXCEPTION));
                }
                None => {}
            },
            RocketTimer::Consume(slot) => self.consumed(s, *slot, o),
            RocketTimer::ConsumeLater(request) => {
                if let Some((r, _)) = s.sent_back.remove(request) {
                    s.waiting.push_back(r);
                    self.consume(s, o);
                }
            }
            RocketTimer::ResetSleep => self.reset_offsets(s, o),
            RocketTimer::Suspended(mq) => {
                if let Some(pq) = s.pqs.get_mut(mq) {
                    pq.suspended = false;
                }
                self.consume(s, o);
            }
            _ => {}
        }
    }
}

/// How long the handler takes for one message: the drawn time, times 1, 1.5, 2 or 2.5 by the
/// message.
fn handling_time(base: Duration, m: &Message) -> Duration {
    let factor = u64::from((m.msg.seq * 7 + m.msg.producer) % 4);
    base + base * factor as u32 / 2
}

