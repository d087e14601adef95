//! Long runs of the pool executor, ignored by default:
//!
//! - the soak test: 100,000 jobs through a PHP pool that recycles every
//!   100 jobs; errand's fds, threads and memory stay flat and no recycled
//!   process survives. Run it with
//!   `cargo test -p errand-executors --release --test pool_soak soak -- --ignored --nocapture`
//!   (`ERRAND_SOAK_JOBS=20000` for a shorter run).
//! - the benchmark: no-op jobs per second through a pool of 4 PHP processes
//!   and through a PHP process per job. Run it with
//!   `cargo test -p errand-executors --release --test pool_soak bench -- --ignored --nocapture`

mod common;
mod pool_support;

use common::*;
use errand_core::Outcome;
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_worker::Executor;
use pool_support::*;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The footprint once recycling in flight has finished: only the pool's 4
/// current processes are left (none retiring, none a zombie).
async fn settled_footprint() -> Footprint {
    eventually(DEADLINE, "only the 4 current processes remain", || async {
        let children = own_children();
        children.len() == 4 && children.iter().all(|c| c.state != 'Z')
    })
    .await;
    // Their stderr readers end just after they exit.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Footprint::now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes long; see the file header"]
async fn soak_pool_recycling_leaks_nothing() {
    let jobs: i64 = std::env::var("ERRAND_SOAK_JOBS").map_or(100_000, |v| v.parse().unwrap());
    let tag = tag("soak", Lang::Php);
    let config = PoolConfig {
        processes: 4,
        max_jobs: 100,
        ..PoolConfig::new(worker_command(Lang::Php, &tag))
    };
    let pool = Arc::new(PoolExecutor::new(KIND, config).unwrap());
    let pids = Arc::new(Mutex::new(BTreeSet::new()));
    let record: Arc<dyn Fn(&Outcome) + Send + Sync> = {
        let pids = pids.clone();
        Arc::new(move |outcome| {
            if let Outcome::Success(Some(result)) = outcome {
                pids.lock()
                    .unwrap()
                    .insert(result["pid"].as_u64().unwrap() as u32);
            }
        })
    };
    let started = Instant::now();
    drive(pool.clone(), 0..10_000, 4, record.clone()).await;
    let warm = settled_footprint().await;
    drive(pool.clone(), 10_000..jobs, 4, record).await;
    let end = settled_footprint().await;
    println!(
        "{jobs} jobs in {:?}; at 10,000: {warm:?}; at the end: {end:?}",
        started.elapsed()
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

    let pids = pids.lock().unwrap().clone();
    assert!(
        pids.len() as i64 >= jobs / 100,
        "recycled every 100 jobs: {} pids",
        pids.len()
    );
    let live: BTreeSet<u32> = own_children().iter().map(|c| c.pid).collect();
    let survivors: Vec<_> = pids
        .iter()
        .filter(|p| !live.contains(p) && proc_of(**p).is_some())
        .collect();
    assert!(
        survivors.is_empty(),
        "recycled processes still present: {survivors:?}"
    );
    pool.shutdown().await;
    assert_eq!(own_children(), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures; see the file header"]
async fn bench_pool_against_a_process_per_job() {
    let tag = tag("bench", Lang::Php);
    let config = PoolConfig {
        processes: 4,
        max_jobs: 0,
        ..PoolConfig::new(worker_command(Lang::Php, &tag))
    };
    let pool = Arc::new(PoolExecutor::new(KIND, config).unwrap());
    eventually(DEADLINE, "the pool is up", || async {
        live_with(&tag).len() == 4
    })
    .await;
    let per_job = Arc::new(
        CommandExecutor::new(CommandSpec {
            argv: ["php", "-r", "echo '{}';"].map(String::from).to_vec(),
            ..CommandSpec::default()
        })
        .unwrap(),
    );
    let ignore: Arc<dyn Fn(&Outcome) + Send + Sync> = Arc::new(|_| {});
    let rate = async |executor: Arc<dyn Executor>, jobs: i64| {
        let start = Instant::now();
        drive(executor, 0..jobs, 4, ignore.clone()).await;
        jobs as f64 / start.elapsed().as_secs_f64()
    };
    let pooled = rate(pool.clone(), 5_000).await;
    let spawned = rate(per_job, 300).await;
    println!(
        "no-op jobs/s: pool of 4 PHP processes {pooled:.0}, PHP process per job {spawned:.0} ({:.1}x)",
        pooled / spawned
    );
    pool.shutdown().await;
}
