//! Throughput history and lifetime totals on PostgreSQL. Operations add
//! their counts to this process's [`Recorder`] once they have committed;
//! a task writes them out every [`FLUSH_EVERY`] in one transaction (rows
//! locked in key order, so nodes flushing at once never deadlock). A crash
//! loses at most the counts of the last interval; see docs/metrics.md.

use crate::rows::{db_error, optional_time, sql_time};
use deadpool_postgres::{GenericClient, Pool};
use errand_core::StoreError;
use errand_core::history::{
    HISTORY_TABLE, Key, Pending, TOTALS_TABLE, Tally, ThroughputBucket, ThroughputQuery, Total,
    into_buckets, sum_columns, upsert_sql,
};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// How often counts held in memory are written.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Counts not yet written, shared by the store's clones.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pending: Mutex<Pending>,
}

impl Recorder {
    /// Adds what a committed operation counted.
    pub(crate) fn add(&self, counted: Pending) {
        if counted.is_empty() {
            return;
        }
        self.lock().absorb(counted);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A poisoned lock only means a panic while adding: the data is plain.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes everything pending in one transaction; on failure the
    /// counts go back to be written with the next flush.
    pub(crate) async fn flush(&self, pool: &Pool) -> Result<(), StoreError> {
        let tallies = self.lock().drain();
        if tallies.is_empty() {
            return Ok(());
        }
        match write(pool, &tallies).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut back = Pending::default();
                for (key, tally) in tallies {
                    back.add(key, tally);
                }
                self.add(back);
                Err(e)
            }
        }
    }
}

/// Starts the task that flushes `recorder` every [`FLUSH_EVERY`].
pub(crate) fn start(recorder: Arc<Recorder>, pool: Pool) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = recorder.flush(&pool).await {
                tracing::warn!(error = %e, "throughput history not written yet; will retry");
            }
        }
    })
    .abort_handle()
}

async fn write(pool: &Pool, tallies: &[(Key, Tally)]) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(crate::rows::pool_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    let history = tx
        .prepare_cached(&upsert_sql(HISTORY_TABLE, |i| format!("${i}")))
        .await
        .map_err(db_error)?;
    let totals = tx
        .prepare_cached(&upsert_sql(TOTALS_TABLE, |i| format!("${i}")))
        .await
        .map_err(db_error)?;
    // Every history row first, then every total, each in key order.
    for (key, tally) in tallies {
        let values = tally.values();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key.minute, &key.kind, &key.queue];
        params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        tx.execute(&history, &params).await.map_err(db_error)?;
    }
    for (key, tally) in tallies {
        let values = tally.values();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&key.kind, &key.queue];
        params.extend(values.iter().map(|v| v as &(dyn ToSql + Sync)));
        tx.execute(&totals, &params).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)
}

/// A tally from a row whose columns from `first` on are the tally's.
fn tally_at(row: &tokio_postgres::Row, first: usize) -> Result<Tally, StoreError> {
    let n = Tally::columns().len();
    let values = (first..first + n)
        .map(|i| {
            row.try_get::<_, Option<i64>>(i)
                .map(Option::unwrap_or_default)
        })
        .collect::<Result<Vec<i64>, _>>()
        .map_err(db_error)?;
    Tally::from_values(&values)
        .ok_or_else(|| StoreError::Internal("a history row has the wrong columns".into()))
}

/// The history rows the query covers, summed per minute, into its steps.
pub(crate) async fn throughput(
    client: &impl GenericClient,
    q: &ThroughputQuery,
) -> Result<Vec<ThroughputBucket>, StoreError> {
    let (from, to) = q.range_seconds();
    // SUM over bigint answers numeric; cast back per column.
    let sums = sum_columns().replace(')', ")::bigint");
    let stmt = client
        .prepare_cached(&format!(
            "SELECT minute, {sums} FROM history \
             WHERE minute >= $1 AND minute < $2 \
               AND ($3::text IS NULL OR kind = $3) AND ($4::text IS NULL OR queue = $4) \
             GROUP BY minute ORDER BY minute"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&from, &to, &q.kind, &q.queue])
        .await
        .map_err(db_error)?;
    let minutes = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<_, i64>(0).map_err(db_error)?,
                tally_at(row, 1)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    into_buckets(q, minutes).map_err(|e| StoreError::Internal(format!("history minute: {e}")))
}

/// Every (kind, queue)'s lifetime totals.
pub(crate) async fn totals(client: &impl GenericClient) -> Result<Vec<Total>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT kind, queue, {} FROM history_totals ORDER BY kind, queue",
            Tally::columns().join(", ")
        ))
        .await
        .map_err(db_error)?;
    client
        .query(&stmt, &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| {
            Ok(Total {
                kind: row.try_get(0).map_err(db_error)?,
                queue: row.try_get(1).map_err(db_error)?,
                tally: tally_at(row, 2)?,
            })
        })
        .collect()
}

/// Per queue, the earliest `run_at` among its due jobs, from the claim index.
pub(crate) async fn oldest_due(
    client: &impl GenericClient,
    now: Timestamp,
) -> Result<BTreeMap<String, Timestamp>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT queue, MIN(run_at) FROM jobs \
             WHERE state IN ('scheduled', 'available', 'retryable') AND run_at <= $1 \
             GROUP BY queue",
        )
        .await
        .map_err(db_error)?;
    let mut oldest = BTreeMap::new();
    for row in client
        .query(&stmt, &[&sql_time(now)])
        .await
        .map_err(db_error)?
    {
        if let Some(at) = optional_time(&row, 1)? {
            oldest.insert(row.try_get(0).map_err(db_error)?, at);
        }
    }
    Ok(oldest)
}

/// Deletes history rows of minutes before `cutoff` (Unix seconds).
pub(crate) async fn prune(client: &impl GenericClient, cutoff: i64) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM history WHERE minute < $1", &[&cutoff])
        .await
        .map(drop)
        .map_err(db_error)
}
