//! Checks of bulk actions: each action changes exactly the target jobs in
//! the states it applies to, never jobs enqueued after the operation was
//! created, and an operation stepped in chunks resumes from its stored
//! cursor.

use crate::support::{enqueue, finish, get, job, job_in, plus, running};
use errand_core::audit::{AuditActor, AuditFilter};
use errand_core::history::Counter;
use errand_core::bulk::{BulkAction, BulkOperation, BulkState, BulkTarget, NewBulk};
use errand_core::store::ListFilter;
use errand_core::{JobId, JobState, NewJob, Outcome, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One job of `kind` in each state, each in a queue of its own (so claims
/// take exactly the job meant; `round` keeps queues apart between calls),
/// by state.
async fn one_in_each_state(
    store: &dyn Store,
    kind: &str,
    round: &str,
) -> BTreeMap<JobState, JobId> {
    let queue = |state: JobState| format!("{kind}.{state}.{round}");
    let mut ids = BTreeMap::new();
    let now = store.clock().now();
    let scheduled = NewJob {
        run_at: Some(plus(now, Duration::from_secs(3600))),
        ..job_in(&queue(JobState::Scheduled), kind)
    };
    ids.insert(JobState::Scheduled, enqueue(store, vec![scheduled]).await[0]);
    let available = job_in(&queue(JobState::Available), kind);
    ids.insert(JobState::Available, enqueue(store, vec![available]).await[0]);
    let r = running(store, job_in(&queue(JobState::Running), kind)).await;
    ids.insert(JobState::Running, r.id);
    for (state, outcome) in [
        (JobState::Retryable, Outcome::Retry("again".into())),
        (JobState::Completed, Outcome::Success(None)),
        (JobState::Failed, Outcome::Permanent("broken".into())),
    ] {
        let j = running(store, job_in(&queue(state), kind)).await;
        assert!(finish(store, j.lease(), outcome).await);
        assert_eq!(get(store, j.id).await.state, state);
        ids.insert(state, j.id);
    }
    let c = enqueue(store, vec![job_in(&queue(JobState::Cancelled), kind)]).await[0];
    store.cancel(c, &AuditActor::Local).await.expect("cancel");
    ids.insert(JobState::Cancelled, c);
    ids
}

/// Steps `id` with `chunk` until it is no longer running.
async fn run_to_end(store: &dyn Store, id: i64, chunk: u32) -> BulkOperation {
    for _ in 0..1000 {
        let op = store.step_bulk(id, chunk).await.expect("step");
        if op.state != BulkState::Running {
            return op;
        }
    }
    panic!("bulk operation {id} never ended");
}

/// Lifetime count of cancelled jobs of `kind` (after writing what the
/// store holds in memory).
async fn cancelled_total(store: &dyn Store, kind: &str) -> u64 {
    store.flush_history().await.expect("flush history");
    let totals = store.totals().await.expect("totals");
    totals
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.tally.counts.get(Counter::Cancelled))
        .sum()
}

fn by_kind(action: BulkAction, kind: &str) -> NewBulk {
    NewBulk {
        action,
        target: BulkTarget::Filter(ListFilter {
            kind: Some(kind.to_string()),
            ..ListFilter::default()
        }),
        actor: Some("ops".into()),
    }
}

/// The state a job in `before` has after `action` (`None`: deleted).
fn after(action: BulkAction, before: JobState) -> Option<JobState> {
    if !action.applies_to(before) {
        return Some(before);
    }
    match action {
        BulkAction::Retry | BulkAction::RunNow => Some(JobState::Available),
        BulkAction::Cancel => Some(JobState::Cancelled),
        BulkAction::Delete => None,
    }
}

/// For every action: a filter on kind `a` changes exactly a's jobs in the
/// action's states, leaves a's others and kind `b` alone, and never touches
/// a job of `a` enqueued after the operation was created.
async fn each_action_changes_exactly_its_target(store: Arc<dyn Store>) {
    for action in BulkAction::ALL {
        let a = format!("{action}-a");
        let b = format!("{action}-b");
        let a_jobs = one_in_each_state(&*store, &a, "first").await;
        let b_jobs = one_in_each_state(&*store, &b, "first").await;
        let op = store.create_bulk(by_kind(action, &a)).await.expect("create");
        assert_eq!((op.state, op.matched, op.changed), (BulkState::Running, 0, 0));
        assert_eq!(op.actor.as_deref(), Some("ops"));
        assert_eq!(store.bulk(op.id).await.unwrap(), Some(op.clone()));
        // Created after the operation: never swept in, whatever its state.
        let late = one_in_each_state(&*store, &a, "late").await;
        let cancelled_before = cancelled_total(&*store, &a).await;
        let done = run_to_end(&*store, op.id, 3).await;
        assert_eq!(done.state, BulkState::Done, "{action}");
        // A bulk cancel counts each job it cancelled in the history.
        let counted = cancelled_total(&*store, &a).await - cancelled_before;
        let want = if action == BulkAction::Cancel { done.changed } else { 0 };
        assert_eq!(counted, want, "{action}: cancelled count");
        // One audit entry for the whole operation, written when it was
        // created; its chunks add none.
        let want = by_kind(action, &a).audit_entry(op.id);
        let filter = AuditFilter {
            action: Some(want.action),
            limit: 1000,
            ..AuditFilter::default()
        };
        let entries = store.audit(&filter).await.expect("audit");
        let mine: Vec<_> = entries
            .iter()
            .filter(|e| e.change == want.change)
            .collect();
        assert_eq!(mine.len(), 1, "{action}: {entries:?}");
        assert_eq!((&*mine[0].actor, &mine[0].target), ("ops", &want.target));
        assert!(done.finished_at.is_some());
        assert_eq!(done.matched, 7, "{action}: every job of kind a, once");
        let applicable = JobState::ALL
            .into_iter()
            .filter(|s| action.applies_to(*s))
            .count() as u64;
        assert_eq!(done.changed, applicable, "{action}");
        for (state, id) in &a_jobs {
            let now = store.get(*id).await.unwrap().map(|j| j.state);
            assert_eq!(now, after(action, *state), "{action}: a's {state} job");
        }
        for (state, id) in b_jobs.iter().chain(late.iter()) {
            assert_eq!(get(&*store, *id).await.state, *state, "{action}: untouched");
        }
        if action == BulkAction::Cancel {
            let r = get(&*store, a_jobs[&JobState::Running]).await;
            assert!(r.lease_expires_at.is_none() && r.worker.is_none());
        }
        if action == BulkAction::Retry {
            let f = get(&*store, a_jobs[&JobState::Failed]).await;
            assert!(f.attempt < f.max_attempts, "a retried job has an attempt left");
            assert!(f.finished_at.is_none());
        }
    }
}

/// Stepped in chunks of two, an operation stops after each chunk with its
/// cursor and counts stored, and the next step carries on from there.
async fn a_stepped_operation_resumes_from_its_cursor(store: Arc<dyn Store>) {
    let mut failed = Vec::new();
    for _ in 0..5 {
        let j = running(&*store, job("resume")).await;
        assert!(finish(&*store, j.lease(), Outcome::Permanent("x".into())).await);
        failed.push(j.id);
    }
    let filter = ListFilter {
        kind: Some("resume".into()),
        state: Some(JobState::Failed),
        ..ListFilter::default()
    };
    let op = store
        .create_bulk(NewBulk {
            action: BulkAction::Retry,
            target: BulkTarget::Filter(filter),
            actor: None,
        })
        .await
        .unwrap();
    let first = store.step_bulk(op.id, 2).await.unwrap();
    assert_eq!((first.state, first.matched, first.changed), (BulkState::Running, 2, 2));
    assert_eq!(first.cursor, failed[3], "the lowest id of the chunk");
    assert_eq!(store.bulk(op.id).await.unwrap(), Some(first.clone()), "stored");
    let states = |ids: Vec<JobId>| {
        let store = store.clone();
        async move {
            let mut out = Vec::new();
            for id in ids {
                out.push(get(&*store, id).await.state);
            }
            out
        }
    };
    assert_eq!(
        states(failed.clone()).await,
        [
            JobState::Failed,
            JobState::Failed,
            JobState::Failed,
            JobState::Available,
            JobState::Available
        ],
        "newest first"
    );
    let second = store.step_bulk(op.id, 2).await.unwrap();
    assert_eq!((second.matched, second.cursor), (4, failed[1]));
    let last = store.step_bulk(op.id, 2).await.unwrap();
    assert_eq!((last.state, last.matched, last.changed), (BulkState::Done, 5, 5));
    assert!(
        states(failed).await.iter().all(|s| *s == JobState::Available),
        "every failed job retried once"
    );
    assert_eq!(store.step_bulk(op.id, 2).await.unwrap(), last, "done stays done");
}

/// An ids target (sorted highest first, as `BulkRequest` leaves it)
/// takes exactly those jobs (unknown ids are counted as examined and
/// skipped); a retry that would duplicate a live job's unique
/// key skips that job instead of failing the operation.
async fn ids_and_unique_keys(store: Arc<dyn Store>) {
    let keyed = |key: &str| NewJob {
        unique_key: Some(key.to_string()),
        ..job("ids")
    };
    let mut ids = Vec::new();
    for key in ["k1", "k2", "k3"] {
        let j = running(&*store, keyed(key)).await;
        assert!(finish(&*store, j.lease(), Outcome::Permanent("x".into())).await);
        ids.push(j.id);
    }
    // A live job now holds k2: retrying the failed k2 would duplicate it.
    let live = enqueue(&*store, vec![keyed("k2")]).await[0];
    let other = running(&*store, job_in("ids.other", "ids")).await;
    assert!(finish(&*store, other.lease(), Outcome::Permanent("x".into())).await);
    let unnamed = running(&*store, job_in("ids.unnamed", "ids")).await;
    assert!(finish(&*store, unnamed.lease(), Outcome::Permanent("x".into())).await);
    let op = store
        .create_bulk(NewBulk {
            action: BulkAction::Retry,
            target: BulkTarget::Ids(vec![other.id + 1000, other.id, live, ids[2], ids[1], ids[0]]),
            actor: None,
        })
        .await
        .unwrap();
    let done = run_to_end(&*store, op.id, 1000).await;
    assert_eq!((done.state, done.matched, done.changed), (BulkState::Done, 6, 3));
    assert_eq!(get(&*store, ids[0]).await.state, JobState::Available);
    assert_eq!(get(&*store, ids[1]).await.state, JobState::Failed, "k2 is live");
    assert_eq!(get(&*store, ids[2]).await.state, JobState::Available);
    assert_eq!(get(&*store, live).await.state, JobState::Available);
    assert_eq!(get(&*store, other.id).await.state, JobState::Available);
    assert_eq!(get(&*store, unnamed.id).await.state, JobState::Failed, "not named");
}

/// Operations are listed newest first, by state; a failed one keeps its error.
async fn listing_and_failing(store: Arc<dyn Store>) {
    let first = store.create_bulk(by_kind(BulkAction::Cancel, "none")).await.unwrap();
    let second = store.create_bulk(by_kind(BulkAction::Delete, "none")).await.unwrap();
    let all = store.bulks(None, 10).await.unwrap();
    assert_eq!(all.iter().map(|o| o.id).collect::<Vec<_>>(), [second.id, first.id]);
    store.fail_bulk(first.id, "gave up").await.unwrap();
    let failed = store.bulk(first.id).await.unwrap().unwrap();
    assert_eq!(failed.state, BulkState::Failed);
    assert_eq!(failed.error.as_deref(), Some("gave up"));
    assert_eq!(store.step_bulk(first.id, 10).await.unwrap(), failed, "not resumed");
    let running = store.bulks(Some(BulkState::Running), 10).await.unwrap();
    assert_eq!(running.iter().map(|o| o.id).collect::<Vec<_>>(), [second.id]);
    assert_eq!(store.bulks(None, 1).await.unwrap().len(), 1);
}

/// A filter with scanned conditions (text, tag) changes only the jobs
/// they match, stepping through every job its indexed ones select, in
/// chunks smaller than the target.
async fn a_scanned_filter_changes_only_its_matches(store: Arc<dyn Store>) {
    let mut wanted = Vec::new();
    let mut others = Vec::new();
    for i in 0..9 {
        let hit = i % 3 == 0;
        let new = NewJob {
            payload: serde_json::json!({ "to": if hit { "Needle@example.com" } else { "hay@example.com" } }),
            tags: if i % 2 == 0 { vec!["vip".into()] } else { Vec::new() },
            ..job("scanned")
        };
        let id = enqueue(&*store, vec![new]).await[0];
        if hit && i % 2 == 0 {
            wanted.push(id);
        } else {
            others.push(id);
        }
    }
    let filter = ListFilter {
        kind: Some("scanned".into()),
        text: Some("needle@".into()),
        tag: Some("vip".into()),
        ..ListFilter::default()
    };
    let op = store
        .create_bulk(NewBulk {
            action: BulkAction::Cancel,
            target: BulkTarget::Filter(filter),
            actor: None,
        })
        .await
        .unwrap();
    let done = run_to_end(&*store, op.id, 2).await;
    assert_eq!(done.state, BulkState::Done);
    assert_eq!((done.matched, done.changed), (wanted.len() as u64, wanted.len() as u64));
    for id in wanted {
        assert_eq!(get(&*store, id).await.state, JobState::Cancelled, "{id} matches");
    }
    for id in others {
        assert_eq!(get(&*store, id).await.state, JobState::Available, "{id} does not");
    }
}

crate::checks![
    each_action_changes_exactly_its_target,
    a_scanned_filter_changes_only_its_matches,
    a_stepped_operation_resumes_from_its_cursor,
    ids_and_unique_keys,
    listing_and_failing,
];
