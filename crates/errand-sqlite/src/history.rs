//! Throughput history and lifetime totals on SQLite: the writer thread
//! carries the committed operations' counts and writes them ([`write`])
//! inside a group commit about once a second (see [`crate::writer`]);
//! reads sum the rows.

use crate::rows::{DUE_STATES, db_error, micros};
use errand_core::StoreError;
use errand_core::history::{
    HISTORY_TABLE, Key, TOTALS_TABLE, Tally, ThroughputBucket, ThroughputQuery, Total,
    into_buckets, sum_columns, upsert_sql,
};
use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::collections::BTreeMap;

/// Adds each tally to its history row and to its (kind, queue) totals.
pub(crate) fn write(conn: &Connection, tallies: Vec<(Key, Tally)>) -> Result<(), StoreError> {
    let mut history = conn
        .prepare_cached(&upsert_sql(HISTORY_TABLE, |i| format!("?{i}")))
        .map_err(db_error)?;
    let mut totals = conn
        .prepare_cached(&upsert_sql(TOTALS_TABLE, |i| format!("?{i}")))
        .map_err(db_error)?;
    for (key, tally) in tallies {
        let values = tally.values().into_iter().map(Value::Integer);
        let keyed = [
            Value::Text(key.kind.clone()),
            Value::Text(key.queue.clone()),
        ];
        totals
            .execute(params_from_iter(
                keyed.iter().cloned().chain(values.clone()),
            ))
            .map_err(db_error)?;
        let minute = std::iter::once(Value::Integer(key.minute));
        history
            .execute(params_from_iter(minute.chain(keyed).chain(values)))
            .map_err(db_error)?;
    }
    Ok(())
}

/// A tally from a row whose columns from `first` on are the tally's.
fn tally_at(row: &rusqlite::Row, first: usize) -> Result<Tally, StoreError> {
    let n = Tally::columns().len();
    let values = (first..first + n)
        .map(|i| row.get::<_, Option<i64>>(i).map(Option::unwrap_or_default))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(db_error)?;
    Tally::from_values(&values)
        .ok_or_else(|| StoreError::Internal("a history row has the wrong columns".into()))
}

/// The history rows the query covers, summed per minute, into its steps.
pub(crate) fn throughput(
    conn: &Connection,
    q: &ThroughputQuery,
) -> Result<Vec<ThroughputBucket>, StoreError> {
    let (from, to) = q.range_seconds();
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT minute, {} FROM history \
             WHERE minute >= ?1 AND minute < ?2 \
               AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR queue = ?4) \
             GROUP BY minute ORDER BY minute",
            sum_columns()
        ))
        .map_err(db_error)?;
    let mut rows = stmt
        .query((from, to, &q.kind, &q.queue))
        .map_err(db_error)?;
    let mut minutes = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        minutes.push((row.get::<_, i64>(0).map_err(db_error)?, tally_at(row, 1)?));
    }
    into_buckets(q, minutes).map_err(|e| StoreError::Internal(format!("history minute: {e}")))
}

/// Every (kind, queue)'s lifetime totals.
pub(crate) fn totals(conn: &Connection) -> Result<Vec<Total>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT kind, queue, {} FROM history_totals ORDER BY kind, queue",
            Tally::columns().join(", ")
        ))
        .map_err(db_error)?;
    let mut rows = stmt.query([]).map_err(db_error)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        all.push(Total {
            kind: row.get(0).map_err(db_error)?,
            queue: row.get(1).map_err(db_error)?,
            tally: tally_at(row, 2)?,
        });
    }
    Ok(all)
}

/// Per queue, the earliest `run_at` among its due jobs: one pass over the
/// claim index's due entries, which hold every column read here.
pub(crate) fn oldest_due(
    conn: &Connection,
    now: Timestamp,
) -> Result<BTreeMap<String, Timestamp>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT queue, MIN(run_at) FROM jobs INDEXED BY jobs_claim \
             WHERE {DUE_STATES} AND run_at <= ?1 GROUP BY queue"
        ))
        .map_err(db_error)?;
    let mut rows = stmt.query([micros(now)]).map_err(db_error)?;
    let mut oldest = BTreeMap::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let queue: String = row.get(0).map_err(db_error)?;
        let at = crate::rows::from_micros(row.get(1).map_err(db_error)?)?;
        oldest.insert(queue, at);
    }
    Ok(oldest)
}

/// Deletes history rows of minutes before `cutoff` (Unix seconds).
pub(crate) fn prune(conn: &Connection, cutoff: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM history WHERE minute < ?1")
        .and_then(|mut s| s.execute([cutoff]))
        .map(drop)
        .map_err(db_error)
}
