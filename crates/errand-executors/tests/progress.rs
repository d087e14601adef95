//! Progress from real executors reaches the store coalesced: a command and
//! a pool worker each report 100 values in a burst; the store sees about
//! one write per second per job (counted by an SQLite trigger on the real
//! database file) and keeps the last value.

mod command_support;
mod common;
mod pool_support;

use command_support::sh;
use common::*;
use errand_core::{Job, JobState};
use errand_executors::command::CommandExecutor;
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_worker::Executor;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// How many values each job reports.
const REPORTS: u32 = 100;

/// Adds to the database at `db` a table that a trigger fills with one row
/// (job id, unix milliseconds) per row update that stores a progress.
fn count_progress_writes(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(DEADLINE).unwrap();
    conn.execute_batch(
        "CREATE TABLE progress_writes (job INTEGER NOT NULL, at_ms INTEGER NOT NULL);
         CREATE TRIGGER progress_written AFTER UPDATE OF progress ON jobs
         WHEN NEW.progress IS NOT NULL
         BEGIN
             INSERT INTO progress_writes VALUES
                 (NEW.id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
         END;",
    )
    .unwrap();
}

/// When each progress write of `job` happened (unix milliseconds).
fn writes_of(db: &Path, job: i64) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT at_ms FROM progress_writes WHERE job = ?1 ORDER BY at_ms")
        .unwrap();
    stmt.query_map([job], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Runs one job of `kind` through `executor` on a store whose progress
/// writes are counted; checks the job kept its last report and that the
/// writes were coalesced.
async fn burst(kind: &str, executor: Arc<dyn Executor>, payload: serde_json::Value) {
    let (store, dir) = store().await;
    let db = dir.path().join("errand.db");
    count_progress_writes(&db);
    let running = run_executor(&store, kind, hour_backoff(None), executor, 1);
    let id = enqueue(&store, kind, payload).await;
    let job: Job = wait_state(&store, id, JobState::Completed).await;
    running.stop().await;

    assert_eq!(
        job.progress,
        Some(json!({"step": REPORTS})),
        "{kind}: the last report is kept"
    );
    assert!(job.progress_at.is_some());
    let writes = writes_of(&db, id);
    let span_s = (writes.last().unwrap() - writes.first().unwrap()) as f64 / 1000.0;
    // One write per elapsed second at most, plus the last value written
    // before the finish, plus one for a span that straddles a tick.
    let allowed = 2 + span_s.floor() as usize;
    println!(
        "{kind}: {REPORTS} reports, {} progress writes over {span_s:.3}s",
        writes.len()
    );
    assert!(
        (1..=allowed).contains(&writes.len()),
        "{kind}: {} writes over {span_s:.3}s for {REPORTS} reports (at most {allowed})",
        writes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_burst_of_progress_is_coalesced_and_its_last_value_kept() {
    let script = format!(
        r#"i=1; while [ $i -le {REPORTS} ]; do echo "{{\"errand\":\"progress\",\"progress\":{{\"step\":$i}}}}"; i=$((i+1)); done; echo done"#
    );
    let executor = CommandExecutor::new(sh(&script)).unwrap();
    burst("cmd", Arc::new(executor), json!(null)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_workers_burst_of_progress_is_coalesced_and_its_last_value_kept() {
    let tag = pool_support::tag("progress", pool_support::Lang::Python);
    let mut config = PoolConfig::new(pool_support::worker_command(
        pool_support::Lang::Python,
        &tag,
    ));
    config.processes = 1;
    let pool = Arc::new(PoolExecutor::new(pool_support::KIND, config).unwrap());
    burst(
        pool_support::KIND,
        pool.clone(),
        json!({"op": "progress", "count": REPORTS}),
    )
    .await;
    pool.shutdown().await;
}
