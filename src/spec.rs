//! The options every command shares, validated in one place: [`BrokerArgs`] (the broker, its
//! configuration, the faults and the workload) into a [`BrokerSetup`], and `sim`'s and `replay`'s
//! [`SimArgs`] into a [`Spec`].

use clap::Args;
use mqcheck_brokers::config::plain_integer;
use mqcheck_brokers::{dispatch, Config, ConfigError, Job, System, Workload, BROKERS};
use mqcheck_invariants::Invariant;
use mqcheck_sim::{FaultSet, Schedule};
use std::fmt::{Debug, Display};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::str::FromStr;

/// The workload sizes a command starts from and allows: the simulator runs workloads of
/// thousands of messages, the model checker a handful.
pub trait Sizes: Clone + Debug + Send + Sync + 'static {
    /// `--messages`' default, as typed (clap's `default_value_t` keeps one default for every
    /// instance of a generic `Args`).
    const MESSAGES: &'static str;
    const MAX: Most;
    /// May the command take its broker from a schedule file (`--schedule FILE`) instead of
    /// `--broker`?
    const SCHEDULE_FILE: bool;
}

/// The most `--messages`, `--producers` and `--consumers` allow.
#[derive(Clone, Copy, Debug)]
pub struct Most {
    pub messages: u32,
    pub producers: u32,
    pub consumers: u32,
}

impl Most {
    const fn new(messages: u32, producers: u32, consumers: u32) -> Self {
        Most {
            messages,
            producers,
            consumers,
        }
    }
}

/// `sim`, `replay` and `matrix`: 100 messages by default, up to 10 000, 8 producers, 8 consumers.
#[derive(Clone, Debug)]
pub struct Simulated;

impl Sizes for Simulated {
    const MESSAGES: &'static str = "100";
    const MAX: Most = Most::new(10_000, 8, 8);
    const SCHEDULE_FILE: bool = true;
}

/// `check` and `explore`: 2 messages by default, up to 5, 2 producers, 2 consumers.
#[derive(Clone, Debug)]
pub struct Checked;

impl Sizes for Checked {
    const MESSAGES: &'static str = "2";
    const MAX: Most = Most::new(5, 2, 2);
    const SCHEDULE_FILE: bool = false;
}

/// `--faults`' default: every fault TCP allows.
pub const DEFAULT_FAULTS: &str = "tcp";

/// The broker, its configuration, the faults and the workload, as the user typed them; every
/// command flattens it, with its own [`Sizes`].
#[derive(Args, Clone, Debug)]
pub struct BrokerArgs<Z: Sizes> {
    /// Broker model (see `mqcheck list`).
    #[arg(long, required = !Z::SCHEDULE_FILE)]
    pub broker: Option<String>,
    /// Set a configuration key, with the broker's own name: `--set acks=1`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Faults the nemesis may inject: `tcp` (every fault TCP allows: crash, power, pause,
    /// partition, loss, clock), `all` (adds duplicate and reorder, beyond TCP), `none`, or a
    /// comma list of faults and presets.
    #[arg(long, default_value = DEFAULT_FAULTS)]
    pub faults: String,
    /// Messages each producer sends.
    #[arg(long, default_value = Z::MESSAGES, value_parser = int(1, Z::MAX.messages))]
    pub messages: u32,
    #[arg(long, default_value_t = 1, value_parser = int(1, Z::MAX.producers))]
    pub producers: u32,
    #[arg(long, default_value_t = 1, value_parser = int(0, Z::MAX.consumers))]
    pub consumers: u32,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[arg(skip)]
    pub sizes: PhantomData<Z>,
}

/// A validated [`BrokerArgs`].
#[derive(Clone, Debug)]
pub struct BrokerSetup {
    pub broker: String,
    pub config: Config,
    pub faults: FaultSet,
    pub workload: Workload,
}

impl<Z: Sizes> BrokerArgs<Z> {
    /// The options for `broker` with `sets`, every other one at its default.
    pub fn new(broker: &str, sets: Vec<String>, messages: u32, workload: WorkloadArgs) -> Self {
        BrokerArgs {
            broker: Some(broker.to_string()),
            sets,
            faults: DEFAULT_FAULTS.into(),
            messages,
            producers: 1,
            consumers: 1,
            workload,
            sizes: PhantomData,
        }
    }

    /// Checks every option against broker `S` and the command's [`Sizes`].
    pub fn validate<S: System>(&self) -> Result<BrokerSetup, ConfigError> {
        let config = Config::parse(S::NAME, &S::keys(), &self.sets)?;
        S::validate(&config)?;
        if self.workload.rewind.is_some() && S::rewind().is_none() {
            return Err(bad(
                "rewind",
                format!(
                    "--rewind: {} consumers cannot rewind (allowed with --broker {})",
                    S::NAME,
                    rewinding_brokers().join(", ")
                ),
            ));
        }
        if self.workload.rewind.is_some() {
            S::replay_row(&config).map_err(|e| bad("rewind", format!("--rewind: {e}")))?;
        }
        let faults: FaultSet = self.faults.parse().map_err(|e| bad("faults", e))?;
        let workload = self
            .workload
            .workload(self.messages, self.producers, self.consumers);
        Ok(BrokerSetup {
            broker: S::NAME.to_string(),
            config,
            faults,
            workload,
        })
    }
}

impl BrokerSetup {
    /// The flags that reproduce this setup: `--broker kafka --set acks=1 --faults crash …`.
    pub fn words(&self) -> Vec<String> {
        let mut words = vec!["--broker".to_string(), self.broker.clone()];
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
        words
    }
}

/// What to simulate, as the user typed it.
#[derive(Args, Clone, Debug)]
pub struct SimArgs {
    #[command(flatten)]
    pub setup: BrokerArgs<Simulated>,
    /// Invariants to check: a comma list of at-least-once, at-most-once, ordering, atomicity,
    /// replay (with `--rewind`).
    #[arg(long, default_value = Invariant::DEFAULT_CHECKS)]
    pub check: String,
}

/// Answers whether a broker's consumers can rewind.
struct Rewinds;

impl Job for Rewinds {
    type Output = Option<&'static str>;
    fn run<S: System>(self) -> Self::Output {
        S::rewind().map(|_| S::NAME)
    }
}

/// The brokers whose consumers can rewind (`--rewind`, `--check replay`).
pub fn rewinding_brokers() -> Vec<&'static str> {
    BROKERS
        .iter()
        .filter_map(|b| dispatch(b, Rewinds).ok().flatten())
        .collect()
}

/// How the clients pace and handle the workload; without them, each broker's own (drawn per
/// seed).
#[derive(Args, Clone, Debug, Default)]
pub struct WorkloadArgs {
    /// Messages per second each producer sends (default: a pace drawn per seed).
    #[arg(long, value_parser = int(1u32, 1000))]
    pub rate: Option<u32>,
    /// Milliseconds a consumer's application spends on each message (default: drawn per seed).
    #[arg(long, value_parser = int(0u32, 10_000))]
    pub handler_ms: Option<u32>,
    /// Consumers start this many milliseconds late, so a backlog builds.
    #[arg(long, default_value_t = 0, value_parser = int(0u32, 600_000))]
    pub consumer_delay_ms: u32,
    /// Each message carries one of K keys (Kafka partitions by it).
    #[arg(long, value_name = "K", value_parser = int(1u32, 1000))]
    pub keys: Option<u32>,
    /// Producers crash, lose power, pause and have their clocks skewed too; after a restart
    /// each resends what it sent and never saw acknowledged (an outbox).
    #[arg(long)]
    pub producer_crashes: bool,
    /// Consumers replay: each time one has caught up with a partition after reading records it
    /// had not read before, it goes back N records and reads them again (brokers whose consumers
    /// can rewind: kafka, by offset; rocketmq with consumer.listener=orderly, by time, to the
    /// storeTimestamp of the message N back). `--check replay` judges the re-reads.
    #[arg(long, value_name = "N", value_parser = int(1u32, 10_000))]
    pub rewind: Option<u32>,
}

impl WorkloadArgs {
    /// A workload of this size, paced and handled as the flags say.
    pub fn workload(&self, messages: u32, producers: u32, consumers: u32) -> Workload {
        Workload {
            rate: self.rate,
            handler_ms: self.handler_ms,
            consumer_delay_ms: self.consumer_delay_ms,
            keys: self.keys,
            producer_crashes: self.producer_crashes,
            rewind: self.rewind,
            ..Workload::new(messages, producers, consumers)
        }
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
        flag("rewind", w.rewind);
        if w.producer_crashes {
            words.push("--producer-crashes".to_string());
        }
        words
    }
}

/// A validated run specification.
#[derive(Clone, Debug)]
pub struct Spec {
    pub setup: BrokerSetup,
    pub checks: Vec<Invariant>,
    /// The schedule file (`--schedule FILE`) whose one schedule and seed the run replays,
    /// instead of drawing schedules from seeds.
    pub file: Option<(PathBuf, Schedule)>,
}

pub fn bad(key: &str, message: String) -> ConfigError {
    ConfigError::new(key, message)
}

/// A numeric option's parser: the integer written plainly (digits only, no sign, no leading
/// zero, no space) from `min` to `max`. Anything else is bad input that names the range.
pub fn int<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.parse::<T>() {
        Ok(v) if plain_integer(s) && min <= v && v <= max => Ok(v),
        _ => Err(format!("allowed: an integer from {min} to {max}")),
    }
}

impl SimArgs {
    pub fn validate<S: System>(&self) -> Result<Spec, ConfigError> {
        let setup = self.setup.validate::<S>()?;
        let mut checks = Vec::new();
        for word in self.check.split(',').map(str::trim) {
            let inv: Invariant = word.parse().map_err(|e| bad("check", e))?;
            if !Invariant::SELECTABLE.contains(&inv) {
                return Err(bad(
                    "check",
                    format!("{word} is always checked (allowed in --check: at-least-once, at-most-once, ordering, atomicity, replay)"),
                ));
            }
            if inv == Invariant::Replay && S::rewind().is_none() {
                return Err(bad(
                    "check",
                    format!(
                        "replay in --check: {} consumers cannot rewind (allowed with --broker {})",
                        S::NAME,
                        rewinding_brokers().join(", ")
                    ),
                ));
            }
            if inv == Invariant::Replay && setup.workload.rewind.is_none() {
                return Err(bad(
                    "check",
                    "replay in --check judges consumers that rewind: add --rewind N".to_string(),
                ));
            }
            if !checks.contains(&inv) {
                checks.push(inv);
            }
        }
        Ok(Spec {
            setup,
            checks,
            file: None,
        })
    }
}

impl Spec {
    /// `mqcheck VERB` with every flag of this spec, the seeds left out; `mqcheck VERB --schedule
    /// FILE` for a schedule file's.
    pub fn command(&self, verb: &str) -> String {
        if let Some((path, _)) = &self.file {
            return format!("mqcheck {verb} --schedule {}", path.display());
        }
        let mut words = vec!["mqcheck".to_string(), verb.into()];
        words.extend(self.setup.words());
        words.extend([
            "--check".into(),
            self.checks
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(","),
        ]);
        words.join(" ")
    }

    /// The command line that reproduces seed `seed` of this spec.
    pub fn replay_command(&self, seed: u64) -> String {
        if self.file.is_some() {
            return self.command("replay");
        }
        format!("{} --seed {seed}", self.command("replay"))
    }
}
