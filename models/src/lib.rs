//! Bounded exhaustive checking of the broker models with stateright.
//!
//! The simulator (`mqcheck-sim`) samples runs: one seeded fault schedule and one set of network
//! delays per seed. This crate enumerates them. [`CheckModel`] drives any broker's actors (any
//! [`mqcheck_brokers::System`], so a broker added later needs no plumbing here) as a stateright
//! [`stateright::Model`] on an explicit clock, and lets the nemesis place each allowed fault —
//! crash or power loss (as a bounce or an outage), a broken connection, a duplicated or reordered
//! packet, a partition — at every step, within the [`Bounds`]. Breadth-first search then finds
//! the shortest run that breaks a property, or counts the states in which none broke. Stretches
//! of a run with one step each, where no property changes its value, are followed without
//! storing their states ([`CheckModel::unreduced`] turns that off); "shortest" counts the states
//! stored.
//!
//! The properties ([`properties`]) are the simulator's own checkers over what the clients
//! recorded, the broker's structural invariants (`System::invariants`), and coverage that a
//! meaningful check must reach. [`describe`] turns steps into a story in the broker's vocabulary,
//! states into the Stateright Explorer's view, and a counterexample into an SVG sequence diagram.
//!
//! Why time is explicit, what the checker explores and what it gives up, and the figures:
//! `docs/model-checking.md`.

mod bounds;
pub mod describe;
mod model;
pub mod properties;

pub use bounds::Bounds;
pub use model::{
    CheckModel, CheckState, NemesisRecord, Slot, Step, StepOf, DOWNTIMES_MS, PARTITION_MS,
};
