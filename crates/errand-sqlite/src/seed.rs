//! Test and benchmark seeding (cargo feature `seed`): many jobs written
//! straight into a database file in one statement, in seconds rather than
//! the minutes the API would take. Only the engine knows its tables, so the
//! SQL lives here; nothing in the product uses it.

use crate::rows::{db_error, micros};
use errand_core::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Adds `count` failed jobs of `kind` (queue `default`, attempts used up,
/// one error each) to the database at `path`, which a store has migrated
/// and no store holds open. Answers the rows added.
pub fn fill_failed(path: &Path, kind: &str, count: u64) -> Result<u64, StoreError> {
    insert_numbered(
        path,
        kind,
        count,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
         INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
             run_at, created_at, started_at, finished_at, errors) \
         SELECT ?1, 'default', json_object('n', i), 0, 'failed', 3, 3, ?3, ?3, ?3, ?3, \
             json_array(json_object('attempt', 3, 'at', '2026-01-01T00:00:00Z', \
                 'error', 'seeded')) \
         FROM n",
    )
}

/// Adds `count` jobs of `kind` in the mix a busy installation holds: of
/// each ten, seven completed, one failed, one available, one scheduled;
/// spread over queues `q0`–`q3` and tags `t0`–`t99`. Same preconditions
/// as [`fill_failed`]. Answers the rows added.
pub fn fill_mixed(path: &Path, kind: &str, count: u64) -> Result<u64, StoreError> {
    insert_numbered(
        path,
        kind,
        count,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
         INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
             run_at, created_at, started_at, finished_at, tags) \
         SELECT ?1, 'q' || (i % 4), json_object('n', i, 'to', 'user' || i || '@example.com'), 0, \
             CASE WHEN i % 10 < 7 THEN 'completed' WHEN i % 10 = 7 THEN 'failed' \
                  WHEN i % 10 = 8 THEN 'available' ELSE 'scheduled' END, \
             1, 3, CASE WHEN i % 10 = 9 THEN ?3 + 86400000000 ELSE ?3 END, ?3, \
             CASE WHEN i % 10 < 8 THEN ?3 END, CASE WHEN i % 10 < 8 THEN ?3 END, \
             json_array('t' || (i % 100)) \
         FROM n",
    )
}

/// Runs `sql`, an INSERT that numbers `count` rows `i` (`?2`) through the
/// recursive table `n`, with `?1` the kind and `?3` now in microseconds;
/// then counts the jobs afresh, as the store keeps them.
fn insert_numbered(path: &Path, kind: &str, count: u64, sql: &str) -> Result<u64, StoreError> {
    let mut conn = Connection::open(path).map_err(db_error)?;
    let tx = conn.transaction().map_err(db_error)?;
    let now = micros(jiff::Timestamp::now());
    let added = tx
        .execute(sql, (kind, i64::try_from(count).unwrap_or(i64::MAX), now))
        .map_err(db_error)?;
    crate::counts::recount(&tx)?;
    tx.commit().map_err(db_error)?;
    Ok(added as u64)
}
