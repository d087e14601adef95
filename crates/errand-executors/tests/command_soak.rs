//! The command executor's soak test, ignored by default: 100,000
//! `/bin/true` jobs through a real worker and SQLite store at concurrency
//! 16. errand's open fds, threads and RSS stay flat from the 10,000th job to
//! the last, and no child process is left behind (no zombie either). Jobs
//! run in rounds of 10,000, completed ones pruned after each round as
//! maintenance would: otherwise SQLite's page cache (64 MiB a connection)
//! fills as the database grows, which is no per-job leak but would hide
//! one. Run it
//! with
//! `cargo test -p errand-executors --release --test command_soak -- --ignored --nocapture`
//! (`ERRAND_SOAK_JOBS=20000` for a shorter run).

mod common;

use common::*;
use errand_core::{JobState, KindPolicy, NewJob, Retention, Store};
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_worker::Worker;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs enqueued in one transaction.
const BATCH: u64 = 1_000;
/// Jobs run between two prunes, and before the first measurement.
const ROUND: u64 = 10_000;
/// A phase of the soak may take this long on a loaded machine.
const PHASE_DEADLINE: Duration = Duration::from_secs(1800);

/// Runs `jobs` jobs in rounds of at most [`ROUND`], pruning the completed
/// ones after each, and returns the footprint once no child is left.
async fn run(store: &Arc<dyn Store>, jobs: u64) -> Footprint {
    let start = Instant::now();
    let everything = Retention {
        completed: Duration::ZERO,
        ..Retention::default()
    };
    for round_start in (0..jobs).step_by(ROUND as usize) {
        let round = ROUND.min(jobs - round_start);
        for first in (0..round).step_by(BATCH as usize) {
            let n = BATCH.min(round - first);
            let batch = (0..n).map(|_| NewJob::new("noop", json!(null))).collect();
            store.enqueue(batch).await.unwrap();
        }
        let left = PHASE_DEADLINE.saturating_sub(start.elapsed());
        eventually(left, "the round's jobs to complete", || async {
            store.stats().await.unwrap().in_state(JobState::Completed) >= round
        })
        .await;
        let mut pruned = 0;
        while pruned < round {
            pruned += store.prune(&everything).await.unwrap();
        }
    }
    let left = PHASE_DEADLINE.saturating_sub(start.elapsed());
    eventually(left, "every child to be reaped", || async {
        own_children().is_empty()
    })
    .await;
    Footprint::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes long; see the file header"]
async fn soak_command_per_job_leaks_nothing() {
    let jobs: u64 = std::env::var("ERRAND_SOAK_JOBS").map_or(100_000, |v| v.parse().unwrap());
    let (store, _dir) = store().await;
    let mut worker = Worker::new(store.clone(), config("default", 16));
    let spec = CommandSpec {
        argv: vec!["/bin/true".into()],
        ..CommandSpec::default()
    };
    worker.register(
        "noop",
        KindPolicy::default(),
        Arc::new(CommandExecutor::new(spec).unwrap()),
    );
    let running = Running::spawn(worker);

    let started = Instant::now();
    let warm = run(&store, ROUND).await;
    let warm_at = started.elapsed();
    let end = run(&store, jobs - ROUND).await;
    let elapsed = started.elapsed();
    println!(
        "{jobs} jobs in {elapsed:?} ({:.0} jobs/s after warm-up); at 10,000: {warm:?}; at the end: {end:?}",
        (jobs - ROUND) as f64 / (elapsed - warm_at).as_secs_f64()
    );
    running.stop().await;

    let stats = store.stats().await.unwrap();
    assert!(
        stats.total.values().all(|n| *n == 0),
        "every job completed and was pruned: {stats:?}"
    );
    assert!(end.fds.abs_diff(warm.fds) <= 2, "fds: {warm:?} -> {end:?}");
    assert!(
        end.threads.abs_diff(warm.threads) <= 2,
        "threads: {warm:?} -> {end:?}"
    );
    assert!(
        end.rss_kib <= warm.rss_kib + 10 * 1024,
        "rss: {warm:?} -> {end:?}"
    );
    assert_eq!(own_children(), vec![], "no child outlives its job");
}
