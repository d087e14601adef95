//! One attempt from claim to finish: runs the executor (a panic becomes an
//! outcome), enforces the timeout, and decides what to report when the
//! attempt was stopped by a lost lease or by shutdown.

use crate::Executor;
use crate::breaker::Breakers;
use crate::capacity::KindCapacity;
use crate::completer::Completions;
use crate::progress::Board;
use crate::running::Running;
use errand_core::store::Finish;
use errand_core::{Backoff, Job, KindPolicy, Lease, Outcome};
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an executor may take to return after being cancelled before it
/// is dropped, so one misbehaving handler cannot hang shutdown.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Most characters of an attempt's error that go into a log line.
const LOGGED_ERROR_CHARS: usize = 200;

/// An outcome as logged: a result is user data, so only its size appears;
/// an error is the executor's diagnosis and appears shortened.
struct Logged<'a>(&'a Outcome);

impl std::fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let error = |f: &mut std::fmt::Formatter<'_>, what: &str, e: &str| {
            let short: String = e.chars().take(LOGGED_ERROR_CHARS).collect();
            let more = if short.len() < e.len() { "…" } else { "" };
            write!(f, "{what}: {short}{more}")
        };
        match self.0 {
            Outcome::Success(None) => write!(f, "success"),
            Outcome::Success(Some(result)) => {
                write!(f, "success (result of {} bytes)", result.to_string().len())
            }
            Outcome::Retry(e) => error(f, "retry", e),
            Outcome::Permanent(e) => error(f, "permanent", e),
            Outcome::Deadly(e) => error(f, "deadly", e),
            Outcome::Snooze(d) => write!(f, "snooze {d:?}"),
            Outcome::Handback => write!(f, "handback"),
            Outcome::LeaseExpired => write!(f, "lease expired"),
        }
    }
}

/// A registered kind: its policy and executor.
pub(crate) struct Registration {
    pub(crate) policy: KindPolicy,
    pub(crate) executor: Arc<dyn Executor>,
    /// The executor's limit and the attempts running, when it has one.
    pub(crate) capacity: Option<Arc<KindCapacity>>,
}

/// What every attempt of this worker shares.
pub(crate) struct Attempts {
    pub(crate) running: Arc<Running>,
    pub(crate) completions: Completions,
    /// Fires when shutdown's grace period is over: stop and hand back.
    pub(crate) abort: CancellationToken,
    /// Told every outcome, so a kind failing deadly stops being claimed.
    pub(crate) breakers: Arc<Breakers>,
    /// Where attempts report progress.
    pub(crate) progress: Arc<Board>,
}

impl Attempts {
    /// Runs `job` to its end and queues its finish (unless its lease was lost).
    pub(crate) async fn run(&self, job: Job, reg: Arc<Registration>) {
        let lease = job.lease();
        let (id, attempt) = (job.id, job.attempt);
        let kind = job.kind.clone();
        let cancel = self.abort.child_token();
        self.running.insert(lease, cancel.clone());
        let timeout = job.timeout.or(reg.policy.timeout);
        let progress = self.progress.open(lease);
        // Polled in this task rather than spawned into its own: a task per
        // attempt cost a spawn, a wake-up of the runtime and a join per job
        // on the pool path (decision 0040); a panic is caught all the same.
        let execute = std::pin::pin!(reg.executor.execute(&job, cancel.clone(), progress));
        let outcome = supervise(CatchPanic(execute), &cancel, timeout).await;
        let held = self.running.remove(&lease);
        // The last progress is written before the finish, which ends the
        // attempt in the store and so would refuse it.
        self.progress.close(lease, held).await;
        // Stopped by the end of shutdown's grace period: whatever it said on
        // the way out (often Ok once cancelled), it did not finish its work.
        let outcome = if self.abort.is_cancelled() {
            Outcome::Handback
        } else {
            outcome
        };
        // Even with the lease lost the outcome tells whether the kind's
        // infrastructure works (and ends a breaker's probe).
        self.breakers
            .record(&kind, &outcome, tokio::time::Instant::now());
        if !held {
            tracing::info!(
                job = id,
                kind,
                attempt,
                outcome = %Logged(&outcome),
                "outcome dropped: lease lost"
            );
            return;
        }
        match &outcome {
            Outcome::Success(_) | Outcome::Snooze(_) | Outcome::Handback => {
                tracing::debug!(job = id, kind, attempt, outcome = %Logged(&outcome), "attempt ended")
            }
            _ => {
                tracing::warn!(job = id, kind, attempt, outcome = %Logged(&outcome), "attempt failed")
            }
        }
        self.finish(lease, outcome, reg.policy.backoff);
    }

    /// Queues the end of an attempt for the completer.
    pub(crate) fn finish(&self, lease: Lease, outcome: Outcome, backoff: Backoff) {
        let finish = Finish {
            lease,
            outcome,
            backoff,
        };
        // The completer outlives every job task, so the send cannot fail.
        let _ = self.completions.send(finish);
    }
}

/// An executor's future whose panic, caught while polling it, becomes its
/// output's `Err`. Once it panicked it is not polled again.
struct CatchPanic<'a, F>(Pin<&'a mut F>);

impl<F: Future<Output = Outcome>> Future for CatchPanic<'_, F> {
    type Output = Result<Outcome, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.get_mut().0.as_mut();
        // Nothing observes the executor's state after its panic: the
        // future is dropped, so unwind safety is not at stake.
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(outcome)) => Poll::Ready(Ok(outcome)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Runs the executor; on timeout or cancellation (lost lease, shutdown)
/// cancels it and gives it [`CANCEL_GRACE`] to clean up, then drops it.
async fn supervise<F: Future<Output = Outcome>>(
    mut task: CatchPanic<'_, F>,
    cancel: &CancellationToken,
    limit: Option<Duration>,
) -> Outcome {
    let expired = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let timed_out = tokio::select! {
        joined = &mut task => return outcome_of(joined),
        _ = expired => true,
        _ = cancel.cancelled() => false,
    };
    cancel.cancel();
    let outcome = match tokio::time::timeout(CANCEL_GRACE, &mut task).await {
        Ok(joined) => outcome_of(joined),
        Err(_) => {
            tracing::warn!(grace = ?CANCEL_GRACE, "executor ignored cancellation; dropped it");
            Outcome::Retry("did not stop after cancellation".into())
        }
    };
    match limit {
        Some(limit) if timed_out => Outcome::Retry(format!(
            "timed out after {}",
            errand_core::duration::format(limit)
        )),
        _ => outcome,
    }
}

/// The executor's outcome, or a retry naming its panic.
fn outcome_of(ran: Result<Outcome, Box<dyn Any + Send>>) -> Outcome {
    ran.unwrap_or_else(|panic| Outcome::Retry(format!("panicked: {}", panic_message(panic))))
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or_else(
            || "(non-string panic payload)".to_string(),
            |s| s.to_string(),
        ),
    }
}

#[cfg(test)]
mod logged_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_appear_as_sizes_and_errors_shortened() {
        let result = Outcome::Success(Some(json!({"secret": "s3cr3t"})));
        assert_eq!(Logged(&result).to_string(), "success (result of 19 bytes)");
        let long = Outcome::Retry("x".repeat(500));
        let text = Logged(&long).to_string();
        assert_eq!(text, format!("retry: {}…", "x".repeat(LOGGED_ERROR_CHARS)));
        assert_eq!(
            Logged(&Outcome::Deadly("down".into())).to_string(),
            "deadly: down"
        );
    }
}
