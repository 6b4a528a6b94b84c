//! The controller of controller mode (`enableControllerMode`, RocketMQ 5.x): `ControllerManager`,
//! `ReplicasInfoManager` (each group's `SyncStateInfo` and `BrokerReplicaInfo`),
//! `DefaultElectPolicy` and `DefaultBrokerHeartbeatManager`. Deployments run three controllers
//! replicating this state machine with DLedger; the model runs one, as reliable infrastructure
//! (the NameServer's standing), so its state machine is what is modelled, not its replication.

use super::protocol::{ReplicaInfo, RocketMsg};
use super::{exact, RocketOut, RocketTimer, Settings};
use stateright::actor::Id;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `controllerHeartBeatTimeoutMills`, which each broker sends with its heartbeat.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// `electMasterMaxRetryCount`.
const ELECT_MASTER_MAX_RETRY: u32 = 3;

#[derive(Clone, Debug)]
pub struct Controller {
    pub settings: Settings,
}

/// A group's `SyncStateInfo` and its registered replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyncStateInfo {
    /// `masterBrokerId`, a brokerControllerId.
    pub master: Option<u32>,
    pub master_epoch: u32,
    pub sync_state_set: BTreeSet<u32>,
    pub sync_state_set_epoch: u32,
    /// `BrokerReplicaInfo.brokerIdTable`: every replica that registered.
    pub replicas: BTreeSet<u32>,
    /// How the current master was elected: `false` when `enableElectUncleanMaster` picked it
    /// outside the SyncStateSet (the first election of a group, which takes the asking
    /// broker, counts as clean).
    pub clean: bool,
}

/// A live broker's `BrokerLiveInfo`: its epoch and CommitLog end, as its heartbeats said.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LiveInfo {
    pub epoch: u32,
    pub max_offset: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ControllerState {
    /// `ReplicasInfoManager`, by group.
    pub groups: BTreeMap<u32, SyncStateInfo>,
    /// `brokerLiveTable`, by broker node.
    pub live: BTreeMap<Id, LiveInfo>,
}

impl Controller {
    /// The broker node of a group's brokerControllerId.
    fn node(&self, group: u32, broker: u32) -> Id {
        self.settings.broker(group, broker - 1)
    }

    /// `isBrokerActive`.
    fn alive(&self, s: &ControllerState, group: u32, broker: u32) -> bool {
        s.live.contains_key(&self.node(group, broker))
    }

    fn info(&self, s: &ControllerState, group: u32, only_alive_master: bool) -> ReplicaInfo {
        let g = s.groups.get(&group).cloned().unwrap_or_default();
        ReplicaInfo {
            master: g
                .master
                .filter(|m| !only_alive_master || self.alive(s, group, *m)),
            master_epoch: g.master_epoch,
            sync_state_set: g.sync_state_set.iter().copied().collect(),
            sync_state_set_epoch: g.sync_state_set_epoch,
        }
    }

    pub fn start(&self, _o: &mut RocketOut) -> ControllerState {
        ControllerState::default()
    }

    /// `DefaultElectPolicy.tryElect` over `brokers`: the old master if still valid, else the
    /// live one with the greatest (epoch, maxOffset), the smallest brokerId among equals (the
    /// priorities are all equal).
    fn try_elect(&self, s: &ControllerState, group: u32, brokers: &BTreeSet<u32>, old: Option<u32>) -> Option<u32> {
        let valid: Vec<u32> = brokers
            .iter()
            .copied()
            .filter(|b| self.alive(s, group, *b))
            .collect();
        if let Some(old) = old.filter(|m| valid.contains(m)) {
            return Some(old);
        }
        valid.into_iter().min_by_key(|b| {
            let l = s.live[&self.node(group, *b)];
            (std::cmp::Reverse(l.epoch), std::cmp::Reverse(l.max_offset), *b)
        })
    }

    /// `ReplicasInfoManager.electMaster`, asked by `broker` (`brokerElect`) or by the
    /// controller itself (`None`: `triggerElectMaster` after the master went inactive).
    /// Returns whether a master (new or still existing) came out of it.
    fn elect(&self, s: &mut ControllerState, group: u32, broker: Option<u32>) -> bool {
        let Some(g) = s.groups.get(&group).cloned() else {
            return false;
        };
        let mut clean = true;
        // `isFirstTimeForElect`: the asking broker becomes the first master.
        let mut new = broker.filter(|_| g.master_epoch == 0);
        if new.is_none() {
            new = self.try_elect(s, group, &g.sync_state_set, g.master);
            if new.is_none() && self.settings.unclean {
                new = self.try_elect(s, group, &g.replicas, g.master);
                clean = new.is_none();
            }
        }
        let g = s.groups.get_mut(&group).expect("registered");
        match new {
            Some(m) if Some(m) == g.master => true,
            Some(m) => {
                // ElectMasterEvent: the master, its epoch, a SyncStateSet of it alone.
                g.master = Some(m);
                g.master_epoch += 1;
                g.sync_state_set = BTreeSet::from([m]);
                g.sync_state_set_epoch += 1;
                g.clean = clean;
                true
            }
            None => {
                // A failed election the controller triggered still records that the old
                // master is gone (ElectMasterEvent(false)); one a broker asked for does not.
                if broker.is_none() {
                    g.master = None;
                    g.master_epoch += 1;
                }
                false
            }
        }
    }

    /// `onBrokerInactive`: if it was its group's master, `triggerElectMaster` (up to
    /// `electMasterMaxRetryCount` tries) and, once elected, `notifyBrokerRoleChanged` to every
    /// live broker of the group.
    fn inactive(&self, s: &mut ControllerState, node: Id, o: &mut RocketOut) {
        if s.live.remove(&node).is_none() {
            return;
        }
        let group = self.settings.group_of(node);
        let broker = self.settings.broker_id_of(node) + 1;
        if s.groups.get(&group).and_then(|g| g.master) != Some(broker) {
            return;
        }
        for _ in 0..ELECT_MASTER_MAX_RETRY {
            if self.elect(s, group, None) {
                let info = self.info(s, group, false);
                for b in 0..=self.settings.slaves {
                    let n = self.settings.broker(group, b);
                    if s.live.contains_key(&n) {
                        o.send(n, RocketMsg::CtlNotifyRoleChanged(info.clone()));
                    }
                }
                return;
            }
        }
    }

    pub fn on_msg(&self, s: &mut ControllerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        let group = self.settings.group_of(src);
        let broker = self.settings.broker_id_of(src) + 1;
        match msg {
            RocketMsg::CtlRegister => {
                // `applyBrokerId`, then `registerBroker`: the master only if alive.
                s.groups.entry(group).or_default().replicas.insert(broker);
                o.send(src, RocketMsg::CtlRegistered(self.info(s, group, true)));
            }
            RocketMsg::CtlHeartbeat { epoch, max_offset } => {
                // `onBrokerHeartbeat`: the epoch and offset only move forward.
                let info = s.live.entry(src).or_insert(LiveInfo { epoch, max_offset });
                if (epoch, max_offset) > (info.epoch, info.max_offset) {
                    *info = LiveInfo { epoch, max_offset };
                }
                o.set_timer(RocketTimer::CtlBrokerExpired(src), exact(HEARTBEAT_TIMEOUT));
            }
            RocketMsg::CtlElect => {
                let info = if s.groups.contains_key(&group) && self.elect(s, group, Some(broker)) {
                    self.info(s, group, false)
                } else {
                    ReplicaInfo {
                        master: None,
                        ..self.info(s, group, false)
                    }
                };
                o.send(src, RocketMsg::CtlElected(info));
            }
            RocketMsg::CtlGetReplicaInfo => {
                o.send(src, RocketMsg::CtlReplicaInfo(self.info(s, group, false)));
            }
            RocketMsg::CtlAlterSyncStateSet {
                master_epoch,
                sync_state_set,
                sync_state_set_epoch,
            } => {
                let result = self.alter(s, group, broker, master_epoch, sync_state_set, sync_state_set_epoch);
                o.send(src, RocketMsg::CtlAlterSyncStateSetResult(result));
            }
            // `onBrokerChannelClose`.
            RocketMsg::Disconnected => self.inactive(s, src, o),
            _ => {}
        }
    }

    /// `ReplicasInfoManager.alterSyncStateSet`: only the current master, in its epoch, with
    /// the current set's epoch, may change the set, to live registered replicas that include
    /// itself.
    fn alter(
        &self,
        s: &mut ControllerState,
        group: u32,
        broker: u32,
        master_epoch: u32,
        new: Vec<u32>,
        epoch: u32,
    ) -> Option<(Vec<u32>, u32)> {
        let g = s.groups.get(&group)?;
        let new: BTreeSet<u32> = new.into_iter().collect();
        let valid = new != g.sync_state_set
            && g.master == Some(broker)
            && g.master_epoch == master_epoch
            && g.sync_state_set_epoch == epoch
            && new.iter().all(|b| g.replicas.contains(b) && self.alive(s, group, *b))
            && new.contains(&broker);
        if !valid {
            return None;
        }
        let g = s.groups.get_mut(&group).expect("checked");
        g.sync_state_set = new;
        g.sync_state_set_epoch += 1;
        Some((g.sync_state_set.iter().copied().collect(), g.sync_state_set_epoch))
    }

    pub fn on_timeout(&self, s: &mut ControllerState, timer: &RocketTimer, o: &mut RocketOut) {
        // `scanNotActiveBroker`: a broker whose heartbeats stopped for its timeout.
        if let RocketTimer::CtlBrokerExpired(node) = timer {
            self.inactive(s, *node, o);
        }
    }
}
