//! Reads (`get`, `list`; `stats` is [`crate::counts`]) on a small pool of read-only connections,
//! run on tokio's blocking threads so they never wait for the writer.

use crate::rows::{
    DUE_STATES, JOB_COLUMNS, LIST_COLUMNS, LIVE, collect_jobs, collect_with, db_error,
    listed_job_from_row, micros,
};
use errand_core::store::{LIST_VALUE_CAP, ListColumn, ListFilter, SCAN_LIMIT};
use errand_core::{Job, JobId, JobState, StoreError};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long a connection waits on a lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// At most `size` read-only connections, opened on first use and reused.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Semaphore,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, size: usize) -> Readers {
        Readers {
            path,
            idle: Arc::default(),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// Runs `query` on an idle reader.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("reader pool closed".into()))?;
        let pooled = self.idle.lock().expect("reader pool poisoned").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let answer = query(&conn);
            idle.lock().expect("reader pool poisoned").push(conn);
            answer
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

fn open_reader(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    // Room for every combination of list filters plus get and stats.
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// One job by id.
pub(crate) fn get(conn: &Connection, id: JobId) -> Result<Option<Job>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .map_err(db_error)?;
    Ok(collect_jobs(stmt.query([id]).map_err(db_error)?)?.pop())
}

/// The SQL conditions and parameters of a listing: the indexed filters
/// (state, kind, queue, cursor) and the scanned ones (tag, time, text).
/// Only the filters given appear in the SQL, so each combination gets a
/// plan that uses its index.
#[derive(Default)]
pub(crate) struct Conditions {
    /// Conditions an index serves (`column op ?n`).
    pub indexed: Vec<String>,
    /// Conditions checked row by row on rows the indexed ones bound.
    pub scanned: Vec<String>,
    /// Every `?n`'s value, in number order.
    pub params: Vec<Value>,
}

impl Conditions {
    /// The conditions of `filter`; listings and bulk actions share them.
    pub(crate) fn of(filter: &ListFilter) -> Conditions {
        let mut c = Conditions::default();
        if let Some(state) = filter.state {
            // The state repeated as text, so the planner sees which partial
            // index serves it: `jobs_state_id` holds every state but running
            // (migration 17), `jobs_running` only running.
            let condition = if state == JobState::Running {
                "(state = ? AND state = 'running')"
            } else {
                "(state = ? AND state <> 'running')"
            };
            c.add(false, condition, Value::Text(state.as_str().into()));
        }
        if let Some(kind) = &filter.kind {
            c.add(false, "kind = ?", Value::Text(kind.clone()));
        }
        if let Some(queue) = &filter.queue {
            c.add(false, "queue = ?", Value::Text(queue.clone()));
        }
        if let Some(before) = filter.before {
            c.add(false, "id < ?", Value::Integer(before));
        }
        if let Some(tag) = &filter.tag {
            let exists = "EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE json_each.value = ?)";
            c.add(true, exists, Value::Text(tag.clone()));
        }
        if let Some(after) = filter.created_after {
            c.add(true, "created_at >= ?", Value::Integer(micros(after)));
        }
        if let Some(before) = filter.created_before {
            c.add(true, "created_at < ?", Value::Integer(micros(before)));
        }
        if let Some(pattern) = filter.text_pattern() {
            let n = c.params.len() + 1;
            c.scanned.push(format!(
                "(payload LIKE ?{n} ESCAPE '\\' OR errors LIKE ?{n} ESCAPE '\\')"
            ));
            c.params.push(Value::Text(pattern));
        }
        c
    }

    /// Adds `condition`, whose one `?` takes `value`.
    fn add(&mut self, scanned: bool, condition: &str, value: Value) {
        self.params.push(value);
        let numbered = condition.replace('?', &format!("?{}", self.params.len()));
        if scanned {
            self.scanned.push(numbered);
        } else {
            self.indexed.push(numbered);
        }
    }

    /// The table a scan of `filter`'s matches in id order reads: running
    /// jobs through their own index (the planner would walk the whole
    /// table in id order instead, not knowing they are few), else `jobs`.
    pub(crate) fn source(filter: &ListFilter) -> &'static str {
        if filter.state == Some(JobState::Running) {
            RUNNING_SOURCE
        } else {
            "jobs"
        }
    }

    fn wher(conditions: &[String]) -> String {
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        }
    }
}

/// Running jobs, few (bounded by the nodes' concurrency) and not in
/// `jobs_state_id`: read through `jobs_running` and sorted.
const RUNNING_SOURCE: &str = "jobs INDEXED BY jobs_running";

/// Jobs matching `filter`, newest first, large values left out. Scanned
/// filters are checked on the newest [`SCAN_LIMIT`] rows that pass the
/// indexed ones.
pub(crate) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
    let counts = crate::counts::for_listing(conn, filter)?;
    if counts.none_match() {
        return Ok(Vec::new());
    }
    // Every (column, id) index walks in id order; without statistics SQLite
    // cannot tell which of several filters is narrowest, the counts can.
    let table = match counts.narrowest() {
        None | Some(ListColumn::State) if filter.state == Some(JobState::Running) => {
            RUNNING_SOURCE.to_string()
        }
        Some(column) => format!("jobs INDEXED BY jobs_{}_id", column.as_str()),
        None => "jobs".to_string(),
    };
    let Conditions {
        indexed,
        scanned,
        mut params,
    } = Conditions::of(filter);
    let indexed = Conditions::wher(&indexed);
    let source = if scanned.is_empty() {
        format!("{table} {indexed}")
    } else {
        format!(
            "(SELECT * FROM {table} {indexed} ORDER BY id DESC LIMIT {SCAN_LIMIT}) AS jobs {}",
            Conditions::wher(&scanned)
        )
    };
    params.push(Value::Integer(filter.limit.into()));
    let columns = LIST_COLUMNS.replace("{cap}", &LIST_VALUE_CAP.to_string());
    let sql = format!(
        "SELECT {columns} FROM {source} ORDER BY id DESC LIMIT ?{}",
        params.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    collect_with(
        stmt.query(rusqlite::params_from_iter(params))
            .map_err(db_error)?,
        listed_job_from_row,
    )
}

/// The lowest id among the newest [`SCAN_LIMIT`] rows passing `filter`'s
/// indexed filters, when there are that many.
pub(crate) fn scan_floor(
    conn: &Connection,
    filter: &ListFilter,
) -> Result<Option<JobId>, StoreError> {
    let Conditions {
        indexed, params, ..
    } = Conditions::of(filter);
    // Only the indexed conditions' parameters, which come first.
    let params = &params[..indexed.len()];
    let sql = format!(
        "SELECT id FROM {} {} ORDER BY id DESC LIMIT 1 OFFSET {}",
        Conditions::source(filter),
        Conditions::wher(&indexed),
        SCAN_LIMIT - 1
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(db_error)?;
    match rows.next().map_err(db_error)? {
        Some(row) => Ok(Some(row.get(0).map_err(db_error)?)),
        None => Ok(None),
    }
}

/// The newest live job of one of `kinds` with unique key `key`: one probe
/// of `jobs_unique_live` per kind (its condition repeated, so it is used).
pub(crate) fn live_by_unique(
    conn: &Connection,
    kinds: &[String],
    key: &str,
) -> Result<Option<Job>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ?1 AND unique_key = ?2 \
             AND {LIVE}"
        ))
        .map_err(db_error)?;
    let mut newest: Option<Job> = None;
    for kind in kinds {
        let found = collect_jobs(stmt.query((kind, key)).map_err(db_error)?)?;
        for job in found {
            if newest.as_ref().is_none_or(|n| job.id > n.id) {
                newest = Some(job);
            }
        }
    }
    Ok(newest)
}

/// Waiting jobs of `kinds` by kind and priority: one walk of the claim
/// index (every waiting job, whatever its kind), grouped.
pub(crate) fn waiting_by_priority(
    conn: &Connection,
    kinds: &[String],
) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT kind, priority, COUNT(*) FROM jobs INDEXED BY jobs_claim \
             WHERE {DUE_STATES} GROUP BY kind, priority"
        ))
        .map_err(db_error)?;
    let mut rows = stmt.query([]).map_err(db_error)?;
    let mut counts: BTreeMap<String, BTreeMap<i16, u64>> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        let kind: String = row.get(0).map_err(db_error)?;
        if !kinds.contains(&kind) {
            continue;
        }
        let priority: i16 = row.get(1).map_err(db_error)?;
        let n: i64 = row.get(2).map_err(db_error)?;
        counts
            .entry(kind)
            .or_default()
            .insert(priority, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}
