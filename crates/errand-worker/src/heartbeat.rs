//! Renews every held lease in one store call per tick, stops attempts whose
//! lease the store reports lost, and keeps this node's registry entry (with its open breakers) fresh.

use crate::breaker::Breakers;
use crate::running::Running;
use errand_core::{NodeInfo, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// What the heartbeat renews and how often.
pub(crate) struct Beat {
    /// This node's registry entry.
    pub(crate) node: NodeInfo,
    /// Tick period.
    pub(crate) every: Duration,
    /// Lease length granted at each renewal.
    pub(crate) lease: Duration,
    /// Reported in the registry entry at each tick.
    pub(crate) breakers: Arc<Breakers>,
}

/// Heartbeats until `stop` fires, then removes the node from the registry.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    running: Arc<Running>,
    beat: Beat,
    stop: CancellationToken,
) {
    let mut node = beat.node;
    let mut ticks = tokio::time::interval(beat.every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let leases = running.leases();
        node.running = u32::try_from(leases.len()).unwrap_or(u32::MAX);
        node.breakers = beat.breakers.snapshot(tokio::time::Instant::now());
        if let Err(e) = store.register_node(&node).await {
            tracing::warn!(error = %e, "node heartbeat failed; will retry next tick");
        }
        if leases.is_empty() {
            continue;
        }
        match store.heartbeat(&leases, beat.lease).await {
            Ok(lost) => running.lose(&lost),
            Err(e) => {
                tracing::warn!(error = %e, leases = leases.len(), "heartbeat failed; will retry next tick")
            }
        }
    }
    if let Err(e) = store.remove_node(&node.name).await {
        tracing::warn!(error = %e, "could not remove this node from the registry; it expires by itself");
    }
}
