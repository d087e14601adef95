//! Claims that cover kinds with global limits (concurrency, rate).
//!
//! SQLite has one writer, so a claim sees every other claim's starts and
//! needs no lock: the room of each limited kind is computed and used in
//! the same transaction. Room for concurrency counts the kind's running
//! jobs (expired leases not yet rescued included) through the partial index
//! `jobs_running`; room for a rate sums the kind's `kind_starts` rows
//! inside the sliding window, after deleting the rows that left it. The
//! log is bucketed by fixed slices of a hundredth of the window (migration
//! 0006), so that sum reads at most about a hundred rows per claim. The
//! unlimited kinds of the request take one query as in the plain claim,
//! each limited kind one query capped at its room, and the union is cut to
//! the request's limit in claim order. Requests without a limited kind
//! never come here.

use crate::ops::{START, due_jobs, in_claim_order};
use crate::rows::{
    JOB_COLUMNS, after, collect_jobs, db_error, duration_micros, from_micros, micros, parse_state,
    to_json,
};
use crate::writer::Events;
use errand_core::store::{CLAIM_ORDER, ClaimRequest, Claimed, Held};
use errand_core::{JobId, JobState, KindLimit, Rate, StoreError};
use jiff::Timestamp;
use rusqlite::{Connection, named_params};

/// A due job found for the claim: its claim order (the columns of
/// [`CLAIM_ORDER`]), which limited kind (index into the limited list) it
/// counts against, if any, then its state and kind (for the job counts).
pub(crate) type Candidate = (i16, i64, JobId, Option<usize>, String, String);

/// Takes up to `req.limit` due jobs without letting any kind in `limited`
/// exceed its limits; says when a limit held due jobs back.
pub(crate) fn claim(
    conn: &Connection,
    events: &mut Events,
    req: &ClaimRequest,
    limited: &[(&str, KindLimit)],
    now: Timestamp,
) -> Result<Claimed, StoreError> {
    let names: Vec<&str> = limited.iter().map(|(kind, _)| *kind).collect();
    let mut candidates = Vec::new();
    let unlimited: Vec<&String> = req
        .kinds
        .iter()
        .filter(|k| !names.contains(&k.as_str()))
        .collect();
    if req.kinds.is_empty() || !unlimited.is_empty() {
        let kinds = (!req.kinds.is_empty()).then(|| to_json(&unlimited));
        candidates.extend(due(
            conn,
            req,
            now,
            kinds,
            Some(to_json(&names)),
            req.limit.into(),
            None,
        )?);
    }
    let mut usages = Vec::with_capacity(limited.len());
    for (i, (kind, limit)) in limited.iter().enumerate() {
        let usage = Usage::of(conn, kind, limit, now)?;
        let room = usage.room(limit);
        let take = room.min(req.limit.into());
        // One more than it may take, to tell whether the limit held any back.
        let mut found = due(
            conn,
            req,
            now,
            Some(to_json(&[kind])),
            None,
            take + 1,
            Some(i),
        )?;
        let more = found.len() as u64 > take;
        found.truncate(take as usize);
        candidates.extend(found);
        usages.push((usage, room, more));
    }
    candidates.sort_unstable();
    candidates.truncate(req.limit as usize);
    let jobs = start(conn, events, req, now, &candidates)?;
    let mut held: Option<Held> = None;
    for (i, ((kind, limit), (usage, room, more))) in limited.iter().zip(usages).enumerate() {
        let taken = candidates.iter().filter(|c| c.3 == Some(i)).count() as u64;
        if let Some(rate) = limit.rate.filter(|_| taken > 0) {
            record_starts(conn, kind, rate, taken, now)?;
        }
        // Held back by its own limit, not by the request's.
        if more && taken == room {
            let retry_at = usage.rate_frees_at(limit, now)?;
            let earlier = held.and_then(|h| h.retry_at);
            held = Some(Held {
                retry_at: match (earlier, retry_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            });
        }
    }
    Ok(Claimed {
        jobs: in_claim_order(jobs),
        held,
    })
}

/// Due jobs of the request's queue in claim order, at most `limit`: of the
/// JSON array `kinds` (any when NULL), none of the JSON array `exclude`;
/// each tagged with `tag`.
pub(crate) fn due(
    conn: &Connection,
    req: &ClaimRequest,
    now: Timestamp,
    kinds: Option<String>,
    exclude: Option<String>,
    limit: u64,
    tag: Option<usize>,
) -> Result<Vec<Candidate>, StoreError> {
    let mut stmt = conn.prepare_cached(&due_sql()).map_err(db_error)?;
    stmt.query_map(
        named_params! {
            ":queue": &req.queue,
            ":now": micros(now),
            ":kinds": kinds,
            ":exclude": exclude,
            ":limit": i64::try_from(limit).unwrap_or(i64::MAX),
        },
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, tag, r.get(3)?, r.get(4)?)),
    )
    .and_then(|rows| rows.collect())
    .map_err(db_error)
}

/// The statement [`due`] runs: the claim order's columns, state and kind
/// of the due jobs (named parameters `:queue`, `:now`, `:kinds`,
/// `:exclude`, `:limit`).
pub(crate) fn due_sql() -> String {
    due_jobs(
        &format!("{CLAIM_ORDER}, state, kind"),
        "AND (:exclude IS NULL OR kind NOT IN (SELECT value FROM json_each(:exclude)))",
    )
}

/// The statement [`start`] runs: the jobs whose ids are in the JSON array
/// `:ids` made running (named parameters `:now`, `:lease`, `:worker`),
/// returning their columns.
pub(crate) fn start_sql() -> String {
    format!("{START} WHERE id IN (SELECT value FROM json_each(:ids)) RETURNING {JOB_COLUMNS}")
}

/// Makes the chosen candidates running under the request's lease.
pub(crate) fn start(
    conn: &Connection,
    events: &mut Events,
    req: &ClaimRequest,
    now: Timestamp,
    chosen: &[Candidate],
) -> Result<Vec<errand_core::Job>, StoreError> {
    if chosen.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<JobId> = chosen.iter().map(|c| c.2).collect();
    let mut stmt = conn.prepare_cached(&start_sql()).map_err(db_error)?;
    let jobs = collect_jobs(
        stmt.query(named_params! {
            ":now": micros(now),
            ":lease": micros(after(now, req.lease)),
            ":worker": &req.worker,
            ":ids": to_json(&ids),
        })
        .map_err(db_error)?,
    )?;
    // Chosen in this transaction, so every one was started.
    for (_, _, _, _, state, kind) in chosen {
        events
            .counts
            .moved(&req.queue, kind, parse_state(state)?, JobState::Running);
    }
    Ok(jobs)
}

/// Logs `n` starts of `kind` now, for its rate window: adds them to the
/// row of the slice `now` falls in, which keeps the latest start.
fn record_starts(
    conn: &Connection,
    kind: &str,
    rate: Rate,
    n: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let now = micros(now);
    conn.prepare_cached(
        "INSERT INTO kind_starts (kind, bucket, started_at, starts) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (kind, bucket) DO UPDATE SET starts = starts + excluded.starts, \
         started_at = max(started_at, excluded.started_at)",
    )
    .and_then(|mut stmt| stmt.execute((kind, slice_end(rate, now), now, n as i64)))
    .map(drop)
    .map_err(db_error)
}

/// The end (exclusive, unix microseconds) of the slice of `rate`'s window
/// that `at` falls in ([`Rate::slice`]), so a busy kind's log holds about
/// [`Rate::SLICES_PER_WINDOW`] rows per window.
fn slice_end(rate: Rate, at: i64) -> i64 {
    let slice = duration_micros(rate.slice());
    (at.div_euclid(slice) + 1).saturating_mul(slice)
}

/// What a limited kind is using right now.
struct Usage {
    /// Its running jobs on every node (only counted with a concurrency limit).
    running: u64,
    /// Its starts within the rate window (only counted with a rate).
    started: u64,
    /// The oldest latest start of the slices counted (unix microseconds):
    /// the window frees that slice's starts when it passes it.
    oldest_start: Option<i64>,
}

impl Usage {
    /// Reads the kind's usage, first dropping starts that left its window.
    fn of(
        conn: &Connection,
        kind: &str,
        limit: &KindLimit,
        now: Timestamp,
    ) -> Result<Usage, StoreError> {
        let running = match limit.max_running {
            Some(_) => conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM jobs INDEXED BY jobs_running \
                     WHERE state = 'running' AND kind = ?1",
                )
                .and_then(|mut stmt| stmt.query_row([kind], |r| r.get::<_, i64>(0)))
                .map_err(db_error)? as u64,
            None => 0,
        };
        let Some(rate) = limit.rate else {
            return Ok(Usage {
                running,
                started: 0,
                oldest_start: None,
            });
        };
        let since = micros(now).saturating_sub(duration_micros(rate.per));
        // A slice ending by the window's start holds no start inside it.
        conn.prepare_cached("DELETE FROM kind_starts WHERE kind = ?1 AND bucket <= ?2")
            .and_then(|mut stmt| stmt.execute((kind, since)))
            .map_err(db_error)?;
        // A slice counts whole while its latest start is inside the window:
        // its earlier starts may have left it, which only errs on the safe
        // side, by at most one slice.
        let (started, oldest_start) = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(starts), 0), MIN(started_at) FROM kind_starts \
                 WHERE kind = ?1 AND bucket > ?2 AND started_at > ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row((kind, since), |r| Ok((r.get::<_, i64>(0)?, r.get(1)?)))
            })
            .map_err(db_error)?;
        Ok(Usage {
            running,
            started: started as u64,
            oldest_start,
        })
    }

    /// How many more jobs of the kind may start now.
    fn room(&self, limit: &KindLimit) -> u64 {
        limit.room(self.running, self.started)
    }

    /// When the rate window frees the next start, if the rate (rather than
    /// concurrency) is what ran out: the oldest start in the window (now,
    /// if this claim made the first) plus the window.
    fn rate_frees_at(
        &self,
        limit: &KindLimit,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let Some(rate) = limit.rate else {
            return Ok(None);
        };
        let by_rate = KindLimit {
            rate: limit.rate,
            max_running: None,
        }
        .room(0, self.started);
        let by_concurrency = KindLimit {
            max_running: limit.max_running,
            rate: None,
        }
        .room(self.running, 0);
        if by_rate > by_concurrency {
            return Ok(None);
        }
        let oldest = self
            .oldest_start
            .map(from_micros)
            .transpose()?
            .unwrap_or(now);
        Ok(Some(after(oldest, rate.per)))
    }
}
