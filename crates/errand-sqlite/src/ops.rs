//! The write operations of the store, run by the writer thread inside a
//! group-commit transaction. State changes come from
//! [`errand_core::outcome::resolve`]; this module only applies them.

use crate::rows::{
    DUE_STATES, JOB_COLUMNS, LIVE, after, collect_jobs, db_error, duration_micros, from_micros,
    job_from_row, micros, parse_state, timeout_from_micros, to_json,
};
use crate::writer::Events;
use crate::{audit, batches, bulk, events, limits};
use errand_core::audit::{AuditAction, AuditActor, NewAuditEntry};
use errand_core::history::{Counter, Ending};
use errand_core::outcome::{attempt_on_manual_retry, resolve};
use errand_core::store::{CLAIM_ORDER, ClaimRequest, Claimed, Finish, claim_key};
use errand_core::{
    Backoff, BatchId, Enqueued, Job, JobId, JobState, Lease, NewJob, Outcome, ProgressUpdate,
    Retention, StoreError, Transition,
};
use jiff::Timestamp;
use rusqlite::{CachedStatement, Connection, ErrorCode, OptionalExtension, Statement};
use std::time::Duration;

/// Inserts `jobs`; a live job with the same kind and unique key is
/// returned instead of inserting (this includes earlier entries of `jobs`),
/// and so is a recent one when the job has `unique_for`.
pub(crate) fn enqueue(
    conn: &Connection,
    events: &mut Events,
    jobs: Vec<NewJob>,
    now: Timestamp,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut inserter = Inserter::new(conn, now)?;
    jobs.into_iter()
        .map(|job| inserter.enqueue(events, job, None))
        .collect()
}

/// Inserts one job (`?1`…`?12`: kind, queue, payload, priority, state,
/// max_attempts, run_at, created_at, timeout_us, unique_key, tags, batch_id).
const INSERT: &str = "INSERT OR IGNORE INTO jobs (kind, queue, payload, priority, state, \
     max_attempts, run_at, created_at, timeout_us, unique_key, tags, batch_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Inserts jobs one by one with its statements prepared once: every path
/// that makes jobs (enqueue, publish, batches, their on-complete job,
/// schedule ticks) goes through it, so dedupe works the same everywhere.
pub(crate) struct Inserter<'c> {
    conn: &'c Connection,
    insert: CachedStatement<'c>,
    live: CachedStatement<'c>,
    now: Timestamp,
}

impl<'c> Inserter<'c> {
    /// Prepares the statements; every job gets `now` as its creation time.
    pub(crate) fn new(conn: &'c Connection, now: Timestamp) -> Result<Inserter<'c>, StoreError> {
        // OR IGNORE rather than ON CONFLICT DO NOTHING: the only constraint
        // an insert can break is the live unique key (every NOT NULL column
        // is bound from a non-optional value), and a statement that cannot
        // abort needs no statement journal, which otherwise copies every
        // page each row touches. The inserted job is built from what was
        // bound, so nothing is read back.
        let insert = conn.prepare_cached(INSERT).map_err(db_error)?;
        let live = conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ?1 AND unique_key = ?2 \
                 AND {LIVE}"
            ))
            .map_err(db_error)?;
        Ok(Inserter {
            conn,
            insert,
            live,
            now,
        })
    }

    /// Inserts `job` (into `batch`, if any) unless its unique key finds an
    /// earlier job, which is returned as a duplicate instead.
    pub(crate) fn enqueue(
        &mut self,
        events: &mut Events,
        job: NewJob,
        batch: Option<BatchId>,
    ) -> Result<Enqueued, StoreError> {
        if let Some(existing) = self.recent_duplicate(&job)? {
            return Ok(Enqueued {
                job: existing,
                duplicate: true,
            });
        }
        let now = self.now;
        // A past run_at is kept: it orders the job among other due jobs.
        let run_at = stored(job.run_at.unwrap_or(now))?;
        let state = if run_at > now {
            JobState::Scheduled
        } else {
            JobState::Available
        };
        let timeout_us = job.timeout.map(duration_micros);
        let inserted = self
            .insert
            .execute((
                &job.kind,
                &job.queue,
                to_json(&job.payload),
                job.priority,
                state.as_str(),
                job.max_attempts,
                micros(run_at),
                micros(now),
                timeout_us,
                &job.unique_key,
                to_json(&job.tags),
                batch,
            ))
            .map_err(db_error)?;
        if inserted == 1 {
            events
                .history
                .count(now, &job.kind, &job.queue, Counter::Enqueued);
            events.counts.add(&job.queue, &job.kind, state, 1);
            if state == JobState::Available {
                events.enqueued.insert(job.queue.clone());
            }
            let id = self.conn.last_insert_rowid();
            return Ok(Enqueued {
                job: inserted_job(id, job, state, run_at, now, timeout_us, batch),
                duplicate: false,
            });
        }
        let existing = collect_jobs(
            self.live
                .query((&job.kind, &job.unique_key))
                .map_err(db_error)?,
        )?
        .pop()
        .ok_or_else(|| {
            StoreError::Internal(format!(
                "insert of a {} job was refused but no live duplicate exists",
                job.kind
            ))
        })?;
        Ok(Enqueued {
            job: existing,
            duplicate: true,
        })
    }

    /// With a unique key and `unique_for`: the live job of the kind and key,
    /// else the newest one created within `unique_for`, whatever its state.
    /// Jobs without `unique_for` skip this (the insert finds live ones).
    fn recent_duplicate(&self, job: &NewJob) -> Result<Option<Job>, StoreError> {
        let (Some(key), Some(window)) = (&job.unique_key, job.unique_for) else {
            return Ok(None);
        };
        let since = micros(self.now).saturating_sub(duration_micros(window));
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_unique_recent \
                 WHERE kind = ?1 AND unique_key = ?2 \
                   AND (created_at >= ?3 OR {LIVE}) \
                 ORDER BY {LIVE} DESC, \
                     created_at DESC, id DESC \
                 LIMIT 1"
            ))
            .map_err(db_error)?;
        Ok(collect_jobs(stmt.query((&job.kind, key, since)).map_err(db_error)?)?.pop())
    }
}

/// `t` at the precision the database keeps.
fn stored(t: Timestamp) -> Result<Timestamp, StoreError> {
    from_micros(micros(t))
}

/// The job row just inserted from `job`, as a read would return it.
fn inserted_job(
    id: JobId,
    job: NewJob,
    state: JobState,
    run_at: Timestamp,
    now: Timestamp,
    timeout_us: Option<i64>,
    batch_id: Option<BatchId>,
) -> Job {
    Job {
        id,
        kind: job.kind,
        queue: job.queue,
        payload: job.payload,
        priority: job.priority,
        state,
        attempt: 0,
        max_attempts: job.max_attempts,
        run_at,
        created_at: now,
        started_at: None,
        finished_at: None,
        timeout: timeout_us.map(timeout_from_micros),
        unique_key: job.unique_key,
        tags: job.tags,
        result: None,
        errors: Vec::new(),
        lease_expires_at: None,
        worker: None,
        batch_id,
        fence: 0,
        progress: None,
        progress_at: None,
        omitted: Default::default(),
    }
}

/// Makes the selected jobs running under the caller's lease (named
/// parameters `:now`, `:lease`, `:worker`).
pub(crate) const START: &str = "UPDATE jobs SET state = 'running', attempt = attempt + 1, \
     fence = fence + 1, started_at = :now, lease_expires_at = :lease, worker = :worker";

/// Selects `columns` of the due jobs of `:queue` in claim order, at most
/// `:limit`: of the kinds in the JSON array `:kinds` unless it is NULL,
/// further narrowed by `extra`, none while the queue is paused.
pub(crate) fn due_jobs(columns: &str, extra: &str) -> String {
    format!(
        "SELECT {columns} FROM jobs \
         WHERE {DUE_STATES} \
           AND queue = :queue AND run_at <= :now \
           AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds))) {extra} \
           AND NOT EXISTS (SELECT 1 FROM queues WHERE name = :queue AND paused) \
         ORDER BY {CLAIM_ORDER} LIMIT :limit"
    )
}

/// Takes up to `req.limit` due jobs of a queue in claim order. Without a
/// limited kind in the request this is one statement; kind limits take
/// the slower path in [`crate::limits`].
pub(crate) fn claim(
    conn: &Connection,
    events: &mut Events,
    req: &ClaimRequest,
    now: Timestamp,
) -> Result<Claimed, StoreError> {
    let limited = req.limited_kinds();
    if !limited.is_empty() {
        return limits::claim(conn, events, req, &limited, now);
    }
    // Chosen, then started: the job counts need each job's state before.
    let kinds = (!req.kinds.is_empty()).then(|| to_json(&req.kinds));
    let chosen = limits::due(conn, req, now, kinds, None, req.limit.into(), None)?;
    let jobs = limits::start(conn, events, req, now, &chosen)?;
    Ok(Claimed {
        jobs: in_claim_order(jobs),
        held: None,
    })
}

/// `jobs` in claim order (RETURNING does not promise any order).
pub(crate) fn in_claim_order(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by_key(claim_key);
    jobs
}

/// Extends the leases still held; returns the others.
pub(crate) fn heartbeat(
    conn: &Connection,
    leases: &[Lease],
    lease: Duration,
    now: Timestamp,
) -> Result<Vec<Lease>, StoreError> {
    let expires = micros(after(now, lease));
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET lease_expires_at = ?1 \
             WHERE id = ?2 AND fence = ?3 AND state = 'running'",
        )
        .map_err(db_error)?;
    let mut lost = Vec::new();
    for l in leases {
        if stmt.execute((expires, l.id, l.fence)).map_err(db_error)? == 0 {
            lost.push(*l);
        }
    }
    Ok(lost)
}

/// Records the progress of attempts whose lease is still current; answers
/// which were applied.
pub(crate) fn record_progress(
    conn: &Connection,
    updates: &[ProgressUpdate],
) -> Result<Vec<bool>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET progress = ?1, progress_at = ?2, progress_fence = fence \
             WHERE id = ?3 AND fence = ?4 AND state = 'running'",
        )
        .map_err(db_error)?;
    updates
        .iter()
        .map(|u| {
            let changed = stmt
                .execute((
                    to_json(u.progress.value()),
                    micros(u.at),
                    u.lease.id,
                    u.lease.fence,
                ))
                .map_err(db_error)?;
            Ok(changed == 1)
        })
        .collect()
}

/// Ends attempts whose lease is still current; answers which were applied.
pub(crate) fn finish(
    conn: &Connection,
    events: &mut Events,
    finishes: &[Finish],
    now: Timestamp,
) -> Result<Vec<bool>, StoreError> {
    let mut applied = Vec::with_capacity(finishes.len());
    // Looked up in the statement cache once per request, not per job: the
    // lookup hashes the whole SQL text.
    let mut read = conn.prepare_cached(RUNNING_ATTEMPT).map_err(db_error)?;
    let mut end = conn.prepare_cached(END_ATTEMPT).map_err(db_error)?;
    let mut ended_batches = Vec::new();
    for f in finishes {
        let Some(attempt) = running_attempt(&mut read, f.lease)? else {
            applied.push(false);
            continue;
        };
        applied.push(end_attempt(
            &mut end,
            events,
            f.lease,
            &attempt,
            f.outcome.clone(),
            &f.backoff,
            now,
            &mut ended_batches,
        )?);
    }
    drop((read, end));
    batches::settle_batches(conn, events, ended_batches, now)?;
    Ok(applied)
}

/// A job's attempt count and budget.
#[derive(Debug, Clone, Copy)]
struct Attempts {
    attempt: u32,
    max_attempts: u32,
}

/// What ending a running attempt needs to know of its job: its attempt
/// count and budget (as `resolve` takes them), and what the throughput
/// history counts it under. Read by a fenced point lookup: an `UPDATE …
/// RETURNING` costs SQLite more (it buffers its rows in a temporary table:
/// about 5% of end-to-end throughput).
#[derive(Debug, Clone)]
struct RunningAttempt {
    attempt: u32,
    max_attempts: u32,
    kind: String,
    queue: String,
    started_at: Option<i64>,
    /// Read here so that settling batches needs no lookup of its own.
    batch_id: Option<BatchId>,
}

/// Reads a [`RunningAttempt`]: `?1` id, `?2` the lease's fence.
const RUNNING_ATTEMPT: &str = "SELECT attempt, max_attempts, kind, queue, started_at, batch_id \
     FROM jobs WHERE id = ?1 AND fence = ?2 AND state = 'running'";

/// The attempt `lease` holds, if it is still the job's running claim
/// (`read` is [`RUNNING_ATTEMPT`]).
fn running_attempt(
    read: &mut Statement,
    lease: Lease,
) -> Result<Option<RunningAttempt>, StoreError> {
    read.query_row((lease.id, lease.fence), |r| running_attempt_at(r, 0))
        .optional()
        .map_err(db_error)
}

/// A [`RunningAttempt`] from six columns starting at `first`.
fn running_attempt_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RunningAttempt> {
    Ok(RunningAttempt {
        attempt: r.get(first)?,
        max_attempts: r.get(first + 1)?,
        kind: r.get(first + 2)?,
        queue: r.get(first + 3)?,
        started_at: r.get(first + 4)?,
        batch_id: r.get(first + 5)?,
    })
}

/// Puts running jobs whose lease has expired back to run, counting the attempt.
pub(crate) fn rescue_expired(
    conn: &Connection,
    events: &mut Events,
    now: Timestamp,
) -> Result<Vec<JobId>, StoreError> {
    let expired = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, fence, attempt, max_attempts, kind, queue, started_at, batch_id \
                 FROM jobs INDEXED BY jobs_running \
                 WHERE state = 'running' AND lease_expires_at < ?1",
            )
            .map_err(db_error)?;
        stmt.query_map([micros(now)], |r| {
            Ok((
                Lease {
                    id: r.get(0)?,
                    fence: r.get(1)?,
                },
                running_attempt_at(r, 2)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?
    };
    let mut end = conn.prepare_cached(END_ATTEMPT).map_err(db_error)?;
    let mut ended_batches = Vec::new();
    for (lease, attempt) in &expired {
        end_attempt(
            &mut end,
            events,
            *lease,
            attempt,
            Outcome::LeaseExpired,
            &Backoff::default(),
            now,
            &mut ended_batches,
        )?;
    }
    drop(end);
    batches::settle_batches(conn, events, ended_batches, now)?;
    Ok(expired.into_iter().map(|(lease, _)| lease.id).collect())
}

/// Ends a running attempt, fenced to its claim: `?1` id, `?2` fence, `?3`
/// the new state, `?4` run_at (NULL keeps it), `?5` result, `?6` error
/// (NULL: none), `?7` its time, `?8` 1 to refund the attempt, `?9`
/// finished_at.
pub(crate) const END_ATTEMPT: &str = "UPDATE jobs SET state = ?3, \
     run_at = COALESCE(?4, run_at), result = ?5, \
     errors = CASE WHEN ?6 IS NULL THEN errors ELSE json_insert(errors, '$[#]', \
         json_object('attempt', attempt, 'at', ?7, 'error', ?6)) END, \
     attempt = attempt - ?8, finished_at = ?9, \
     lease_expires_at = NULL, worker = NULL \
     WHERE id = ?1 AND fence = ?2 AND state = 'running'";

/// Applies the transition `resolve` picks for a running attempt; the WHERE
/// clause fences it to that claim (`end` is [`END_ATTEMPT`]). True when the
/// claim was current. An error is recorded under the attempt that ran,
/// before a refund lowers it. The batch of a job that ended for good goes
/// into `ended_batches`, to be settled.
#[allow(clippy::too_many_arguments)]
fn end_attempt(
    end: &mut Statement,
    events: &mut Events,
    lease: Lease,
    running: &RunningAttempt,
    outcome: Outcome,
    backoff: &Backoff,
    now: Timestamp,
    ended_batches: &mut Vec<BatchId>,
) -> Result<bool, StoreError> {
    let ending = Ending::of(&outcome);
    let t: Transition = resolve(running.attempt, running.max_attempts, outcome, backoff, now);
    // `resolve` never answers `running`, so the lease always ends here.
    let changed = end
        .execute((
            lease.id,
            lease.fence,
            t.state.as_str(),
            t.run_at.map(micros),
            t.result.as_ref().map(to_json),
            &t.error,
            t.error.as_ref().map(|_| now.to_string()),
            u32::from(t.refund_attempt),
            t.is_terminal().then(|| micros(now)),
        ))
        .map_err(db_error)?;
    if changed == 0 {
        return Ok(false);
    }
    events
        .counts
        .moved(&running.queue, &running.kind, JobState::Running, t.state);
    let started = running.started_at.map(from_micros).transpose()?;
    events
        .history
        .ended(now, &running.kind, &running.queue, started, ending, t.state);
    if t.is_terminal() {
        events.finished.push(lease.id);
        ended_batches.extend(running.batch_id);
    } else if t.state == JobState::Available {
        events.enqueued.insert(running.queue.clone());
    }
    Ok(true)
}

/// The state and attempts of a job, or NotFound.
fn state_of(conn: &Connection, id: JobId) -> Result<(JobState, Attempts), StoreError> {
    let (state, attempts): (String, Attempts) = conn
        .prepare_cached("SELECT state, attempt, max_attempts FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| {
                let attempts = Attempts {
                    attempt: r.get(1)?,
                    max_attempts: r.get(2)?,
                };
                Ok((r.get(0)?, attempts))
            })
            .optional()
        })
        .map_err(db_error)?
        .ok_or(StoreError::NotFound(id))?;
    Ok((parse_state(&state)?, attempts))
}

/// Runs `sql` (which must RETURN the job's columns) on job `id` when
/// `allowed` accepts its state, else answers Conflict. `sql` takes the id,
/// now, and the job's attempt afterwards, which `attempt` computes from
/// its attempt and `max_attempts`. Answers the job and its state before.
fn change_one(
    conn: &Connection,
    id: JobId,
    action: &'static str,
    allowed: fn(JobState) -> bool,
    sql: &str,
    attempt: fn(u32, u32) -> u32,
    now: Timestamp,
) -> Result<(Job, JobState), StoreError> {
    let (state, attempts) = state_of(conn, id)?;
    let conflict = || StoreError::Conflict { id, state, action };
    if !allowed(state) {
        return Err(conflict());
    }
    let attempt = attempt(attempts.attempt, attempts.max_attempts);
    let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
    let mut rows = stmt.query((id, micros(now), attempt)).map_err(db_error)?;
    match rows.next() {
        Ok(Some(row)) => Ok((job_from_row(row)?, state)),
        Ok(None) => Err(conflict()),
        // A retry that would give the kind a second live job with the same
        // unique key: the other job must end first.
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => Err(conflict()),
        Err(e) => Err(db_error(e)),
    }
}

/// Cancels a job that has not ended, with its audit entry.
pub(crate) fn cancel(
    conn: &Connection,
    events: &mut Events,
    id: JobId,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<Job, StoreError> {
    let (job, from) = change_one(
        conn,
        id,
        "cancel",
        JobState::can_cancel,
        &format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?2, attempt = ?3, \
                 lease_expires_at = NULL, worker = NULL \
             WHERE id = ?1 RETURNING {JOB_COLUMNS}"
        ),
        |attempt, _| attempt,
        now,
    )?;
    events.finished.push(job.id);
    events.counts.moved(&job.queue, &job.kind, from, job.state);
    events
        .history
        .count(now, &job.kind, &job.queue, Counter::Cancelled);
    batches::settle(conn, events, now)?;
    let entry = NewAuditEntry::job(actor, AuditAction::JobCancel, id, from, job.state);
    audit::record(conn, &entry, now)?;
    Ok(job)
}

/// Makes a failed or cancelled job available now, with at least one
/// attempt left ([`attempt_on_manual_retry`]), with its audit entry.
pub(crate) fn retry(
    conn: &Connection,
    events: &mut Events,
    id: JobId,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<Job, StoreError> {
    let (job, from) = change_one(
        conn,
        id,
        "retry",
        JobState::can_retry,
        &format!(
            "UPDATE jobs SET state = 'available', run_at = ?2, finished_at = NULL, \
                 attempt = ?3, lease_expires_at = NULL, worker = NULL \
             WHERE id = ?1 RETURNING {JOB_COLUMNS}"
        ),
        attempt_on_manual_retry,
        now,
    )?;
    events.enqueued.insert(job.queue.clone());
    events.counts.moved(&job.queue, &job.kind, from, job.state);
    let entry = NewAuditEntry::job(actor, AuditAction::JobRetry, id, from, job.state);
    audit::record(conn, &entry, now)?;
    Ok(job)
}

/// Marks scheduled and retryable jobs that are due as available.
pub(crate) fn promote_due(
    conn: &Connection,
    events: &mut Events,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut promoted = 0;
    // One statement per state, so each promoted job's count moves from
    // the state it had (RETURNING sees only the new row); the IN repeats
    // the partial index's condition, which SQLite matches only verbatim.
    for from in [JobState::Scheduled, JobState::Retryable] {
        let mut stmt = conn
            .prepare_cached(&format!(
                "UPDATE jobs INDEXED BY jobs_due SET state = 'available' \
                 WHERE state IN ('scheduled', 'retryable') AND state = '{}' AND run_at <= ?1 \
                 RETURNING queue, kind",
                from.as_str()
            ))
            .map_err(db_error)?;
        let moved = stmt
            .query_map([micros(now)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(db_error)?;
        promoted += moved.len() as u64;
        for (queue, kind) in moved {
            events
                .counts
                .moved(&queue, &kind, from, JobState::Available);
            events.enqueued.insert(queue);
        }
    }
    Ok(promoted)
}

/// Deletes terminal jobs that finished longer ago than their state's
/// retention, events and finished batches older than the longest of the
/// three, and audit entries older than theirs; answers how many jobs.
pub(crate) fn prune(
    conn: &Connection,
    events: &mut Events,
    retention: &Retention,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let now = micros(now);
    let mut stmt = conn
        .prepare_cached(
            "DELETE FROM jobs WHERE state = ?1 AND finished_at IS NOT NULL AND finished_at < ?2 \
             RETURNING queue, kind",
        )
        .map_err(db_error)?;
    let mut deleted = 0;
    for (state, keep) in retention.by_state() {
        let cutoff = now.saturating_sub(duration_micros(keep));
        let mut rows = stmt.query((state.as_str(), cutoff)).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let queue: String = row.get(0).map_err(db_error)?;
            let kind: String = row.get(1).map_err(db_error)?;
            events.counts.add(&queue, &kind, state, -1);
            deleted += 1;
        }
    }
    let cutoff = now.saturating_sub(duration_micros(retention.longest()));
    events::prune(conn, cutoff)?;
    batches::prune(conn, cutoff)?;
    crate::sessions::prune(conn, now)?;
    audit::prune(conn, now.saturating_sub(duration_micros(retention.audit)))?;
    bulk::prune(conn, cutoff)?;
    let history_cutoff = now.saturating_sub(duration_micros(retention.history)) / 1_000_000;
    crate::history::prune(conn, history_cutoff)?;
    crate::counts::forget_zeros(conn)?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements run once per job (insert, the fenced finish, the
    /// point read before it, heartbeat) must not build a temporary b-tree on
    /// every execution, as a partial index conditioned on `state IN (…)`
    /// with more than two values made them do (migration 0017).
    #[test]
    fn per_job_statements_build_no_temporary_btree() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        crate::migrate::migrate(&mut conn, Timestamp::now()).expect("migrated");
        let heartbeat = "UPDATE jobs SET lease_expires_at = ?1 \
             WHERE id = ?2 AND fence = ?3 AND state = 'running'";
        for sql in [INSERT, END_ATTEMPT, RUNNING_ATTEMPT, heartbeat] {
            let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).expect("explained");
            // Unbound parameters are NULL, which EXPLAIN does not mind.
            let mut rows = explain.raw_query();
            let mut opcodes: Vec<String> = Vec::new();
            while let Some(row) = rows.next().expect("an opcode") {
                opcodes.push(row.get(1).expect("the opcode's name"));
            }
            assert!(
                !opcodes.iter().any(|op| op == "OpenEphemeral"),
                "{sql} builds a temporary b-tree: {opcodes:?}"
            );
        }
    }
}
