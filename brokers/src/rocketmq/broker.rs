//! A broker (`BrokerController`): the message store, classic HA (`HAService`), pulls with long
//! polling (`PullMessageProcessor`, `PullRequestHoldService`), consumer offsets
//! (`ConsumerOffsetManager`), the consumer table (`ConsumerManager`) and the orderly consumers'
//! queue locks (`RebalanceLockManager`).

use super::config::{BrokerRole, FlushDiskType, Transaction, Version};
use super::protocol::{
    LocalTransactionState, Message, PullStatus, QueueId, RocketMsg, SendError, SendStatus, Tran,
};
use super::autoswitch::Replicas;
use super::dledger::DLedgerState;
use super::store::{Boundary, ConsumeQueues, RocketFiles, StoreDisk};
use super::{exact, retry, RocketDisk, RocketOut, RocketTimer, Settings};
use crate::Disk;
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `registerNameServerPeriod`.
pub const REGISTER_PERIOD: Duration = Duration::from_secs(30);
/// `haSendHeartbeatInterval`: a slave reports its offset at least this often.
const HA_HEARTBEAT: Duration = Duration::from_secs(5);
/// `haHousekeepingInterval`: a master drops an HA connection silent this long.
const HA_HOUSEKEEPING: Duration = Duration::from_secs(20);
/// Entries per HA transfer (the model's stand-in for `haTransferBatchSize`).
const HA_BATCH: u64 = 32;
/// `pullBatchSize`.
const PULL_BATCH: usize = 32;
/// `brokerSuspendMaxTimeMillis`: how long a pull that found nothing is held.
const HOLD: Duration = Duration::from_secs(15);
/// `channelExpiredTimeout`: a consumer without a heartbeat this long is removed.
const CONSUMER_EXPIRED: Duration = Duration::from_secs(120);
/// `REBALANCE_LOCK_MAX_LIVE_TIME` on the broker.
pub const LOCK_MAX_LIVE: Duration = Duration::from_secs(60);
/// `flushConsumerOffsetInterval`.
const OFFSET_FLUSH: Duration = Duration::from_secs(5);
/// How long a broker takes to start before it registers.
pub(super) const STARTUP: Duration = Duration::from_millis(100);
/// How far the machine's clock advances per tick of the node's own timers (the granularity of
/// `storeTimestamp` in the model: messages stored within one tick share a timestamp).
pub const TICK: Duration = Duration::from_millis(100);
/// The NTP daemon's poll interval (ntpd's and chrony's default `minpoll` 6: 64 s).
pub const NTP_POLL: Duration = Duration::from_secs(64);
/// ntpd's step threshold (`tinker step`, 0.128 s): a larger offset is stepped at once, back as
/// well as forward (the slewing of smaller offsets is not modelled).
const NTP_STEP: u64 = 128;
/// How soon the group commit service flushes after a put woke it.
const GROUP_COMMIT: Duration = Duration::from_millis(1);
/// 5.x `transactionOpBatchInterval`: how often `TransactionalOpBatchService` writes the op
/// messages `deletePrepareMessage` queued in memory.
const OP_BATCH_INTERVAL: Duration = Duration::from_millis(3000);
/// `channelExpiredTimeout` of `ProducerManager.scanNotActiveChannel`.
const PRODUCER_EXPIRED: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct Broker {
    pub settings: Settings,
    pub group: u32,
    /// 0: the master; a slave otherwise.
    pub broker_id: u32,
}

/// A put waiting for its flush (SYNC_FLUSH) or its slaves (SYNC_MASTER) before the producer
/// hears its status.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Put {
    pub src: Id,
    pub request: u64,
    pub flush: bool,
    pub replicas: bool,
    pub status: SendStatus,
    /// DLedger: a consumer's send-back (answered `SendBackResult`, and not at all on a
    /// timeout: the consumer consumes it again locally).
    pub back: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BrokerState {
    /// brokerId 0.
    pub master: bool,
    /// Is the dispatch bound the flushed position (5.3 with SYNC_FLUSH) rather than the end?
    pub dispatch_flushed: bool,
    pub disk: StoreDisk,
    pub cq: ConsumeQueues,
    /// `ConsumerOffsetManager.offsetTable`, in memory.
    pub offsets: BTreeMap<QueueId, u64>,
    /// Puts waiting, by the CommitLog end they need.
    pub puts: BTreeMap<u64, Put>,
    /// Master: each connected slave's acknowledged offset.
    pub slaves: BTreeMap<Id, u64>,
    /// Master: slaves that have everything, waiting for the next entries from this offset.
    pub transfers: BTreeMap<Id, u64>,
    /// Long-polled pulls by (consumer, request): queue and offset.
    pub held: BTreeMap<(Id, u64), (QueueId, u64)>,
    /// `ConsumerManager`: the group's consumers by channel.
    pub consumers: BTreeMap<Id, u32>,
    /// `RebalanceLockManager`: each locked queue's owner.
    pub locks: BTreeMap<QueueId, u32>,
    /// `ProducerManager`: producer channels by their heartbeats, with their producer group.
    pub producers: BTreeMap<Id, u32>,
    /// Half messages (by CommitLog position) younger than `transactionTimeOut`: a check round
    /// stops at the first of them.
    pub immune: BTreeSet<u64>,
    /// 5.x: the half messages `deletePrepareMessage` queued for the next op batch.
    pub pending_ops: Vec<u64>,
    /// The machine's clock (`System.currentTimeMillis()`, ms) when consumers rewind by time
    /// (`--rewind`): it advances by `TICK` each tick of this node's own timers, so a clock
    /// fault makes it run fast or slow, and the NTP daemon steps it to the time server's.
    pub clock: Option<u64>,
    /// 5.3 `ConsumerOffsetManager.resetOffsetTable`: offsets a reset assigned, which the next
    /// pull of the queue returns (`OFFSET_RESET`) and erases.
    pub reset: BTreeMap<QueueId, u64>,
    /// With `enableDLegerCommitLog`: the broker's DLedger server.
    pub dl: Option<DLedgerState>,
    /// With `enableControllerMode`: the broker's `ReplicasManager` and HA state.
    pub ctl: Option<Replicas>,
    /// `transientStorePoolEnable`: the off-heap `writeBuffer`, appended to and not yet
    /// committed to the page cache: a crash takes it.
    pub write_buffer: Vec<Message>,
}

impl BrokerState {
    /// The dispatch bound (`CommitLog.getConfirmOffset`): with DLedger the committed index;
    /// 5.3 with SYNC_FLUSH dispatches only what was flushed; otherwise the CommitLog's end,
    /// flushed or not.
    pub fn confirm_offset(&self) -> u64 {
        let log = &self.disk.commitlog;
        if let Some(dl) = &self.dl {
            // `DLedgerCommitLog.getConfirmOffset`: `getMaxOffset`, the committed position.
            dl.committed.min(log.end())
        } else if let Some(r) = &self.ctl {
            r.confirm_offset(self.master, log.end())
        } else if self.dispatch_flushed {
            log.flushed
        } else {
            log.end()
        }
    }
}

impl Broker {
    fn is_master(&self) -> bool {
        self.broker_id == 0
    }

    fn master(&self) -> Id {
        self.settings.broker(self.group, 0)
    }

    pub(super) fn save(&self, s: &BrokerState, o: &mut RocketOut) {
        o.save(RocketDisk::Server(RocketFiles::Store(s.disk.clone())));
    }

    pub fn start(&self, disk: Option<StoreDisk>, o: &mut RocketOut) -> BrokerState {
        let mut s = BrokerState {
            master: self.is_master() && !self.settings.dledger && !self.settings.controller,
            dispatch_flushed: (self.settings.version, self.settings.flush)
                == (Version::V5_3, FlushDiskType::SyncFlush),
            disk: disk.unwrap_or_default(),
            ..BrokerState::default()
        };
        // Recovery: the CommitLog as found is the truth; its recovered end is flushedWhere,
        // and the ConsumeQueues are rebuilt (truncated) to it.
        if s.disk.commitlog.dirty() > 0 {
            s.disk.commitlog.flush();
            self.save(&s, o);
        }
        s.offsets = s.disk.offsets.clone();
        if self.settings.dledger {
            self.start_dledger(&mut s, o);
        }
        if self.settings.workload.rewind.is_some() {
            // Until the time server answers, the clock reads on from the last storeTimestamp
            // the recovery found (the model keeps no clock across a restart).
            s.clock = Some(s.disk.commitlog.entries.iter().map(|m| m.store_ms).max().unwrap_or(0));
            o.set_timer(RocketTimer::Tick, exact(TICK));
            o.send(self.settings.namesrv(), RocketMsg::NtpQuery);
            o.set_timer(RocketTimer::NtpPoll, exact(NTP_POLL));
        }
        let bound = s.confirm_offset();
        s.cq.dispatch(&s.disk.commitlog, bound);
        // The first registration once the process is up (the NameServer started first).
        o.set_timer(RocketTimer::Register, exact(STARTUP));
        o.set_timer(RocketTimer::OffsetFlush, exact(OFFSET_FLUSH));
        match self.settings.flush {
            // DLedger flushes its own files (`FlushDataService`).
            _ if self.settings.dledger => {}
            FlushDiskType::AsyncFlush => {
                o.set_timer(RocketTimer::Flush, exact(self.settings.flush_interval));
                o.set_timer(
                    RocketTimer::FlushThorough,
                    exact(self.settings.flush_thorough_interval),
                );
            }
            FlushDiskType::SyncFlush => {}
        }
        if self.settings.transient_pool && !self.settings.dledger {
            o.set_timer(RocketTimer::Commit, exact(self.settings.commit_interval));
        }
        if self.settings.dledger {
            // The role follows the elector (`DLedgerRoleChangeHandler`).
        } else if self.settings.controller {
            // The role follows the controller (`ReplicasManager`).
            self.start_controller_mode(&mut s, o);
        } else if self.is_master() {
            self.start_special_services(&mut s, o);
        } else {
            self.report(&s, o);
        }
        s
    }

    /// A master's `changeSpecialServiceStatus(true)`: the schedule service and, in a
    /// transactional deployment, the transaction check services.
    pub(super) fn start_special_services(&self, s: &mut BrokerState, o: &mut RocketOut) {
        self.reschedule(s, o);
        if self.settings.transaction != Transaction::None {
            self.start_transactions(s, o);
        }
    }

    /// `registerBrokerAll`, under the brokerId the broker has now: with DLedger 0 as master,
    /// selfId + 1 as slave (`DLedgerRoleChangeHandler`); in controller mode 0 as master, its
    /// brokerControllerId as slave, and nothing before it has a role (fenced).
    pub(super) fn register(&self, s: &BrokerState, o: &mut RocketOut) {
        if s.ctl.as_ref().is_some_and(|r| r.master.is_none()) {
            return;
        }
        let replicated = self.settings.dledger || self.settings.controller;
        let broker_id = match (replicated, s.master) {
            (false, _) => self.broker_id,
            (true, true) => 0,
            (true, false) => self.broker_id + 1,
        };
        o.send(
            self.settings.namesrv(),
            RocketMsg::RegisterBroker {
                group: self.group,
                broker_id,
            },
        );
    }

    /// Slave: tell the master how far this CommitLog goes.
    pub(super) fn report(&self, s: &BrokerState, o: &mut RocketOut) {
        if self.settings.controller {
            self.ctl_report(s, o);
            return;
        }
        o.send(
            self.master(),
            RocketMsg::HaReport {
                offset: s.disk.commitlog.end(),
            },
        );
        o.set_timer(RocketTimer::HaHeartbeat, exact(HA_HEARTBEAT));
    }

    pub fn on_msg(&self, s: &mut BrokerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        if self.settings.controller && self.ctl_on_msg(s, src, &msg, o) {
            return;
        }
        match msg {
            RocketMsg::SendMessage { request, message } if s.master => {
                self.put(s, src, request, message, o)
            }
            RocketMsg::SendMessage { .. }
            | RocketMsg::DlVote { .. }
            | RocketMsg::DlVoteResult { .. }
            | RocketMsg::DlHeartbeat { .. }
            | RocketMsg::DlHeartbeatResult { .. }
            | RocketMsg::DlPush { .. }
            | RocketMsg::DlPushResult { .. }
                if self.settings.dledger =>
            {
                self.dl_on_msg(s, src, msg, o)
            }
            // `DefaultMessageStore.checkStoreStatus`: a slave's store refuses puts.
            RocketMsg::SendMessage { request, .. } if self.settings.controller => o.send(
                src,
                RocketMsg::SendError {
                    request,
                    code: SendError::ServiceNotAvailable,
                },
            ),
            RocketMsg::SendBack { request, message } if s.master => {
                let end = self.send_back(s, message, o);
                if self.settings.dledger {
                    // The put's future completes once a quorum has it, whatever
                    // `waitStoreMsgOK` says.
                    let put = Put {
                        src,
                        request,
                        flush: false,
                        replicas: true,
                        status: SendStatus::SendOk,
                        back: true,
                    };
                    self.dl_put(s, end, put, o);
                } else {
                    o.send(src, RocketMsg::SendBackResult { request });
                }
            }
            RocketMsg::HaReport { offset } if self.is_master() => {
                s.slaves.insert(src, offset);
                o.set_timer(RocketTimer::HaHousekeeping(src), exact(HA_HOUSEKEEPING));
                s.transfers.insert(src, offset);
                self.transfer(s, o);
                self.settle(s, o);
            }
            // A transfer that does not continue this CommitLog is a stale duplicate.
            RocketMsg::HaTransfer { from, entries }
                if !self.is_master() && from == s.disk.commitlog.end() && !entries.is_empty() =>
            {
                for m in entries {
                    s.disk.commitlog.append(m);
                }
                self.save(s, o);
                self.appended(s, o);
                self.report(s, o);
            }
            RocketMsg::ProducerHeartbeat { group } => {
                s.producers.insert(src, group);
                o.set_timer(RocketTimer::ProducerExpired(src), exact(PRODUCER_EXPIRED));
            }
            // EndTransactionProcessor: a slave answers SLAVE_NOT_AVAILABLE, to nobody (one-way).
            RocketMsg::EndTransaction {
                half, msg, state, ..
            } if s.master => self.end_transaction(s, half, msg, state, o),
            RocketMsg::Heartbeat { consumer } => {
                o.set_timer(RocketTimer::ConsumerExpired(src), exact(CONSUMER_EXPIRED));
                if s.consumers.insert(src, consumer).is_none() {
                    self.notify(s, o);
                }
            }
            RocketMsg::GetConsumerList { request } => {
                let mut consumers: Vec<u32> = s.consumers.values().copied().collect();
                consumers.sort();
                consumers.dedup();
                o.send(src, RocketMsg::ConsumerList { request, consumers });
            }
            RocketMsg::QueryConsumerOffset { queue } => {
                // QueryConsumerOffsetProcessor: a group without an offset whose queue still
                // starts at 0 in memory reads from 0.
                // 5.3 `queryOffset`: a reset offset not yet pulled comes first.
                let offset = s
                    .reset
                    .get(&queue)
                    .or(s.offsets.get(&queue))
                    .copied()
                    .unwrap_or(0);
                o.send(src, RocketMsg::ConsumerOffset { queue, offset });
            }
            // 5.3 `ConsumerManageProcessor.updateConsumerOffset`: ignored while a reset waits.
            RocketMsg::UpdateConsumerOffset { queue, offset } if !s.reset.contains_key(&queue) => {
                s.offsets.insert(queue, offset);
            }
            RocketMsg::ResetOffset { queue, timestamp } if s.master => {
                self.reset_offset(s, queue, timestamp, o)
            }
            RocketMsg::NtpTime { ms } => {
                // ntpd steps a clock more than 128 ms off (its step threshold) at once.
                if let Some(clock) = s.clock.as_mut().filter(|c| c.abs_diff(ms) > NTP_STEP) {
                    *clock = ms;
                }
            }
            RocketMsg::GetMaxOffset { queue } => {
                // GetMaxOffsetProcessor: the ConsumeQueue's end, what was dispatched.
                let offset = s.cq.max_offset(queue);
                o.send(src, RocketMsg::MaxOffset { queue, offset });
            }
            RocketMsg::Pull {
                request,
                queue,
                offset,
                commit,
            } => {
                if let (true, Some(c)) = (s.master, commit) {
                    if !s.reset.contains_key(&queue) {
                        s.offsets.insert(queue, c);
                    }
                }
                // 5.3 `PullMessageProcessor`: `queryThenEraseResetOffset`, answered OFFSET_RESET
                // (PULL_OFFSET_MOVED to the client) with the reset offset.
                if let Some(reset) = s.reset.remove(&queue) {
                    s.offsets.insert(queue, reset);
                    o.send(
                        src,
                        RocketMsg::PullResult {
                            request,
                            queue,
                            status: PullStatus::OffsetMoved(reset),
                        },
                    );
                    return;
                }
                self.pull(s, src, request, queue, offset, o);
            }
            RocketMsg::LockBatch {
                request,
                consumer,
                queues,
            } if s.master => {
                let mut locked = Vec::new();
                for q in queues {
                    if s.locks.get(&q).is_none_or(|owner| *owner == consumer) {
                        s.locks.insert(q, consumer);
                        o.set_timer(RocketTimer::LockExpired(q), exact(LOCK_MAX_LIVE));
                        locked.push(q);
                    }
                }
                o.send(
                    src,
                    RocketMsg::Locked {
                        request,
                        queues: locked,
                    },
                );
            }
            RocketMsg::Unlock { consumer, queues } => {
                for q in queues {
                    if s.locks.get(&q) == Some(&consumer) {
                        s.locks.remove(&q);
                        o.cancel_timer(RocketTimer::LockExpired(q));
                    }
                }
            }
            RocketMsg::Disconnected => {
                if self.settings.dledger {
                    self.dl_on_msg(s, src, RocketMsg::Disconnected, o);
                }
                s.held.retain(|(c, _), _| *c != src);
                s.slaves.remove(&src);
                s.transfers.remove(&src);
                s.producers.remove(&src);
                if s.consumers.remove(&src).is_some() {
                    self.notify(s, o);
                }
            }
            _ => {}
        }
    }

    /// `NOTIFY_CONSUMER_IDS_CHANGED` to every consumer of the group.
    fn notify(&self, s: &BrokerState, o: &mut RocketOut) {
        for c in s.consumers.keys() {
            o.send(*c, RocketMsg::ConsumerIdsChanged);
        }
    }

    /// `CommitLog` append on the master: `DefaultAppendMessageCallback.doAppend` stamps the
    /// message with the broker's clock (`storeTimestamp`), whatever order that puts the
    /// timestamps in.
    fn append(&self, s: &mut BrokerState, m: Message) -> u64 {
        let store_ms = s.clock.unwrap_or(0);
        if self.transient(s) {
            // `DefaultMappedFile.appendMessage` into the `writeBuffer`: the CommitLog (and so
            // the dispatch, the HA transfer and the flush) sees it once committed.
            s.write_buffer.push(Message { store_ms, ..m });
            return s.disk.commitlog.end() + s.write_buffer.len() as u64;
        }
        if self.settings.dledger {
            // `appendAsLeader`: the entry in the leader's current term.
            let term = s.disk.dledger.term;
            s.disk.dledger.terms.push_back_mut(term);
        }
        s.disk.commitlog.append(Message { store_ms, ..m })
    }

    /// Is the transient store pool in use (`DefaultMessageStore.isTransientStorePoolEnable`)?
    /// 5.3: on any store but a classic SLAVE's (in controller mode a slave's HA client appends
    /// to the page cache directly); 4.9 (`MessageStoreConfig.isTransientStorePoolEnable`): on a
    /// master with ASYNC_FLUSH only. DLedger's CommitLog does not use it.
    fn transient(&self, s: &BrokerState) -> bool {
        let st = &self.settings;
        st.transient_pool
            && !st.dledger
            && s.master
            && (st.version == Version::V5_3 || st.flush == FlushDiskType::AsyncFlush)
    }

    /// `CommitRealTimeService`: the write buffer goes to the page cache (`commit`), where it is
    /// dispatched, replicated and flushed.
    pub(super) fn commit_buffer(&self, s: &mut BrokerState, o: &mut RocketOut) {
        if s.write_buffer.is_empty() {
            return;
        }
        for m in std::mem::take(&mut s.write_buffer) {
            s.disk.commitlog.append(m);
        }
        self.save(s, o);
        self.appended(s, o);
        self.transfer(s, o);
        self.settle(s, o);
    }

    /// `SendMessageProcessor` → `CommitLog.asyncPutMessage`: append, then wait for the flush
    /// and the slaves as configured.
    fn put(&self, s: &mut BrokerState, src: Id, request: u64, m: Message, o: &mut RocketOut) {
        let st = &self.settings;
        let prepared = m.tran == Tran::Prepared;
        let m = if prepared {
            // `TransactionalMessageBridge.parseHalfMessageInner`: to the half topic, the real
            // queue kept as a property.
            Message {
                queue: st.half_queue(),
                tran: Tran::Half {
                    real_queue: m.queue,
                    checks: 0,
                },
                ..m
            }
        } else {
            m
        };
        // Controller mode: the master is SYNC_MASTER, and a SyncStateSet smaller than
        // `minInSyncReplicas` refuses the put before it is appended.
        let wait_ctl = if st.controller {
            match self.ctl_put_checks(s) {
                Ok(wait) => wait,
                Err(()) => {
                    o.send(
                        src,
                        RocketMsg::SendError {
                            request,
                            code: SendError::InSyncReplicasNotEnough,
                        },
                    );
                    return;
                }
            }
        } else {
            false
        };
        let end = self.append(s, m);
        self.save(s, o);
        if prepared {
            s.immune.insert(end - 1);
            o.set_timer(
                RocketTimer::TransactionTimeOut(end - 1),
                exact(st.transaction_timeout),
            );
        }
        if st.dledger {
            let put = Put {
                src,
                request,
                flush: false,
                replicas: true,
                status: SendStatus::SendOk,
                back: false,
            };
            self.appended(s, o);
            self.dl_put(s, end, put, o);
            return;
        }
        let mut put = Put {
            src,
            request,
            flush: st.flush == FlushDiskType::SyncFlush,
            replicas: false,
            status: SendStatus::SendOk,
            back: false,
        };
        if put.flush {
            o.set_timer(RocketTimer::GroupCommit, exact(GROUP_COMMIT));
            o.set_timer(RocketTimer::FlushTimeout(end), exact(st.sync_flush_timeout));
        }
        if st.controller {
            put.replicas = wait_ctl;
            if put.replicas {
                o.set_timer(RocketTimer::SlaveTimeout(end), exact(st.slave_timeout));
            }
        } else if st.role == BrokerRole::SyncMaster {
            match st.version {
                // 4.9 `submitReplicaRequest`: no slave connected (`isSlaveOK`) answers at once.
                Version::V4_9 if s.slaves.is_empty() => put.status = SendStatus::SlaveNotAvailable,
                Version::V4_9 => put.replicas = true,
                // 5.x `handleHA`: inSyncReplicas ≤ 1 does not wait.
                Version::V5_3 => put.replicas = st.in_sync_replicas > 1,
            }
            if put.replicas {
                o.set_timer(RocketTimer::SlaveTimeout(end), exact(st.slave_timeout));
            }
        }
        s.puts.insert(end, put);
        if s.write_buffer.len() as u64 >= st.commit_least_pages.max(1) {
            // `wakeCommitWhenPutMessage`: enough pages wake the commit service.
            self.commit_buffer(s, o);
        }
        self.appended(s, o);
        self.transfer(s, o);
        self.settle(s, o);
    }

    /// `consumerSendMsgBack`: past `maxReconsumeTimes` to `%DLQ%`, otherwise scheduled at
    /// delay level 3 + reconsumeTimes for `%RETRY%`. Written without waiting for the flush or
    /// the slaves (`waitStoreMsgOK=false`).
    fn send_back(&self, s: &mut BrokerState, m: Message, o: &mut RocketOut) -> u64 {
        let st = &self.settings;
        let reconsume = m.reconsume + 1;
        let dead = reconsume > st.max_reconsume_times;
        let queue = if dead {
            st.dlq_queue()
        } else {
            st.schedule_queue()
        };
        let end = self.append(s, Message {
            queue,
            reconsume,
            ..m
        });
        self.save(s, o);
        if !dead {
            o.set_timer(
                RocketTimer::Scheduled(end - 1),
                exact(st.delay(3 + m.reconsume)),
            );
        }
        self.appended(s, o);
        self.transfer(s, o);
        end
    }

    /// A scheduled message is due: it goes to `%RETRY%`. (A DLedger broker's log may have been
    /// truncated and rewritten since the timer was set: only a scheduled message moves.)
    fn deliver_scheduled(&self, s: &mut BrokerState, at: u64, o: &mut RocketOut) {
        if at >= s.disk.commitlog.end() && at < s.disk.commitlog.end() + s.write_buffer.len() as u64 {
            // Still in the write buffer: `ScheduleMessageService` reads the schedule queue,
            // which has it once committed.
            o.set_timer(RocketTimer::Scheduled(at), exact(self.settings.commit_interval));
            return;
        }
        let Some(m) = s
            .disk
            .commitlog
            .get(at)
            .copied()
            .filter(|m| m.queue == self.settings.schedule_queue())
        else {
            return;
        };
        self.append(s, Message {
            queue: self.settings.retry_queue(),
            ..m
        });
        self.save(s, o);
        self.appended(s, o);
        self.transfer(s, o);
    }

    /// After a restart, the scheduled messages not yet in `%RETRY%` are scheduled again.
    fn reschedule(&self, s: &BrokerState, o: &mut RocketOut) {
        let st = &self.settings;
        let log = &s.disk.commitlog;
        let retried: std::collections::BTreeSet<(mqcheck_invariants::MsgId, u32)> = log
            .entries
            .iter()
            .filter(|m| m.queue == st.retry_queue())
            .map(|m| (m.msg, m.reconsume))
            .collect();
        for (at, m) in log.entries.iter().enumerate() {
            if m.queue == st.schedule_queue() && !retried.contains(&(m.msg, m.reconsume)) {
                o.set_timer(
                    RocketTimer::Scheduled(at as u64),
                    exact(st.delay(2 + m.reconsume)),
                );
            }
        }
    }

    /// A transactional deployment's master at start: the check and op batch services, and
    /// every unresolved half message immune for a whole `transactionTimeOut` again.
    fn start_transactions(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let st = &self.settings;
        o.set_timer(RocketTimer::TransactionCheck, exact(st.check_interval));
        if st.version == Version::V5_3 {
            o.set_timer(RocketTimer::OpBatch, exact(OP_BATCH_INTERVAL));
        }
        let done = self.done_halves(s);
        let log = &s.disk.commitlog;
        for (at, m) in log.entries.iter().enumerate() {
            let at = at as u64;
            if matches!(m.tran, Tran::Half { checks: 0, .. }) && !done.contains(&at) {
                s.immune.insert(at);
                o.set_timer(
                    RocketTimer::TransactionTimeOut(at),
                    exact(st.transaction_timeout),
                );
            }
        }
    }

    /// `fillOpRemoveMap`: the half messages the op queue says are done.
    fn done_halves(&self, s: &BrokerState) -> BTreeSet<u64> {
        let log = &s.disk.commitlog;
        s.cq.queues
            .get(&self.settings.op_queue())
            .into_iter()
            .flatten()
            .filter_map(|at| match log.get(*at)?.tran {
                Tran::Op { half } => Some(half),
                _ => None,
            })
            .collect()
    }

    /// `EndTransactionProcessor`: UNKNOW changes nothing; COMMIT writes the message to its
    /// queue (`endMessageTransaction`, `waitStoreMsgOK=false`) and ROLLBACK nothing, and both
    /// mark the half message done (`deletePrepareMessage`). The half message is found by its
    /// CommitLog position (`getHalfMessageByOffset`) and must be the one the request names
    /// (`checkPrepareMessage`); whether it was already done is not asked.
    fn end_transaction(
        &self,
        s: &mut BrokerState,
        half: u64,
        msg: mqcheck_invariants::MsgId,
        state: LocalTransactionState,
        o: &mut RocketOut,
    ) {
        let commit = match state {
            LocalTransactionState::Unknow => return,
            LocalTransactionState::CommitMessage => true,
            LocalTransactionState::RollbackMessage => false,
        };
        let Some(m) = s.disk.commitlog.get(half).copied() else {
            return;
        };
        let Tran::Half { real_queue, .. } = m.tran else {
            return;
        };
        if m.msg != msg {
            return;
        }
        if commit {
            self.append(s, Message {
                queue: real_queue,
                tran: Tran::Plain,
                ..m
            });
        }
        match self.settings.version {
            // 4.9: the op message is written at once (`putOpMessage`).
            Version::V4_9 => self.write_op(s, half),
            // 5.x: queued for `TransactionalOpBatchService`, in memory.
            Version::V5_3 => s.pending_ops.push(half),
        }
        self.save(s, o);
        self.appended(s, o);
        self.transfer(s, o);
    }

    fn write_op(&self, s: &mut BrokerState, half: u64) {
        let Some(m) = s.disk.commitlog.get(half).copied() else {
            return;
        };
        self.append(s, Message {
            queue: self.settings.op_queue(),
            tran: Tran::Op { half },
            ..m
        });
    }

    /// `TransactionalMessageServiceImpl.check`: from the half queue's check offset, every half
    /// message not done is, in order: discarded to `TRANS_CHECK_MAX_TIME_TOPIC` once checked
    /// `transactionCheckMax` times (`needDiscard`); left for a later round, with all after
    /// it, while younger than `transactionTimeOut`; otherwise put back to the half queue with
    /// one check more (`putBackHalfMsgQueue`) and checked back with a producer channel of its
    /// group (`resolveHalfMsg`; without one, "channel is null", and the check still counts).
    /// The copies put back this round wait for the next. The check offset is the system
    /// group's consumer offset of the half queue, flushed with the others.
    fn check_transactions(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let st = &self.settings;
        let done = self.done_halves(s);
        let halves = s.cq.queues.get(&st.half_queue()).cloned().unwrap_or_default();
        // An offset past the queue's end (a power loss truncated it) goes on from the end.
        let mut i = s
            .offsets
            .get(&st.half_queue())
            .copied()
            .unwrap_or(0)
            .min(halves.len() as u64);
        let before = s.disk.commitlog.end();
        while let Some(at) = halves.get(i as usize).copied() {
            let m = *s.disk.commitlog.get(at).expect("dispatched");
            let Tran::Half { real_queue, checks } = m.tran else {
                i += 1;
                continue;
            };
            if done.contains(&at) {
                i += 1;
                continue;
            }
            if checks >= st.check_max {
                // `resolveDiscardMsg`: never delivered.
                self.append(s, Message {
                    queue: st.check_max_queue(),
                    ..m
                });
                i += 1;
                continue;
            }
            if s.immune.contains(&at) {
                break;
            }
            let end = self.append(s, Message {
                tran: Tran::Half {
                    real_queue,
                    checks: checks + 1,
                },
                ..m
            });
            let channel = s
                .producers
                .iter()
                .find(|(_, group)| **group == m.msg.producer)
                .map(|(id, _)| *id);
            if let Some(producer) = channel {
                o.send(
                    producer,
                    RocketMsg::CheckTransactionState {
                        half: end - 1,
                        msg: m.msg,
                    },
                );
            }
            i += 1;
        }
        s.offsets.insert(st.half_queue(), i);
        if s.disk.commitlog.end() > before {
            self.save(s, o);
            self.appended(s, o);
            self.transfer(s, o);
        }
    }

    /// Slave acknowledgements a SYNC_MASTER put waits for (the master counts as one).
    fn needed_acks(&self) -> usize {
        match self.settings.version {
            Version::V4_9 => 1,
            Version::V5_3 => self.settings.in_sync_replicas.saturating_sub(1) as usize,
        }
    }

    /// Answers every put whose flush and replication are done (or timed out).
    pub(super) fn settle(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let flushed = s.disk.commitlog.flushed;
        let needed = self.needed_acks();
        let done: Vec<u64> = s
            .puts
            .iter()
            .filter(|(end, p)| {
                let flush_ok = !p.flush || flushed >= **end;
                let replicated = if self.settings.controller {
                    self.ctl_replicated(s, **end)
                } else {
                    s.slaves.values().filter(|a| **a >= **end).count() >= needed
                };
                flush_ok && (!p.replicas || replicated)
            })
            .map(|(end, _)| *end)
            .collect();
        for end in done {
            let p = s.puts.remove(&end).expect("listed");
            o.cancel_timer(RocketTimer::FlushTimeout(end));
            o.cancel_timer(RocketTimer::SlaveTimeout(end));
            o.send(
                p.src,
                RocketMsg::SendResult {
                    request: p.request,
                    status: p.status,
                    offset: end - 1,
                },
            );
        }
    }

    /// Master: sends each waiting slave what it lacks.
    pub(super) fn transfer(&self, s: &mut BrokerState, o: &mut RocketOut) {
        if self.settings.dledger {
            self.push_all(s, o);
            return;
        }
        if self.settings.controller {
            self.ctl_transfer_all(s, o);
            return;
        }
        let end = s.disk.commitlog.end();
        let ready: Vec<(Id, u64)> = s
            .transfers
            .iter()
            .filter(|(_, from)| **from < end)
            .map(|(id, from)| (*id, *from))
            .collect();
        for (slave, from) in ready {
            s.transfers.remove(&slave);
            let entries = (from..end.min(from + HA_BATCH))
                .filter_map(|i| s.disk.commitlog.get(i).copied())
                .collect();
            o.send(slave, RocketMsg::HaTransfer { from, entries });
        }
    }

    /// After the CommitLog grew or was flushed: the flush services, the dispatch, the held
    /// pulls.
    pub(super) fn appended(&self, s: &mut BrokerState, o: &mut RocketOut) {
        if self.settings.dledger {
            self.dl_appended(s, o);
        }
        if self.settings.flush == FlushDiskType::SyncFlush && s.disk.commitlog.dirty() > 0 {
            o.set_timer(RocketTimer::GroupCommit, exact(GROUP_COMMIT));
        }
        let bound = s.confirm_offset();
        let touched = s.cq.dispatch(&s.disk.commitlog, bound);
        if touched.is_empty() {
            return;
        }
        let ready: Vec<((Id, u64), (QueueId, u64))> = s
            .held
            .iter()
            .filter(|(_, (q, off))| touched.contains(q) && *off < s.cq.max_offset(*q))
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((src, request), (queue, offset)) in ready {
            s.held.remove(&(src, request));
            o.cancel_timer(RocketTimer::Hold(src, request));
            self.answer(s, src, request, queue, offset, o);
        }
    }

    fn pull(
        &self,
        s: &mut BrokerState,
        src: Id,
        request: u64,
        queue: QueueId,
        offset: u64,
        o: &mut RocketOut,
    ) {
        let max = s.cq.max_offset(queue);
        if offset == max {
            // Long polling: hold the pull until a message arrives or the hold ends.
            s.held.insert((src, request), (queue, offset));
            o.set_timer(RocketTimer::Hold(src, request), exact(HOLD));
        } else {
            self.answer(s, src, request, queue, offset, o);
        }
    }

    fn answer(
        &self,
        s: &BrokerState,
        src: Id,
        request: u64,
        queue: QueueId,
        offset: u64,
        o: &mut RocketOut,
    ) {
        let max = s.cq.max_offset(queue);
        let status = if offset < max {
            PullStatus::Found(s.cq.read(&s.disk.commitlog, queue, offset, PULL_BATCH))
        } else if offset == max {
            PullStatus::NoNewMsg
        } else if s.master {
            // OFFSET_OVERFLOW_BADLY on a master: the offset is corrected to the queue's end.
            PullStatus::OffsetMoved(max)
        } else {
            // A slave does not correct offsets (`offsetCheckInSlave=false`).
            PullStatus::Retry
        };
        o.send(
            src,
            RocketMsg::PullResult {
                request,
                queue,
                status,
            },
        );
    }

    /// `resetOffsetByTime` for `queue`, by the version's path. 5.3
    /// (`AdminBrokerProcessor.resetOffsetInner`, `useServerSideResetOffset=true`): the offset of
    /// the first message stored at or after `timestamp` (`getOffsetInQueueByTime`, LOWER) is
    /// assigned in `resetOffsetTable` for the queue's next pull. 4.9 (`Broker2Client.resetOffset`,
    /// `isForce=true` as `mqadmin resetOffsetByTime` sends it): every queue of the topic on this
    /// broker is searched by time, and the offset table goes one-way to each consumer of the
    /// group, which resets itself.
    fn reset_offset(&self, s: &mut BrokerState, queue: QueueId, timestamp: u64, o: &mut RocketOut) {
        let log = &s.disk.commitlog;
        match self.settings.version {
            Version::V5_3 => {
                let offset = s.cq.offset_by_time(log, queue, timestamp, Boundary::Lower);
                s.reset.insert(queue, offset);
            }
            Version::V4_9 => {
                let offsets: Vec<(QueueId, u64)> = (0..self.settings.queues)
                    .map(|q| (q, s.cq.offset_by_time_4_9(log, q, timestamp)))
                    .collect();
                for c in s.consumers.keys() {
                    o.send(
                        *c,
                        RocketMsg::ResetConsumerClientOffset {
                            offsets: offsets.clone(),
                        },
                    );
                }
            }
        }
    }

    fn flush(&self, s: &mut BrokerState, o: &mut RocketOut) {
        s.disk.commitlog.flush();
        self.save(s, o);
        self.appended(s, o);
        self.settle(s, o);
    }

    pub fn on_timeout(&self, s: &mut BrokerState, timer: &RocketTimer, o: &mut RocketOut) {
        let st = &self.settings;
        if st.dledger && self.dl_on_timeout(s, timer, o) {
            return;
        }
        if st.controller && self.ctl_on_timeout(s, timer, o) {
            return;
        }
        match timer {
            RocketTimer::Register => {
                self.register(s, o);
                o.set_timer(RocketTimer::Register, retry(REGISTER_PERIOD));
            }
            // FlushRealTimeService: every flushIntervalCommitLog, if enough pages are dirty.
            RocketTimer::Flush => {
                if s.disk.commitlog.dirty() >= st.flush_least_pages.max(1) {
                    self.flush(s, o);
                }
                o.set_timer(RocketTimer::Flush, exact(st.flush_interval));
            }
            // ... and every flushCommitLogThoroughInterval whatever is dirty.
            RocketTimer::FlushThorough => {
                if s.disk.commitlog.dirty() > 0 {
                    self.flush(s, o);
                }
                o.set_timer(
                    RocketTimer::FlushThorough,
                    exact(st.flush_thorough_interval),
                );
            }
            RocketTimer::Commit => {
                self.commit_buffer(s, o);
                o.set_timer(RocketTimer::Commit, exact(st.commit_interval));
            }
            // GroupCommitService.
            RocketTimer::GroupCommit if s.disk.commitlog.dirty() > 0 => self.flush(s, o),
            RocketTimer::FlushTimeout(end) => {
                if let Some(p) = s.puts.get_mut(end) {
                    p.flush = false;
                    p.status = SendStatus::FlushDiskTimeout;
                    self.settle(s, o);
                }
            }
            RocketTimer::SlaveTimeout(end) => {
                if let Some(p) = s.puts.get_mut(end) {
                    p.replicas = false;
                    p.status = SendStatus::FlushSlaveTimeout;
                    self.settle(s, o);
                }
            }
            RocketTimer::HaHeartbeat => self.report(s, o),
            RocketTimer::HaHousekeeping(slave) => {
                s.slaves.remove(slave);
                s.transfers.remove(slave);
            }
            RocketTimer::Hold(src, request) => {
                if let Some((queue, offset)) = s.held.remove(&(*src, *request)) {
                    self.answer(s, *src, *request, queue, offset, o);
                }
            }
            RocketTimer::ConsumerExpired(c) if s.consumers.remove(c).is_some() => {
                self.notify(s, o)
            }
            // The special services run on a master only (a DLedger broker that became a slave
            // stopped them).
            RocketTimer::Scheduled(at) if s.master => self.deliver_scheduled(s, *at, o),
            RocketTimer::TransactionCheck if s.master => {
                self.check_transactions(s, o);
                o.set_timer(RocketTimer::TransactionCheck, exact(st.check_interval));
            }
            RocketTimer::TransactionTimeOut(at) => {
                s.immune.remove(at);
            }
            RocketTimer::OpBatch if s.master => {
                if !s.pending_ops.is_empty() {
                    for half in std::mem::take(&mut s.pending_ops) {
                        self.write_op(s, half);
                    }
                    self.save(s, o);
                    self.appended(s, o);
                    self.transfer(s, o);
                }
                o.set_timer(RocketTimer::OpBatch, exact(OP_BATCH_INTERVAL));
            }
            RocketTimer::ProducerExpired(p) => {
                s.producers.remove(p);
            }
            RocketTimer::LockExpired(q) => {
                s.locks.remove(q);
            }
            RocketTimer::Tick => {
                if let Some(clock) = s.clock.as_mut() {
                    *clock += TICK.as_millis() as u64;
                }
                o.set_timer(RocketTimer::Tick, exact(TICK));
            }
            RocketTimer::NtpPoll => {
                o.send(st.namesrv(), RocketMsg::NtpQuery);
                o.set_timer(RocketTimer::NtpPoll, exact(NTP_POLL));
            }
            RocketTimer::OffsetFlush => {
                if s.disk.offsets != s.offsets {
                    s.disk.offsets = s.offsets.clone();
                    self.save(s, o);
                }
                o.set_timer(RocketTimer::OffsetFlush, exact(OFFSET_FLUSH));
            }
            _ => {}
        }
    }
}

/// The broker's part of a node's disk.
pub fn store(storage: &Option<RocketDisk>) -> Option<StoreDisk> {
    storage
        .as_ref()
        .and_then(Disk::server)
        .and_then(RocketFiles::store)
        .cloned()
}
