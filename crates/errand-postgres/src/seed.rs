//! Benchmark seeding (cargo feature `seed`, for errand-bench only): bulk
//! history rows and a long-open transaction. The SQL lives here because
//! only the engine may know its tables; nothing in the product uses it.

use crate::rows::db_error;
use crate::{connect_one, parse_url};
use errand_core::StoreError;

/// A connection of its own to a benchmark database, outside any store's
/// pool, closed on drop (which also ends an open transaction).
#[derive(Debug)]
pub struct Seeder {
    client: tokio_postgres::Client,
}

impl Seeder {
    /// Connects to the database at `url`, which a store has already migrated.
    pub async fn connect(url: &str) -> Result<Seeder, StoreError> {
        let client = connect_one(&parse_url(url)?).await?;
        Ok(Seeder { client })
    }

    /// Adds completed jobs of kind and queue `kind` until the table holds
    /// `total` completed jobs in all (none when it already does), in one
    /// server-side statement, then vacuums and analyzes the table as
    /// autovacuum eventually would. Answers the rows added.
    pub async fn fill_completed(&self, kind: &str, total: u64) -> Result<u64, StoreError> {
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        let added = self
            .client
            .execute(
                "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
                     run_at, created_at, started_at, finished_at) \
                 SELECT $1, $1, jsonb_build_object('n', g), 0, 'completed', 1, 25, \
                     now(), now(), now(), now() \
                 FROM generate_series( \
                     (SELECT count(*) FROM jobs WHERE state = 'completed') + 1, $2::bigint) AS g",
                &[&kind, &total],
            )
            .await
            .map_err(db_error)?;
        self.vacuum().await?;
        Ok(added)
    }

    /// Deletes every job on `queues`, then vacuums and analyzes the table.
    /// Answers the rows deleted.
    pub async fn delete_queues(&self, queues: &[&str]) -> Result<u64, StoreError> {
        let deleted = self
            .client
            .execute("DELETE FROM jobs WHERE queue = ANY($1)", &[&queues])
            .await
            .map_err(db_error)?;
        self.vacuum().await?;
        Ok(deleted)
    }

    /// Opens a transaction that holds a transaction id, so that vacuum
    /// keeps every row version that dies while it is open, until
    /// [`Seeder::end_long_transaction`] or drop.
    pub async fn begin_long_transaction(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute("BEGIN; SELECT txid_current();")
            .await
            .map_err(db_error)
    }

    /// Rolls back the transaction [`Seeder::begin_long_transaction`] opened.
    pub async fn end_long_transaction(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute("ROLLBACK")
            .await
            .map_err(db_error)
    }

    async fn vacuum(&self) -> Result<(), StoreError> {
        self.client
            .batch_execute("VACUUM ANALYZE jobs")
            .await
            .map_err(db_error)
    }
}
