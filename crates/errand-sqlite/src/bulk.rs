//! Bulk actions (migration 0014): operations stored with their cursor, and
//! the step that applies one to its next chunk of jobs inside the writer's
//! transaction. Which states an action changes comes from
//! [`BulkAction::applies_to`]; the filter's SQL from
//! [`crate::read::Conditions`], as for listings.

use crate::batches;
use crate::read::Conditions;
use crate::rows::{
    column, db_error, json_column, micros, parse_state, required_time_column, time_column, to_json,
};
use crate::writer::Events;
use errand_core::bulk::{BulkAction, BulkId, BulkOperation, BulkState, BulkTarget, NewBulk};
use errand_core::history::Counter;
use errand_core::outcome::attempt_on_manual_retry;
use errand_core::{JobId, JobState, StoreError};
use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row};

const COLUMNS: &str = "id, action, target, actor, state, matched, changed, cursor, created_at, \
     updated_at, finished_at, error";

/// Stores a new running operation, its cursor above every job now.
pub(crate) fn create(
    conn: &Connection,
    bulk: NewBulk,
    now: Timestamp,
) -> Result<BulkOperation, StoreError> {
    let highest: Option<JobId> = conn
        .query_row("SELECT MAX(id) FROM jobs", [], |r| r.get(0))
        .map_err(db_error)?;
    let cursor = bulk.first_cursor(highest);
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO bulk_operations (action, target, actor, state, cursor, created_at, \
                 updated_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?5) RETURNING {COLUMNS}"
        ))
        .map_err(db_error)?;
    let op = stmt
        .query_row(
            (
                bulk.action.as_str(),
                to_json(&bulk.target),
                &bulk.actor,
                cursor,
                micros(now),
            ),
            |row| Ok(from_row(row)),
        )
        .map_err(db_error)??;
    // In the writer's transaction: the operation and its entry commit together.
    crate::audit::record(conn, &bulk.audit_entry(op.id), now)?;
    Ok(op)
}

/// One operation by id.
pub(crate) fn get(conn: &Connection, id: BulkId) -> Result<Option<BulkOperation>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM bulk_operations WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], |row| Ok(from_row(row))).optional())
    .map_err(db_error)?
    .transpose()
}

/// Operations newest first, in `state` if given.
pub(crate) fn list(
    conn: &Connection,
    state: Option<BulkState>,
    limit: u32,
) -> Result<Vec<BulkOperation>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM bulk_operations WHERE ?1 IS NULL OR state = ?1 \
             ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(db_error)?;
    let rows = stmt
        .query_map((state.map(BulkState::as_str), limit), |row| {
            Ok(from_row(row))
        })
        .map_err(db_error)?;
    rows.map(|r| r.map_err(db_error)?).collect()
}

/// Marks a running operation failed.
pub(crate) fn fail(
    conn: &Connection,
    id: BulkId,
    error: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE bulk_operations SET state = 'failed', error = ?2, updated_at = ?3, \
             finished_at = ?3 WHERE id = ?1 AND state = 'running'",
    )
    .and_then(|mut s| s.execute((id, error, micros(now))))
    .map_err(db_error)?;
    Ok(())
}

/// One target job of a chunk, as the action needs it.
struct Target {
    id: JobId,
    state: JobState,
    attempt: u32,
    max_attempts: u32,
    queue: String,
    kind: String,
}

/// Applies operation `id` to its next `chunk` target jobs and advances it.
pub(crate) fn step(
    conn: &Connection,
    events: &mut Events,
    id: BulkId,
    chunk: u32,
    now: Timestamp,
) -> Result<BulkOperation, StoreError> {
    let mut op = get(conn, id)?
        .ok_or_else(|| StoreError::Internal(format!("bulk operation {id} not found")))?;
    if op.state != BulkState::Running {
        return Ok(op);
    }
    let (targets, examined, lowest) = next_chunk(conn, &op, chunk)?;
    let matched = match op.target {
        BulkTarget::Ids(_) => examined,
        BulkTarget::Filter(_) => targets.len() as u64,
    };
    let mut changed = 0;
    for target in targets.iter().filter(|t| op.action.applies_to(t.state)) {
        if apply(conn, events, op.action, target, now)? {
            changed += 1;
        }
    }
    batches::settle(conn, events, now)?;
    op.advance(examined, matched, lowest, changed, chunk, now);
    conn.prepare_cached(
        "UPDATE bulk_operations SET state = ?2, matched = ?3, changed = ?4, cursor = ?5, \
             updated_at = ?6, finished_at = ?7 WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.execute((
            id,
            op.state.as_str(),
            count(op.matched),
            count(op.changed),
            op.cursor,
            micros(now),
            op.finished_at.map(micros),
        ))
    })
    .map_err(db_error)?;
    Ok(op)
}

/// The next chunk of `op`'s target below its cursor, highest id first;
/// how many jobs it examined (for ids: ids, found or not; for a filter:
/// rows passing its indexed conditions, of which the scanned ones pick the
/// targets) and the lowest id among them.
fn next_chunk(
    conn: &Connection,
    op: &BulkOperation,
    chunk: u32,
) -> Result<(Vec<Target>, u64, Option<JobId>), StoreError> {
    let (source, mut wher, hit, mut params, slice) = match &op.target {
        BulkTarget::Filter(filter) => {
            let Conditions {
                indexed,
                scanned,
                params,
            } = Conditions::of(filter);
            let hit = if scanned.is_empty() {
                "1".to_string()
            } else {
                scanned.join(" AND ")
            };
            (Conditions::source(filter), indexed, hit, params, None)
        }
        BulkTarget::Ids(ids) => {
            // The ids are sorted highest first: the chunk is a slice of them.
            let slice: Vec<JobId> = ids
                .iter()
                .copied()
                .filter(|i| *i < op.cursor)
                .take(chunk as usize)
                .collect();
            let params = vec![Value::Text(to_json(&slice))];
            let condition = "id IN (SELECT value FROM json_each(?1))".to_string();
            (
                "jobs",
                vec![condition],
                "1".to_string(),
                params,
                Some(slice),
            )
        }
    };
    params.push(Value::Integer(op.cursor));
    wher.push(format!("id < ?{}", params.len()));
    params.push(Value::Integer(chunk.into()));
    let sql = format!(
        "SELECT id, state, attempt, max_attempts, queue, kind, ({hit}) FROM {source} WHERE {} \
         ORDER BY id DESC LIMIT ?{}",
        wher.join(" AND "),
        params.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(db_error)?;
    let mut targets = Vec::new();
    let (mut examined, mut lowest) = (0, None);
    while let Some(row) = rows.next().map_err(db_error)? {
        let id: JobId = column(row, 0)?;
        examined += 1;
        lowest = Some(id);
        if !column::<bool>(row, 6)? {
            continue;
        }
        targets.push(Target {
            id,
            state: parse_state(&column::<String>(row, 1)?)?,
            attempt: column(row, 2)?,
            max_attempts: column(row, 3)?,
            queue: column(row, 4)?,
            kind: column(row, 5)?,
        });
    }
    Ok(match slice {
        Some(slice) => (targets, slice.len() as u64, slice.last().copied()),
        None => (targets, examined, lowest),
    })
}

/// The SQL list of the states `action` applies to.
fn states_sql(action: BulkAction) -> String {
    let names: Vec<String> = action
        .states()
        .into_iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!("({})", names.join(", "))
}

/// Applies `action` to one job (still in a state it applies to); true when
/// it changed the job. A retry that would give the kind a second live job
/// with the same unique key is skipped (`OR IGNORE`), as a single retry
/// would be refused.
fn apply(
    conn: &Connection,
    events: &mut Events,
    action: BulkAction,
    job: &Target,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let states = states_sql(action);
    let at = now;
    let now = micros(now);
    let changed = match action {
        BulkAction::Retry => {
            let attempt = attempt_on_manual_retry(job.attempt, job.max_attempts);
            conn.prepare_cached(&format!(
                "UPDATE OR IGNORE jobs SET state = 'available', run_at = ?2, finished_at = NULL, \
                     attempt = ?3, lease_expires_at = NULL, worker = NULL \
                 WHERE id = ?1 AND state IN {states}"
            ))
            .and_then(|mut s| s.execute((job.id, now, attempt)))
        }
        BulkAction::Cancel => conn
            .prepare_cached(&format!(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?2, \
                     lease_expires_at = NULL, worker = NULL \
                 WHERE id = ?1 AND state IN {states}"
            ))
            .and_then(|mut s| s.execute((job.id, now))),
        BulkAction::Delete => conn
            .prepare_cached(&format!(
                "DELETE FROM jobs WHERE id = ?1 AND state IN {states}"
            ))
            .and_then(|mut s| s.execute([job.id])),
        BulkAction::RunNow => conn
            .prepare_cached(&format!(
                "UPDATE jobs SET state = 'available', run_at = ?2 \
                 WHERE id = ?1 AND state IN {states}"
            ))
            .and_then(|mut s| s.execute((job.id, now))),
    }
    .map_err(db_error)?;
    if changed == 0 {
        return Ok(false);
    }
    match action.to_state() {
        Some(to) => events.counts.moved(&job.queue, &job.kind, job.state, to),
        None => events.counts.add(&job.queue, &job.kind, job.state, -1),
    }
    match action {
        BulkAction::Retry | BulkAction::RunNow => {
            events.enqueued.insert(job.queue.clone());
        }
        BulkAction::Cancel => {
            events.finished.push(job.id);
            events
                .history
                .count(at, &job.kind, &job.queue, Counter::Cancelled);
        }
        BulkAction::Delete => {}
    }
    Ok(true)
}

/// Deletes ended operations that finished before `cutoff` (microseconds).
pub(crate) fn prune(conn: &Connection, cutoff: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM bulk_operations WHERE finished_at < ?1")
        .and_then(|mut s| s.execute([cutoff]))
        .map_err(db_error)?;
    Ok(())
}

/// A count as stored (saturating: no count comes near `i64::MAX`).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An operation from a row selected with [`COLUMNS`].
fn from_row(row: &Row) -> Result<BulkOperation, StoreError> {
    let action: String = column(row, 1)?;
    let state: String = column(row, 4)?;
    Ok(BulkOperation {
        id: column(row, 0)?,
        action: action.parse().map_err(StoreError::Internal)?,
        target: json_column(row, 2)?,
        actor: column(row, 3)?,
        state: state.parse().map_err(StoreError::Internal)?,
        matched: column::<i64>(row, 5)?.max(0) as u64,
        changed: column::<i64>(row, 6)?.max(0) as u64,
        cursor: column(row, 7)?,
        created_at: required_time_column(row, 8)?,
        updated_at: required_time_column(row, 9)?,
        finished_at: time_column(row, 10)?,
        error: column(row, 11)?,
    })
}
