//! Stored job counts per (queue, kind, state) on PostgreSQL. Statement
//! triggers (migration 18) append each statement's net changes to
//! `job_count_deltas` in its own transaction; [`start`]'s task folds them
//! into `job_counts` every [`FOLD_EVERY`]; [`read`] adds up both, so a
//! count is exact the moment the change commits, and no two transactions
//! wait on one counter row. docs/decisions/0028-stored-job-counts.md.

use crate::rows::{db_error, parse_state, pool_error};
use deadpool_postgres::{GenericClient, Pool};
use errand_core::StoreError;
use errand_core::store::{ListCounts, ListFilter, Stats};
use std::time::Duration;

/// How often the appended changes are folded in.
pub(crate) const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Job counts by queue, kind and state.
pub(crate) async fn read(client: &impl GenericClient) -> Result<Stats, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT queue, kind, state, sum(n)::bigint FROM ( \
                 SELECT queue, kind, state, n FROM job_counts \
                 UNION ALL SELECT queue, kind, state, n FROM job_count_deltas \
             ) c GROUP BY queue, kind, state HAVING sum(n) > 0",
        )
        .await
        .map_err(db_error)?;
    let mut stats = Stats::default();
    for row in client.query(&stmt, &[]).await.map_err(db_error)? {
        let n: i64 = row.get(3);
        stats.add(row.get(0), row.get(1), parse_state(row.get(2))?, n as u64);
    }
    Ok(stats)
}

/// The counts a listing of `filter` is planned by.
pub(crate) async fn for_listing(
    client: &impl GenericClient,
    filter: &ListFilter,
) -> Result<ListCounts, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT \
                 COALESCE(sum(n) FILTER (WHERE ($1::text IS NULL OR state = $1) \
                     AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR queue = $3)), 0)::bigint, \
                 COALESCE(sum(n) FILTER (WHERE state = $1), 0)::bigint, \
                 COALESCE(sum(n) FILTER (WHERE kind = $2), 0)::bigint, \
                 COALESCE(sum(n) FILTER (WHERE queue = $3), 0)::bigint, \
                 COALESCE(sum(n), 0)::bigint \
             FROM ( \
                 SELECT queue, kind, state, n FROM job_counts \
                 UNION ALL SELECT queue, kind, state, n FROM job_count_deltas \
             ) c",
        )
        .await
        .map_err(db_error)?;
    let state = filter.state.map(|s| s.as_str());
    let row = client
        .query_one(&stmt, &[&state, &filter.kind, &filter.queue])
        .await
        .map_err(db_error)?;
    Ok(ListCounts::from_sums(
        filter,
        std::array::from_fn(|i| row.get::<_, i64>(i)),
    ))
}

/// Moves the appended changes into `job_counts` and forgets counts that
/// reached zero; a node finding another one folding skips its turn.
pub(crate) async fn fold(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    let ours: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('errand.job_counts'))",
            &[],
        )
        .await
        .map_err(db_error)?
        .get(0);
    if !ours {
        return Ok(());
    }
    let fold = tx
        .prepare_cached(
            "WITH moved AS (DELETE FROM job_count_deltas RETURNING queue, kind, state, n) \
             INSERT INTO job_counts (queue, kind, state, n) \
             SELECT queue, kind, state, sum(n) FROM moved GROUP BY queue, kind, state \
             ON CONFLICT (queue, kind, state) DO UPDATE SET n = job_counts.n + excluded.n",
        )
        .await
        .map_err(db_error)?;
    tx.execute(&fold, &[]).await.map_err(db_error)?;
    tx.execute("DELETE FROM job_counts WHERE n = 0", &[])
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// Starts the task that folds every [`FOLD_EVERY`].
pub(crate) fn start(pool: Pool) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLD_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = fold(&pool).await {
                tracing::warn!(error = %e, "job count changes not folded yet; will retry");
            }
        }
    })
    .abort_handle()
}
