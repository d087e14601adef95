//! Small helpers the checks share: building jobs and requests, and reading
//! a job back. Checks move the store's manual clock rather than wait.

use errand_core::store::{ClaimRequest, Finish, ListFilter};
use errand_core::{Backoff, Job, JobId, JobState, Lease, NewJob, Outcome, Store, StoreEvent};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::broadcast;

/// A lease long enough never to expire during a check.
pub(crate) const LONG_LEASE: Duration = Duration::from_secs(3600);

/// A due job of `kind` in the default queue.
pub(crate) fn job(kind: &str) -> NewJob {
    NewJob::new(kind, serde_json::json!({"kind": kind}))
}

/// A job of `kind` in `queue`.
pub(crate) fn job_in(queue: &str, kind: &str) -> NewJob {
    NewJob {
        queue: queue.to_string(),
        ..job(kind)
    }
}

/// A claim of up to `limit` jobs of any kind from `queue`.
pub(crate) fn claim_req(queue: &str, limit: u32) -> ClaimRequest {
    ClaimRequest {
        queue: queue.to_string(),
        kinds: Vec::new(),
        limit,
        worker: "conformance".to_string(),
        lease: LONG_LEASE,
        limits: BTreeMap::new(),
    }
}

/// Enqueues `jobs` and returns their ids, in order.
pub(crate) async fn enqueue(store: &dyn Store, jobs: Vec<NewJob>) -> Vec<JobId> {
    store
        .enqueue(jobs)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.job.id)
        .collect()
}

/// Claims up to `limit` from `queue`.
pub(crate) async fn claim(store: &dyn Store, queue: &str, limit: u32) -> Vec<Job> {
    store
        .claim(&claim_req(queue, limit))
        .await
        .expect("claim")
        .jobs
}

/// Enqueues one due job of `kind` and claims it.
pub(crate) async fn running(store: &dyn Store, new: NewJob) -> Job {
    let queue = new.queue.clone();
    let id = enqueue(store, vec![new]).await[0];
    let claimed = claim(store, &queue, 1).await;
    assert_eq!(claimed.len(), 1, "the job just enqueued is claimable");
    assert_eq!(claimed[0].id, id);
    claimed.into_iter().next().unwrap()
}

/// A backoff with no randomness.
pub(crate) fn fixed_backoff(delay: Duration) -> Backoff {
    Backoff {
        base: delay,
        max: delay,
        jitter: 0.0,
    }
}

/// Ends one attempt; true when the store applied it.
pub(crate) async fn finish(store: &dyn Store, lease: Lease, outcome: Outcome) -> bool {
    let answers = store
        .finish(vec![Finish {
            lease,
            outcome,
            backoff: fixed_backoff(Duration::ZERO),
        }])
        .await
        .expect("finish");
    assert_eq!(answers.len(), 1, "one answer per finish");
    answers[0]
}

/// The job with `id`, which must exist.
pub(crate) async fn get(store: &dyn Store, id: JobId) -> Job {
    store.get(id).await.expect("get").expect("job exists")
}

/// `t + d`.
pub(crate) fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t + jiff::SignedDuration::try_from(d).unwrap()
}

/// Waits for an event matching `wanted`, skipping others.
pub(crate) async fn expect_event(
    events: &mut broadcast::Receiver<StoreEvent>,
    what: &str,
    wanted: impl Fn(&StoreEvent) -> bool,
) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(e) if wanted(&e) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no event: {what}");
}

/// How many jobs of `kind` exist, in any state.
pub(crate) async fn count_kind(store: &dyn Store, kind: &str) -> u64 {
    let stats = store.stats().await.expect("stats");
    stats.kinds.get(kind).map_or(0, |by| by.values().sum())
}

/// How many jobs of `kind` are in `state`.
pub(crate) async fn count_kind_in(store: &dyn Store, kind: &str, state: JobState) -> u64 {
    store.stats().await.expect("stats").of_kind(kind, state)
}

/// Every job of `kind`, oldest first.
pub(crate) async fn jobs_of_kind(store: &dyn Store, kind: &str) -> Vec<Job> {
    let filter = ListFilter {
        kind: Some(kind.to_string()),
        limit: 10_000,
        ..Default::default()
    };
    let mut jobs = store.list(&filter).await.expect("list");
    jobs.reverse();
    jobs
}
