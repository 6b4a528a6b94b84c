//! A toy system both drivers run, and what each fault does to it under each driver.
//!
//! The toy is two actors. The pinger (a producer) sends the numbers `0..N` to the receiver,
//! `burst` of them every `interval` on a timer, recording `Send` before each and `Ack` when the
//! receiver confirms it; when its connection is closed or reset it records a `Fail` of the last
//! number it sent. The receiver (a consumer, so the nemesis may crash and pause it) records a
//! `Deliver` for each number, then acks it. It keeps the numbers it received on a toy disk: they
//! are written to the page cache and fsynced every `flush_every` numbers (and, if `sync_every`
//! is set, on a timer), each fsync recorded as a `Commit` in scope [`FSYNCED`] of how many
//! numbers are durable. At each start it records a `Commit` in scope [`STARTED`] of how many
//! numbers it found on its disk, so the history shows what survived a crash or a power loss.
//!
//! The receiver's consumer session is `(starts, resets)`: `starts` comes from its disk,
//! `resets` (connection ends it noticed) lives only in memory.
//!
//! [`sim`] drives it through the simulator with explicit fault schedules, [`check`] through the
//! model checker one fault at a time; both assert each fault's effect as `mqcheck_faults`
//! defines it.

mod check;
mod sim;

use mqcheck_brokers::{
    AppLog, Config, ConfigError, Durable, Key, Names, Node, Role, Scenario, System, Workload,
};
use mqcheck_invariants::{History, MsgId, Op, OrderingPromise};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const PINGER: usize = 0;
pub const RECEIVER: usize = 1;
/// The scope of the receiver's `Commit` at a start: how many numbers it found on its disk.
pub const STARTED: u32 = 0;
/// The scope of the receiver's `Commit` at an fsync: how many numbers are now durable.
pub const FSYNCED: u32 = 1;

/// What an actor handed to the OS. `app`, `starts` and `next` are fsynced with every write;
/// `cached` sits in the page cache until the receiver moves it to `synced`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Disk {
    /// The application's observation log (the harness reads it).
    app: AppLog,
    /// How many times this actor started (fsynced at each start).
    starts: u64,
    /// Receiver: numbers fsynced.
    synced: Vec<u32>,
    /// Receiver: numbers written but not yet fsynced.
    cached: Vec<u32>,
    /// Pinger: the next number to send.
    next: u32,
}

impl Durable for Disk {
    fn after_power_loss(&self) -> Self {
        Disk {
            cached: Vec::new(),
            ..self.clone()
        }
    }
}

impl Disk {
    /// Moves the page cache to the fsynced numbers and records how many are durable.
    fn fsync(&mut self) {
        let flushed = std::mem::take(&mut self.cached);
        self.synced.extend(flushed);
        self.app.push(Op::Commit {
            group: 0,
            consumer: 0,
            scope: FSYNCED,
            position: self.synced.len() as u64,
        });
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    Num(u32),
    Ack(u32),
    /// The connection to the peer was closed or reset.
    Reset,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The pinger's next burst.
    Tick,
    /// The receiver's periodic fsync.
    Sync,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    disk: Disk,
    /// Connection ends noticed since this process started (volatile).
    resets: u64,
}

#[derive(Clone, Debug)]
pub enum ToyActor {
    Pinger {
        messages: u32,
        burst: u32,
        interval: Duration,
    },
    Receiver {
        flush_every: usize,
        sync_every: Option<Duration>,
    },
}

fn msg_id(n: u32) -> MsgId {
    MsgId {
        producer: 0,
        seq: n,
    }
}

/// The receiver's consumer session: restarts in the high half, resets in the low half.
pub fn session(starts: u64, resets: u64) -> u64 {
    (starts << 32) | resets
}

pub fn starts_of(session: u64) -> u64 {
    session >> 32
}

impl Actor for ToyActor {
    type Msg = Msg;
    type Timer = Timer;
    type State = State;
    type Storage = Disk;
    type Random = ();

    fn on_start(&self, _id: Id, storage: &Option<Disk>, o: &mut Out<Self>) -> State {
        let mut disk = storage.clone().unwrap_or_default();
        disk.starts += 1;
        match self {
            ToyActor::Pinger { interval, .. } => {
                o.set_timer(Timer::Tick, *interval..*interval);
            }
            ToyActor::Receiver { sync_every, .. } => {
                let kept = (disk.synced.len() + disk.cached.len()) as u64;
                disk.app.push(Op::Commit {
                    group: 0,
                    consumer: 0,
                    scope: STARTED,
                    position: kept,
                });
                if let Some(every) = sync_every {
                    o.set_timer(Timer::Sync, *every..*every);
                }
            }
        }
        o.save(disk.clone());
        State { disk, resets: 0 }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, msg) {
            (ToyActor::Pinger { .. }, Msg::Reset) => {
                let s = state.to_mut();
                s.resets += 1;
                let last = s.disk.next.saturating_sub(1);
                s.disk.app.push(Op::Fail {
                    msg: msg_id(last),
                    reason: "connection reset".to_string(),
                });
                o.save(s.disk.clone());
            }
            (ToyActor::Receiver { .. }, Msg::Reset) => state.to_mut().resets += 1,
            (ToyActor::Pinger { .. }, Msg::Ack(n)) => {
                let ack = Op::Ack { msg: msg_id(n) };
                if !state.disk.app.iter().any(|op| *op == ack) {
                    let s = state.to_mut();
                    s.disk.app.push(ack);
                    o.save(s.disk.clone());
                }
            }
            (ToyActor::Receiver { flush_every, .. }, Msg::Num(n)) => {
                let s = state.to_mut();
                let session = session(s.disk.starts, s.resets);
                s.disk.app.push(Op::Deliver {
                    msg: msg_id(n),
                    group: 0,
                    consumer: 0,
                    scope: 0,
                    position: Some(n as u64),
                    session,
                    redelivered: None,
                });
                s.disk.cached.push(n);
                if s.disk.cached.len() >= *flush_every {
                    s.disk.fsync();
                }
                // Acked once the delivery is written (to the page cache, maybe not fsynced).
                o.save(s.disk.clone());
                o.send(src, Msg::Ack(n));
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, _timer: &Timer, o: &mut Out<Self>) {
        match self {
            ToyActor::Pinger {
                messages,
                burst,
                interval,
            } => {
                if state.disk.next >= *messages {
                    return;
                }
                let s = state.to_mut();
                for _ in 0..*burst {
                    let n = s.disk.next;
                    if n >= *messages {
                        break;
                    }
                    s.disk.next += 1;
                    s.disk.app.push(Op::Send {
                        msg: msg_id(n),
                        scope: 0,
                        audience: vec![0],
                        key: None,
                    });
                    o.send(Id::from(RECEIVER), Msg::Num(n));
                }
                o.save(s.disk.clone());
                o.set_timer(Timer::Tick, *interval..*interval);
            }
            ToyActor::Receiver { sync_every, .. } => {
                let Some(every) = sync_every else { return };
                let s = state.to_mut();
                s.disk.fsync();
                o.save(s.disk.clone());
                o.set_timer(Timer::Sync, *every..*every);
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Toy {
    pub messages: u32,
    /// Numbers the pinger sends at each tick.
    pub burst: u32,
    /// The pinger's tick (ms).
    pub interval_ms: u64,
    pub flush_every: usize,
    /// The receiver's periodic fsync (ms), if any.
    pub sync_every_ms: Option<u64>,
    pub window: Duration,
    pub drain: Duration,
}

impl Toy {
    pub fn new(messages: u32) -> Self {
        Toy {
            messages,
            burst: 1,
            interval_ms: 10,
            flush_every: 4,
            sync_every_ms: None,
            window: Duration::from_secs(10),
            drain: Duration::from_secs(1),
        }
    }
}

impl System for Toy {
    type Actor = ToyActor;
    type Storage = Disk;

    const NAME: &'static str = "toy";

    fn summary() -> &'static str {
        "a pinger sends numbered messages to a receiver on a timer"
    }

    fn scenarios() -> Vec<Scenario> {
        Vec::new()
    }

    fn keys() -> Vec<Key> {
        Vec::new()
    }

    fn validate(_config: &Config) -> Result<(), ConfigError> {
        Ok(())
    }

    fn build(_config: &Config, workload: Workload) -> Self {
        Toy::new(workload.messages)
    }

    /// One pinger and one receiver; the pinger is never crashed.
    fn workload(&self) -> Workload {
        Workload::new(self.messages, 1, 1)
    }

    fn nodes(&self) -> Vec<Node<ToyActor>> {
        vec![
            Node {
                name: "pinger".to_string(),
                role: Role::Producer,
                actor: ToyActor::Pinger {
                    messages: self.messages,
                    burst: self.burst,
                    interval: Duration::from_millis(self.interval_ms),
                },
            },
            Node {
                name: "receiver".to_string(),
                role: Role::Consumer,
                actor: ToyActor::Receiver {
                    flush_every: self.flush_every,
                    sync_every: self.sync_every_ms.map(Duration::from_millis),
                },
            },
        ]
    }

    fn app_log(storage: &Disk) -> Option<&AppLog> {
        Some(&storage.app)
    }

    fn is_leader(_state: &State) -> bool {
        false
    }

    fn reset(_peer: Id) -> Option<Msg> {
        Some(Msg::Reset)
    }

    fn describe(msg: &Msg) -> Option<String> {
        Some(Self::label(msg))
    }

    fn label(msg: &Msg) -> String {
        match msg {
            Msg::Num(n) => format!("num {n}"),
            Msg::Ack(n) => format!("ack {n}"),
            Msg::Reset => "reset".to_string(),
        }
    }

    fn show(state: &State, _: Names<'_>) -> String {
        format!("{} resets seen", state.resets)
    }

    fn ordering() -> OrderingPromise {
        OrderingPromise::default()
    }

    fn fault_window(&self) -> Duration {
        self.window
    }

    fn drain(&self) -> Duration {
        self.drain
    }
}

// ---------------------------------------------------------------------------------------------
// What a history says, for both drivers' tests.

/// One delivery to the receiver: when, which number, in which session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub time_ms: u64,
    pub n: u32,
    pub session: u64,
}

pub fn deliveries(h: &History) -> Vec<Delivery> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Deliver {
                msg,
                session,
                position,
                ..
            } => {
                assert_eq!(e.node, "receiver");
                assert_eq!(*position, Some(msg.seq as u64));
                Some(Delivery {
                    time_ms: e.time_ms,
                    n: msg.seq,
                    session: *session,
                })
            }
            _ => None,
        })
        .collect()
}

pub fn numbers(h: &History) -> Vec<u32> {
    deliveries(h).iter().map(|d| d.n).collect()
}

/// When the pinger sent each number.
pub fn sent_at(h: &History) -> BTreeMap<u32, u64> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Send { msg, .. } => Some((msg.seq, e.time_ms)),
            _ => None,
        })
        .collect()
}

pub fn acked(h: &History) -> BTreeSet<u32> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Ack { msg } => Some(msg.seq),
            _ => None,
        })
        .collect()
}

/// When the pinger noticed a connection end, and the last number it had sent then.
pub fn resets(h: &History) -> Vec<(u64, u32)> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Fail { msg, .. } => Some((e.time_ms, msg.seq)),
            _ => None,
        })
        .collect()
}

/// The receiver's `Commit`s in `scope` ([`STARTED`] or [`FSYNCED`]): (time, count).
pub fn commits(h: &History, scope: u32) -> Vec<(u64, u64)> {
    h.events
        .iter()
        .filter_map(|e| match &e.op {
            Op::Commit {
                scope: s, position, ..
            } if *s == scope => Some((e.time_ms, *position)),
            _ => None,
        })
        .collect()
}

/// Does every number come after a smaller one: no duplicate, no reordering?
pub fn increasing(ns: &[u32]) -> bool {
    ns.windows(2).all(|w| w[0] < w[1])
}
