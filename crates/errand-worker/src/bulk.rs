//! Runs bulk operations (errand_core::bulk) to their end. The node that
//! accepted an operation steps it at once in a background task; the
//! maintenance leader resumes any operation left running with no step for
//! `BULK_STALE_AFTER` (its node died or stopped). Each step is one short
//! store transaction, so steps of one operation from two nodes at once
//! only take turns (docs/decisions/0027).

use errand_core::bulk::{BULK_CHUNK, BulkId, BulkState};
use errand_core::{Store, StoreError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest wait before stepping again after the store was unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Longest rest between two steps (a step slowed by a busy store should
/// not stretch the action without bound).
const MAX_REST: Duration = Duration::from_millis(200);

/// Most running operations one resume pass looks at.
const RESUME_BATCH: u32 = 100;

/// Steps bulk operations in background tasks, at most one task per
/// operation in this process; cheap to clone.
#[derive(Clone)]
pub struct BulkRunner {
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    driving: Arc<Mutex<HashSet<BulkId>>>,
    chunk: u32,
}

impl BulkRunner {
    /// A runner on `store` whose tasks stop (leaving their operations
    /// `running`, to be resumed) when `shutdown` fires.
    pub fn new(store: Arc<dyn Store>, shutdown: CancellationToken) -> BulkRunner {
        BulkRunner {
            store,
            shutdown,
            driving: Arc::default(),
            chunk: BULK_CHUNK,
        }
    }

    /// The same runner with `chunk` jobs per step (for tests).
    pub fn with_chunk(mut self, chunk: u32) -> BulkRunner {
        self.chunk = chunk.max(1);
        self
    }

    /// Steps operation `id` in the background until it ends, unless this
    /// runner already is.
    pub fn start(&self, id: BulkId) {
        if !lock(&self.driving).insert(id) {
            return;
        }
        let runner = self.clone();
        tokio::spawn(async move {
            runner.drive(id).await;
            lock(&runner.driving).remove(&id);
        });
    }

    /// Starts every running operation no node has stepped for
    /// `BULK_STALE_AFTER`; answers how many.
    pub async fn resume_stale(&self) -> Result<usize, StoreError> {
        let now = self.store.clock().now();
        let stale: Vec<BulkId> = self
            .store
            .bulks(Some(BulkState::Running), RESUME_BATCH)
            .await?
            .into_iter()
            .filter(|op| op.is_stale(now))
            .map(|op| op.id)
            .collect();
        for &id in &stale {
            tracing::info!(
                bulk = id,
                "resuming a bulk operation whose node stopped stepping it"
            );
            self.start(id);
        }
        Ok(stale.len())
    }

    async fn drive(&self, id: BulkId) {
        let mut pause = Duration::from_millis(100);
        while !self.shutdown.is_cancelled() {
            let started = std::time::Instant::now();
            match self.store.step_bulk(id, self.chunk).await {
                Ok(op) if op.state != BulkState::Running => {
                    tracing::info!(
                        bulk = id,
                        action = %op.action,
                        matched = op.matched,
                        changed = op.changed,
                        "bulk operation done"
                    );
                    return;
                }
                // Rest as long as the step took: the store (SQLite's one
                // writer above all) spends at most half its time on the
                // action and serves enqueues in between (docs/benchmarks.md).
                Ok(_) => {
                    let rest = started.elapsed().min(MAX_REST);
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(rest) => {}
                    }
                    pause = Duration::from_millis(100);
                }
                Err(e @ (StoreError::Unavailable(_) | StoreError::Locked(_))) => {
                    tracing::warn!(bulk = id, error = %e, "bulk step failed; retrying in {pause:?}");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    tracing::error!(bulk = id, error = %e, "bulk operation failed");
                    // An internal error's text may name tables or values:
                    // it stays in this log, the operation says where to look.
                    let why = match e {
                        StoreError::Internal(_) => {
                            "internal error; the log of the node that stepped it has the details"
                                .to_string()
                        }
                        other => other.to_string(),
                    };
                    if let Err(e) = self.store.fail_bulk(id, &why).await {
                        tracing::warn!(bulk = id, error = %e, "cannot record the bulk operation's failure");
                    }
                    return;
                }
            }
        }
    }
}

/// A poisoned lock only means a panic while holding it: the set stays valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
