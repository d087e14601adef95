//! Checks of the stored job counts (`Store::stats`): after every kind of
//! move a job can make — enqueue, claim (plain, limited, of a due
//! scheduled job), each outcome, rescue, promotion, cancel, retry, each
//! bulk action, pruning, refused operations — the counts equal the jobs
//! the store lists.

use crate::support::{claim_req, enqueue, finish, job_in, plus, running};
use errand_core::audit::AuditActor;
use errand_core::bulk::{BulkAction, BulkState, BulkTarget, NewBulk};
use errand_core::store::{ListFilter, Stats};
use errand_core::{KindLimit, NewJob, Outcome, Retention, Store};
use std::sync::Arc;
use std::time::Duration;

/// Counts made from every job `list` answers, page by page.
async fn listed(store: &dyn Store) -> Stats {
    let mut stats = Stats::default();
    let mut before = None;
    loop {
        let page = store
            .list(&ListFilter {
                before,
                limit: 200,
                ..ListFilter::default()
            })
            .await
            .expect("list");
        let Some(last) = page.last() else {
            return stats;
        };
        before = Some(last.id);
        for job in &page {
            stats.add(&job.queue, &job.kind, job.state, 1);
        }
    }
}

async fn agree(store: &dyn Store, after: &str) {
    assert_eq!(
        store.stats().await.expect("stats"),
        listed(store).await,
        "the stored counts differ from the jobs after {after}"
    );
}

async fn bulk(store: &dyn Store, action: BulkAction, filter: ListFilter) {
    let op = store
        .create_bulk(NewBulk {
            action,
            target: BulkTarget::Filter(filter),
            actor: None,
        })
        .await
        .expect("create bulk");
    let mut state = op.state;
    while state == BulkState::Running {
        state = store.step_bulk(op.id, 2).await.expect("step").state;
    }
    assert_eq!(state, BulkState::Done);
}

fn of_kind(kind: &str) -> ListFilter {
    ListFilter {
        kind: Some(kind.into()),
        ..ListFilter::default()
    }
}

/// Every path that moves a job keeps the stored counts exact.
async fn stored_counts_follow_every_move(store: Arc<dyn Store>) {
    let store = &*store;
    let hour = Duration::from_secs(3600);
    agree(store, "nothing").await;

    let now = store.clock().now();
    let later = NewJob {
        run_at: Some(plus(now, Duration::from_secs(2))),
        ..job_in("c1", "late")
    };
    enqueue(
        store,
        vec![job_in("c1", "a"), job_in("c1", "a"), job_in("c2", "b"), later],
    )
    .await;
    agree(store, "enqueues").await;
    let unique = NewJob {
        unique_key: Some("k".into()),
        ..job_in("c2", "b")
    };
    enqueue(store, vec![unique.clone(), unique]).await;
    agree(store, "a duplicate enqueue").await;

    for (i, outcome) in [
        Outcome::Success(None),
        Outcome::Retry("again".into()),
        Outcome::Permanent("no".into()),
        Outcome::Snooze(hour),
        Outcome::Deadly("crashed".into()),
    ]
    .into_iter()
    .enumerate()
    {
        // A queue each: a retried job would be claimed again.
        let job = running(store, job_in(&format!("c3.{i}"), "o")).await;
        agree(store, "a claim").await;
        assert!(finish(store, job.lease(), outcome).await);
        agree(store, "a finish").await;
    }

    // A limited claim takes the other path.
    let mut limited = claim_req("c1", 5);
    limited.limits.insert(
        "a".into(),
        KindLimit {
            max_running: Some(1),
            rate: None,
        },
    );
    let taken = store.claim(&limited).await.expect("claim").jobs;
    assert_eq!(taken.len(), 1);
    agree(store, "a limited claim").await;

    // The scheduled job falls due and is claimed straight from `scheduled`.
    store.clock().advance(Duration::from_secs(3));
    let mut late = claim_req("c1", 5);
    late.kinds = vec!["late".into()];
    assert_eq!(store.claim(&late).await.expect("claim").jobs.len(), 1);
    agree(store, "a claim of a due scheduled job").await;

    // Leases run out and are rescued.
    store.clock().advance(Duration::from_secs(24 * 3600));
    assert!(!store.rescue_expired().await.expect("rescue").is_empty());
    agree(store, "a rescue").await;
    assert!(store.promote_due().await.expect("promote") > 0);
    agree(store, "a promotion").await;

    let cancelled = enqueue(store, vec![job_in("c4", "x")]).await[0];
    store.cancel(cancelled, &AuditActor::Local).await.expect("cancel");
    agree(store, "a cancel").await;
    assert!(store.cancel(cancelled, &AuditActor::Local).await.is_err());
    agree(store, "a refused cancel").await;
    store.retry(cancelled, &AuditActor::Local).await.expect("retry");
    agree(store, "a retry").await;

    for kind in ["y", "z"] {
        let later = NewJob {
            run_at: Some(plus(store.clock().now(), hour)),
            ..job_in("c5", kind)
        };
        enqueue(store, vec![job_in("c5", kind), job_in("c5", kind), later]).await;
    }
    bulk(store, BulkAction::RunNow, of_kind("y")).await;
    agree(store, "a bulk run now").await;
    bulk(store, BulkAction::Cancel, of_kind("y")).await;
    agree(store, "a bulk cancel").await;
    bulk(store, BulkAction::Retry, of_kind("y")).await;
    agree(store, "a bulk retry").await;
    bulk(store, BulkAction::Delete, of_kind("z")).await;
    agree(store, "a bulk delete").await;

    store.clock().advance(Duration::from_millis(20));
    let none_kept = Retention {
        completed: Duration::ZERO,
        failed: Duration::ZERO,
        cancelled: Duration::ZERO,
        ..Retention::default()
    };
    assert!(store.prune(&none_kept).await.expect("prune") > 0);
    agree(store, "pruning").await;
}

/// `waiting_by_priority` counts the scheduled, available and retryable
/// jobs of the kinds asked by priority; running and ended jobs, and other
/// kinds, are left out.
async fn waiting_by_priority_counts_waiting_jobs(store: Arc<dyn Store>) {
    let at = |kind: &str, queue: &str, priority: i16| NewJob {
        priority,
        ..job_in(queue, kind)
    };
    let later = plus(store.clock().now(), Duration::from_secs(3600));
    enqueue(
        &*store,
        vec![
            at("pa", "default", -1),
            at("pa", "default", 0),
            at("pa", "default", 0),
            at("pa", "default", 3),
            NewJob {
                run_at: Some(later),
                ..at("pa", "default", 0)
            },
            at("pb", "default", 0),
            at("pc", "default", 0),
        ],
    )
    .await;
    // Running, then completed: not waiting.
    let done = running(&*store, at("pa", "other", -1)).await;
    let held = running(&*store, at("pa", "other", -1)).await;
    assert!(finish(&*store, done.lease(), Outcome::Success(None)).await);
    // Retryable (or available again): waiting.
    let retried = running(&*store, at("pb", "third", 5)).await;
    assert!(finish(&*store, retried.lease(), Outcome::Retry("again".into())).await);

    let kinds = vec!["pa".to_string(), "pb".to_string(), "pz".to_string()];
    let counts = store.waiting_by_priority(&kinds).await.expect("counts");
    let expected: std::collections::BTreeMap<String, std::collections::BTreeMap<i16, u64>> = [
        ("pa".to_string(), [(-1, 1), (0, 3), (3, 1)].into_iter().collect()),
        ("pb".to_string(), [(0, 1), (5, 1)].into_iter().collect()),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert!(store.waiting_by_priority(&[]).await.unwrap().is_empty());
    // The running job ends: still not counted; nothing else changed.
    assert!(finish(&*store, held.lease(), Outcome::Success(None)).await);
    assert_eq!(store.waiting_by_priority(&kinds).await.unwrap(), expected);
}

crate::checks![
    stored_counts_follow_every_move,
    waiting_by_priority_counts_waiting_jobs,
];
