//! Upgrading a schema v6 file to v7 (the fence apart from the attempt,
//! docs/decisions/0015): a job running under a lease taken before the
//! upgrade keeps it, its attempt and `max_attempts` read as stored, and
//! the first claim after the upgrade gets a larger fence.

use errand_core::store::{ClaimRequest, Finish};
use errand_core::{Backoff, JobState, Lease, Outcome, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::time::Duration;

/// Schema v6, as the migrations before the fence left it.
const V6: [&str; 6] = [
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_node_breakers.sql"),
    include_str!("../migrations/0004_queues.sql"),
    include_str!("../migrations/0005_events_batches_schedules_limits.sql"),
    include_str!("../migrations/0006_kind_start_buckets.sql"),
];

#[tokio::test]
async fn a_v6_file_upgrades_and_its_running_job_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.db");
    let far = jiff::Timestamp::now().as_microsecond() + 3_600_000_000;
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, sql) in (1_i64..).zip(V6) {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [version])
                .unwrap();
        }
        // Its third claim, after one refund raised max_attempts from 3 to 4.
        conn.execute(
            "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
             run_at, created_at, started_at, lease_expires_at, worker) \
             VALUES ('old', 'default', 'null', 0, 'running', 3, 4, 0, 0, 0, ?1, 'w')",
            [far],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        errand_sqlite::SCHEMA_VERSION
    );
    assert_eq!(
        store
            .stats()
            .await
            .unwrap()
            .of_kind("old", JobState::Running),
        1,
        "the stored counts start from the jobs there (migration 15)"
    );
    let old = store.get(1).await.unwrap().unwrap();
    assert_eq!(
        (old.attempt, old.max_attempts),
        (3, 4),
        "a raised budget is kept"
    );
    let lease = Lease { id: 1, fence: 3 };
    assert_eq!(old.lease(), lease, "the fence starts at the attempt");
    let stale = Lease { id: 1, fence: 2 };
    let lost = store
        .heartbeat(&[lease, stale], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lost, [stale], "the lease taken before the upgrade holds");
    let snooze = |lease| Finish {
        lease,
        outcome: Outcome::Snooze(Duration::ZERO),
        backoff: Backoff::default(),
    };
    assert_eq!(
        store
            .finish(vec![snooze(stale), snooze(lease)])
            .await
            .unwrap(),
        [false, true]
    );
    let snoozed = store.get(1).await.unwrap().unwrap();
    assert_eq!(
        (snoozed.state, snoozed.attempt, snoozed.max_attempts),
        (JobState::Scheduled, 2, 4)
    );
    let req = ClaimRequest {
        queue: "default".into(),
        kinds: vec![],
        limit: 1,
        worker: "w".into(),
        lease: Duration::from_secs(60),
        limits: BTreeMap::new(),
    };
    let again = store.claim(&req).await.unwrap().jobs;
    assert_eq!((again[0].attempt, again[0].fence), (3, 4));
}
