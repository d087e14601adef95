//! Published events (the `events` table; [`crate::events`] is the wake-up
//! machinery, a different thing). Publishing inserts the event row, then
//! its listener jobs (whose payload names the event, so the id must come
//! first), then records the job ids on the event, all in one transaction.
//! A unique key already used by an event of the same name refuses the
//! insert through the `events_unique` conflict target; a concurrent
//! publish with the same key waits on that index entry and then answers
//! the event that won.

use crate::enqueue;
use crate::events::Changes;
use crate::rows::{Listing, by_id, db_error, sql_time, time_column};
use deadpool_postgres::{Client, GenericClient};
use errand_core::event::{Event, EventFilter, EventId, NewEvent, Published};
use errand_core::{NewJob, StoreError};
use jiff::Timestamp;
use tokio_postgres::Row;

/// Every column of an event, in the order [`event_from_row`] reads them.
const EVENT_COLUMNS: &str = "id, name, data, unique_key, published_at, jobs";

fn event_from_row(row: &Row) -> Result<Event, StoreError> {
    Ok(Event {
        id: row.try_get(0).map_err(db_error)?,
        name: row.try_get(1).map_err(db_error)?,
        data: row.try_get(2).map_err(db_error)?,
        unique_key: row.try_get(3).map_err(db_error)?,
        published_at: time_column(row, 4)?,
        jobs: row.try_get(5).map_err(db_error)?,
    })
}

/// Stores `event` and one job per listener, or answers the earlier event
/// with the same name and unique key.
pub(crate) async fn publish(
    client: &mut Client,
    event: NewEvent,
    listeners: Vec<NewJob>,
    now: Timestamp,
) -> Result<(Published, Changes), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO events (name, data, unique_key, published_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name, unique_key) WHERE unique_key IS NOT NULL DO NOTHING \
             RETURNING id",
        )
        .await
        .map_err(db_error)?;
    let inserted = tx
        .query_opt(
            &insert,
            &[&event.name, &event.data, &event.unique_key, &sql_time(now)],
        )
        .await
        .map_err(db_error)?;
    let Some(row) = inserted else {
        let earlier = by_key(&tx, &event).await?;
        return Ok((
            Published {
                event: earlier,
                duplicate: true,
            },
            Changes::default(),
        ));
    };
    let mut stored = Event {
        id: row.get(0),
        name: event.name,
        data: event.data,
        unique_key: event.unique_key,
        published_at: now,
        jobs: Vec::new(),
    };
    let payload = stored.listener_payload();
    let listeners: Vec<NewJob> = listeners
        .into_iter()
        .map(|job| NewJob {
            payload: payload.clone(),
            ..job
        })
        .collect();
    let (jobs, changes) = enqueue::insert(&tx, &listeners, None, now).await?;
    stored.jobs = jobs.iter().map(|e| e.job.id).collect();
    let record = tx
        .prepare_cached("UPDATE events SET jobs = $2 WHERE id = $1")
        .await
        .map_err(db_error)?;
    tx.execute(&record, &[&stored.id, &stored.jobs])
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let published = Published {
        event: stored,
        duplicate: false,
    };
    Ok((published, changes))
}

/// The stored event that refused `event` by its unique key.
async fn by_key(client: &impl GenericClient, event: &NewEvent) -> Result<Event, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE name = $1 AND unique_key = $2"
        ))
        .await
        .map_err(db_error)?;
    let row = client
        .query_opt(&stmt, &[&event.name, &event.unique_key])
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            StoreError::Internal(format!(
                "event {} was refused but none has its unique key",
                event.name
            ))
        })?;
    event_from_row(&row)
}

/// One event by id.
pub(crate) async fn get(client: &Client, id: EventId) -> Result<Option<Event>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1");
    by_id(client, &sql, id, event_from_row).await
}

/// Events matching `filter`, newest first.
pub(crate) async fn list(client: &Client, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
    let limit = i64::from(filter.limit);
    let mut listing = Listing::default();
    if let Some(name) = &filter.name {
        listing.filter("name =", name);
    }
    if let Some(before) = &filter.before {
        listing.filter("id <", before);
    }
    let (sql, params) = listing.newest_first(EVENT_COLUMNS, "events", &limit, u32::MAX);
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &params).await.map_err(db_error)?;
    rows.iter().map(event_from_row).collect()
}
