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
    /// Invariants to check: a comma list of at-least-once, at-most-once, ordering.
    #[arg(long, default_value = "at-least-once,at-most-once,ordering")]
    pub check: String,
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
        let workload = Workload {
            messages: range("messages", self.messages, 1, 10_000)?,
            producers: range("producers", self.producers, 1, 8)?,
            consumers: range("consumers", self.consumers, 0, 8)?,
        };
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
