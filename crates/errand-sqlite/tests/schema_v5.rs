//! SQLite-only behaviour of schema v5 (events, batches, schedule ticks,
//! kind limits): upgrading a v4 file that holds jobs, refusing bad batches
//! without a trace, the rate start log staying as small as its window (one
//! row per slice of it), and
//! two last batch jobs ended in one group commit.

use errand_core::store::{ClaimRequest, Finish};
use errand_core::{Backoff, Clock, KindLimit, NewBatch, NewJob, Outcome, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Schema v4, as the migrations that came before this issue left it.
const V4: [&str; 4] = [
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_node_breakers.sql"),
    include_str!("../migrations/0004_queues.sql"),
];

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

fn claim_req(kind: &str, limit: u32, limits: BTreeMap<String, KindLimit>) -> ClaimRequest {
    ClaimRequest {
        queue: "default".into(),
        kinds: vec![kind.into()],
        limit,
        worker: "w".into(),
        lease: Duration::from_secs(60),
        limits,
    }
}

fn success(job: &errand_core::Job) -> Finish {
    Finish {
        lease: job.lease(),
        outcome: Outcome::Success(None),
        backoff: Backoff::default(),
    }
}

/// One number from the database file, read on a separate connection.
fn count(path: &Path, sql: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_v4_file_with_jobs_upgrades_and_its_jobs_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, sql) in (1_i64..).zip(V4) {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .unwrap();
        }
        conn.execute(
            "INSERT INTO jobs (kind, queue, payload, priority, state, max_attempts, run_at, \
             created_at) VALUES ('old', 'default', '{\"n\":1}', 0, 'available', 3, 0, 0)",
            [],
        )
        .unwrap();
    }
    let store = open(&path).await;
    assert_eq!(store.schema_version().await.unwrap(), 11);
    let old = store.get(1).await.unwrap().expect("the v4 job is kept");
    assert_eq!((old.kind.as_str(), old.batch_id), ("old", None));
    assert_eq!(old.payload, json!({"n": 1}));
    let limits = BTreeMap::from([(
        "old".to_string(),
        KindLimit {
            max_running: Some(1),
            rate: None,
        },
    )]);
    let claimed = store.claim(&claim_req("old", 5, limits)).await.unwrap();
    assert_eq!(claimed.jobs.len(), 1, "the old job runs under a limit too");
    assert_eq!(
        store.finish(vec![success(&claimed.jobs[0])]).await.unwrap(),
        [true]
    );
}

#[tokio::test]
async fn bad_batches_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.db");
    let store = open(&path).await;
    let keyed = NewJob {
        unique_key: Some("k".into()),
        ..NewJob::new("part", json!(null))
    };
    for (what, jobs) in [
        ("empty", vec![]),
        ("unique key", vec![NewJob::new("part", json!(null)), keyed]),
    ] {
        let err = store
            .create_batch(NewBatch {
                jobs,
                on_complete: Some(NewJob::new("done", json!(null))),
            })
            .await
            .expect_err(what);
        assert!(err.to_string().contains("batch"), "{what}: {err}");
    }
    assert_eq!(count(&path, "SELECT COUNT(*) FROM batches"), 0);
    assert_eq!(count(&path, "SELECT COUNT(*) FROM jobs"), 0);
    let ok = store
        .create_batch(NewBatch {
            jobs: vec![NewJob::new("part", json!(null))],
            on_complete: None,
        })
        .await
        .unwrap();
    assert_eq!(ok.id, 1, "refused batches used no id that shows");
}

/// Limits giving `kind` only a rate.
fn rated(kind: &str, rate: &str) -> BTreeMap<String, KindLimit> {
    let limit = KindLimit {
        max_running: None,
        rate: Some(rate.parse().unwrap()),
    };
    BTreeMap::from([(kind.to_string(), limit)])
}

#[tokio::test]
async fn the_rate_start_log_forgets_starts_outside_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.db");
    let clock = Clock::manual(jiff::Timestamp::now());
    let store = SqliteStore::open_with_clock(&path, SqliteOptions::default(), clock.clone())
        .await
        .expect("open store");
    store
        .enqueue((0..6).map(|i| NewJob::new("mail", json!(i))).collect())
        .await
        .unwrap();
    let limits = rated("mail", "100/s");
    let first = store
        .claim(&claim_req("mail", 3, limits.clone()))
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 3);
    clock.advance(Duration::from_millis(1100));
    let second = store.claim(&claim_req("mail", 2, limits)).await.unwrap();
    assert_eq!(second.jobs.len(), 2);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM kind_starts"),
        1,
        "the first claim's starts left the 1 s window and were deleted"
    );
    assert_eq!(count(&path, "SELECT SUM(starts) FROM kind_starts"), 2);
}

#[tokio::test]
async fn two_last_jobs_ended_in_one_finish_enqueue_one_on_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("errand.db")).await;
    let batch = store
        .create_batch(NewBatch {
            jobs: vec![NewJob::new("part", json!(1)), NewJob::new("part", json!(2))],
            on_complete: Some(NewJob::new("done", json!({"sum": true}))),
        })
        .await
        .unwrap();
    let claimed = store
        .claim(&claim_req("part", 2, BTreeMap::new()))
        .await
        .unwrap()
        .jobs;
    assert_eq!(claimed.len(), 2);
    let applied = store
        .finish(claimed.iter().map(success).collect())
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    let done = store.batch(batch.id).await.unwrap().unwrap();
    assert!(done.finished_at.is_some());
    let on_complete = done.on_complete_job.expect("on-complete job enqueued");
    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.kinds["done"].values().sum::<u64>(),
        1,
        "exactly one on-complete job"
    );
    let job = store.get(on_complete).await.unwrap().unwrap();
    assert_eq!(job.payload["batch"]["completed"], 2);
    assert_eq!(job.payload["payload"], json!({"sum": true}));
}

#[tokio::test]
async fn claims_within_one_slice_of_the_window_share_one_start_log_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.db");
    let store = open(&path).await;
    store
        .enqueue((0..5).map(|i| NewJob::new("mail", json!(i))).collect())
        .await
        .unwrap();
    // A day's window is cut into slices of 864 s: both claims fall in one.
    let limits = rated("mail", "4/d");
    let first = store
        .claim(&claim_req("mail", 3, limits.clone()))
        .await
        .unwrap();
    assert_eq!(first.jobs.len(), 3);
    let second = store.claim(&claim_req("mail", 3, limits)).await.unwrap();
    assert_eq!(second.jobs.len(), 1, "the rate leaves room for one more");
    let held = second.held.expect("the rate held the fifth job back");
    let retry_at = held.retry_at.expect("the rate names when it frees a start");
    let first_start = first.jobs[0].started_at.unwrap();
    let late = retry_at.duration_since(first_start) - jiff::SignedDuration::from_hours(24);
    assert!(
        late >= jiff::SignedDuration::ZERO && late < jiff::SignedDuration::from_secs(864),
        "retry_at {retry_at} is within one slice after the first start {first_start} + 1 d"
    );
    assert_eq!(count(&path, "SELECT COUNT(*) FROM kind_starts"), 1);
    assert_eq!(count(&path, "SELECT SUM(starts) FROM kind_starts"), 4);
}
