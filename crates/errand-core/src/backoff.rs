//! Retry backoff: exponential with full jitter, bounded by a cap.

use crate::duration;
use crate::job::{ValidationError, check_duration};
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
        // A policy built in code skips `validate`: stay within range and
        // never panic, whatever its fields hold.
        let max = self.max.min(duration::MAX);
        let exp = attempt.saturating_sub(1).min(62);
        let raw = self.base.as_secs_f64() * 2f64.powi(exp as i32);
        let capped = raw.min(max.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let secs = capped * (1.0 - jitter) + capped * jitter * unit_random.clamp(0.0, 1.0);
        Duration::try_from_secs_f64(secs).map_or(max, |d| d.min(max))
    }

    /// Refuses a backoff that cannot be meant: `base` longer than `max`, a
    /// `jitter` outside 0..=1, or a duration beyond [`duration::MAX`]. A zero
    /// `base` is allowed: it retries at once, bounded by the attempts.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_duration("backoff.base", self.base)?;
        check_duration("backoff.max", self.max)?;
        if self.base > self.max {
            return Err(ValidationError::new(
                "backoff.base",
                format!(
                    "must be at most backoff.max ({}), got {}",
                    duration::format(self.max),
                    duration::format(self.base)
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ValidationError::new(
                "backoff.jitter",
                format!(
                    "must be from 0 (no jitter) to 1 (full jitter), got {}",
                    self.jitter
                ),
            ));
        }
        Ok(())
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
    fn validate_refuses_what_cannot_be_meant() {
        let field = |base: u64, max: u64, jitter: f64| {
            Backoff {
                base: Duration::from_secs(base),
                max: Duration::from_secs(max),
                jitter,
            }
            .validate()
            .map_err(|e| (e.field, e.message))
        };
        assert!(field(1, 3600, 0.5).is_ok());
        assert!(field(0, 0, 0.0).is_ok());
        assert!(field(5, 5, 1.0).is_ok());
        let (f, m) = field(10, 1, 0.5).unwrap_err();
        assert_eq!(f, "backoff.base");
        assert!(m.contains("at most backoff.max (1s), got 10s"), "{m}");
        for jitter in [5.0, -0.1, f64::NAN, f64::INFINITY] {
            assert_eq!(field(1, 2, jitter).unwrap_err().0, "backoff.jitter");
        }
        assert_eq!(
            field(1, u64::MAX, 0.5).unwrap_err().0,
            "backoff.max",
            "beyond duration::MAX"
        );
    }

    #[test]
    fn delay_never_panics_on_unvalidated_fields() {
        let b = Backoff {
            base: Duration::MAX,
            max: Duration::MAX,
            jitter: f64::NAN,
        };
        assert_eq!(b.delay_with(u32::MAX, f64::NAN), duration::MAX);
        let zero = Backoff {
            base: Duration::ZERO,
            ..Backoff::default()
        };
        assert_eq!(zero.delay_with(30, 0.5), Duration::ZERO);
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
