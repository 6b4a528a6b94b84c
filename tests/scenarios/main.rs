//! `cargo test` scenarios: through the `mqcheck` binary as a user runs it, and (`toy`) through both
//! drivers as libraries.

mod activemq;
mod check;
mod cli;
mod common;
mod drawing;
mod fuzz;
mod kafka;
mod matrix;
mod memory;
mod rabbitmq;
mod rabbitmq_mnesia;
mod rocketmq;
mod story;
mod toy;
mod zeromq;
