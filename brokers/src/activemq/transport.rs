//! A client's side of its connection: opening it, the inactivity monitor (keep-alives out, a
//! read check in), and reconnecting once it is gone.
//!
//! The read check (`AbstractInactivityMonitor.readCheck` at activemq-5.18.7) runs on both ends,
//! first `maxInactivityDurationInitalDelay` (10 s) after the connection opens, then every
//! `maxInactivityDuration` after the last run (`Timer.schedule` with a period: fixed delay). It
//! fails the transport only if no command arrived since the previous check: a periodic check,
//! not a countdown from the last command, so a silence fails a connection after one to two
//! periods, and a process paused longer than one period keeps its connections if a command came
//! in the period before the pause.

use super::protocol::AmqMsg;
use super::{AmqOut, AmqTimer, Settings, broker_id, RECONNECT};
use crate::timers::{exact, retry};
use stateright::actor::Id;
use std::time::Duration;

/// `maxInactivityDurationInitalDelay` (`OpenWireFormatFactory`, `TcpTransportServer`): the first
/// read check comes this long after the connection opens.
pub const READ_CHECK_INITIAL_DELAY: Duration = Duration::from_millis(10_000);

/// One end's read check: has a command arrived since the previous check?
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadCheck {
    command_received: bool,
}

impl ReadCheck {
    /// `commandReceived` starts true: the first check never fails.
    pub fn new() -> Self {
        ReadCheck {
            command_received: true,
        }
    }

    pub fn received(&mut self) {
        self.command_received = true;
    }

    /// Runs the check: true when the transport fails ("Channel was inactive for too long").
    pub fn inactive(&mut self) -> bool {
        !std::mem::replace(&mut self.command_received, false)
    }
}

impl Default for ReadCheck {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transport {
    /// The current connection's number: a reconnect opens the next one.
    pub conn: u32,
    /// The broker answered its `ConnectionInfo`.
    pub open: bool,
    /// The broker of the URI it connects to: under `failover:(…)`, each attempt takes the next.
    pub broker: Id,
    pub read_check: ReadCheck,
}

/// What a message from the broker means for the connection.
pub enum Event {
    /// The connection opened.
    Opened,
    /// The connection is gone: the client library fails what waits on it and reconnects.
    Lost,
    /// A command on the open connection, for the client to handle.
    Command(AmqMsg),
    /// Chatter, or something for an older connection.
    Nothing,
}

impl Transport {
    /// A client whose previous lives used connection numbers up to `last`.
    pub fn new(last: u32) -> Self {
        Transport {
            conn: last,
            open: false,
            broker: broker_id(),
            read_check: ReadCheck::new(),
        }
    }

    /// Each attempt after the first (after a failure, or an attempt unanswered for `RECONNECT`):
    /// `failover:(…)` tries the next URI (in order: `randomize` is not modelled);
    /// `tcp://` names one broker.
    fn next_broker(&mut self, settings: &Settings) {
        if settings.failover {
            let brokers = settings.brokers();
            let i = brokers.iter().position(|b| *b == self.broker).unwrap_or(0);
            self.broker = brokers[(i + 1) % brokers.len()];
        }
    }

    /// Opens the next connection; one that is not answered within `RECONNECT` is tried again.
    pub fn connect(&mut self, settings: &Settings, o: &mut AmqOut) {
        self.conn += 1;
        self.open = false;
        let connect = AmqMsg::Connect {
            conn: self.conn,
            fault_tolerant: settings.failover,
        };
        o.send(self.broker, connect);
        o.set_timer(AmqTimer::Connect, exact(RECONNECT));
        o.cancel_timer(AmqTimer::KeepAlive);
        o.cancel_timer(AmqTimer::ClientReadCheck);
    }

    /// The connection is gone: try again after `RECONNECT`.
    pub fn lost(&mut self, o: &mut AmqOut) {
        self.open = false;
        o.cancel_timer(AmqTimer::KeepAlive);
        o.cancel_timer(AmqTimer::ClientReadCheck);
        o.set_timer(AmqTimer::Connect, exact(RECONNECT));
    }

    /// Sorts a message from the broker.
    pub fn receive(&mut self, settings: &Settings, src: Id, msg: AmqMsg, o: &mut AmqOut) -> Event {
        if src != self.broker {
            return Event::Nothing;
        }
        let conn = match &msg {
            AmqMsg::Disconnected => return Event::Lost,
            AmqMsg::Connected { conn }
            | AmqMsg::Response { conn, .. }
            | AmqMsg::MessageDispatch { conn, .. }
            | AmqMsg::Closed { conn }
            | AmqMsg::KeepAlive { conn } => *conn,
            _ => return Event::Nothing,
        };
        if conn != self.conn {
            return Event::Nothing;
        }
        self.read_check.received();
        match msg {
            AmqMsg::Connected { .. } if !self.open => {
                self.open = true;
                o.cancel_timer(AmqTimer::Connect);
                o.set_timer(AmqTimer::KeepAlive, retry(settings.max_inactivity / 3));
                o.set_timer(AmqTimer::ClientReadCheck, exact(READ_CHECK_INITIAL_DELAY));
                Event::Opened
            }
            AmqMsg::Closed { .. } => Event::Lost,
            AmqMsg::KeepAlive { .. } | AmqMsg::Connected { .. } => Event::Nothing,
            m if self.open => Event::Command(m),
            _ => Event::Nothing,
        }
    }

    /// The client's own timers: keep-alives, the read check, reconnecting. `Some(Event::Lost)`
    /// when the inactivity monitor gave up on the broker.
    pub fn on_timeout(
        &mut self,
        settings: &Settings,
        timer: &AmqTimer,
        o: &mut AmqOut,
    ) -> Option<Event> {
        match timer {
            AmqTimer::KeepAlive if self.open => {
                o.send(self.broker, AmqMsg::KeepAlive { conn: self.conn });
                o.set_timer(AmqTimer::KeepAlive, retry(settings.max_inactivity / 3));
                None
            }
            AmqTimer::ClientReadCheck if self.open => {
                if self.read_check.inactive() {
                    return Some(Event::Lost);
                }
                o.set_timer(AmqTimer::ClientReadCheck, exact(settings.max_inactivity));
                None
            }
            AmqTimer::Connect if !self.open => {
                self.next_broker(settings);
                self.connect(settings, o);
                None
            }
            _ => None,
        }
    }
}
