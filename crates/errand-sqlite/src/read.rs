//! Reads (`get`, `list`, `stats`) on a small pool of read-only connections,
//! run on tokio's blocking threads so they never wait for the writer.

use crate::rows::{
    JOB_COLUMNS, LIST_COLUMNS, collect_jobs, collect_with, db_error, listed_job_from_row,
    parse_state,
};
use errand_core::store::{LIST_VALUE_CAP, ListFilter, Stats};
use errand_core::{Job, JobId, StoreError};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
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

/// Jobs matching `filter`, newest first, large values left out. Only the
/// filters given appear in the SQL, so each combination gets a plan that
/// uses its index.
pub(crate) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
    let mut params: Vec<Value> = Vec::new();
    let mut conditions = filter_conditions(filter, &mut params);
    if let Some(before) = filter.before {
        params.push(Value::Integer(before));
        conditions.push(format!("id < ?{}", params.len()));
    }
    let wher = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    params.push(Value::Integer(filter.limit.into()));
    let columns = LIST_COLUMNS.replace("{cap}", &LIST_VALUE_CAP.to_string());
    let sql = format!(
        "SELECT {columns} FROM jobs {wher} ORDER BY id DESC LIMIT ?{}",
        params.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    collect_with(
        stmt.query(rusqlite::params_from_iter(params))
            .map_err(db_error)?,
        listed_job_from_row,
    )
}

/// The SQL conditions of `filter` apart from its page (`before`, `limit`):
/// each `column op ?n`, its parameter appended to `params`. Listings and
/// bulk actions select jobs with this one function.
pub(crate) fn filter_conditions(filter: &ListFilter, params: &mut Vec<Value>) -> Vec<String> {
    let mut conditions = Vec::new();
    let mut add = |condition: &str, value: Value| {
        params.push(value);
        conditions.push(format!("{condition} ?{}", params.len()));
    };
    if let Some(state) = filter.state {
        add("state =", Value::Text(state.as_str().into()));
    }
    if let Some(kind) = &filter.kind {
        add("kind =", Value::Text(kind.clone()));
    }
    if let Some(queue) = &filter.queue {
        add("queue =", Value::Text(queue.clone()));
    }
    conditions
}

/// Job counts by queue, kind and state.
pub(crate) fn stats(conn: &Connection) -> Result<Stats, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT queue, kind, state, COUNT(*) FROM jobs GROUP BY queue, kind, state")
        .map_err(db_error)?;
    let mut rows = stmt.query([]).map_err(db_error)?;
    let mut stats = Stats::default();
    while let Some(row) = rows.next().map_err(db_error)? {
        let queue: String = row.get(0).map_err(db_error)?;
        let kind: String = row.get(1).map_err(db_error)?;
        let state: String = row.get(2).map_err(db_error)?;
        let n: i64 = row.get(3).map_err(db_error)?;
        stats.add(&queue, &kind, parse_state(&state)?, n as u64);
    }
    Ok(stats)
}
