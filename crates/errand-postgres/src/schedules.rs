//! Schedule ticks: the latest tick each schedule fired, one row per name.
//! Recording a tick is a conditional upsert (only a later tick replaces
//! the row) whose RETURNING says whether this caller won; the winner's
//! job is inserted in the same transaction. Nodes racing on one tick queue
//! up on the row (or on its primary key entry) and the losers find the
//! tick already recorded.

use crate::enqueue;
use crate::events::Changes;
use crate::rows::{db_error, sql_time, time_column};
use deadpool_postgres::Client;
use errand_core::{Enqueued, NewJob, StoreError};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Records `tick` for `name` and enqueues `job`, unless a tick at or after
/// it is already recorded (then `None` and nothing changes).
pub(crate) async fn record_tick(
    client: &mut Client,
    name: &str,
    tick: Timestamp,
    job: Option<NewJob>,
    now: Timestamp,
) -> Result<(Option<Enqueued>, Changes), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO schedules (name, tick) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET tick = EXCLUDED.tick \
                 WHERE schedules.tick < EXCLUDED.tick \
             RETURNING name",
        )
        .await
        .map_err(db_error)?;
    let won = tx
        .query_opt(&stmt, &[&name, &sql_time(tick)])
        .await
        .map_err(db_error)?
        .is_some();
    if !won {
        return Ok((None, Changes::default()));
    }
    let (enqueued, changes) = match job {
        Some(job) => enqueue::insert(&tx, &[job], None, now).await?,
        None => Default::default(),
    };
    tx.commit().await.map_err(db_error)?;
    Ok((enqueued.into_iter().next(), changes))
}

/// The latest tick of every schedule, by name.
pub(crate) async fn ticks(client: &Client) -> Result<BTreeMap<String, Timestamp>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT name, tick FROM schedules")
        .await
        .map_err(db_error)?;
    client
        .query(&stmt, &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| Ok((row.get(0), time_column(row, 1)?)))
        .collect()
}
