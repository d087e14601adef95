//! Queue administration over HTTP: listing, pausing and resuming, and bad
//! queue names refused without a change.

mod common;

use common::Server;
use errand_client::job;
use errand_core::JobState;
use errand_core::Store;
use errand_core::store::ClaimRequest;
use serde_json::json;
use std::time::Duration;

/// A claim of everything in `queue`.
fn claim_all(queue: &str) -> ClaimRequest {
    ClaimRequest {
        queue: queue.into(),
        kinds: Vec::new(),
        limit: 100,
        worker: "test".into(),
        lease: Duration::from_secs(60),
        limits: Default::default(),
    }
}

#[tokio::test]
async fn pause_holds_jobs_and_resume_releases_them() {
    let server = Server::start().await;
    let paused = server.client.pause_queue("mail").await.unwrap();
    assert_eq!((paused.name.as_str(), paused.paused), ("mail", true));
    assert!(paused.counts.is_empty());

    let id = server
        .client
        .enqueue(job("send_email", json!({"to": "a@example.com"})))
        .await
        .unwrap()
        .job
        .id;
    assert!(
        server
            .store
            .claim(&claim_all("mail"))
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    let listed = server.get("/v1/queues").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body,
        json!({"queues": [{"name": "mail", "paused": true, "counts": {"available": 1}}]})
    );

    let resumed = server.client.resume_queue("mail").await.unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.counts.get(&JobState::Available), Some(&1));
    let claimed = server.store.claim(&claim_all("mail")).await.unwrap();
    assert_eq!(claimed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);
    let queues = server.client.queues().await.unwrap();
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0].counts.get(&JobState::Running), Some(&1));
    server.stop().await;
}

#[tokio::test]
async fn a_bad_queue_name_is_refused_and_changes_nothing() {
    let server = Server::start().await;
    for path in ["/v1/queues/bad%20name/pause", "/v1/queues/%C3%A9/resume"] {
        server
            .post(path, &json!({}))
            .await
            .assert_problem(422, Some("name"));
    }
    assert!(server.client.queues().await.unwrap().is_empty());
    server
        .get("/v1/queues/mail/pause")
        .await
        .assert_problem(405, None);
    server.stop().await;
}
