//! `errand-bench`: errand's benchmark, kept out of the product binary. It
//! reaches the engines, the worker and the server through their public
//! APIs only; history seeding on PostgreSQL uses the engine's `seed`
//! feature. See docs/benchmarks.md for the figures and how to run it.

mod bench;

use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// errand-bench: throughput, latency and memory of errand on a temporary
/// SQLite database or an empty PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "errand-bench", version)]
pub struct BenchArgs {
    /// Log filter for the in-process server and workers, e.g. `warn`.
    #[arg(long, default_value = "info", env = "ERRAND_LOG")]
    pub log_level: String,
    /// An empty PostgreSQL database to measure instead of a temporary SQLite file.
    #[arg(long)]
    pub database: Option<String>,
    /// Jobs in the end-to-end run (with --limits: in each variant's run).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Jobs in each enqueue measurement (with --events: events published,
    /// and calls enqueuing 3 jobs, in each measurement).
    #[arg(long, default_value_t = 30_000)]
    pub enqueue_jobs: usize,
    /// Jobs in the pickup-latency run.
    #[arg(long, default_value_t = 500)]
    pub pickup_jobs: usize,
    /// Repetitions of each scenario; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// End-to-end slots per worker node (default: 64 on SQLite, 512 on
    /// PostgreSQL); applies to the end-to-end and `--limits` scenarios.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub concurrency: Option<u64>,
    /// Only the one-node end-to-end scenario (`--jobs` no-op jobs, `--runs`
    /// times), for comparisons that alternate single runs with a peer.
    #[arg(long, conflicts_with_all = ["executors", "history", "events", "limits", "sqlite_baseline"])]
    pub e2e_only: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// PostgreSQL only: also measure claims with 10,000 and 1,000,000
    /// terminal jobs in the table and with a long transaction open (slow).
    #[arg(long)]
    pub history: bool,
    /// Instead of the usual scenarios, measure no-op jobs per second through
    /// the executors: a process per job, PHP and Python pools, a webhook.
    #[arg(long, conflicts_with_all = ["database", "history"])]
    pub executors: bool,
    /// With --executors: the directory holding pool/worker.php and pool/worker.py.
    #[arg(long, default_value = "examples", requires = "executors")]
    pub examples: PathBuf,
    /// Instead of the usual scenarios, measure publishing an event with 3
    /// listeners against enqueuing 3 jobs per call (may join --limits).
    #[arg(long, conflicts_with_all = ["executors", "history"])]
    pub events: bool,
    /// Instead of the usual scenarios, measure end-to-end jobs/s of kinds
    /// with a rate or concurrency limit far above the load against an
    /// unlimited kind (may join --events).
    #[arg(long, conflicts_with_all = ["executors", "history"])]
    pub limits: bool,
    /// Instead of the usual scenarios, measure SQLite end to end (`--jobs`
    /// no-op jobs, concurrency 64) against a store-only baseline in the
    /// same run: the same jobs claimed and finished with errand's SQL
    /// alone, one commit per claim batch (with a vCPU kept busy, and
    /// without); each run measures all three on fresh databases, rotating
    /// which goes first.
    #[arg(long, conflicts_with_all = ["database", "executors", "history", "events", "limits"])]
    pub sqlite_baseline: bool,
    /// With --sqlite-baseline: jobs the baseline claims per transaction
    /// (default: the end-to-end concurrency, the most one commit can claim
    /// and finish for a node running that many jobs at once).
    #[arg(long, requires = "sqlite_baseline", value_parser = clap::value_parser!(u64).range(1..))]
    pub baseline_batch: Option<u64>,
}

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    // The webhook scenario's and the HTTP scenarios' reqwest clients need one.
    errand_client::install_tls_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("errand-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(args)) {
        Ok(code) => code,
        Err(e) => {
            // A --database URL in the message keeps no password.
            eprintln!(
                "{}",
                errand_core::redact::urls(&format!("errand-bench: {e:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
