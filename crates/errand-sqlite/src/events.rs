//! Events: publish (the event row and one job per listener in one
//! transaction), reads, and pruning. The listener jobs' ids are kept on the
//! event row as a JSON array in listener order, written once by publish,
//! rather than in a join table: an event's jobs never change, and one row
//! answers `event(id)`.

use crate::ops::Inserter;
use crate::rows::{column, db_error, json_column, micros, required_time_column, to_json};
use crate::writer::Events;
use errand_core::event::{EventFilter, Published};
use errand_core::{Event, EventId, NewEvent, NewJob, StoreError};
use jiff::Timestamp;
use rusqlite::{Connection, Row, Statement};

/// Every column of an event, in the order [`event_from_row`] reads them.
const EVENT_COLUMNS: &str = "id, name, data, unique_key, published_at, jobs";

/// Stores `event` and one job per listener, or returns the earlier event
/// with the same name and unique key (storing nothing).
pub(crate) fn publish(
    conn: &Connection,
    events: &mut Events,
    event: NewEvent,
    listeners: Vec<NewJob>,
    now: Timestamp,
) -> Result<Published, StoreError> {
    if let Some(key) = &event.unique_key {
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE name = ?1 AND unique_key = ?2"
            ))
            .map_err(db_error)?;
        if let Some(earlier) = first(&mut stmt, (&event.name, key))? {
            return Ok(Published {
                event: earlier,
                duplicate: true,
            });
        }
    }
    conn.prepare_cached(
        "INSERT INTO events (name, data, unique_key, published_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            &event.name,
            to_json(&event.data),
            &event.unique_key,
            micros(now),
        ))
    })
    .map_err(db_error)?;
    let mut stored = Event {
        id: conn.last_insert_rowid(),
        name: event.name,
        data: event.data,
        unique_key: event.unique_key,
        published_at: now,
        jobs: Vec::with_capacity(listeners.len()),
    };
    let payload = stored.listener_payload();
    let mut inserter = Inserter::new(conn, now)?;
    for mut job in listeners {
        job.payload = payload.clone();
        stored
            .jobs
            .push(inserter.enqueue(events, job, None)?.job.id);
    }
    conn.prepare_cached("UPDATE events SET jobs = ?2 WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute((stored.id, to_json(&stored.jobs))))
        .map_err(db_error)?;
    Ok(Published {
        event: stored,
        duplicate: false,
    })
}

/// One event by id.
pub(crate) fn get(conn: &Connection, id: EventId) -> Result<Option<Event>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))
        .map_err(db_error)?;
    first(&mut stmt, [id])
}

/// Events matching `filter`, newest first. With and without a name are two
/// statements, so each gets a plan that uses its index.
pub(crate) fn list(conn: &Connection, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
    let before = filter.before.unwrap_or(EventId::MAX);
    let limit = i64::from(filter.limit);
    let prepare = |sql: String| conn.prepare_cached(&sql).map_err(db_error);
    match &filter.name {
        Some(name) => collect(
            &mut *prepare(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE name = ?1 AND id < ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))?,
            (name, before, limit),
        ),
        None => collect(
            &mut *prepare(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
            ))?,
            (before, limit),
        ),
    }
}

/// Deletes events published before `cutoff` (unix microseconds).
pub(crate) fn prune(conn: &Connection, cutoff: i64) -> Result<u64, StoreError> {
    conn.prepare_cached("DELETE FROM events WHERE published_at < ?1")
        .and_then(|mut stmt| stmt.execute([cutoff]))
        .map(|n| n as u64)
        .map_err(db_error)
}

/// Every event a statement selecting [`EVENT_COLUMNS`] answers.
fn collect(stmt: &mut Statement, params: impl rusqlite::Params) -> Result<Vec<Event>, StoreError> {
    let mut rows = stmt.query(params).map_err(db_error)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        events.push(event_from_row(row)?);
    }
    Ok(events)
}

/// The first event a statement selecting [`EVENT_COLUMNS`] answers.
fn first(stmt: &mut Statement, params: impl rusqlite::Params) -> Result<Option<Event>, StoreError> {
    Ok(collect(stmt, params)?.pop())
}

fn event_from_row(row: &Row) -> Result<Event, StoreError> {
    Ok(Event {
        id: column(row, 0)?,
        name: column(row, 1)?,
        data: json_column(row, 2)?,
        unique_key: column(row, 3)?,
        published_at: required_time_column(row, 4)?,
        jobs: json_column(row, 5)?,
    })
}
