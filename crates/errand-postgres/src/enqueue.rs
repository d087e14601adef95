//! Inserting jobs: plain enqueues, and the jobs that publishing, batches and
//! schedules insert inside their own transactions (hence generic over the
//! client). Deduplication by unique key happens in the insert statement
//! itself: a live job with the key refuses the row through the
//! `jobs_unique_live` conflict target, and with `unique_for` a recent job
//! with the key (whatever its state) refuses it through a NOT EXISTS over
//! `jobs_unique_recent`.

use crate::events::Changes;
use crate::rows::{
    JOB_COLUMNS, TERMINAL, db_error, duration_micros, int, job_from_row, jobs_from_rows, sql_time,
};
use deadpool_postgres::GenericClient;
use errand_core::batch::BatchId;
use errand_core::history::Counter;
use errand_core::{Enqueued, Job, JobId, JobState, NewJob, StoreError};
use jiff::Timestamp;
use serde_json::Value;
use std::collections::HashMap;
use std::time::SystemTime;

/// Inserts `jobs` (all belonging to `batch`, if given) in one statement, so
/// all or none; a job whose kind and unique key match a live job (including
/// an earlier entry of `jobs`), or with `unique_for` a job created within
/// it, is answered with that job instead. Two round trips: draw ids, insert.
pub(crate) async fn insert(
    client: &impl GenericClient,
    jobs: &[NewJob],
    batch: Option<BatchId>,
    now: Timestamp,
) -> Result<(Vec<Enqueued>, Changes), StoreError> {
    let mut changes = Changes::default();
    if jobs.is_empty() {
        return Ok((Vec::new(), changes));
    }
    // Ids are drawn first so each answer can be matched to its input. The
    // sequence is looked up once (a scalar subquery), not once per id: per
    // id that lookup cost 5 µs, five times the draw itself.
    let draw = client
        .prepare_cached(
            "SELECT nextval((SELECT pg_get_serial_sequence('jobs', 'id')::regclass)) \
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
    let unique_for: Vec<Option<i64>> = jobs
        .iter()
        .map(|j| j.unique_for.map(duration_micros))
        .collect();
    let tags: Vec<Value> = jobs.iter().map(|j| Value::from(j.tags.clone())).collect();
    let stmt = client
        .prepare_cached(&format!(
            "INSERT INTO jobs (id, kind, queue, payload, priority, state, max_attempts, run_at, \
                 created_at, timeout_us, unique_key, tags, batch_id) \
             SELECT u.id, u.kind, u.queue, u.payload, u.priority, u.state, u.max_attempts, \
                 u.run_at, $12, u.timeout_us, u.unique_key, \
                 ARRAY(SELECT jsonb_array_elements_text(u.tags)), $13 \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::smallint[], \
                 $6::text[], $7::int[], $8::timestamptz[], $9::bigint[], $10::text[], \
                 $11::jsonb[], $14::bigint[]) WITH ORDINALITY \
                 AS u(id, kind, queue, payload, priority, state, max_attempts, run_at, \
                      timeout_us, unique_key, tags, unique_for_us, ord) \
             WHERE u.unique_for_us IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM jobs r \
                 WHERE r.kind = u.kind AND r.unique_key = u.unique_key \
                   AND r.unique_key IS NOT NULL \
                   AND r.created_at >= $12::timestamptz - u.unique_for_us * interval '1 microsecond') \
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
                &batch,
                &unique_for,
            ],
        )
        .await
        .map_err(db_error)?;
    let mut inserted: HashMap<JobId, Job> = jobs_from_rows(&rows)?
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let duplicates = duplicates(client, jobs, &ids, &inserted).await?;
    let mut answers = Vec::with_capacity(jobs.len());
    for (job, id) in jobs.iter().zip(&ids) {
        if let Some(new) = inserted.remove(id) {
            changes
                .history
                .count(now, &new.kind, &new.queue, Counter::Enqueued);
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
                "insert of a {} job was refused but no job with its unique key exists",
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
/// ones, or else the newest (the one within `unique_for`, or a live one
/// that ended since it refused the insert).
async fn duplicates(
    client: &impl GenericClient,
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
                "SELECT {JOB_COLUMNS} FROM jobs \
                 WHERE kind = $1 AND unique_key = $2 AND unique_key IS NOT NULL \
                 ORDER BY created_at DESC, id DESC LIMIT 1"
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
