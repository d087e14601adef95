//! Retry backoff: exponential with full jitter, bounded by a cap.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a job waits before its next attempt after a retryable failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// Delay before the second attempt (before jitter).
    #[serde(with = "crate::duration::serde_human")]
    pub base: Duration,
    /// Upper bound of any single delay.
    #[serde(with = "crate::duration::serde_human")]
    pub max: Duration,
    /// Fraction of the delay that is randomised (0 = none, 1 = full jitter).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay after `attempt` (1-based) failed: `base * 2^(attempt-1)`,
    /// capped at `max`, with the last `jitter` fraction drawn at random so
    /// that jobs failing together do not retry together.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, fastrand::f64())
    }

    /// [`Backoff::delay`] with the random draw given, for tests.
    pub fn delay_with(&self, attempt: u32, unit_random: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(62);
        let raw = self.base.as_secs_f64() * 2f64.powi(exp as i32);
        let capped = raw.min(self.max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let secs = capped * (1.0 - jitter) + capped * jitter * unit_random.clamp(0.0, 1.0);
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let b = Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(30),
            jitter: 0.0,
        };
        assert_eq!(b.delay_with(1, 0.7), Duration::from_secs(2));
        assert_eq!(b.delay_with(2, 0.7), Duration::from_secs(4));
        assert_eq!(b.delay_with(4, 0.7), Duration::from_secs(16));
        assert_eq!(b.delay_with(5, 0.7), Duration::from_secs(30));
        assert_eq!(b.delay_with(500, 0.7), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_band() {
        let b = Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(100),
            jitter: 0.5,
        };
        assert_eq!(b.delay_with(1, 0.0), Duration::from_secs(5));
        assert_eq!(b.delay_with(1, 1.0), Duration::from_secs(10));
        for _ in 0..100 {
            let d = b.delay(2);
            assert!(
                d >= Duration::from_secs(10) && d <= Duration::from_secs(20),
                "{d:?}"
            );
        }
    }
}
