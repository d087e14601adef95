//! Schedule ticks: the latest tick each schedule fired for, one row per
//! schedule. The upsert only moves a tick forward, so of several callers
//! racing on one tick exactly one changes the row and enqueues the job
//! (the others change nothing), all in the writer's transaction.

use crate::ops::Inserter;
use crate::rows::{db_error, from_micros, micros};
use crate::writer::Events;
use errand_core::{Enqueued, NewJob, StoreError};
use jiff::Timestamp;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// Records `tick` for schedule `name` and enqueues `job`, unless a tick at
/// or after it is already recorded: then `Ok(None)` and nothing changes.
pub(crate) fn record(
    conn: &Connection,
    events: &mut Events,
    name: &str,
    tick: Timestamp,
    job: Option<NewJob>,
    now: Timestamp,
) -> Result<Option<Enqueued>, StoreError> {
    let moved = conn
        .prepare_cached(
            "INSERT INTO schedules (name, tick, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET tick = excluded.tick, \
                 updated_at = excluded.updated_at \
             WHERE schedules.tick < excluded.tick",
        )
        .and_then(|mut stmt| stmt.execute((name, micros(tick), micros(now))))
        .map_err(db_error)?;
    match job {
        Some(job) if moved == 1 => Ok(Some(Inserter::new(conn, now)?.enqueue(events, job, None)?)),
        _ => Ok(None),
    }
}

/// The latest tick of every schedule, by name.
pub(crate) fn ticks(conn: &Connection) -> Result<BTreeMap<String, Timestamp>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT name, tick FROM schedules")
        .map_err(db_error)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?;
    rows.into_iter()
        .map(|(name, tick)| Ok((name, from_micros(tick)?)))
        .collect()
}
