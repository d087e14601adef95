//! Helpers shared by the command executor's test files: a shell script as a
//! spec and running one job through a real worker and store.
#![allow(dead_code)] // each test file uses its own subset

use crate::common::*;
use errand_core::{Job, JobState};
use errand_executors::command::{CommandExecutor, CommandSpec};
use std::sync::Arc;
use std::time::Duration;

/// Runs `script` with `sh -c`.
pub fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..CommandSpec::default()
    }
}

/// Runs one job of kind `cmd` through `executor` and returns it once
/// `done` holds.
pub async fn run_with(
    executor: CommandExecutor,
    timeout: Option<Duration>,
    payload: serde_json::Value,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let (store, _dir) = store().await;
    let running = run_executor(&store, "cmd", hour_backoff(timeout), Arc::new(executor), 2);
    let id = enqueue(&store, "cmd", payload).await;
    let job = wait_for(&store, id, done).await;
    running.stop().await;
    job
}

/// Runs one job of kind `cmd` and returns it once `done` holds.
pub async fn run_until(
    spec: CommandSpec,
    timeout: Option<Duration>,
    payload: serde_json::Value,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let executor = CommandExecutor::new(spec).expect("a valid spec");
    run_with(executor, timeout, payload, done).await
}

/// Runs one job and returns it once its first attempt left `running`.
pub async fn run_one(
    spec: CommandSpec,
    timeout: Option<Duration>,
    payload: serde_json::Value,
) -> Job {
    run_until(spec, timeout, payload, |j| {
        j.started_at.is_some() && j.state != JobState::Running
    })
    .await
}
