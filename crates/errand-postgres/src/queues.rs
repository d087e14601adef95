//! Queue pause records: `errand_claim` (migration 0006) refuses a paused
//! queue, so every node obeys a pause at once, with no cache to invalidate.

use crate::events::Changes;
use crate::rows::{db_error, optional_time, sql_time};
use crate::{audit, counts};
use deadpool_postgres::Client;
use errand_core::audit::{AuditActor, NewAuditEntry};
use errand_core::store::OLDEST_AVAILABLE_SQL;
use errand_core::{QueueInfo, StoreError};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Records `queue` as paused or not, with an audit entry when that changed
/// it; answers what to announce (resuming wakes idle workers on every node).
pub(crate) async fn set_paused(
    client: &mut Client,
    queue: &str,
    paused: bool,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<Changes, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    // The row exists (never paused: not paused) and is locked, so two
    // nodes pausing at once see each other's change and only one records it.
    let ensure = tx
        .prepare_cached(
            "INSERT INTO queues (name, paused, updated_at) VALUES ($1, false, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .await
        .map_err(db_error)?;
    tx.execute(&ensure, &[&queue, &sql_time(now)])
        .await
        .map_err(db_error)?;
    let lock = tx
        .prepare_cached("SELECT paused FROM queues WHERE name = $1 FOR UPDATE")
        .await
        .map_err(db_error)?;
    let was: bool = tx
        .query_one(&lock, &[&queue])
        .await
        .map_err(db_error)?
        .get(0);
    let update = tx
        .prepare_cached("UPDATE queues SET paused = $2, updated_at = $3 WHERE name = $1")
        .await
        .map_err(db_error)?;
    tx.execute(&update, &[&queue, &paused, &sql_time(now)])
        .await
        .map_err(db_error)?;
    if was != paused {
        audit::record(&tx, &NewAuditEntry::queue(actor, queue, paused), now).await?;
    }
    tx.commit().await.map_err(db_error)?;
    let mut changes = Changes::default();
    if !paused {
        changes.enqueued.insert(queue.to_string());
    }
    Ok(changes)
}

/// Every queue with jobs or a pause record.
pub(crate) async fn list(client: &Client) -> Result<Vec<QueueInfo>, StoreError> {
    let stats = counts::read(client).await?;
    let stmt = client
        .prepare_cached("SELECT name, paused FROM queues")
        .await
        .map_err(db_error)?;
    let paused: BTreeMap<String, bool> = client
        .query(&stmt, &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(QueueInfo::merge(stats.queues, paused))
}

/// When the longest-waiting available job of `queue` became due.
pub(crate) async fn oldest_available(
    client: &Client,
    queue: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let sql = OLDEST_AVAILABLE_SQL.replace("{q}", "$1");
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let row = client.query_one(&stmt, &[&queue]).await.map_err(db_error)?;
    optional_time(&row, 0)
}
