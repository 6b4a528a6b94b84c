//! The readable timeline of a run.

use serde::Serialize;
use std::fmt;

/// One line of a trace: simulated time, the node (or `nemesis`), what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceLine {
    pub time_ms: u64,
    pub node: String,
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>4}.{:03}s  {:<8} {}",
            self.time_ms / 1000,
            self.time_ms % 1000,
            self.node,
            self.text
        )
    }
}
