//! The retry schedule of a failed delivery: exponential backoff from one minute, doubling, capped
//! at four hours between attempts, with jitter (each wait is drawn in [half, whole] of its step,
//! so endpoints that failed together are not retried together), for at least 24 hours from the
//! first attempt. An endpoint whose deliveries still fail after that is marked failing (disabled,
//! its owner told).

use std::time::Duration;

pub const FIRST_WAIT: Duration = Duration::from_secs(60);
pub const MAX_WAIT: Duration = Duration::from_secs(4 * 3600);
/// Retries go on for at least this long after the first attempt.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest delay one SQS message can carry; a longer wait is re-enqueued in steps.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

/// The wait after the `failures`-th failed attempt (1 = the first), `jitter` in [0, 1).
pub fn wait_after(failures: u32, jitter: f64) -> Duration {
    let step = FIRST_WAIT
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(20)))
        .min(MAX_WAIT);
    let j = jitter.clamp(0.0, 1.0);
    step.mul_f64(0.5 + 0.5 * j)
}

/// What to do after a failed attempt, `elapsed` since the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    RetryIn(Duration),
    /// 24 hours of failures: stop and mark the endpoint failing.
    GiveUp,
}

pub fn after_failure(failures: u32, elapsed: Duration, jitter: f64) -> After {
    if elapsed >= RETRY_FOR {
        After::GiveUp
    } else {
        After::RetryIn(wait_after(failures, jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_a_minute_to_a_cap_with_jitter() {
        assert_eq!(wait_after(1, 1.0), Duration::from_secs(60));
        assert_eq!(wait_after(1, 0.0), Duration::from_secs(30));
        assert_eq!(wait_after(3, 1.0), Duration::from_secs(240));
        assert_eq!(wait_after(30, 1.0), MAX_WAIT);
        assert!(wait_after(2, 0.3) > wait_after(2, 0.2));
    }

    #[test]
    fn retries_span_at_least_a_day_then_give_up() {
        // Worst case for the span: every jitter at its minimum.
        let mut elapsed = Duration::ZERO;
        let mut failures = 0;
        loop {
            failures += 1;
            match after_failure(failures, elapsed, 0.0) {
                After::RetryIn(d) => elapsed += d,
                After::GiveUp => break,
            }
        }
        assert!(elapsed >= RETRY_FOR);
        assert!(failures < 40, "{failures} attempts");
    }
}
