//! Typed in-process handlers: a Rust async function that receives the job's
//! payload deserialized into its own type, wrapped as an [`Executor`].

use crate::{Executor, ProgressSink};
use async_trait::async_trait;
use errand_core::{Job, JobId, Outcome};
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// This attempt (1-based). An attempt that did not count (snooze,
    /// deadly, hand-back) is run again under the same number.
    pub attempt: u32,
    /// Attempts the job may use.
    pub max_attempts: u32,
    /// Fires when the attempt must stop (timeout, lease lost, shutdown).
    pub cancel: CancellationToken,
    /// Where [`JobContext::progress`] reports go.
    pub progress: ProgressSink,
}

impl JobContext {
    /// Reports the attempt's progress (any JSON value of at most
    /// [`errand_core::progress::MAX_PROGRESS_BYTES`]): the job shows the
    /// latest one. Reports are coalesced, so calling this often is cheap;
    /// a value over the limit is refused and the previous one stays.
    pub fn progress(
        &self,
        value: serde_json::Value,
    ) -> Result<(), errand_core::progress::ProgressTooLarge> {
        self.progress.report(value)
    }
}

/// What a handler returns: an optional result to keep on the job, or why it failed.
pub type HandlerResult = Result<Option<serde_json::Value>, JobError>;

/// How a handler's attempt failed. `?` on any error gives [`JobError::Retry`].
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Try again after backoff while attempts remain.
    Retry(String),
    /// Fail the job now: another attempt cannot help.
    Permanent(String),
    /// Run again after this long without using an attempt.
    Snooze(Duration),
    /// A dependency is down: hand the job back without using an attempt.
    Deadly(String),
}

// Deliberately no `std::error::Error` impl: it would overlap with this blanket
// conversion, which is what makes `?` work on any error.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Retry(e.to_string())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry(m) => write!(f, "retry: {m}"),
            JobError::Permanent(m) => write!(f, "permanent: {m}"),
            JobError::Snooze(d) => write!(f, "snooze {}", errand_core::duration::format(*d)),
            JobError::Deadly(m) => write!(f, "deadly: {m}"),
        }
    }
}

impl From<JobError> for Outcome {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Retry(m) => Outcome::Retry(m),
            JobError::Permanent(m) => Outcome::Permanent(m),
            JobError::Snooze(d) => Outcome::Snooze(d),
            JobError::Deadly(m) => Outcome::Deadly(m),
        }
    }
}

/// Adapts a typed handler function to [`Executor`].
pub(crate) struct HandlerExecutor<P, F> {
    f: F,
    // fn() -> P: the executor never holds a P, so P need not be Sync.
    payload: PhantomData<fn() -> P>,
}

impl<P, F> HandlerExecutor<P, F> {
    pub(crate) fn new(f: F) -> Self {
        HandlerExecutor {
            f,
            payload: PhantomData,
        }
    }
}

#[async_trait]
impl<P, F, Fut> Executor for HandlerExecutor<P, F>
where
    P: DeserializeOwned + Send + 'static,
    F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Outcome {
        let payload = match P::deserialize(&job.payload) {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Permanent(format!(
                    "payload does not match the handler's type {}: {e}",
                    std::any::type_name::<P>()
                ));
            }
        };
        let ctx = JobContext {
            id: job.id,
            kind: job.kind.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            cancel,
            progress,
        };
        match (self.f)(payload, ctx).await {
            Ok(result) => Outcome::Success(result),
            Err(e) => e.into(),
        }
    }
}
