//! Batches over HTTP: created atomically, read back with counts, results
//! in submission order once every job has ended, and the point of them: ten
//! one-second jobs run by a real worker come back together in about one
//! second, then the on-complete job runs once with the outcome.

mod common;

use common::{Server, config_with};
use errand_client::{NewBatchRequest, job};
use errand_core::testing::{DEADLINE, eventually};
use errand_core::{EnqueueRequest, JobState, KindPolicy, Outcome};
use errand_worker::{JobContext, Worker, WorkerConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn batch_of(jobs: Vec<EnqueueRequest>, on_complete: Option<EnqueueRequest>) -> NewBatchRequest {
    NewBatchRequest { jobs, on_complete }
}

#[tokio::test]
async fn a_batch_reads_back_with_counts_and_ordered_results() {
    let server = Server::start().await;
    let jobs = vec![
        job("resize", json!(0)).into(),
        job("send_email", json!(1)).into(),
        job("resize", json!(2)).into(),
    ];
    let handle = server
        .client
        .enqueue_batch(&batch_of(jobs, None))
        .await
        .unwrap();
    assert_eq!(handle.batch.total, 3);
    assert_eq!(handle.batch.counts.get(&JobState::Available), Some(&3));
    assert!(handle.batch.finished_at.is_none());

    let plain = server.get(&format!("/v1/batches/{}", handle.id)).await;
    assert_eq!(plain.status, 200);
    assert!(plain.body.get("results").is_none(), "{}", plain.body);

    // A short wait on an unfinished batch answers as it stands.
    let waited = server
        .client
        .wait_batch(handle.id, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(waited.batch.finished_at.is_none());
    assert!(
        waited
            .results
            .iter()
            .all(|r| r.state == JobState::Available)
    );

    let first = server
        .run_next("default", Outcome::Success(Some(json!("zero"))))
        .await;
    let email = server
        .run_next("mail", Outcome::Permanent("no such mailbox".into()))
        .await;
    let last = server.client.cancel(first.id + 2).await.unwrap();
    assert_eq!(email.id, first.id + 1, "jobs keep submission order");

    let done = server
        .client
        .wait_batch(handle.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(done.batch.finished_at.is_some());
    let expected_counts = BTreeMap::from([
        (JobState::Completed, 1),
        (JobState::Failed, 1),
        (JobState::Cancelled, 1),
    ]);
    assert_eq!(done.batch.counts, expected_counts);
    let results: Vec<_> = done
        .results
        .iter()
        .map(|r| (r.id, r.state, r.result.clone(), r.error.clone()))
        .collect();
    assert_eq!(
        results,
        [
            (first.id, JobState::Completed, Some(json!("zero")), None),
            (
                email.id,
                JobState::Failed,
                None,
                Some("no such mailbox".to_string())
            ),
            (last.id, JobState::Cancelled, None, None),
        ]
    );
    let without_wait = server.client.batch_results(handle.id).await.unwrap();
    assert_eq!(without_wait, done);
    assert_eq!(handle.get().await.unwrap(), done.batch);
    server.stop().await;
}

/// Configuration for the worker test: a one-second job and a collector.
fn worker_config() -> errand_server::ServerConfig {
    config_with(&["sleep_1s", "collect"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_one_second_jobs_come_back_together_in_order() {
    let server = Server::with(worker_config()).await;
    let collected: Arc<Mutex<Vec<Value>>> = Arc::default();
    let mut worker = Worker::new(
        Arc::new(server.store.clone()),
        WorkerConfig {
            queues: BTreeMap::from([("default".to_string(), 10)]),
            ..WorkerConfig::default()
        },
    );
    worker.handler(
        "sleep_1s",
        KindPolicy::default(),
        |n: u64, _: JobContext| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Some(json!({"square": n * n})))
        },
    );
    let sink = collected.clone();
    worker.handler(
        "collect",
        KindPolicy::default(),
        move |payload: Value, _: JobContext| {
            sink.lock().unwrap().push(payload);
            async { Ok(None) }
        },
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let jobs = (0..10u64)
        .map(|n| job("sleep_1s", json!(n)).into())
        .collect();
    let on_complete = job("collect", json!({"report": "squares"})).into();
    let started = Instant::now();
    let handle = server
        .client
        .enqueue_batch(&batch_of(jobs, Some(on_complete)))
        .await
        .unwrap();
    let done = handle.wait(Duration::from_secs(30)).await.unwrap();
    let elapsed = started.elapsed();

    assert!(done.batch.finished_at.is_some(), "{done:?}");
    let squares: Vec<_> = done.results.iter().map(|r| r.result.clone()).collect();
    let expected: Vec<_> = (0..10u64).map(|n| Some(json!({"square": n * n}))).collect();
    assert_eq!(squares, expected, "every result, in submission order");
    // The acceptance check: the jobs ran in parallel, not one
    // after another (that would take 10 s).
    assert!(
        elapsed < Duration::from_secs(2),
        "ten 1 s jobs at concurrency 10 took {elapsed:?}"
    );

    // The on-complete job runs once, with the outcome and the caller's payload.
    let on_complete = eventually(DEADLINE, "the on-complete job to run", || async {
        let id = handle.get().await.unwrap().on_complete_job?;
        let job = server.client.wait(id, DEADLINE).await.unwrap();
        (job.state == JobState::Completed).then_some(job)
    })
    .await;
    assert_eq!(on_complete.kind, "collect");
    let payloads = collected.lock().unwrap().clone();
    assert_eq!(payloads.len(), 1, "ran once: {payloads:?}");
    assert_eq!(payloads[0], on_complete.payload);
    assert_eq!(payloads[0]["batch"]["id"], handle.id);
    assert_eq!(payloads[0]["batch"]["total"], 10);
    assert_eq!(payloads[0]["batch"]["completed"], 10);
    assert_eq!(payloads[0]["batch"]["failed"], 0);
    assert_eq!(payloads[0]["payload"], json!({"report": "squares"}));
    let collects = server.stats().await.kinds["collect"].clone();
    assert_eq!(collects, BTreeMap::from([(JobState::Completed, 1)]));

    stop.cancel();
    running.await.unwrap().unwrap();
    server.stop().await;
}
