//! One actor on one simulated node: its event loop, timers and random choices over madsim.
//!
//! Two tasks per node, both dying with it: the receiver (packets to `on_msg`) and the clock
//! (armed timers to `on_timeout`, earliest first). Handlers run synchronously between awaits, so
//! the actor never sees concurrency; what a handler sends goes to the outbox, which the task that
//! ran it then puts on madsim's network.

use crate::trace::Kind;
use crate::world::{lock, Delivery, Fate, Packet, Shared, TAG};
use futures_util::future::{join_all, select, Either};
use madsim::net::Endpoint;
use madsim::rand::{thread_rng, Rng};
use madsim::task::spawn_local;
use madsim::time::{sleep_until, Instant};
use mqcheck_brokers::System;
use mqcheck_faults::clock;
use mqcheck_invariants::Event;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

type Msg<S> = <<S as System>::Actor as Actor>::Msg;
type Timer<S> = <<S as System>::Actor as Actor>::Timer;
type State<S> = <<S as System>::Actor as Actor>::State;
type Random<S> = <<S as System>::Actor as Actor>::Random;

/// How long a client library takes to notice a reset connection.
const RESET_NOTICE: Duration = Duration::from_millis(5);

/// Something the clock will do at its instant: fire a timer, make a random choice, or hand the
/// actor a connection-reset notice.
enum Due<S: System> {
    Timer(Timer<S>),
    Choice(String, Random<S>),
    Reset(usize, Msg<S>),
}

/// A node's volatile runtime: lost with the process.
struct Runtime<S: System> {
    index: usize,
    actor: S::Actor,
    world: Shared<S>,
    state: Option<State<S>>,
    /// Whether the actor led something after its last step (mirrored in the world).
    leads: bool,
    /// Everything scheduled, by (instant, sequence): the sequence keeps equal instants in the
    /// order they were scheduled, so runs are deterministic.
    agenda: BTreeMap<(Instant, u64), Due<S>>,
    /// Where each armed timer sits in the agenda (looked up, never iterated).
    armed: HashMap<Timer<S>, (Instant, u64)>,
    sequence: u64,
    /// Packets the last handler sent, for the task that ran it to put on the network.
    outbox: Vec<(SocketAddr, Packet<Msg<S>>)>,
    endpoint: Rc<Endpoint>,
    addrs: Rc<Vec<SocketAddr>>,
    /// When the clock task will next wake by itself.
    alarm: Option<Instant>,
    wake_clock: Option<Waker>,
    /// Every node's clock rate (the `clock` fault), shared with the world.
    clock: Arc<[AtomicU32]>,
}

type Handle<S> = Rc<RefCell<Runtime<S>>>;

impl<S: System> Runtime<S> {
    fn schedule(&mut self, at: Instant, due: Due<S>) {
        self.sequence += 1;
        if let Due::Timer(t) = &due {
            self.armed.insert(t.clone(), (at, self.sequence));
        }
        self.agenda.insert((at, self.sequence), due);
        // Only an entry earlier than the clock's alarm needs to wake it; a cancelled entry
        // just makes the alarm find nothing due.
        if self.alarm.is_none_or(|alarm| at < alarm) {
            if let Some(w) = self.wake_clock.take() {
                w.wake();
            }
        }
    }

    fn disarm(&mut self, timer: &Timer<S>) {
        if let Some(key) = self.armed.remove(timer) {
            self.agenda.remove(&key);
        }
    }
}

/// The node's main task: bind, start the actor from its disk, then deliver packets forever.
pub async fn run<S: System>(
    index: usize,
    actor: S::Actor,
    world: Shared<S>,
    addrs: Rc<Vec<SocketAddr>>,
) {
    let endpoint = Rc::new(
        Endpoint::bind(addrs[index])
            .await
            .expect("simulated address is free"),
    );
    let rt: Handle<S> = Rc::new(RefCell::new(Runtime {
        index,
        actor,
        world: world.clone(),
        state: None,
        leads: false,
        agenda: BTreeMap::new(),
        armed: HashMap::new(),
        sequence: 0,
        outbox: Vec::new(),
        endpoint: endpoint.clone(),
        addrs,
        alarm: None,
        wake_clock: None,
        clock: lock(&world).clock.clone(),
    }));
    lock(&world).come_up(index);
    spawn_local(clock(rt.clone()));
    {
        let storage = lock(&world).disks[index].clone();
        let mut out = Out::new();
        let state = {
            let r = rt.borrow();
            r.actor.on_start(Id::from(index), &storage, &mut out)
        };
        rt.borrow_mut().state = Some(state);
        lock(&world).log(index, Kind::Node, None, || "started".to_string());
        apply(&rt, out);
        flush(&rt).await;
    }
    let mut ready = Vec::new();
    loop {
        let Ok((payload, _from)) = endpoint.recv_from_raw(TAG).await else {
            return;
        };
        let Ok(packet) = payload.downcast::<Packet<Msg<S>>>() else {
            continue;
        };
        let src = packet.src;
        let tracing = {
            let mut w = lock(&world);
            w.receive(index, *packet, &mut ready);
            w.delivered += ready.len() as u64;
            w.tracing()
        };
        for msg in ready.drain(..) {
            // A reset becomes whatever the protocol's client library makes of it.
            let Some(msg) = msg.or_else(|| S::reset(Id::from(src))) else {
                continue;
            };
            if tracing {
                if let Some(text) = S::describe(&msg) {
                    let mut w = lock(&world);
                    let from = w.names[src].clone();
                    let kind = if S::notable(&msg) {
                        Kind::Turn
                    } else {
                        Kind::Message
                    };
                    w.log(index, kind, Some(src), || format!("<- {from}: {text}"));
                }
            }
            step(&rt, |actor, id, state, out| {
                actor.on_msg(id, state, Id::from(src), msg, out)
            });
        }
        flush(&rt).await;
    }
}

/// Fires whatever is due, earliest first; sleeps until the next entry or until an earlier one
/// is scheduled.
async fn clock<S: System>(rt: Handle<S>) {
    loop {
        let next = rt.borrow().agenda.keys().next().map(|(at, _)| *at);
        rt.borrow_mut().alarm = next;
        let changed = poll_fn(|cx| {
            let mut r = rt.borrow_mut();
            let earliest = r.agenda.keys().next().map(|(at, _)| *at);
            let earlier = match (earliest, next) {
                (Some(e), Some(n)) => e < n,
                (e, n) => e.is_some() && n.is_none(),
            };
            if earlier {
                Poll::Ready(())
            } else {
                r.wake_clock = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        match next {
            None => changed.await,
            Some(at) => {
                let sleep = std::pin::pin!(sleep_until(at));
                let changed = std::pin::pin!(changed);
                if let Either::Right(_) = select(sleep, changed).await {
                    continue;
                }
            }
        }
        let now = Instant::now();
        loop {
            let due = {
                let mut r = rt.borrow_mut();
                let due = match r.agenda.first_key_value() {
                    Some((&(at, seq), _)) if at <= now => r.agenda.remove(&(at, seq)),
                    _ => None,
                };
                if let Some(Due::Timer(t)) = &due {
                    r.armed.remove(t);
                }
                due
            };
            let Some(due) = due else { break };
            match due {
                Due::Timer(timer) => step(&rt, |actor, id, state, out| {
                    actor.on_timeout(id, state, &timer, out)
                }),
                Due::Choice(_, pick) => step(&rt, |actor, id, state, out| {
                    actor.on_random(id, state, &pick, out)
                }),
                Due::Reset(peer, notice) => step(&rt, |actor, id, state, out| {
                    actor.on_msg(id, state, Id::from(peer), notice, out)
                }),
            }
        }
        flush(&rt).await;
    }
}

/// Puts the outbox on madsim's network, all packets at once: madsim spends a moment on each
/// send, and a node's packets should not queue behind each other for it. FIFO is the connection
/// layer's job.
async fn flush<S: System>(rt: &Handle<S>) {
    let (batch, endpoint) = {
        let mut r = rt.borrow_mut();
        if r.outbox.is_empty() {
            return;
        }
        (std::mem::take(&mut r.outbox), r.endpoint.clone())
    };
    // A send to a node that is down simply goes nowhere.
    let send = |(addr, packet): (SocketAddr, Packet<Msg<S>>)| {
        let endpoint = endpoint.clone();
        async move {
            let _ = endpoint.send_to_raw(addr, TAG, Box::new(packet)).await;
        }
    };
    if batch.len() == 1 {
        send(batch.into_iter().next().expect("one packet")).await;
    } else {
        join_all(batch.into_iter().map(send)).await;
    }
}

/// Runs one handler on the actor's state, then carries out its commands.
fn step<S: System>(
    rt: &Handle<S>,
    handler: impl FnOnce(&S::Actor, Id, &mut Cow<State<S>>, &mut Out<S::Actor>),
) {
    let mut out = Out::new();
    {
        let mut r = rt.borrow_mut();
        let Some(state) = r.state.take() else { return };
        let mut cow = Cow::Owned(state);
        handler(&r.actor, Id::from(r.index), &mut cow, &mut out);
        let state = cow.into_owned();
        let leader = S::is_leader(&state);
        if leader != r.leads {
            r.leads = leader;
            lock(&r.world).set_leader(r.index, leader);
        }
        r.state = Some(state);
    }
    apply(rt, out);
}

fn apply<S: System>(rt: &Handle<S>, out: Out<S::Actor>) {
    for command in out {
        match command {
            Command::Send(dst, msg) => send(rt, usize::from(dst), msg),
            Command::SetTimer(timer, range) => {
                let delay = if range.start >= range.end {
                    range.start
                } else {
                    thread_rng().gen_range(range)
                };
                let mut r = rt.borrow_mut();
                let rate = r.clock[r.index].load(Ordering::Relaxed);
                let delay = if rate == clock::NORMAL {
                    delay
                } else {
                    Duration::from_micros(clock::scaled(delay.as_micros() as u64, rate))
                };
                r.disarm(&timer);
                r.schedule(Instant::now() + delay, Due::Timer(timer));
            }
            Command::CancelTimer(timer) => rt.borrow_mut().disarm(&timer),
            Command::Save(storage) => save(rt, storage),
            Command::ChooseRandom(key, choices) => {
                let mut r = rt.borrow_mut();
                r.agenda
                    .retain(|_, d| !matches!(d, Due::Choice(k, _) if *k == key));
                if !choices.is_empty() {
                    let pick = choices[thread_rng().gen_range(0..choices.len())].clone();
                    r.schedule(Instant::now(), Due::Choice(key, pick));
                }
            }
        }
    }
}

fn send<S: System>(rt: &Handle<S>, dst: usize, msg: Msg<S>) {
    let mut r = rt.borrow_mut();
    let fate = lock(&r.world).transmit(r.index, dst, msg);
    let (packet, delay, copy) = match fate {
        Fate::Dropped | Fate::Held => return,
        Fate::Refused => {
            // The send fails: the client library sees the reset.
            if let Some(notice) = S::reset(Id::from(dst)) {
                r.schedule(Instant::now() + RESET_NOTICE, Due::Reset(dst, notice));
            }
            return;
        }
        Fate::Sent {
            packet,
            delay,
            copy,
        } => (packet, delay, copy),
    };
    for (packet, delay) in std::iter::once((packet, delay)).chain(copy) {
        if delay.is_zero() {
            let addr = r.addrs[dst];
            r.outbox.push((addr, packet));
        } else {
            // Retransmitted (loss) or held back (reordering): the receiver's node hands it over
            // later, overtaking nothing on the way (its sequence number keeps it in order).
            lock(&r.world).deliver_later(Delivery {
                dst,
                delay,
                packets: vec![packet],
            });
        }
    }
}

/// Stores what the actor wrote, and moves its new observations into the history.
fn save<S: System>(rt: &Handle<S>, storage: S::Storage) {
    let r = rt.borrow();
    let mut w = lock(&r.world);
    let Some(log) = S::app_log(&storage) else {
        w.disks[r.index] = Some(storage);
        return;
    };
    let seen = w.observed[r.index].min(log.len());
    let time_ms = w.now_ms();
    let node = w.names[r.index].clone();
    for op in log.since(seen) {
        let op = op.clone();
        w.log(r.index, Kind::App, None, || format!("app: {op}"));
        w.history.events.push(Event {
            time_ms,
            node: node.clone(),
            op,
        });
    }
    w.observed[r.index] = log.len();
    w.disks[r.index] = Some(storage);
}
