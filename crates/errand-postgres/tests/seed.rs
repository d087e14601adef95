//! The benchmark seeding helper (feature `seed`): history rows top the
//! completed jobs up to a total, a long transaction holds back vacuum, and
//! deleting the seeded queues leaves the other jobs alone.

mod common;

use common::admin;
use errand_core::{JobState, NewJob, Store};
use errand_postgres::seed::Seeder;
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;

/// Completed jobs of `kind` as the store counts them.
async fn completed(store: &PostgresStore, kind: &str) -> u64 {
    let stats = store.stats().await.expect("stats");
    stats
        .kinds
        .get(kind)
        .and_then(|states| states.get(&JobState::Completed))
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn seeding_fills_history_holds_a_transaction_and_deletes_queues() {
    let url = TestPg::shared().fresh_database();
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    store
        .enqueue(vec![NewJob::new("keep", serde_json::json!(1))])
        .await
        .expect("enqueue");
    let seeder = Seeder::connect(&url).await.expect("seeder");

    assert_eq!(seeder.fill_completed("history", 100).await.unwrap(), 100);
    assert_eq!(completed(&store, "history").await, 100);
    // A total already reached adds nothing; a larger one tops up.
    assert_eq!(seeder.fill_completed("history", 60).await.unwrap(), 0);
    assert_eq!(seeder.fill_completed("history", 250).await.unwrap(), 150);
    assert_eq!(completed(&store, "history").await, 250);

    let long = Seeder::connect(&url).await.expect("second seeder");
    long.begin_long_transaction().await.expect("begin");
    let watcher = admin(&url).await;
    let open: i64 = watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(open, 1, "the long transaction holds a transaction id");
    long.end_long_transaction().await.expect("rollback");

    assert_eq!(seeder.delete_queues(&["history"]).await.unwrap(), 250);
    assert_eq!(completed(&store, "history").await, 0);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total.values().sum::<u64>(), 1, "the other job stays");
}
