//! A pool process's environment, with real processes: errand's own
//! `ERRAND_*` settings never get in unless allowed by name; `env_allow`
//! passes only the listed variables (plus `PATH`, `env` and `ERRAND_POOL`).
//! One test in its own binary, because it sets variables of the test
//! process itself.

mod common;
mod pool_support;

use errand_core::Outcome;
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_worker::{Executor, ProgressSink};
use pool_support::{KIND, bare_job};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use tokio_util::sync::CancellationToken;

/// A pool worker answering each job with the variables it sees.
const PRINT_ENV: &str = r#"
import json, os, sys
names = ["LISTED_SECRET", "UNLISTED_SECRET", "ERRAND_DATABASE", "FROM_SPEC", "ERRAND_POOL"]
print(json.dumps({"type": "ready"}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    seen = {n: os.environ.get(n, "unset") for n in names}
    # Only whether PATH is there: an interpreter's launcher may prepend to it.
    seen["PATH"] = "set" if "PATH" in os.environ else "unset"
    print(json.dumps({"type": "result", "id": job["id"], "result": seen}), flush=True)
"#;

/// What a process of a pool with `env_allow` sees.
async fn seen(env_allow: Option<Vec<&str>>) -> Value {
    let config = PoolConfig {
        processes: 1,
        env: BTreeMap::from([("FROM_SPEC".to_string(), "spec".to_string())]),
        env_allow: env_allow.map(|names| names.into_iter().map(String::from).collect()),
        ..PoolConfig::new(["python3", "-c", PRINT_ENV])
    };
    let pool = PoolExecutor::new(KIND, config).unwrap();
    let outcome = pool
        .execute(
            &bare_job(1, json!({})),
            CancellationToken::new(),
            ProgressSink::discard(),
        )
        .await;
    pool.shutdown().await;
    match outcome {
        Outcome::Success(Some(seen)) => seen,
        other => panic!("{other:?}"),
    }
}

#[test]
fn pool_processes_get_no_errand_settings_and_honour_env_allow() {
    // SAFETY: set before any other thread of this binary exists (the
    // runtime is built below and this is the binary's only test).
    unsafe {
        std::env::set_var("LISTED_SECRET", "listed");
        std::env::set_var("UNLISTED_SECRET", "unlisted");
        std::env::set_var("ERRAND_DATABASE", "postgres://u:p@db/jobs");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let inherited = runtime.block_on(seen(None));
    assert_eq!(
        inherited,
        json!({"LISTED_SECRET": "listed", "UNLISTED_SECRET": "unlisted", "ERRAND_DATABASE": "unset",
               "FROM_SPEC": "spec", "ERRAND_POOL": KIND, "PATH": "set"})
    );

    let allowed = runtime.block_on(seen(Some(vec!["LISTED_SECRET"])));
    assert_eq!(
        allowed,
        json!({"LISTED_SECRET": "listed", "UNLISTED_SECRET": "unset", "ERRAND_DATABASE": "unset",
               "FROM_SPEC": "spec", "ERRAND_POOL": KIND, "PATH": "set"})
    );

    // Listed by name, errand's own setting does get in.
    let named = runtime.block_on(seen(Some(vec!["ERRAND_DATABASE"])));
    assert_eq!(named["ERRAND_DATABASE"], "postgres://u:p@db/jobs");
    assert_eq!(named["LISTED_SECRET"], "unset");
}
