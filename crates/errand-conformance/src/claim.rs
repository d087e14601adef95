//! Checks of claiming: order, due time, limits, filters, and atomicity under
//! concurrent claimers.

use crate::support::{LONG_LEASE, claim, claim_req, enqueue, job, job_in, plus};
use errand_core::store::ClaimRequest;
use errand_core::{JobId, JobState, NewJob, Store};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Lower priority first, then earlier run_at, then lower id; claimed jobs
/// are running with attempt 1, a lease and the worker's name.
async fn claim_order_is_priority_run_at_id(store: Arc<dyn Store>) {
    let now = store.clock().now();
    let at = |secs: u64| Some(now - jiff::SignedDuration::from_secs(secs as i64));
    let with = |name: &str, priority: i16, run_at| NewJob {
        priority,
        run_at,
        ..job(name)
    };
    let ids = enqueue(
        &*store,
        vec![
            with("p5", 5, None),
            with("p0_late", 0, at(10)),
            with("p0_early", 0, at(20)),
            with("p0_late_second", 0, at(10)),
            with("neg", -1, None),
        ],
    )
    .await;
    let before = store.clock().now();
    let claimed = store.claim(&claim_req("default", 10)).await.unwrap().jobs;
    let order: Vec<&str> = claimed.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(
        order,
        ["neg", "p0_early", "p0_late", "p0_late_second", "p5"]
    );
    assert!(ids[1] < ids[3], "same priority and run_at: lower id first");
    for j in &claimed {
        assert_eq!((j.state, j.attempt), (JobState::Running, 1));
        assert_eq!(j.worker.as_deref(), Some("conformance"));
        let started = j.started_at.expect("started_at is set");
        assert!(started >= before - jiff::SignedDuration::from_secs(1));
        assert!(j.lease_expires_at.expect("lease is set") >= plus(started, LONG_LEASE));
        assert_eq!(get_state(&*store, j.id).await, JobState::Running);
    }
    assert!(
        claim(&*store, "default", 10).await.is_empty(),
        "nothing left"
    );
}

async fn get_state(store: &dyn Store, id: JobId) -> JobState {
    store.get(id).await.unwrap().unwrap().state
}

/// A job whose run_at is in the future is scheduled and not claimed until
/// that time has come.
async fn future_jobs_wait_until_due(store: Arc<dyn Store>) {
    let run_at = plus(store.clock().now(), Duration::from_millis(1500));
    let enqueued = store
        .enqueue(vec![NewJob {
            run_at: Some(run_at),
            ..job("later")
        }])
        .await
        .unwrap();
    let id = enqueued[0].job.id;
    let due = enqueued[0].job.run_at;
    assert!(
        due.duration_since(run_at).abs() < jiff::SignedDuration::from_millis(1),
        "run_at is kept: {due} vs {run_at}"
    );
    assert_eq!(enqueued[0].job.state, JobState::Scheduled);
    store.clock().advance(Duration::from_millis(1499));
    assert!(
        claim(&*store, "default", 10).await.is_empty(),
        "claimed before its run_at"
    );
    store.clock().advance(Duration::from_millis(1));
    let claimed = claim(&*store, "default", 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, id);
    assert!(claimed[0].started_at.unwrap() >= due);
}

/// No more than `limit` jobs per claim; a limit of zero takes nothing.
async fn claim_respects_limit(store: Arc<dyn Store>) {
    enqueue(&*store, (0..10).map(|_| job("k")).collect()).await;
    assert!(claim(&*store, "default", 0).await.is_empty());
    assert_eq!(claim(&*store, "default", 3).await.len(), 3);
    assert_eq!(claim(&*store, "default", 5).await.len(), 5);
    assert_eq!(claim(&*store, "default", 5).await.len(), 2);
    assert!(claim(&*store, "default", 5).await.is_empty());
}

/// A claim only takes jobs of its queue and, when given, of its kinds.
async fn claim_filters_queue_and_kinds(store: Arc<dyn Store>) {
    enqueue(
        &*store,
        vec![
            job_in("mail", "send_email"),
            job_in("mail", "bounce"),
            job_in("mail", "digest"),
            job_in("other", "send_email"),
        ],
    )
    .await;
    let req = ClaimRequest {
        kinds: vec!["send_email".into(), "digest".into()],
        ..claim_req("mail", 10)
    };
    let claimed = store.claim(&req).await.unwrap().jobs;
    let mut kinds: Vec<&str> = claimed.iter().map(|j| j.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["digest", "send_email"]);
    assert!(claimed.iter().all(|j| j.queue == "mail"));
    let rest = claim(&*store, "mail", 10).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].kind, "bounce");
    assert!(claim(&*store, "nowhere", 10).await.is_empty());
    assert_eq!(claim(&*store, "other", 10).await.len(), 1);
}

/// Eight claimers racing over 2,000 jobs: each job is claimed exactly once.
async fn concurrent_claimers_take_each_job_once(store: Arc<dyn Store>) {
    const JOBS: usize = 2000;
    let mut all = HashSet::new();
    for _ in 0..(JOBS / 500) {
        all.extend(enqueue(&*store, (0..500).map(|_| job("race")).collect()).await);
    }
    assert_eq!(all.len(), JOBS);
    let claimers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = claim(&*store, "default", 10).await;
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for c in claimers {
        for id in c.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen, all, "every job was claimed");
}

crate::checks![
    claim_order_is_priority_run_at_id,
    future_jobs_wait_until_due,
    claim_respects_limit,
    claim_filters_queue_and_kinds,
    concurrent_claimers_take_each_job_once,
];
