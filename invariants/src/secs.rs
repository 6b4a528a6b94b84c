//! Simulated times and durations as every report prints them: seconds with three decimals.

/// `1317` ms as `1.317 s`, the unit spaced: explanations, counterexamples, the Explorer.
pub fn secs(ms: u64) -> String {
    format!("{} s", digits(ms))
}

/// `1317` ms as `1.317s`, the unit unspaced: fault schedules (`at 1.200s for 5.000s: crash n1`).
pub fn secs_unspaced(ms: u64) -> String {
    format!("{}s", digits(ms))
}

fn digits(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_print_three_decimals() {
        assert_eq!(secs(1317), "1.317 s");
        assert_eq!(secs_unspaced(1200), "1.200s");
        assert_eq!(secs(5), "0.005 s");
    }
}
