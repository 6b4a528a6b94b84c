//! Conformance: the real brokers under the model's faults, judged by the model's checkers.
//!
//! Every verdict mqcheck gives is about a model. This crate holds a model to the real thing:
//! it runs real RabbitMQ and ActiveMQ servers from Debian's packages and real libzmq sockets on
//! loopback ([`process::BrokerProcess`]), drives them with Rust clients that mirror the model's
//! clients (the same message ids, ack modes and confirms, recording the same [`Op`]s into a
//! [`History`]), puts them through a fault schedule in the model's own vocabulary
//! ([`plan::Plan`]), and judges the real history with the same checkers. A comparison
//! ([`scenario::Comparison`]) then asks three things:
//!
//! 1. **soundness**: every kind of violation the real broker showed is a kind the model
//!    produces for the same configuration and faults, over a sweep of seeds ([`model::ask`]);
//! 2. **claims reproduced**: each anomaly the model reports for the scenario shows on the real
//!    broker within a bounded number of attempts;
//! 3. **guarantees**: what the model says holds, holds on the real broker too.
//!
//! The real clients need lapin, zmq and a C++ compiler for the bundled libzmq: they sit behind
//! the `real-brokers` feature, so the workspace builds with Rust alone. Without it,
//! [`scenario::run_real`] says how to build it; with it, a missing broker package is an error
//! naming the Debian package to install, never a silent skip.
//!
//! Kafka, RocketMQ and ActiveMQ Artemis are not in the package registries this project
//! reaches, so they are not run for real (`docs/conformance.md`).

#[cfg(feature = "real-brokers")]
mod activemq;
pub mod model;
pub mod network;
pub mod plan;
pub mod process;
#[cfg(feature = "real-brokers")]
mod rabbitmq;
pub mod scenario;
#[cfg(feature = "real-brokers")]
mod zeromq;

use mqcheck_invariants::{History, Op};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The real run's history, shared by its client threads, with the time since the run's start.
#[derive(Clone, Debug)]
pub struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            start: Instant::now(),
            history: Arc::default(),
        }
    }
}

impl Recorder {
    /// Milliseconds since the run started.
    pub fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn record(&self, node: &str, op: Op) {
        let ms = self.ms();
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ms, node, op);
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A client's state as the nemesis sets it: the client looks at it between steps.
#[derive(Clone, Debug, Default)]
pub struct Control(Arc<AtomicU8>);

/// What a [`Control`] tells its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Up,
    /// Drop the connection and everything not yet handled; wait until up again.
    Crashed,
    /// Hold everything as it is until up again.
    Paused,
    /// The run is over.
    Stop,
}

impl Control {
    /// Does a plan's action to the client this controls: a crash drops its connection and
    /// what it held, a pause stops its application, their ends bring it back. Holes in the
    /// network are the broker's link's, not the client's.
    pub fn apply(&self, act: crate::plan::Act) {
        use crate::plan::Act;
        match act {
            Act::Crash => self.set(State::Crashed),
            Act::Pause => self.set(State::Paused),
            Act::Restart | Act::Resume => self.set(State::Up),
            Act::Open(_) | Act::Close(_) => {}
        }
    }

    pub fn set(&self, state: State) {
        let v = match state {
            State::Up => 0,
            State::Crashed => 1,
            State::Paused => 2,
            State::Stop => 3,
        };
        self.0.store(v, Ordering::SeqCst);
    }

    pub fn get(&self) -> State {
        match self.0.load(Ordering::SeqCst) {
            0 => State::Up,
            1 => State::Crashed,
            2 => State::Paused,
            _ => State::Stop,
        }
    }

    /// Sleeps while paused; returns the state that ended the wait.
    pub fn wait_while_paused(&self) -> State {
        loop {
            match self.get() {
                State::Paused => std::thread::sleep(Duration::from_millis(20)),
                s => return s,
            }
        }
    }

    /// Sleeps while crashed or paused; returns the state that ended the wait (`Up` or `Stop`).
    pub fn wait_until_up(&self) -> State {
        loop {
            match self.get() {
                State::Crashed | State::Paused => std::thread::sleep(Duration::from_millis(20)),
                s => return s,
            }
        }
    }
}

/// Sleeps `ms` in small steps, returning early when the run stops.
pub fn nap(control: &Control, ms: u64) {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until && control.get() != State::Stop {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
}

/// Waits, as Jepsen's final reads do, until the history settles (every send answered, every
/// acknowledged message delivered) and stays settled for `quiet`, or `limit` runs out; says
/// whether it settled.
pub fn drain(rec: &Recorder, limit: Duration, quiet: Duration) -> bool {
    let until = Instant::now() + limit;
    let mut quiet_since: Option<Instant> = None;
    while Instant::now() < until {
        if rec.history().settled() {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= quiet {
                return true;
            }
        } else {
            quiet_since = None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The clients of a brokered run: a producer and a consumer thread, each with its control.
#[cfg(feature = "real-brokers")]
pub(crate) struct Clients {
    pub producer: (std::thread::JoinHandle<()>, Control),
    pub consumer: (std::thread::JoinHandle<()>, Control),
}

/// Plays `plan` on the broker's `servers` and its clients, heals everything, waits for the
/// producer to finish and the history to settle (`drain` at most, then `quiet`), and stops the
/// consumer. Shared by every runner with a broker process; the run's wall time counts from
/// `started`.
#[cfg(feature = "real-brokers")]
pub(crate) fn play(
    started: Instant,
    plan: &plan::Plan,
    servers: &mut [process::BrokerProcess],
    rec: &Recorder,
    clients: Clients,
    drain_for: (Duration, Duration),
) -> Result<scenario::RealRun, process::HarnessError> {
    let (producer, pub_ctl) = clients.producer;
    let (consumer, con_ctl) = clients.consumer;
    let mut notes = Vec::new();
    let mut failure = None;
    for a in &plan.actions {
        let now = rec.ms();
        if a.at_ms > now {
            std::thread::sleep(Duration::from_millis(a.at_ms - now));
        }
        match (&a.who, a.act) {
            (plan::Who::Server(i), act) => {
                let Some(server) = servers.get_mut(*i) else {
                    continue;
                };
                if let Err(e) = server.apply(act) {
                    failure = Some(e);
                    break;
                }
                if act == plan::Act::Restart {
                    notes.push(format!(
                        "n{i} was back {} ms after its restart was due",
                        rec.ms().saturating_sub(a.at_ms)
                    ));
                }
            }
            (plan::Who::Client(_), act) => con_ctl.apply(act),
        }
    }
    // Everything heals: every server runs and is reachable, the consumer is up.
    for server in servers.iter_mut() {
        if failure.is_none() && !server.is_up() {
            failure = server.restart().err();
        }
        server.resume();
        if failure.is_none() {
            failure = server.heal().err();
        }
    }
    con_ctl.set(State::Up);
    if let Some(e) = failure {
        pub_ctl.set(State::Stop);
        con_ctl.set(State::Stop);
        let _ = producer.join();
        let _ = consumer.join();
        return Err(e);
    }
    let _ = producer.join();
    let settled = drain(rec, drain_for.0, drain_for.1);
    con_ctl.set(State::Stop);
    let _ = consumer.join();
    Ok(scenario::RealRun {
        history: rec.history(),
        notes,
        wall_ms: started.elapsed().as_millis() as u64,
        settled,
        masters: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqcheck_invariants::MsgId;

    #[test]
    fn the_recorder_keeps_operations_in_order() {
        let r = Recorder::default();
        let msg = MsgId {
            producer: 0,
            seq: 1,
        };
        r.record("p0", Op::Ack { msg });
        r.clone().record("c0", Op::Ack { msg });
        let h = r.history();
        assert_eq!(h.events.len(), 2);
        assert_eq!(h.events[1].node, "c0");
        assert!(h.events[0].time_ms <= h.events[1].time_ms);
    }

    #[test]
    fn a_control_wakes_its_client_when_it_comes_back_up() {
        let c = Control::default();
        c.set(State::Crashed);
        let waiter = {
            let c = c.clone();
            std::thread::spawn(move || c.wait_until_up())
        };
        std::thread::sleep(Duration::from_millis(50));
        c.set(State::Up);
        assert_eq!(waiter.join().unwrap(), State::Up);
        c.set(State::Stop);
        assert_eq!(c.wait_while_paused(), State::Stop);
    }
}
