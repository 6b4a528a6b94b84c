//! The actor tests' harness, shared by every broker: the actors of one deployment driven by hand,
//! one message, timer or random draw at a time, with the commands each step emits. No simulator,
//! no network: every delivery is one the test chose.

// Each test crate includes this module and uses the part it needs.
#![allow(dead_code)]

use mqcheck_brokers::{Config, Names, System, Workload};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;

/// What one step of broker `S`'s actors emits.
pub type Cmd<S> = Command<
    <<S as System>::Actor as Actor>::Msg,
    <<S as System>::Actor as Actor>::Timer,
    <<S as System>::Actor as Actor>::Random,
    <S as System>::Storage,
>;

type State<S> = <<S as System>::Actor as Actor>::State;

/// Broker `S` built from `KEY=VALUE` settings, validated as the CLI validates them.
pub fn system<S: System>(sets: &[&str], workload: Workload) -> S {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::parse(S::NAME, &S::keys(), &sets).expect("valid config");
    S::validate(&config).expect("a combination the broker accepts");
    S::build(&config, workload)
}

type Msg<S> = <<S as System>::Actor as Actor>::Msg;

/// Every message the commands send, with its destination.
pub fn sends<S: System>(cmds: &[Cmd<S>]) -> Vec<(usize, Msg<S>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Send(dst, m) => Some((usize::from(*dst), m.clone())),
            _ => None,
        })
        .collect()
}

/// The messages the commands send to `dst`.
pub fn sent_to<S: System>(cmds: &[Cmd<S>], dst: usize) -> Vec<Msg<S>> {
    sends::<S>(cmds)
        .into_iter()
        .filter(|(d, _)| *d == dst)
        .map(|(_, m)| m)
        .collect()
}

/// Every actor of one deployment with its current state. Nodes start on demand, so a test sees
/// exactly the commands of the steps it takes.
pub struct Actors<S: System> {
    pub actors: Vec<S::Actor>,
    pub states: Vec<Option<State<S>>>,
    /// The nodes' names (`n1`, `ctl`, `p0`).
    pub names: Vec<String>,
}

impl<S: System> Actors<S> {
    pub fn of(system: &S) -> Self {
        let (names, actors): (Vec<String>, Vec<S::Actor>) = system
            .nodes()
            .into_iter()
            .map(|n| (n.name, n.actor))
            .unzip();
        let states = actors.iter().map(|_| None).collect();
        Actors {
            actors,
            states,
            names,
        }
    }

    /// Starts node `i` with an empty disk.
    pub fn start(&mut self, i: usize) -> Vec<Cmd<S>> {
        self.restart(i, None)
    }

    /// Starts (or restarts) node `i` from `storage`.
    pub fn restart(&mut self, i: usize, storage: Option<S::Storage>) -> Vec<Cmd<S>> {
        let mut o = Out::new();
        let state = self.actors[i].on_start(Id::from(i), &storage, &mut o);
        self.states[i] = Some(state);
        o.into_iter().collect()
    }

    pub fn state(&self, i: usize) -> &State<S> {
        self.states[i].as_ref().expect("node started")
    }

    /// Node `i`'s state as the Stateright Explorer shows it.
    pub fn show(&self, i: usize) -> String {
        S::show(self.state(i), Names(&self.names))
    }

    /// Runs one handler on node `i` and keeps the state it leaves.
    pub fn handle(
        &mut self,
        i: usize,
        handler: impl FnOnce(&S::Actor, Id, &mut Cow<State<S>>, &mut Out<S::Actor>),
    ) -> Vec<Cmd<S>> {
        let mut o = Out::new();
        let mut state = Cow::Borrowed(self.states[i].as_ref().expect("node started"));
        handler(&self.actors[i], Id::from(i), &mut state, &mut o);
        self.states[i] = Some(state.into_owned());
        o.into_iter().collect()
    }

    /// Delivers `msg` from `src` to node `dst`.
    pub fn deliver(
        &mut self,
        dst: usize,
        src: usize,
        msg: <S::Actor as Actor>::Msg,
    ) -> Vec<Cmd<S>> {
        self.handle(dst, |a, id, s, o| a.on_msg(id, s, Id::from(src), msg, o))
    }

    /// Fires `timer` on node `i`.
    pub fn fire(&mut self, i: usize, timer: <S::Actor as Actor>::Timer) -> Vec<Cmd<S>> {
        self.handle(i, |a, id, s, o| a.on_timeout(id, s, &timer, o))
    }

    /// Node `i` draws `value`.
    pub fn random(&mut self, i: usize, value: <S::Actor as Actor>::Random) -> Vec<Cmd<S>> {
        self.handle(i, |a, id, s, o| a.on_random(id, s, &value, o))
    }
}
