//! Stored job counts per (queue, kind, state), so the overview,
//! `/v1/stats`, `/v1/queues` and `/metrics` read a few dozen rows instead
//! of counting the jobs table (0.8 s with a million jobs).
//!
//! Each operation that inserts, moves or deletes jobs notes the change in
//! its [`crate::writer::Events`] ([`Changes::moved`] and friends); the
//! writer adds the batch's net changes to `job_counts` just before COMMIT,
//! so the counts are exact and a commit touches one row per (queue, kind,
//! state) it changed rather than one per job. Triggers would have counted
//! every path without help, but a trigger gives each INSERT a statement
//! journal: they cost a third of batch-enqueue throughput.
//! docs/decisions/0028-stored-job-counts.md.

use crate::rows::{db_error, parse_state};
use errand_core::store::{ListCounts, ListFilter, Stats};
use errand_core::{JobState, StoreError};
use rusqlite::Connection;

/// Net changes to the job counts not written yet. Few distinct keys per
/// commit, so a list searched in order beats a map that would allocate a
/// key per call.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    changes: Vec<Change>,
}

#[derive(Debug)]
struct Change {
    queue: String,
    kind: String,
    state: JobState,
    delta: i64,
}

/// Adds `?4` to the count of queue `?1`, kind `?2`, state `?3`.
pub(crate) const UPSERT: &str = "INSERT INTO job_counts (queue, kind, state, n) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (queue, kind, state) DO UPDATE SET n = n + excluded.n";

impl Changes {
    /// `n` jobs of `queue` and `kind` entered (`n` > 0) or left `state`.
    pub(crate) fn add(&mut self, queue: &str, kind: &str, state: JobState, n: i64) {
        match self
            .changes
            .iter_mut()
            .find(|c| c.state == state && c.kind == kind && c.queue == queue)
        {
            Some(c) => c.delta += n,
            None => self.changes.push(Change {
                queue: queue.to_owned(),
                kind: kind.to_owned(),
                state,
                delta: n,
            }),
        }
    }

    /// A job moved from `from` to `to` (nothing when they are the same).
    pub(crate) fn moved(&mut self, queue: &str, kind: &str, from: JobState, to: JobState) {
        if from != to {
            self.add(queue, kind, from, -1);
            self.add(queue, kind, to, 1);
        }
    }

    /// Takes `other`'s changes too.
    pub(crate) fn absorb(&mut self, other: Changes) {
        for c in other.changes {
            self.add(&c.queue, &c.kind, c.state, c.delta);
        }
    }

    /// Adds the changes to `job_counts` and forgets them; call it inside
    /// the transaction that made them, before COMMIT.
    pub(crate) fn write(&mut self, conn: &Connection) -> Result<(), StoreError> {
        let changes = std::mem::take(&mut self.changes);
        if changes.iter().all(|c| c.delta == 0) {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(UPSERT).map_err(db_error)?;
        for c in changes.iter().filter(|c| c.delta != 0) {
            stmt.execute((&c.queue, &c.kind, c.state.as_str(), c.delta))
                .map_err(db_error)?;
        }
        Ok(())
    }
}

/// Job counts by queue, kind and state.
pub(crate) fn read(conn: &Connection) -> Result<Stats, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT queue, kind, state, n FROM job_counts WHERE n > 0")
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

/// The counts a listing of `filter` is planned by.
pub(crate) fn for_listing(
    conn: &Connection,
    filter: &ListFilter,
) -> Result<ListCounts, StoreError> {
    let state = filter.state.map(|s| s.as_str());
    let row: [i64; 5] = conn
        .prepare_cached(
            "SELECT \
                 COALESCE(SUM(CASE WHEN (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2) \
                     AND (?3 IS NULL OR queue = ?3) THEN n END), 0), \
                 COALESCE(SUM(CASE WHEN state = ?1 THEN n END), 0), \
                 COALESCE(SUM(CASE WHEN kind = ?2 THEN n END), 0), \
                 COALESCE(SUM(CASE WHEN queue = ?3 THEN n END), 0), \
                 COALESCE(SUM(n), 0) \
             FROM job_counts",
        )
        .and_then(|mut st| {
            st.query_row((state, &filter.kind, &filter.queue), |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
            })
        })
        .map_err(db_error)?;
    Ok(ListCounts::from_sums(filter, row))
}

/// Counts every job afresh: for seeds, which write the jobs table directly.
#[cfg(feature = "seed")]
pub(crate) fn recount(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "DELETE FROM job_counts;
         INSERT INTO job_counts (queue, kind, state, n)
             SELECT queue, kind, state, COUNT(*) FROM jobs GROUP BY queue, kind, state;",
    )
    .map_err(db_error)
}

/// Forgets counts that reached zero (a queue or kind no longer used).
pub(crate) fn forget_zeros(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM job_counts WHERE n = 0")
        .and_then(|mut st| st.execute([]))
        .map(drop)
        .map_err(db_error)
}
