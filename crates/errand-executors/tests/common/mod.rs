//! Helpers shared by the executors' integration tests: a real SQLite store
//! in a temporary directory, a worker running one executor, and polling for
//! job states.
#![allow(dead_code)] // each test file uses its own subset

pub mod smtpd;

use errand_core::{Backoff, Job, JobId, KindPolicy, NewJob, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use errand_worker::{Executor, Worker, WorkerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh store in its own directory (kept alive by the returned guard).
pub async fn store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("errand.db"), SqliteOptions::default())
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// A quick-reacting configuration for the default queue.
pub fn config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        name: "test-worker".into(),
        queues: BTreeMap::from([("default".to_string(), concurrency)]),
        lease: Duration::from_secs(15),
        heartbeat: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        shutdown_timeout: Duration::from_secs(10),
        http: None,
        breaker: Default::default(),
    }
}

/// A kind policy whose retries wait an hour, so a retried job stays
/// `retryable` where the test can look at it.
pub fn slow_retry_policy(timeout: Option<Duration>) -> KindPolicy {
    KindPolicy {
        timeout,
        backoff: Backoff {
            base: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            jitter: 0.0,
        },
        ..KindPolicy::default()
    }
}

/// A worker running in the background, stopped by its token.
pub struct Running {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), errand_worker::WorkerError>>,
}

impl Running {
    /// Starts a worker that runs `kind` through `executor` with `policy`.
    pub fn start(
        store: &Arc<dyn Store>,
        kind: &str,
        policy: KindPolicy,
        executor: Arc<dyn Executor>,
        concurrency: usize,
    ) -> Running {
        let mut worker = Worker::new(store.clone(), config(concurrency));
        worker.register(kind, policy, executor);
        Running::spawn(worker)
    }

    /// Runs a worker that is ready to run.
    pub fn spawn(worker: Worker) -> Running {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Running { shutdown, handle }
    }

    /// Shuts down and asserts the worker returned Ok.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("worker stops in time")
            .unwrap()
            .unwrap();
    }
}

/// Enqueues one job of `kind` and returns its id.
pub async fn enqueue(store: &Arc<dyn Store>, kind: &str, payload: serde_json::Value) -> JobId {
    store
        .enqueue(vec![NewJob::new(kind, payload)])
        .await
        .unwrap()[0]
        .job
        .id
}

/// Polls the job until `done` holds, failing after [`DEADLINE`].
pub async fn wait_for(store: &Arc<dyn Store>, id: JobId, done: impl Fn(&Job) -> bool) -> Job {
    let start = tokio::time::Instant::now();
    loop {
        let job = store.get(id).await.unwrap().expect("job exists");
        if done(&job) {
            return job;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "job {id} never reached the expected state; last seen: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the job until its first attempt has ended (it left `running`).
pub async fn wait_attempted(store: &Arc<dyn Store>, id: JobId) -> Job {
    wait_for(store, id, |j| {
        j.attempt > 0 && j.state != errand_core::JobState::Running
    })
    .await
}
