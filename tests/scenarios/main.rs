//! `cargo test` scenarios: through the `mqcheck` binary as a user runs it, and (`toy`) through both
//! drivers as libraries.

mod check;
mod cli;
mod common;
mod kafka;
mod rabbitmq;
mod rocketmq;
mod toy;
mod zeromq;
