//! Batches: creation, reads, and completion.
//!
//! Completion lives in one function, [`settle`], which every write path
//! that can end a job calls inside the same transaction as the job's end
//! (finish in all its outcomes, cancel, lease rescue). It is Rust rather
//! than an SQL trigger because the on-complete payload comes from
//! errand-core's `on_complete_payload` and its queue must be announced to
//! idle workers, neither of which a trigger can do. SQLite has one writer,
//! so the "no live job left" check cannot race: the first transaction that
//! ends the last job sets `finished_at` (only while it is NULL) and enqueues
//! the on-complete job; nothing else ever does.

use crate::ops::Inserter;
use crate::rows::{
    JOB_COLUMNS, LIVE, collect_jobs, column, db_error, duration_micros, json_column, micros,
    parse_state, required_time_column, time_column, timeout_from_micros, to_json,
};
use crate::writer::Events;
use errand_core::batch::on_complete_payload;
use errand_core::{Batch, BatchId, Job, JobState, NewBatch, NewJob, StoreError};
use jiff::Timestamp;
use rusqlite::{Connection, Row};
use std::collections::BTreeMap;

/// Inserts a batch row and its jobs (in submission order), all or nothing.
pub(crate) fn create(
    conn: &Connection,
    events: &mut Events,
    batch: NewBatch,
    now: Timestamp,
) -> Result<Batch, StoreError> {
    if batch.jobs.is_empty() {
        return Err(StoreError::Internal(
            "a batch needs at least one job".into(),
        ));
    }
    if batch.jobs.iter().any(|j| j.unique_key.is_some()) {
        return Err(StoreError::Internal(
            "batch jobs cannot have a unique key".into(),
        ));
    }
    let oc = batch.on_complete.as_ref();
    conn.prepare_cached(
        "INSERT INTO batches (created_at, total, on_complete_kind, on_complete_queue, \
             on_complete_payload, on_complete_priority, on_complete_max_attempts, \
             on_complete_timeout_us, on_complete_tags) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .and_then(|mut stmt| {
        stmt.execute((
            micros(now),
            batch.jobs.len() as i64,
            oc.map(|j| &j.kind),
            oc.map(|j| &j.queue),
            oc.map(|j| to_json(&j.payload)),
            oc.map(|j| j.priority),
            oc.map(|j| j.max_attempts),
            oc.and_then(|j| j.timeout).map(duration_micros),
            oc.map(|j| to_json(&j.tags)),
        ))
    })
    .map_err(db_error)?;
    let id = conn.last_insert_rowid();
    let total = batch.jobs.len() as u64;
    let mut inserter = Inserter::new(conn, now)?;
    let mut counts = BTreeMap::new();
    for job in batch.jobs {
        let state = inserter.enqueue(events, job, Some(id))?.job.state;
        *counts.entry(state).or_default() += 1;
    }
    Ok(Batch {
        id,
        created_at: now,
        total,
        counts,
        finished_at: None,
        on_complete_job: None,
    })
}

/// One batch with its counts by state.
pub(crate) fn get(conn: &Connection, id: BatchId) -> Result<Option<Batch>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, created_at, total, finished_at, on_complete_job FROM batches WHERE id = ?1",
        )
        .map_err(db_error)?;
    let mut rows = stmt.query([id]).map_err(db_error)?;
    let Some(row) = rows.next().map_err(db_error)? else {
        return Ok(None);
    };
    Ok(Some(Batch {
        id: column(row, 0)?,
        created_at: required_time_column(row, 1)?,
        total: column::<i64>(row, 2)? as u64,
        finished_at: time_column(row, 3)?,
        on_complete_job: column(row, 4)?,
        counts: counts(conn, id)?,
    }))
}

/// The jobs of a batch, by id (submission order).
pub(crate) fn jobs(conn: &Connection, id: BatchId) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_batch WHERE batch_id = ?1 ORDER BY id"
        ))
        .map_err(db_error)?;
    collect_jobs(stmt.query([id]).map_err(db_error)?)
}

/// A batch's jobs by state.
fn counts(conn: &Connection, id: BatchId) -> Result<BTreeMap<JobState, u64>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_batch WHERE batch_id = ?1 \
             GROUP BY state",
        )
        .map_err(db_error)?;
    let mut rows = stmt.query([id]).map_err(db_error)?;
    let mut counts = BTreeMap::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let state = parse_state(&column::<String>(row, 0)?)?;
        counts.insert(state, column::<i64>(row, 1)? as u64);
    }
    Ok(counts)
}

/// Called at the end of every operation that can end jobs (but finishes
/// and lease rescues, which call [`settle_batches`]), with
/// `events.finished` holding the jobs it ended: finishes each of their
/// batches that has no live job left and is not finished yet, enqueueing
/// its on-complete job. One lookup covers all the ended jobs, so a finish
/// of many jobs outside any batch pays one statement.
pub(crate) fn settle(
    conn: &Connection,
    events: &mut Events,
    now: Timestamp,
) -> Result<(), StoreError> {
    if events.finished.is_empty() {
        return Ok(());
    }
    let batches: Vec<BatchId> = conn
        .prepare_cached(
            "SELECT DISTINCT batch_id FROM jobs \
             WHERE id IN (SELECT value FROM json_each(?1)) AND batch_id IS NOT NULL",
        )
        .and_then(|mut stmt| {
            stmt.query_map([to_json(&events.finished)], |r| r.get(0))?
                .collect()
        })
        .map_err(db_error)?;
    settle_batches(conn, events, batches, now)
}

/// [`settle`] for callers that already know the batches of the jobs they
/// ended (read with the jobs' rows): saves the lookup, one statement per
/// finish of jobs outside any batch. Each batch is settled once.
pub(crate) fn settle_batches(
    conn: &Connection,
    events: &mut Events,
    mut batches: Vec<BatchId>,
    now: Timestamp,
) -> Result<(), StoreError> {
    batches.sort_unstable();
    batches.dedup();
    for batch in batches {
        finish_if_done(conn, events, batch, now)?;
    }
    Ok(())
}

/// Finishes `batch` if none of its jobs is live and it is not finished yet.
fn finish_if_done(
    conn: &Connection,
    events: &mut Events,
    batch: BatchId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let live: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM jobs INDEXED BY jobs_batch_live WHERE batch_id = ?1 \
                 AND {LIVE})"
        ))
        .and_then(|mut stmt| stmt.query_row([batch], |r| r.get(0)))
        .map_err(db_error)?;
    if live {
        return Ok(());
    }
    // Only the transaction that sets finished_at goes on: a job retried
    // after the batch finished ends again without re-running anything.
    let on_complete = {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE batches SET finished_at = ?2 WHERE id = ?1 AND finished_at IS NULL \
                 RETURNING on_complete_kind, on_complete_queue, on_complete_payload, \
                     on_complete_priority, on_complete_max_attempts, on_complete_timeout_us, \
                     on_complete_tags",
            )
            .map_err(db_error)?;
        let mut rows = stmt.query((batch, micros(now))).map_err(db_error)?;
        match rows.next().map_err(db_error)? {
            Some(row) => stored_on_complete(row)?,
            None => None,
        }
    };
    let Some(mut job) = on_complete else {
        return Ok(());
    };
    job.payload = on_complete_payload(batch, &counts(conn, batch)?, job.payload);
    let enqueued = Inserter::new(conn, now)?.enqueue(events, job, None)?;
    conn.prepare_cached("UPDATE batches SET on_complete_job = ?2 WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute((batch, enqueued.job.id)))
        .map_err(db_error)?;
    Ok(())
}

/// The on-complete job stored with a batch, its payload still the
/// caller's own; `None` when the batch has none.
fn stored_on_complete(row: &Row) -> Result<Option<NewJob>, StoreError> {
    let Some(kind) = column::<Option<String>>(row, 0)? else {
        return Ok(None);
    };
    Ok(Some(NewJob {
        kind,
        queue: column(row, 1)?,
        payload: json_column(row, 2)?,
        priority: column(row, 3)?,
        run_at: None,
        max_attempts: column(row, 4)?,
        timeout: column::<Option<i64>>(row, 5)?.map(timeout_from_micros),
        unique_key: None,
        unique_for: None,
        tags: json_column(row, 6)?,
    }))
}

/// Deletes batches that finished before `cutoff` (unix microseconds).
pub(crate) fn prune(conn: &Connection, cutoff: i64) -> Result<u64, StoreError> {
    conn.prepare_cached("DELETE FROM batches WHERE finished_at IS NOT NULL AND finished_at < ?1")
        .and_then(|mut stmt| stmt.execute([cutoff]))
        .map(|n| n as u64)
        .map_err(db_error)
}
