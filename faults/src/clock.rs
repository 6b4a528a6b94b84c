//! The `clock` fault: a node's clock runs fast or slow, so the timers it sets fire early or late.
//!
//! Brokers and clients measure timeouts on their own clock: a lease, a session timeout, a lock's
//! expiry, a heartbeat interval. A clock running at `rate` per mille of real time makes a timer
//! set for `d` fire after `d × 1000 / rate` of real time: a fast clock (rate above 1000) expires
//! sessions and leases early, a slow one (below 1000) late. Both drivers scale a timer by the
//! rate of its node's clock when the timer is set.

/// The rate of a correct clock, per mille.
pub const NORMAL: u32 = 1000;
/// The fast clock the model checker explores: twice real time.
pub const FAST: u32 = 2000;

/// The real delay of a timer set for `delay_ms` on a clock running at `rate` per mille.
pub fn scaled(delay_ms: u64, rate: u32) -> u64 {
    delay_ms.saturating_mul(u64::from(NORMAL)) / u64::from(rate.max(1))
}
