//! Progress reports of running attempts, coalesced before they reach the
//! store: each attempt's latest report waits on the [`Board`]; once per
//! [`PROGRESS_INTERVAL`] one `record_progress` call writes the latest value
//! of every attempt that reported since the previous write, and an attempt
//! that ends has its unwritten value written before its finish is queued.
//! However chatty an executor is, a job costs the store about one write per
//! interval, and the last value before the finish is never lost.

use errand_core::progress::{PROGRESS_INTERVAL, ProgressTooLarge};
use errand_core::{Clock, Lease, Progress, ProgressUpdate, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Where an executor reports the progress of the attempt it runs (any
/// JSON value, at most [`errand_core::progress::MAX_PROGRESS_BYTES`]).
/// Cheap to clone; reports after the attempt ended are ignored.
#[derive(Clone)]
pub struct ProgressSink {
    target: Option<(Lease, Arc<Board>)>,
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lease = self.target.as_ref().map(|(lease, _)| lease);
        f.debug_struct("ProgressSink")
            .field("lease", &lease)
            .finish()
    }
}

impl ProgressSink {
    /// A sink that keeps nothing, for running an executor outside a worker.
    pub fn discard() -> ProgressSink {
        ProgressSink { target: None }
    }

    /// Reports `value` as the attempt's latest progress; it replaces any
    /// report not yet written. A value over the limit is refused and the
    /// previous one stays.
    pub fn report(&self, value: Value) -> Result<(), ProgressTooLarge> {
        let progress = Progress::new(value)?;
        if let Some((lease, board)) = &self.target {
            board.report(*lease, progress);
        }
        Ok(())
    }
}

/// The attempts of one worker and their unwritten reports.
pub(crate) struct Board {
    store: Arc<dyn Store>,
    clock: Clock,
    state: Mutex<State>,
    /// Held while a write is under way, so an ending attempt waits for a
    /// write that carries its value: its finish must not overtake it (the
    /// store refuses progress for an attempt that has ended).
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Running attempts; true once the attempt reported something.
    open: HashMap<Lease, bool>,
    /// The latest unwritten report of each attempt.
    pending: HashMap<Lease, ProgressUpdate>,
}

impl Board {
    /// An empty board writing to `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Arc<Board> {
        let clock = store.clock();
        Arc::new(Board {
            store,
            clock,
            state: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// A sink for an attempt that starts now.
    pub(crate) fn open(self: &Arc<Self>, lease: Lease) -> ProgressSink {
        self.lock().open.insert(lease, false);
        ProgressSink {
            target: Some((lease, self.clone())),
        }
    }

    fn report(&self, lease: Lease, progress: Progress) {
        let at = self.clock.now();
        let mut state = self.lock();
        let Some(reported) = state.open.get_mut(&lease) else {
            return;
        };
        *reported = true;
        let update = ProgressUpdate {
            lease,
            progress,
            at,
        };
        state.pending.insert(lease, update);
    }

    /// Ends an attempt. When `held` and it reported something, writes its
    /// unwritten report (or waits for the write carrying it), so the value
    /// is in the store before the attempt's finish is queued.
    pub(crate) async fn close(&self, lease: Lease, held: bool) {
        let reported = self.lock().open.remove(&lease).unwrap_or(false);
        if !reported {
            return;
        }
        let _writing = self.writing.lock().await;
        let pending = self.lock().pending.remove(&lease);
        if let (Some(update), true) = (pending, held) {
            self.write(vec![update]).await;
        }
    }

    /// Writes every unwritten report in one store call.
    async fn flush(&self) {
        let _writing = self.writing.lock().await;
        let updates: Vec<ProgressUpdate> = self.lock().pending.drain().map(|(_, u)| u).collect();
        if !updates.is_empty() {
            self.write(updates).await;
        }
    }

    /// One store call; progress is informational, so a failed write is
    /// logged and dropped (the next report brings a newer value anyway).
    async fn write(&self, updates: Vec<ProgressUpdate>) {
        let attempts = updates.len();
        if let Err(e) = self.store.record_progress(updates).await {
            tracing::warn!(error = %e, attempts, "writing progress failed; dropped");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes the board's reports every [`PROGRESS_INTERVAL`] until `stop`.
pub(crate) async fn run(board: Arc<Board>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(PROGRESS_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => board.flush().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::store;
    use errand_core::store::ClaimRequest;
    use errand_core::{Job, NewJob};
    use serde_json::json;
    use std::time::Duration;

    async fn running(store: &Arc<dyn Store>) -> Job {
        store
            .enqueue(vec![NewJob::new("k", json!(null))])
            .await
            .unwrap();
        let req = ClaimRequest {
            queue: "default".into(),
            kinds: Vec::new(),
            limit: 1,
            worker: "test".into(),
            lease: Duration::from_secs(60),
            limits: Default::default(),
        };
        store.claim(&req).await.unwrap().jobs.remove(0)
    }

    async fn progress_of(store: &Arc<dyn Store>, job: &Job) -> Option<Value> {
        store.get(job.id).await.unwrap().unwrap().progress
    }

    /// Closing a held attempt writes its last report at once; reports
    /// after the close, and a lost attempt's reports, are never written.
    #[tokio::test]
    async fn the_last_report_is_written_at_the_close_and_nothing_after() {
        let (store, _dir) = store().await;
        let board = Board::new(store.clone());
        let held = running(&store).await;
        let sink = board.open(held.lease());
        sink.report(json!(1)).unwrap();
        sink.report(json!(2)).unwrap();
        board.close(held.lease(), true).await;
        assert_eq!(progress_of(&store, &held).await, Some(json!(2)));
        sink.report(json!(3)).unwrap();
        board.flush().await;
        assert_eq!(progress_of(&store, &held).await, Some(json!(2)));

        let lost = running(&store).await;
        let sink = board.open(lost.lease());
        sink.report(json!("lost")).unwrap();
        board.close(lost.lease(), false).await;
        board.flush().await;
        assert_eq!(progress_of(&store, &lost).await, None);
        let state = board.lock();
        assert!(state.open.is_empty() && state.pending.is_empty());
    }
}
