//! `GET /v1/jobs/{id}?wait=`: answers as soon as the job ends, or the job
//! as it is when the wait (capped by `max_wait`) runs out.

mod common;

use common::{Server, config};
use errand_core::{JobState, Outcome};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn wait_returns_when_the_job_finishes() {
    let server = Server::start().await;
    let id = server.enqueue_empty("resize").await;
    let store = server.store.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        common::finish_next(&store, "default", Outcome::Success(Some(json!("done")))).await
    });
    let started = Instant::now();
    let answer = server.get(&format!("/v1/jobs/{id}?wait=50s")).await;
    let waited = started.elapsed();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["state"], "completed");
    assert_eq!(answer.body["result"], "done");
    assert!(
        waited >= Duration::from_millis(250),
        "answered before the finish: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(40),
        "did not wake on the finish: {waited:?}"
    );
    finisher.await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn client_wait_returns_the_finished_job() {
    let server = Server::start().await;
    let id = server.enqueue_empty("resize").await;
    let store = server.store.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        common::finish_next(&store, "default", Outcome::Permanent("bad image".into())).await
    });
    let done = server
        .client
        .wait(id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.errors[0].error, "bad image");
    finisher.await.unwrap();
    // Already terminal: answered at once.
    let again = server
        .client
        .wait(id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again.state, JobState::Failed);
    server.stop().await;
}

#[tokio::test]
async fn wait_ends_with_the_unfinished_job() {
    let server = Server::start().await;
    let id = server.enqueue_empty("resize").await;
    let started = Instant::now();
    let answer = server.get(&format!("/v1/jobs/{id}?wait=400ms")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["state"], "available");
    assert!(started.elapsed() >= Duration::from_millis(400));

    let job = server
        .client
        .wait(id, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Available);
    server.stop().await;
}

#[tokio::test]
async fn wait_is_capped_by_max_wait() {
    let mut config = config();
    config.max_wait = Duration::from_millis(300);
    let server = Server::with(config).await;
    let id = server.enqueue_empty("resize").await;
    let started = Instant::now();
    let answer = server.get(&format!("/v1/jobs/{id}?wait=1h")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["state"], "available");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(30), "not capped: {waited:?}");

    // The client keeps waiting past the server's cap until its own timeout.
    let started = Instant::now();
    let job = server
        .client
        .wait(id, Duration::from_millis(900))
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Available);
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.stop().await;
}
