//! Helpers shared by the worker's integration tests: the crate's own
//! `testing` helpers, plus enqueueing and waiting for a state.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

use errand_core::{Job, JobId, NewJob, Store};
use std::sync::Arc;

pub use errand_worker::testing::{DEADLINE, Running, config, store, store_on, wait_for};

/// Enqueues one job and returns its id.
pub async fn enqueue(store: &Arc<dyn Store>, job: NewJob) -> JobId {
    store.enqueue(vec![job]).await.unwrap()[0].job.id
}

/// A job of `kind` on the default queue.
pub fn job(kind: &str, payload: serde_json::Value) -> NewJob {
    NewJob::new(kind, payload)
}

/// Polls the job until it is in `state`.
pub async fn wait_state(store: &Arc<dyn Store>, id: JobId, state: errand_core::JobState) -> Job {
    wait_for(store, id, |j| j.state == state).await
}
