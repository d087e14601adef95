//! Versioned schema migrations, embedded in the binary and applied in
//! order, each in its own transaction, recorded in `schema_migrations`.

use crate::rows::{db_error, micros};
use errand_core::StoreError;
use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior};

/// Every migration, by version; append, never edit.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_jobs.sql")),
    (2, include_str!("../migrations/0002_nodes.sql")),
    (3, include_str!("../migrations/0003_node_breakers.sql")),
    (4, include_str!("../migrations/0004_queues.sql")),
    (
        5,
        include_str!("../migrations/0005_events_batches_schedules_limits.sql"),
    ),
    (6, include_str!("../migrations/0006_kind_start_buckets.sql")),
    (7, include_str!("../migrations/0007_fence.sql")),
    (8, include_str!("../migrations/0008_tokens.sql")),
    (9, include_str!("../migrations/0009_audit.sql")),
    (10, include_str!("../migrations/0010_sessions.sql")),
    (11, include_str!("../migrations/0011_history.sql")),
    (12, include_str!("../migrations/0012_progress.sql")),
    (13, include_str!("../migrations/0013_placeholder_merge.sql")),
    (14, include_str!("../migrations/0014_bulk_operations.sql")),
    (15, include_str!("../migrations/0015_job_counts.sql")),
    (16, include_str!("../migrations/0016_remote_workers.sql")),
    (
        17,
        include_str!("../migrations/0017_cheaper_job_indexes.sql"),
    ),
];

/// The newest schema this build knows.
pub const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The highest applied version (0 for a new database).
pub(crate) fn applied_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map_err(db_error)
}

/// Applies every migration newer than the database's version.
pub(crate) fn migrate(conn: &mut Connection, now: Timestamp) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(db_error)?;
    let current = applied_version(conn)?;
    if current > LATEST {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this errand ({LATEST}); upgrade errand"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Internal(format!("migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, micros(now)),
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
