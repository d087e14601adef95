//! Claims sized to an executor's capacity, on a real SQLite store: a kind
//! whose executor can run two attempts at once never has more than two jobs
//! claimed on the node (the rest stay `available`, attempt unused, for any
//! node), a claim over two limited kinds hands back what one of them has no
//! room for, and a capacity that grows (a pool process became ready) wakes
//! the worker at once.

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

/// An executor with a capacity it announces, whose attempts run until the
/// test releases them; it counts how many run at once.
struct Gate {
    capacity: watch::Sender<usize>,
    release: Arc<Semaphore>,
    inside: AtomicUsize,
    most_inside: AtomicUsize,
}

impl Gate {
    fn new(capacity: usize) -> Arc<Gate> {
        Arc::new(Gate {
            capacity: watch::Sender::new(capacity),
            release: Arc::new(Semaphore::new(0)),
            inside: AtomicUsize::new(0),
            most_inside: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl Executor for Gate {
    async fn execute(
        &self,
        _job: &Job,
        cancel: CancellationToken,
        _progress: ProgressSink,
    ) -> Outcome {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_inside.fetch_max(now, Ordering::SeqCst);
        let outcome = tokio::select! {
            permit = self.release.acquire() => {
                permit.expect("never closed").forget();
                Outcome::Success(Some(json!("done")))
            }
            _ = cancel.cancelled() => Outcome::Retry("cancelled".into()),
        };
        self.inside.fetch_sub(1, Ordering::SeqCst);
        outcome
    }

    fn capacity(&self) -> Option<watch::Receiver<usize>> {
        Some(self.capacity.subscribe())
    }
}

async fn enqueue_n(store: &Arc<dyn Store>, kind: &str, n: usize) -> Vec<JobId> {
    let jobs = (0..n).map(|i| job(kind, json!({ "i": i }))).collect();
    store
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect()
}

/// Attempts a fresh job may use (the default policy's).
const BUDGET: u32 = 25;

/// Each job's state and the attempts it has left (a hand-back gives its
/// attempt back, docs/decisions/0015).
async fn states(store: &Arc<dyn Store>, ids: &[JobId]) -> Vec<(JobState, u32)> {
    let mut out = Vec::new();
    for &id in ids {
        let job = store.get(id).await.unwrap().unwrap();
        out.push((job.state, job.max_attempts - job.attempt));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_jobs_are_claimed_than_the_executor_has_room_for() {
    let (store, _dir) = store().await;
    let gate = Gate::new(2);
    let mut worker = Worker::new(store.clone(), config("default", 16));
    worker.register("gated", KindPolicy::default(), gate.clone());
    let ids = enqueue_n(&store, "gated", 6).await;
    let running = Running::spawn(worker);

    eventually(DEADLINE, "two attempts inside the executor", || async {
        gate.inside.load(Ordering::SeqCst) == 2
    })
    .await;
    // Give an over-eager claim time to happen.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = states(&store, &ids).await;
    let claimed = seen.iter().filter(|(s, _)| *s == JobState::Running).count();
    assert_eq!(claimed, 2, "only two jobs claimed: {seen:?}");
    assert!(
        seen.iter()
            .filter(|(s, _)| *s == JobState::Available)
            .all(|&(_, left)| left == BUDGET),
        "jobs left for later used no attempt: {seen:?}"
    );

    // Each job that ends makes room for exactly one more, at once.
    gate.release.add_permits(6);
    for &id in &ids {
        wait_state(&store, id, JobState::Completed).await;
    }
    assert_eq!(gate.most_inside.load(Ordering::SeqCst), 2);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_over_two_limited_kinds_hands_back_what_one_has_no_room_for() {
    let (store, _dir) = store().await;
    let (a, b) = (Gate::new(1), Gate::new(1));
    let mut worker = Worker::new(store.clone(), config("default", 16));
    worker.register("a", KindPolicy::default(), a.clone());
    worker.register("b", KindPolicy::default(), b.clone());
    // Four of `a` come first in the queue: the first claim (room 2) takes two of them.
    let a_ids = enqueue_n(&store, "a", 4).await;
    let b_ids = enqueue_n(&store, "b", 4).await;
    let running = Running::spawn(worker);

    eventually(DEADLINE, "one attempt of each kind running", || async {
        a.inside.load(Ordering::SeqCst) == 1 && b.inside.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_a = states(&store, &a_ids).await;
    let seen_b = states(&store, &b_ids).await;
    for seen in [&seen_a, &seen_b] {
        let claimed = seen.iter().filter(|(s, _)| *s == JobState::Running).count();
        assert_eq!(claimed, 1, "{seen_a:?} {seen_b:?}");
        // The handed-back job is available again with its attempt unused.
        assert!(
            seen.iter()
                .filter(|(s, _)| *s != JobState::Running)
                .all(|&(s, left)| s == JobState::Available && left == BUDGET),
            "{seen_a:?} {seen_b:?}"
        );
    }
    a.release.add_permits(4);
    b.release.add_permits(4);
    for &id in a_ids.iter().chain(&b_ids) {
        let job = wait_state(&store, id, JobState::Completed).await;
        assert_eq!(
            job.max_attempts - job.attempt,
            BUDGET - 1,
            "one attempt used: {job:?}"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_that_appears_wakes_the_worker_at_once() {
    let (store, _dir) = store().await;
    let gate = Gate::new(0);
    let mut cfg = config("default", 4);
    // Only the capacity change may wake it in time.
    cfg.poll_interval = Duration::from_secs(60);
    let mut worker = Worker::new(store.clone(), cfg);
    worker.register("gated", KindPolicy::default(), gate.clone());
    let ids = enqueue_n(&store, "gated", 1).await;
    let running = Running::spawn(worker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        states(&store, &ids).await,
        vec![(JobState::Available, BUDGET)]
    );

    gate.capacity.send_replace(1);
    gate.release.add_permits(1);
    let start = tokio::time::Instant::now();
    wait_state(&store, ids[0], JobState::Completed).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "woken by the capacity, not the 60 s poll"
    );
    running.stop().await;
}
