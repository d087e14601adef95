//! The write operations, each atomic: one statement, or (cancel and retry)
//! one transaction. State changes come from
//! [`errand_core::outcome::resolve`]; this module only applies them, many
//! rows per statement.

use crate::events::Changes;
use crate::rows::{
    JOB_COLUMNS, TERMINAL, after, before, db_error, duration_micros, int, job_from_row,
    jobs_from_rows, now, parse_state, sql_time, uint,
};
use deadpool_postgres::{Client, GenericClient};
use errand_core::outcome::resolve;
use errand_core::store::{ClaimRequest, Finish};
use errand_core::{
    Backoff, Enqueued, Job, JobId, JobState, Lease, NewJob, Outcome, Retention, StoreError,
    Transition,
};
use jiff::Timestamp;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use tokio_postgres::error::SqlState;

/// Inserts `jobs` in one statement (so all or none); a live job with the
/// same kind and unique key (including an earlier entry of `jobs`) is
/// answered instead. Two round trips: draw ids, insert.
pub(crate) async fn enqueue(
    client: &Client,
    jobs: Vec<NewJob>,
) -> Result<(Vec<Enqueued>, Changes), StoreError> {
    let mut changes = Changes::default();
    if jobs.is_empty() {
        return Ok((Vec::new(), changes));
    }
    let now = now();
    // Ids are drawn first so each answer can be matched to its input.
    let draw = client
        .prepare_cached(
            "SELECT nextval(pg_get_serial_sequence('jobs', 'id')) \
             FROM generate_series(1, $1::int)",
        )
        .await
        .map_err(db_error)?;
    let mut ids: Vec<i64> = client
        .query(&draw, &[&(jobs.len() as i32)])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    let run_at: Vec<Timestamp> = jobs.iter().map(|j| j.run_at.unwrap_or(now)).collect();
    // A past run_at is kept: it orders the job among other due jobs.
    let states: Vec<&str> = run_at
        .iter()
        .map(|at| {
            if *at > now {
                JobState::Scheduled.as_str()
            } else {
                JobState::Available.as_str()
            }
        })
        .collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    let payloads: Vec<&Value> = jobs.iter().map(|j| &j.payload).collect();
    let priorities: Vec<i16> = jobs.iter().map(|j| j.priority).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| int(j.max_attempts)).collect();
    let run_at_sql: Vec<SystemTime> = run_at.iter().copied().map(sql_time).collect();
    let timeouts: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| j.timeout.map(duration_micros))
        .collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
    let tags: Vec<Value> = jobs.iter().map(|j| Value::from(j.tags.clone())).collect();
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO jobs (id, kind, queue, payload, priority, state, max_attempts, run_at, \
                 created_at, timeout_us, unique_key, tags) \
             SELECT u.id, u.kind, u.queue, u.payload, u.priority, u.state, u.max_attempts, \
                 u.run_at, $12, u.timeout_us, u.unique_key, \
                 ARRAY(SELECT jsonb_array_elements_text(u.tags)) \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::smallint[], \
                 $6::text[], $7::int[], $8::timestamptz[], $9::bigint[], $10::text[], \
                 $11::jsonb[]) WITH ORDINALITY \
                 AS u(id, kind, queue, payload, priority, state, max_attempts, run_at, \
                      timeout_us, unique_key, tags, ord) \
             ORDER BY u.ord \
             ON CONFLICT (kind, unique_key) \
                 WHERE unique_key IS NOT NULL AND state NOT IN {TERMINAL} DO NOTHING \
             RETURNING {JOB_COLUMNS}"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &kinds,
                &queues,
                &payloads,
                &priorities,
                &states,
                &max_attempts,
                &run_at_sql,
                &timeouts,
                &keys,
                &tags,
                &sql_time(now),
            ],
        )
        .await
        .map_err(db_error)?;
    let mut inserted: HashMap<JobId, Job> = jobs_from_rows(&rows)?
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let duplicates = duplicates(client, &jobs, &ids, &inserted).await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, id) in jobs.iter().zip(&ids) {
        if let Some(new) = inserted.remove(id) {
            if new.state == JobState::Available {
                changes.enqueued.insert(new.queue.clone());
            }
            answers.push(Enqueued {
                job: new,
                duplicate: false,
            });
            continue;
        }
        let key = (job.kind.clone(), job.unique_key.clone().unwrap_or_default());
        let existing = duplicates.get(&key).cloned().ok_or_else(|| {
            StoreError::Internal(format!(
                "insert of a {} job was refused but no live duplicate exists",
                job.kind
            ))
        })?;
        answers.push(Enqueued {
            job: existing,
            duplicate: true,
        });
    }
    Ok((answers, changes))
}

/// The jobs, by kind and unique key, that refused some of `jobs`: the live
/// ones, or (when one ended since it refused the insert) the newest.
async fn duplicates(
    client: &Client,
    jobs: &[NewJob],
    ids: &[i64],
    inserted: &HashMap<JobId, Job>,
) -> Result<HashMap<(String, String), Job>, StoreError> {
    let refused: Vec<(&str, &str)> = jobs
        .iter()
        .zip(ids)
        .filter(|(_, id)| !inserted.contains_key(id))
        .filter_map(|(j, _)| Some((j.kind.as_str(), j.unique_key.as_deref()?)))
        .collect();
    if refused.is_empty() {
        return Ok(HashMap::new());
    }
    let (kinds, keys): (Vec<&str>, Vec<&str>) = refused.iter().copied().unzip();
    let live = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs \
             WHERE (kind, unique_key) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
               AND unique_key IS NOT NULL AND state NOT IN {TERMINAL}"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&live, &[&kinds, &keys])
        .await
        .map_err(db_error)?;
    let by_key = |j: Job| {
        (
            (j.kind.clone(), j.unique_key.clone().unwrap_or_default()),
            j,
        )
    };
    let mut found: HashMap<_, _> = jobs_from_rows(&rows)?.into_iter().map(by_key).collect();
    for (kind, key) in refused {
        if found.contains_key(&(kind.to_string(), key.to_string())) {
            continue;
        }
        let newest = client
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND unique_key = $2 \
                 ORDER BY id DESC LIMIT 1"
            ))
            .await
            .map_err(db_error)?;
        if let Some(row) = client
            .query_opt(&newest, &[&kind, &key])
            .await
            .map_err(db_error)?
        {
            let (k, job) = by_key(job_from_row(&row)?);
            found.insert(k, job);
        }
    }
    Ok(found)
}

/// Takes up to `req.limit` due jobs of a queue in claim order; rows another
/// claimer holds are skipped, not waited for.
pub(crate) async fn claim(client: &Client, req: &ClaimRequest) -> Result<Vec<Job>, StoreError> {
    let now = now();
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
    jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
    Ok(jobs)
}

/// Extends the leases still held, in one statement; returns the others.
pub(crate) async fn heartbeat(
    client: &Client,
    leases: &[Lease],
    lease: Duration,
) -> Result<Vec<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, attempts) = lease_arrays(leases);
    let stmt = client
        .prepare_cached(
            "UPDATE jobs j SET lease_expires_at = $1 \
             FROM unnest($2::bigint[], $3::int[]) AS u(id, attempt) \
             WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
             RETURNING j.id, j.attempt",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&sql_time(after(now(), lease)), &ids, &attempts])
        .await
        .map_err(db_error)?;
    let held: HashSet<(i64, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(leases
        .iter()
        .filter(|l| !held.contains(&(l.id, int(l.attempt))))
        .copied()
        .collect())
}

fn lease_arrays(leases: &[Lease]) -> (Vec<i64>, Vec<i32>) {
    leases.iter().map(|l| (l.id, int(l.attempt))).unzip()
}

/// A running attempt, as the fencing check sees it. While an attempt runs
/// nothing but its own end changes `max_attempts`, so a value read without
/// a lock is still current when the fenced UPDATE applies.
struct Running {
    lease: Lease,
    /// Read only for the outcomes that depend on the attempts left.
    max_attempts: Option<u32>,
}

/// Whether `resolve` needs the attempts left to decide this outcome.
fn needs_budget(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Retry(_) | Outcome::LeaseExpired)
}

fn running_from_row(row: &tokio_postgres::Row) -> Result<Running, StoreError> {
    Ok(Running {
        lease: Lease {
            id: row.get(0),
            attempt: uint(row.get(1), "attempt")?,
        },
        max_attempts: Some(uint(row.get(2), "max_attempts")?),
    })
}

/// Ends attempts whose lease is still current. Successes, snoozes and
/// handbacks do not depend on the attempts left, so a batch of them is one
/// fenced UPDATE; retries first read their jobs' `max_attempts` (one more
/// statement), then everything is resolved in Rust and written back fenced
/// by attempt and state.
pub(crate) async fn finish(
    client: &Client,
    finishes: Vec<Finish>,
) -> Result<(Vec<bool>, Changes), StoreError> {
    if finishes.is_empty() {
        return Ok((Vec::new(), Changes::default()));
    }
    let now = now();
    let budgets = attempt_budgets(client, &finishes).await?;
    let mut seen = HashSet::with_capacity(finishes.len());
    let mut first = Vec::with_capacity(finishes.len());
    let mut planned = Vec::with_capacity(finishes.len());
    for f in &finishes {
        // A second finish of the same lease in one batch loses.
        let is_first = seen.insert(f.lease);
        first.push(is_first);
        let max_attempts = if needs_budget(&f.outcome) {
            match budgets.get(&f.lease) {
                Some(max) => Some(*max),
                // Not running under this lease any more: nothing to write.
                None => continue,
            }
        } else {
            None
        };
        if is_first {
            let job = Running {
                lease: f.lease,
                max_attempts,
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

/// The `max_attempts` of the running jobs whose outcome depends on it, by
/// lease; no statement at all when none does.
async fn attempt_budgets(
    client: &Client,
    finishes: &[Finish],
) -> Result<HashMap<Lease, u32>, StoreError> {
    let ids: Vec<i64> = finishes
        .iter()
        .filter(|f| needs_budget(&f.outcome))
        .map(|f| f.lease.id)
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = client
        .prepare_cached(
            "SELECT id, attempt, max_attempts FROM jobs \
             WHERE id = ANY($1::bigint[]) AND state = 'running'",
        )
        .await
        .map_err(db_error)?;
    let mut budgets = HashMap::with_capacity(ids.len());
    for row in client.query(&stmt, &[&ids]).await.map_err(db_error)? {
        let job = running_from_row(&row)?;
        budgets.insert(job.lease, job.max_attempts.unwrap_or_default());
    }
    Ok(budgets)
}

/// Puts running jobs whose lease has expired back to run, counting the
/// attempt. A heartbeat or finish that lands between the read and the
/// write wins: the write is fenced on the lease still being expired.
pub(crate) async fn rescue_expired(client: &Client) -> Result<(Vec<JobId>, Changes), StoreError> {
    let now = now();
    let stmt = client
        .prepare_cached(
            "SELECT id, attempt, max_attempts FROM jobs \
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

/// Applies what `resolve` picks for each running attempt in one UPDATE;
/// the WHERE clause fences each row to its attempt (and, for a rescue, to
/// a lease that is still expired). Answers the leases that were ended and
/// what waiters should hear.
async fn end_attempts(
    client: &Client,
    planned: Vec<(Running, Outcome, Backoff)>,
    now: Timestamp,
    expired_before: Option<Timestamp>,
) -> Result<(HashSet<Lease>, Changes), StoreError> {
    let mut changes = Changes::default();
    if planned.is_empty() {
        return Ok((HashSet::new(), changes));
    }
    let n = planned.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut run_at: Vec<Option<SystemTime>> = Vec::with_capacity(n);
    let mut results: Vec<Option<Value>> = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    let mut refunds = Vec::with_capacity(n);
    let mut finished_at: Vec<Option<SystemTime>> = Vec::with_capacity(n);
    for (job, outcome, backoff) in planned {
        // Without a budget the outcome does not depend on it (see needs_budget).
        let budget = job.max_attempts.unwrap_or(u32::MAX);
        let t: Transition = resolve(job.lease.attempt, budget, outcome, &backoff, now);
        ids.push(job.lease.id);
        attempts.push(int(job.lease.attempt));
        max_attempts.push(job.max_attempts.map(int));
        states.push(t.state.as_str());
        run_at.push(t.run_at.map(sql_time));
        finished_at.push(t.is_terminal().then(|| sql_time(now)));
        refunds.push(i32::from(t.refund_attempt));
        results.push(t.result);
        errors.push(t.error);
    }
    // `resolve` never answers `running`, so the lease always ends here.
    let stmt = client
        .prepare_cached(
            "UPDATE jobs j SET state = u.state, run_at = COALESCE(u.run_at, j.run_at), \
                 result = u.result, \
                 errors = CASE WHEN u.error IS NULL THEN j.errors ELSE j.errors || \
                     jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', $9::text, \
                         'error', u.error)) END, \
                 max_attempts = j.max_attempts + u.refund, finished_at = u.finished_at, \
                 lease_expires_at = NULL, worker = NULL \
             FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::jsonb[], \
                 $6::text[], $7::int[], $8::timestamptz[], $10::int[]) \
                 AS u(id, attempt, state, run_at, result, error, refund, finished_at, \
                      max_attempts) \
             WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
               AND (u.max_attempts IS NULL OR j.max_attempts = u.max_attempts) \
               AND ($11::timestamptz IS NULL OR j.lease_expires_at < $11) \
             RETURNING j.id, u.attempt, j.state, j.queue",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &ids,
                &attempts,
                &states,
                &run_at,
                &results,
                &errors,
                &refunds,
                &finished_at,
                &now.to_string(),
                &max_attempts,
                &expired_before.map(sql_time),
            ],
        )
        .await
        .map_err(db_error)?;
    let mut ended = HashSet::with_capacity(rows.len());
    for row in rows {
        let id: JobId = row.get(0);
        ended.insert(Lease {
            id,
            attempt: uint(row.get(1), "attempt")?,
        });
        let state = parse_state(row.get(2))?;
        if state.is_terminal() {
            changes.finished.push(id);
        } else if state == JobState::Available {
            changes.enqueued.insert(row.get(3));
        }
    }
    Ok((ended, changes))
}

/// Runs `sql` (which takes the id and now, and RETURNs the job's columns)
/// on job `id` when `allowed` accepts its state, else answers Conflict.
async fn change_one(
    client: &mut Client,
    id: JobId,
    action: &'static str,
    allowed: fn(JobState) -> bool,
    sql: &str,
) -> Result<Job, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let lock = tx
        .prepare_cached("SELECT state FROM jobs WHERE id = $1 FOR UPDATE")
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
    let stmt = tx.prepare_cached(sql).await.map_err(db_error)?;
    let job = match tx.query_one(&stmt, &[&id, &sql_time(now())]).await {
        Ok(row) => job_from_row(&row)?,
        // A retry that would give the kind a second live job with the same
        // unique key: the other job must end first.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(conflict()),
        Err(e) => return Err(db_error(e)),
    };
    tx.commit().await.map_err(db_error)?;
    Ok(job)
}

/// Cancels a job that has not ended.
pub(crate) async fn cancel(client: &mut Client, id: JobId) -> Result<(Job, Changes), StoreError> {
    let job = change_one(
        client,
        id,
        "cancel",
        JobState::can_cancel,
        &format!(
            "UPDATE jobs SET state = 'cancelled', finished_at = $2, lease_expires_at = NULL, \
                 worker = NULL \
             WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ),
    )
    .await?;
    let changes = Changes {
        finished: vec![job.id],
        ..Changes::default()
    };
    Ok((job, changes))
}

/// Makes a failed or cancelled job available now, with at least one attempt left.
pub(crate) async fn retry(client: &mut Client, id: JobId) -> Result<(Job, Changes), StoreError> {
    let job = change_one(
        client,
        id,
        "retry",
        JobState::can_retry,
        &format!(
            "UPDATE jobs SET state = 'available', run_at = $2, finished_at = NULL, \
                 max_attempts = GREATEST(max_attempts, attempt + 1), lease_expires_at = NULL, \
                 worker = NULL \
             WHERE id = $1 RETURNING {JOB_COLUMNS}"
        ),
    )
    .await?;
    let changes = Changes {
        enqueued: [job.queue.clone()].into(),
        ..Changes::default()
    };
    Ok((job, changes))
}

/// Marks scheduled and retryable jobs that are due as available.
pub(crate) async fn promote_due(client: &Client) -> Result<(u64, Changes), StoreError> {
    let stmt = client
        .prepare_cached(
            "UPDATE jobs SET state = 'available' \
             WHERE state IN ('scheduled', 'retryable') AND run_at <= $1 RETURNING queue",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&sql_time(now())])
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

/// Deletes terminal jobs that finished longer ago than their state's retention.
pub(crate) async fn prune(client: &Client, retention: &Retention) -> Result<u64, StoreError> {
    let now = now();
    let (states, cutoffs): (Vec<&str>, Vec<SystemTime>) = [
        (JobState::Completed, retention.completed),
        (JobState::Failed, retention.failed),
        (JobState::Cancelled, retention.cancelled),
    ]
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
