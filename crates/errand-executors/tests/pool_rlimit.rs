//! A pool that cannot start its processes because errand has no file
//! descriptor left: a job finding no idle process is handed back as deadly
//! (no attempt used) instead of waiting out its timeout, and the pool
//! starts its processes once descriptors are free again. One test in its
//! own binary, because it exhausts the test process's descriptors.

mod common;
mod pool_support;

use errand_core::Outcome;
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_worker::testing::exhaust_descriptors;
use errand_worker::{Executor, ProgressSink};
use pool_support::{KIND, Lang, bare_job, tag, worker_command};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_out_of_descriptors_hands_jobs_back_as_deadly() {
    // The guardian first, so that the spawn itself meets the limit.
    errand_executors::process::ensure_guardian().unwrap();
    let tag = tag("rlimit", Lang::Python);
    let config = PoolConfig {
        processes: 1,
        ..PoolConfig::new(worker_command(Lang::Python, &tag))
    };
    let held = exhaust_descriptors();
    let pool = PoolExecutor::new(KIND, config).unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        pool.execute(
            &bare_job(1, json!({"op": "echo"})),
            CancellationToken::new(),
            ProgressSink::discard(),
        ),
    )
    .await
    .expect("a job is not left waiting for a process that cannot start");
    drop(held);
    match outcome {
        Outcome::Deadly(error) => assert!(error.contains("Too many open files"), "{error}"),
        other => panic!("expected a deadly outcome, got {other:?}"),
    }

    // Descriptors are back: the pool's restart backoff starts a process.
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let outcome = pool
                .execute(
                    &bare_job(2, json!({"op": "echo"})),
                    CancellationToken::new(),
                    ProgressSink::discard(),
                )
                .await;
            if !matches!(outcome, Outcome::Deadly(_)) {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the pool recovers");
    assert!(matches!(outcome, Outcome::Success(_)), "{outcome:?}");
    pool.shutdown().await;
}
