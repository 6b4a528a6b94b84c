//! A broker in controller mode (`enableControllerMode=true`, RocketMQ 5.x): its
//! `ReplicasManager` (registration, heartbeats, elections and role changes through the
//! controller), and its `AutoSwitchHAService`: the master's `AutoSwitchHAConnection`s with the
//! SyncStateSet they shrink and expand, and the slave's `AutoSwitchHAClient`, which truncates
//! its CommitLog to the epoch boundary it shares with the master before it takes transfers.
//! See the module doc of `rocketmq` for the mechanism.

use super::broker::{Broker, BrokerState, STARTUP};
use super::protocol::{Message, ReplicaInfo, RocketMsg};
use super::store::consistent_point;
use super::{exact, RocketOut, RocketTimer};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `brokerHeartbeatInterval`.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// `RETRY_INTERVAL_SECOND` of `ReplicasManager.start`.
const RETRY_START: Duration = Duration::from_secs(5);
/// `syncBrokerMetadataPeriod`, and the 3 s before its first run.
const SYNC_METADATA_PERIOD: Duration = Duration::from_secs(5);
const SYNC_METADATA_DELAY: Duration = Duration::from_secs(3);
/// `checkSyncStateSetPeriod`, and the 3 s before its first run.
const CHECK_SYNC_STATE_SET_PERIOD: Duration = Duration::from_secs(5);
const CHECK_SYNC_STATE_SET_DELAY: Duration = Duration::from_secs(3);
/// `haSendHeartbeatInterval`: the slave reports its offset at least this often.
const HA_HEARTBEAT: Duration = Duration::from_secs(5);
/// `haHousekeepingInterval`: a connection silent this long is closed, on either side.
const HA_HOUSEKEEPING: Duration = Duration::from_secs(20);
/// `closeMasterAndWait`: the HA client waits this long before it connects again.
const RECONNECT: Duration = Duration::from_secs(5);
/// Entries per transfer (the model's stand-in for `haTransferBatchSize`).
const HA_BATCH: u64 = 32;

/// The master's view of one slave (`AutoSwitchHAConnection`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HaConnection {
    /// The slave's brokerControllerId, from its handshake.
    pub slave: u32,
    /// `slaveAckOffset`: what the slave last reported (`None` before its first report).
    pub ack: Option<u64>,
    /// `nextTransferFromWhere`: where the stream goes on (from the slave's first report).
    pub next: Option<u64>,
    /// `lastMasterMaxOffset`: the master's end at the last transfer.
    pub sent_end: u64,
    /// `haMaxTimeSlaveNotCatchup` passed since the slave last caught up.
    pub lagging: bool,
}

/// `ReplicasManager` and `AutoSwitchHAService` state, in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Replicas {
    /// `REGISTER_TO_CONTROLLER_DONE`.
    pub registered: bool,
    /// `RUNNING`: a master is known and the metadata sync runs.
    pub running: bool,
    /// `masterBrokerId` (a brokerControllerId).
    pub master: Option<u32>,
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<u32>,
    pub sync_state_set_epoch: u32,
    /// `isSynchronizingSyncStateSet` with `remoteSyncStateSet`: a change reported to the
    /// controller and not yet answered.
    pub remote: Option<BTreeSet<u32>>,
    /// `confirmOffset`.
    pub confirm: u64,
    /// `allAckInSyncStateSet`, which decides the master's dispatch bound.
    pub all_ack: bool,
    /// Master: the HA connections by slave node.
    pub conns: BTreeMap<Id, HaConnection>,
    /// Slave: the HA client is in TRANSFER (handshake done).
    pub transfer: bool,
    /// Slave: `currentReceivedEpoch`.
    pub received_epoch: Option<u32>,
}

impl Replicas {
    /// The master's dispatch bound (`CommitLog.getConfirmOffset` in controller mode): the
    /// CommitLog's end, unless `allAckInSyncStateSet` with other members in the set; a
    /// slave's: the master's confirm offset as its transfers carry it.
    pub fn confirm_offset(&self, master: bool, end: u64) -> u64 {
        if master && (self.sync_state_set.len() <= 1 || !self.all_ack) {
            end
        } else {
            self.confirm.min(end)
        }
    }

    /// `getSyncStateSet`: the union of the local and the reported set while a change is
    /// under way.
    pub fn sync_state_set(&self) -> BTreeSet<u32> {
        let mut set = self.sync_state_set.clone();
        if let Some(remote) = &self.remote {
            set.extend(remote.iter().copied());
        }
        set
    }

    /// `inSyncReplicasNums`.
    pub fn in_sync_replicas(&self) -> usize {
        match &self.remote {
            Some(remote) => self.sync_state_set.len().max(remote.len()),
            None => self.sync_state_set.len(),
        }
    }
}

impl Broker {
    /// This broker's brokerControllerId: the controller hands them out in registration order
    /// from 1 (`getNextBrokerId`); the model's brokerId + 1.
    pub(super) fn ctl_id(&self) -> u32 {
        self.broker_id + 1
    }

    fn ctl<'a>(&self, s: &'a mut BrokerState) -> &'a mut Replicas {
        s.ctl.as_mut().expect("a broker in controller mode")
    }

    fn node_of(&self, broker: u32) -> Id {
        self.settings.broker(self.group, broker - 1)
    }

    /// `ReplicasManager.start`, once the process is up (the controller started first):
    /// register with the controller; the heartbeats start.
    pub(super) fn start_controller_mode(&self, s: &mut BrokerState, o: &mut RocketOut) {
        s.ctl = Some(Replicas {
            all_ack: self.settings.all_ack,
            ..Replicas::default()
        });
        o.set_timer(RocketTimer::CtlRetryStart, exact(STARTUP));
        o.set_timer(RocketTimer::CtlHeartbeat, exact(STARTUP + HEARTBEAT_INTERVAL));
    }

    fn heartbeat_controller(&self, s: &BrokerState, o: &mut RocketOut) {
        o.send(
            self.settings.controller(),
            RocketMsg::CtlHeartbeat {
                epoch: s.disk.last_epoch().unwrap_or(0),
                max_offset: s.disk.commitlog.end(),
            },
        );
    }

    /// The rest of `startBasicService` once registered: a heartbeat, then `brokerElect` unless
    /// a master is known.
    fn start_basic_service(&self, s: &mut BrokerState, o: &mut RocketOut) {
        self.heartbeat_controller(s, o);
        if self.ctl(s).master.is_some() {
            self.run(s, o);
        } else {
            o.send(self.settings.controller(), RocketMsg::CtlElect);
        }
    }

    fn run(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let r = self.ctl(s);
        if !r.running {
            r.running = true;
            o.set_timer(RocketTimer::CtlSyncMetadata, exact(SYNC_METADATA_DELAY));
        }
    }

    /// `changeBrokerRole`: a newer epoch makes this broker its master or a slave of it.
    fn change_role(&self, s: &mut BrokerState, info: &ReplicaInfo, o: &mut RocketOut) {
        let Some(master) = info.master else {
            return;
        };
        if info.master_epoch <= self.ctl(s).master_epoch {
            return;
        }
        if master == self.ctl_id() {
            self.become_master(s, info, o);
        } else {
            self.become_slave(s, master, info.master_epoch, o);
        }
    }

    /// `ReplicasManager.changeToMaster` → `AutoSwitchHAService.changeToMaster`: the HA client
    /// and every connection go, the epoch is appended to the EpochFile at the CommitLog's end,
    /// and the broker becomes SYNC_MASTER, brokerId 0, with the special services and the
    /// SyncStateSet check.
    fn become_master(&self, s: &mut BrokerState, info: &ReplicaInfo, o: &mut RocketOut) {
        let epoch = info.master_epoch;
        let me = self.ctl_id();
        let was_master = s.master && self.ctl(s).master == Some(me);
        self.ctl(s).master_epoch = epoch;
        self.change_sync_state_set(s, &info.sync_state_set, info.sync_state_set_epoch);
        if s.disk.last_epoch().is_none_or(|last| epoch >= last) {
            // `truncateSuffixByEpoch`, then `appendEntry` (refused at an unchanged offset).
            s.disk.epochs.retain(|(e, _)| *e < epoch);
            let end = s.disk.commitlog.end();
            s.disk.append_epoch(epoch, end);
            self.save(s, o);
        }
        if !was_master {
            let r = self.ctl(s);
            r.conns.clear();
            r.transfer = false;
            r.master = Some(me);
            o.cancel_timer(RocketTimer::AsHousekeeping);
            o.cancel_timer(RocketTimer::AsReconnect);
            o.cancel_timer(RocketTimer::HaHeartbeat);
            s.master = true;
            self.ctl(s).confirm = self.compute_confirm(s);
            self.start_special_services(s, o);
            o.set_timer(
                RocketTimer::CtlCheckSyncStateSet,
                exact(CHECK_SYNC_STATE_SET_DELAY),
            );
        }
        self.check_sync_state_set(s, o);
        self.register(s, o);
        self.run(s, o);
    }

    /// `ReplicasManager.changeToSlave` → `AutoSwitchHAService.changeToSlave`: the buffer is
    /// committed (`waitingForAllCommit`), the broker becomes SLAVE with its brokerControllerId,
    /// and the HA client connects to the new master.
    fn become_slave(&self, s: &mut BrokerState, master: u32, epoch: u32, o: &mut RocketOut) {
        let r = self.ctl(s);
        r.master_epoch = epoch;
        if r.master == Some(master) {
            // `changeToSlaveWhenMasterNotChange`.
            self.register(s, o);
            self.run(s, o);
            return;
        }
        self.commit_buffer(s, o);
        s.master = false;
        o.cancel_timer(RocketTimer::CtlCheckSyncStateSet);
        let r = self.ctl(s);
        r.master = Some(master);
        r.conns.clear();
        r.remote = None;
        self.connect_master(s, o);
        self.register(s, o);
        self.run(s, o);
    }

    /// The HA client (re)connects: a fresh handshake with the current master.
    fn connect_master(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let r = self.ctl(s);
        r.transfer = false;
        r.received_epoch = None;
        let Some(master) = r.master.filter(|m| *m != self.ctl_id()) else {
            return;
        };
        o.send(
            self.node_of(master),
            RocketMsg::AsHandshake {
                slave: self.ctl_id(),
            },
        );
        o.set_timer(RocketTimer::AsHousekeeping, exact(HA_HOUSEKEEPING));
    }

    /// `changeSyncStateSet`: a newer set replaces the local one and ends the change under way.
    fn change_sync_state_set(&self, s: &mut BrokerState, set: &[u32], epoch: u32) {
        let r = self.ctl(s);
        if epoch > r.sync_state_set_epoch {
            r.sync_state_set_epoch = epoch;
            r.sync_state_set = set.iter().copied().collect();
            r.remote = None;
            let confirm = self.compute_confirm(s);
            self.ctl(s).confirm = confirm;
        }
    }

    /// `computeConfirmOffset`: the least offset every member of the SyncStateSet acknowledged
    /// (the master's end if none did); unchanged while a member has no connection.
    fn compute_confirm(&self, s: &BrokerState) -> u64 {
        let r = s.ctl.as_ref().expect("a broker in controller mode");
        let set = r.sync_state_set();
        let me = self.ctl_id();
        let connected: BTreeSet<u32> = r.conns.values().map(|c| c.slave).collect();
        if set.iter().any(|b| *b != me && !connected.contains(b)) {
            return r.confirm;
        }
        r.conns
            .values()
            .filter(|c| set.contains(&c.slave))
            .filter_map(|c| c.ack.filter(|a| *a > 0))
            .fold(s.disk.commitlog.end(), u64::min)
    }

    /// Whether a put's replication is done (`GroupTransferService.doWaitTransfer`): with
    /// `allAckInSyncStateSet` every member of the SyncStateSet has it; otherwise
    /// `inSyncReplicas` connections (the master counting as one), in the set or not.
    pub(super) fn ctl_replicated(&self, s: &BrokerState, end: u64) -> bool {
        let r = s.ctl.as_ref().expect("a broker in controller mode");
        let acked = |c: &&HaConnection| c.ack.is_some_and(|a| a >= end);
        if self.settings.all_ack {
            let set = r.sync_state_set();
            set.len() <= 1
                || 1 + r
                    .conns
                    .values()
                    .filter(|c| set.contains(&c.slave))
                    .filter(acked)
                    .count()
                    >= set.len()
        } else {
            1 + r.conns.values().filter(acked).count() >= self.settings.in_sync_replicas as usize
        }
    }

    /// A SYNC_MASTER put in controller mode: refused with fewer in-sync replicas than
    /// `minInSyncReplicas` (`CommitLog.asyncPutMessage`), and waiting for its slaves when
    /// `allAckInSyncStateSet` or `inSyncReplicas` asks for them.
    pub(super) fn ctl_put_checks(&self, s: &BrokerState) -> Result<bool, ()> {
        let r = s.ctl.as_ref().expect("a broker in controller mode");
        if r.in_sync_replicas() < self.settings.min_in_sync_replicas as usize {
            return Err(());
        }
        Ok(if self.settings.all_ack {
            r.sync_state_set().len() > 1
        } else {
            self.settings.in_sync_replicas > 1
        })
    }

    /// Reports a new SyncStateSet to the controller (`doReportSyncStateSetChanged`), marking
    /// it as under way.
    fn report_sync_state_set(&self, s: &mut BrokerState, set: BTreeSet<u32>, o: &mut RocketOut) {
        let r = self.ctl(s);
        r.remote = Some(set.clone());
        o.send(
            self.settings.controller(),
            RocketMsg::CtlAlterSyncStateSet {
                master_epoch: r.master_epoch,
                sync_state_set: set.into_iter().collect(),
                sync_state_set_epoch: r.sync_state_set_epoch,
            },
        );
    }

    /// `checkSyncStateSetAndDoReport` (`maybeShrinkSyncStateSet`): slaves not caught up for
    /// `haMaxTimeSlaveNotCatchup`, and members without a connection, leave the set.
    fn check_sync_state_set(&self, s: &mut BrokerState, o: &mut RocketOut) {
        let me = self.ctl_id();
        let r = self.ctl(s);
        let lagging: BTreeSet<u32> = r.conns.values().filter(|c| c.lagging).map(|c| c.slave).collect();
        let connected: BTreeSet<u32> = r.conns.values().map(|c| c.slave).collect();
        let mut new: BTreeSet<u32> = r
            .sync_state_set
            .iter()
            .copied()
            .filter(|b| *b == me || (connected.contains(b) && !lagging.contains(b)))
            .collect();
        new.insert(me);
        if new != r.sync_state_set {
            self.report_sync_state_set(s, new, o);
        }
    }

    /// The master: what a slave's connection sends next (`WriteSocketService`): the entries
    /// from `nextTransferFromWhere`, one epoch per transfer; a heartbeat with the confirm
    /// offset when the slave has everything.
    fn ha_transfer(&self, s: &mut BrokerState, slave: Id, heartbeat: bool, o: &mut RocketOut) {
        let end = s.disk.commitlog.end();
        let confirm = s.confirm_offset();
        let epochs = s.disk.epochs.clone();
        let Some(c) = self.ctl(s).conns.get_mut(&slave) else {
            return;
        };
        let Some(mut next) = c.next else {
            return;
        };
        let epoch_at = |at: u64| {
            let i = epochs.iter().rposition(|(_, start)| *start <= at).unwrap_or(0);
            let (epoch, start) = epochs.get(i).copied().unwrap_or((0, 0));
            let until = epochs.get(i + 1).map_or(u64::MAX, |(_, s)| *s);
            (epoch, start, until)
        };
        let caught_up = next >= end;
        while next < end {
            let (epoch, epoch_start, until) = epoch_at(next);
            let to = end.min(next + HA_BATCH).min(until);
            let entries: Vec<Message> = (next..to)
                .filter_map(|i| s.disk.commitlog.get(i).copied())
                .collect();
            o.send(
                slave,
                RocketMsg::AsTransfer {
                    from: next,
                    epoch,
                    epoch_start,
                    confirm,
                    entries,
                },
            );
            next = to;
        }
        if heartbeat && caught_up {
            let (epoch, epoch_start, _) = epoch_at(next);
            o.send(
                slave,
                RocketMsg::AsTransfer {
                    from: next,
                    epoch,
                    epoch_start,
                    confirm,
                    entries: Vec::new(),
                },
            );
        }
        let c = self.ctl(s).conns.get_mut(&slave).expect("checked");
        c.next = Some(next);
        if !caught_up {
            c.sent_end = end;
        } else {
            // Nothing to send: the slave has caught up now.
            c.lagging = false;
            let id = c.slave;
            o.set_timer(
                RocketTimer::NotCatchUp(id),
                exact(self.settings.ha_max_time_not_catchup),
            );
        }
    }

    /// The master after its CommitLog grew: every connection streams on.
    pub(super) fn ctl_transfer_all(&self, s: &mut BrokerState, o: &mut RocketOut) {
        if !s.master {
            return;
        }
        let slaves: Vec<Id> = self.ctl(s).conns.keys().copied().collect();
        for slave in slaves {
            self.ha_transfer(s, slave, false, o);
        }
    }

    /// The master: a slave's connection closed or went silent (`removeConnection`): it leaves
    /// the SyncStateSet at once.
    fn remove_connection(&self, s: &mut BrokerState, slave: Id, o: &mut RocketOut) {
        let Some(c) = self.ctl(s).conns.remove(&slave) else {
            return;
        };
        let master = s.master;
        let r = self.ctl(s);
        if master && r.sync_state_set.contains(&c.slave) {
            let mut set = r.sync_state_set.clone();
            set.remove(&c.slave);
            self.report_sync_state_set(s, set, o);
        }
    }

    /// The master: a slave's report (`ReadSocketService`): its ack, where the stream starts,
    /// whether it caught up (`maybeExpandInSyncStateSet`: a slave that has the confirm offset
    /// and reached the current epoch joins the set), and the confirm offset.
    fn on_report(&self, s: &mut BrokerState, src: Id, offset: u64, o: &mut RocketOut) {
        let confirm = s.confirm_offset();
        let epoch_start = s.disk.epochs.last().map_or(0, |(_, start)| *start);
        let me = self.ctl_id();
        let Some(c) = self.ctl(s).conns.get_mut(&src) else {
            return;
        };
        c.ack = Some(offset);
        if c.next.is_none() {
            c.next = Some(offset);
        }
        o.set_timer(RocketTimer::HaHousekeeping(src), exact(HA_HOUSEKEEPING));
        let slave = c.slave;
        if offset >= c.sent_end {
            c.lagging = false;
            o.set_timer(
                RocketTimer::NotCatchUp(slave),
                exact(self.settings.ha_max_time_not_catchup),
            );
            let r = self.ctl(s);
            if !r.sync_state_set.contains(&slave) && offset >= confirm && offset >= epoch_start {
                let mut set = r.sync_state_set.clone();
                set.insert(slave);
                set.insert(me);
                self.report_sync_state_set(s, set, o);
            }
        }
        if self.ctl(s).sync_state_set.contains(&slave) {
            // `updateConfirmOffsetWhenSlaveAck`.
            self.ctl(s).confirm = self.compute_confirm(s);
        }
        self.ha_transfer(s, src, true, o);
        self.settle(s, o);
        self.appended(s, o);
    }

    /// The slave: the master's handshake (`AutoSwitchHAClient.doTruncate`): the CommitLog is
    /// truncated to the consistent point of the two EpochFiles; the first report follows with
    /// the heartbeat interval.
    fn on_handshake_result(&self, s: &mut BrokerState, epochs: &[(u32, u64)], end: u64, o: &mut RocketOut) {
        if !s.disk.epochs.is_empty() {
            let local_end = s.disk.commitlog.end();
            let Some(point) = consistent_point(&s.disk.epochs, local_end, epochs, end) else {
                // No consistent point: the handshake fails, and the client tries again.
                o.set_timer(RocketTimer::AsReconnect, exact(RECONNECT));
                return;
            };
            let mut cq = std::mem::take(&mut s.cq);
            s.disk.truncate_to(point, &mut cq);
            s.cq = cq;
            self.save(s, o);
        }
        self.ctl(s).transfer = true;
        o.set_timer(RocketTimer::AsHousekeeping, exact(HA_HOUSEKEEPING));
        o.set_timer(RocketTimer::HaHeartbeat, exact(HA_HEARTBEAT));
    }

    /// The slave: a transfer that continues its CommitLog; its epoch goes to the EpochFile
    /// when it changes, and the confirm offset bounds the dispatch.
    #[allow(clippy::too_many_arguments)]
    fn on_as_transfer(
        &self,
        s: &mut BrokerState,
        from: u64,
        epoch: u32,
        epoch_start: u64,
        confirm: u64,
        entries: Vec<Message>,
        o: &mut RocketOut,
    ) {
        if from != s.disk.commitlog.end() {
            // "master pushed offset not equal the max phy offset in slave": the connection
            // closes, and the client connects again.
            o.set_timer(RocketTimer::AsReconnect, exact(RECONNECT));
            self.ctl(s).transfer = false;
            return;
        }
        o.set_timer(RocketTimer::AsHousekeeping, exact(HA_HOUSEKEEPING));
        let grew = !entries.is_empty();
        if self.ctl(s).received_epoch != Some(epoch) {
            self.ctl(s).received_epoch = Some(epoch);
            s.disk.append_epoch(epoch, epoch_start);
        }
        for m in entries {
            s.disk.commitlog.append(m);
        }
        let end = s.disk.commitlog.end();
        self.ctl(s).confirm = confirm.min(end);
        if grew {
            self.save(s, o);
        }
        self.appended(s, o);
        if grew {
            self.report(s, o);
        }
    }

    /// Controller mode's messages; false if `msg` is not one.
    pub(super) fn ctl_on_msg(&self, s: &mut BrokerState, src: Id, msg: &RocketMsg, o: &mut RocketOut) -> bool {
        let master_node = self.ctl(s).master.map(|m| self.node_of(m));
        match msg {
            RocketMsg::CtlRegistered(info) => {
                self.ctl(s).registered = true;
                self.change_role(s, info, o);
                self.start_basic_service(s, o);
            }
            RocketMsg::CtlElected(info) => {
                if info.master.is_some() {
                    self.change_role(s, info, o);
                    self.run(s, o);
                } else if !self.ctl(s).running {
                    o.set_timer(RocketTimer::CtlRetryStart, exact(RETRY_START));
                }
            }
            RocketMsg::CtlReplicaInfo(info) => {
                let r = self.ctl(s);
                if info.master_epoch > r.master_epoch {
                    if info.master.is_some() {
                        self.change_role(s, info, o);
                    } else {
                        o.send(self.settings.controller(), RocketMsg::CtlElect);
                    }
                } else if info.master_epoch == r.master_epoch && s.master {
                    self.change_sync_state_set(s, &info.sync_state_set, info.sync_state_set_epoch);
                }
            }
            RocketMsg::CtlNotifyRoleChanged(info) => self.change_role(s, info, o),
            RocketMsg::CtlAlterSyncStateSetResult(result) => {
                if let Some((set, epoch)) = result {
                    self.change_sync_state_set(s, set, *epoch);
                    self.settle(s, o);
                    self.appended(s, o);
                }
            }
            RocketMsg::AsHandshake { slave } if s.master => {
                self.ctl(s).conns.insert(
                    src,
                    HaConnection {
                        slave: *slave,
                        ack: None,
                        next: None,
                        sent_end: 0,
                        lagging: false,
                    },
                );
                o.set_timer(RocketTimer::HaHousekeeping(src), exact(HA_HOUSEKEEPING));
                o.send(
                    src,
                    RocketMsg::AsHandshakeResult {
                        epochs: s.disk.epochs.clone(),
                        end: s.disk.commitlog.end(),
                    },
                );
            }
            RocketMsg::HaReport { offset } if s.master => self.on_report(s, src, *offset, o),
            RocketMsg::AsHandshakeResult { epochs, end }
                if !s.master && Some(src) == master_node && !self.ctl(s).transfer =>
            {
                self.on_handshake_result(s, epochs, *end, o)
            }
            RocketMsg::AsTransfer {
                from,
                epoch,
                epoch_start,
                confirm,
                entries,
            } if !s.master && Some(src) == master_node && self.ctl(s).transfer => {
                self.on_as_transfer(s, *from, *epoch, *epoch_start, *confirm, entries.clone(), o)
            }
            RocketMsg::Disconnected => {
                self.remove_connection(s, src, o);
                if !s.master && Some(src) == master_node {
                    // `closeMasterAndWait`.
                    self.ctl(s).transfer = false;
                    o.cancel_timer(RocketTimer::HaHeartbeat);
                    o.set_timer(RocketTimer::AsReconnect, exact(RECONNECT));
                }
                return false;
            }
            _ => return false,
        }
        true
    }

    /// Controller mode's timers; false if `timer` is not one.
    pub(super) fn ctl_on_timeout(&self, s: &mut BrokerState, timer: &RocketTimer, o: &mut RocketOut) -> bool {
        match timer {
            RocketTimer::CtlHeartbeat => {
                self.heartbeat_controller(s, o);
                o.set_timer(RocketTimer::CtlHeartbeat, exact(HEARTBEAT_INTERVAL));
            }
            RocketTimer::CtlRetryStart if !self.ctl(s).registered => {
                o.send(self.settings.controller(), RocketMsg::CtlRegister)
            }
            RocketTimer::CtlRetryStart if !self.ctl(s).running => self.start_basic_service(s, o),
            RocketTimer::CtlSyncMetadata => {
                o.send(self.settings.controller(), RocketMsg::CtlGetReplicaInfo);
                o.set_timer(RocketTimer::CtlSyncMetadata, exact(SYNC_METADATA_PERIOD));
            }
            RocketTimer::CtlCheckSyncStateSet if s.master => {
                self.check_sync_state_set(s, o);
                o.set_timer(
                    RocketTimer::CtlCheckSyncStateSet,
                    exact(CHECK_SYNC_STATE_SET_PERIOD),
                );
            }
            RocketTimer::NotCatchUp(slave) => {
                for c in self.ctl(s).conns.values_mut().filter(|c| c.slave == *slave) {
                    c.lagging = true;
                }
            }
            RocketTimer::HaHousekeeping(slave) => self.remove_connection(s, *slave, o),
            RocketTimer::AsReconnect | RocketTimer::AsHousekeeping if !s.master => {
                o.cancel_timer(RocketTimer::AsReconnect);
                self.connect_master(s, o);
            }
            RocketTimer::HaHeartbeat if !s.master && self.ctl(s).transfer => self.report(s, o),
            _ => return false,
        }
        true
    }

    /// Slave: the HA client's report of its CommitLog's end to its master.
    pub(super) fn ctl_report(&self, s: &BrokerState, o: &mut RocketOut) {
        let r = s.ctl.as_ref().expect("a broker in controller mode");
        let Some(master) = r.master.filter(|m| *m != self.ctl_id()) else {
            return;
        };
        o.send(
            self.node_of(master),
            RocketMsg::HaReport {
                offset: s.disk.commitlog.end(),
            },
        );
        o.set_timer(RocketTimer::HaHeartbeat, exact(HA_HEARTBEAT));
    }
}
