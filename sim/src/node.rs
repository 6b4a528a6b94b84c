//! One actor on one simulated node: its event loop, timers and random choices over madsim.

use crate::world::{lock, Fate, Packet, Shared};
use madsim::net::Endpoint;
use madsim::rand::{thread_rng, Rng};
use madsim::task::spawn_local;
use madsim::time::sleep;
use mqcheck_brokers::System;
use mqcheck_invariants::Event;
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

type Msg<S> = <<S as System>::Actor as Actor>::Msg;
type Timer<S> = <<S as System>::Actor as Actor>::Timer;
type State<S> = <<S as System>::Actor as Actor>::State;

/// The madsim tag all model traffic uses.
const TAG: u64 = 0x6d71;
/// How long a client library takes to notice a reset connection.
const RESET_NOTICE: Duration = Duration::from_millis(5);

/// A node's volatile runtime: lost with the process.
struct Runtime<S: System> {
    index: usize,
    actor: S::Actor,
    world: Shared<S>,
    addrs: Rc<Vec<SocketAddr>>,
    endpoint: Rc<Endpoint>,
    state: Option<State<S>>,
    /// Armed timers with the generation that armed them; a stale wake-up is ignored.
    timers: Vec<(Timer<S>, u64)>,
    /// Pending random choices by key, with their generation.
    choices: Vec<(String, u64)>,
    generation: u64,
}

type Handle<S> = Rc<RefCell<Runtime<S>>>;

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
        addrs,
        endpoint: endpoint.clone(),
        state: None,
        timers: Vec::new(),
        choices: Vec::new(),
        generation: 0,
    }));
    {
        let storage = lock(&world).disks[index].clone();
        let mut out = Out::new();
        let state = {
            let r = rt.borrow();
            r.actor.on_start(Id::from(index), &storage, &mut out)
        };
        rt.borrow_mut().state = Some(state);
        lock(&world).log(index, || "started".to_string());
        apply(&rt, out);
    }
    loop {
        let Ok((payload, _from)) = endpoint.recv_from_raw(TAG).await else {
            return;
        };
        let Ok(packet) = payload.downcast::<Packet<Msg<S>>>() else {
            continue;
        };
        let src = packet.src;
        let ready = lock(&world).receive(index, *packet);
        for msg in ready {
            // A reset becomes whatever the protocol's client library makes of it.
            let Some(msg) = msg.or_else(|| S::reset(Id::from(src))) else {
                continue;
            };
            {
                let mut w = lock(&world);
                w.delivered += 1;
                if w.trace.is_some() {
                    if let Some(text) = S::describe(&msg) {
                        let from = w.names[src].clone();
                        w.log(index, || format!("<- {from}: {text}"));
                    }
                }
            }
            step(&rt, |actor, id, state, out| {
                actor.on_msg(id, state, Id::from(src), msg, out)
            });
        }
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
        lock(&r.world).leader[r.index] = leader;
        r.state = Some(state);
    }
    apply(rt, out);
}

fn apply<S: System>(rt: &Handle<S>, out: Out<S::Actor>) {
    for command in out {
        match command {
            Command::Send(dst, msg) => send(rt, usize::from(dst), msg),
            Command::SetTimer(timer, range) => set_timer(rt, timer, range),
            Command::CancelTimer(timer) => rt.borrow_mut().timers.retain(|(t, _)| *t != timer),
            Command::Save(storage) => save(rt, storage),
            Command::ChooseRandom(key, choices) => choose(rt, key, choices),
        }
    }
}

fn send<S: System>(rt: &Handle<S>, dst: usize, msg: Msg<S>) {
    let r = rt.borrow();
    let fate = lock(&r.world).transmit(r.index, dst, msg);
    let packets = match fate {
        Fate::Dropped => return,
        Fate::Sent(packets) => packets,
        Fate::Broken => {
            // Both ends see the reset: the sender's client library at once, the receiver's
            // when the reset arrives.
            if let Some(notice) = S::reset(Id::from(dst)) {
                let rt2 = rt.clone();
                spawn_local(async move {
                    sleep(RESET_NOTICE).await;
                    step(&rt2, |actor, id, state, out| {
                        actor.on_msg(id, state, Id::from(dst), notice, out)
                    });
                });
            }
            let packet = lock(&r.world).reset_packet(r.index, dst);
            vec![(packet, Duration::ZERO)]
        }
    };
    for (packet, delay) in packets {
        let endpoint = r.endpoint.clone();
        let addr = r.addrs[dst];
        spawn_local(async move {
            if !delay.is_zero() {
                sleep(delay).await;
            }
            // A send to a node that is down simply goes nowhere.
            let _ = endpoint.send_to_raw(addr, TAG, Box::new(packet)).await;
        });
    }
}

fn set_timer<S: System>(rt: &Handle<S>, timer: Timer<S>, range: std::ops::Range<Duration>) {
    let generation = {
        let mut r = rt.borrow_mut();
        r.generation += 1;
        let g = r.generation;
        r.timers.retain(|(t, _)| *t != timer);
        r.timers.push((timer.clone(), g));
        g
    };
    let delay = if range.start >= range.end {
        range.start
    } else {
        thread_rng().gen_range(range)
    };
    let rt = rt.clone();
    spawn_local(async move {
        sleep(delay).await;
        let live = {
            let mut r = rt.borrow_mut();
            let before = r.timers.len();
            r.timers.retain(|(t, g)| !(*t == timer && *g == generation));
            r.timers.len() != before
        };
        if live {
            step(&rt, |actor, id, state, out| {
                actor.on_timeout(id, state, &timer, out)
            });
        }
    });
}

fn choose<S: System>(rt: &Handle<S>, key: String, choices: Vec<<S::Actor as Actor>::Random>) {
    let generation = {
        let mut r = rt.borrow_mut();
        r.generation += 1;
        let g = r.generation;
        r.choices.retain(|(k, _)| *k != key);
        if !choices.is_empty() {
            r.choices.push((key.clone(), g));
        }
        g
    };
    if choices.is_empty() {
        return;
    }
    let pick = choices[thread_rng().gen_range(0..choices.len())].clone();
    let rt = rt.clone();
    spawn_local(async move {
        let live = {
            let mut r = rt.borrow_mut();
            let before = r.choices.len();
            r.choices.retain(|(k, g)| !(*k == key && *g == generation));
            r.choices.len() != before
        };
        if live {
            step(&rt, |actor, id, state, out| {
                actor.on_random(id, state, &pick, out)
            });
        }
    });
}

/// Stores what the actor wrote, and moves its new observations into the history.
fn save<S: System>(rt: &Handle<S>, storage: S::Storage) {
    let r = rt.borrow();
    let mut w = lock(&r.world);
    let ops = S::observations(&storage);
    let seen = w.observed[r.index].min(ops.len());
    let time_ms = w.now_ms();
    let node = w.names[r.index].clone();
    for op in &ops[seen..] {
        let op = op.clone();
        w.log(r.index, || format!("app: {op}"));
        w.history.events.push(Event {
            time_ms,
            node: node.clone(),
            op,
        });
    }
    w.observed[r.index] = ops.len();
    w.disks[r.index] = Some(storage);
}
