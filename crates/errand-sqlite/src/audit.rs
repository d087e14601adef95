//! The audit log (migration 0009): entries are written by the admin
//! operations themselves, inside their own savepoint, so an entry commits
//! exactly when its action does.

use crate::rows::{db_error, from_micros, micros, to_json};
use errand_core::StoreError;
use errand_core::audit::{AuditEntry, AuditFilter, NewAuditEntry};
use jiff::Timestamp;
use rusqlite::{Connection, Row};

/// Writes `entry` at `now`, in the caller's transaction.
pub(crate) fn record(
    conn: &Connection,
    entry: &NewAuditEntry,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, action, target, change) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut st| {
        st.execute((
            micros(now),
            &entry.actor,
            entry.action.as_str(),
            &entry.target,
            to_json(&entry.change),
        ))
    })
    .map_err(db_error)?;
    Ok(())
}

/// Entries matching `filter`, newest first.
pub(crate) fn list(conn: &Connection, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT id, at, actor, action, target, change FROM audit
             WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
        )
        .map_err(db_error)?;
    let rows = st
        .query_map(
            (
                filter.actor.as_deref(),
                filter.action.map(|a| a.as_str()),
                filter.since.map(micros),
                filter.before,
                filter.limit,
            ),
            raw,
        )
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?;
    rows.into_iter().map(entry).collect()
}

/// Deletes entries written before `cutoff` (microseconds).
pub(crate) fn prune(conn: &Connection, cutoff: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM audit WHERE at < ?1")
        .and_then(|mut st| st.execute([cutoff]))
        .map_err(db_error)?;
    Ok(())
}

type RawEntry = (i64, i64, String, String, String, String);

fn raw(r: &Row) -> rusqlite::Result<RawEntry> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn entry((id, at, actor, action, target, change): RawEntry) -> Result<AuditEntry, StoreError> {
    let bad = |what: String| StoreError::Internal(format!("audit entry {id}: {what}"));
    Ok(AuditEntry {
        id,
        at: from_micros(at)?,
        actor,
        action: action.parse().map_err(|e| bad(format!("{e}")))?,
        target,
        change: serde_json::from_str(&change).map_err(|e| bad(format!("bad change: {e}")))?,
    })
}
