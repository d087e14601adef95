//! Checks of batches: jobs inserted together in order, counts by state, and
//! the on-complete job enqueued exactly once, in the transaction that ends
//! the last job, whichever path ends it.

use errand_core::audit::AuditActor;
use crate::support::{
    LONG_LEASE, claim, claim_req, count_kind, expect_event, finish, get, job, job_in, jobs_of_kind,
};
use errand_core::batch::on_complete_payload;
use errand_core::store::ClaimRequest;
use errand_core::{Batch, BatchId, Job, JobState, NewBatch, NewJob, Outcome, Store, StoreEvent};
use jiff::SignedDuration;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// The kind of every on-complete job in these checks.
const DONE_KIND: &str = "batch_done";
/// The queue of batch jobs.
const WORK: &str = "work";
/// A lease a check lets run out.
const SHORT_LEASE: Duration = Duration::from_millis(50);

/// The on-complete job every check asks for: fields unlike the defaults,
/// so the store must keep each of them.
fn on_complete() -> NewJob {
    NewJob {
        priority: -2,
        max_attempts: 4,
        timeout: Some(Duration::from_secs(9)),
        tags: vec!["report".into()],
        payload: json!({"report": 42}),
        ..job_in("fanin", DONE_KIND)
    }
}

/// A batch of `n` jobs of kind `part` (payload `{"part": i}`, one attempt
/// each) with the given on-complete job.
fn new_batch(n: usize, on_complete: Option<NewJob>) -> NewBatch {
    let jobs = (0..n)
        .map(|i| NewJob {
            payload: json!({ "part": i }),
            max_attempts: 1,
            ..job_in(WORK, "part")
        })
        .collect();
    NewBatch { jobs, on_complete }
}

async fn create(store: &dyn Store, n: usize, on_complete: Option<NewJob>) -> Batch {
    store
        .create_batch(new_batch(n, on_complete))
        .await
        .expect("create_batch")
}

async fn batch(store: &dyn Store, id: BatchId) -> Batch {
    store.batch(id).await.expect("batch").expect("batch exists")
}

fn counts(pairs: &[(JobState, u64)]) -> BTreeMap<JobState, u64> {
    pairs.iter().copied().filter(|&(_, n)| n > 0).collect()
}

/// On-complete jobs enqueued for batch `id`.
async fn on_complete_jobs(store: &dyn Store, id: BatchId) -> Vec<Job> {
    let all = jobs_of_kind(store, DONE_KIND).await;
    all.into_iter()
        .filter(|j| j.payload["batch"]["id"] == json!(id))
        .collect()
}

/// The batch has not finished: no finished_at, no on-complete job.
async fn assert_unfinished(store: &dyn Store, id: BatchId) {
    let b = batch(store, id).await;
    assert_eq!(b.finished_at, None, "a job of batch {id} is still live");
    assert_eq!(
        b.on_complete_job, None,
        "on-complete before the last job ended"
    );
    assert!(on_complete_jobs(store, id).await.is_empty());
}

/// The batch has finished with `expected` counts and exactly one
/// on-complete job, built from [`on_complete`] with the outcome as payload.
async fn assert_completed(store: &dyn Store, id: BatchId, expected: &[(JobState, u64)]) -> Batch {
    let b = batch(store, id).await;
    assert!(b.finished_at.is_some(), "batch {id} has finished");
    assert_eq!(b.counts, counts(expected));
    let mine = on_complete_jobs(store, id).await;
    assert_eq!(mine.len(), 1, "exactly one on-complete job for batch {id}");
    let oc = &mine[0];
    assert_eq!(b.on_complete_job, Some(oc.id));
    let spec = on_complete();
    assert_eq!(oc.payload, on_complete_payload(id, &b.counts, spec.payload));
    assert_eq!(
        (oc.queue.as_str(), oc.priority, oc.max_attempts),
        (spec.queue.as_str(), spec.priority, spec.max_attempts)
    );
    assert_eq!((&oc.timeout, &oc.tags), (&spec.timeout, &spec.tags));
    assert_eq!((oc.state, oc.attempt), (JobState::Available, 0));
    b
}

/// Ids, order, batch ids, counts and totals as created; unknown ids read
/// as absent; nothing runs on completion yet.
async fn create_batch_stores_its_jobs_in_order(store: Arc<dyn Store>) {
    let loose = store.enqueue(vec![job("loose")]).await.unwrap()[0]
        .job
        .clone();
    assert_eq!(loose.batch_id, None, "a plain job has no batch");
    let before = store.clock().now() - SignedDuration::from_secs(1);
    let b = create(&*store, 5, Some(on_complete())).await;
    assert!(
        b.created_at >= before && b.created_at <= store.clock().now() + SignedDuration::from_secs(1)
    );
    assert_eq!(b.total, 5);
    assert_eq!(b.counts, counts(&[(JobState::Available, 5)]));
    assert_eq!((b.finished_at, b.on_complete_job), (None, None));
    assert_eq!(batch(&*store, b.id).await, b, "batch() reads back the same");

    let jobs = store.batch_jobs(b.id).await.unwrap();
    assert_eq!(jobs.len(), 5);
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j.payload, json!({ "part": i }), "submission order");
        assert_eq!(j.batch_id, Some(b.id));
        assert_eq!((j.kind.as_str(), j.queue.as_str()), ("part", WORK));
        assert_eq!(&get(&*store, j.id).await, j);
    }
    assert!(jobs.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert!(jobs[0].id > loose.id);

    let claimed = claim(&*store, WORK, 2).await;
    assert_eq!(claimed[0].id, jobs[0].id);
    let second = create(&*store, 1, None).await;
    assert!(second.id > b.id, "batch ids increase");
    assert_eq!(
        batch(&*store, b.id).await.counts,
        counts(&[(JobState::Available, 3), (JobState::Running, 2)])
    );
    assert_eq!(count_kind(&*store, DONE_KIND).await, 0);
    assert_eq!(store.batch(second.id + 1000).await.unwrap(), None);
    assert!(store.batch_jobs(second.id + 1000).await.unwrap().is_empty());
}

/// The on-complete job appears only once every job has ended, is announced
/// to its queue, and a retry of a job of the finished batch runs nothing
/// more on completion.
async fn batch_on_complete_runs_once_after_the_last_job(store: Arc<dyn Store>) {
    let b = create(&*store, 3, Some(on_complete())).await;
    let claimed = claim(&*store, WORK, 3).await;
    assert_eq!(claimed.len(), 3);
    assert!(
        finish(
            &*store,
            claimed[0].lease(),
            Outcome::Success(Some(json!(0)))
        )
        .await
    );
    assert!(finish(&*store, claimed[1].lease(), Outcome::Permanent("no".into())).await);
    assert_unfinished(&*store, b.id).await;
    assert_eq!(
        batch(&*store, b.id).await.counts,
        counts(&[
            (JobState::Completed, 1),
            (JobState::Failed, 1),
            (JobState::Running, 1)
        ])
    );

    let mut events = store.subscribe();
    assert!(finish(&*store, claimed[2].lease(), Outcome::Success(None)).await);
    let done = assert_completed(
        &*store,
        b.id,
        &[(JobState::Completed, 2), (JobState::Failed, 1)],
    )
    .await;
    expect_event(
        &mut events,
        "Enqueued(fanin) for the on-complete job",
        |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "fanin")),
    )
    .await;
    let oc = claim(&*store, "fanin", 10).await;
    assert_eq!(oc.len(), 1, "the on-complete job is claimable");
    assert_eq!(Some(oc[0].id), done.on_complete_job);

    let retried = store.retry(claimed[1].id, &AuditActor::Local).await.unwrap();
    assert_eq!(retried.batch_id, Some(b.id));
    let again = claim(&*store, WORK, 10).await;
    assert_eq!(again.len(), 1);
    assert!(finish(&*store, again[0].lease(), Outcome::Success(None)).await);
    let after = batch(&*store, b.id).await;
    assert_eq!(after.finished_at, done.finished_at, "finished_at stays");
    assert_eq!(after.on_complete_job, done.on_complete_job);
    assert_eq!(after.counts, counts(&[(JobState::Completed, 3)]));
    assert_eq!(
        on_complete_jobs(&*store, b.id).await.len(),
        1,
        "not run twice"
    );
}

/// How the last job of a batch ends.
#[derive(Debug, Clone, Copy)]
enum LastEnd {
    Permanent,
    AttemptsUsedUp,
    CancelQueued,
    CancelRunning,
    Rescued,
}

impl LastEnd {
    fn state(self) -> JobState {
        match self {
            LastEnd::CancelQueued | LastEnd::CancelRunning => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }
}

/// Claims the next due job of the work queue with `lease`.
async fn claim_one(store: &dyn Store, lease: Duration) -> Job {
    let req = ClaimRequest {
        lease,
        ..claim_req(WORK, 1)
    };
    let mut got = store.claim(&req).await.expect("claim").jobs;
    assert_eq!(got.len(), 1, "a batch job is due");
    got.remove(0)
}

/// Ends `j` (claimed unless `how` is [`LastEnd::CancelQueued`]) by `how`.
async fn end(store: &dyn Store, j: Option<&Job>, id: errand_core::JobId, how: LastEnd) {
    match how {
        LastEnd::Permanent => {
            let lease = j.expect("claimed").lease();
            assert!(finish(store, lease, Outcome::Permanent("bad".into())).await);
        }
        LastEnd::AttemptsUsedUp => {
            let lease = j.expect("claimed").lease();
            assert!(finish(store, lease, Outcome::Retry("again".into())).await);
        }
        LastEnd::CancelQueued | LastEnd::CancelRunning => {
            store.cancel(id, &AuditActor::Local).await.expect("cancel");
        }
        LastEnd::Rescued => {
            store.clock().advance(SHORT_LEASE * 4);
            assert_eq!(store.rescue_expired().await.unwrap(), [id]);
        }
    }
    assert_eq!(get(store, id).await.state, how.state());
}

/// A batch of two: the first job succeeds, the last ends by `how`.
async fn completes_when_the_last_job(store: Arc<dyn Store>, how: LastEnd) {
    let b = create(&*store, 2, Some(on_complete())).await;
    let first = claim_one(&*store, LONG_LEASE).await;
    let last = match how {
        LastEnd::CancelQueued => None,
        LastEnd::Rescued => Some(claim_one(&*store, SHORT_LEASE).await),
        _ => Some(claim_one(&*store, LONG_LEASE).await),
    };
    assert!(finish(&*store, first.lease(), Outcome::Success(None)).await);
    assert_unfinished(&*store, b.id).await;
    let last_id = store.batch_jobs(b.id).await.unwrap()[1].id;
    end(&*store, last.as_ref(), last_id, how).await;
    assert_completed(&*store, b.id, &[(JobState::Completed, 1), (how.state(), 1)]).await;
}

/// The last job failing with a permanent error completes the batch.
async fn batch_completes_when_the_last_job_fails(store: Arc<dyn Store>) {
    completes_when_the_last_job(store, LastEnd::Permanent).await;
}

/// The last job failing its last attempt completes the batch.
async fn batch_completes_when_the_last_job_uses_up_its_attempts(store: Arc<dyn Store>) {
    completes_when_the_last_job(store, LastEnd::AttemptsUsedUp).await;
}

/// Cancelling the last job while it waits completes the batch.
async fn batch_completes_when_the_last_job_is_cancelled(store: Arc<dyn Store>) {
    completes_when_the_last_job(store, LastEnd::CancelQueued).await;
}

/// Cancelling the last job while it runs completes the batch.
async fn batch_completes_when_the_running_last_job_is_cancelled(store: Arc<dyn Store>) {
    completes_when_the_last_job(store, LastEnd::CancelRunning).await;
}

/// Rescuing the last job's expired lease on its last attempt completes
/// the batch.
async fn batch_completes_when_the_last_job_is_rescued(store: Arc<dyn Store>) {
    completes_when_the_last_job(store, LastEnd::Rescued).await;
}

/// Six jobs ending by six paths, in a mixed order: the batch finishes
/// after the sixth, with each path counted.
async fn batch_completion_mixes_every_path(store: Arc<dyn Store>) {
    let b = create(&*store, 6, Some(on_complete())).await;
    let mut held = claim(&*store, WORK, 4).await;
    let rescued = claim_one(&*store, SHORT_LEASE).await;
    let queued = store.batch_jobs(b.id).await.unwrap()[5].id;
    assert_eq!(held.len(), 4);
    let succeeds = held.remove(0);
    end(&*store, Some(&rescued), rescued.id, LastEnd::Rescued).await;
    assert_unfinished(&*store, b.id).await;
    let order = [
        LastEnd::Permanent,
        LastEnd::CancelQueued,
        LastEnd::AttemptsUsedUp,
        LastEnd::CancelRunning,
    ];
    let mut running = held.into_iter();
    for how in order {
        let j = match how {
            LastEnd::CancelQueued => None,
            _ => running.next(),
        };
        let id = j.as_ref().map_or(queued, |j| j.id);
        end(&*store, j.as_ref(), id, how).await;
        assert_unfinished(&*store, b.id).await;
    }
    assert!(finish(&*store, succeeds.lease(), Outcome::Success(None)).await);
    assert_completed(
        &*store,
        b.id,
        &[
            (JobState::Completed, 1),
            (JobState::Failed, 3),
            (JobState::Cancelled, 2),
        ],
    )
    .await;
}

/// A batch without an on-complete job still records when it finished and
/// enqueues nothing.
async fn batch_without_on_complete_still_finishes(store: Arc<dyn Store>) {
    let b = create(&*store, 2, None).await;
    for j in claim(&*store, WORK, 2).await {
        assert_eq!(batch(&*store, b.id).await.finished_at, None);
        assert!(finish(&*store, j.lease(), Outcome::Success(None)).await);
    }
    let done = batch(&*store, b.id).await;
    assert!(done.finished_at.is_some());
    assert_eq!(done.on_complete_job, None);
    assert_eq!(done.counts, counts(&[(JobState::Completed, 2)]));
    let total: u64 = store.stats().await.unwrap().total.values().sum();
    assert_eq!(total, 2, "no job was added");
}

/// Every job of a batch finished at the same moment from its own task:
/// exactly one on-complete job, round after round.
async fn concurrent_last_finishes_enqueue_one_on_complete(store: Arc<dyn Store>) {
    const ROUNDS: usize = 5;
    const JOBS: usize = 12;
    for round in 1..=ROUNDS {
        let b = create(&*store, JOBS, Some(on_complete())).await;
        let claimed = claim(&*store, WORK, JOBS as u32).await;
        assert_eq!(claimed.len(), JOBS);
        let start = Arc::new(Barrier::new(JOBS));
        let tasks: Vec<_> = claimed
            .into_iter()
            .map(|j| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    finish(&*store, j.lease(), Outcome::Success(None)).await
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap(), "each finish applies");
        }
        assert_completed(&*store, b.id, &[(JobState::Completed, JOBS as u64)]).await;
        assert_eq!(count_kind(&*store, DONE_KIND).await, round as u64);
    }
}

crate::checks![
    create_batch_stores_its_jobs_in_order,
    batch_on_complete_runs_once_after_the_last_job,
    batch_completes_when_the_last_job_fails,
    batch_completes_when_the_last_job_uses_up_its_attempts,
    batch_completes_when_the_last_job_is_cancelled,
    batch_completes_when_the_running_last_job_is_cancelled,
    batch_completes_when_the_last_job_is_rescued,
    batch_completion_mixes_every_path,
    batch_without_on_complete_still_finishes,
    concurrent_last_finishes_enqueue_one_on_complete,
];
