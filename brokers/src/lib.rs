//! Executable models of message brokers and their clients.
//!
//! Every broker node, producer and consumer is a sans-IO [`stateright::actor::Actor`]: it reacts
//! to messages, timers and random choices by updating its state and emitting commands (`send`,
//! `set_timer`, `save`, `choose_random`). No model knows which driver runs it: the madsim
//! simulator in `mqcheck-sim` and the stateright model checker in `mqcheck-models` drive the same
//! actors.
//!
//! A broker plugs in by implementing [`System`]: its configuration keys (with the broker's own
//! names, defaults and validation), the actors of one cluster plus its clients, and how to read a
//! client's observations back out of its durable storage.

pub mod app_log;
pub mod config;
pub mod disk;
pub mod kafka;
pub mod rabbitmq;
mod system;
mod timers;
pub mod zeromq;

pub use app_log::AppLog;
pub use config::{Config, ConfigError, Key};
pub use disk::Durable;
pub use system::{Node, NodeView, Role, Scenario, StateInvariant, System, SystemView, Workload};

/// The broker models this build knows, by the name `--broker` takes.
pub const BROKERS: &[&str] = &[kafka::NAME, rabbitmq::NAME, zeromq::NAME];

/// Work that needs a broker's concrete [`System`] type: the one place that maps a `--broker`
/// name to a model.
pub trait Job {
    type Output;
    fn run<S: System>(self) -> Self::Output;
}

/// Runs `job` with the broker model named `broker`.
pub fn dispatch<J: Job>(broker: &str, job: J) -> Result<J::Output, ConfigError> {
    match broker {
        kafka::NAME => Ok(job.run::<kafka::Kafka>()),
        rabbitmq::NAME => Ok(job.run::<rabbitmq::RabbitMq>()),
        zeromq::NAME => Ok(job.run::<zeromq::ZeroMq>()),
        _ => Err(ConfigError::new(
            "broker",
            format!(
                "unknown broker '{broker}' (allowed: {})",
                BROKERS.join(", ")
            ),
        )),
    }
}
