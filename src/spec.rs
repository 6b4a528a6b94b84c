//! The options shared by `sim`, `replay` and `matrix`, validated into a [`Spec`].

use clap::Args;
use mqcheck_brokers::{Config, ConfigError, System, Workload};
use mqcheck_invariants::Invariant;
use mqcheck_sim::FaultSet;

/// What to simulate, as the user typed it.
#[derive(Args, Clone, Debug)]
pub struct SimArgs {
    /// Broker model (see `mqcheck list`).
    #[arg(long)]
    pub broker: String,
    /// Set a configuration key, with the broker's own name: `--set acks=1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Faults the nemesis may inject: `tcp` (every fault TCP allows: crash, power, pause,
    /// partition, loss, clock), `all` (adds duplicate and reorder, beyond TCP), `none`, or a
    /// comma list of faults and presets.
    #[arg(long, default_value = "tcp")]
    pub faults: String,
    /// Messages each producer sends.
    #[arg(long, default_value_t = 100)]
    pub messages: u32,
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Invariants to check: a comma list of at-least-once, at-most-once, ordering.
    #[arg(long, default_value = "at-least-once,at-most-once,ordering")]
    pub check: String,
}

/// How the clients pace and handle the workload; without them, each broker's own (drawn per
/// seed).
#[derive(Args, Clone, Debug, Default)]
pub struct WorkloadArgs {
    /// Messages per second each producer sends (default: a pace drawn per seed).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Milliseconds a consumer's application spends on each message (default: drawn per seed).
    #[arg(long)]
    pub handler_ms: Option<u32>,
    /// Consumers start this many milliseconds late, so a backlog builds.
    #[arg(long, default_value_t = 0)]
    pub consumer_delay_ms: u32,
    /// Each message carries one of K keys (Kafka partitions by it).
    #[arg(long, value_name = "K")]
    pub keys: Option<u32>,
    /// Producers crash, lose power, pause and have their clocks skewed too; after a restart
    /// each resends what it sent and never saw acknowledged (an outbox).
    #[arg(long)]
    pub producer_crashes: bool,
}

impl WorkloadArgs {
    /// A workload of this size, paced and handled as the flags say.
    pub fn workload(
        &self,
        messages: u32,
        producers: u32,
        consumers: u32,
    ) -> Result<Workload, ConfigError> {
        let optional = |key: &str, v: Option<u32>, min: u32, max: u32| {
            v.map(|v| range(key, v, min, max)).transpose()
        };
        Ok(Workload {
            rate: optional("rate", self.rate, 1, 1000)?,
            handler_ms: optional("handler-ms", self.handler_ms, 0, 10_000)?,
            consumer_delay_ms: range("consumer-delay-ms", self.consumer_delay_ms, 0, 600_000)?,
            keys: optional("keys", self.keys, 1, 1000)?,
            producer_crashes: self.producer_crashes,
            ..Workload::new(messages, producers, consumers)
        })
    }

    /// The flags that reproduce `w`'s pacing, handling, keys and producer crashes (none for the
    /// defaults).
    pub fn words(w: &Workload) -> Vec<String> {
        let mut words = Vec::new();
        let mut flag = |name: &str, v: Option<u32>| {
            if let Some(v) = v {
                words.push(format!("--{name}"));
                words.push(v.to_string());
            }
        };
        flag("rate", w.rate);
        flag("handler-ms", w.handler_ms);
        flag(
            "consumer-delay-ms",
            (w.consumer_delay_ms > 0).then_some(w.consumer_delay_ms),
        );
        flag("keys", w.keys);
        if w.producer_crashes {
            words.push("--producer-crashes".to_string());
        }
        words
    }
}

/// A validated run specification for broker `S`.
#[derive(Clone, Debug)]
pub struct Spec {
    pub broker: String,
    pub config: Config,
    pub workload: Workload,
    pub faults: FaultSet,
    pub checks: Vec<Invariant>,
}

pub fn bad(key: &str, message: String) -> ConfigError {
    ConfigError::new(key, message)
}

/// Checks a numeric option against its allowed range.
pub fn range(key: &str, v: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(bad(
            key,
            format!("invalid value '{v}' for --{key} (allowed: an integer from {min} to {max})"),
        ))
    }
}

impl SimArgs {
    pub fn validate<S: System>(&self) -> Result<Spec, ConfigError> {
        let config = Config::parse(&self.broker, &S::keys(), &self.sets)?;
        S::validate(&config)?;
        let faults: FaultSet = self.faults.parse().map_err(|e| bad("faults", e))?;
        let mut checks = Vec::new();
        for word in self.check.split(',').map(str::trim) {
            let inv: Invariant = word.parse().map_err(|e| bad("check", e))?;
            if !Invariant::SELECTABLE.contains(&inv) {
                return Err(bad(
                    "check",
                    format!("{word} is always checked (allowed in --check: at-least-once, at-most-once, ordering)"),
                ));
            }
            if !checks.contains(&inv) {
                checks.push(inv);
            }
        }
        let workload = self.workload.workload(
            range("messages", self.messages, 1, 10_000)?,
            range("producers", self.producers, 1, 8)?,
            range("consumers", self.consumers, 0, 8)?,
        )?;
        Ok(Spec {
            broker: self.broker.clone(),
            config,
            workload,
            faults,
            checks,
        })
    }
}

impl Spec {
    /// The command line that reproduces seed `seed` of this spec.
    pub fn replay_command(&self, seed: u64) -> String {
        let mut words = vec![
            "mqcheck".to_string(),
            "replay".into(),
            "--broker".into(),
            self.broker.clone(),
        ];
        for set in self.config.explicit() {
            words.push("--set".into());
            words.push(set);
        }
        words.extend([
            "--faults".into(),
            self.faults.to_string(),
            "--messages".into(),
            self.workload.messages.to_string(),
            "--producers".into(),
            self.workload.producers.to_string(),
            "--consumers".into(),
            self.workload.consumers.to_string(),
        ]);
        words.extend(WorkloadArgs::words(&self.workload));
        words.extend([
            "--check".into(),
            self.checks
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(","),
            "--seed".into(),
            seed.to_string(),
        ]);
        words.join(" ")
    }
}
