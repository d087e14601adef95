//! The scheduler loop: enqueues each cron schedule's job once per tick.
//!
//! Every node runs the loop; only the holder of the `scheduler` leader lease
//! fires ticks, so nodes sharing a database do not all do the work. Even
//! when two nodes both believe they lead (a lease moving over), each tick is
//! recorded with [`Store::record_tick`], which lets exactly one of them
//! enqueue it. The loop sleeps until the next tick of any schedule (by the
//! store's clock), but wakes at least every [`RECHECK`] to renew the lease,
//! or to take it over from a node that died.

use errand_core::schedule::{Decision, Schedule};
use errand_core::{Catalog, Store, StoreError};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Longest sleep between two looks at the lease and the schedules.
pub const RECHECK: Duration = Duration::from_secs(3);

/// How late a tick may be noticed and still count as on time; older ticks
/// were missed (the scheduler was down) and follow the schedule's `catch_up`.
pub const MISFIRE_GRACE: Duration = Duration::from_secs(60);

/// The leader-lease role the scheduler runs under.
const ROLE: &str = "scheduler";

/// Runs the catalogue's schedules until `shutdown` fires, enqueueing each
/// tick's job as the catalogue builds it. `node` names this node for the
/// leader lease. Store errors are logged and retried on the next wake.
pub async fn run_scheduler(
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    node: String,
    shutdown: CancellationToken,
) {
    if catalog.schedules().is_empty() {
        return;
    }
    let ttl = RECHECK * 5;
    let clock = store.clock();
    let mut leading = false;
    loop {
        let now_leading = match store.try_lead(ROLE, &node, ttl).await {
            Ok(lead) => lead,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the store for the scheduler lease");
                false
            }
        };
        if now_leading != leading {
            tracing::info!(node, leading = now_leading, "scheduler leadership changed");
            leading = now_leading;
        }
        let next_tick = if leading {
            fire_due(store.as_ref(), &catalog).await
        } else {
            None
        };
        // The next tick by the store's clock (which tests move by hand),
        // the lease by the runtime's timer.
        let tick_due = async {
            match next_tick {
                Some(t) => clock.sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RECHECK) => {}
            _ = tick_due => {}
        }
    }
    if leading && let Err(e) = store.resign(ROLE, &node).await {
        tracing::warn!(error = %e, "could not resign the scheduler lease; it expires by itself");
    }
}

/// Records every due tick of every schedule; returns the earliest next
/// tick, or `None` when the store failed (so the caller re-checks soon).
async fn fire_due(store: &dyn Store, catalog: &Catalog) -> Option<Timestamp> {
    let mut last_ticks = match store.ticks().await {
        Ok(ticks) => ticks,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the schedules' last ticks");
            return None;
        }
    };
    let mut earliest: Option<Timestamp> = None;
    for schedule in catalog.schedules() {
        let last = last_ticks.remove(&schedule.name);
        match fire_schedule(store, catalog, schedule, last).await {
            Ok(Some(next)) => earliest = Some(earliest.map_or(next, |e| e.min(next))),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(schedule = schedule.name, error = %e, "cannot record a tick; retrying soon");
                return None;
            }
        }
    }
    // A schedule that never fires again has no next tick: wake at RECHECK.
    earliest
}

/// Fires `schedule`'s due ticks one after another (each on-time tick gets
/// its job; missed ones are caught up once or skipped) until it waits for
/// the next; returns that next tick.
async fn fire_schedule(
    store: &dyn Store,
    catalog: &Catalog,
    schedule: &Schedule,
    mut last: Option<Timestamp>,
) -> Result<Option<Timestamp>, StoreError> {
    let name = schedule.name.as_str();
    loop {
        let (tick, job) = match schedule.decide(last, store.clock().now(), MISFIRE_GRACE) {
            Decision::Wait(next) => return Ok(next),
            Decision::Skip(tick) => (tick, None),
            Decision::Enqueue(tick) => match catalog.schedule_job(schedule, tick) {
                Ok(job) => (tick, Some(job)),
                Err(e) => {
                    // The kind's policy cannot take this job: skip the tick
                    // rather than retry it forever.
                    tracing::error!(schedule = name, %tick, error = %e, "cannot build the schedule's job; tick skipped");
                    (tick, None)
                }
            },
        };
        if job.is_none() {
            tracing::info!(schedule = name, up_to = %tick, "missed ticks skipped");
        }
        // `None` back: another node recorded this tick (or a later one) first.
        if let Some(done) = store.record_tick(name, tick, job).await? {
            tracing::info!(schedule = name, %tick, job = done.job.id, "schedule fired");
        }
        last = Some(tick);
    }
}
