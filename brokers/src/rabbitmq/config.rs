//! RabbitMQ's configuration: its keys (server settings, queue arguments and policies, client
//! options) with their defaults and allowed values, the combinations RabbitMQ refuses, and the
//! typed [`Settings`].

use super::quorum::DeliveryCountRule;
use super::routing::{Binding, Exchange, ExchangeType, XMatch};
use super::stream::OffsetSpec;
use crate::config::Allowed::{Bool, Int, OneOf, Signed};
use crate::{Config, ConfigError, Key, Workload};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueType {
    Classic,
    Mirrored,
    Quorum,
    /// A stream (3.9 on): an osiris log replicated on every node (`stream.rs`).
    Stream,
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

/// `version`: which RabbitMQ the model is. 3.3 is mirroring as Jepsen tested it (before
/// `pause_minority_guard`, 3.3.5); 3.13 the last with mirroring and Mnesia's partition handling;
/// 4.2 and 4.3 have no mirroring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_13,
    V4_2,
    V4_3,
}

impl Version {
    /// `rabbit_node_monitor:pause_minority_guard/0` (3.3.5, commit 5d339c4): a channel sends no
    /// confirm while its node sees a minority under `pause_minority`.
    pub fn pause_minority_guard(self) -> bool {
        self != Version::V3_3
    }
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
    pub version: Version,
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
    /// `publisher.tx=true`: the publisher's channel is transactional (`tx.select`), commits
    /// every [`super::client::TX_SIZE`] messages and rolls back every third transaction.
    pub tx: bool,
    pub retry: bool,
    pub confirm_timeout: Duration,
    pub auto_ack: bool,
    pub prefetch: u32,
    pub nack: NackMode,
    pub heartbeat: Duration,
    // Quorum queue and client features (`quorum.rs`, `client.rs`).
    /// Which returns a quorum queue counts towards `delivery-limit`.
    pub delivery_count: DeliveryCountRule,
    /// `consumer.nack.method=basic.reject`: the application rejects with `basic.reject`,
    /// otherwise with `basic.nack`.
    pub reject: bool,
    /// `x-max-length` with `x-overflow=reject-publish`: the most ready messages the queue holds
    /// before it rejects publishes with `basic.nack`.
    pub max_length: Option<u32>,
    /// `x-single-active-consumer`: the queue delivers to one of its consumers at a time, the
    /// others waiting in the order they attached (`rabbit_fifo`'s `waiting_consumers`, the
    /// classic queue's `active_consumer`).
    pub single_active: bool,
    /// `x-stream-offset`: where a stream consumer that has handled nothing yet attaches.
    pub stream_offset: OffsetSpec,
    pub workload: Workload,
}

fn seconds_key(config: &Config, key: &str) -> Duration {
    Duration::from_secs(config.int(key))
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
        let version = match config.str("version") {
            "3.3" => Version::V3_3,
            "3.13" => Version::V3_13,
            "4.2" => Version::V4_2,
            _ => Version::V4_3,
        };
        // 3.x has no default delivery-limit (4.0 made it 20); a negative limit is none
        // (`rabbit_fifo:init/1`: `DL < 0 -> undefined`). 3.3 promotes the oldest live mirror
        // whatever its synchronisation (the ha-promote-on-* keys came in 3.4 and 3.7).
        let limit = match version {
            Version::V3_3 | Version::V3_13 if !config.is_set("delivery-limit") => None,
            _ => u32::try_from(config.signed("delivery-limit")).ok(),
        };
        let promote = |key: &str| match config.str(key) {
            "when-synced" if version != Version::V3_3 => Promote::WhenSynced,
            _ => Promote::Always,
        };
        Settings {
            version,
            nodes,
            partition_handling: match config.str("cluster_partition_handling") {
                "pause_minority" => PartitionHandling::PauseMinority,
                "autoheal" => PartitionHandling::Autoheal,
                _ => PartitionHandling::Ignore,
            },
            net_ticktime: seconds_key(config, "net_ticktime"),
            queue_type: match config.str("queue.type") {
                "mirrored" => QueueType::Mirrored,
                "quorum" => QueueType::Quorum,
                "stream" => QueueType::Stream,
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
            delivery_limit: limit,
            dead_letter: config.str("dead-letter-exchange") != "none",
            exchange: exchange(
                config.str("exchange.type"),
                config.str("alternate-exchange") != "none",
            ),
            mandatory: config.bool("mandatory"),
            persistent: config.str("delivery_mode") == "2",
            // A transactional channel has no confirm mode: `publisher.tx=true` turns the default
            // `publisher.confirms=true` off (setting both is refused in `validate`).
            confirms: config.bool("publisher.confirms") && !config.bool("publisher.tx"),
            tx: config.bool("publisher.tx"),
            retry: config.bool("publisher.retry"),
            confirm_timeout: Duration::from_millis(config.int("publisher.confirm_timeout")),
            auto_ack: config.bool("auto_ack"),
            prefetch: config.int("prefetch") as u32,
            nack: match config.str("consumer.nack") {
                "requeue" => NackMode::Requeue,
                "discard" => NackMode::Discard,
                _ => NackMode::Never,
            },
            heartbeat: seconds_key(config, "heartbeat"),
            delivery_count: match version {
                Version::V4_3 => DeliveryCountRule::FailedDeliveries,
                _ => DeliveryCountRule::EveryReturn,
            },
            reject: config.str("consumer.nack.method") == "basic.reject",
            max_length: u32::try_from(config.signed("x-max-length")).ok(),
            single_active: config.bool("x-single-active-consumer"),
            stream_offset: match config.str("x-stream-offset") {
                "first" => OffsetSpec::First,
                "last" => OffsetSpec::Last,
                _ => OffsetSpec::Next,
            },
            workload,
        }
    }
}

/// The configuration keys, with RabbitMQ's names, defaults and allowed values.
pub(super) fn keys() -> Vec<Key> {
    let int = |min, max| Int { min, max };
    vec![
        Key::new(
            "version",
            "4.3",
            OneOf(&["3.3", "3.13", "4.2", "4.3"]),
            "RabbitMQ release: 3.3 (mirroring as Jepsen tested it), 3.13 (mirroring, Mnesia), 4.2, 4.3 (no mirroring)",
        ),
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
            OneOf(&["classic", "mirrored", "quorum", "stream"]),
            "x-queue-type (mirrored: a classic queue under an ha-mode policy; stream: 3.9 on, consumers need prefetch > 0 and manual acks)",
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
            Signed { min: -1, max: 1000 },
            "quorum queues: counted returns before a message is dead-lettered or dropped (-1: no limit)",
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
            "publisher.tx",
            "false",
            Bool,
            "tx.select: the publisher's channel is transactional, commits every 4 messages (tx.commit) and rolls back every third transaction (tx.rollback); turns publisher.confirms off",
        ),
        Key::new(
            "publisher.retry",
            "false",
            Bool,
            "republish a message whose confirm did not arrive in time (with publisher.tx: publish again a transaction whose commit-ok did not arrive)",
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
        // Quorum queue and client features.
        Key::new(
            "consumer.nack.method",
            "basic.reject",
            OneOf(&["basic.reject", "basic.nack"]),
            "how the application rejects (4.3 counts basic.reject requeue=true towards delivery-limit, not basic.nack)",
        ),
        Key::new(
            "x-max-length",
            "-1",
            Signed { min: -1, max: 100_000 },
            "queue length limit in ready messages (-1: no limit)",
        ),
        Key::new(
            "x-overflow",
            "drop-head",
            OneOf(&["drop-head", "reject-publish"]),
            "what a queue at x-max-length does: drop its oldest message, or refuse the publish with basic.nack",
        ),
        Key::new(
            "x-single-active-consumer",
            "false",
            Bool,
            "the queue delivers to one consumer at a time; the next one waiting takes over when its channel goes",
        ),
        Key::new(
            "x-stream-offset",
            "next",
            OneOf(&["first", "last", "next"]),
            "streams: where a consumer that has handled nothing attaches (first record, last chunk, or what is written next); one that has resumes after its last record",
        ),
    ]
}

/// Refuses the combinations RabbitMQ refuses, after each key was validated on its own.
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let queue_type = config.str("queue.type");
    versions(config, queue_type)?;
    streams(config, queue_type)?;
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
    if config.is_set("x-overflow") && !config.is_set("x-max-length") {
        return Err(ConfigError::new(
            "x-overflow",
            "x-overflow applies to a queue with a length limit, so it needs x-max-length",
        ));
    }
    if config.signed("x-max-length") >= 0 && config.str("x-overflow") != "reject-publish" {
        return Err(ConfigError::new(
            "x-overflow",
            "x-max-length with x-overflow=drop-head (RabbitMQ's default) is not modelled (allowed with x-max-length: reject-publish)",
        ));
    }
    // `rabbit_channel`: `tx.select` on a channel in confirm mode is refused with
    // PRECONDITION_FAILED "cannot switch from confirm to tx mode" (and `confirm.select` on a
    // transactional one with "cannot switch from tx to confirm mode").
    if config.bool("publisher.tx")
        && config.is_set("publisher.confirms")
        && config.bool("publisher.confirms")
    {
        return Err(ConfigError::new(
            "publisher.tx",
            "publisher.tx=true with publisher.confirms=true: RabbitMQ refuses tx.select on a channel in confirm mode (PRECONDITION_FAILED \"cannot switch from confirm to tx mode\") (allowed with publisher.tx=true: publisher.confirms=false)",
        ));
    }
    if config.bool("publisher.retry")
        && !config.bool("publisher.tx")
        && !config.bool("publisher.confirms")
    {
        return Err(ConfigError::new(
            "publisher.retry",
            "publisher.retry=true republishes when a confirm is missing, so it needs publisher.confirms=true or publisher.tx=true",
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

/// What a stream refuses (`rabbit_stream_queue` at `v4.3.5`, commit 0dde27bfdd, and `v3.13.7`):
/// `consume/3` answers a consumer without a prefetch with PRECONDITION_FAILED "consumer prefetch
/// count is not set for stream" and a no-ack one with NOT_IMPLEMENTED "automatic
/// acknowledgement not supported by stream"; `capabilities/0` lists the only queue arguments a
/// stream takes, so `rabbit_amqqueue:check_arguments_key/4` refuses the others at declaration;
/// streams are always durable. What the model does not model for streams is refused too.
fn streams(config: &Config, queue_type: &str) -> Result<(), ConfigError> {
    if queue_type != "stream" {
        if config.is_set("x-stream-offset") {
            return Err(ConfigError::new(
                "x-stream-offset",
                format!("x-stream-offset is a stream consumer argument; queue.type={queue_type} is not a stream (allowed with queue.type=stream)"),
            ));
        }
        return Ok(());
    }
    if config.int("prefetch") == 0 {
        return Err(ConfigError::new(
            "prefetch",
            "queue.type=stream: RabbitMQ refuses a stream consumer without basic.qos, PRECONDITION_FAILED \"consumer prefetch count is not set for stream\" (allowed: prefetch 1 to 65535)",
        ));
    }
    if config.bool("auto_ack") {
        return Err(ConfigError::new(
            "auto_ack",
            "auto_ack=true with queue.type=stream: RabbitMQ refuses a no-ack stream consumer, NOT_IMPLEMENTED \"automatic acknowledgement not supported by stream\" (allowed with queue.type=stream: false)",
        ));
    }
    if !config.bool("durable") {
        return Err(ConfigError::new(
            "durable",
            "streams are always durable: durable=false is refused (allowed with queue.type=stream: true)",
        ));
    }
    for key in [
        "x-max-length",
        "x-overflow",
        "x-single-active-consumer",
        "dead-letter-exchange",
    ] {
        if config.is_set(key) {
            return Err(ConfigError::new(
                key,
                format!("{key} is not a stream queue argument: RabbitMQ refuses it at declaration (a stream takes x-max-length-bytes, x-max-age, x-stream-max-segment-size-bytes, x-stream-filter-size-bytes, x-initial-cluster-size, x-queue-leader-locator) (allowed with queue.type=classic or quorum)"),
            ));
        }
    }
    if config.bool("publisher.tx") {
        return Err(ConfigError::new(
            "publisher.tx",
            "publisher.tx=true is not modelled for streams (allowed with queue.type=stream: false)",
        ));
    }
    if config.str("consumer.nack") != "never" {
        return Err(ConfigError::new(
            "consumer.nack",
            "consumer.nack is not modelled for streams, where a reject only gives credit back (allowed with queue.type=stream: never)",
        ));
    }
    Ok(())
}

/// What each `version` lacks: 4.0 removed classic queue mirroring (its policy keys are no longer
/// recognised), quorum queues and single active consumer came in 3.8, the `ha-promote-on-*` keys
/// after 3.3.
fn versions(config: &Config, queue_type: &str) -> Result<(), ConfigError> {
    let version = config.str("version");
    let ha_keys = [
        "ha-mode",
        "ha-params",
        "ha-sync-mode",
        "ha-promote-on-failure",
        "ha-promote-on-shutdown",
    ];
    if version.starts_with('4') {
        if let Some(key) = ha_keys.iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} is not a recognised policy key in RabbitMQ {version}: classic queue mirroring was removed in 4.0 (allowed with version=3.3 or 3.13)"),
            ));
        }
        if queue_type == "mirrored" {
            return Err(ConfigError::new(
                "queue.type",
                format!("queue.type=mirrored: classic queue mirroring was removed in RabbitMQ 4.0, version={version} (allowed with version=3.3 or 3.13)"),
            ));
        }
    }
    if version == "3.3" {
        if queue_type == "quorum" {
            return Err(ConfigError::new(
                "queue.type",
                "queue.type=quorum: quorum queues came in RabbitMQ 3.8, version=3.3 has none (allowed with version=3.13, 4.2 or 4.3)",
            ));
        }
        if queue_type == "stream" {
            return Err(ConfigError::new(
                "queue.type",
                "queue.type=stream: streams came in RabbitMQ 3.9, version=3.3 has none (allowed with version=3.13, 4.2 or 4.3)",
            ));
        }
        if config.is_set("x-single-active-consumer") {
            return Err(ConfigError::new(
                "x-single-active-consumer",
                "x-single-active-consumer: single active consumer came in RabbitMQ 3.8, version=3.3 has none (allowed with version=3.13, 4.2 or 4.3)",
            ));
        }
        if let Some(key) = ha_keys[3..].iter().find(|k| config.is_set(k)) {
            return Err(ConfigError::new(
                *key,
                format!("{key} is not in RabbitMQ 3.3, which promotes the oldest live mirror, synchronised or not (allowed with version=3.13)"),
            ));
        }
    }
    Ok(())
}
