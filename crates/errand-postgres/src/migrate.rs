//! Versioned schema migrations, embedded in the binary. All pending ones
//! are applied in one transaction that first takes a transaction-scoped
//! advisory lock, so nodes migrating at once queue up: one applies, the
//! others then find nothing left to do.

use crate::rows::db_error;
use errand_core::StoreError;
use tokio_postgres::{Client, GenericClient};

/// Every migration, by version; append, never edit.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_jobs.sql")),
    (2, include_str!("../migrations/0002_nodes.sql")),
    (3, include_str!("../migrations/0003_claim_function.sql")),
    (4, include_str!("../migrations/0004_node_breakers.sql")),
    (
        5,
        include_str!("../migrations/0005_slimmer_job_indexes.sql"),
    ),
    (6, include_str!("../migrations/0006_queues.sql")),
    (
        7,
        include_str!("../migrations/0007_events_batches_schedules_limits.sql"),
    ),
    (
        8,
        include_str!("../migrations/0008_limited_claim_function.sql"),
    ),
    (9, include_str!("../migrations/0009_kind_start_buckets.sql")),
    (10, include_str!("../migrations/0010_fence.sql")),
    (11, include_str!("../migrations/0011_tokens.sql")),
    (12, include_str!("../migrations/0012_audit.sql")),
    (13, include_str!("../migrations/0013_sessions.sql")),
    (14, include_str!("../migrations/0014_history.sql")),
    (15, include_str!("../migrations/0015_progress.sql")),
    (16, include_str!("../migrations/0016_placeholder_merge.sql")),
    (17, include_str!("../migrations/0017_bulk_operations.sql")),
    (18, include_str!("../migrations/0018_job_counts.sql")),
    (19, include_str!("../migrations/0019_remote_workers.sql")),
    (20, include_str!("../migrations/0020_shared_limit_lock.sql")),
    (21, include_str!("../migrations/0021_claim_kept_plan.sql")),
    (22, include_str!("../migrations/0022_one_limit_log.sql")),
    (
        23,
        include_str!("../migrations/0023_claim_by_tid_end_by_key.sql"),
    ),
];

/// The newest schema this build knows.
pub const LATEST: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Arbitrary key of the advisory lock that serialises migrations ("errand" in ASCII).
const MIGRATION_LOCK: i64 = 0x6572_7261_6e64;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
     version    integer     PRIMARY KEY,
     applied_at timestamptz NOT NULL DEFAULT now()
 )";

/// The highest applied version (0 for a new database).
pub(crate) async fn applied_version(client: &impl GenericClient) -> Result<u32, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(db_error)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db_error)?
        .get(0);
    Ok(version as u32)
}

/// Applies every migration newer than the database's version; answers the
/// version the database has afterwards.
pub(crate) async fn migrate(client: &mut Client) -> Result<u32, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    tx.batch_execute(CREATE_TABLE).await.map_err(db_error)?;
    let current = applied_version(&tx).await?;
    if current > LATEST {
        return Err(StoreError::Internal(format!(
            "database schema version {current} is newer than this errand ({LATEST}); upgrade errand"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(|e| match db_error(e) {
            StoreError::Internal(e) => {
                StoreError::Internal(format!("migration {version} failed: {e}"))
            }
            unavailable => unavailable,
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(*version as i32)],
        )
        .await
        .map_err(db_error)?;
        tracing::info!(version, "applied schema migration");
    }
    tx.commit().await.map_err(db_error)?;
    Ok(current.max(LATEST))
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::store::CLAIM_ORDER;

    /// The claim functions (the newest migration that defines the limited
    /// claim defines both) spell the claim order in SQL, with or without a
    /// table alias: it must be core's.
    #[test]
    fn the_claim_functions_order_by_cores_claim_order() {
        let (_, latest) = MIGRATIONS
            .iter()
            .rev()
            .find(|(_, sql)| sql.contains("CREATE FUNCTION errand_claim_limited("))
            .expect("a migration defines the limited claim");
        let orders: Vec<&str> = latest
            .match_indices("ORDER BY ")
            .map(|(i, _)| &latest[i + "ORDER BY ".len()..])
            .collect();
        assert_eq!(orders.len(), 4, "the claims order their jobs");
        for order in orders {
            let unaliased = order.get(..CLAIM_ORDER.len()) == Some(CLAIM_ORDER);
            let alias = &order[..2];
            let aliased = format!(
                "{alias}{}",
                CLAIM_ORDER.replace(", ", &format!(", {alias}"))
            );
            assert!(
                unaliased || (alias.ends_with('.') && order.starts_with(&aliased)),
                "{}",
                &order[..order.len().min(40)]
            );
        }
    }
}
