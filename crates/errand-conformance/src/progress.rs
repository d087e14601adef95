//! Checks of stored progress (docs/decisions/0025): the latest value an
//! attempt reported and its time are kept on the job, fenced like a finish
//! (only the holder of the running claim can set them), kept once the
//! attempt ends and gone when a new attempt starts.

use crate::lifecycle::expired;
use crate::support::{claim, finish, get, job, jobs_of_kind, running};
use errand_core::audit::AuditActor;
use errand_core::{JobState, Lease, Outcome, Progress, ProgressUpdate, Store};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A report of `value` by `lease` at `at`.
fn update(lease: Lease, value: Value, at: Timestamp) -> ProgressUpdate {
    ProgressUpdate {
        lease,
        progress: Progress::new(value).expect("a small value"),
        at,
    }
}

/// Records one report; true when the store applied it.
async fn report(store: &dyn Store, lease: Lease, value: Value) -> bool {
    let at = store.clock().now();
    let answers = store
        .record_progress(vec![update(lease, value, at)])
        .await
        .expect("record_progress");
    assert_eq!(answers.len(), 1, "one answer per update");
    answers[0]
}

/// A running job's reports replace each other; the job (by id and in a
/// listing) carries the latest value and the time it was reported.
async fn the_latest_report_is_kept_with_its_time(store: Arc<dyn Store>) {
    let j = running(&*store, job("progressing")).await;
    assert_eq!((j.progress.clone(), j.progress_at), (None, None));
    assert_eq!(get(&*store, j.id).await.progress, None, "none reported yet");
    let first_at = store.clock().now();
    assert!(report(&*store, j.lease(), json!({"done": 1, "of": 3})).await);
    store.clock().advance(Duration::from_secs(5));
    let second_at = store.clock().now();
    assert!(report(&*store, j.lease(), json!({"done": 2, "of": 3})).await);
    let got = get(&*store, j.id).await;
    assert_eq!(got.progress, Some(json!({"done": 2, "of": 3})));
    assert_eq!(got.progress_at, Some(second_at));
    assert!(second_at > first_at);
    let listed = jobs_of_kind(&*store, "progressing").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].progress, got.progress, "a listing carries it too");
    assert_eq!(listed[0].progress_at, got.progress_at);
    assert_eq!(listed[0].state, JobState::Running);
}

/// Several reports in one call are answered in order, each fenced on its
/// own: the held leases apply, the others change nothing.
async fn reports_in_one_call_are_fenced_one_by_one(store: Arc<dyn Store>) {
    let a = running(&*store, job("many")).await;
    let b = running(&*store, job("many")).await;
    let done = running(&*store, job("many")).await;
    assert!(finish(&*store, done.lease(), Outcome::Success(None)).await);
    let stale = Lease {
        fence: a.fence + 1,
        ..a.lease()
    };
    let unknown = Lease {
        id: a.id + 10_000,
        fence: 1,
    };
    let now = store.clock().now();
    let answers = store
        .record_progress(vec![
            update(a.lease(), json!("a"), now),
            update(stale, json!("stale"), now),
            update(done.lease(), json!("late"), now),
            update(unknown, json!("nobody"), now),
            update(b.lease(), json!("b"), now),
        ])
        .await
        .unwrap();
    assert_eq!(answers, vec![true, false, false, false, true]);
    assert_eq!(get(&*store, a.id).await.progress, Some(json!("a")));
    assert_eq!(get(&*store, b.id).await.progress, Some(json!("b")));
    assert_eq!(get(&*store, done.id).await.progress, None);
    assert!(store.record_progress(Vec::new()).await.unwrap().is_empty());
}

/// An attempt's last progress stays on the job once it ends (where a
/// failed job stopped is worth seeing) until the next attempt starts,
/// which starts without any.
async fn progress_is_kept_after_the_attempt_and_cleared_by_the_next(store: Arc<dyn Store>) {
    let first = running(&*store, job("again")).await;
    assert!(report(&*store, first.lease(), json!(90)).await);
    assert!(finish(&*store, first.lease(), Outcome::Retry("boom".into())).await);
    let ended = get(&*store, first.id).await;
    assert_eq!(ended.state, JobState::Retryable);
    assert_eq!(ended.progress, Some(json!(90)), "kept after the attempt");
    assert!(ended.progress_at.is_some());

    store.clock().advance(Duration::from_secs(3600));
    store.promote_due().await.unwrap();
    let second = claim(&*store, "default", 1).await.remove(0);
    assert_eq!(second.id, first.id);
    assert_eq!((&second.progress, second.progress_at), (&None, None));
    let now = get(&*store, first.id).await;
    assert_eq!((now.progress, now.progress_at), (None, None), "a new attempt");
    assert!(report(&*store, second.lease(), json!(10)).await);
    assert!(finish(&*store, second.lease(), Outcome::Success(None)).await);
    let done = get(&*store, first.id).await;
    assert_eq!(
        (done.state, done.progress),
        (JobState::Completed, Some(json!(10)))
    );
}

/// A rescued attempt's late report changes nothing, neither before the
/// job is claimed again (same fence, no longer running) nor after.
async fn a_late_report_of_a_rescued_attempt_changes_nothing(store: Arc<dyn Store>) {
    let old = expired(&*store, job("rescued")).await;
    assert!(report(&*store, old.lease(), json!("while held")).await);
    assert_eq!(store.rescue_expired().await.unwrap(), vec![old.id]);
    assert!(!report(&*store, old.lease(), json!("late")).await);
    let rescued = get(&*store, old.id).await;
    assert_ne!(rescued.state, JobState::Running);
    assert_eq!(rescued.progress, Some(json!("while held")));

    store.clock().advance(Duration::from_secs(3600));
    store.promote_due().await.unwrap();
    let new = claim(&*store, "default", 1).await.remove(0);
    assert_eq!(new.id, old.id);
    assert!(!report(&*store, old.lease(), json!("later")).await);
    assert_eq!(get(&*store, old.id).await.progress, None);
    assert!(report(&*store, new.lease(), json!("new holder")).await);
    assert_eq!(
        get(&*store, old.id).await.progress,
        Some(json!("new holder"))
    );
}

/// A cancelled job takes no more progress from the attempt it stopped.
async fn a_cancelled_job_takes_no_progress(store: Arc<dyn Store>) {
    let j = running(&*store, job("stopped")).await;
    store.cancel(j.id, &AuditActor::Local).await.unwrap();
    assert!(!report(&*store, j.lease(), json!(1)).await);
    assert_eq!(get(&*store, j.id).await.progress, None);
}

crate::checks![
    the_latest_report_is_kept_with_its_time,
    reports_in_one_call_are_fenced_one_by_one,
    progress_is_kept_after_the_attempt_and_cleared_by_the_next,
    a_late_report_of_a_rescued_attempt_changes_nothing,
    a_cancelled_job_takes_no_progress,
];
