//! Helpers shared by the command executor's test files: a shell script as a
//! spec and running one job through a real
//! worker and store.
#![allow(dead_code)] // each test file uses its own subset

use crate::common::*;
use errand_core::{Job, JobState};
use errand_worker::testing::hour_backoff;
use errand_worker::{CommandExecutor, CommandSpec, Worker};
use std::sync::Arc;
use std::time::Duration;

/// Runs `script` with `sh -c`.
pub fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        ..CommandSpec::default()
    }
}

/// Runs one job of kind `cmd` and returns it once `done` holds.
pub async fn run_until(
    spec: CommandSpec,
    timeout: Option<Duration>,
    payload: serde_json::Value,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let (store, _dir) = store().await;
    let mut worker = Worker::new(store.clone(), config("default", 2));
    worker.register(
        "cmd",
        hour_backoff(timeout),
        Arc::new(CommandExecutor::new(spec)),
    );
    let running = Running::spawn(worker);
    let id = enqueue(&store, job("cmd", payload)).await;
    let job = wait_for(&store, id, done).await;
    running.stop().await;
    job
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
