//! Collects the ends of attempts from every job task and writes whatever has
//! queued up in one `store.finish` call, retrying on store errors so that no
//! completion is ever dropped.

use crate::retry_delay::RetryDelay;
use errand_core::Store;
use errand_core::store::Finish;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Most finishes written in one call, to bound one transaction.
const MAX_BATCH: usize = 1024;

/// Where job tasks send their finishes.
pub(crate) type Completions = mpsc::UnboundedSender<Finish>;

/// A channel for finishes and the task draining it; the task returns once
/// every sender is dropped and everything sent has been written.
pub(crate) fn start(store: Arc<dyn Store>) -> (Completions, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, tokio::spawn(drain(store, rx)))
}

async fn drain(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Finish>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut delay = RetryDelay::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        loop {
            match store.finish(batch.clone()).await {
                Ok(applied) => {
                    for (finish, ok) in batch.iter().zip(applied) {
                        if !ok {
                            tracing::info!(
                                job = finish.lease.id,
                                fence = finish.lease.fence,
                                "finish not applied: the lease was no longer held"
                            );
                        }
                    }
                    delay.reset();
                    break;
                }
                Err(e) => {
                    let pause = delay.next();
                    tracing::warn!(error = %e, pending = batch.len(), ?pause, "writing completions failed; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
        batch.clear();
    }
}
