//! The NameServer (`RouteInfoManager`): which brokers are live, and so the route clients get.

use super::broker::TICK;
use super::protocol::{BrokerData, Route, RocketMsg};
use super::{exact, RocketOut, RocketTimer, Settings};
use stateright::actor::Id;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct NameServer {
    pub settings: Settings,
}

/// `brokerLiveTable`: each live broker's group and brokerId.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NameServerState {
    pub live: BTreeMap<Id, (u32, u32)>,
    /// When consumers rewind by time: the clock of the NameServer's host, which also serves
    /// the brokers' hosts as their NTP server. Its node is infrastructure, so no clock fault
    /// touches it: it is the true time, in ticks.
    pub clock: Option<u64>,
}

impl NameServerState {
    /// `pickupTopicRouteData`: every group with its live master and slaves.
    pub fn route(&self, groups: u32) -> Route {
        let mut route: Route = vec![BrokerData::default(); groups as usize];
        for (id, (group, broker_id)) in &self.live {
            let data = &mut route[*group as usize];
            if *broker_id == 0 {
                data.master = Some(*id);
            } else {
                data.slaves.push(*id);
            }
        }
        route
    }
}

impl NameServer {
    pub fn start(&self, o: &mut RocketOut) -> NameServerState {
        let clock = self.settings.workload.rewind.map(|_| 0);
        if clock.is_some() {
            o.set_timer(RocketTimer::Tick, exact(TICK));
        }
        NameServerState {
            clock,
            ..NameServerState::default()
        }
    }

    pub fn on_msg(&self, s: &mut NameServerState, src: Id, msg: RocketMsg, o: &mut RocketOut) {
        match msg {
            RocketMsg::RegisterBroker { group, broker_id } => {
                // `brokerAddrs` maps a brokerId to one address: a new registrant under a
                // brokerId takes it over (a DLedger leader registering as brokerId 0 replaces
                // the old master's entry).
                s.live
                    .retain(|id, slot| *id == src || *slot != (group, broker_id));
                s.live.insert(src, (group, broker_id));
                // `scanNotActiveBroker`: a broker silent for 120 s is removed.
                o.set_timer(RocketTimer::BrokerExpired(src), exact(BROKER_CHANNEL_EXPIRED));
            }
            RocketMsg::GetRouteInfo => {
                o.send(src, RocketMsg::RouteInfo(s.route(self.settings.groups)));
            }
            RocketMsg::NtpQuery => {
                if let Some(ms) = s.clock {
                    o.send(src, RocketMsg::NtpTime { ms });
                }
            }
            // `onChannelDestroy`: a closed broker connection removes the broker at once.
            RocketMsg::Disconnected => {
                s.live.remove(&src);
            }
            _ => {}
        }
    }

    pub fn on_timeout(&self, s: &mut NameServerState, timer: &RocketTimer, o: &mut RocketOut) {
        match timer {
            RocketTimer::BrokerExpired(id) => {
                s.live.remove(id);
            }
            RocketTimer::Tick => {
                if let Some(clock) = s.clock.as_mut() {
                    *clock += TICK.as_millis() as u64;
                }
                o.set_timer(RocketTimer::Tick, exact(TICK));
            }
            _ => {}
        }
    }
}

/// `BROKER_CHANNEL_EXPIRED_TIME`.
const BROKER_CHANNEL_EXPIRED: std::time::Duration = std::time::Duration::from_secs(120);
