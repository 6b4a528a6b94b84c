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
mod system;
mod timers;

pub use app_log::AppLog;
pub use config::{Config, ConfigError, Key};
pub use disk::Durable;
pub use system::{Node, NodeView, Role, Scenario, StateInvariant, System, SystemView, Workload};

/// Work that needs a broker's concrete [`System`] type: the one place that maps a `--broker`
/// name to a model.
pub trait Job {
    type Output;
    fn run<S: System>(self) -> Self::Output;
}

/// Declares each broker's module and derives [`BROKERS`] and [`dispatch`] from the one list.
macro_rules! brokers {
    ($($module:ident::$system:ident),+ $(,)?) => {
        $(pub mod $module;)+

        /// The broker models this build knows, by the name `--broker` takes.
        pub const BROKERS: &[&str] = &[$($module::NAME),+];

        /// Runs `job` with the broker model named `broker`.
        pub fn dispatch<J: Job>(broker: &str, job: J) -> Result<J::Output, ConfigError> {
            match broker {
                $($module::NAME => Ok(job.run::<$module::$system>()),)+
                _ => Err(ConfigError::new(
                    "broker",
                    format!(
                        "unknown broker '{broker}' (allowed: {})",
                        BROKERS.join(", ")
                    ),
                )),
            }
        }
    };
}

brokers! {
    kafka::Kafka,
    rabbitmq::RabbitMq,
    zeromq::ZeroMq,
}
