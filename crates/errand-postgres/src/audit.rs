//! The audit log (migration 0012): entries are written by the admin
//! operations themselves, in their own transaction, so an entry commits
//! exactly when its action does.

use crate::rows::{Listing, db_error, sql_time, time_column};
use deadpool_postgres::{Client, GenericClient};
use errand_core::StoreError;
use errand_core::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use jiff::Timestamp;
use std::time::SystemTime;
use tokio_postgres::Row;

const COLUMNS: &str = "id, at, actor, action, target, change";

/// Writes `entry` at `now`, in the caller's transaction `tx`.
pub(crate) async fn record(
    tx: &impl GenericClient,
    entry: &NewAuditEntry,
    now: Timestamp,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO audit (at, actor, action, target, change) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(db_error)?;
    tx.execute(
        &stmt,
        &[
            &sql_time(now),
            &entry.actor,
            &entry.action.as_str(),
            &entry.target,
            &entry.change,
        ],
    )
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Entries matching `filter`, newest first.
pub(crate) async fn list(
    client: &Client,
    filter: &AuditFilter,
) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = i64::from(filter.limit);
    let action = filter.action.map(|a| a.as_str());
    let since = filter.since.map(sql_time);
    let mut listing = Listing::default();
    if let Some(actor) = &filter.actor {
        listing.filter("actor =", actor);
    }
    if let Some(action) = &action {
        listing.filter("action =", action);
    }
    if let Some(since) = &since {
        listing.filter("at >=", since);
    }
    if let Some(before) = &filter.before {
        listing.filter("id <", before);
    }
    let (sql, params) =
        listing.newest_first(COLUMNS, "audit", &limit, errand_core::store::SCAN_LIMIT);
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &params).await.map_err(db_error)?;
    rows.iter().map(entry).collect()
}

/// Deletes entries written before `cutoff`.
pub(crate) async fn prune(client: &Client, cutoff: SystemTime) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM audit WHERE at < $1")
        .await
        .map_err(db_error)?;
    client.execute(&stmt, &[&cutoff]).await.map_err(db_error)?;
    Ok(())
}

fn entry(row: &Row) -> Result<AuditEntry, StoreError> {
    let id: i64 = row.try_get(0).map_err(db_error)?;
    let action: String = row.try_get(3).map_err(db_error)?;
    Ok(AuditEntry {
        id,
        at: time_column(row, 1)?,
        actor: row.try_get(2).map_err(db_error)?,
        action: action
            .parse()
            .map_err(|e| StoreError::Internal(format!("audit entry {id}: {e}")))?,
        target: row.try_get(4).map_err(db_error)?,
        change: row.try_get(5).map_err(db_error)?,
    })
}
