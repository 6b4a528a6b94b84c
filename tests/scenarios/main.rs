//! `cargo test` scenarios, through the `mqcheck` binary as a user runs it.

mod check;
mod cli;
mod common;
mod kafka;
mod rabbitmq;
mod zeromq;
