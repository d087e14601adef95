//! The maintenance loop: puts jobs whose worker vanished back to run, makes
//! due scheduled and retryable jobs available, and prunes old terminal jobs.

use errand_core::{Retention, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often maintenance runs and what it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceConfig {
    /// How often expired leases are rescued and due jobs promoted.
    pub interval: Duration,
    /// How often terminal jobs past their retention are deleted.
    pub prune_interval: Duration,
    /// How long terminal jobs are kept.
    pub retention: Retention,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            interval: Duration::from_secs(1),
            prune_interval: Duration::from_secs(60),
            retention: Retention::default(),
        }
    }
}

/// Runs maintenance until `shutdown` fires. Store errors are logged and the
/// work is tried again on the next tick.
pub async fn run_maintenance(
    store: Arc<dyn Store>,
    config: MaintenanceConfig,
    shutdown: CancellationToken,
) {
    let mut ticks = every(config.interval);
    let mut prunes = every(config.prune_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => rescue_and_promote(store.as_ref()).await,
            _ = prunes.tick() => match store.prune(&config.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned terminal jobs past retention"),
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            },
        }
    }
}

fn every(period: Duration) -> tokio::time::Interval {
    // A zero period would spin; a millisecond is the finest useful grain.
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

async fn rescue_and_promote(store: &dyn Store) {
    match store.rescue_expired().await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => tracing::warn!(jobs = ?ids, "rescued jobs whose worker stopped heartbeating"),
        Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
    }
    match store.promote_due().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(promoted = n, "made due jobs available"),
        Err(e) => tracing::warn!(error = %e, "promoting due jobs failed"),
    }
}
