//! For benchmarks only (cargo feature `baseline`, used by errand-bench's
//! store-only baseline; nothing in the product uses it): the writer
//! connection exactly as the store opens it, and the text of the
//! statements its claim, finish and job-count upkeep run, so a benchmark
//! can do the same durable work with SQL alone and be compared with the
//! store end to end on equal terms (same schema, same pragmas, same
//! statements). Open it only on a database no [`crate::SqliteStore`] holds.

use crate::Synchronous;
use errand_core::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;

/// Opens `path` as the store's writer connection is opened: WAL,
/// `synchronous`, the same page cache, temp store and fixed plans, and
/// the schema migrated to [`crate::SCHEMA_VERSION`].
pub fn open_writer(
    path: impl Into<PathBuf>,
    synchronous: Synchronous,
) -> Result<Connection, StoreError> {
    crate::open_writer(&path.into(), synchronous, jiff::Timestamp::now())
}

/// The statement a claim selects due jobs with: columns `priority, run_at,
/// id, state, kind` in claim order; named parameters `:queue`, `:now`
/// (unix µs), `:kinds` (JSON array or NULL), `:exclude` (NULL) and `:limit`.
pub fn claim_due_sql() -> String {
    crate::limits::due_sql()
}

/// The statement a claim starts the selected jobs with (ids in the JSON
/// array `:ids`; `:now`, `:lease` in unix µs, `:worker`), returning every
/// column of the started jobs.
pub fn claim_start_sql() -> String {
    crate::limits::start_sql()
}

/// The fenced statement that ends a running attempt (see the store's
/// finish): `?1` id, `?2` fence, `?3` new state, `?4` run_at or NULL, `?5`
/// result JSON or NULL, `?6` error or NULL, `?7` the error's time, `?8` 1
/// to refund the attempt else 0, `?9` finished_at (unix µs).
pub const FINISH_SQL: &str = crate::ops::END_ATTEMPT;

/// The upsert a commit adds its net job-count changes with, one per
/// (queue `?1`, kind `?2`, state `?3`) changed by `?4`.
pub const COUNTS_SQL: &str = crate::counts::UPSERT;
