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
//! client's observations back out of its durable storage. Adding one takes:
//!
//! - **a module** `src/<broker>/`: `mod.rs` with the mechanism as its doc comment, the actor
//!   enums dispatching to one file per node kind, and the `impl System`, whose `keys`,
//!   `validate`, `effective`, `describe` and `show` are one-line delegations; `config.rs` with
//!   the keys, the combinations the broker refuses, the typed `Settings` and their parsing;
//!   `view.rs` with a message's trace line and a node's Explorer view. Storage is a
//!   [`Disk`]`<ServerDisk>` (a server's own storage, or a client's [`AppLog`]), so only the
//!   server's part says what survives a power loss;
//! - **one registration line** in the `brokers!` list below, from which the module, [`BROKERS`]
//!   and [`dispatch`] follow;
//! - **tests**: `brokers/tests/<broker>_actors.rs` for the mechanisms one step at a time (with the
//!   shared `harness`), `tests/scenarios/<broker>.rs` for fault scenarios;
//! - **a doc page** `docs/<broker>.md`, linked from the README.

pub mod app_log;
pub mod config;
pub mod disk;
mod system;
mod timers;

pub use app_log::{AppLog, Outbox};
pub use config::{Config, ConfigError, Key};
pub use disk::{Disk, Durable};
pub(crate) use system::pairs;
pub use system::{
    Names, Node, NodeView, Role, Scenario, StateInvariant, System, SystemView, Workload,
};

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
    rocketmq::RocketMq,
    zeromq::ZeroMq,
    activemq::ActiveMq,
}
