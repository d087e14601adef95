//! The executor contract: what runs one attempt of a job.

use async_trait::async_trait;
use errand_core::{Job, Outcome};
use tokio_util::sync::CancellationToken;

/// Runs attempts of jobs of the kinds it is registered for.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt. Must return promptly (and clean up, e.g. kill its
    /// processes) once `cancel` fires.
    async fn execute(&self, job: &Job, cancel: CancellationToken) -> Outcome;

    /// Releases what the executor holds (e.g. stops its long-lived
    /// processes); called once, after the worker's last attempt ended.
    async fn shutdown(&self) {}
}
