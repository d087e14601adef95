//! Helpers shared by the worker's integration tests: a real SQLite store in
//! a temporary directory, a running worker, and polling for job states.
#![allow(dead_code)] // each test file uses its own subset

use errand_core::{Job, JobId, NewJob, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use errand_worker::{Worker, WorkerConfig};
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

/// A quick-reacting configuration for one queue.
pub fn config(queue: &str, concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        name: "test-worker".into(),
        queues: BTreeMap::from([(queue.to_string(), concurrency)]),
        lease: Duration::from_secs(15),
        heartbeat: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        shutdown_timeout: Duration::from_secs(10),
        http: None,
        breaker: Default::default(),
    }
}

/// A worker running in the background, stopped by its token.
pub struct Running {
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<Result<(), errand_worker::WorkerError>>,
}

impl Running {
    pub fn start(worker: Worker) -> Running {
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

/// Enqueues one job and returns its id.
pub async fn enqueue(store: &Arc<dyn Store>, job: NewJob) -> JobId {
    store.enqueue(vec![job]).await.unwrap()[0].job.id
}

/// A job of `kind` on the default queue.
pub fn job(kind: &str, payload: serde_json::Value) -> NewJob {
    NewJob::new(kind, payload)
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

/// Polls the job until it is in `state`.
pub async fn wait_state(store: &Arc<dyn Store>, id: JobId, state: errand_core::JobState) -> Job {
    wait_for(store, id, |j| j.state == state).await
}
