//! The executor contract: what runs one attempt of a job.

use crate::ProgressSink;
use async_trait::async_trait;
use errand_core::{Job, Outcome};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Runs attempts of jobs of the kinds it is registered for.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Runs one attempt. Must return promptly (and clean up, e.g. kill its
    /// processes) once `cancel` fires. What the work reports as its
    /// progress goes to `progress`, which keeps it on the job.
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Outcome;

    /// Releases what the executor holds (e.g. stops its long-lived
    /// processes); called once, after the worker's last attempt ended.
    async fn shutdown(&self) {}

    /// How many attempts it can run at once, when it has a limit (a pool's
    /// ready processes, a command's `max_processes`); the value may change.
    /// The worker never claims more jobs of the kind than there is room
    /// for, so no claimed job waits inside the executor. `None`: no limit.
    fn capacity(&self) -> Option<watch::Receiver<usize>> {
        None
    }
}
