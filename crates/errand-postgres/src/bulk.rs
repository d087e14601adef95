//! Bulk actions (migration 0017): operations stored with their cursor, and
//! the step that applies one to its next chunk of jobs in one transaction.
//! The step locks the operation's row first, so nodes stepping the same
//! operation take turns; it selects the chunk with the listing's own
//! conditions ([`crate::read::Values`]), locks those jobs in id order,
//! and changes the ones in a state [`BulkAction::applies_to`] accepts with
//! one statement.

use crate::batches;
use crate::events::Changes;
use crate::read::Values;
use crate::rows::{Listing, TERMINAL, db_error, int, optional_time, sql_time, time_column};
use deadpool_postgres::{Client, GenericClient};
use errand_core::batch::BatchId;
use errand_core::bulk::{BulkAction, BulkId, BulkOperation, BulkState, BulkTarget, NewBulk};
use errand_core::history::Counter;
use errand_core::outcome::attempt_on_manual_retry;
use errand_core::store::SCAN_LIMIT;
use errand_core::{JobId, StoreError};
use jiff::Timestamp;
use std::collections::HashSet;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

const COLUMNS: &str = "id, action, target, actor, state, matched, changed, cursor, created_at, \
     updated_at, finished_at, error";

/// Stores a new running operation, its cursor above every job now.
pub(crate) async fn create(
    client: &mut Client,
    bulk: NewBulk,
    now: Timestamp,
) -> Result<BulkOperation, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let highest: Option<JobId> = tx
        .query_one("SELECT max(id) FROM jobs", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let cursor = bulk.first_cursor(highest);
    let target = serde_json::to_value(&bulk.target)
        .map_err(|e| StoreError::Internal(format!("cannot encode a bulk target: {e}")))?;
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO bulk_operations (action, target, actor, state, cursor, created_at, \
                 updated_at) VALUES ($1, $2, $3, 'running', $4, $5, $5) RETURNING {COLUMNS}"
        ))
        .await
        .map_err(db_error)?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &bulk.action.as_str(),
                &target,
                &bulk.actor,
                &cursor,
                &sql_time(now),
            ],
        )
        .await
        .map_err(db_error)?;
    let op = from_row(&row)?;
    crate::audit::record(&tx, &bulk.audit_entry(op.id), now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(op)
}

/// One operation by id.
pub(crate) async fn get(client: &Client, id: BulkId) -> Result<Option<BulkOperation>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bulk_operations WHERE id = $1"
        ))
        .await
        .map_err(db_error)?;
    client
        .query_opt(&stmt, &[&id])
        .await
        .map_err(db_error)?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Operations newest first, in `state` if given.
pub(crate) async fn list(
    client: &Client,
    state: Option<BulkState>,
    limit: u32,
) -> Result<Vec<BulkOperation>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bulk_operations WHERE $1::text IS NULL OR state = $1 \
             ORDER BY id DESC LIMIT $2"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&state.map(BulkState::as_str), &i64::from(limit)])
        .await
        .map_err(db_error)?;
    rows.iter().map(from_row).collect()
}

/// Marks a running operation failed.
pub(crate) async fn fail(
    client: &Client,
    id: BulkId,
    error: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE bulk_operations SET state = 'failed', error = $2, updated_at = $3, \
                 finished_at = $3 WHERE id = $1 AND state = 'running'",
        )
        .await
        .map_err(db_error)?;
    client
        .execute(&stmt, &[&id, &error, &sql_time(now)])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Applies operation `id` to its next `chunk` target jobs and advances it,
/// in one transaction; answers the operation and what to announce.
pub(crate) async fn step(
    client: &mut Client,
    id: BulkId,
    chunk: u32,
    now: Timestamp,
) -> Result<(BulkOperation, Changes), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let lock = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bulk_operations WHERE id = $1 FOR UPDATE"
        ))
        .await
        .map_err(db_error)?;
    let mut op = match tx.query_opt(&lock, &[&id]).await.map_err(db_error)? {
        Some(row) => from_row(&row)?,
        None => {
            return Err(StoreError::Internal(format!(
                "bulk operation {id} not found"
            )));
        }
    };
    if op.state != BulkState::Running {
        return Ok((op, Changes::default()));
    }
    let (ids, examined, lowest) = next_chunk(&tx, &op, chunk).await?;
    let matched = match op.target {
        BulkTarget::Ids(_) => examined,
        BulkTarget::Filter(_) => ids.len() as u64,
    };
    let (changed, changes) = match apply(&tx, op.action, &ids, now).await {
        Ok(done) => done,
        // A job enqueued meanwhile took the unique key a retried job has:
        // nothing of this step is kept, and the next step skips that job.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(StoreError::Unavailable(format!(
                "bulk operation {id}: a job enqueued meanwhile took a unique key; the step is retried"
            )));
        }
        Err(e) => return Err(db_error(e)),
    };
    let mut changes = changes;
    if !changes.finished.is_empty() {
        let batches: Vec<BatchId> = changed_batches(&tx, &changes.finished).await?;
        changes.absorb(batches::settle(&tx, &batches, now).await?);
    }
    op.advance(examined, matched, lowest, changed, chunk, now);
    let save = tx
        .prepare_cached(
            "UPDATE bulk_operations SET state = $2, matched = $3, changed = $4, cursor = $5, \
                 updated_at = $6, finished_at = $7 WHERE id = $1",
        )
        .await
        .map_err(db_error)?;
    tx.execute(
        &save,
        &[
            &id,
            &op.state.as_str(),
            &count(op.matched),
            &count(op.changed),
            &op.cursor,
            &sql_time(now),
            &op.finished_at.map(sql_time),
        ],
    )
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok((op, changes))
}

/// The ids of the next chunk of `op`'s target below its cursor, highest
/// first; how many target jobs it examined (for ids: ids, found or not) and
/// the lowest id among them.
async fn next_chunk(
    tx: &impl GenericClient,
    op: &BulkOperation,
    chunk: u32,
) -> Result<(Vec<JobId>, u64, Option<JobId>), StoreError> {
    let limit = i64::from(chunk);
    let slice: Vec<JobId>;
    let mut listing = Listing::default();
    match &op.target {
        BulkTarget::Filter(filter) => {
            let values = Values::of(filter);
            let mut listing = values.listing();
            listing.filter("id <", &op.cursor);
            let (sql, params) = listing.examine("jobs", &limit);
            let stmt = tx.prepare_cached(&sql).await.map_err(db_error)?;
            let rows = tx.query(&stmt, &params).await.map_err(db_error)?;
            let lowest = rows.last().map(|r| r.get(0));
            let hits = rows.iter().filter(|r| r.get(1)).map(|r| r.get(0));
            Ok((hits.collect(), rows.len() as u64, lowest))
        }
        BulkTarget::Ids(ids) => {
            // The ids are sorted highest first: the chunk is a slice of them.
            slice = ids
                .iter()
                .copied()
                .filter(|i| *i < op.cursor)
                .take(chunk as usize)
                .collect();
            listing.filter_any("id", &slice);
            listing.filter("id <", &op.cursor);
            let (sql, params) = listing.newest_first("id", "jobs", &limit, SCAN_LIMIT);
            let stmt = tx.prepare_cached(&sql).await.map_err(db_error)?;
            let rows = tx.query(&stmt, &params).await.map_err(db_error)?;
            let found = rows.iter().map(|r| r.get(0)).collect();
            Ok((found, slice.len() as u64, slice.last().copied()))
        }
    }
}

/// One locked job of a chunk, as the action needs it.
struct Target {
    id: JobId,
    attempt: u32,
    max_attempts: u32,
    queue: String,
    kind: String,
}

/// Locks the jobs `ids` (in id order, so steps never deadlock each other),
/// changes those in a state `action` applies to, and answers how many it
/// changed and what to announce.
async fn apply(
    tx: &impl GenericClient,
    action: BulkAction,
    ids: &[JobId],
    now: Timestamp,
) -> Result<(u64, Changes), tokio_postgres::Error> {
    let mut changes = Changes::default();
    if ids.is_empty() {
        return Ok((0, changes));
    }
    let states: Vec<&str> = action.states().into_iter().map(|s| s.as_str()).collect();
    // A retry must not give the kind a second live job with the same unique
    // key (a single retry is refused for it): such jobs are skipped, and
    // of two in the chunk with one key, only the newest is retried.
    let skip_duplicates = if action == BulkAction::Retry {
        format!(
            "AND (j.unique_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs l \
                 WHERE l.kind = j.kind AND l.unique_key = j.unique_key \
                 AND l.state NOT IN {TERMINAL})) \
             ORDER BY j.kind, j.unique_key, j.id DESC"
        )
    } else {
        String::new()
    };
    let lock = tx
        .prepare_cached(&format!(
            "SELECT id, attempt, max_attempts, queue, kind, unique_key FROM ( \
                 SELECT j.id, j.attempt, j.max_attempts, j.queue, j.kind, j.unique_key, j.state \
                 FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id FOR UPDATE) j \
             WHERE j.state = ANY($2) {skip_duplicates}"
        ))
        .await?;
    let rows = tx.query(&lock, &[&ids, &states]).await?;
    let mut keys = HashSet::new();
    let mut targets = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: Option<String> = row.get(5);
        if let Some(key) = key
            && !keys.insert((row.get::<_, String>(4), key))
        {
            continue;
        }
        targets.push(Target {
            id: row.get(0),
            attempt: u32::try_from(row.get::<_, i32>(1)).unwrap_or(0),
            max_attempts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
            queue: row.get(3),
            kind: row.get(4),
        });
    }
    let ids: Vec<JobId> = targets.iter().map(|t| t.id).collect();
    let at = now;
    let now = sql_time(now);
    let changed = match action {
        BulkAction::Retry => {
            let attempts: Vec<i32> = targets
                .iter()
                .map(|t| int(attempt_on_manual_retry(t.attempt, t.max_attempts)))
                .collect();
            let stmt = tx
                .prepare_cached(
                    "UPDATE jobs j SET state = 'available', run_at = $3, finished_at = NULL, \
                         attempt = u.attempt, lease_expires_at = NULL, worker = NULL \
                     FROM unnest($1::bigint[], $2::integer[]) AS u(id, attempt) \
                     WHERE j.id = u.id",
                )
                .await?;
            tx.execute(&stmt, &[&ids, &attempts, &now]).await?
        }
        BulkAction::Cancel => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', finished_at = $2, \
                         lease_expires_at = NULL, worker = NULL WHERE id = ANY($1)",
                )
                .await?;
            tx.execute(&stmt, &[&ids, &now]).await?
        }
        BulkAction::Delete => {
            let stmt = tx
                .prepare_cached("DELETE FROM jobs WHERE id = ANY($1)")
                .await?;
            tx.execute(&stmt, &[&ids]).await?
        }
        BulkAction::RunNow => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE jobs SET state = 'available', run_at = $2 WHERE id = ANY($1)",
                )
                .await?;
            tx.execute(&stmt, &[&ids, &now]).await?
        }
    };
    match action {
        BulkAction::Retry | BulkAction::RunNow => {
            changes.enqueued = targets.into_iter().map(|t| t.queue).collect();
        }
        BulkAction::Cancel => {
            for t in &targets {
                changes
                    .history
                    .count(at, &t.kind, &t.queue, Counter::Cancelled);
            }
            changes.finished = ids;
        }
        BulkAction::Delete => {}
    }
    Ok((changed, changes))
}

/// The batches of the jobs `ids`.
async fn changed_batches(
    tx: &impl GenericClient,
    ids: &[JobId],
) -> Result<Vec<BatchId>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT DISTINCT batch_id FROM jobs WHERE id = ANY($1) AND batch_id IS NOT NULL",
        )
        .await
        .map_err(db_error)?;
    let rows = tx.query(&stmt, &[&ids]).await.map_err(db_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A count as stored (saturating: no count comes near `i64::MAX`).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An operation from a row selected with [`COLUMNS`].
fn from_row(row: &Row) -> Result<BulkOperation, StoreError> {
    let action: String = row.try_get(1).map_err(db_error)?;
    let state: String = row.try_get(4).map_err(db_error)?;
    let target: serde_json::Value = row.try_get(2).map_err(db_error)?;
    let counted = |i: usize| -> Result<u64, StoreError> {
        Ok(row.try_get::<_, i64>(i).map_err(db_error)?.max(0) as u64)
    };
    Ok(BulkOperation {
        id: row.try_get(0).map_err(db_error)?,
        action: action.parse().map_err(StoreError::Internal)?,
        target: serde_json::from_value(target)
            .map_err(|e| StoreError::Internal(format!("a bulk target holds bad JSON: {e}")))?,
        actor: row.try_get(3).map_err(db_error)?,
        state: state.parse().map_err(StoreError::Internal)?,
        matched: counted(5)?,
        changed: counted(6)?,
        cursor: row.try_get(7).map_err(db_error)?,
        created_at: time_column(row, 8)?,
        updated_at: time_column(row, 9)?,
        finished_at: optional_time(row, 10)?,
        error: row.try_get(11).map_err(db_error)?,
    })
}
