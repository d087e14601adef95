//! Holding `GET /v1/jobs/{id}?wait=` until the job ends: woken by the
//! store's `Finished` events, with a slow re-read as a safety net.

use crate::problem::ApiError;
use errand_core::{Job, JobId, Store, StoreError, StoreEvent};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, timeout_at};

/// Re-read the job at least this often, in case an event was never sent
/// (e.g. it was finished by another process sharing the database).
const SAFETY_REREAD: Duration = Duration::from_secs(1);

/// The job once it is terminal, or as it is when `wait` runs out.
pub(crate) async fn until_terminal(
    store: &dyn Store,
    id: JobId,
    wait: Duration,
) -> Result<Job, ApiError> {
    // Subscribe before the first read so a finish between the two is not missed.
    let mut events = store.subscribe();
    let deadline = Instant::now() + wait;
    loop {
        let job = fetch(store, id).await?;
        let now = Instant::now();
        if job.state.is_terminal() || now >= deadline {
            return Ok(job);
        }
        let wake = deadline.min(now + SAFETY_REREAD);
        // Woken or timed out: either way, read the job again.
        let _ = timeout_at(wake, finished(&mut events, id)).await;
    }
}

/// One job, or 404.
pub(crate) async fn fetch(store: &dyn Store, id: JobId) -> Result<Job, ApiError> {
    store
        .get(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id).into())
}

/// Returns when `id` may have finished: its `Finished` event, or missed events.
async fn finished(events: &mut broadcast::Receiver<StoreEvent>, id: JobId) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::Finished(ids)) if ids.contains(&id) => return,
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return,
            // No more events will come: only the safety re-read can help.
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }
}
