//! Jobs claimed ahead of a limited executor (a pool's processes), on a real
//! SQLite store (docs/decisions/0037): once its attempts proved short a
//! kind's next jobs are claimed before a place frees up, a slow attempt
//! does not hold back the jobs claimed ahead (another place runs them), and
//! held jobs whose places all stay busy, or that are held at shutdown, go
//! back to the queue unrun with their attempt unused.

mod common;

use async_trait::async_trait;
use common::*;
use errand_core::{Job, JobId, JobState, KindPolicy, Outcome, Store};
use errand_worker::{Executor, ProgressSink, Worker};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// An executor with a fixed capacity: a job whose payload says `hold` runs
/// until the test releases it, every other job ends at once.
struct Places {
    capacity: watch::Sender<usize>,
    release: Semaphore,
    holding: AtomicUsize,
}

impl Places {
    fn new(capacity: usize) -> Arc<Places> {
        Arc::new(Places {
            capacity: watch::Sender::new(capacity),
            release: Semaphore::new(0),
            holding: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Executor for Places {
    async fn execute(&self, job: &Job, cancel: CancellationToken, _: ProgressSink) -> Outcome {
        if job.payload["hold"] != json!(true) {
            return Outcome::Success(None);
        }
        self.holding.fetch_add(1, Ordering::SeqCst);
        let outcome = tokio::select! {
            permit = self.release.acquire() => {
                permit.expect("never closed").forget();
                Outcome::Success(None)
            }
            _ = cancel.cancelled() => Outcome::Retry("cancelled".into()),
        };
        self.holding.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    fn capacity(&self) -> Option<watch::Receiver<usize>> {
        Some(self.capacity.subscribe())
    }
}

/// Attempts a fresh job may use (the default policy's).
const BUDGET: u32 = 25;

async fn enqueue_n(store: &Arc<dyn Store>, n: usize, payload: serde_json::Value) -> Vec<JobId> {
    let jobs = (0..n).map(|_| job("pool", payload.clone())).collect();
    let enqueued = store.enqueue(jobs).await.unwrap();
    enqueued.into_iter().map(|e| e.job.id).collect()
}

/// A worker running `places` for kind `pool`, whose attempts have already
/// proved short (20 jobs ran), so it claims ahead.
async fn warmed(store: &Arc<dyn Store>, places: &Arc<Places>) -> Running {
    let mut worker = Worker::new(store.clone(), config("default", 16));
    worker.register("pool", KindPolicy::default(), places.clone());
    let running = Running::spawn(worker);
    for id in enqueue_n(store, 20, json!(null)).await {
        wait_state(store, id, JobState::Completed).await;
    }
    running
}

/// Waits until any of `ids` is `running` (claimed), polling every 2 ms:
/// held jobs go back after 100 ms, so a slower poll could miss them.
async fn some_claimed(store: &Arc<dyn Store>, ids: &[JobId]) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        for &id in ids {
            if store.get(id).await.unwrap().unwrap().state == JobState::Running {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job was claimed ahead"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn states(store: &Arc<dyn Store>, ids: &[JobId]) -> Vec<(JobState, u32)> {
    let mut out = Vec::new();
    for &id in ids {
        let job = store.get(id).await.unwrap().unwrap();
        out.push((job.state, job.max_attempts - job.attempt));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_jobs_go_back_unrun_when_every_place_stays_busy() {
    let (store, _dir) = store().await;
    let places = Places::new(1);
    let running = warmed(&store, &places).await;

    let slow = enqueue_n(&store, 1, json!({"hold": true})).await;
    eventually(DEADLINE, "the slow job in the only place", || async {
        places.holding.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiting = enqueue_n(&store, 30, json!(null)).await;
    // Claimed ahead for the busy place…
    some_claimed(&store, &waiting).await;
    // …and given back, attempt unused, once they waited too long.
    eventually(DEADLINE, "held jobs handed back", || async {
        states(&store, &waiting)
            .await
            .iter()
            .all(|&s| s == (JobState::Available, BUDGET))
    })
    .await;
    // The kind now claims only for free places: none while the slow job runs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        states(&store, &waiting)
            .await
            .iter()
            .all(|&s| s == (JobState::Available, BUDGET)),
        "no new claim while the only place is busy"
    );

    places.release.add_permits(1);
    for &id in slow.iter().chain(&waiting) {
        let job = wait_state(&store, id, JobState::Completed).await;
        assert_eq!(job.max_attempts - job.attempt, BUDGET - 1, "{job:?}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_does_not_hold_back_the_jobs_claimed_ahead() {
    let (store, _dir) = store().await;
    let places = Places::new(2);
    let running = warmed(&store, &places).await;

    // The slow job comes first in the queue, so it is claimed with the rest.
    let slow = enqueue_n(&store, 1, json!({"hold": true})).await;
    let quick = enqueue_n(&store, 300, json!(null)).await;
    for &id in &quick {
        wait_state(&store, id, JobState::Completed).await;
    }
    assert_eq!(
        places.holding.load(Ordering::SeqCst),
        1,
        "every quick job ran in the other place while the slow one held its own"
    );
    places.release.add_permits(1);
    wait_state(&store, slow[0], JobState::Completed).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_jobs_go_back_unrun_at_shutdown() {
    let (store, _dir) = store().await;
    let places = Places::new(1);
    let running = warmed(&store, &places).await;

    let slow = enqueue_n(&store, 1, json!({"hold": true})).await;
    eventually(DEADLINE, "the slow job in the only place", || async {
        places.holding.load(Ordering::SeqCst) == 1
    })
    .await;
    let waiting = enqueue_n(&store, 30, json!(null)).await;
    some_claimed(&store, &waiting).await;
    let stopping = tokio::spawn(running.stop());
    // The slow job ends within the grace period, and its place takes no
    // held job: shutdown has begun.
    tokio::time::sleep(Duration::from_millis(50)).await;
    places.release.add_permits(1);
    stopping.await.unwrap();

    wait_state(&store, slow[0], JobState::Completed).await;
    assert!(
        states(&store, &waiting)
            .await
            .iter()
            .all(|&s| s == (JobState::Available, BUDGET)),
        "held jobs went back unrun: {:?}",
        states(&store, &waiting).await
    );
}
