//! Upgrading a schema v9 database to v10 (the fence apart from the
//! attempt, docs/decisions/0015): a job running under a lease taken before
//! the upgrade keeps it, its attempt and `max_attempts` read as stored, and
//! both claims (plain and limited) give the next claim a larger fence.

mod common;

use common::{admin, claim_req, ending};
use errand_core::{JobState, KindLimit, Lease, Outcome, Store};
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;
use std::collections::BTreeMap;
use std::time::Duration;

/// Schema v9, as the migrations before the fence left it.
const V9: [&str; 9] = [
    include_str!("../migrations/0001_jobs.sql"),
    include_str!("../migrations/0002_nodes.sql"),
    include_str!("../migrations/0003_claim_function.sql"),
    include_str!("../migrations/0004_node_breakers.sql"),
    include_str!("../migrations/0005_slimmer_job_indexes.sql"),
    include_str!("../migrations/0006_queues.sql"),
    include_str!("../migrations/0007_events_batches_schedules_limits.sql"),
    include_str!("../migrations/0008_limited_claim_function.sql"),
    include_str!("../migrations/0009_kind_start_buckets.sql"),
];

#[tokio::test(flavor = "multi_thread")]
async fn a_v9_database_upgrades_and_its_running_job_keeps_its_lease() {
    let url = TestPg::shared().fresh_database();
    let db = admin(&url).await;
    db.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (version, sql) in (1_i32..).zip(V9) {
        db.batch_execute(sql).await.unwrap();
        db.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .unwrap();
    }
    // Its third claim, after one refund raised max_attempts from 3 to 4.
    let id: i64 = db
        .query_one(
            "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
             run_at, created_at, started_at, lease_expires_at, worker) \
             VALUES ('old', 'default', 'null', 0, 'running', 3, 4, now(), now(), now(), \
             now() + interval '1 hour', 'w') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        errand_postgres::SCHEMA_VERSION
    );
    assert_eq!(
        store
            .stats()
            .await
            .unwrap()
            .of_kind("old", JobState::Running),
        1,
        "the stored counts start from the jobs there (migration 18)"
    );
    let old = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (old.attempt, old.max_attempts),
        (3, 4),
        "a raised budget is kept"
    );
    let lease = Lease { id, fence: 3 };
    assert_eq!(old.lease(), lease, "the fence starts at the attempt");
    let stale = Lease { id, fence: 2 };
    let lost = store
        .heartbeat(&[lease, stale], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lost, [stale], "the lease taken before the upgrade holds");
    let snooze = |lease| errand_core::store::Finish {
        lease,
        outcome: Outcome::Snooze(Duration::ZERO),
        backoff: errand_core::Backoff::default(),
    };
    assert_eq!(
        store
            .finish(vec![snooze(stale), snooze(lease)])
            .await
            .unwrap(),
        [false, true]
    );
    let snoozed = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (snoozed.state, snoozed.attempt, snoozed.max_attempts),
        (JobState::Scheduled, 2, 4)
    );
    let again = store.claim(&claim_req("default", 1)).await.unwrap().jobs;
    assert_eq!((again[0].id, again[0].attempt, again[0].fence), (id, 3, 4));
    assert!(
        store
            .finish(vec![ending(&again[0], Outcome::Handback)])
            .await
            .unwrap()[0]
    );

    // The limited claim, made again by the migration, raises the fence too.
    let limits = BTreeMap::from([(
        "old".to_string(),
        KindLimit {
            max_running: Some(1),
            rate: Some("10/s".parse().unwrap()),
        },
    )]);
    let req = errand_core::store::ClaimRequest {
        kinds: vec!["old".into()],
        limits,
        ..claim_req("default", 1)
    };
    let limited = store.claim(&req).await.unwrap().jobs;
    assert_eq!(
        (limited[0].id, limited[0].attempt, limited[0].fence),
        (id, 3, 5)
    );
}
