//! 20,000 no-op jobs through one queue at concurrency 64: every job
//! completes and no job's handler runs twice.

mod common;

use common::*;
use errand_core::{JobId, JobState, KindPolicy, NewJob};
use errand_worker::{JobContext, Worker};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const JOBS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_runs_exactly_once() {
    let (store, _dir) = store().await;
    let mut ids = Vec::with_capacity(JOBS);
    for chunk in 0..JOBS / 1000 {
        let batch: Vec<NewJob> = (0..1000)
            .map(|i| job("noop", json!(chunk * 1000 + i)))
            .collect();
        ids.extend(
            store
                .enqueue(batch)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.job.id),
        );
    }

    let runs: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let mut worker = Worker::new(store.clone(), config("default", 64));
    let seen = runs.clone();
    worker.handler(
        "noop",
        KindPolicy::default(),
        move |_: u64, ctx: JobContext| {
            *seen.lock().unwrap().entry(ctx.id).or_default() += 1;
            async { Ok(None) }
        },
    );
    let running = Running::spawn(worker);

    eventually(
        Duration::from_secs(120),
        "every job to complete",
        || async { store.stats().await.unwrap().in_state(JobState::Completed) == JOBS as u64 },
    )
    .await;
    running.stop().await;

    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), JOBS, "every job ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert!(ids.iter().all(|id| runs.contains_key(id)));
}
