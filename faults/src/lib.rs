//! The faults, defined once for both drivers, and the rules of the transport they act on.
//!
//! The simulator (`mqcheck-sim`, madsim) and the model checker (`mqcheck-models`, stateright)
//! inject the same faults with the same effects; this crate names them and holds the rules both
//! apply, so a verdict never depends on which driver found it. The transport is TCP as it is: a
//! FIFO byte stream per connection without gaps or duplicates, where a lost or cut segment is
//! retransmitted ([`tcp`]) and a connection ends only when an endpoint closes it, its process dies,
//! or TCP gives up.
//!
//! | fault | effect |
//! |---|---|
//! | `crash` | process crash (`kill -9`) and restart: volatile state lost, page cache and fsynced data kept; the kernel closes the process's connections, so each peer reads what was already sent and then the close; a connection attempt while it is down is refused |
//! | `power` | machine crash: only fsynced data survives; nothing is sent; a peer learns from its own timeouts, or from the reset its next segment draws once the machine is back |
//! | `pause` | the process stops (SIGSTOP, a long GC, a stalled VM) and resumes with its old view; its kernel keeps accepting data, which it reads on resuming |
//! | `partition` | links cut; segments wait and are retransmitted after the heal, at TCP's next retransmission |
//! | `loss` | segments dropped and retransmitted after TCP's retransmission timeout: delay, never a gap |
//! | `clock` | a node's clock runs fast or slow: the timers it sets fire early or late ([`clock`]) |
//! | `duplicate`, `reorder` | beyond TCP: for transports without its guarantees; never in the default set |
//!
//! Sources: RFC 9293 (TCP: sequence numbers, retransmission, FIN after data, RST for a segment
//! of an unknown connection); RFC 6298 (the retransmission timer, exponential back-off); Linux
//! `tcp_retries2` (ip-sysctl.rst: 15 retries, about 924.6 s with the 200 ms minimum RTO).

pub mod clock;
pub mod tcp;

use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A kind of fault the nemesis may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Process crash and restart: volatile state lost, page cache and fsynced data kept, the
    /// connections closed by the kernel.
    Crash,
    /// Machine crash: only fsynced data kept; nothing is sent.
    Power,
    /// Links cut (halves, one-way, an isolated leader); traffic waits and is retransmitted.
    Partition,
    /// Segments dropped and retransmitted.
    Loss,
    /// A node's clock runs fast or slow.
    Clock,
    /// Packets delivered twice (beyond TCP).
    Duplicate,
    /// Per-connection FIFO order broken (beyond TCP).
    Reorder,
    /// A process stops, then resumes with its stale view.
    Pause,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Crash,
        Fault::Power,
        Fault::Pause,
        Fault::Partition,
        Fault::Loss,
        Fault::Clock,
        Fault::Duplicate,
        Fault::Reorder,
    ];

    /// Every fault TCP allows: the default set.
    pub const TCP: [Fault; 6] = [
        Fault::Crash,
        Fault::Power,
        Fault::Pause,
        Fault::Partition,
        Fault::Loss,
        Fault::Clock,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Power => "power",
            Fault::Partition => "partition",
            Fault::Loss => "loss",
            Fault::Clock => "clock",
            Fault::Duplicate => "duplicate",
            Fault::Reorder => "reorder",
            Fault::Pause => "pause",
        }
    }

    /// Does this fault hit a process (rather than the network)?
    pub fn hits_process(self) -> bool {
        matches!(
            self,
            Fault::Crash | Fault::Power | Fault::Pause | Fault::Clock
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The faults a user allowed: a preset (`tcp`, the default; `all`; `none`) or a comma list of
/// faults and presets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FaultSet(pub BTreeSet<Fault>);

impl FaultSet {
    /// Every fault TCP allows (`tcp`): what `sim`, `check`, `replay` and `matrix` run by default.
    pub fn tcp() -> Self {
        FaultSet(Fault::TCP.into_iter().collect())
    }

    /// Every fault, duplication and reordering included (`all`).
    pub fn all() -> Self {
        FaultSet(Fault::ALL.into_iter().collect())
    }

    pub fn contains(&self, f: Fault) -> bool {
        self.0.contains(&f)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|f| f.name()).collect()
    }

    /// The set spelled out: `crash,power,pause,…`, or `none`.
    pub fn list(&self) -> String {
        if self.0.is_empty() {
            "none".to_string()
        } else {
            self.names().join(",")
        }
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == FaultSet::all() {
            f.write_str("all")
        } else if *self == FaultSet::tcp() {
            f.write_str("tcp")
        } else {
            f.write_str(&self.list())
        }
    }
}

impl FromStr for FaultSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for word in s.split(',').map(str::trim) {
            match word {
                "tcp" => set.extend(Fault::TCP),
                "all" => set.extend(Fault::ALL),
                "none" if s.trim() == "none" => {}
                "none" => {
                    return Err(format!(
                        "'none' in --faults '{s}' cannot be combined with faults (allowed: tcp, all, none, or a comma list of {})",
                        FaultSet::all().names().join(", ")
                    ))
                }
                _ => {
                    let fault = Fault::ALL
                        .into_iter()
                        .find(|f| f.name() == word)
                        .ok_or_else(|| {
                            format!(
                                "unknown fault '{word}' in --faults (allowed: tcp, all, none, or a comma list of {})",
                                FaultSet::all().names().join(", ")
                            )
                        })?;
                    set.insert(fault);
                }
            }
        }
        Ok(FaultSet(set))
    }
}
