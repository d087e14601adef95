//! Claims that involve kinds with global limits (concurrency, rate).
//!
//! A claim whose request has no limited kind never comes here: it stays
//! the single `errand_claim` statement. Otherwise the claim is the single
//! `errand_claim_limited` statement (migration 0008, whose comments hold
//! the reasoning), one round trip. Claims of one limited kind are
//! serialised across all nodes by a transaction-scoped advisory lock per
//! kind, so two nodes never both see room for the last slot, while other
//! kinds and unlimited claims never wait. Usage is the kind's running jobs
//! (every node, expired leases included, which errs on the safe side) and
//! its starts within the rate window, from the `kind_starts` log: one row
//! per kind and fixed slice of its window (`Rate::slice`, migration 0010),
//! with the slice's number of starts and latest start, so the window sums
//! about a hundred rows whatever the claim rate; a slice counts whole
//! while its latest start is inside the window, which errs on the safe side.
//!
//! Far from every limit (more room than all transactions the server can
//! hold could take under it, migration 0020), a claim takes the kinds'
//! locks shared instead, so such claims commit side by side; otherwise:
//! with room for the whole claim, it starts its jobs as `errand_claim` does and
//! only then takes the lock, to check the limits and log its starts; if
//! another claim got there first the statement fails with `EL001`, which
//! rolls all of it back, and the claim is made again the locked way (lock,
//! usage, then at most each kind's room), migration 0009. Either way the
//! lock lasts until the commit that immediately follows the statement, and
//! jobs not taken stay available, untouched.

use crate::rows::{claimed_job_from_row, db_error, duration_micros, optional_time, sql_time};
use deadpool_postgres::Client;
use errand_core::store::{ClaimRequest, Claimed, Held, claim_key};
use errand_core::{KindLimit, StoreError};
use jiff::Timestamp;
use tokio_postgres::error::SqlState;

/// The claim statement: the job's columns in [`JOB_COLUMNS`] order, but
/// the progress a new claim has not got (all
/// NULL on the last row when a limited kind was held), then `held` and
/// `retry_at`.
///
/// [`JOB_COLUMNS`]: crate::rows::JOB_COLUMNS
const CLAIM: &str = "SELECT * FROM errand_claim_limited($1, $2, $3, $4, $5::text[], $6, \
     $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12)";

/// What [`CLAIM`] fails with when, far from the limits, it started its jobs
/// first and then found another claim had taken the room while it waited
/// for the lock: nothing of it is left, and the claim is made again locked.
const BEATEN_TO_THE_ROOM: &str = "EL001";

/// Times a claim that PostgreSQL ended to break a deadlock is made again
/// before the error is returned.
const MAX_DEADLOCK_RETRIES: u32 = 3;

/// Where `held` and `retry_at` are in a row of [`CLAIM`].
const HELD_COLUMN: usize = 21;

/// A claim with the given limited kinds (from
/// [`ClaimRequest::limited_kinds`], not empty).
pub(crate) async fn claim(
    client: &Client,
    req: &ClaimRequest,
    limited: &[(&str, KindLimit)],
    now: Timestamp,
) -> Result<Claimed, StoreError> {
    let kinds: Vec<&str> = limited.iter().map(|(kind, _)| *kind).collect();
    let concurrency: Vec<Option<i64>> = limited
        .iter()
        .map(|(_, l)| l.max_running.map(i64::from))
        .collect();
    let rate_count: Vec<Option<i64>> = limited
        .iter()
        .map(|(_, l)| l.rate.map(|r| i64::from(r.count)))
        .collect();
    let rate_per: Vec<Option<i64>> = limited
        .iter()
        .map(|(_, l)| l.rate.map(|r| duration_micros(r.per)))
        .collect();
    // The log's slices are errand's rule (Rate::slice), not the database's.
    let rate_slice: Vec<Option<i64>> = limited
        .iter()
        .map(|(_, l)| l.rate.map(|r| duration_micros(r.slice())))
        .collect();
    let stmt = client.prepare_cached(CLAIM).await.map_err(db_error)?;
    let lease = duration_micros(req.lease);
    let limit = i64::from(req.limit);
    let now = sql_time(now);
    let (stmt, kinds, concurrency, rate_count, rate_per, rate_slice) = (
        &stmt,
        &kinds,
        &concurrency,
        &rate_count,
        &rate_per,
        &rate_slice,
    );
    let claim = |locked: bool| async move {
        client
            .query(
                stmt,
                &[
                    &now,
                    &lease,
                    &req.worker,
                    &req.queue,
                    &req.kinds,
                    &limit,
                    kinds,
                    concurrency,
                    rate_count,
                    rate_per,
                    rate_slice,
                    &locked,
                ],
            )
            .await
    };
    let mut locked = false;
    let mut deadlocks = 0;
    let rows = loop {
        match claim(locked).await {
            Err(e) if !locked && e.code().map(SqlState::code) == Some(BEATEN_TO_THE_ROOM) => {
                locked = true;
            }
            // A claim holding a kind's lock can wait for a row another
            // claim has started (FOR UPDATE ... SKIP LOCKED still waits
            // for the transaction behind a row's newer version), while that
            // claim waits for the lock; PostgreSQL ends one of them, which
            // left nothing behind and can simply claim again.
            Err(e)
                if deadlocks < MAX_DEADLOCK_RETRIES
                    && e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                deadlocks += 1;
                tracing::debug!(
                    deadlocks,
                    "limited claim chosen as a deadlock victim; claiming again"
                );
            }
            other => break other,
        }
    }
    .map_err(db_error)?;
    let mut jobs = Vec::with_capacity(rows.len());
    let mut held = None;
    for row in &rows {
        if row.get::<_, bool>(HELD_COLUMN) {
            held = Some(Held {
                retry_at: optional_time(row, HELD_COLUMN + 1)?,
            });
        } else {
            jobs.push(claimed_job_from_row(row)?);
        }
    }
    // RETURNING does not promise any order.
    jobs.sort_by_key(claim_key);
    Ok(Claimed { jobs, held })
}
