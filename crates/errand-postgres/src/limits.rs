//! Claims that involve kinds with global limits (concurrency, rate).
//!
//! A claim whose request has no limited kind never comes here: it stays
//! the single `errand_claim` statement. Otherwise the claim is one
//! transaction that
//! 1. takes a transaction-scoped advisory lock per limited kind (keys from
//!    `hashtext('errand.limit.' || kind)`, taken in key order so two claims
//!    never wait on each other in a cycle): claims of one limited kind are
//!    serialised across all nodes, so two nodes never both see room for
//!    the last slot, while other kinds and unlimited claims never wait;
//! 2. reads each limited kind's usage in a new statement, hence a snapshot
//!    that includes the previous lock holder's commit: its running jobs
//!    (every node, expired leases included, which errs on the safe side)
//!    and its starts within the rate window, from the `kind_starts` log,
//!    whose entries older than the window it deletes on the way;
//! 3. locks due candidates `FOR UPDATE SKIP LOCKED`: per limited kind at
//!    most its room plus one (the extra row tells whether jobs were held
//!    back), and for the other kinds up to the claim's limit;
//! 4. takes the first `limit` of them in claim order, skipping those of a
//!    kind whose room is used up, marks them running and logs the starts of
//!    rate-limited kinds, in one statement.
//!
//! Candidates not taken are only locked until the commit: they stay
//! available, untouched.

use crate::rows::{
    JOB_COLUMNS, after, db_error, duration_micros, jobs_from_rows, optional_time, sql_time,
    time_column,
};
use deadpool_postgres::{Client, GenericClient};
use errand_core::store::{ClaimRequest, Claimed, Held};
use errand_core::{JobId, KindLimit, StoreError};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};

/// The limited kinds `req` may take (all of `req.limits` when it takes any
/// kind); empty means the claim is unlimited.
pub(crate) fn limited_kinds(req: &ClaimRequest) -> BTreeMap<&str, KindLimit> {
    req.limits
        .iter()
        .filter(|(kind, limit)| {
            !limit.is_unlimited() && (req.kinds.is_empty() || req.kinds.contains(kind))
        })
        .map(|(kind, limit)| (kind.as_str(), *limit))
        .collect()
}

/// How much of its limits one kind is using now.
struct Usage {
    running: u64,
    started_in_window: u64,
    oldest_start: Option<Timestamp>,
}

/// A claim with the given limited kinds (from [`limited_kinds`], not empty).
pub(crate) async fn claim(
    client: &mut Client,
    req: &ClaimRequest,
    limited: &BTreeMap<&str, KindLimit>,
) -> Result<Claimed, StoreError> {
    let kinds: Vec<&str> = limited.keys().copied().collect();
    let tx = client.transaction().await.map_err(db_error)?;
    let lock = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(key) FROM ( \
                 SELECT DISTINCT hashtext('errand.limit.' || kind) AS key \
                 FROM unnest($1::text[]) AS kind ORDER BY key) AS keys",
        )
        .await
        .map_err(db_error)?;
    // Pipelined in one round trip: the server runs the usage query only
    // once the locks are granted, in a snapshot taken then. Its clock is
    // read then too: a claim that waited for the lock must not judge the
    // rate window by an instant older than the claim that held it.
    let locked = async { tx.query(&lock, &[&kinds]).await.map_err(db_error) };
    let (_, (usage, now)) = futures_util::future::try_join(locked, usage(&tx, limited)).await?;
    let room: HashMap<&str, u64> = limited
        .iter()
        .map(|(kind, limit)| {
            let u = &usage[kind];
            (*kind, limit.room(u.running, u.started_in_window))
        })
        .collect();
    let candidates = candidates(&tx, req, &room, now).await?;
    let mut taken: HashMap<&str, u64> = HashMap::new();
    let mut chosen: Vec<JobId> = Vec::new();
    let mut held: Vec<&str> = Vec::new();
    for (id, kind) in &candidates {
        if chosen.len() as u64 >= u64::from(req.limit) {
            break;
        }
        let n = taken.entry(kind.as_str()).or_default();
        if room.get(kind.as_str()).is_some_and(|room| *n >= *room) {
            if !held.contains(&kind.as_str()) {
                held.push(kind.as_str());
            }
            continue;
        }
        *n += 1;
        chosen.push(*id);
    }
    let rated: Vec<&str> = limited
        .iter()
        .filter(|(_, limit)| limit.rate.is_some())
        .map(|(kind, _)| *kind)
        .collect();
    let stmt = tx
        .prepare_cached(&format!(
            "WITH claimed AS ( \
                 UPDATE jobs SET state = 'running', attempt = attempt + 1, started_at = $1, \
                     lease_expires_at = $2, worker = $3 \
                 WHERE id = ANY($4::bigint[]) RETURNING {JOB_COLUMNS}), \
             logged AS ( \
                 INSERT INTO kind_starts (kind, started_at) \
                 SELECT kind, $1 FROM claimed WHERE kind = ANY($5::text[])) \
             SELECT {JOB_COLUMNS} FROM claimed"
        ))
        .await
        .map_err(db_error)?;
    let rows = tx
        .query(
            &stmt,
            &[
                &sql_time(now),
                &sql_time(after(now, req.lease)),
                &req.worker,
                &chosen,
                &rated,
            ],
        )
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let mut jobs = jobs_from_rows(&rows)?;
    jobs.sort_by_key(|j| (j.priority, j.run_at, j.id));
    let held = (!held.is_empty()).then(|| Held {
        retry_at: held
            .iter()
            .filter_map(|kind| {
                let started_now = taken.get(kind).is_some_and(|n| *n > 0);
                rate_frees_at(&limited[kind], &usage[kind], started_now, now)
            })
            .min(),
    });
    Ok(Claimed { jobs, held })
}

/// When the rate window of a held kind lets its next job start, if its
/// rate (not its concurrency) is what held it; `started_now` says whether
/// this claim started some of its jobs (the oldest start is then now when
/// none was in the window).
fn rate_frees_at(
    limit: &KindLimit,
    usage: &Usage,
    started_now: bool,
    now: Timestamp,
) -> Option<Timestamp> {
    let rate = limit.rate?;
    let by_rate = u64::from(rate.count).saturating_sub(usage.started_in_window);
    let by_concurrency = limit
        .concurrency
        .map_or(u64::MAX, |c| u64::from(c).saturating_sub(usage.running));
    if by_rate > by_concurrency {
        return None;
    }
    let oldest = usage
        .oldest_start
        .or(started_now.then_some(now))
        .unwrap_or(now);
    Some(after(oldest, rate.per))
}

/// Each limited kind's usage, and the database's clock when it was read
/// (the claim's `now`); forgets starts older than the rate window.
async fn usage<'k>(
    tx: &impl GenericClient,
    limited: &BTreeMap<&'k str, KindLimit>,
) -> Result<(HashMap<&'k str, Usage>, Timestamp), StoreError> {
    let kinds: Vec<&str> = limited.keys().copied().collect();
    let windows: Vec<Option<i64>> = limited
        .values()
        .map(|l| l.rate.map(|r| duration_micros(r.per)))
        .collect();
    let stmt = tx
        .prepare_cached(
            "WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now), \
             k AS ( \
                 SELECT kind, t.now - per_us * interval '1 microsecond' AS since \
                 FROM unnest($1::text[], $2::bigint[]) AS u(kind, per_us), t), \
             forgotten AS ( \
                 DELETE FROM kind_starts s USING k \
                 WHERE s.kind = k.kind AND s.started_at <= k.since) \
             SELECT k.kind, \
                 (SELECT count(*) FROM jobs j WHERE j.kind = k.kind AND j.state = 'running'), \
                 (SELECT count(*) FROM kind_starts s \
                  WHERE s.kind = k.kind AND s.started_at > k.since), \
                 (SELECT min(s.started_at) FROM kind_starts s \
                  WHERE s.kind = k.kind AND s.started_at > k.since), \
                 (SELECT now FROM t) \
             FROM k",
        )
        .await
        .map_err(db_error)?;
    let rows = tx
        .query(&stmt, &[&kinds, &windows])
        .await
        .map_err(db_error)?;
    let mut usage = HashMap::with_capacity(rows.len());
    let mut clock = None;
    for row in rows {
        clock = Some(time_column(&row, 4)?);
        let kind: String = row.get(0);
        let kind = *limited
            .keys()
            .find(|k| **k == kind)
            .ok_or_else(|| StoreError::Internal(format!("usage of unknown kind {kind}")))?;
        let running: i64 = row.get(1);
        let started: i64 = row.get(2);
        usage.insert(
            kind,
            Usage {
                running: running as u64,
                started_in_window: started as u64,
                oldest_start: optional_time(&row, 3)?,
            },
        );
    }
    let now = clock.ok_or_else(|| StoreError::Internal("no usage for the limited kinds".into()))?;
    Ok((usage, now))
}

/// Due jobs the claim may take, locked, in claim order: up to `room + 1`
/// of each limited kind, and up to `req.limit` of the kinds `req` may take
/// that are not limited.
async fn candidates(
    tx: &impl GenericClient,
    req: &ClaimRequest,
    room: &HashMap<&str, u64>,
    now: Timestamp,
) -> Result<Vec<(JobId, String)>, StoreError> {
    let limit = u64::from(req.limit);
    let limited: Vec<&str> = room.keys().copied().collect();
    // One entry per limited kind, and a NULL kind for all the others
    // (unless the request names only limited kinds).
    let mut kinds: Vec<Option<&str>> = limited.iter().map(|k| Some(*k)).collect();
    let mut takes: Vec<i64> = limited
        .iter()
        .map(|k| room[k].min(limit).saturating_add(1) as i64)
        .collect();
    if req.kinds.is_empty() || req.kinds.iter().any(|k| !room.contains_key(k.as_str())) {
        kinds.push(None);
        takes.push(i64::from(req.limit));
    }
    let stmt = tx
        .prepare_cached(
            "SELECT c.id, c.kind FROM unnest($1::text[], $2::bigint[]) AS k(kind, take) \
             CROSS JOIN LATERAL ( \
                 SELECT j.id, j.kind, j.priority, j.run_at FROM jobs j \
                 WHERE j.state IN ('scheduled', 'available', 'retryable') \
                   AND j.queue = $3 AND j.run_at <= $4 \
                   AND CASE WHEN k.kind IS NULL \
                       THEN j.kind <> ALL($5::text[]) \
                           AND (cardinality($6::text[]) = 0 OR j.kind = ANY($6::text[])) \
                       ELSE j.kind = k.kind END \
                   AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = $3 AND q.paused) \
                 ORDER BY j.priority, j.run_at, j.id \
                 LIMIT k.take \
                 FOR UPDATE OF j SKIP LOCKED) AS c \
             ORDER BY c.priority, c.run_at, c.id",
        )
        .await
        .map_err(db_error)?;
    let rows = tx
        .query(
            &stmt,
            &[
                &kinds,
                &takes,
                &req.queue,
                &sql_time(now),
                &limited,
                &req.kinds,
            ],
        )
        .await
        .map_err(db_error)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
