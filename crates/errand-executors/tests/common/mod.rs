//! Helpers shared by the executors' integration tests: errand-worker's
//! `testing` helpers, a worker running one executor, and polling for job
//! states.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

pub mod smtpd;

use errand_core::{Job, JobId, KindPolicy, NewJob, Store};
use errand_worker::{Executor, Worker};
use std::sync::Arc;

pub use errand_worker::testing::{DEADLINE, Running, config, hour_backoff, store, wait_for};

/// Starts a worker that runs `kind` through `executor` with `policy`, on
/// the default queue.
pub fn run_executor(
    store: &Arc<dyn Store>,
    kind: &str,
    policy: KindPolicy,
    executor: Arc<dyn Executor>,
    concurrency: usize,
) -> Running {
    let mut worker = Worker::new(store.clone(), config("default", concurrency));
    worker.register(kind, policy, executor);
    Running::spawn(worker)
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

/// Polls the job until its first attempt has ended (it left `running`).
pub async fn wait_attempted(store: &Arc<dyn Store>, id: JobId) -> Job {
    wait_for(store, id, |j| {
        j.started_at.is_some() && j.state != errand_core::JobState::Running
    })
    .await
}
