//! PostgreSQL-only scenarios of `errand-bench --history`: claim throughput
//! with 10,000 and then 1,000,000 terminal jobs in the table (the claim's
//! cost must not grow with history), and while a long transaction is open
//! elsewhere in the database, holding back vacuum.

use anyhow::{Context, Result};
use errand_core::store::{ClaimRequest, Finish};
use errand_core::{Backoff, NewJob, Outcome, Store};
use errand_postgres::seed::Seeder;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The queue the claim measurements use, away from every other scenario's.
const QUEUE: &str = "claim_bench";
/// The kind and queue of the terminal jobs that make the history.
const HISTORY: &str = "history";
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
    let admin = Seeder::connect(url)
        .await
        .context("cannot connect to the benchmark database")?;
    // Terminal jobs, vacuumed and analyzed as autovacuum eventually would.
    admin
        .fill_completed(HISTORY, 10_000)
        .await
        .context("cannot insert terminal jobs")?;
    eprintln!("claim throughput, 10,000 terminal jobs…");
    let small = claim_throughput(store).await?;
    let loading = Instant::now();
    admin
        .fill_completed(HISTORY, 1_000_000)
        .await
        .context("cannot insert terminal jobs")?;
    let history_load_s = loading.elapsed().as_secs_f64();
    eprintln!("claim throughput, 1,000,000 terminal jobs (loaded in {history_load_s:.1} s)…");
    let large = claim_throughput(store).await?;
    eprintln!("claim throughput, long transaction open…");
    let long = Seeder::connect(url)
        .await
        .context("cannot connect to the benchmark database")?;
    long.begin_long_transaction()
        .await
        .context("cannot open the long transaction")?;
    // The first round leaves dead rows vacuum may not remove; the second
    // is measured among them.
    claim_throughput(store).await?;
    let held_back = claim_throughput(store).await?;
    long.end_long_transaction().await?;
    // The other scenarios start from a table without this history.
    admin
        .delete_queues(&[HISTORY, QUEUE])
        .await
        .context("cannot remove the history")?;
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
