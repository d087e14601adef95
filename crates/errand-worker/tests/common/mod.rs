//! Helpers shared by the worker's integration tests: the crate's own
//! `testing` helpers, plus enqueueing.
#![allow(dead_code, unused_imports)] // each test file uses its own subset

use errand_core::{Job, JobId, NewJob, Store};
use std::sync::Arc;

pub use errand_worker::testing::{
    DEADLINE, Running, config, eventually, store, store_on, wait_for, wait_state,
};

/// Enqueues one job and returns its id.
pub async fn enqueue(store: &Arc<dyn Store>, job: NewJob) -> JobId {
    store.enqueue(vec![job]).await.unwrap()[0].job.id
}

/// A job of `kind` on the default queue.
pub fn job(kind: &str, payload: serde_json::Value) -> NewJob {
    NewJob::new(kind, payload)
}
