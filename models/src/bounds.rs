//! How far the checker looks: the workload and the fault budgets.

use mqcheck_brokers::Workload;
use mqcheck_faults::FaultSet;

/// The bounds of one exhaustive check.
#[derive(Clone, Debug)]
pub struct Bounds {
    pub workload: Workload,
    /// The faults the nemesis may use (`--faults`).
    pub faults: FaultSet,
    /// Process faults on one path: crashes, power losses, pauses, fast clocks (`--max-crashes`).
    pub max_crashes: usize,
    /// Lost segments, duplicated and reordered packets, partitions on one path
    /// (`--max-net-faults`).
    pub max_net_faults: usize,
}
