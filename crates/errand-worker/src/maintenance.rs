//! The maintenance loop: puts jobs whose worker vanished back to run, makes
//! due scheduled and retryable jobs available, resumes bulk operations
//! whose node stopped stepping them, and prunes old terminal jobs.
//! Every node runs the loop, but only the holder of the `maintenance` leader
//! lease does the work, so nodes sharing a database do not repeat it; when
//! the leader dies another node takes over once its lease expires.

use crate::{BulkRunner, WorkerConfig};
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
    /// This node's name, for the leader lease.
    pub node: String,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            interval: Duration::from_secs(1),
            prune_interval: Duration::from_secs(60),
            retention: Retention::default(),
            node: WorkerConfig::default().name,
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
    // Long enough to ride out a slow tick or two, short enough that a dead
    // leader's duties move to another node within seconds.
    let ttl = (config.interval * 5).max(Duration::from_secs(5));
    let mut leading = false;
    let bulk = BulkRunner::new(store.clone(), shutdown.clone());
    loop {
        let prune_due = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => false,
            _ = prunes.tick() => true,
        };
        let now_leading = match store.try_lead(ROLE, &config.node, ttl).await {
            Ok(lead) => lead,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the store for the maintenance lease");
                false
            }
        };
        if now_leading != leading {
            tracing::info!(
                node = config.node,
                leading = now_leading,
                "maintenance leadership changed"
            );
            leading = now_leading;
        }
        if !leading {
            continue;
        }
        if prune_due {
            match store.prune(&config.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned terminal jobs past retention"),
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            }
        } else {
            rescue_and_promote(store.as_ref()).await;
            if let Err(e) = bulk.resume_stale().await {
                tracing::warn!(error = %e, "cannot look for abandoned bulk operations");
            }
        }
    }
    if leading && let Err(e) = store.resign(ROLE, &config.node).await {
        tracing::warn!(error = %e, "could not resign the maintenance lease; it expires by itself");
    }
}

/// The leader-lease role maintenance runs under.
const ROLE: &str = "maintenance";

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
