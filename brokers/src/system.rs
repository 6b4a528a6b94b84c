//! What a broker model exposes to the drivers.

use crate::{AppLog, Config, ConfigError, Durable, Key};
use mqcheck_invariants::OrderingPromise;
use stateright::actor::{Actor, Id};
use std::fmt::Debug;
use std::time::Duration;

/// What a node is, for the nemesis: which faults may hit it ([`Workload::faulty`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A broker node: crashes, loses power, pauses, is partitioned.
    Server,
    /// Infrastructure the model treats as reliable (a controller quorum, a coordinator): it is
    /// partitioned from other nodes but never crashes.
    Infrastructure,
    /// A publishing client: partitioned; crashed, powered off, paused and clock-skewed only when
    /// the workload says so (`--producer-crashes`), as an at-least-once application with an
    /// outbox that resends what was never acknowledged after a restart.
    Producer,
    /// A consuming client: crashes, pauses and is partitioned like a server.
    Consumer,
}

/// One actor of a system, with its display name (`n1`, `ctl`, `p0`, `c0`).
#[derive(Clone, Debug)]
pub struct Node<A> {
    pub name: String,
    pub role: Role,
    pub actor: A,
}

/// The nodes' names by id (`n1`, `ctl`, `p0`), for views that mention other nodes.
#[derive(Clone, Copy, Debug)]
pub struct Names<'a>(pub &'a [String]);

impl Names<'_> {
    /// The name of node `id`.
    pub fn of(&self, id: Id) -> &str {
        &self.0[usize::from(id)]
    }

    /// Several nodes: `[n1,n2,n3]`.
    pub fn list<'i>(&self, ids: impl IntoIterator<Item = &'i Id>) -> String {
        let names: Vec<&str> = ids.into_iter().map(|id| self.of(*id)).collect();
        format!("[{}]", names.join(","))
    }
}

/// `key=value` pairs for a view: `q0=3 q1=0`.
pub(crate) fn pairs<K: std::fmt::Display, V: std::fmt::Display>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> String {
    let entries: Vec<String> = entries
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    entries.join(" ")
}

/// The client workload, shared by every broker. `None` and zero are each broker's own behaviour:
/// the producers draw their pace and the consumers their handling time per run (swarm testing),
/// consumers start at once, and messages carry no workload key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Messages each producer sends.
    pub messages: u32,
    pub producers: u32,
    pub consumers: u32,
    /// Messages per second per producer, instead of a drawn pace.
    pub rate: Option<u32>,
    /// Milliseconds a consumer's application spends on one message, instead of a drawn time.
    pub handler_ms: Option<u32>,
    /// Consumers that have handled nothing yet start this many milliseconds late, so a backlog
    /// builds.
    pub consumer_delay_ms: u32,
    /// Each message carries one of this many keys (message `seq` has key `seq % keys`).
    pub keys: Option<u32>,
    /// Producers crash, lose power, pause and have their clocks skewed like servers; after a
    /// restart each resends its outbox (`--producer-crashes`).
    pub producer_crashes: bool,
    /// Consumers rewind this many records each time they catch up after reading something new,
    /// and read them again (`--rewind N`), where the broker's consumers can
    /// ([`System::rewind`]).
    pub rewind: Option<u32>,
}

impl Workload {
    /// A workload of this size, with every broker's own pacing, handling and keys.
    pub fn new(messages: u32, producers: u32, consumers: u32) -> Self {
        Workload {
            messages,
            producers,
            consumers,
            ..Workload::default()
        }
    }

    /// May a node of this role crash, lose power, pause or have its clock skewed? Servers and
    /// consumers may; producers when `producer_crashes` is set; infrastructure never. Both
    /// drivers ask this, and nothing else.
    pub fn faulty(&self, role: Role) -> bool {
        match role {
            Role::Server | Role::Consumer => true,
            Role::Producer => self.producer_crashes,
            Role::Infrastructure => false,
        }
    }

    /// The paces (ms between two sends) a producer draws from: the broker's own `choices`, or
    /// the one that `rate` gives.
    pub fn paces(&self, choices: &[u64]) -> Vec<u64> {
        match self.rate {
            Some(rate) => vec![(1000 / u64::from(rate.max(1))).max(1)],
            None => choices.to_vec(),
        }
    }

    /// The handling times (ms per message) a consumer draws from.
    pub fn handling(&self, choices: &[u64]) -> Vec<u64> {
        match self.handler_ms {
            Some(ms) => vec![u64::from(ms)],
            None => choices.to_vec(),
        }
    }

    /// The key message `seq` carries, if the workload has keys.
    pub fn key(&self, seq: u32) -> Option<u32> {
        self.keys.map(|k| seq % k.max(1))
    }

    /// The delay before a consumer whose application has handled nothing yet starts.
    pub fn consumer_delay(&self) -> Duration {
        Duration::from_millis(u64::from(self.consumer_delay_ms))
    }

    /// How long the workload takes at its slowest pace and handling time: every producer's sends,
    /// and the consumers working through the backlog after their delay, whichever ends last.
    pub fn duration(&self, paces: &[u64], handling: &[u64]) -> Duration {
        let slowest = |v: Vec<u64>| v.into_iter().max().unwrap_or(0);
        let sends = slowest(self.paces(paces)) * u64::from(self.messages);
        let backlog =
            slowest(self.handling(handling)) * u64::from(self.messages) * u64::from(self.producers);
        Duration::from_millis(sends.max(u64::from(self.consumer_delay_ms) + backlog))
    }
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

    /// How many consumers the matrix runs a row with when its claim needs them, whatever
    /// `--consumers` says (RabbitMQ's single active consumer row: two, so that one takes over
    /// from the other); `None`: the matrix's `--consumers`.
    fn row_consumers(_row: &Scenario) -> Option<u32> {
        None
    }

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

    /// The workload the system was built with: the drivers ask it which nodes are faulty.
    fn workload(&self) -> Workload;

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

    /// Every message in the broker's vocabulary, chatter included: what a diagram or a
    /// counterexample labels a step with. [`System::describe`] is this, or `None` for chatter.
    fn label(msg: &<Self::Actor as Actor>::Msg) -> String;

    /// Is this message a turn in a run's story: an election, a truncation, an ISR or membership
    /// change? A replay's story keeps these lines whichever messages they name.
    fn notable(_msg: &<Self::Actor as Actor>::Msg) -> bool {
        false
    }

    /// How a consumer of this broker rewinds to read again what it read (`--rewind`), in the
    /// broker's words; `None` when it cannot (a queue forgets what it handed out and had
    /// acknowledged).
    fn rewind() -> Option<&'static str> {
        None
    }

    /// Can consumers in this configuration rewind ([`System::rewind`]) so that a replay is
    /// judged? `Err` says why not, naming the keys that would allow it: `--rewind` refuses the
    /// configuration and the matrix's replay column reads "not supported" in its row.
    fn replay_row(_config: &Config) -> Result<(), String> {
        Ok(())
    }

    /// The order the broker promises, which the ordering checker judges within: what the scope
    /// of its sends and deliveries stands for, and which of them the promise leaves out.
    fn ordering() -> OrderingPromise;

    /// The order this configuration promises: [`System::ordering`], unless one of its settings
    /// changes the promise (RabbitMQ's `x-single-active-consumer` delivers to one consumer at a
    /// time, so its order holds across the queue's consumers). What the simulator, the model
    /// checker and the matrix judge ordering inside.
    fn promise(&self) -> OrderingPromise {
        Self::ordering()
    }

    /// The longest fault window a seed may draw, and how long the healed system then needs to drain
    /// (retries settle, consumers read to the end) before the checkers run.
    fn fault_window(&self) -> Duration;
    fn drain(&self) -> Duration;

    /// Can a message that a stalled run never delivered still be held somewhere a later reader
    /// would find it (a log, a queue on disk)? Then a run its time limit cut short has not shown
    /// it lost until the consumers read past it. A brokerless system whose peers hold messages
    /// only in their sockets' queues says no: what a stalled run did not deliver is gone.
    fn stores_messages(&self) -> bool {
        true
    }

    /// How long the clients need for the whole workload at its pace: a run's time limit is the
    /// longer of this and the fault window, plus the drain.
    fn workload_time(&self) -> Duration {
        Duration::ZERO
    }

    /// How many sends (`Op::Send`) the whole workload makes: a run that ends with fewer was cut
    /// short.
    fn sends(&self) -> usize {
        0
    }

    /// A node's state in a few readable lines (logs, high watermarks, ISR, queues) for the
    /// Stateright Explorer, naming the other nodes it mentions by `names`.
    fn show(state: &<Self::Actor as Actor>::State, names: Names<'_>) -> String;

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
