//! The write operations on existing jobs, each atomic: one statement, or
//! one transaction (cancel, retry, and finishes and rescues that end batch
//! jobs). State changes come from
//! [`errand_core::outcome::resolve`]; this module only applies them, many
//! rows per statement.

use crate::batches;
use crate::events::Changes;
use crate::rows::{
    JOB_COLUMNS, after, before, db_error, int, job_from_row, jobs_from_rows, optional_time,
    parse_state, sql_time, uint,
};
use deadpool_postgres::{Client, GenericClient};
use errand_core::audit::{AuditAction, AuditActor, NewAuditEntry};
use errand_core::batch::BatchId;
use errand_core::history::{Counter, Ending as HowEnded};
use errand_core::outcome::{attempt_on_manual_retry, resolve};
use errand_core::store::{ClaimRequest, Finish, claim_key};
use errand_core::{
    Backoff, Job, JobId, JobState, Lease, Outcome, ProgressUpdate, Retention, StoreError,
    Transition,
};
use jiff::Timestamp;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use tokio_postgres::error::SqlState;

/// Takes up to `req.limit` due jobs of a queue in claim order; rows another
/// claimer holds are skipped, not waited for.
pub(crate) async fn claim(
    client: &Client,
    req: &ClaimRequest,
    now: Timestamp,
) -> Result<Vec<Job>, StoreError> {
    // errand_claim (migration 0003) pins the ordered scan of the claim index.
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM errand_claim($1, $2, $3, $4, $5::text[], $6)"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &sql_time(now),
                &sql_time(after(now, req.lease)),
                &req.worker,
                &req.queue,
                &req.kinds,
                &i64::from(req.limit),
            ],
        )
        .await
        .map_err(db_error)?;
    let mut jobs = jobs_from_rows(&rows)?;
    // RETURNING does not promise any order.
    jobs.sort_by_key(claim_key);
    Ok(jobs)
}

/// Extends the leases still held, in one statement; returns the others.
pub(crate) async fn heartbeat(
    client: &Client,
    leases: &[Lease],
    lease: Duration,
    now: Timestamp,
) -> Result<Vec<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, fences): (Vec<i64>, Vec<i64>) = leases.iter().map(|l| (l.id, l.fence)).unzip();
    let stmt = client
        .prepare_cached(
            "UPDATE jobs j SET lease_expires_at = $1 \
             FROM unnest($2::bigint[], $3::bigint[]) AS u(id, fence) \
             WHERE j.id = u.id AND j.fence = u.fence AND j.state = 'running' \
             RETURNING j.id, j.fence",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&sql_time(after(now, lease)), &ids, &fences])
        .await
        .map_err(db_error)?;
    let held: HashSet<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(leases
        .iter()
        .filter(|l| !held.contains(&(l.id, l.fence)))
        .copied()
        .collect())
}

/// Records the progress of attempts whose lease is still current, in one
/// statement; answers which were applied.
pub(crate) async fn record_progress(
    client: &Client,
    updates: &[ProgressUpdate],
) -> Result<Vec<bool>, StoreError> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = updates.iter().map(|u| u.lease.id).collect();
    let fences: Vec<i64> = updates.iter().map(|u| u.lease.fence).collect();
    let values: Vec<&Value> = updates.iter().map(|u| u.progress.value()).collect();
    let ats: Vec<SystemTime> = updates.iter().map(|u| sql_time(u.at)).collect();
    let stmt = client
        .prepare_cached(
            "UPDATE jobs j SET progress = u.progress, progress_at = u.at, progress_fence = j.fence \
             FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[], $4::timestamptz[]) \
                  AS u(id, fence, progress, at) \
             WHERE j.id = u.id AND j.fence = u.fence AND j.state = 'running' \
             RETURNING j.id, j.fence",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&ids, &fences, &values, &ats])
        .await
        .map_err(db_error)?;
    let applied: HashSet<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(updates
        .iter()
        .map(|u| applied.contains(&(u.lease.id, u.lease.fence)))
        .collect())
}

/// A running attempt, as the fencing check sees it. While a claim runs
/// nothing but its own end changes the job's attempt (a claim raises the
/// fence too, and `max_attempts` never changes), so values read without a
/// lock are still current when the UPDATE fenced on the claim applies.
struct Running {
    lease: Lease,
    /// `attempt` and `max_attempts`, read only for the outcomes that
    /// depend on them ([`Outcome::uses_attempts_left`]).
    attempts: Option<(u32, u32)>,
}

fn running_from_row(row: &tokio_postgres::Row) -> Result<Running, StoreError> {
    Ok(Running {
        lease: Lease {
            id: row.get(0),
            fence: row.get(1),
        },
        attempts: Some((
            uint(row.get(2), "attempt")?,
            uint(row.get(3), "max_attempts")?,
        )),
    })
}

/// Ends attempts whose lease is still current. Successes, snoozes and
/// handbacks do not depend on the attempts left, so a batch of them is one
/// fenced UPDATE; retries first read their jobs' `max_attempts` (one more
/// statement), then everything is resolved in Rust and written back fenced
/// by attempt and state.
pub(crate) async fn finish(
    client: &mut Client,
    finishes: Vec<Finish>,
    now: Timestamp,
) -> Result<(Vec<bool>, Changes), StoreError> {
    if finishes.is_empty() {
        return Ok((Vec::new(), Changes::default()));
    }
    let budgets = attempts_of(client, &finishes).await?;
    let mut seen = HashSet::with_capacity(finishes.len());
    let mut first = Vec::with_capacity(finishes.len());
    let mut planned = Vec::with_capacity(finishes.len());
    for f in &finishes {
        // A second finish of the same lease in one batch loses.
        let is_first = seen.insert(f.lease);
        first.push(is_first);
        let attempts = if f.outcome.uses_attempts_left() {
            match budgets.get(&f.lease) {
                Some(attempts) => Some(*attempts),
                // Not running under this lease any more: nothing to write.
                None => continue,
            }
        } else {
            None
        };
        if is_first {
            let job = Running {
                lease: f.lease,
                attempts,
            };
            planned.push((job, f.outcome.clone(), f.backoff));
        }
    }
    let (applied, changes) = end_attempts(client, planned, now, None).await?;
    let answers = finishes
        .iter()
        .zip(first)
        .map(|(f, first)| first && applied.contains(&f.lease))
        .collect();
    Ok((answers, changes))
}

/// The `attempt` and `max_attempts` of the running jobs whose outcome
/// depends on them, by lease; no statement at all when none does.
async fn attempts_of(
    client: &Client,
    finishes: &[Finish],
) -> Result<HashMap<Lease, (u32, u32)>, StoreError> {
    let ids: Vec<i64> = finishes
        .iter()
        .filter(|f| f.outcome.uses_attempts_left())
        .map(|f| f.lease.id)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT id, fence, attempt, max_attempts FROM jobs \
             WHERE id = ANY($1::bigint[]) AND state = 'running'",
        )
        .await
        .map_err(db_error)?;
    let mut budgets = HashMap::with_capacity(ids.len());
    for row in client.query(&stmt, &[&ids]).await.map_err(db_error)? {
        let job = running_from_row(&row)?;
        budgets.insert(job.lease, job.attempts.unwrap_or_default());
    }
    Ok(budgets)
}

/// Puts running jobs whose lease has expired back to run, counting the
/// attempt. A heartbeat or finish that lands between the read and the
/// write wins: the write is fenced on the lease still being expired.
pub(crate) async fn rescue_expired(
    client: &mut Client,
    now: Timestamp,
) -> Result<(Vec<JobId>, Changes), StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, fence, attempt, max_attempts FROM jobs \
             WHERE state = 'running' AND lease_expires_at < $1",
        )
        .await
        .map_err(db_error)?;
    let mut planned = Vec::new();
    for row in client
        .query(&stmt, &[&sql_time(now)])
        .await
        .map_err(db_error)?
    {
        planned.push((
            running_from_row(&row)?,
            Outcome::LeaseExpired,
            Backoff::default(),
        ));
    }
    let (applied, changes) = end_attempts(client, planned, now, Some(now)).await?;
    let mut ids: Vec<JobId> = applied.into_iter().map(|l| l.id).collect();
    ids.sort_unstable();
    Ok((ids, changes))
}

/// The write of one ended attempt, as `resolve` decided it.
struct Ending {
    lease: Lease,
    how: HowEnded,
    state: &'static str,
    run_at: Option<SystemTime>,
    result: Option<Value>,
    error: Option<String>,
    refund: i32,
    finished_at: Option<SystemTime>,
}

/// Applies what `resolve` picks for each running attempt; the WHERE clause
/// fences each row to its attempt (and, for a rescue, to a lease that is
/// still expired). Answers the leases that were ended and what waiters
/// should hear.
///
/// Jobs outside batches, nearly all of them, end in one statement without
/// a transaction. Whatever that statement left (batch jobs, and leases
/// that are no longer current) is written again inside a transaction that
/// also settles the batches whose jobs ended (see [`batches::settle`]).
async fn end_attempts(
    client: &mut Client,
    planned: Vec<(Running, Outcome, Backoff)>,
    now: Timestamp,
    expired_before: Option<Timestamp>,
) -> Result<(HashSet<Lease>, Changes), StoreError> {
    let mut changes = Changes::default();
    if planned.is_empty() {
        return Ok((HashSet::new(), changes));
    }
    let endings: Vec<Ending> = planned
        .into_iter()
        .map(|(job, outcome, backoff)| {
            // Unread, the outcome does not depend on them (uses_attempts_left).
            let (attempt, max_attempts) = job.attempts.unwrap_or((0, u32::MAX));
            let how = HowEnded::of(&outcome);
            let t: Transition = resolve(attempt, max_attempts, outcome, &backoff, now);
            Ending {
                lease: job.lease,
                how,
                state: t.state.as_str(),
                run_at: t.run_at.map(sql_time),
                finished_at: t.is_terminal().then(|| sql_time(now)),
                refund: i32::from(t.refund_attempt),
                result: t.result,
                error: t.error,
            }
        })
        .collect();
    let how: HashMap<Lease, HowEnded> = endings.iter().map(|e| (e.lease, e.how)).collect();
    let mut ended = write_endings(&*client, &endings, true, now, expired_before).await?;
    let done: HashSet<Lease> = ended.iter().map(|e| e.lease).collect();
    let rest: Vec<Ending> = endings
        .into_iter()
        .filter(|e| !done.contains(&e.lease))
        .collect();
    if !rest.is_empty() {
        let tx = client.transaction().await.map_err(db_error)?;
        let more = write_endings(&tx, &rest, false, now, expired_before).await?;
        let mut batches: Vec<BatchId> = more
            .iter()
            .filter(|e| e.state.is_terminal())
            .filter_map(|e| e.batch)
            .collect();
        batches.sort_unstable();
        batches.dedup();
        changes.absorb(batches::settle(&tx, &batches, now).await?);
        tx.commit().await.map_err(db_error)?;
        ended.extend(more);
    }
    let mut leases = HashSet::with_capacity(ended.len());
    for e in ended {
        leases.insert(e.lease);
        if let Some(how) = how.get(&e.lease) {
            changes
                .history
                .ended(now, &e.kind, &e.queue, e.started, *how, e.state);
        }
        if e.state.is_terminal() {
            changes.finished.push(e.lease.id);
        } else if e.state == JobState::Available {
            changes.enqueued.insert(e.queue);
        }
    }
    Ok((leases, changes))
}

/// An attempt that [`write_endings`] ended.
struct Ended {
    lease: Lease,
    state: JobState,
    kind: String,
    queue: String,
    batch: Option<BatchId>,
    started: Option<Timestamp>,
}

/// One UPDATE of `endings`; with `plain_only`, batch jobs are left alone.
async fn write_endings(
    client: &impl GenericClient,
    endings: &[Ending],
    plain_only: bool,
    now: Timestamp,
    expired_before: Option<Timestamp>,
) -> Result<Vec<Ended>, StoreError> {
    let ids: Vec<i64> = endings.iter().map(|e| e.lease.id).collect();
    let fences: Vec<i64> = endings.iter().map(|e| e.lease.fence).collect();
    let states: Vec<&str> = endings.iter().map(|e| e.state).collect();
    let run_at: Vec<Option<SystemTime>> = endings.iter().map(|e| e.run_at).collect();
    let results: Vec<Option<&Value>> = endings.iter().map(|e| e.result.as_ref()).collect();
    let errors: Vec<Option<&str>> = endings.iter().map(|e| e.error.as_deref()).collect();
    let refunds: Vec<i32> = endings.iter().map(|e| e.refund).collect();
    let finished_at: Vec<Option<SystemTime>> = endings.iter().map(|e| e.finished_at).collect();
    // errand_end_attempts (migration 0023) looks each attempt up by its key.
    let stmt = client
        .prepare_cached(
            "SELECT * FROM errand_end_attempts($1::bigint[], $2::bigint[], $3::text[], \
                 $4::timestamptz[], $5::jsonb[], $6::text[], $7::int[], $8::timestamptz[], \
                 $9::text, $10::timestamptz, $11::boolean)",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &fences,
                &states,
                &run_at,
                &results,
                &errors,
                &refunds,
                &finished_at,
                &now.to_string(),
                &expired_before.map(sql_time),
                &plain_only,
            ],
        )
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|row| {
            Ok(Ended {
                lease: Lease {
                    id: row.get(0),
                    fence: row.get(1),
                },
                state: parse_state(row.get(2))?,
                queue: row.get(3),
                batch: row.get(4),
                kind: row.get(5),
                started: optional_time(row, 6)?,
            })
        })
        .collect()
}

/// Runs `sql` (which takes the id, now and the job's attempt afterwards,
/// and RETURNs the job's columns) on job `id` when `allowed` accepts its
/// state, else answers Conflict; `attempt` computes the attempt afterwards
/// from the job's attempt and `max_attempts`. A batch job it ends settles
/// its batch, and `audit` (by `actor`) is recorded, in the same transaction.
#[allow(clippy::too_many_arguments)]
async fn change_one(
    client: &mut Client,
    id: JobId,
    (audit, actor): (AuditAction, &AuditActor),
    action: &'static str,
    allowed: fn(JobState) -> bool,
    sql: &str,
    attempt: fn(u32, u32) -> u32,
    now: Timestamp,
) -> Result<(Job, Changes), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let lock = tx
        .prepare_cached("SELECT state, attempt, max_attempts FROM jobs WHERE id = $1 FOR UPDATE")
        .await
        .map_err(db_error)?;
    let row = tx
        .query_opt(&lock, &[&id])
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound(id))?;
    let state = parse_state(row.get(0))?;
    let conflict = || StoreError::Conflict { id, state, action };
    if !allowed(state) {
        return Err(conflict());
    }
    let attempt = int(attempt(
        uint(row.get(1), "attempt")?,
        uint(row.get(2), "max_attempts")?,
    ));
    let stmt = tx.prepare_cached(sql).await.map_err(db_error)?;
    let job = match tx.query_one(&stmt, &[&id, &sql_time(now), &attempt]).await {
        Ok(row) => job_from_row(&row)?,
        // A retry that would give the kind a second live job with the same
        // unique key: the other job must end first.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(conflict()),
        Err(e) => return Err(db_error(e)),
    };
    let mut changes = Changes::default();
    if job.state.is_terminal() {
        changes.finished.push(job.id);
        if let Some(batch) = job.batch_id {
            changes.absorb(batches::settle(&tx, &[batch], now).await?);
        }
    } else if job.state == JobState::Available {
        changes.enqueued.insert(job.queue.clone());
    }
    let entry = NewAuditEntry::job(actor, audit, id, state, job.state);
    crate::audit::record(&tx, &entry, now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok((job, changes))
}

/// Cancels a job that has not ended, with its audit entry.
pub(crate) async fn cancel(
    client: &mut Client,
    id: JobId,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<(Job, Changes), StoreError> {
    change_one(
        client,
        id,
        (AuditAction::JobCancel, actor),
        "cancel",
        JobState::can_cancel,
        &format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = $2, attempt = $3, \
                 lease_expires_at = NULL, worker = NULL \
             WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ),
        |attempt, _| attempt,
        now,
    )
    .await
    .map(|(job, mut changes)| {
        changes
            .history
            .count(now, &job.kind, &job.queue, Counter::Cancelled);
        (job, changes)
    })
}

/// Makes a failed or cancelled job available now, with at least one
/// attempt left ([`attempt_on_manual_retry`]), with its audit entry.
pub(crate) async fn retry(
    client: &mut Client,
    id: JobId,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<(Job, Changes), StoreError> {
    change_one(
        client,
        id,
        (AuditAction::JobRetry, actor),
        "retry",
        JobState::can_retry,
        &format!(
            "UPDATE jobs SET state = 'available', run_at = $2, finished_at = NULL, \
                 attempt = $3, lease_expires_at = NULL, worker = NULL \
             WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ),
        attempt_on_manual_retry,
        now,
    )
    .await
}

/// Marks scheduled and retryable jobs that are due as available.
pub(crate) async fn promote_due(
    client: &Client,
    now: Timestamp,
) -> Result<(u64, Changes), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE jobs SET state = 'available' \
             WHERE state IN ('scheduled', 'retryable') AND run_at <= $1 RETURNING queue",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&sql_time(now)])
        .await
        .map_err(db_error)?;
    let changes = Changes {
        enqueued: rows.iter().map(|r| r.get(0)).collect(),
        ..Changes::default()
    };
    Ok((rows.len() as u64, changes))
}

/// Most jobs one pruning statement deletes.
const PRUNE_BATCH: i64 = 5000;

/// Deletes terminal jobs that finished longer ago than their state's
/// retention, events and finished batches older than the longest of the
/// three, and audit entries older than theirs; answers how many jobs.
pub(crate) async fn prune(
    client: &Client,
    retention: &Retention,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let history_cutoff = before(now, retention.history).as_second();
    crate::history::prune(client, history_cutoff).await?;
    let cutoff = sql_time(before(now, retention.longest()));
    let events = client
        .prepare_cached("DELETE FROM events WHERE published_at < $1")
        .await
        .map_err(db_error)?;
    client
        .execute(&events, &[&cutoff])
        .await
        .map_err(db_error)?;
    let batches = client
        .prepare_cached("DELETE FROM batches WHERE finished_at < $1")
        .await
        .map_err(db_error)?;
    client
        .execute(&batches, &[&cutoff])
        .await
        .map_err(db_error)?;
    crate::sessions::prune(client, now).await?;
    crate::audit::prune(client, sql_time(before(now, retention.audit))).await?;
    let bulks = client
        .prepare_cached("DELETE FROM bulk_operations WHERE finished_at < $1")
        .await
        .map_err(db_error)?;
    client.execute(&bulks, &[&cutoff]).await.map_err(db_error)?;
    let (states, cutoffs): (Vec<&str>, Vec<SystemTime>) = retention
        .by_state()
        .into_iter()
        .map(|(state, keep)| (state.as_str(), sql_time(before(now, keep))))
        .unzip();
    // Small batches keep each transaction short, so vacuum is never held
    // back for long and row locks are released quickly.
    let stmt = client
        .prepare_cached(
            "DELETE FROM jobs WHERE id IN ( \
                 SELECT j.id FROM jobs j \
                 JOIN unnest($1::text[], $2::timestamptz[]) AS u(state, cutoff) \
                     ON j.state = u.state AND j.finished_at < u.cutoff \
                 LIMIT $3)",
        )
        .await
        .map_err(db_error)?;
    let mut deleted = 0;
    loop {
        let n = client
            .execute(&stmt, &[&states, &cutoffs, &PRUNE_BATCH])
            .await
            .map_err(db_error)?;
        deleted += n;
        if n < PRUNE_BATCH as u64 {
            return Ok(deleted);
        }
    }
}
