//! Checks of an attempt's life after the claim: heartbeats, fencing by
//! the claim's fence, each outcome's effect, and lease rescue.

use errand_core::audit::AuditActor;
use crate::support::{
    LONG_LEASE, claim, claim_req, finish, fixed_backoff, get, job, plus, running,
};
use errand_core::store::Finish;
use errand_core::{JobState, Lease, NewJob, Outcome, Store};

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A short lease that a check lets run out.
const SHORT_LEASE: Duration = Duration::from_millis(50);

/// Claims one job of `new` with a short lease and waits until it has expired.
pub(crate) async fn expired(store: &dyn Store, new: NewJob) -> errand_core::Job {
    let id = store.enqueue(vec![new]).await.unwrap()[0].job.id;
    let req = errand_core::store::ClaimRequest {
        lease: SHORT_LEASE,
        ..claim_req("default", 1)
    };
    let claimed = store.claim(&req).await.unwrap().jobs;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    store.clock().advance(SHORT_LEASE * 4);
    claimed.into_iter().next().unwrap()
}

/// A heartbeat extends held leases and reports the ones no longer held.
async fn heartbeat_extends_and_reports_lost_leases(store: Arc<dyn Store>) {
    let held = running(&*store, job("beat")).await;
    let cancelled = running(&*store, job("beat")).await;
    store.cancel(cancelled.id, &AuditActor::Local).await.unwrap();
    let stale = Lease {
        id: held.id,
        fence: held.fence + 1,
    };
    let unknown = Lease {
        id: held.id + 10_000,
        fence: 1,
    };
    let before = store.clock().now();
    let lost = store
        .heartbeat(
            &[held.lease(), stale, cancelled.lease(), unknown],
            Duration::from_secs(7200),
        )
        .await
        .unwrap();
    assert_eq!(lost, [stale, cancelled.lease(), unknown]);
    let after = get(&*store, held.id).await;
    assert_eq!(after.state, JobState::Running);
    assert!(after.lease_expires_at.unwrap() >= plus(before, Duration::from_secs(7199)));
    assert!(after.lease_expires_at.unwrap() > held.lease_expires_at.unwrap());
    assert_eq!(get(&*store, cancelled.id).await.state, JobState::Cancelled);
}

/// Only the current claim of a running job may end it: a stale fence,
/// a finish after cancel and a finish after rescue answer false and change
/// nothing.
async fn finish_is_fenced_by_attempt(store: Arc<dyn Store>) {
    let j = running(&*store, job("fenced")).await;
    let stale = Lease {
        id: j.id,
        fence: j.fence + 1,
    };
    assert!(!finish(&*store, stale, Outcome::Success(None)).await);
    assert_eq!(
        get(&*store, j.id).await,
        j,
        "a stale finish changed nothing"
    );

    let c = running(&*store, job("fenced")).await;
    let cancelled = store.cancel(c.id, &AuditActor::Local).await.unwrap();
    assert!(!finish(&*store, c.lease(), Outcome::Success(Some(json!(1)))).await);
    assert_eq!(get(&*store, c.id).await, cancelled);

    let r = expired(&*store, job("fenced")).await;
    assert_eq!(store.rescue_expired().await.unwrap(), [r.id]);
    let rescued = get(&*store, r.id).await;
    assert!(!finish(&*store, r.lease(), Outcome::Retry("late".into())).await);
    assert_eq!(get(&*store, r.id).await, rescued);

    let unknown = Lease {
        id: j.id + 10_000,
        fence: 1,
    };
    let answers = store
        .finish(vec![
            Finish {
                lease: unknown,
                outcome: Outcome::Success(None),
                backoff: fixed_backoff(Duration::ZERO),
            },
            Finish {
                lease: j.lease(),
                outcome: Outcome::Success(Some(json!({"ok": true}))),
                backoff: fixed_backoff(Duration::ZERO),
            },
        ])
        .await
        .unwrap();
    assert_eq!(answers, [false, true], "answers follow input order");
    let done = get(&*store, j.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(done.finished_at.is_some() && done.lease_expires_at.is_none() && done.worker.is_none());
    assert!(!finish(&*store, j.lease(), Outcome::Permanent("twice".into())).await);
    assert_eq!(
        get(&*store, j.id).await,
        done,
        "a second finish changed nothing"
    );
}

/// A job finished after its lease ran out, but before any rescue, stays finished.
async fn rescue_never_overwrites_a_finished_job(store: Arc<dyn Store>) {
    let j = expired(&*store, job("late_success")).await;
    assert!(finish(&*store, j.lease(), Outcome::Success(None)).await);
    assert!(store.rescue_expired().await.unwrap().is_empty());
    let after = get(&*store, j.id).await;
    assert_eq!(after.state, JobState::Completed);
    assert!(after.errors.is_empty());
}

/// A retryable failure waits out its backoff in `retryable` and records the
/// error with its attempt number.
async fn retry_backs_off_and_records_the_error(store: Arc<dyn Store>) {
    let j = running(&*store, job("flaky")).await;
    let now = store.clock().now();
    let applied = store
        .finish(vec![Finish {
            lease: j.lease(),
            outcome: Outcome::Retry("boom".into()),
            backoff: fixed_backoff(Duration::from_secs(60)),
        }])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    let r = get(&*store, j.id).await;
    assert_eq!((r.state, r.attempt), (JobState::Retryable, 1));
    assert_eq!(
        r.run_at,
        plus(now, Duration::from_secs(60)),
        "the backoff counts from the store's now"
    );
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        (r.errors[0].attempt, r.errors[0].error.as_str()),
        (1, "boom")
    );
    assert!(r.finished_at.is_none() && r.lease_expires_at.is_none() && r.worker.is_none());
    assert!(
        claim(&*store, "default", 10).await.is_empty(),
        "not due yet"
    );
}

/// The last attempt's retryable failure fails the job.
async fn used_up_attempts_fail(store: Arc<dyn Store>) {
    let new = NewJob {
        max_attempts: 2,
        ..job("doomed")
    };
    let j = running(&*store, new).await;
    assert!(finish(&*store, j.lease(), Outcome::Retry("first".into())).await);
    // A zero backoff makes the job due at once.
    let again = claim(&*store, "default", 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (j.id, 2));
    assert!(finish(&*store, again[0].lease(), Outcome::Retry("second".into())).await);
    let f = get(&*store, j.id).await;
    assert_eq!(
        (f.state, f.attempt, f.max_attempts),
        (JobState::Failed, 2, 2)
    );
    let errors: Vec<(u32, &str)> = f
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(errors, [(1, "first"), (2, "second")]);
    assert!(f.finished_at.is_some());
    assert!(claim(&*store, "default", 1).await.is_empty());
}

/// A permanent error fails the job however many attempts remain.
async fn permanent_error_fails_at_once(store: Arc<dyn Store>) {
    let j = running(&*store, job("bad_input")).await;
    assert!(j.max_attempts > 1);
    assert!(
        finish(
            &*store,
            j.lease(),
            Outcome::Permanent("no such user".into())
        )
        .await
    );
    let f = get(&*store, j.id).await;
    assert_eq!((f.state, f.attempt), (JobState::Failed, 1));
    assert_eq!(f.errors[0].error, "no such user");
    assert!(f.finished_at.is_some());
}

/// Snooze, deadly and handback give the attempt back (attempt - 1) and
/// leave `max_attempts` as it was.
async fn snooze_deadly_and_handback_refund_the_attempt(store: Arc<dyn Store>) {
    let new = NewJob {
        max_attempts: 1,
        ..job("refund")
    };
    let j = running(&*store, new).await;
    assert!(finish(&*store, j.lease(), Outcome::Deadly("db down".into())).await);
    let d = get(&*store, j.id).await;
    assert_eq!(
        (d.state, d.attempt, d.max_attempts),
        (JobState::Available, 0, 1)
    );
    assert_eq!(d.errors.len(), 1);
    assert!(d.errors[0].error.contains("db down"));

    let j2 = claim(&*store, "default", 1).await.remove(0);
    assert_eq!(j2.attempt, 1);
    assert!(finish(&*store, j2.lease(), Outcome::Handback).await);
    let h = get(&*store, j.id).await;
    assert_eq!(
        (h.state, h.attempt, h.max_attempts),
        (JobState::Available, 0, 1)
    );
    assert_eq!(h.errors.len(), 1, "a handback records no error");

    let j3 = claim(&*store, "default", 1).await.remove(0);
    let before = store.clock().now();
    assert!(
        finish(
            &*store,
            j3.lease(),
            Outcome::Snooze(Duration::from_secs(3600))
        )
        .await
    );
    let s = get(&*store, j.id).await;
    assert_eq!(
        (s.state, s.attempt, s.max_attempts),
        (JobState::Scheduled, 0, 1)
    );
    assert!(s.run_at >= plus(before, Duration::from_secs(3599)));
    assert!(
        claim(&*store, "default", 1).await.is_empty(),
        "snoozed, not due"
    );
}

/// A running job whose lease ran out goes back to available (the attempt
/// counts, the error says why) and the next claim is attempt 2; when no
/// attempts remain it fails instead.
async fn rescue_expired_counts_the_attempt(store: Arc<dyn Store>) {
    let healthy = running(&*store, job("healthy")).await;
    let j = expired(&*store, job("crashy")).await;
    assert_eq!(store.rescue_expired().await.unwrap(), [j.id]);
    let r = get(&*store, j.id).await;
    assert_eq!((r.state, r.attempt), (JobState::Available, 1));
    assert_eq!(r.max_attempts, j.max_attempts, "the attempt counts");
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].attempt, 1);
    assert!(r.lease_expires_at.is_none() && r.worker.is_none());
    assert_eq!(get(&*store, healthy.id).await.state, JobState::Running);

    let again = store
        .claim(&errand_core::store::ClaimRequest {
            lease: LONG_LEASE,
            ..claim_req("default", 1)
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!((again[0].id, again[0].attempt), (j.id, 2));
    assert!(store.rescue_expired().await.unwrap().is_empty());

    let last = expired(
        &*store,
        NewJob {
            max_attempts: 1,
            ..job("last")
        },
    )
    .await;
    assert_eq!(store.rescue_expired().await.unwrap(), [last.id]);
    let f = get(&*store, last.id).await;
    assert_eq!(f.state, JobState::Failed);
    assert!(f.finished_at.is_some());
}

crate::checks![
    heartbeat_extends_and_reports_lost_leases,
    finish_is_fenced_by_attempt,
    rescue_never_overwrites_a_finished_job,
    retry_backs_off_and_records_the_error,
    used_up_attempts_fail,
    permanent_error_fails_at_once,
    snooze_deadly_and_handback_refund_the_attempt,
    rescue_expired_counts_the_attempt,
];
