//! Bounded exhaustive checking of the broker models with stateright.

mod bounds;
pub mod describe;
mod model;
pub mod properties;

pub use bounds::Bounds;
pub use model::{CheckModel, CheckState, Nemesis, Slot, Step, StepOf, DOWNTIMES_MS, PARTITION_MS};
