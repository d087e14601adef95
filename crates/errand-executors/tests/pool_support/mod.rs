//! Helpers for the pool executor's tests: the reference workers of
//! examples/pool, pools labelled by a tag so each test finds its own
//! processes in /proc, and a worker running a pool against a real store.
#![allow(dead_code)] // each test file uses its own subset

use crate::common::{
    DEADLINE, Running, eventually, live_with, processes_with, run_executor, store,
};
use errand_core::{Backoff, KindPolicy, Store};
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_worker::Executor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// A reference worker.
#[derive(Debug, Clone, Copy)]
pub enum Lang {
    Php,
    Python,
}

/// The command running a reference worker; `tag` is an extra argument the
/// worker ignores, so a test can find its processes by their command line.
pub fn worker_command(lang: Lang, tag: &str) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/pool");
    let (program, script) = match lang {
        Lang::Php => ("php", dir.join("worker.php")),
        Lang::Python => ("python3", dir.join("worker.py")),
    };
    vec![program.into(), script.display().to_string(), tag.into()]
}

/// A unique tag for one test's processes.
pub fn tag(test: &str, lang: Lang) -> String {
    format!("errand-pool-test-{test}-{lang:?}-{}", std::process::id())
}

/// Retries quickly, so a job that recovers on its second attempt does so at once.
pub fn quick_retry_policy(timeout: Option<Duration>) -> KindPolicy {
    KindPolicy {
        timeout,
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(10),
            jitter: 0.0,
        },
        ..KindPolicy::default()
    }
}

/// A worker running one pool of reference workers against a real store.
pub struct PoolRun {
    pub store: Arc<dyn Store>,
    pub pool: Arc<PoolExecutor>,
    pub tag: String,
    running: Running,
    _dir: TempDir,
}

/// The kind every pool test runs.
pub const KIND: &str = "pooled";

impl PoolRun {
    /// Starts a pool of `lang` workers (adjusted by `tweak`) and a worker
    /// running [`KIND`] through it.
    pub async fn start(
        lang: Lang,
        test: &str,
        policy: KindPolicy,
        tweak: impl FnOnce(&mut PoolConfig),
    ) -> PoolRun {
        let tag = tag(test, lang);
        let mut config = PoolConfig::new(worker_command(lang, &tag));
        tweak(&mut config);
        let processes = config.processes;
        let pool = Arc::new(PoolExecutor::new(KIND, config).unwrap());
        eventually(DEADLINE, "every process started", || async {
            live_with(&tag).len() == processes
        })
        .await;
        let (store, dir) = store().await;
        let running = run_executor(&store, KIND, policy, pool.clone(), 4);
        PoolRun {
            store,
            pool,
            tag,
            running,
            _dir: dir,
        }
    }

    /// Stops the worker and the pool, and checks that no process of the
    /// pool is left, not even a zombie.
    pub async fn stop(self) {
        self.running.stop().await;
        tokio::time::timeout(DEADLINE, self.pool.shutdown())
            .await
            .expect("the pool stops in time");
        assert_eq!(
            processes_with(&self.tag),
            vec![],
            "processes left after shutdown"
        );
    }
}

/// A job to hand an executor directly, without a store.
pub fn bare_job(id: i64, payload: serde_json::Value) -> errand_core::Job {
    errand_worker::testing::bare_job(KIND, id, payload)
}

/// Runs job ids `range` through `executor` from `concurrency` tasks at once;
/// calls `seen` with each outcome, and panics on any that is not a success.
pub async fn drive(
    executor: Arc<dyn Executor>,
    range: std::ops::Range<i64>,
    concurrency: usize,
    seen: Arc<dyn Fn(&errand_core::Outcome) + Send + Sync>,
) {
    let next = Arc::new(std::sync::atomic::AtomicI64::new(range.start));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (executor, next, seen) = (executor.clone(), next.clone(), seen.clone());
            tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if id >= range.end {
                        return;
                    }
                    let job = bare_job(id, serde_json::json!({"op": "echo"}));
                    let outcome = executor
                        .execute(
                            &job,
                            tokio_util::sync::CancellationToken::new(),
                            errand_worker::ProgressSink::discard(),
                        )
                        .await;
                    assert!(
                        matches!(outcome, errand_core::Outcome::Success(_)),
                        "job {id}: {outcome:?}"
                    );
                    seen(&outcome);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}
