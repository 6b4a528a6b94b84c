//! `mqcheck`: checks what message brokers really guarantee, with evidence.

mod check;
mod conform;
mod matrix;
mod merge;
mod output;
mod report;
mod simulate;
mod spec;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use mqcheck_brokers::{dispatch, Job, System, BROKERS};
use output::emit;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mqcheck",
    version,
    about = "Deterministic simulation and model checking of message-broker models: which delivery claims hold, under which configuration and faults"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The broker models, with their configuration keys and defaults.
    List,
    /// Simulate seeds under a seeded nemesis and check the invariants.
    Sim(simulate::SimCmd),
    /// Re-run one seed and print its timeline, ending with the violation explained.
    Replay(simulate::ReplayCmd),
    /// The claims matrix: every broker, every named configuration, every invariant.
    Matrix(matrix::MatrixCmd),
    /// Add up the reports of a sweep's shards (`sim --shard I/N --json`) into the sweep's.
    Merge(merge::MergeCmd),
    /// Explore every placement of a bounded set of faults with stateright, and check the
    /// invariants in every state.
    Check(check::CheckCmd),
    /// Serve the Stateright Explorer on a broker model.
    Explore(check::ExploreCmd),
    /// Run the real broker (RabbitMQ, libzmq) under the model's faults, or replay a model fault
    /// schedule on it, and print its verdicts beside the model's.
    Conform(conform::ConformCmd),
}

/// Exit status: 0 everything held, 1 a violation, 2 bad input, 3 inconclusive (nothing
/// acknowledged or delivered, runs cut short, coverage unreached, a limit hit).
pub const HELD: u8 = 0;
pub const VIOLATED: u8 = 1;
pub const BAD_INPUT: u8 = 2;
pub const INCONCLUSIVE: u8 = 3;

fn main() -> ExitCode {
    // The live timeline of every run, on stderr, for whoever asks: MQCHECK_LOG=mqcheck::timeline=debug
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MQCHECK_LOG"))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    // Ctrl-C may fail to install only if something else took SIGINT first: then it just kills.
    let _ = ctrlc::set_handler(output::on_interrupt);
    // A negative number is a value, so `--seeds -1` says which values are allowed.
    let command = Cli::command().mut_subcommands(|s| s.allow_negative_numbers(true));
    let cli = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => return ExitCode::from(parse_error(&e)),
    };
    let code = match cli.command {
        Command::List => {
            for broker in BROKERS {
                dispatch(broker, ListJob).expect("listed brokers dispatch");
            }
            HELD
        }
        Command::Sim(mut cmd) => match cmd.load() {
            Ok(broker) => run_job(&broker, cmd),
            Err(e) => bad_input(&e),
        },
        Command::Replay(mut cmd) => match cmd.load() {
            Ok(broker) => run_job(&broker, cmd),
            Err(e) => bad_input(&e),
        },
        Command::Matrix(cmd) => cmd.run(),
        Command::Merge(cmd) => cmd.run(),
        Command::Check(cmd) => run_job(&cmd.model.setup.broker.clone().unwrap_or_default(), cmd),
        Command::Explore(cmd) => run_job(&cmd.model.setup.broker.clone().unwrap_or_default(), cmd),
        Command::Conform(cmd) => cmd.run(),
    };
    ExitCode::from(if output::stdout_failed() {
        BAD_INPUT
    } else {
        code
    })
}

/// The argument parser's errors keep the one-line contract of all bad input (help and version
/// are printed whole): a rejected value as every other (`invalid value '0' for --seeds
/// (allowed: …)`), anything else as the first paragraph of clap's message on one line; exit 2.
fn parse_error(e: &clap::Error) -> u8 {
    use clap::error::{ContextKind, ErrorKind};
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return HELD;
    }
    if let (ErrorKind::ValueValidation, Some(arg), Some(value), Some(why)) = (
        e.kind(),
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
        std::error::Error::source(e),
    ) {
        let flag = arg.to_string();
        let flag = flag.split_whitespace().next().unwrap_or_default();
        eprintln!("error: invalid value '{value}' for {flag} ({why})");
        return BAD_INPUT;
    }
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    eprintln!("{}", first.join(" "));
    BAD_INPUT
}

/// Bad input found before any broker ran: one line, exit 2.
fn bad_input(e: &str) -> u8 {
    eprintln!("error: {e}");
    BAD_INPUT
}

/// Runs a broker-specific job; bad input (unknown broker, key, value) is one line and exit 2.
fn run_job<J: Job<Output = Result<u8, mqcheck_brokers::ConfigError>>>(broker: &str, job: J) -> u8 {
    match dispatch(broker, job) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) | Err(e) => bad_input(&e.to_string()),
    }
}

struct ListJob;

impl Job for ListJob {
    type Output = ();
    fn run<S: System>(self) {
        let mut text = format!("{}  {}\n", S::NAME, S::summary());
        for key in S::keys() {
            text += &format!("    {:<40} {}\n", key.name, key.doc);
            text += &format!(
                "    {:<40} default {}; allowed: {}\n",
                "", key.default, key.allowed
            );
        }
        emit(&text);
    }
}
