//! Checks of the operator's side: cancel, retry, list, stats, pruning,
//! promotion of due jobs, and the event stream.

use errand_core::audit::AuditActor;
use crate::support::{
    claim, enqueue, expect_event, finish, fixed_backoff, get, job, job_in, plus, running,
};
use errand_core::store::{Finish, LIST_VALUE_CAP, ListFilter, SCAN_LIMIT, Stats};
use errand_core::{
    Job, JobId, JobState, NewJob, Omitted, Outcome, Retention, Store, StoreError, StoreEvent,
};

use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn assert_conflict(
    result: Result<errand_core::Job, StoreError>,
    id: JobId,
    state: JobState,
    action: &str,
) {
    match result {
        Err(StoreError::Conflict {
            id: i,
            state: s,
            action: a,
        }) => {
            assert_eq!((i, s, a), (id, state, action));
        }
        other => panic!("expected a {action} conflict for job {id} in {state}, got {other:?}"),
    }
}

fn assert_not_found(result: Result<errand_core::Job, StoreError>, id: JobId) {
    match result {
        Err(StoreError::NotFound(i)) => assert_eq!(i, id),
        other => panic!("expected NotFound({id}), got {other:?}"),
    }
}

/// Running and available jobs can be cancelled; terminal ones conflict and
/// stay as they were; unknown ids are NotFound.
async fn cancel_rules(store: Arc<dyn Store>) {
    let r = running(&*store, job("c")).await;
    let a = enqueue(&*store, vec![job("c")]).await[0];
    let cancelled = store.cancel(r.id, &AuditActor::Local).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(cancelled.lease_expires_at.is_none() && cancelled.worker.is_none());
    assert_eq!(get(&*store, r.id).await, cancelled);
    assert_eq!(store.cancel(a, &AuditActor::Local).await.unwrap().state, JobState::Cancelled);
    assert!(
        claim(&*store, "default", 10).await.is_empty(),
        "cancelled jobs are not claimed"
    );

    assert_conflict(
        store.cancel(r.id, &AuditActor::Local).await,
        r.id,
        JobState::Cancelled,
        "cancel",
    );
    assert_eq!(
        get(&*store, r.id).await,
        cancelled,
        "a refused cancel changed nothing"
    );
    let done = running(&*store, job("c")).await;
    assert!(finish(&*store, done.lease(), Outcome::Success(None)).await);
    assert_conflict(
        store.cancel(done.id, &AuditActor::Local).await,
        done.id,
        JobState::Completed,
        "cancel",
    );
    assert_not_found(store.cancel(done.id + 10_000, &AuditActor::Local).await, done.id + 10_000);
}

/// Failed and cancelled jobs can be retried: available now, with an attempt
/// left; any other state conflicts.
async fn retry_rules(store: Arc<dyn Store>) {
    let new = NewJob {
        max_attempts: 1,
        ..job("r")
    };
    let f = running(&*store, new).await;
    assert!(finish(&*store, f.lease(), Outcome::Retry("nope".into())).await);
    assert_eq!(get(&*store, f.id).await.state, JobState::Failed);
    let before = store.clock().now();
    let retried = store.retry(f.id, &AuditActor::Local).await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    assert!(retried.finished_at.is_none());
    assert_eq!(
        (retried.attempt, retried.max_attempts),
        (0, 1),
        "its last attempt given back"
    );
    assert!(retried.run_at >= before - jiff::SignedDuration::from_secs(1));
    assert_eq!(retried.errors.len(), 1, "history is kept");
    let again = claim(&*store, "default", 1).await;
    assert_eq!((again[0].id, again[0].attempt), (f.id, 1));
    assert!(again[0].fence > f.fence, "a new claim, a new fence");
    assert_conflict(store.retry(f.id, &AuditActor::Local).await, f.id, JobState::Running, "retry");

    let c = enqueue(&*store, vec![job("r")]).await[0];
    store.cancel(c, &AuditActor::Local).await.unwrap();
    let back = store.retry(c, &AuditActor::Local).await.unwrap();
    assert_eq!((back.state, back.max_attempts), (JobState::Available, 25));
    assert_conflict(store.retry(c, &AuditActor::Local).await, c, JobState::Available, "retry");
    assert_eq!(
        get(&*store, c).await,
        back,
        "a refused retry changed nothing"
    );
    assert_not_found(store.retry(c + 10_000, &AuditActor::Local).await, c + 10_000);
}

async fn ids(store: &dyn Store, filter: ListFilter) -> Vec<JobId> {
    store
        .list(&filter)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

/// Filters by state, kind and queue combine; pages follow the cursor
/// newest first without gaps or repeats.
async fn list_filters_and_paginates_newest_first(store: Arc<dyn Store>) {
    let all = enqueue(
        &*store,
        vec![
            job_in("q1", "a"),
            job_in("q1", "b"),
            job_in("q2", "a"),
            job_in("q2", "b"),
            job_in("q1", "a"),
        ],
    )
    .await;
    let running = claim(&*store, "q2", 1).await;
    assert_eq!(running[0].id, all[2]);
    let page = |limit| ListFilter {
        limit,
        ..Default::default()
    };
    let newest_first: Vec<JobId> = all.iter().rev().copied().collect();
    assert_eq!(ids(&*store, page(100)).await, newest_first);
    let by = |state, kind: Option<&str>, queue: Option<&str>| ListFilter {
        state,
        kind: kind.map(Into::into),
        queue: queue.map(Into::into),
        ..page(100)
    };
    assert_eq!(
        ids(&*store, by(Some(JobState::Running), None, None)).await,
        [all[2]]
    );
    assert_eq!(
        ids(&*store, by(None, Some("a"), None)).await,
        [all[4], all[2], all[0]]
    );
    assert_eq!(
        ids(&*store, by(None, None, Some("q2"))).await,
        [all[3], all[2]]
    );
    assert_eq!(
        ids(
            &*store,
            by(Some(JobState::Available), Some("a"), Some("q1"))
        )
        .await,
        [all[4], all[0]]
    );
    assert!(ids(&*store, by(None, Some("zzz"), None)).await.is_empty());

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let got = ids(&*store, ListFilter { before, ..page(2) }).await;
        assert!(got.len() <= 2);
        let Some(&last) = got.last() else { break };
        pages.extend(got);
        before = Some(last);
    }
    assert_eq!(pages, newest_first);
}

/// A listing carries payloads, results and errors up to the cap whole and
/// leaves larger ones out with their sizes; `get` still has them in full.
async fn list_leaves_out_values_over_the_cap(store: Arc<dyn Store>) {
    let cap = LIST_VALUE_CAP as usize;
    let big = json!("x".repeat(cap + 100));
    let fits = json!("y".repeat(cap - 100));
    let with_payload = |queue: &str, payload: &serde_json::Value| NewJob {
        payload: payload.clone(),
        ..job_in(queue, "k")
    };
    let big_payload = enqueue(&*store, vec![with_payload("q1", &big)]).await[0];
    let fitting = enqueue(&*store, vec![with_payload("q1", &fits)]).await[0];
    let done = running(&*store, job_in("q2", "k")).await;
    assert!(finish(&*store, done.lease(), Outcome::Success(Some(big.clone()))).await);
    let retried = running(&*store, job_in("q3", "k")).await;
    let long_error = "e".repeat(cap + 100);
    assert!(finish(&*store, retried.lease(), Outcome::Retry(long_error.clone())).await);

    let listed: BTreeMap<JobId, Job> = store
        .list(&ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    assert_eq!(listed.len(), 4);
    let size = |v: &serde_json::Value| v.to_string().len() as u64;

    let j = &listed[&big_payload];
    assert_eq!(
        j.payload,
        serde_json::Value::Null,
        "a big payload is left out"
    );
    assert_eq!(
        j.omitted,
        Omitted {
            payload: Some(size(&big)),
            ..Default::default()
        }
    );
    assert_eq!(
        get(&*store, big_payload).await.payload,
        big,
        "get has it whole"
    );

    let j = &listed[&fitting];
    assert_eq!((&j.payload, j.omitted), (&fits, Omitted::default()));

    let j = &listed[&done.id];
    assert_eq!((&j.payload, j.state), (&done.payload, JobState::Completed));
    assert_eq!(j.result, None, "a big result is left out");
    assert_eq!(j.omitted.result, Some(size(&big)));
    assert_eq!(get(&*store, done.id).await.result, Some(big));

    let j = &listed[&retried.id];
    assert!(j.errors.is_empty(), "big errors are left out");
    assert!(j.omitted.errors.is_some_and(|n| n > LIST_VALUE_CAP));
    assert_eq!((j.omitted.payload, j.omitted.result), (None, None));
    assert_eq!(get(&*store, retried.id).await.errors[0].error, long_error);
}

/// Counts per state, overall and per queue and kind.
async fn stats_count_by_queue_kind_and_state(store: Arc<dyn Store>) {
    assert_eq!(
        store.stats().await.unwrap(),
        Stats::default(),
        "a fresh store is empty"
    );
    enqueue(
        &*store,
        vec![
            job_in("q1", "a"),
            job_in("q1", "a"),
            job_in("q1", "b"),
            job_in("q2", "a"),
        ],
    )
    .await;
    let done = claim(&*store, "q1", 1).await.remove(0);
    assert!(finish(&*store, done.lease(), Outcome::Success(None)).await);
    claim(&*store, "q1", 1).await;
    let mut expected = Stats::default();
    expected.add("q1", "a", JobState::Completed, 1);
    expected.add("q1", "a", JobState::Running, 1);
    expected.add("q1", "b", JobState::Available, 1);
    expected.add("q2", "a", JobState::Available, 1);
    assert_eq!(store.stats().await.unwrap(), expected);
}

/// Pruning deletes terminal jobs older than their state's retention and
/// nothing else.
async fn prune_honours_retention_per_state(store: Arc<dyn Store>) {
    let completed = running(&*store, job("p")).await;
    assert!(finish(&*store, completed.lease(), Outcome::Success(None)).await);
    let failed = running(&*store, job("p")).await;
    assert!(finish(&*store, failed.lease(), Outcome::Permanent("x".into())).await);
    let cancelled = enqueue(&*store, vec![job("p")]).await[0];
    store.cancel(cancelled, &AuditActor::Local).await.unwrap();
    let live = enqueue(&*store, vec![job("p")]).await[0];
    let later = enqueue(
        &*store,
        vec![NewJob {
            run_at: Some(plus(store.clock().now(), Duration::from_secs(3600))),
            ..job("p")
        }],
    )
    .await[0];
    // Finished strictly before the cutoff of a zero retention.
    store.clock().advance(Duration::from_millis(20));

    let hour = Duration::from_secs(3600);
    let keep_all = Retention {
        completed: hour,
        failed: hour,
        cancelled: hour,
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep_all).await.unwrap(), 0);
    let only_completed = Retention {
        completed: Duration::ZERO,
        ..keep_all
    };
    assert_eq!(store.prune(&only_completed).await.unwrap(), 1);
    assert!(store.get(completed.id).await.unwrap().is_none());
    assert!(store.get(failed.id).await.unwrap().is_some());
    let none_kept = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
        ..keep_all
    };
    assert_eq!(store.prune(&none_kept).await.unwrap(), 2);
    for id in [failed.id, cancelled] {
        assert!(store.get(id).await.unwrap().is_none());
    }
    for id in [live, later] {
        assert!(
            store.get(id).await.unwrap().is_some(),
            "live jobs are never pruned"
        );
    }
    let next = enqueue(&*store, vec![job("p")]).await[0];
    assert!(next > later, "ids are never reused after pruning");
}

/// Snoozed (scheduled) and retryable jobs become available once due, with
/// an Enqueued event; jobs not yet due stay scheduled.
async fn promote_due_makes_jobs_available(store: Arc<dyn Store>) {
    let far = enqueue(
        &*store,
        vec![NewJob {
            run_at: Some(plus(store.clock().now(), Duration::from_secs(3600))),
            ..job_in("p0", "s")
        }],
    )
    .await[0];
    let wait = Duration::from_millis(500);
    let snoozed = running(&*store, job_in("p1", "s")).await;
    assert!(finish(&*store, snoozed.lease(), Outcome::Snooze(wait)).await);
    let failed = running(&*store, job_in("p2", "s")).await;
    let retry = Finish {
        lease: failed.lease(),
        outcome: Outcome::Retry("again".into()),
        backoff: fixed_backoff(wait),
    };
    assert_eq!(store.finish(vec![retry]).await.unwrap(), [true]);
    assert_eq!(get(&*store, snoozed.id).await.state, JobState::Scheduled);
    assert_eq!(get(&*store, failed.id).await.state, JobState::Retryable);

    let mut events = store.subscribe();
    store.clock().advance(wait - Duration::from_micros(1));
    assert_eq!(store.promote_due().await.unwrap(), 0, "not due yet");
    store.clock().advance(Duration::from_micros(1));
    assert_eq!(store.promote_due().await.unwrap(), 2);
    for id in [snoozed.id, failed.id] {
        assert_eq!(get(&*store, id).await.state, JobState::Available);
    }
    assert_eq!(get(&*store, far).await.state, JobState::Scheduled);
    assert_eq!(store.promote_due().await.unwrap(), 0);
    expect_event(
        &mut events,
        "Enqueued(p1) after promotion",
        |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "p1")),
    )
    .await;
}

/// Enqueued names the queue of due jobs; Finished names jobs that ended,
/// including by cancel.
async fn events_follow_commits(store: Arc<dyn Store>) {
    let mut events = store.subscribe();
    let id = enqueue(&*store, vec![job_in("evq", "e")]).await[0];
    expect_event(
        &mut events,
        "Enqueued(evq)",
        |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "evq")),
    )
    .await;
    assert!(
        store.get(id).await.unwrap().is_some(),
        "the event came after the commit"
    );
    let j = claim(&*store, "evq", 1).await.remove(0);
    assert!(finish(&*store, j.lease(), Outcome::Success(None)).await);
    expect_event(
        &mut events,
        "Finished after finish",
        |e| matches!(e, StoreEvent::Finished(ids) if ids.contains(&id)),
    )
    .await;
    let c = enqueue(&*store, vec![job_in("evq", "e")]).await[0];
    store.cancel(c, &AuditActor::Local).await.unwrap();
    expect_event(
        &mut events,
        "Finished after cancel",
        |e| matches!(e, StoreEvent::Finished(ids) if ids.contains(&c)),
    )
    .await;
    store.retry(c, &AuditActor::Local).await.unwrap();
    expect_event(
        &mut events,
        "Enqueued after retry",
        |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "evq")),
    )
    .await;
}

/// Tag, creation time and text filters (the scanned ones) combine with
/// the indexed ones; text ignores ASCII case, matches `%` and `_` only
/// literally and looks in errors too; they look at the newest
/// [`SCAN_LIMIT`] rows only, and `scan_floor` says where to go on.
async fn list_scanned_filters_within_the_scan_window(store: Arc<dyn Store>) {
    let tagged = |queue: &str, tag: &str, payload: serde_json::Value| NewJob {
        tags: vec![tag.to_string()],
        payload,
        ..job_in(queue, "k")
    };
    let red = enqueue(&*store, vec![tagged("q1", "red", json!({"note": "Disk FULL at 50%"}))]).await[0];
    store.clock().advance(Duration::from_secs(1));
    let blue = enqueue(&*store, vec![tagged("q2", "blue", json!({"note": "ok_1"}))]).await[0];
    let failing = running(&*store, tagged("q3", "blue", json!({}))).await;
    assert!(finish(&*store, failing.lease(), Outcome::Retry("connection reset".into())).await);
    let filter = |f: ListFilter| ListFilter { limit: 100, ..f };
    let text = |t: &str| filter(ListFilter { text: Some(t.into()), ..Default::default() });
    assert_eq!(ids(&*store, text("disk full")).await, [red], "case is ignored");
    assert_eq!(ids(&*store, text("50%")).await, [red]);
    assert_eq!(ids(&*store, text("t 5%")).await, Vec::<JobId>::new(), "% is literal");
    assert_eq!(ids(&*store, text("k_1")).await, [blue]);
    assert_eq!(ids(&*store, text("k11")).await, Vec::<JobId>::new(), "_ is literal");
    assert_eq!(ids(&*store, text("connection RESET")).await, [failing.id], "errors too");
    let tag = |t: &str, queue: Option<&str>| filter(ListFilter {
        tag: Some(t.into()),
        queue: queue.map(Into::into),
        ..Default::default()
    });
    assert_eq!(ids(&*store, tag("blue", None)).await, [failing.id, blue]);
    assert_eq!(ids(&*store, tag("blue", Some("q3"))).await, [failing.id]);
    assert_eq!(ids(&*store, tag("re", None)).await, Vec::<JobId>::new(), "whole tags");
    let blue_at = get(&*store, blue).await.created_at;
    let since = filter(ListFilter { created_after: Some(blue_at), ..Default::default() });
    assert_eq!(ids(&*store, since).await, [failing.id, blue]);
    let until = filter(ListFilter { created_before: Some(blue_at), ..Default::default() });
    assert_eq!(ids(&*store, until).await, [red]);
    assert_eq!(store.scan_floor(&tag("red", None)).await.unwrap(), None, "fewer rows than the window");

    // SCAN_LIMIT newer jobs push `red` out of the window of a tag filter.
    let newer = enqueue(&*store, (0..SCAN_LIMIT).map(|_| job_in("q1", "k")).collect()).await;
    assert_eq!(ids(&*store, tag("red", None)).await, Vec::<JobId>::new());
    let floor = store.scan_floor(&tag("red", None)).await.unwrap();
    assert_eq!(floor, Some(newer[0]), "the window's lowest id");
    let on = ListFilter { before: floor, ..tag("red", None) };
    assert_eq!(ids(&*store, on).await, [red], "the next window finds it");
    // Indexed filters narrow the window itself: q2 has one job.
    assert_eq!(ids(&*store, tag("blue", Some("q2"))).await, [blue]);
    assert_eq!(store.scan_floor(&tag("blue", Some("q2"))).await.unwrap(), None);
    // A state among the indexed filters, and a window it fills.
    let available = |t: &str| ListFilter { state: Some(JobState::Available), ..tag(t, Some("q1")) };
    assert_eq!(ids(&*store, available("red")).await, Vec::<JobId>::new());
    assert_eq!(store.scan_floor(&available("red")).await.unwrap(), Some(newer[0]));
}

crate::checks![
    cancel_rules,
    retry_rules,
    list_filters_and_paginates_newest_first,
    list_scanned_filters_within_the_scan_window,
    list_leaves_out_values_over_the_cap,
    stats_count_by_queue_kind_and_state,
    prune_honours_retention_per_state,
    promote_due_makes_jobs_available,
    events_follow_commits,
];
