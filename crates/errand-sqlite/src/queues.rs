//! Queue pause records: the claim (in [`crate::ops`]) refuses a paused
//! queue, so a pause holds across restarts with no cache to invalidate.

use crate::rows::{DUE_STATES, db_error, from_micros, micros};
use crate::writer::Events;
use crate::{audit, counts};
use errand_core::audit::{AuditActor, NewAuditEntry};
use errand_core::store::OLDEST_AVAILABLE_SQL;
use errand_core::{QueueInfo, StoreError};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};
use std::collections::BTreeMap;

/// Records `queue` as paused or not, with an audit entry when that changed
/// it; resuming wakes its idle workers.
pub(crate) fn set_paused(
    conn: &Connection,
    events: &mut Events,
    queue: &str,
    paused: bool,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<(), StoreError> {
    let was: bool = conn
        .prepare_cached("SELECT paused FROM queues WHERE name = ?1")
        .and_then(|mut st| st.query_row([queue], |r| r.get(0)).optional())
        .map_err(db_error)?
        .unwrap_or(false);
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused,
             updated_at = excluded.updated_at",
    )
    .and_then(|mut st| st.execute((queue, paused, micros(now))))
    .map_err(db_error)?;
    if was != paused {
        audit::record(conn, &NewAuditEntry::queue(actor, queue, paused), now)?;
    }
    if !paused {
        events.enqueued.insert(queue.to_string());
    }
    Ok(())
}

/// Every queue with jobs or a pause record.
pub(crate) fn list(conn: &Connection) -> Result<Vec<QueueInfo>, StoreError> {
    let stats = counts::read(conn)?;
    let mut stmt = conn
        .prepare_cached("SELECT name, paused FROM queues")
        .map_err(db_error)?;
    let paused = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<Result<BTreeMap<String, bool>, _>>())
        .map_err(db_error)?;
    Ok(QueueInfo::merge(stats.queues, paused))
}

/// When the longest-waiting available job of `queue` became due.
pub(crate) fn oldest_available(
    conn: &Connection,
    queue: &str,
) -> Result<Option<Timestamp>, StoreError> {
    // The shared text names the due states with IN; this schema's claim
    // index is conditioned on DUE_STATES, which the planner matches only
    // word for word.
    let sql = OLDEST_AVAILABLE_SQL.replace("{q}", "?1").replace(
        "state IN ('scheduled', 'available', 'retryable')",
        DUE_STATES,
    );
    let micros: Option<i64> = conn
        .prepare_cached(&sql)
        .and_then(|mut st| st.query_row([queue], |r| r.get(0)))
        .map_err(db_error)?;
    micros.map(from_micros).transpose()
}
