//! The one source of wall-clock time for a store and everything that runs
//! on it (docs/decisions/0014-one-clock.md). A [`Clock`] is the system clock
//! in production and a manual clock in tests, which move it by hand instead
//! of sleeping; either reads with microsecond precision, the precision both
//! engines store.

use jiff::{SignedDuration, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Wall-clock time, read through whoever owns the store; cheap to clone,
/// clones share one time.
#[derive(Debug, Clone)]
pub struct Clock {
    manual: Option<Arc<watch::Sender<Timestamp>>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start` until [`Clock::advance`] or
    /// [`Clock::set`] moves it: for tests.
    pub fn manual(start: Timestamp) -> Clock {
        let (tx, _) = watch::channel(truncate(start));
        Clock {
            manual: Some(Arc::new(tx)),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// The time now, to the microsecond.
    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => truncate(Timestamp::now()),
            Some(tx) => *tx.borrow(),
        }
    }

    /// Moves a manual clock forward by `d`.
    ///
    /// # Panics
    /// On the system clock, which only time moves.
    pub fn advance(&self, d: Duration) {
        let d = SignedDuration::try_from(d).expect("an advance fits a signed duration");
        self.hand().send_modify(|t| *t = truncate(*t + d));
    }

    /// Sets a manual clock to `t` (backwards too, to test a clock that jumps).
    ///
    /// # Panics
    /// On the system clock.
    pub fn set(&self, t: Timestamp) {
        self.hand().send_replace(truncate(t));
    }

    /// Waits until the clock reads `t` or later: a timer for the system
    /// clock, the moment a test moves a manual clock past `t` otherwise.
    pub async fn sleep_until(&self, t: Timestamp) {
        match &self.manual {
            None => {
                let left = Timestamp::now().duration_until(t);
                if let Ok(left) = Duration::try_from(left) {
                    tokio::time::sleep(left).await;
                }
            }
            Some(tx) => {
                let mut rx = tx.subscribe();
                // The sender lives as long as this clock, so this never errs.
                let _ = rx.wait_for(|now| *now >= t).await;
            }
        }
    }

    fn hand(&self) -> &watch::Sender<Timestamp> {
        self.manual
            .as_deref()
            .expect("only a manual clock can be moved by hand")
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// `t` without its nanoseconds below the microsecond.
fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond())
        .expect("a microsecond of a timestamp is in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_by_hand_and_clones_share_it() {
        let start: Timestamp = "2030-01-01T00:00:00.123456789Z".parse().unwrap();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now().subsec_nanosecond(), 123_456_000);
        assert_eq!(clock.now(), clock.now());
        other.advance(Duration::from_secs(5));
        assert_eq!(clock.now().as_second(), start.as_second() + 5);
        clock.set(start);
        assert_eq!(other.now().as_second(), start.as_second());
    }

    #[test]
    fn system_clock_reads_microseconds() {
        let clock = Clock::system();
        assert_eq!(clock.now().subsec_nanosecond() % 1000, 0);
        assert!(!clock.is_manual());
    }

    #[tokio::test]
    async fn sleep_until_wakes_when_a_manual_clock_passes() {
        let start: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let clock = Clock::manual(start);
        let due = start + SignedDuration::from_secs(60);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(due).await }
        });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woken")
            .unwrap();
    }
}
