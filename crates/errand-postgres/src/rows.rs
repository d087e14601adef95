//! Conversions between PostgreSQL rows and errand's types: the job column
//! list, timestamps, filtered listings, and the mapping of database errors
//! to `StoreError`.

use deadpool_postgres::PoolError;
use errand_core::{Job, JobState, Omitted, StoreError};
use jiff::Timestamp;
use std::time::{Duration, SystemTime};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

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

/// Every column of a job, in the order [`job_from_row`] reads them.
pub(crate) const JOB_COLUMNS: &str = job_columns!("payload", "result", "errors");

/// The columns of a listed job ([`listed_job_from_row`]) over a query
/// `page` of whole job rows: payload, result and errors only within the
/// listing cap (`{cap}` in the text), then their sizes as JSON text. The
/// sizes are computed once per row of the page (`OFFSET 0` keeps the
/// planner from inlining them twice); large values never leave the server.
pub(crate) const LIST_COLUMNS: &str = concat!(
    job_columns!(
        "CASE WHEN size.payload <= {cap} THEN page.payload END",
        "CASE WHEN size.result <= {cap} THEN page.result END",
        "CASE WHEN size.errors <= {cap} THEN page.errors END"
    ),
    ", size.payload, size.result, size.errors"
);

/// What [`LIST_COLUMNS`] reads from: `page` with the sizes of its values.
pub(crate) const LIST_SIZES: &str = "LATERAL (SELECT octet_length(page.payload::text)::bigint \
     AS payload, octet_length(page.result::text)::bigint AS result, \
     octet_length(page.errors::text)::bigint AS errors OFFSET 0) size";

/// Terminal states, as an SQL list.
pub(crate) const TERMINAL: &str = "('completed', 'failed', 'cancelled')";

/// A timestamp as a `timestamptz` parameter.
pub(crate) fn sql_time(t: Timestamp) -> SystemTime {
    SystemTime::from(t)
}

/// `t + d`, saturating at the end of time.
pub(crate) fn after(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// `t - d`, saturating at the start of time.
pub(crate) fn before(t: Timestamp, d: Duration) -> Timestamp {
    let d = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
    t.saturating_sub(d).unwrap_or(Timestamp::MIN)
}

/// A duration as stored (microseconds, saturating).
pub(crate) fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A duration as stored read back (negative ones as zero).
pub(crate) fn micros_duration(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// A count or attempt number as an `integer` parameter.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// An `integer` column read back as an attempt or count.
pub(crate) fn uint(n: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Internal(format!("negative {what}: {n}")))
}

fn time(t: SystemTime) -> Result<Timestamp, StoreError> {
    Timestamp::try_from(t).map_err(|e| StoreError::Internal(format!("bad time: {e}")))
}

/// A `timestamptz` column read back.
pub(crate) fn time_column(row: &Row, i: usize) -> Result<Timestamp, StoreError> {
    time(row.try_get(i).map_err(db_error)?)
}

/// A nullable `timestamptz` column read back.
pub(crate) fn optional_time(row: &Row, i: usize) -> Result<Option<Timestamp>, StoreError> {
    row.try_get::<_, Option<SystemTime>>(i)
        .map_err(db_error)?
        .map(time)
        .transpose()
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, StoreError> {
    row.try_get(i).map_err(db_error)
}

/// A job from a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    Ok(claimed_job_from_row(row)?.with_progress(
        column(row, 21)?,
        optional_time(row, 22)?,
        column(row, 23)?,
    ))
}

/// A job from a row with [`JOB_COLUMNS`] but the progress: what a claim
/// returns, since a new claim has no progress yet.
pub(crate) fn claimed_job_from_row(row: &Row) -> Result<Job, StoreError> {
    let errors: Option<serde_json::Value> = column(row, 16)?;
    Ok(Job {
        id: column(row, 0)?,
        kind: column(row, 1)?,
        queue: column(row, 2)?,
        payload: column::<Option<_>>(row, 3)?.unwrap_or_default(),
        priority: column(row, 4)?,
        state: parse_state(column(row, 5)?)?,
        attempt: uint(column(row, 6)?, "attempt")?,
        max_attempts: uint(column(row, 7)?, "max_attempts")?,
        run_at: time_column(row, 8)?,
        created_at: time_column(row, 9)?,
        started_at: optional_time(row, 10)?,
        finished_at: optional_time(row, 11)?,
        timeout: column::<Option<i64>>(row, 12)?.map(micros_duration),
        unique_key: column(row, 13)?,
        tags: column(row, 14)?,
        result: column(row, 15)?,
        errors: errors
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| StoreError::Internal(format!("job errors hold bad JSON: {e}")))?
            .unwrap_or_default(),
        lease_expires_at: optional_time(row, 17)?,
        worker: column(row, 18)?,
        batch_id: column(row, 19)?,
        fence: column(row, 20)?,
        progress: None,
        progress_at: None,
        omitted: Default::default(),
    })
}

/// A job from a row selected with [`LIST_COLUMNS`].
pub(crate) fn listed_job_from_row(row: &Row) -> Result<Job, StoreError> {
    let size = |i| Ok::<_, StoreError>(column::<Option<i64>>(row, i)?.map(|n| n.max(0) as u64));
    Ok(Job {
        omitted: Omitted::over_cap(size(24)?, size(25)?, size(26)?),
        ..job_from_row(row)?
    })
}

/// Every row as a job.
pub(crate) fn jobs_from_rows(rows: &[Row]) -> Result<Vec<Job>, StoreError> {
    rows.iter().map(job_from_row).collect()
}

/// The row `sql` (with the id as `$1`) finds, read by `read`, if any.
pub(crate) async fn by_id<T>(
    client: &deadpool_postgres::Client,
    sql: &str,
    id: i64,
    read: fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
    client
        .query_opt(&stmt, &[&id])
        .await
        .map_err(db_error)?
        .as_ref()
        .map(read)
        .transpose()
}

/// A state as stored.
pub(crate) fn parse_state(state: &str) -> Result<JobState, StoreError> {
    state
        .parse()
        .map_err(|_| StoreError::Internal(format!("unknown job state {state:?}")))
}

/// Lost connections, a server shutting down or refusing connections, and
/// transaction conflicts are worth retrying later (`Unavailable`); anything
/// else is a bug or bad data (`Internal`).
pub(crate) fn db_error(e: tokio_postgres::Error) -> StoreError {
    let transient = match e.code() {
        Some(code) => is_transient(code),
        // No SQLSTATE: the connection itself failed, unless the client
        // could not convert a value (a bug).
        None => {
            let message = e.to_string();
            ![
                "error serializing",
                "error deserializing",
                "invalid column",
                "expected ",
                "query returned",
            ]
            .iter()
            .any(|p| message.starts_with(p))
        }
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Internal(message)
    }
}

fn is_transient(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    // 08: connection exception; 57: operator intervention (shutdown, crash
    // recovery, "cannot connect now"); 53: insufficient resources (too many
    // connections, disk full); 40: serialization failure and deadlock.
    matches!(class, "08" | "57" | "53" | "40") || *code == SqlState::READ_ONLY_SQL_TRANSACTION
}

/// A listing query built from the filters a caller gave: only those appear
/// in the SQL, so each combination gets a plan that uses its index.
#[derive(Default)]
pub(crate) struct Listing<'a> {
    conditions: Vec<String>,
    /// Conditions checked only on the newest rows passing `conditions`.
    scanned: Vec<String>,
    params: Vec<&'a (dyn ToSql + Sync)>,
    /// How many of `params` belong to `conditions` (they come first).
    condition_params: usize,
    /// How rows passing `conditions` are put newest first; `None` is
    /// `id DESC` (see [`Listing::sort_matches`]).
    order: Option<&'static str>,
}

impl<'a> Listing<'a> {
    /// Adds a condition with no parameter, such as `state = 'failed'`: a
    /// literal lets the planner match the partial indexes whatever plan it
    /// caches. Only for values from a closed set, never a caller's text.
    pub(crate) fn constant(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Asks [`Listing::newest_first`] to find the rows passing the
    /// conditions by their indexes and sort them, rather than walk the
    /// table newest first until enough pass: the better plan when few
    /// rows match ([`errand_core::store::ListCounts::sparse`]), which the
    /// planner cannot tell from its statistics.
    pub(crate) fn sort_matches(&mut self) {
        // `id + 0` is the same order, but no index yields it.
        self.order = Some("id + 0 DESC");
    }

    /// True when some conditions are checked only on the newest rows.
    pub(crate) fn scans(&self) -> bool {
        !self.scanned.is_empty()
    }
    /// Adds `condition $n` (e.g. `"kind ="`) with `value` as its parameter.
    pub(crate) fn filter(&mut self, condition: &str, value: &'a (dyn ToSql + Sync)) {
        self.params.push(value);
        self.condition_params += 1;
        self.conditions
            .push(format!("{condition} ${}", self.params.len()));
    }

    /// Adds `column = ANY($n)` with the array `values` as its parameter.
    pub(crate) fn filter_any(&mut self, column: &str, values: &'a (dyn ToSql + Sync)) {
        self.params.push(values);
        self.condition_params += 1;
        self.conditions
            .push(format!("{column} = ANY(${})", self.params.len()));
    }

    /// Adds a scanned condition: `{}` (or `{0}`) in `template` is `value`'s
    /// parameter.
    pub(crate) fn scan(&mut self, template: &str, value: &'a (dyn ToSql + Sync)) {
        self.params.push(value);
        let param = format!("${}", self.params.len());
        self.scanned
            .push(template.replace("{0}", &param).replace("{}", &param));
    }

    fn wher(conditions: &[String]) -> String {
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        }
    }

    /// The newest `limit` rows of `table` (by id) that pass every filter,
    /// as SQL and its parameters; scanned filters are checked on the
    /// newest `scan` rows that pass the others.
    pub(crate) fn newest_first(
        mut self,
        columns: &str,
        table: &str,
        limit: &'a i64,
        scan: u32,
    ) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
        let wher = Self::wher(&self.conditions);
        let order = self.order.unwrap_or("id DESC");
        let source = if self.scanned.is_empty() {
            format!("{table} {wher}")
        } else {
            format!(
                "(SELECT * FROM {table} {wher} ORDER BY {order} LIMIT {scan}) {table} {}",
                Self::wher(&self.scanned)
            )
        };
        let order = if self.scanned.is_empty() {
            order
        } else {
            "id DESC"
        };
        self.params.push(limit);
        let sql = format!(
            "SELECT {columns} FROM {source} ORDER BY {order} LIMIT ${}",
            self.params.len()
        );
        (sql, self.params)
    }

    /// The ids of the newest `limit` rows of `table` passing the indexed
    /// filters, each with whether it passes the scanned ones too, as SQL
    /// and its parameters (a bulk action's chunk).
    pub(crate) fn examine(
        mut self,
        table: &str,
        limit: &'a i64,
    ) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
        let hit = if self.scanned.is_empty() {
            "true".to_string()
        } else {
            self.scanned.join(" AND ")
        };
        self.params.push(limit);
        let sql = format!(
            "SELECT id, ({hit}) FROM {table} {} ORDER BY id DESC LIMIT ${}",
            Self::wher(&self.conditions),
            self.params.len()
        );
        (sql, self.params)
    }

    /// The id of the `scan`-th newest row of `table` passing the indexed
    /// filters, as SQL and its parameters (scanned filters left out: their
    /// parameters come after the indexed ones', so every `filter` call must
    /// precede every `scan` call).
    pub(crate) fn floor(self, table: &str, scan: u32) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
        let n = self.condition_params;
        let sql = format!(
            "SELECT id FROM {table} {} ORDER BY {} LIMIT 1 OFFSET {}",
            Self::wher(&self.conditions),
            self.order.unwrap_or("id DESC"),
            scan.saturating_sub(1)
        );
        let mut params = self.params;
        params.truncate(n);
        (sql, params)
    }
}

/// A pool that cannot hand out a connection in time is unavailable.
pub(crate) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(format!("connection pool: {other}")),
    }
}
