//! TCP's retransmission rules, as both drivers apply them to a dropped or cut segment.
//!
//! A segment that is lost, or that a partition holds up, is retransmitted when the sender's
//! retransmission timer fires: first after the minimum RTO (Linux `TCP_RTO_MIN`, 200 ms), then
//! after twice that, and so on up to `TCP_RTO_MAX` (120 s) (RFC 6298 §5.5). After
//! `tcp_retries2` (15) unanswered retransmissions, about 924.6 s, the sender gives up and the
//! connection is reset. Later segments wait behind the missing one: the receiver hands its
//! application nothing past a gap.

/// The first retransmission timeout (ms): Linux's `TCP_RTO_MIN`.
pub const RTO_MIN_MS: u64 = 200;
/// The longest retransmission timeout (ms): Linux's `TCP_RTO_MAX`.
pub const RTO_MAX_MS: u64 = 120_000;
/// Retransmissions before the sender gives up: Linux's `tcp_retries2` default.
pub const RETRIES: u32 = 15;

/// The timeout before retransmission `k` (0-based): 200 ms doubling, capped at 120 s.
pub fn backoff_ms(k: u32) -> u64 {
    RTO_MIN_MS.saturating_mul(1u64 << k.min(20)).min(RTO_MAX_MS)
}

/// When retransmission `k` goes out, relative to the first transmission (ms).
pub fn retransmission_ms(k: u32) -> u64 {
    (0..=k).map(backoff_ms).sum()
}

/// A segment first sent at `sent_ms` and held up until `open_ms` (a partition's heal): when its
/// next retransmission gets through, or `None` if TCP gave up on it first.
pub fn delivery_after(sent_ms: u64, open_ms: u64) -> Option<u64> {
    (0..RETRIES)
        .map(|k| sent_ms + retransmission_ms(k))
        .find(|at| *at >= open_ms)
}

/// The delay of a segment dropped `drops` times in a row (ms): it arrives with the
/// retransmission after the last drop.
pub fn loss_delay_ms(drops: u32) -> u64 {
    if drops == 0 {
        0
    } else {
        retransmission_ms(drops - 1)
    }
}
