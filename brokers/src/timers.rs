//! Timer ranges shared by the models: the drivers pick a delay within the range.

use std::ops::Range;
use std::time::Duration;

/// A timer that fires after exactly `d`.
pub(crate) fn exact(d: Duration) -> Range<Duration> {
    d..d + Duration::from_millis(1)
}

/// A periodic timer with a little jitter, so periodic work does not line up across nodes.
pub(crate) fn retry(d: Duration) -> Range<Duration> {
    d..d + d / 10 + Duration::from_millis(1)
}
