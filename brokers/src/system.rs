//! What a broker model exposes to the drivers.

use crate::{AppLog, Config, ConfigError, Durable, Key};
use mqcheck_invariants::OrderingPromise;
use stateright::actor::{Actor, Id};
use std::fmt::Debug;
use std::time::Duration;

/// What a node is, for the nemesis: which faults may hit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A broker node: crashes, loses power, pauses, is partitioned.
    Server,
    /// Infrastructure the model treats as reliable (a controller quorum, a coordinator): it is
    /// partitioned from other nodes but never crashes.
    Infrastructure,
    /// A publishing client: partitioned, never crashed (a restarted producer would be a new
    /// application session with its own resend policy, which the models do not guess).
    Producer,
    /// A consuming client: crashes, pauses and is partitioned like a server.
    Consumer,
}

impl Role {
    /// May this node crash, lose power or pause?
    pub fn faulty(self) -> bool {
        matches!(self, Role::Server | Role::Consumer)
    }
}

/// One actor of a system, with its display name (`n1`, `ctl`, `p0`, `c0`).
#[derive(Clone, Debug)]
pub struct Node<A> {
    pub name: String,
    pub role: Role,
    pub actor: A,
}

/// The size of the client workload, shared by every broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Messages each producer sends.
    pub messages: u32,
    pub producers: u32,
    pub consumers: u32,
}

/// A named configuration for the claims matrix: which settings a claim depends on.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// `KEY=VALUE` settings over the defaults.
    pub sets: &'static [&'static str],
    /// What this row tests, in the article's terms.
    pub claim: &'static str,
}

/// One node as the model checker sees it in a state: its actor state unless it is down, and
/// what survives on its disk.
pub struct NodeView<'a, S: System> {
    pub name: &'a str,
    pub role: Role,
    /// `None` while the process is down.
    pub state: Option<&'a <S::Actor as Actor>::State>,
    pub storage: Option<&'a S::Storage>,
}

/// A whole system in one model-checker state: every node and every packet in flight.
pub struct SystemView<'a, S: System> {
    pub nodes: Vec<NodeView<'a, S>>,
    pub in_flight: Vec<&'a <S::Actor as Actor>::Msg>,
}

/// A broker's own structural invariant (Kafka's `LeaderInIsr`), checked in every state the model
/// checker reaches.
pub struct StateInvariant<S: System> {
    pub name: &'static str,
    pub holds: fn(&SystemView<'_, S>) -> bool,
}

/// A broker model: configuration, actors, and the hooks the drivers need.
pub trait System: Clone + Debug + Send + Sync + 'static {
    type Actor: Actor<
            Storage = Self::Storage,
            Msg: Send + Sync + Ord + 'static,
            Timer: Ord + Send + Sync,
            Random: Ord + Send + Sync,
            State: Send + Sync,
        > + Clone
        + Debug
        + Send
        + Sync
        + 'static;
    type Storage: Durable + Clone + Debug + PartialEq + std::hash::Hash + Send + Sync + 'static;

    /// The name `--broker` takes.
    const NAME: &'static str;

    /// One line saying what is modelled, for `mqcheck list`.
    fn summary() -> &'static str;

    /// The named configurations of the claims matrix.
    fn scenarios() -> Vec<Scenario>;

    /// The configuration keys, with defaults and allowed values.
    fn keys() -> Vec<Key>;

    /// Checks combinations the real broker rejects, after each key was validated on its own.
    fn validate(config: &Config) -> Result<(), ConfigError>;

    /// The values the broker actually runs with, where it adjusts a setting silently (Kafka turns
    /// idempotence off when a conflicting setting was made without asking for it).
    fn effective(config: &Config) -> Config {
        config.clone()
    }

    /// Builds the cluster and its clients.
    fn build(config: &Config, workload: Workload) -> Self;

    /// The actors, indexed by their `Id`.
    fn nodes(&self) -> Vec<Node<Self::Actor>>;

    /// A client node's durable application log (`None` for servers).
    fn app_log(storage: &Self::Storage) -> Option<&AppLog>;

    /// Is this node currently a leader of something (the nemesis likes to isolate leaders)?
    fn is_leader(state: &<Self::Actor as Actor>::State) -> bool;

    /// What an actor receives when its TCP connection to `peer` is reset: the notice its
    /// client library turns into failed requests and a reconnect. `None` if the protocol
    /// reacts to nothing but timeouts.
    fn reset(peer: Id) -> Option<<Self::Actor as Actor>::Msg>;

    /// A one-line description of a message for traces, in the broker's vocabulary; `None`
    /// keeps it out of the trace (heartbeats and other chatter).
    fn describe(msg: &<Self::Actor as Actor>::Msg) -> Option<String>;

    /// The order the broker promises, which the ordering checker judges within: what the scope
    /// of its sends and deliveries stands for, and which of them the promise leaves out.
    fn ordering() -> OrderingPromise;

    /// The longest fault window a seed may draw, and how long the healed system then needs to drain
    /// (retries settle, consumers read to the end) before the checkers run.
    fn fault_window(&self) -> Duration;
    fn drain(&self) -> Duration;

    /// A node's state in a few readable lines (logs, high watermarks, ISR, queues) for the
    /// Stateright Explorer.
    fn show(state: &<Self::Actor as Actor>::State) -> String {
        format!("{state:?}")
    }

    /// Does this configuration elect leaders (so "a leader changes" is coverage the checker must
    /// reach)?
    fn elects_leaders(&self) -> bool {
        false
    }

    /// Structural invariants from the broker's own specifications, for the model checker.
    fn invariants() -> Vec<StateInvariant<Self>> {
        Vec::new()
    }
}
