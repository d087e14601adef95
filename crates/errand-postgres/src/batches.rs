//! Batches: jobs inserted together with a `batch_id`, and the on-complete
//! job enqueued once the last of them ends.
//!
//! Completion is Rust in the write paths, not a trigger, and lives in one
//! function, [`settle`], which every path that can end a batch job calls
//! inside its own transaction after ending the jobs: `finish` and
//! `rescue_expired` (through `ops::end_attempts`) and `cancel` (through
//! `ops::change_one`). Rust rather than a trigger because the on-complete
//! job's queue must reach the NOTIFY coalescer ([`crate::events`]), which
//! only Rust code can feed, and because a per-row trigger would lock the
//! batches of a multi-row finish in row order, which can deadlock two
//! finishes; `settle` locks them in id order.
//!
//! Exactly once: under READ COMMITTED, two transactions ending a batch's
//! last two jobs would each see the other's job as still live (write
//! skew). `settle` therefore first locks the unfinished batch rows
//! (`FOR UPDATE`, by id), and only then, in a new statement and so a new
//! snapshot, looks for live jobs: the second transaction waits for the
//! first to commit and then sees both jobs ended, or finds the batch
//! already finished.

use crate::enqueue;
use crate::events::Changes;
use crate::rows::{
    JOB_COLUMNS, TERMINAL, db_error, duration_micros, int, jobs_from_rows, micros_duration,
    optional_time, parse_state, sql_time, time_column, uint,
};
use deadpool_postgres::{Client, GenericClient};
use errand_core::batch::{Batch, BatchId, NewBatch, on_complete_payload};
use errand_core::{Job, JobState, NewJob, StoreError};
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Inserts the batch row (with its on-complete job's fields) and its jobs
/// in one transaction.
pub(crate) async fn create(
    client: &mut Client,
    batch: NewBatch,
    now: Timestamp,
) -> Result<(Batch, Changes), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let on_complete = batch.on_complete.as_ref();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO batches (created_at, total, on_complete_kind, on_complete_queue, \
                 on_complete_payload, on_complete_priority, on_complete_max_attempts, \
                 on_complete_timeout_us, on_complete_tags) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .await
        .map_err(db_error)?;
    let id: BatchId = tx
        .query_one(
            &stmt,
            &[
                &sql_time(now),
                &i32::try_from(batch.jobs.len()).unwrap_or(i32::MAX),
                &on_complete.map(|j| j.kind.as_str()),
                &on_complete.map(|j| j.queue.as_str()),
                &on_complete.map(|j| &j.payload),
                &on_complete.map(|j| j.priority),
                &on_complete.map(|j| int(j.max_attempts)),
                &on_complete.and_then(|j| j.timeout.map(duration_micros)),
                &on_complete.map(|j| j.tags.clone()),
            ],
        )
        .await
        .map_err(db_error)?
        .get(0);
    let (jobs, changes) = enqueue::insert(&tx, &batch.jobs, Some(id), now).await?;
    tx.commit().await.map_err(db_error)?;
    let mut counts = BTreeMap::new();
    for e in &jobs {
        *counts.entry(e.job.state).or_default() += 1;
    }
    let created = Batch {
        id,
        created_at: now,
        total: jobs.len() as u64,
        counts,
        finished_at: None,
        on_complete_job: None,
    };
    Ok((created, changes))
}

/// One batch with its counts by state.
pub(crate) async fn get(client: &Client, id: BatchId) -> Result<Option<Batch>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, created_at, total, finished_at, on_complete_job FROM batches \
             WHERE id = $1",
        )
        .await
        .map_err(db_error)?;
    let Some(row) = client.query_opt(&stmt, &[&id]).await.map_err(db_error)? else {
        return Ok(None);
    };
    Ok(Some(Batch {
        id,
        created_at: time_column(&row, 1)?,
        total: u64::from(uint(row.get(2), "batch total")?),
        counts: counts(client, id).await?,
        finished_at: optional_time(&row, 3)?,
        on_complete_job: row.get(4),
    }))
}

/// The jobs of a batch in submission (id) order.
pub(crate) async fn jobs(client: &Client, id: BatchId) -> Result<Vec<Job>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = $1 ORDER BY id"
        ))
        .await
        .map_err(db_error)?;
    jobs_from_rows(&client.query(&stmt, &[&id]).await.map_err(db_error)?)
}

async fn counts(
    client: &impl GenericClient,
    id: BatchId,
) -> Result<BTreeMap<JobState, u64>, StoreError> {
    let stmt = client
        .prepare_cached("SELECT state, count(*) FROM jobs WHERE batch_id = $1 GROUP BY state")
        .await
        .map_err(db_error)?;
    let mut counts = BTreeMap::new();
    for row in client.query(&stmt, &[&id]).await.map_err(db_error)? {
        let n: i64 = row.get(1);
        counts.insert(parse_state(row.get(0))?, n as u64);
    }
    Ok(counts)
}

/// Finishes those of `batches` (the batches of jobs this transaction just
/// ended) that have no live job left, enqueueing their on-complete jobs;
/// answers what to announce. Call it inside the transaction that ended
/// the jobs, after ending them (see the module header).
pub(crate) async fn settle(
    tx: &impl GenericClient,
    batches: &[BatchId],
    now: Timestamp,
) -> Result<Changes, StoreError> {
    let mut changes = Changes::default();
    if batches.is_empty() {
        return Ok(changes);
    }
    let lock = tx
        .prepare_cached(
            "SELECT id FROM batches WHERE id = ANY($1) AND finished_at IS NULL \
             ORDER BY id FOR UPDATE",
        )
        .await
        .map_err(db_error)?;
    let open: Vec<BatchId> = tx
        .query(&lock, &[&batches])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if open.is_empty() {
        return Ok(changes);
    }
    let finish = tx
        .prepare_cached(&format!(
            "UPDATE batches b SET finished_at = $2 \
             WHERE b.id = ANY($1) AND b.finished_at IS NULL AND NOT EXISTS ( \
                 SELECT 1 FROM jobs j \
                 WHERE j.batch_id = b.id AND j.state NOT IN {TERMINAL}) \
             RETURNING b.id, b.on_complete_kind, b.on_complete_queue, b.on_complete_payload, \
                 b.on_complete_priority, b.on_complete_max_attempts, b.on_complete_timeout_us, \
                 b.on_complete_tags"
        ))
        .await
        .map_err(db_error)?;
    let finished = tx
        .query(&finish, &[&open, &sql_time(now)])
        .await
        .map_err(db_error)?;
    let record = tx
        .prepare_cached("UPDATE batches SET on_complete_job = $2 WHERE id = $1")
        .await
        .map_err(db_error)?;
    for row in finished {
        let id: BatchId = row.get(0);
        let Some(kind) = row.get::<_, Option<String>>(1) else {
            continue;
        };
        let payload = on_complete_payload(id, &counts(tx, id).await?, row.get(3));
        let job = NewJob {
            kind,
            queue: row.get(2),
            payload,
            priority: row.get(4),
            run_at: None,
            max_attempts: uint(row.get(5), "on-complete max_attempts")?,
            timeout: row.get::<_, Option<i64>>(6).map(micros_duration),
            unique_key: None,
            unique_for: None,
            tags: row.get(7),
        };
        let (enqueued, enqueue_changes) = enqueue::insert(tx, &[job], None, now).await?;
        changes.absorb(enqueue_changes);
        let job_id = enqueued[0].job.id;
        tx.execute(&record, &[&id, &job_id])
            .await
            .map_err(db_error)?;
    }
    Ok(changes)
}
