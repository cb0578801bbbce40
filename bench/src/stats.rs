//! Medians and friends over the samples of a run.

use std::time::Duration;

/// The median (the upper one of an even count); zero for no samples.
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 0.5)
}

/// The sample at rank `p` (0..=1, nearest rank); zero for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The median of ratios (the upper one of an even count); zero for none.
pub fn median_ratio(ratios: &[f64]) -> f64 {
    if ratios.is_empty() {
        return 0.0;
    }
    let mut sorted = ratios.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Milliseconds, for printing and storing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles_pick_a_sample() {
        let v: Vec<Duration> = [5, 1, 3, 2, 4].map(Duration::from_millis).to_vec();
        assert_eq!(median(&v), Duration::from_millis(3));
        assert_eq!(percentile(&v, 0.0), Duration::from_millis(1));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(5));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
