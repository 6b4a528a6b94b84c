//! The readable timeline of a run.

use mqcheck_invariants::secs_unspaced;
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
            "{:>9}  {:<8} {}",
            secs_unspaced(self.time_ms),
            self.node,
            self.text
        )
    }
}
