//! Helpers for tests of workers and executors (feature `test-util`): a real
//! SQLite store in a temporary directory, a quick-reacting worker
//! configuration, a worker running in the background, and polling until a
//! job reaches the state a test waits for (with errand-core's
//! [`eventually`], re-exported here with its [`DEADLINE`]).

use crate::{Worker, WorkerConfig, WorkerError};
use errand_core::{Backoff, Clock, Job, JobId, JobState, KindPolicy, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use errand_core::testing::{DEADLINE, eventually, eventually_blocking};

/// A fresh SQLite store in its own directory (kept alive by the guard).
pub async fn store() -> (Arc<dyn Store>, TempDir) {
    store_on(Clock::system()).await
}

/// [`store`] reading `clock`: with [`Clock::manual`], the test moves the
/// time of leases, schedules and rate windows by hand.
pub async fn store_on(clock: Clock) -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("errand.db");
    let store = SqliteStore::open_with_clock(path, SqliteOptions::default(), clock)
        .await
        .expect("a fresh SQLite store opens");
    (Arc::new(store), dir)
}

/// A worker configuration for one queue that notices work and lost
/// workers quickly.
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

/// The default kind policy with an hour between attempts, so a retried job
/// stays `retryable` where the test can look at it.
pub fn hour_backoff(timeout: Option<Duration>) -> KindPolicy {
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
    /// Cancel to shut the worker down.
    pub shutdown: CancellationToken,
    /// What `Worker::run` returned.
    pub handle: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    /// Runs `worker` in a task.
    pub fn spawn(worker: Worker) -> Running {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Running { shutdown, handle }
    }

    /// Shuts down and asserts the worker returned `Ok` within [`DEADLINE`].
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("worker stops in time")
            .expect("worker task did not panic")
            .expect("worker returned Ok");
    }
}

/// Polls job `id` until `done` holds, panicking after [`DEADLINE`].
pub async fn wait_for(store: &Arc<dyn Store>, id: JobId, done: impl Fn(&Job) -> bool) -> Job {
    let what = format!("job {id} to reach the expected state");
    eventually(DEADLINE, &what, || async {
        let job = store.get(id).await.unwrap().expect("job exists");
        done(&job).then_some(job)
    })
    .await
}

/// Polls job `id` until it is in `state`.
pub async fn wait_state(store: &Arc<dyn Store>, id: JobId, state: JobState) -> Job {
    wait_for(store, id, |j| j.state == state).await
}

/// A running job of `kind` (attempt 1 of 3) that never touched a store,
/// for driving an executor directly.
pub fn bare_job(kind: &str, id: JobId, payload: serde_json::Value) -> Job {
    let now = jiff::Timestamp::now();
    serde_json::from_value(serde_json::json!({
        "id": id, "kind": kind, "queue": "default", "payload": payload, "priority": 0,
        "state": "running", "attempt": 1, "max_attempts": 3, "run_at": now, "created_at": now,
    }))
    .expect("a valid job")
}

/// Opens /dev/null until the open-files limit is reached; dropping the
/// answer frees them. For a test binary of its own: every descriptor of the
/// process is used up meanwhile.
pub fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(nix::libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}
