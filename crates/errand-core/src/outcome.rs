//! What the end of an attempt does to a job: the outcome table of the design
//! in one function, [`resolve`], which every store engine calls instead of
//! deciding for itself.

use crate::{Backoff, JobState};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::time::Duration;

/// How an attempt ended, as its executor (or the runtime) reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; the optional result is kept on the job.
    Success(Option<Value>),
    /// Failed; try again after backoff while attempts remain.
    Retry(String),
    /// Failed in a way another attempt cannot fix.
    Permanent(String),
    /// Not now: run again after this long, without using an attempt.
    Snooze(Duration),
    /// Infrastructure is down (not the job's fault): hand the job back at
    /// once without using an attempt.
    Deadly(String),
    /// The worker is shutting down and gives the job back unfinished.
    Handback,
    /// The worker's lease ran out: it is presumed dead. The attempt counts.
    LeaseExpired,
}

/// The change a store applies to a running job when its attempt ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The job's next state.
    pub state: JobState,
    /// Its next `run_at`, when it will run again.
    pub run_at: Option<Timestamp>,
    /// The result to keep (success only).
    pub result: Option<Value>,
    /// An error to append to the job's list, for its current attempt.
    pub error: Option<String>,
    /// True when the attempt does not count: the store lowers `attempt` by
    /// one (after recording any error under the attempt that ran). The
    /// job's fence is not touched, so the lease stays dead either way.
    pub refund_attempt: bool,
}

impl Transition {
    /// Whether the job is finished after this transition.
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

impl Outcome {
    /// Whether [`resolve`] needs the job's `attempt` and `max_attempts` to
    /// place this outcome (whether attempts are used up, the backoff of a
    /// retry): a store reads them only then.
    pub fn uses_attempts_left(&self) -> bool {
        matches!(self, Outcome::Retry(_) | Outcome::LeaseExpired)
    }
}

/// The `attempt` a failed or cancelled job gets when an operator retries
/// it: the same, unless its attempts are used up, then one fewer (its last
/// attempt given back), so it runs once more while `max_attempts` stays
/// what it was enqueued with.
pub fn attempt_on_manual_retry(attempt: u32, max_attempts: u32) -> u32 {
    attempt.min(max_attempts.saturating_sub(1))
}

/// Decides a running job's next state from the outcome of `attempt` out of
/// `max_attempts`, at time `now`.
pub fn resolve(
    attempt: u32,
    max_attempts: u32,
    outcome: Outcome,
    backoff: &Backoff,
    now: Timestamp,
) -> Transition {
    let later = |d: Duration| {
        now.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
            .ok()
    };
    let base = Transition {
        state: JobState::Available,
        run_at: Some(now),
        result: None,
        error: None,
        refund_attempt: false,
    };
    let used_up = attempt >= max_attempts;
    match outcome {
        Outcome::Success(result) => Transition {
            state: JobState::Completed,
            run_at: None,
            result,
            ..base
        },
        Outcome::Retry(error) if used_up => Transition {
            state: JobState::Failed,
            run_at: None,
            error: Some(error),
            ..base
        },
        Outcome::Retry(error) => Transition {
            state: JobState::Retryable,
            run_at: later(backoff.delay(attempt)),
            error: Some(error),
            ..base
        },
        Outcome::Permanent(error) => Transition {
            state: JobState::Failed,
            run_at: None,
            error: Some(error),
            ..base
        },
        Outcome::Snooze(d) => Transition {
            state: JobState::Scheduled,
            run_at: later(d),
            refund_attempt: true,
            ..base
        },
        Outcome::Deadly(error) => Transition {
            error: Some(format!("deadly (attempt not counted): {error}")),
            refund_attempt: true,
            ..base
        },
        Outcome::Handback => Transition {
            refund_attempt: true,
            ..base
        },
        Outcome::LeaseExpired if used_up => Transition {
            state: JobState::Failed,
            run_at: None,
            error: Some(LEASE_EXPIRED.to_string()),
            ..base
        },
        Outcome::LeaseExpired => Transition {
            error: Some(LEASE_EXPIRED.to_string()),
            ..base
        },
    }
}

/// The error recorded when a worker disappears mid-attempt.
pub const LEASE_EXPIRED: &str =
    "lease expired: the worker stopped heartbeating (killed or stalled)";

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> Backoff {
        Backoff {
            base: Duration::from_secs(10),
            max: Duration::from_secs(1000),
            jitter: 0.0,
        }
    }

    fn go(attempt: u32, max: u32, o: Outcome) -> Transition {
        resolve(attempt, max, o, &no_jitter(), Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn success_completes_with_result() {
        let t = go(1, 3, Outcome::Success(Some(serde_json::json!({"ok": 1}))));
        assert_eq!(t.state, JobState::Completed);
        assert_eq!(t.result, Some(serde_json::json!({"ok": 1})));
        assert!(t.is_terminal() && !t.refund_attempt);
    }

    #[test]
    fn retry_backs_off_until_attempts_are_used_up() {
        let t = go(2, 3, Outcome::Retry("boom".into()));
        assert_eq!(t.state, JobState::Retryable);
        assert_eq!(
            t.run_at,
            Some(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(20))
        );
        assert_eq!(t.error.as_deref(), Some("boom"));
        let t = go(3, 3, Outcome::Retry("boom".into()));
        assert_eq!(t.state, JobState::Failed);
        assert_eq!(t.run_at, None);
    }

    #[test]
    fn permanent_fails_at_once() {
        assert_eq!(
            go(1, 25, Outcome::Permanent("bad".into())).state,
            JobState::Failed
        );
    }

    #[test]
    fn snooze_deadly_and_handback_refund_the_attempt() {
        let t = go(3, 3, Outcome::Snooze(Duration::from_secs(5)));
        assert_eq!((t.state, t.refund_attempt), (JobState::Scheduled, true));
        assert_eq!(
            t.run_at,
            Some(Timestamp::UNIX_EPOCH + SignedDuration::from_secs(5))
        );
        let t = go(3, 3, Outcome::Deadly("db down".into()));
        assert_eq!((t.state, t.refund_attempt), (JobState::Available, true));
        assert!(t.error.unwrap().contains("db down"));
        let t = go(3, 3, Outcome::Handback);
        assert_eq!(
            (t.state, t.refund_attempt, t.error),
            (JobState::Available, true, None)
        );
    }

    #[test]
    fn only_retry_and_lease_expiry_read_the_attempts_left() {
        for (o, uses) in [
            (Outcome::Success(None), false),
            (Outcome::Retry("x".into()), true),
            (Outcome::Permanent("x".into()), false),
            (Outcome::Snooze(Duration::ZERO), false),
            (Outcome::Deadly("x".into()), false),
            (Outcome::Handback, false),
            (Outcome::LeaseExpired, true),
        ] {
            assert_eq!(o.uses_attempts_left(), uses, "{o:?}");
            if !uses {
                // Whatever the attempts, the transition is the same.
                assert_eq!(go(1, 3, o.clone()), go(3, 3, o.clone()), "{o:?}");
            }
        }
    }

    #[test]
    fn a_manual_retry_gives_back_only_a_used_up_last_attempt() {
        assert_eq!(attempt_on_manual_retry(3, 3), 2);
        assert_eq!(attempt_on_manual_retry(1, 3), 1);
        assert_eq!(attempt_on_manual_retry(0, 1), 0);
        assert_eq!(attempt_on_manual_retry(0, 0), 0);
    }

    #[test]
    fn lease_expiry_counts_the_attempt() {
        let t = go(1, 3, Outcome::LeaseExpired);
        assert_eq!((t.state, t.refund_attempt), (JobState::Available, false));
        assert_eq!(go(3, 3, Outcome::LeaseExpired).state, JobState::Failed);
    }
}
