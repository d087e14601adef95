//! Holding a request (`GET /v1/jobs/{id}?wait=`, `GET /v1/batches/{id}?wait=`)
//! until what it asks about has ended: woken by the store's `Finished`
//! events, with a slow re-read as a safety net. On shutdown every held
//! request answers at once with the current state.

use crate::problem::ApiError;
use errand_core::{Job, JobId, Store, StoreError, StoreEvent};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

/// Re-read at least this often, in case an event was never sent
/// (e.g. the end came from another process sharing the database).
const SAFETY_REREAD: Duration = Duration::from_secs(1);

/// How a held request watches the store.
pub(crate) struct Watch<W> {
    /// Longest hold.
    pub wait: Duration,
    /// Least time between two reads, so a burst of finishes costs a few
    /// reads rather than one each.
    pub min_gap: Duration,
    /// Whether a `Finished` event for these jobs may concern the request.
    pub wakes: W,
    /// The server's shutdown: answer now, whatever the state.
    pub stop: CancellationToken,
}

/// The job once it is terminal, or as it is when `wait` runs out.
pub(crate) async fn until_terminal(
    store: &dyn Store,
    id: JobId,
    wait: Duration,
    stop: CancellationToken,
) -> Result<Job, ApiError> {
    let watch = Watch {
        wait,
        min_gap: Duration::ZERO,
        wakes: |ids: &[JobId]| ids.contains(&id),
        stop,
    };
    hold(
        store,
        watch,
        || fetch(store, id),
        |job| job.state.is_terminal(),
    )
    .await
}

/// Reads with `read` until `done` holds for the answer, the wait runs out
/// or the server stops, re-reading after each relevant `Finished` event;
/// answers the last read.
pub(crate) async fn hold<T, Fut>(
    store: &dyn Store,
    watch: Watch<impl Fn(&[JobId]) -> bool>,
    mut read: impl FnMut() -> Fut,
    done: impl Fn(&T) -> bool,
) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    // Subscribe before the first read so an end between the two is not missed.
    let mut events = store.subscribe();
    let deadline = Instant::now() + watch.wait;
    loop {
        drain(&mut events);
        let read_at = Instant::now();
        let value = read().await?;
        if done(&value) || Instant::now() >= deadline || watch.stop.is_cancelled() {
            return Ok(value);
        }
        let wake = deadline.min(read_at + SAFETY_REREAD);
        // Woken, timed out or stopping: in each case, read again.
        tokio::select! {
            _ = timeout_at(wake, finished(&mut events, &watch.wakes)) => {}
            _ = watch.stop.cancelled() => continue,
        }
        tokio::select! {
            _ = sleep_until(deadline.min(read_at + watch.min_gap)) => {}
            _ = watch.stop.cancelled() => {}
        }
    }
}

/// One job, or 404.
pub(crate) async fn fetch(store: &dyn Store, id: JobId) -> Result<Job, ApiError> {
    store
        .get(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id).into())
}

/// Drops events already received: the read about to happen covers them.
fn drain(events: &mut broadcast::Receiver<StoreEvent>) {
    loop {
        match events.try_recv() {
            Ok(_) | Err(TryRecvError::Lagged(_)) => {}
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

/// Returns when a relevant `Finished` event arrives, or events were missed.
async fn finished(events: &mut broadcast::Receiver<StoreEvent>, wakes: &impl Fn(&[JobId]) -> bool) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::Finished(ids)) if wakes(&ids) => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            // No more events will come: only the safety re-read can help.
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }
}
