//! Checks of uniqueness over time (`unique_for`): within the window a key
//! returns the newest job of its kind, whatever its state; past the window,
//! or without one, an ended job's key is free again.

use errand_core::audit::AuditActor;
use crate::support::{claim, count_kind, finish, job, plus, running};
use errand_core::{Enqueued, JobState, NewJob, Outcome, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A job of `kind` with unique key `key` and, if given, `unique_for`.
fn keyed(kind: &str, key: &str, unique_for: Option<Duration>) -> NewJob {
    NewJob {
        unique_key: Some(key.into()),
        unique_for,
        ..job(kind)
    }
}

async fn enqueue_one(store: &dyn Store, new: NewJob) -> Enqueued {
    let mut answer = store.enqueue(vec![new]).await.expect("enqueue");
    assert_eq!(answer.len(), 1);
    answer.remove(0)
}

/// Within the window, a second enqueue returns the first job unchanged
/// with `duplicate: true`, whether it is live, completed or cancelled; other
/// kinds may use the key; nothing extra is inserted.
async fn unique_for_returns_the_job_within_the_window(store: Arc<dyn Store>) {
    let first = enqueue_one(&*store, keyed("report", "r1", Some(HOUR))).await;
    assert!(!first.duplicate);
    let live = enqueue_one(&*store, keyed("report", "r1", Some(HOUR))).await;
    assert!(live.duplicate, "a live job is returned");
    assert_eq!(live.job, first.job);

    let claimed = claim(&*store, "default", 1).await.remove(0);
    assert_eq!(claimed.id, first.job.id);
    assert!(finish(&*store, claimed.lease(), Outcome::Success(None)).await);
    let done = store.get(first.job.id).await.unwrap().unwrap();
    let again = enqueue_one(
        &*store,
        NewJob {
            payload: json!("different"),
            ..keyed("report", "r1", Some(HOUR))
        },
    )
    .await;
    assert!(
        again.duplicate,
        "a completed job within the window is returned"
    );
    assert_eq!(again.job, done, "returned unchanged, state completed");
    assert_eq!(again.job.state, JobState::Completed);

    let other_kind = enqueue_one(&*store, keyed("invoice", "r1", Some(HOUR))).await;
    assert!(!other_kind.duplicate, "keys are per kind");

    let c = enqueue_one(&*store, keyed("sync", "s1", Some(HOUR))).await;
    store.cancel(c.job.id, &AuditActor::Local).await.unwrap();
    let after_cancel = enqueue_one(&*store, keyed("sync", "s1", Some(HOUR))).await;
    assert!(after_cancel.duplicate, "a cancelled job within the window");
    assert_eq!(after_cancel.job.id, c.job.id);
    assert_eq!(after_cancel.job.state, JobState::Cancelled);

    assert_eq!(count_kind(&*store, "report").await, 1, "no extra row");
    assert_eq!(count_kind(&*store, "sync").await, 1, "no extra row");
}

/// Past the window a new job is inserted; a later enqueue with a long window
/// then returns the newest job of the key, not the first.
async fn unique_for_expires_after_the_window(store: Arc<dyn Store>) {
    let short = Duration::from_secs(60);
    let first = running(&*store, keyed("digest", "d", Some(short))).await;
    assert!(finish(&*store, first.lease(), Outcome::Success(None)).await);
    store.clock().advance(short);
    let edge = enqueue_one(&*store, keyed("digest", "d", Some(short))).await;
    assert!(edge.duplicate, "the window includes its last instant");
    store.clock().advance(Duration::from_micros(1));
    let second = enqueue_one(&*store, keyed("digest", "d", Some(short))).await;
    assert!(!second.duplicate, "the window has passed");
    assert!(second.job.id > first.id);
    assert_eq!(second.job.state, JobState::Available);

    let claimed = claim(&*store, "default", 1).await.remove(0);
    assert_eq!(claimed.id, second.job.id);
    assert!(finish(&*store, claimed.lease(), Outcome::Permanent("x".into())).await);
    let newest = enqueue_one(&*store, keyed("digest", "d", Some(HOUR))).await;
    assert!(newest.duplicate);
    assert_eq!(newest.job.id, second.job.id, "the newest job of the key");
    assert_eq!(newest.job.state, JobState::Failed);
    assert_eq!(count_kind(&*store, "digest").await, 2);
}

/// Without `unique_for`, an ended job's key is free again even right away.
async fn without_unique_for_an_ended_key_is_free(store: Arc<dyn Store>) {
    let first = running(&*store, keyed("plain", "p", None)).await;
    assert!(finish(&*store, first.lease(), Outcome::Success(None)).await);
    let again = enqueue_one(&*store, keyed("plain", "p", None)).await;
    assert!(!again.duplicate);
    assert!(again.job.id > first.id);
    assert_eq!(count_kind(&*store, "plain").await, 2);
}

/// `live_by_unique` finds the newest live job with a key among the kinds
/// asked, whether scheduled, available or running; never an ended one, a
/// kind not asked, or another key.
async fn live_by_unique_finds_the_newest_live_job_of_the_kinds(store: Arc<dyn Store>) {
    let kinds = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let lookup = |names: &'static [&'static str], key: &'static str| {
        let store = store.clone();
        async move {
            store
                .live_by_unique(&kinds(names), key)
                .await
                .expect("live_by_unique")
                .map(|j| j.id)
        }
    };
    let a = enqueue_one(
        &*store,
        NewJob {
            queue: "qa".into(),
            ..keyed("ga", "k1", None)
        },
    )
    .await
    .job;
    let later = plus(store.clock().now(), HOUR);
    let b = enqueue_one(
        &*store,
        NewJob {
            run_at: Some(later),
            ..keyed("gb", "k1", None)
        },
    )
    .await
    .job;
    assert_eq!(b.state, JobState::Scheduled);
    let other = enqueue_one(&*store, keyed("ga", "k2", None)).await.job;
    assert_eq!(lookup(&["ga", "gb"], "k1").await, Some(b.id), "the newest");
    assert_eq!(lookup(&["gb", "ga"], "k1").await, Some(b.id), "any order");
    assert_eq!(lookup(&["ga"], "k1").await, Some(a.id), "only the kinds asked");
    assert_eq!(lookup(&["ga"], "k2").await, Some(other.id));
    assert_eq!(lookup(&["gc"], "k1").await, None);
    assert_eq!(lookup(&[], "k1").await, None);
    assert_eq!(lookup(&["ga", "gb"], "nope").await, None);

    // Running: still live.
    let claimed = claim(&*store, "qa", 1).await.remove(0);
    assert_eq!(claimed.id, a.id);
    assert_eq!(lookup(&["ga"], "k1").await, Some(a.id));
    let found = store
        .live_by_unique(&kinds(&["ga"]), "k1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.state, JobState::Running);
    // Ended: gone; the other kind's live job is what remains.
    assert!(finish(&*store, claimed.lease(), Outcome::Success(None)).await);
    assert_eq!(lookup(&["ga"], "k1").await, None);
    store.cancel(b.id, &AuditActor::Local).await.expect("cancel");
    assert_eq!(lookup(&["ga", "gb"], "k1").await, None);
    // A new job with the freed key is found.
    let again = enqueue_one(&*store, keyed("ga", "k1", None)).await.job;
    assert!(again.id > b.id);
    assert_eq!(lookup(&["ga", "gb"], "k1").await, Some(again.id));
}

crate::checks![
    unique_for_returns_the_job_within_the_window,
    unique_for_expires_after_the_window,
    without_unique_for_an_ended_key_is_free,
    live_by_unique_finds_the_newest_live_job_of_the_kinds,
];
