//! Exponential backoff with jitter, as a pure function.

use std::time::Duration;

/// The delay before attempt number `failures + 1`, after `failures` consecutive
/// failures (`failures >= 1`): `initial * 2^(failures-1)`, capped at `max`, then
/// scaled into `[d/2, d]` by `jitter` (a number in `[0, 1)`), so that many clients
/// that failed together do not retry together.
pub fn backoff_delay(failures: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(32);
    let base = initial.saturating_mul(1u32 << exponent.min(31)).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base.mul_f64(0.5 + 0.5 * jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let d = |n| backoff_delay(n, 100 * MS, 1000 * MS, 1.0);
        assert_eq!(d(1), 100 * MS);
        assert_eq!(d(2), 200 * MS);
        assert_eq!(d(4), 800 * MS);
        assert_eq!(d(5), 1000 * MS);
        assert_eq!(d(1000), 1000 * MS);
        assert_eq!(d(0), 100 * MS);
    }

    #[test]
    fn jitter_spreads_between_half_and_full() {
        assert_eq!(backoff_delay(3, 100 * MS, Duration::MAX, 0.0), 200 * MS);
        assert_eq!(backoff_delay(3, 100 * MS, Duration::MAX, 0.5), 300 * MS);
        assert_eq!(
            backoff_delay(3, 100 * MS, Duration::MAX, f64::NAN),
            200 * MS
        );
        assert_eq!(backoff_delay(3, 100 * MS, Duration::MAX, 7.0), 400 * MS);
    }
}
