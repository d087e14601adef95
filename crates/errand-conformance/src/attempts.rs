//! Checks that the attempt count and the fencing token are two things
//! (docs/decisions/0015): refunds lower the attempt and leave
//! `max_attempts` alone, while every claim gets a larger fence that alone
//! decides whose finish or heartbeat counts.

use crate::lifecycle::expired;
use crate::support::{LONG_LEASE, claim, finish, fixed_backoff, get, job};
use errand_core::store::Finish;
use errand_core::{JobState, NewJob, Outcome, Store};
use std::sync::Arc;
use std::time::Duration;

/// A job with `max_attempts` and no backoff, so a retry is due at once.
fn with_attempts(kind: &str, max_attempts: u32) -> NewJob {
    NewJob {
        max_attempts,
        ..job(kind)
    }
}

/// Ends `lease` with a retry that is due at once; true when it applied.
async fn retry_now(store: &dyn Store, lease: errand_core::Lease, error: &str) -> bool {
    store
        .finish(vec![Finish {
            lease,
            outcome: Outcome::Retry(error.into()),
            backoff: fixed_backoff(Duration::ZERO),
        }])
        .await
        .unwrap()[0]
}

/// Claims the one due job of the default queue, which must be `id`.
async fn claim_one(store: &dyn Store, id: i64) -> errand_core::Job {
    store.promote_due().await.unwrap();
    let mut jobs = claim(store, "default", 1).await;
    assert_eq!(jobs.len(), 1, "job {id} is due");
    let j = jobs.remove(0);
    assert_eq!((j.id, j.state), (id, JobState::Running));
    j
}

/// A snooze leaves the attempt and `max_attempts` as they were before the
/// claim, and the next claim of the job gets a larger fence.
async fn snooze_keeps_the_attempt_and_the_next_claim_gets_a_new_fence(store: Arc<dyn Store>) {
    let id = store
        .enqueue(vec![with_attempts("snoozy", 3)])
        .await
        .unwrap()[0]
        .job
        .id;
    let first = claim_one(&*store, id).await;
    assert_eq!(first.attempt, 1);
    assert!(retry_now(&*store, first.lease(), "boom").await);
    let second = claim_one(&*store, id).await;
    assert_eq!(second.attempt, 2);
    assert!(second.fence > first.fence);
    assert!(finish(&*store, second.lease(), Outcome::Snooze(Duration::ZERO)).await);
    let s = get(&*store, id).await;
    assert_eq!(
        (s.state, s.attempt, s.max_attempts),
        (JobState::Scheduled, 1, 3),
        "the snooze gave attempt 2 back and left max_attempts alone"
    );
    let third = claim_one(&*store, id).await;
    assert_eq!((third.attempt, third.max_attempts), (2, 3));
    assert!(third.fence > second.fence, "a new claim, a new fence");
}

/// After a snooze or a rescue the job is claimed again; the previous
/// holder's late finish and heartbeat are refused (its fence is stale even
/// though the attempt number is the same again), and the new holder's
/// finish applies.
async fn a_late_finish_after_a_snooze_or_a_rescue_is_refused(store: Arc<dyn Store>) {
    let id = store.enqueue(vec![job("late")]).await.unwrap()[0].job.id;
    let old = claim_one(&*store, id).await;
    assert!(finish(&*store, old.lease(), Outcome::Snooze(Duration::ZERO)).await);
    let new = claim_one(&*store, id).await;
    assert_eq!(new.attempt, old.attempt, "the snoozed attempt is run again");
    assert!(!finish(&*store, old.lease(), Outcome::Success(None)).await);
    let lost = store
        .heartbeat(&[old.lease(), new.lease()], LONG_LEASE)
        .await;
    assert_eq!(lost.unwrap(), [old.lease()]);
    assert_eq!(get(&*store, id).await.state, JobState::Running);
    assert!(finish(&*store, new.lease(), Outcome::Success(None)).await);
    assert_eq!(get(&*store, id).await.state, JobState::Completed);

    let r = expired(&*store, job("late")).await;
    assert_eq!(store.rescue_expired().await.unwrap(), [r.id]);
    let again = claim_one(&*store, r.id).await;
    assert_eq!(again.attempt, 2, "a rescue uses the attempt");
    assert!(!finish(&*store, r.lease(), Outcome::Handback).await);
    assert!(!finish(&*store, r.lease(), Outcome::Success(None)).await);
    assert_eq!(get(&*store, r.id).await.state, JobState::Running);
    assert!(finish(&*store, again.lease(), Outcome::Success(None)).await);
}

/// However often it is snoozed, a job with `max_attempts = 2` runs exactly
/// two attempts that count: the second failure fails it, at `2 of 2`.
async fn snoozes_never_add_real_attempts(store: Arc<dyn Store>) {
    let id = store
        .enqueue(vec![with_attempts("snoozer", 2)])
        .await
        .unwrap()[0]
        .job
        .id;
    let mut claims = 0;
    let mut real = 0;
    loop {
        let j = claim_one(&*store, id).await;
        claims += 1;
        assert!(
            j.attempt <= 2,
            "attempt {} of {}",
            j.attempt,
            j.max_attempts
        );
        // Five snoozes in all: three in the first attempt, two in the second.
        if claims <= 3 || (claims > 4 && claims <= 6) {
            assert!(finish(&*store, j.lease(), Outcome::Snooze(Duration::ZERO)).await);
            continue;
        }
        real += 1;
        assert!(retry_now(&*store, j.lease(), "no").await);
        let after = get(&*store, id).await;
        assert_eq!(after.max_attempts, 2);
        if after.state == JobState::Failed {
            assert_eq!(after.attempt, 2);
            break;
        }
        assert!(claims < 20, "the job never failed");
    }
    assert_eq!((claims, real), (7, 2));
}

/// Errors are recorded under the attempt that ran: a deadly outcome that
/// gives its attempt back is recorded under that number, and the attempt
/// run again in its place records under the same number.
async fn errors_carry_the_attempt_that_ran(store: Arc<dyn Store>) {
    let id = store
        .enqueue(vec![with_attempts("erring", 3)])
        .await
        .unwrap()[0]
        .job
        .id;
    let a = claim_one(&*store, id).await;
    assert!(retry_now(&*store, a.lease(), "first").await);
    let b = claim_one(&*store, id).await;
    assert!(finish(&*store, b.lease(), Outcome::Deadly("db down".into())).await);
    let c = claim_one(&*store, id).await;
    assert!(retry_now(&*store, c.lease(), "second").await);
    let d = claim_one(&*store, id).await;
    assert!(retry_now(&*store, d.lease(), "third").await);
    let j = get(&*store, id).await;
    assert_eq!(
        (j.state, j.attempt, j.max_attempts),
        (JobState::Failed, 3, 3)
    );
    let errors: Vec<(u32, &str)> = j
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (1, "first"),
            (2, "deadly (attempt not counted): db down"),
            (2, "second"),
            (3, "third"),
        ]
    );
}

crate::checks![
    snooze_keeps_the_attempt_and_the_next_claim_gets_a_new_fence,
    a_late_finish_after_a_snooze_or_a_rescue_is_refused,
    snoozes_never_add_real_attempts,
    errors_carry_the_attempt_that_ran,
];
