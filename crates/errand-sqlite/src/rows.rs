//! Conversions between SQLite rows and errand's types: the job column list,
//! time as unix microseconds, JSON columns, and error mapping.

use errand_core::{Job, JobState, Omitted, StoreError};
use jiff::Timestamp;
use rusqlite::types::FromSql;
use rusqlite::{ErrorCode, Row};
use std::time::Duration;

/// A job's columns in the order [`job_from_row`] reads them, with the
/// expressions given for payload, result and errors.
macro_rules! job_columns {
    ($payload:literal, $result:literal, $errors:literal) => {
        concat!(
            "id, kind, queue, ",
            $payload,
            ", priority, state, attempt, max_attempts, run_at, created_at, started_at, \
             finished_at, timeout_us, unique_key, tags, ",
            $result,
            ", ",
            $errors,
            ", lease_expires_at, worker, batch_id, fence, progress, progress_at, progress_fence"
        )
    };
}

/// True for a job the claim takes once it is due (scheduled, available or
/// retryable): the condition of the partial index `jobs_claim`, which a
/// query repeats word for word to use it. Comparisons joined by OR rather
/// than `state IN (…)`, which SQLite tests by building a temporary b-tree
/// on every execution of a statement that changes a job's state (migration
/// 0017, docs/decisions/0035).
pub(crate) const DUE_STATES: &str =
    "(state = 'scheduled' OR state = 'available' OR state = 'retryable')";

/// True for a job that has not ended: the state condition of the partial
/// indexes `jobs_unique_live` and `jobs_batch_live`, written without `NOT
/// IN` for the same reason as [`DUE_STATES`].
pub(crate) const LIVE: &str =
    "(state <> 'completed' AND state <> 'failed' AND state <> 'cancelled')";

/// Every column of a job, in the order [`job_from_row`] reads them.
pub(crate) const JOB_COLUMNS: &str = job_columns!("payload", "result", "errors");

/// The columns of a listed job ([`listed_job_from_row`]): payload, result
/// and errors only within the listing cap (`{cap}` in the text), then their
/// sizes in bytes, so a large value never reaches errand's memory.
pub(crate) const LIST_COLUMNS: &str = concat!(
    job_columns!(
        "CASE WHEN octet_length(payload) <= {cap} THEN payload END",
        "CASE WHEN octet_length(result) <= {cap} THEN result END",
        "CASE WHEN octet_length(errors) <= {cap} THEN errors END"
    ),
    ", octet_length(payload), octet_length(result), octet_length(errors)"
);

/// A timestamp as stored.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Internal(format!("bad time {us}: {e}")))
}

/// `t + d`, saturating at the end of time.
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// A duration as stored (microseconds, saturating).
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A stored timeout (microseconds) as a duration.
pub(crate) fn timeout_from_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// A value as JSON text.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("JSON values always serialize")
}

/// Column `i`, typed.
pub(crate) fn column<T: FromSql>(row: &Row, i: usize) -> Result<T, StoreError> {
    row.get(i).map_err(db_error)
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, i: usize) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("column {i} holds bad JSON: {e}")))
}

/// A JSON text column, parsed.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row,
    i: usize,
) -> Result<T, StoreError> {
    parse_json(required_text(row, i)?, i)
}

/// The error for a NULL where the schema never stores one.
fn null_in(i: usize) -> StoreError {
    StoreError::Internal(format!("column {i} is NULL"))
}

/// A text column that is never NULL, borrowed from the row.
fn required_text<'r>(row: &'r Row, i: usize) -> Result<&'r str, StoreError> {
    text_column(row, i)?.ok_or_else(|| null_in(i))
}

/// A nullable text column, borrowed from the row: the claim decodes every
/// column of each job it starts on the writer thread, and reading its
/// JSON and state columns as owned strings cost an allocation each.
fn text_column<'r>(row: &'r Row, i: usize) -> Result<Option<&'r str>, StoreError> {
    row.get_ref(i)
        .map_err(db_error)?
        .as_str_or_null()
        .map_err(|e| StoreError::Internal(format!("column {i}: {e}")))
}

/// A nullable timestamp column.
pub(crate) fn time_column(row: &Row, i: usize) -> Result<Option<Timestamp>, StoreError> {
    column::<Option<i64>>(row, i)?.map(from_micros).transpose()
}

/// A timestamp column that is never NULL.
pub(crate) fn required_time_column(row: &Row, i: usize) -> Result<Timestamp, StoreError> {
    time_column(row, i)?.ok_or_else(|| null_in(i))
}

/// A job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    Ok(Job {
        id: column(row, 0)?,
        kind: column(row, 1)?,
        queue: column(row, 2)?,
        payload: optional_json(row, 3)?.unwrap_or_default(),
        priority: column(row, 4)?,
        state: parse_state(required_text(row, 5)?)?,
        attempt: column(row, 6)?,
        max_attempts: column(row, 7)?,
        run_at: required_time_column(row, 8)?,
        created_at: required_time_column(row, 9)?,
        started_at: time_column(row, 10)?,
        finished_at: time_column(row, 11)?,
        timeout: column::<Option<i64>>(row, 12)?.map(timeout_from_micros),
        unique_key: column(row, 13)?,
        tags: json_column(row, 14)?,
        result: optional_json(row, 15)?,
        errors: optional_json(row, 16)?.unwrap_or_default(),
        lease_expires_at: time_column(row, 17)?,
        worker: column(row, 18)?,
        batch_id: column(row, 19)?,
        fence: column(row, 20)?,
        progress: None,
        progress_at: None,
        omitted: Default::default(),
    }
    .with_progress(
        optional_json(row, 21)?,
        time_column(row, 22)?,
        column(row, 23)?,
    ))
}

/// A job from a row selected with [`LIST_COLUMNS`].
pub(crate) fn listed_job_from_row(row: &Row) -> Result<Job, StoreError> {
    let size = |i| Ok::<_, StoreError>(column::<Option<i64>>(row, i)?.map(|n| n.max(0) as u64));
    Ok(Job {
        omitted: Omitted::over_cap(size(24)?, size(25)?, size(26)?),
        ..job_from_row(row)?
    })
}

/// A nullable JSON text column, parsed.
fn optional_json<T: serde::de::DeserializeOwned>(
    row: &Row,
    i: usize,
) -> Result<Option<T>, StoreError> {
    text_column(row, i)?
        .map(|text| parse_json(text, i))
        .transpose()
}

/// A state as stored.
pub(crate) fn parse_state(state: &str) -> Result<JobState, StoreError> {
    state
        .parse()
        .map_err(|_| StoreError::Internal(format!("unknown job state {state:?}")))
}

/// Every row of a statement's answer as jobs.
pub(crate) fn collect_jobs(rows: rusqlite::Rows<'_>) -> Result<Vec<Job>, StoreError> {
    collect_with(rows, job_from_row)
}

/// Every row of a statement's answer, read by `read`.
pub(crate) fn collect_with(
    mut rows: rusqlite::Rows<'_>,
    read: fn(&Row) -> Result<Job, StoreError>,
) -> Result<Vec<Job>, StoreError> {
    let mut jobs = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        jobs.push(read(row)?);
    }
    Ok(jobs)
}

/// Busy, I/O and full-disk errors are worth retrying later; anything else
/// is a bug or corrupt data.
pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}
