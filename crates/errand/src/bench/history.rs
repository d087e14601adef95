//! PostgreSQL-only scenarios of `errand bench --history`: claim throughput
//! with 10,000 and then 1,000,000 terminal jobs in the table (the claim's
//! cost must not grow with history), and while a long transaction is open
//! elsewhere in the database, holding back vacuum.

use anyhow::{Context, Result};
use errand_core::store::{ClaimRequest, Finish};
use errand_core::{Backoff, NewJob, Outcome, Store};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The queue the claim measurements use, away from every other scenario's.
const QUEUE: &str = "claim_bench";
/// Jobs claimed and finished in one measurement.
const JOBS: usize = 10_000;
/// Concurrent claimers and the batch each claims.
const CLAIMERS: usize = 4;
const BATCH: u32 = 64;

/// What `--history` adds to the report (jobs/s, claim and finish).
#[derive(Debug, Serialize)]
pub(super) struct HistoryReport {
    claim_10k_terminal_jobs_per_s: f64,
    claim_1m_terminal_jobs_per_s: f64,
    /// With 1,000,000 terminal jobs and `BEGIN; SELECT txid_current();`
    /// open on another connection since before the previous measurement,
    /// so that measurement's dead rows cannot be vacuumed.
    claim_long_transaction_jobs_per_s: f64,
    /// Seconds to insert the 1,000,000 terminal rows and vacuum them.
    history_load_s: f64,
}

/// Runs the history scenarios on the (PostgreSQL) `store` at `url`.
pub(super) async fn run(store: &Arc<dyn Store>, url: &str) -> Result<HistoryReport> {
    let admin = connect(url).await?;
    add_terminal_jobs(&admin, 10_000).await?;
    eprintln!("claim throughput, 10,000 terminal jobs…");
    let small = claim_throughput(store).await?;
    let loading = Instant::now();
    add_terminal_jobs(&admin, 1_000_000).await?;
    let history_load_s = loading.elapsed().as_secs_f64();
    eprintln!("claim throughput, 1,000,000 terminal jobs (loaded in {history_load_s:.1} s)…");
    let large = claim_throughput(store).await?;
    eprintln!("claim throughput, long transaction open…");
    let long = connect(url).await?;
    long.batch_execute("BEGIN; SELECT txid_current();")
        .await
        .context("cannot open the long transaction")?;
    // The first round leaves dead rows vacuum may not remove; the second
    // is measured among them.
    claim_throughput(store).await?;
    let held_back = claim_throughput(store).await?;
    long.batch_execute("ROLLBACK").await?;
    // The other scenarios start from a table without this history.
    admin
        .batch_execute("DELETE FROM jobs WHERE queue IN ('history', 'claim_bench')")
        .await
        .context("cannot remove the history")?;
    admin.batch_execute("VACUUM ANALYZE jobs").await?;
    Ok(HistoryReport {
        claim_10k_terminal_jobs_per_s: small,
        claim_1m_terminal_jobs_per_s: large,
        claim_long_transaction_jobs_per_s: held_back,
        history_load_s,
    })
}

/// Rows for the table, printed after the main figures.
pub(super) fn rows(report: &HistoryReport) -> Vec<(String, f64)> {
    vec![
        (
            format!("claim+finish, {JOBS} jobs, 10,000 terminal jobs in table"),
            report.claim_10k_terminal_jobs_per_s,
        ),
        (
            format!("claim+finish, {JOBS} jobs, 1,000,000 terminal jobs in table"),
            report.claim_1m_terminal_jobs_per_s,
        ),
        (
            format!("claim+finish, {JOBS} jobs, long transaction open elsewhere"),
            report.claim_long_transaction_jobs_per_s,
        ),
    ]
}

/// A connection of its own, driven by a task until dropped.
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the benchmark database")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "bench connection ended");
        }
    });
    Ok(client)
}

/// Tops the completed jobs of the table up to `total`, in one server-side
/// statement, then vacuums and analyzes as autovacuum eventually would.
async fn add_terminal_jobs(admin: &tokio_postgres::Client, total: i64) -> Result<()> {
    admin
        .execute(
            "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
                 run_at, created_at, started_at, finished_at) \
             SELECT 'history', 'history', jsonb_build_object('n', g), 0, 'completed', 1, 25, \
                 now(), now(), now(), now() \
             FROM generate_series( \
                 (SELECT count(*) FROM jobs WHERE state = 'completed') + 1, $1::bigint) AS g",
            &[&total],
        )
        .await
        .context("cannot insert terminal jobs")?;
    admin.batch_execute("VACUUM ANALYZE jobs").await?;
    Ok(())
}

/// Enqueues [`JOBS`] jobs, then [`CLAIMERS`] tasks claim batches of
/// [`BATCH`] and finish them until the queue is empty; answers jobs/s.
async fn claim_throughput(store: &Arc<dyn Store>) -> Result<f64> {
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|n| NewJob {
            queue: QUEUE.into(),
            ..NewJob::new("claim", serde_json::json!({ "n": n }))
        })
        .collect();
    for chunk in jobs.chunks(5000) {
        store.enqueue(chunk.to_vec()).await?;
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..CLAIMERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let request = ClaimRequest {
                queue: QUEUE.into(),
                kinds: vec!["claim".into()],
                limit: BATCH,
                worker: format!("claimer-{n}"),
                lease: Duration::from_secs(60),
                limits: Default::default(),
            };
            let mut done = 0;
            loop {
                let claimed = store.claim(&request).await?.jobs;
                if claimed.is_empty() {
                    return anyhow::Ok(done);
                }
                done += claimed.len();
                let finishes = claimed
                    .iter()
                    .map(|job| Finish {
                        lease: job.lease(),
                        outcome: Outcome::Success(None),
                        backoff: Backoff::default(),
                    })
                    .collect();
                store.finish(finishes).await?;
            }
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await??;
    }
    anyhow::ensure!(done == JOBS, "claimed {done} of {JOBS} jobs");
    Ok(done as f64 / started.elapsed().as_secs_f64())
}
