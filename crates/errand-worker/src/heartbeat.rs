//! Renews every held lease in one store call per tick and stops attempts
//! whose lease the store reports lost.

use crate::running::Running;
use errand_core::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Heartbeats until `stop` fires.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    running: Arc<Running>,
    every: Duration,
    lease: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; leases are fresh
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let leases = running.leases();
        if leases.is_empty() {
            continue;
        }
        match store.heartbeat(&leases, lease).await {
            Ok(lost) => running.lose(&lost),
            Err(e) => {
                tracing::warn!(error = %e, leases = leases.len(), "heartbeat failed; will retry next tick")
            }
        }
    }
}
