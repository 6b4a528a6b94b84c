//! RabbitMQ: a cluster of nodes serving one queue — classic, classic mirrored, or quorum — behind
//! an exchange, with publisher confirms, consumer acknowledgements and redelivery.
//!
//! # The mechanism
//!
//! ## Cluster
//!
//! `nodes` Erlang nodes watch each other through the distribution tick: a node that hears nothing
//! from a peer for `net_ticktime` considers it down. When a partition splits the cluster, each
//! side sees the other down; `cluster_partition_handling` decides what happens:
//!
//! - `ignore` (default): nothing. Each side carries on, and after the network heals the cluster
//!   stays partitioned (Mnesia reports an inconsistent database): a mirrored queue promoted on
//!   both sides keeps two leaders.
//! - `pause_minority`: a node that sees no more than half the cluster pauses — it stops its
//!   application, closing client connections — and starts again once it sees a majority.
//! - `autoheal`: once the network heals, the losing side (fewer nodes; on a tie, the side
//!   without the first node) restarts, discarding what changed there.
//!
//! ## Queues
//!
//! One queue, declared on `n1`, with `queue.type`:
//!
//! - `classic`: lives on its home node only. A persistent message (`delivery_mode=2`) in a
//!   `durable` queue is written to the message store, whose fsyncs are batched; a publisher
//!   confirm for it waits for the fsync. Transient messages live in memory. A process crash keeps
//!   what was written (the page cache survives), a power loss keeps what was fsynced.
//! - `mirrored` (classic mirrored queues, "HA"): a leader and mirrors, `ha-mode=exactly` with
//!   `ha-params` replicas. The leader multicasts every publish and removal to its mirrors (GM) and
//!   confirms once every mirror it knows of has the message. When a mirror is seen down, the
//!   leader drops it — from then on confirming without it — and, to keep `ha-params` replicas,
//!   adds a new mirror on another node. A new mirror is unsynchronised: it only receives new
//!   messages, unless `ha-sync-mode=automatic` copies the whole queue to it; it becomes
//!   synchronised once everything older than it has left the queue. When the leader is seen
//!   down, the oldest mirror is promoted — any mirror with `ha-promote-on-failure=always`, only a
//!   synchronised one with `when-synced`; a leader that stops deliberately (a pause, an autoheal
//!   restart) follows `ha-promote-on-shutdown`. The new leader requeues every message it holds,
//!   the unacknowledged ones of its predecessor among them, flagged redelivered. A node that
//!   restarts rejoins as an empty mirror; a leader that meets a newer leader gives up its
//!   contents and becomes a mirror.
//! - `quorum`: a Raft group (Ra) over all nodes. Commands — enqueue, checkout (consume),
//!   settle (ack), return (requeue), discard, consumer down — are appended by the leader,
//!   replicated with `append_entries`, committed once a majority has them on disk (fsynced), and
//!   applied by every member to the same state machine (`rabbit_fifo`); only the leader acts on
//!   the effects (confirms, deliveries). A publish is confirmed after its enqueue is committed.
//!   A returned message goes back to the front of the queue; `basic.nack`/`basic.reject` with
//!   requeue counts towards `delivery-limit`, past which the message is dead-lettered
//!   (`dead-letter-exchange`) or dropped. Every message is persisted, whatever its
//!   `delivery_mode`; quorum queues are always durable.
//!
//! ## Exchanges and routing
//!
//! The publisher publishes to one exchange of `exchange.type` bound to the queue (see
//! [`routing`]); one message in ten carries a routing key (and headers) no binding matches. Such
//! a message goes to the `alternate-exchange` if there is one (a fanout bound to the queue), is
//! returned with `basic.return` when published `mandatory`, and is otherwise dropped.
//!
//! ## Clients
//!
//! A client connects to a node; AMQP heartbeats (`heartbeat` seconds) tell each side when the
//! other is gone. The publisher publishes `delivery_mode` 1 (transient) or 2 (persistent); with
//! `publisher.confirms` it counts a message sent when `basic.ack` arrives, and with
//! `publisher.retry` it publishes again any message whose confirm did not arrive within
//! `publisher.confirm_timeout` ms or whose connection died first — the documented source of
//! duplicates. Consumers (`--consumers N`, served round robin) consume with `auto_ack` (the
//! message counts as delivered when sent) or acknowledge after handling it, with at most
//! `prefetch` unacknowledged deliveries (`basic.qos`, 0 = unlimited). With `consumer.nack` the
//! application rejects the first delivery of every tenth message, with or without requeue.
//! When a channel's connection dies — a reset, or missed heartbeats — the queue requeues its
//! unacknowledged deliveries, which come back with `redelivered=true`.
//!
//! # What is simplified
//!
//! One queue, one exchange. A client talks to the node hosting the queue's leader (any other
//! node answers with a hint, and the client dials again), so channel processes proxying to
//! queues on other nodes are not modelled. Delivery tags are the queue's message ids. The Raft
//! group has all nodes as members, with no membership changes, snapshots or pipelining limits.
//! A promoted mirror flags everything it holds redelivered (mirrors do not track deliveries).
//! Autoheal picks the winner by node count, not by client connections first. Channel
//! transactions, TTLs, queue length limits, lazy queues and streams are not modelled. See
//! `docs/rabbitmq.md`.
//!
//! # Sources
//!
//! RabbitMQ documentation: "Clustering and Network Partitions", "Classic Queue Mirroring",
//! "Quorum Queues", "Queues" (Message Ordering: FIFO per publishing channel into a queue, to one
//! consumer; competing consumers and redeliveries reorder), "Consumer Acknowledgements and Publisher Confirms", "Reliability Guide",
//! "Persistence Configuration", "Detecting Dead TCP Connections with Heartbeats", "Alternate
//! Exchanges", "Dead Letter Exchanges", "AMQP 0-9-1 Model Explained"; the Ra library and
//! `rabbit_fifo` (rabbitmq-server), rabbitmq-server discussion #18226 (delivery count counted on
//! explicit returns only, 4.3); Kyle Kingsbury, "Jepsen: RabbitMQ" (2014); the Raft paper
//! (Ongaro and Ousterhout, 2014).

mod client;
mod mirrored;
mod node;
pub mod protocol;
mod quorum;
pub mod routing;

pub use client::{Consumer, ConsumerState, Publisher, PublisherState};
pub use mirrored::{ClassicState, QueueRecord};
pub use node::{Node as RabbitNode, NodeDisk, NodeState};
pub use protocol::{Command, Entry, RabbitMsg, Stored};
pub use quorum::{Fifo, QuorumState, RaftRole};

use crate::config::Allowed::{Bool, Int, OneOf};
use crate::{AppLog, Config, ConfigError, Durable, Key, Node, Role, Scenario, System, Workload};
use mqcheck_invariants::{MsgId, Op, OrderingPromise};
use routing::{Binding, Exchange, ExchangeType, Headers, Routed, XMatch};
use stateright::actor::{Actor, Id, Out};
use std::borrow::Cow;
use std::time::Duration;

pub const NAME: &str = "rabbitmq";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueType {
    Classic,
    Mirrored,
    Quorum,
}

/// `cluster_partition_handling`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionHandling {
    Ignore,
    PauseMinority,
    Autoheal,
}

/// `ha-promote-on-failure` / `ha-promote-on-shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Promote {
    Always,
    WhenSynced,
}

/// `consumer.nack`: what the application answers for the first delivery of every tenth message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NackMode {
    Never,
    Requeue,
    Discard,
}

/// The validated configuration, typed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    pub nodes: usize,
    pub partition_handling: PartitionHandling,
    pub net_ticktime: Duration,
    pub queue_type: QueueType,
    pub durable: bool,
    /// Replicas of a mirrored queue, leader included (`ha-params`, at most the nodes there are,
    /// as RabbitMQ mirrors on the nodes available; all nodes with `ha-mode=all`).
    pub ha_replicas: usize,
    pub ha_sync_automatic: bool,
    pub promote_on_failure: Promote,
    pub promote_on_shutdown: Promote,
    pub delivery_limit: Option<u32>,
    pub dead_letter: bool,
    pub exchange: Exchange,
    pub mandatory: bool,
    pub persistent: bool,
    pub confirms: bool,
    pub retry: bool,
    pub confirm_timeout: Duration,
    pub auto_ack: bool,
    pub prefetch: u32,
    pub nack: NackMode,
    pub heartbeat: Duration,
    pub workload: Workload,
}

/// Ra's leader heartbeat (append_entries with no entries) and its election timeout range.
pub const RAFT_HEARTBEAT: Duration = Duration::from_millis(500);
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(2500);
/// The message store's batched fsync (`rabbit_msg_store`'s sync interval).
pub const FSYNC_INTERVAL: Duration = Duration::from_millis(25);
/// How long a client waits before dialling the next node.
pub const RECONNECT: Duration = Duration::from_millis(1000);
/// Entries per append_entries.
pub const MAX_APPEND: usize = 32;

fn secs(config: &Config, key: &str) -> Duration {
    Duration::from_secs(config.int(key))
}

/// The workload's routing: message `seq` carries this routing key and these headers.
pub fn routing_key(seq: u32) -> &'static str {
    if seq % 10 == 9 {
        "audit.login"
    } else {
        "orders.created.eu"
    }
}

pub fn headers(seq: u32) -> Headers {
    let kind = if seq % 10 == 9 { "audit" } else { "order" };
    vec![
        ("kind".to_string(), kind.to_string()),
        ("region".to_string(), "eu".to_string()),
    ]
}

/// The exchange of `exchange.type`, bound to the queue (index 0) so that the workload's order
/// messages match and its audit messages do not.
fn exchange(kind: &str, alternate: bool) -> Exchange {
    let (kind, key) = match kind {
        "topic" => (ExchangeType::Topic, "orders.#"),
        "fanout" => (ExchangeType::Fanout, ""),
        "headers" => (ExchangeType::Headers, ""),
        _ => (ExchangeType::Direct, "orders.created.eu"),
    };
    let binding = |kind: ExchangeType| Binding {
        queue: 0,
        key: key.to_string(),
        arguments: if kind == ExchangeType::Headers {
            vec![
                ("x-match".to_string(), "all".to_string()),
                ("kind".to_string(), "order".to_string()),
            ]
        } else {
            Vec::new()
        },
        x_match: XMatch::All,
    };
    Exchange {
        kind,
        bindings: vec![binding(kind)],
        alternate: alternate.then(|| {
            Box::new(Exchange {
                kind: ExchangeType::Fanout,
                bindings: vec![binding(ExchangeType::Fanout)],
                alternate: None,
            })
        }),
    }
}

impl Settings {
    pub fn from_config(config: &Config, workload: Workload) -> Settings {
        let nodes = config.int("nodes") as usize;
        let promote = |key: &str| match config.str(key) {
            "when-synced" => Promote::WhenSynced,
            _ => Promote::Always,
        };
        let limit = config.int("delivery-limit") as u32;
        Settings {
            nodes,
            partition_handling: match config.str("cluster_partition_handling") {
                "pause_minority" => PartitionHandling::PauseMinority,
                "autoheal" => PartitionHandling::Autoheal,
                _ => PartitionHandling::Ignore,
            },
            net_ticktime: secs(config, "net_ticktime"),
            queue_type: match config.str("queue.type") {
                "mirrored" => QueueType::Mirrored,
                "quorum" => QueueType::Quorum,
                _ => QueueType::Classic,
            },
            durable: config.bool("durable"),
            ha_replicas: match config.str("ha-mode") {
                "all" => nodes,
                _ => (config.int("ha-params") as usize).min(nodes),
            },
            ha_sync_automatic: config.str("ha-sync-mode") == "automatic",
            promote_on_failure: promote("ha-promote-on-failure"),
            promote_on_shutdown: promote("ha-promote-on-shutdown"),
            delivery_limit: (limit > 0).then_some(limit),
            dead_letter: config.str("dead-letter-exchange") != "none",
            exchange: exchange(
                config.str("exchange.type"),
                config.str("alternate-exchange") != "none",
            ),
            mandatory: config.bool("mandatory"),
            persistent: config.str("delivery_mode") == "2",
            confirms: config.bool("publisher.confirms"),
            retry: config.bool("publisher.retry"),
            confirm_timeout: Duration::from_millis(config.int("publisher.confirm_timeout")),
            auto_ack: config.bool("auto_ack"),
            prefetch: config.int("prefetch") as u32,
            nack: match config.str("consumer.nack") {
                "requeue" => NackMode::Requeue,
                "discard" => NackMode::Discard,
                _ => NackMode::Never,
            },
            heartbeat: secs(config, "heartbeat"),
            workload,
        }
    }

    /// Nodes are ids `0..nodes` (named n1, n2, …), then producers, then consumers.
    pub fn node_ids(&self) -> Vec<Id> {
        (0..self.nodes).map(Id::from).collect()
    }

    /// Where the message with sequence number `seq` goes.
    pub fn route(&self, seq: u32) -> Routed {
        self.exchange.route(routing_key(seq), &headers(seq))
    }

    /// The replicas a mirrored queue starts with: `n1` leads, the next nodes mirror it.
    pub fn initial_mirrors(&self) -> Vec<Id> {
        let replicas = match self.queue_type {
            QueueType::Mirrored => self.ha_replicas,
            _ => 1,
        };
        (1..replicas).map(Id::from).collect()
    }

    fn majority(&self) -> usize {
        self.nodes / 2 + 1
    }
}

/// Every actor of a RabbitMQ deployment, as one type for the drivers.
#[derive(Clone, Debug)]
pub enum RabbitActor {
    Node(RabbitNode),
    Publisher(Publisher),
    Consumer(Consumer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RabbitState {
    Node(Box<NodeState>),
    Publisher(PublisherState),
    Consumer(ConsumerState),
}

/// What survives a restart: a node's Raft log and message store, a client application's record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RabbitDisk {
    Node(NodeDisk),
    App(AppLog),
}

impl Durable for RabbitDisk {
    fn after_power_loss(&self) -> Self {
        match self {
            RabbitDisk::Node(d) => RabbitDisk::Node(d.after_power_loss()),
            RabbitDisk::App(log) => RabbitDisk::App(log.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RabbitTimer {
    // Node.
    /// Send the distribution tick to every peer.
    Tick,
    /// `net_ticktime` passed without a word from this peer.
    PeerSilent(Id),
    /// Send AMQP heartbeats to the connected clients.
    ClientHeartbeat,
    /// A client missed its heartbeats.
    ClientSilent(Id),
    /// Ra: a follower heard no leader, or a candidate no majority.
    Election,
    /// Ra: the leader's append_entries round.
    RaftHeartbeat,
    /// The message store's batched fsync.
    Fsync,
    // Clients.
    /// Dial a node.
    Connect,
    /// Send an AMQP heartbeat to the node.
    Heartbeat,
    /// The node missed its heartbeats.
    ServerSilent,
    /// The publishing application's next send.
    Send,
    /// `publisher.confirm_timeout` for the message with this sequence number.
    ConfirmTimeout(u32),
    /// The consuming application finished handling a message.
    Process,
    /// A consumer's late start (`--consumer-delay-ms`).
    Start,
}

/// What the clients' applications draw per run: the publisher's pace (milliseconds between two
/// sends) and the consumer's handling time per message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RabbitRandom {
    Pace(u64),
    Processing(u64),
}

pub type RabbitOut = Out<RabbitActor>;

impl Actor for RabbitActor {
    type Msg = RabbitMsg;
    type Timer = RabbitTimer;
    type State = RabbitState;
    type Storage = RabbitDisk;
    type Random = RabbitRandom;

    fn on_start(&self, id: Id, storage: &Option<RabbitDisk>, o: &mut RabbitOut) -> RabbitState {
        match self {
            RabbitActor::Node(n) => {
                let disk = match storage {
                    Some(RabbitDisk::Node(d)) => Some(d.clone()),
                    _ => None,
                };
                RabbitState::Node(Box::new(n.start(id, disk, o)))
            }
            RabbitActor::Publisher(p) => RabbitState::Publisher(p.start(app_log(storage), o)),
            RabbitActor::Consumer(c) => RabbitState::Consumer(c.start(app_log(storage), o)),
        }
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<RabbitState>,
        src: Id,
        msg: RabbitMsg,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut()) {
            (RabbitActor::Node(n), RabbitState::Node(s)) => n.on_msg(id, s, src, msg, o),
            (RabbitActor::Publisher(p), RabbitState::Publisher(s)) => p.on_msg(s, src, msg, o),
            (RabbitActor::Consumer(c), RabbitState::Consumer(s)) => c.on_msg(s, src, msg, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_timeout(
        &self,
        id: Id,
        state: &mut Cow<RabbitState>,
        timer: &RabbitTimer,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut()) {
            (RabbitActor::Node(n), RabbitState::Node(s)) => n.on_timeout(id, s, timer, o),
            (RabbitActor::Publisher(p), RabbitState::Publisher(s)) => p.on_timeout(s, timer, o),
            (RabbitActor::Consumer(c), RabbitState::Consumer(s)) => c.on_timeout(s, timer, o),
            _ => unreachable!("actor and state kinds always match"),
        }
    }

    fn on_random(
        &self,
        _id: Id,
        state: &mut Cow<RabbitState>,
        random: &RabbitRandom,
        o: &mut RabbitOut,
    ) {
        match (self, state.to_mut(), random) {
            (RabbitActor::Publisher(p), RabbitState::Publisher(s), RabbitRandom::Pace(ms)) => {
                p.on_pace(s, *ms, o)
            }
            (RabbitActor::Consumer(_), RabbitState::Consumer(s), RabbitRandom::Processing(ms)) => {
                s.processing_time = Duration::from_millis(*ms);
            }
            _ => {}
        }
    }
}

fn app_log(storage: &Option<RabbitDisk>) -> AppLog {
    match storage {
        Some(RabbitDisk::App(log)) => log.clone(),
        _ => AppLog::default(),
    }
}

/// A RabbitMQ cluster with its publishers and the consumers of its queue.
#[derive(Clone, Debug)]
pub struct RabbitMq {
    pub settings: Settings,
}

impl System for RabbitMq {
    type Actor = RabbitActor;
    type Storage = RabbitDisk;
    const NAME: &'static str = NAME;

    fn summary() -> &'static str {
        "RabbitMQ: classic, mirrored (HA) and quorum (Raft) queues, partition handling, exchanges, publisher confirms, consumer acks and redelivery"
    }

    fn scenarios() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "defaults",
                sets: &[],
                claim: "RabbitMQ out of the box: a durable classic queue, persistent messages, confirms, manual acks",
            },
            Scenario {
                name: "auto_ack",
                sets: &["queue.type=quorum", "auto_ack=true"],
                claim: "automatic acknowledgement: a message counts as delivered when sent",
            },
            Scenario {
                name: "transient messages",
                sets: &["delivery_mode=1"],
                claim: "the article: RabbitMQ keeps messages in memory or on disk",
            },
            Scenario {
                name: "publisher retry",
                sets: &["queue.type=quorum", "publisher.retry=true"],
                claim: "republishing when a confirm is late: at-least-once at the price of duplicates",
            },
            Scenario {
                name: "mirrored, pause_minority (Jepsen 2014)",
                sets: &["queue.type=mirrored", "nodes=5", "ha-mode=all", "ha-sync-mode=automatic", "cluster_partition_handling=pause_minority", "net_ticktime=15"],
                claim: "the article: mirrored queues, a master and slaves, the oldest slave promoted",
            },
            Scenario {
                name: "mirrored, ignore",
                sets: &["queue.type=mirrored", "ha-mode=exactly", "ha-params=2", "net_ticktime=15"],
                claim: "mirrored queues with the default partition handling",
            },
            Scenario {
                name: "mirrored, autoheal",
                sets: &["queue.type=mirrored", "ha-mode=exactly", "ha-params=2", "cluster_partition_handling=autoheal", "net_ticktime=15"],
                claim: "autoheal: the losing side restarts",
            },
            Scenario {
                name: "quorum, safe",
                sets: &["queue.type=quorum", "publisher.confirms=true", "publisher.retry=true", "auto_ack=false", "delivery_mode=2"],
                claim: "the article: RabbitMQ is at-least-once (quorum queue, confirms, retry, manual acks)",
            },
            Scenario {
                name: "quorum, delivery-limit",
                sets: &["queue.type=quorum", "consumer.nack=requeue", "delivery-limit=1"],
                claim: "poison-message handling drops what exceeds the delivery limit",
            },
        ]
    }

    fn keys() -> Vec<Key> {
        let int = |min, max| Int { min, max };
        vec![
            Key::new("nodes", "3", int(1, 7), "nodes in the cluster"),
            Key::new(
                "cluster_partition_handling",
                "ignore",
                OneOf(&["ignore", "pause_minority", "autoheal"]),
                "what nodes do about a network partition",
            ),
            Key::new(
                "net_ticktime",
                "60",
                int(1, 600),
                "seconds without a word before a peer node is considered down",
            ),
            Key::new(
                "queue.type",
                "classic",
                OneOf(&["classic", "mirrored", "quorum"]),
                "x-queue-type (mirrored: a classic queue under an ha-mode policy)",
            ),
            Key::new(
                "durable",
                "true",
                Bool,
                "the queue survives a node restart (with its persistent messages)",
            ),
            Key::new(
                "ha-mode",
                "exactly",
                OneOf(&["exactly", "all"]),
                "mirroring policy: exactly ha-params replicas, or all nodes",
            ),
            Key::new(
                "ha-params",
                "2",
                int(1, 7),
                "replicas of a mirrored queue with ha-mode=exactly, leader included",
            ),
            Key::new(
                "ha-sync-mode",
                "manual",
                OneOf(&["manual", "automatic"]),
                "whether a new mirror receives the existing messages",
            ),
            Key::new(
                "ha-promote-on-failure",
                "always",
                OneOf(&["always", "when-synced"]),
                "which mirror may take over from a failed leader",
            ),
            Key::new(
                "ha-promote-on-shutdown",
                "when-synced",
                OneOf(&["when-synced", "always"]),
                "which mirror may take over from a leader that stops deliberately",
            ),
            Key::new(
                "delivery-limit",
                "20",
                int(0, 1000),
                "quorum queues: returns with requeue before a message is dead-lettered or dropped (0: no limit)",
            ),
            Key::new(
                "dead-letter-exchange",
                "none",
                OneOf(&["none", "dlx"]),
                "where rejected and over-limit messages go",
            ),
            Key::new(
                "exchange.type",
                "direct",
                OneOf(&["direct", "topic", "fanout", "headers"]),
                "the exchange the publisher publishes to",
            ),
            Key::new(
                "alternate-exchange",
                "none",
                OneOf(&["none", "ae"]),
                "a fanout exchange, bound to the queue, for messages no binding matches",
            ),
            Key::new(
                "mandatory",
                "false",
                Bool,
                "return unroutable messages to the publisher (basic.return)",
            ),
            Key::new(
                "delivery_mode",
                "2",
                OneOf(&["1", "2"]),
                "1 transient, 2 persistent",
            ),
            Key::new(
                "publisher.confirms",
                "true",
                Bool,
                "confirm.select: the broker acknowledges each publish",
            ),
            Key::new(
                "publisher.retry",
                "false",
                Bool,
                "republish a message whose confirm did not arrive in time",
            ),
            Key::new(
                "publisher.confirm_timeout",
                "5000",
                int(1, 600_000),
                "milliseconds the publisher waits for a confirm",
            ),
            Key::new(
                "auto_ack",
                "false",
                Bool,
                "no-ack consumers: a message is acknowledged as it is sent",
            ),
            Key::new(
                "prefetch",
                "0",
                int(0, 65_535),
                "basic.qos: unacknowledged deliveries per consumer (0: unlimited)",
            ),
            Key::new(
                "consumer.nack",
                "never",
                OneOf(&["never", "requeue", "discard"]),
                "the application rejects the first delivery of every tenth message: with requeue, or without",
            ),
            Key::new(
                "heartbeat",
                "60",
                int(1, 600),
                "AMQP heartbeat timeout in seconds",
            ),
        ]
    }

    fn validate(config: &Config) -> Result<(), ConfigError> {
        let queue_type = config.str("queue.type");
        for key in [
            "ha-mode",
            "ha-params",
            "ha-sync-mode",
            "ha-promote-on-failure",
            "ha-promote-on-shutdown",
        ] {
            if config.is_set(key) && queue_type != "mirrored" {
                return Err(ConfigError::new(
                    key,
                    format!("{key} is a classic mirrored queue policy key; queue.type={queue_type} has no mirrors (allowed with queue.type=mirrored)"),
                ));
            }
        }
        if config.is_set("ha-params") && config.str("ha-mode") == "all" {
            return Err(ConfigError::new(
                "ha-params",
                "ha-params is not allowed with ha-mode=all (allowed with ha-mode=exactly)",
            ));
        }
        if queue_type == "quorum" && !config.bool("durable") {
            return Err(ConfigError::new(
                "durable",
                "quorum queues are always durable: durable=false is refused (allowed with queue.type=quorum: true)",
            ));
        }
        if config.is_set("delivery-limit") && queue_type != "quorum" {
            return Err(ConfigError::new(
                "delivery-limit",
                format!("delivery-limit is a quorum queue argument; queue.type={queue_type} does not count deliveries (allowed with queue.type=quorum)"),
            ));
        }
        if config.bool("publisher.retry") && !config.bool("publisher.confirms") {
            return Err(ConfigError::new(
                "publisher.retry",
                "publisher.retry=true republishes when a confirm is missing, so it needs publisher.confirms=true",
            ));
        }
        if config.is_set("consumer.nack")
            && config.str("consumer.nack") != "never"
            && config.bool("auto_ack")
        {
            return Err(ConfigError::new(
                "consumer.nack",
                "consumer.nack needs manual acknowledgements: an auto_ack=true consumer cannot reject (allowed with auto_ack=true: never)",
            ));
        }
        Ok(())
    }

    fn build(config: &Config, workload: Workload) -> Self {
        RabbitMq {
            settings: Settings::from_config(config, workload),
        }
    }

    fn nodes(&self) -> Vec<Node<RabbitActor>> {
        let s = &self.settings;
        let mut nodes = Vec::new();
        for n in 0..s.nodes {
            nodes.push(Node {
                name: format!("n{}", n + 1),
                role: Role::Server,
                actor: RabbitActor::Node(RabbitNode {
                    settings: s.clone(),
                }),
            });
        }
        for p in 0..s.workload.producers {
            nodes.push(Node {
                name: format!("p{p}"),
                role: Role::Producer,
                actor: RabbitActor::Publisher(Publisher {
                    settings: s.clone(),
                    index: p,
                }),
            });
        }
        for c in 0..s.workload.consumers {
            nodes.push(Node {
                name: format!("c{c}"),
                role: Role::Consumer,
                actor: RabbitActor::Consumer(Consumer {
                    settings: s.clone(),
                    index: c,
                }),
            });
        }
        nodes
    }

    fn app_log(storage: &RabbitDisk) -> Option<&AppLog> {
        match storage {
            RabbitDisk::App(log) => Some(log),
            RabbitDisk::Node(_) => None,
        }
    }

    fn elects_leaders(&self) -> bool {
        // A classic queue lives on one node; mirrored and quorum queues promote or elect.
        self.settings.queue_type != QueueType::Classic
    }

    fn is_leader(state: &RabbitState) -> bool {
        match state {
            RabbitState::Node(n) => n.leads(),
            _ => false,
        }
    }

    fn show(state: &RabbitState) -> String {
        show(state)
    }

    fn reset(_peer: Id) -> Option<RabbitMsg> {
        Some(RabbitMsg::Disconnected)
    }

    fn describe(msg: &RabbitMsg) -> Option<String> {
        match msg {
            RabbitMsg::Tick | RabbitMsg::Heartbeat => None,
            RabbitMsg::AppendEntries { entries, .. } if entries.is_empty() => None,
            RabbitMsg::AppendReply { success: true, .. } => None,
            m => Some(m.to_string()),
        }
    }

    /// Per publishing channel into the queue, to one consumer's channel, first deliveries only:
    /// competing consumers and redeliveries reorder ("Queues", Message Ordering).
    fn ordering() -> OrderingPromise {
        OrderingPromise {
            excludes_redelivered: true,
            per_consumer_session: true,
            ..OrderingPromise::default()
        }
    }

    fn fault_window(&self) -> Duration {
        Duration::from_secs(60)
    }

    fn drain(&self) -> Duration {
        let s = &self.settings;
        // Long enough for a dead peer and a dead connection to be noticed, a leader to be
        // promoted or elected, a late confirm to time out, and the consumers to read the rest.
        (s.net_ticktime + s.heartbeat) * 2 + s.confirm_timeout + Duration::from_secs(60)
    }

    fn workload_time(&self) -> Duration {
        self.settings
            .workload
            .duration(&client::PACES, &client::HANDLING)
    }

    fn sends(&self) -> usize {
        let w = &self.settings.workload;
        w.messages as usize * w.producers as usize
    }
}

/// Node ids as the Explorer numbers them: `[1, 2]`.
fn id_list<'a>(ids: impl IntoIterator<Item = &'a Id>) -> String {
    let ids: Vec<String> = ids
        .into_iter()
        .map(|i| usize::from(*i).to_string())
        .collect();
    format!("[{}]", ids.join(", "))
}

/// `basic.qos`: 0 is no limit.
fn prefetch(n: u32) -> String {
    if n == 0 {
        "prefetch unlimited".to_string()
    } else {
        format!("prefetch {n}")
    }
}

/// A Raft log entry in a few characters: `2:enqueue p0:1`, `2:settle 3` (a settle, return or
/// discard names the index of the enqueue it removes).
fn entry(e: &Entry) -> String {
    let command = match &e.command {
        Command::Noop => "noop".to_string(),
        Command::Enqueue { msg, .. } => format!("enqueue {msg}"),
        Command::Checkout {
            consumer, prefetch, ..
        } => format!("checkout {} prefetch={prefetch}", usize::from(*consumer)),
        Command::Settle { id, .. } => format!("settle {id}"),
        Command::Return { id, .. } => format!("return {id}"),
        Command::Discard { id, .. } => format!("discard {id}"),
        Command::Down { consumer, .. } => format!("down {}", usize::from(*consumer)),
    };
    format!("{}:{command}", e.term)
}

/// A quorum queue member: its Raft role, log and commit index, and the `rabbit_fifo` state it
/// applied: ready messages (`(redelivered)` once handed out before, with the returns counted
/// against `delivery-limit`), each consumer's unsettled messages and prefetch.
fn show_quorum(q: &QuorumState) -> String {
    let role = match &q.role {
        RaftRole::Leader { matched, .. } => {
            let matched: Vec<String> = matched
                .iter()
                .map(|(p, i)| format!("{}:{i}", usize::from(*p)))
                .collect();
            format!("LEADER term {} matched {{{}}}", q.term, matched.join(", "))
        }
        RaftRole::Candidate { votes } => {
            format!("candidate term {} votes {}", q.term, id_list(votes))
        }
        RaftRole::Follower => match q.leader {
            Some(l) => format!("follower term {} (leader {})", q.term, usize::from(l)),
            None => format!("follower term {} (no leader known)", q.term),
        },
    };
    let log: Vec<String> = q.log.iter().map(entry).collect();
    let f = &q.fifo;
    // A ready message goes out redelivered if it was handed out before; a checked-out one
    // went out redelivered if this was not its first delivery.
    let msg = |i: &u64, earlier: u32| {
        f.messages.get(i).map_or(format!("@{i}"), |m| {
            match (m.acquired > earlier, m.delivery_count) {
                (false, _) => m.msg.to_string(),
                (true, 0) => format!("{}(redelivered)", m.msg),
                (true, n) => format!("{}(redelivered, returned {n})", m.msg),
            }
        })
    };
    let ready: Vec<String> = f.ready.iter().map(|i| msg(i, 0)).collect();
    let consumers: Vec<String> = f
        .consumers
        .iter()
        .map(|(c, con)| {
            let unacked: Vec<String> = con.checked_out.iter().map(|i| msg(i, 1)).collect();
            let mode = if con.auto_ack {
                "auto_ack".to_string()
            } else {
                prefetch(con.prefetch)
            };
            format!(
                "consumer {} ({mode}) unacked [{}]",
                usize::from(*c),
                unacked.join(" ")
            )
        })
        .collect();
    let mut out = format!(
        "quorum {role} log=[{}] commit={} applied={}; ready [{}]",
        log.join(" "),
        q.commit,
        q.applied,
        ready.join(" ")
    );
    for c in consumers {
        out += "; ";
        out += &c;
    }
    out
}

/// A classic queue replica: leader or mirror (synchronised or not), under which queue record;
/// the leader's ready messages, unacknowledged deliveries per consumer and confirms waiting on
/// mirrors or the fsync; a mirror's copy.
fn show_classic(c: &ClassicState, disk: &NodeDisk) -> String {
    let Some(record) = &c.record else {
        return "no queue".to_string();
    };
    let rec = format!(
        "record {}.{} leader {} mirrors {} synchronised {}",
        record.epoch,
        record.version,
        usize::from(record.leader),
        id_list(&record.mirrors),
        id_list(&record.synced)
    );
    let msg = |id: &u64| {
        c.messages
            .get(id)
            .map_or(format!("@{id}"), |m| m.msg.to_string())
    };
    // A ready message delivered before goes out flagged redelivered (an unacknowledged one
    // may or may not have been: the queue only records that it was delivered).
    let ready_msg = |id: &u64| match c.messages.get(id) {
        Some(m) if m.delivered => format!("{}(redelivered)", m.msg),
        _ => msg(id),
    };
    let store = format!(
        "store {} written, {} fsynced{}",
        disk.store.len(),
        disk.fsynced.len(),
        if c.dirty { ", fsync due" } else { "" }
    );
    if c.leader {
        let ready: Vec<String> = c.ready.iter().map(ready_msg).collect();
        let mut out = format!("queue LEADER ({rec}); ready [{}]", ready.join(" "));
        for (consumer, con) in &c.consumers {
            let unacked: Vec<String> = c
                .unacked
                .iter()
                .filter(|(_, by)| *by == consumer)
                .map(|(id, _)| msg(id))
                .collect();
            let mode = if con.auto_ack {
                "auto_ack".to_string()
            } else {
                prefetch(con.prefetch)
            };
            out += &format!(
                "; consumer {} ({mode}) unacked [{}]",
                usize::from(*consumer),
                unacked.join(" ")
            );
        }
        // Unacknowledged by a consumer that has gone (requeued when it is noticed).
        let orphans: Vec<String> = c
            .unacked
            .iter()
            .filter(|(_, by)| !c.consumers.contains_key(by))
            .map(|(id, by)| format!("{} by {}", msg(id), usize::from(*by)))
            .collect();
        if !orphans.is_empty() {
            out += &format!("; unacked by departed consumers [{}]", orphans.join(", "));
        }
        if !c.pending.is_empty() {
            let pending: Vec<String> = c
                .pending
                .iter()
                .map(|(id, p)| {
                    let mut waits = Vec::new();
                    if !p.waiting.is_empty() {
                        waits.push(format!("mirrors {}", id_list(&p.waiting)));
                    }
                    if p.fsync {
                        waits.push("fsync".to_string());
                    }
                    format!("{} waits for {}", msg(id), waits.join(" + "))
                })
                .collect();
            out += &format!("; unconfirmed: {}", pending.join(", "));
        }
        if !c.joined_at.is_empty() {
            let joined: Vec<String> = c
                .joined_at
                .iter()
                .map(|(m, at)| format!("{} from @{at}", usize::from(*m)))
                .collect();
            out += &format!("; unsynchronised mirrors {}", joined.join(", "));
        }
        format!("{out}; {store}")
    } else if c.mirror {
        let held: Vec<String> = c.messages.keys().map(msg).collect();
        format!(
            "queue mirror of {} ({}) ({rec}); holds [{}]",
            usize::from(record.leader),
            if c.in_sync {
                "synchronised"
            } else {
                "unsynchronised"
            },
            held.join(" ")
        )
    } else {
        format!("no replica ({rec})")
    }
}

/// A client's AMQP connection: `connection to 0 open (channel 2)`, or the node it is dialling.
fn show_connection(c: &client::Connection) -> String {
    if c.open {
        format!(
            "connection to {} open (channel {})",
            usize::from(c.node),
            c.channel
        )
    } else {
        format!(
            "dialling {} (channel {} closed)",
            usize::from(c.node),
            c.channel
        )
    }
}

/// A node's state in a few words, for the Stateright Explorer: its view of the cluster (peers
/// down, partitioned, paused), its clients, and its replica of the queue; a publisher's
/// unconfirmed messages; a consumer's unacknowledged deliveries.
fn show(state: &RabbitState) -> String {
    match state {
        RabbitState::Node(n) => {
            let mut view = Vec::new();
            if n.paused {
                view.push("PAUSED (minority)".to_string());
            }
            view.push(if n.down.is_empty() {
                "all peers up".to_string()
            } else {
                format!("peers down {}", id_list(&n.down))
            });
            if !n.partitioned.is_empty() {
                view.push(format!("partitioned from {}", id_list(&n.partitioned)));
            }
            view.push(format!("clients {}", id_list(n.clients.iter())));
            // A quorum queue node has no classic queue record, and the other way round.
            let queue = if n.classic.record.is_some() {
                show_classic(&n.classic, &n.disk)
            } else {
                show_quorum(&n.quorum)
            };
            format!("node: {}; {queue}", view.join(", "))
        }
        RabbitState::Publisher(p) => {
            // The producer's index, from the application's own record of its sends.
            let producer = p.app.iter().find_map(|op| match op {
                Op::Send { msg, .. } => Some(msg.producer),
                _ => None,
            });
            let m = |seq: u32| match producer {
                Some(producer) => MsgId { producer, seq }.to_string(),
                None => format!("#{seq}"),
            };
            let unconfirmed: Vec<String> = p
                .unconfirmed
                .iter()
                .map(|(seq, msg)| format!("{}@{seq}", m(*msg)))
                .collect();
            let outstanding: Vec<String> = p.outstanding.iter().map(|x| m(*x)).collect();
            let mut out = format!(
                "publisher: {}, next message {}; unconfirmed on this channel [{}]; awaiting confirm [{}]",
                show_connection(&p.conn),
                p.next,
                unconfirmed.join(" "),
                outstanding.join(" ")
            );
            if !p.republish.is_empty() {
                let again: Vec<String> = p.republish.iter().map(|x| m(*x)).collect();
                out += &format!("; to republish [{}]", again.join(" "));
            }
            format!("{out}; {} observations", p.app.len())
        }
        RabbitState::Consumer(c) => {
            let delivery = |d: &client::Delivery| {
                if d.redelivered {
                    format!("{}(redelivered)", d.msg)
                } else {
                    d.msg.to_string()
                }
            };
            let buffered: Vec<String> = c.buffer.iter().map(delivery).collect();
            let handling = match &c.handling {
                Some((d, true)) => format!("handling {} (will fail)", delivery(d)),
                Some((d, false)) => format!("handling {}", delivery(d)),
                None => "idle".to_string(),
            };
            format!(
                "consumer: {}; {handling}; buffered [{}]; {} deliveries on this channel; {} observations",
                show_connection(&c.conn),
                buffered.join(" "),
                c.held.len(),
                c.app.len()
            )
        }
    }
}
