//! The job counts the dashboard's live pages show (overview, queues,
//! kinds). Counting by queue, kind and state reads the whole jobs table —
//! 0.8 s on SQLite and 0.14 s on PostgreSQL with 1,000,000 jobs
//! (docs/benchmarks.md) — so these pages show the last count while it is
//! younger than [`FRESH`]; a page that finds it older shows it all the
//! same and starts one new count in the background for the next view.
//! Only the first view after start (or after [`Counts::invalidate`])
//! waits for a count. The API's `/v1/stats`, `/v1/queues` and `/metrics`
//! always count afresh.

use crate::App;
use errand_core::StoreError;
use errand_core::store::{QueueInfo, Stats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a count is shown without starting another.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// The last counts, each with when it was taken.
#[derive(Default)]
pub(crate) struct Counts {
    queues: Slot<Vec<QueueInfo>>,
    stats: Slot<Stats>,
}

/// One cached answer and whether a background count is under way.
struct Slot<T> {
    last: Mutex<Option<(Instant, Arc<T>)>>,
    counting: AtomicBool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            last: Mutex::new(None),
            counting: AtomicBool::new(false),
        }
    }
}

impl<T> Slot<T> {
    fn last(&self) -> Option<(Instant, Arc<T>)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, value: Option<Arc<T>>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = value.map(|v| (Instant::now(), v));
    }
}

impl Counts {
    /// Forgets the counts, so the next view counts afresh (after an action
    /// the page must show at once, such as pausing a queue).
    pub(crate) fn invalidate(&self) {
        self.queues.set(None);
        self.stats.set(None);
    }
}

/// The queues with their counts (see the module's header).
pub(crate) async fn queues(app: &Arc<App>) -> Result<Arc<Vec<QueueInfo>>, StoreError> {
    read(
        app,
        |app| &app.counts.queues,
        |store| async move { store.queues().await },
    )
    .await
}

/// The counts by queue, kind and state (see the module's header).
pub(crate) async fn stats(app: &Arc<App>) -> Result<Arc<Stats>, StoreError> {
    read(
        app,
        |app| &app.counts.stats,
        |store| async move { store.stats().await },
    )
    .await
}

/// The slot's value: fresh, stale (starting a background count), or
/// counted now when there is none.
async fn read<T, F, Fut>(
    app: &Arc<App>,
    slot: fn(&App) -> &Slot<T>,
    count: F,
) -> Result<Arc<T>, StoreError>
where
    T: Send + Sync + 'static,
    F: FnOnce(Arc<dyn errand_core::Store>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, StoreError>> + Send,
{
    match slot(app).last() {
        Some((at, value)) if at.elapsed() < FRESH => Ok(value),
        Some((_, value)) => {
            if !slot(app).counting.swap(true, Ordering::AcqRel) {
                let app = app.clone();
                tokio::spawn(async move {
                    match count(app.store.clone()).await {
                        Ok(fresh) => slot(&app).set(Some(Arc::new(fresh))),
                        Err(e) => tracing::warn!(error = %e, "dashboard counts not refreshed"),
                    }
                    slot(&app).counting.store(false, Ordering::Release);
                });
            }
            Ok(value)
        }
        None => {
            let fresh = Arc::new(count(app.store.clone()).await?);
            slot(app).set(Some(fresh.clone()));
            Ok(fresh)
        }
    }
}
