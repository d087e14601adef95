//! Enqueueing over HTTP: one job, unique-key duplicates, and batches that
//! are all-or-none and answered in input order.

mod common;

use common::Server;
use errand_client::job;
use errand_core::JobState;
use errand_core::store::ListFilter;
use serde_json::json;

#[tokio::test]
async fn enqueue_answers_201_and_the_job_reads_back() {
    let server = Server::start().await;
    let answer = server
        .post(
            "/v1/jobs",
            &json!({"kind": "send_email", "payload": {"to": "a@b"}, "priority": -2, "tags": ["x"]}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.body["duplicate"], false);
    assert_eq!(answer.body["queue"], "mail", "queue comes from the kind");
    let id = answer.body["id"].as_i64().unwrap();

    let job = server.client.get(id).await.unwrap();
    assert_eq!(job.kind, "send_email");
    assert_eq!(job.payload, json!({"to": "a@b"}));
    assert_eq!(job.priority, -2);
    assert_eq!(job.tags, ["x"]);
    assert_eq!(job.state, JobState::Available);
    assert_eq!(server.get(&format!("/v1/jobs/{id}")).await.body["id"], id);
    server.stop().await;
}

#[tokio::test]
async fn delayed_job_is_scheduled() {
    let server = Server::start().await;
    let enqueued = server
        .client
        .enqueue(job("resize", json!(1)).delay(std::time::Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(enqueued.job.state, JobState::Scheduled);
    assert!(enqueued.job.run_at > enqueued.job.created_at);
    server.stop().await;
}

#[tokio::test]
async fn unique_key_duplicate_answers_200_and_inserts_nothing() {
    let server = Server::start().await;
    let body = json!({"kind": "resize", "payload": {"img": 1}, "unique_key": "img-1"});
    let first = server.post("/v1/jobs", &body).await;
    assert_eq!(first.status, 201);
    let second = server.post("/v1/jobs", &body).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body["duplicate"], true);
    assert_eq!(second.body["id"], first.body["id"]);

    let stats = server.stats().await;
    assert_eq!(stats.total.values().sum::<u64>(), 1);
    let dup = server
        .client
        .enqueue(job("resize", json!({})).unique_key("img-1"))
        .await
        .unwrap();
    assert!(dup.duplicate);
    server.stop().await;
}

#[tokio::test]
async fn batch_is_answered_in_input_order() {
    let server = Server::start().await;
    let jobs: Vec<_> = (0..20)
        .map(|i| {
            let kind = if i % 2 == 0 { "resize" } else { "send_email" };
            job(kind, json!({ "n": i })).into()
        })
        .collect();
    let enqueued = server.client.enqueue_many(jobs).await.unwrap();
    assert_eq!(enqueued.len(), 20);
    for (i, e) in enqueued.iter().enumerate() {
        assert_eq!(e.job.payload, json!({ "n": i }));
        assert!(!e.duplicate);
    }
    assert!(enqueued.windows(2).all(|w| w[0].job.id < w[1].job.id));
    assert_eq!(server.stats().await.total.values().sum::<u64>(), 20);

    let raw = server
        .post(
            "/v1/jobs/batch",
            &json!({"jobs": [{"kind": "resize"}, {"kind": "send_email"}]}),
        )
        .await;
    assert_eq!(raw.status, 201);
    assert_eq!(raw.body["jobs"][1]["kind"], "send_email");
    server.stop().await;
}

#[tokio::test]
async fn batch_with_one_bad_element_inserts_nothing() {
    let server = Server::start().await;
    let good = json!({"kind": "resize"});
    let cases = [
        (json!({"kind": "nope"}), "jobs[2].kind", 422),
        (
            json!({"kind": "resize", "priority": "high"}),
            "jobs[2].priority",
            422,
        ),
        (
            json!({"kind": "resize", "max_attempts": 0}),
            "jobs[2].max_attempts",
            422,
        ),
        (
            json!({"kind": "resize", "delay": "soon"}),
            "jobs[2].delay",
            422,
        ),
        (json!({"kind": "resize", "bogus": 1}), "jobs[2].bogus", 422),
        (json!({"payload": {}}), "jobs[2].kind", 422),
    ];
    for (bad, field, status) in cases {
        let answer = server
            .post("/v1/jobs/batch", &json!({"jobs": [good, good, bad, good]}))
            .await;
        answer.assert_problem(status, Some(field));
    }
    let page = server
        .client
        .list(&ListFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.jobs.is_empty(), "nothing inserted: {:?}", page.jobs);
    assert!(server.stats().await.total.values().all(|n| *n == 0));
    server.stop().await;
}

#[tokio::test]
async fn batch_must_be_non_empty_and_bounded() {
    let server = Server::start().await;
    server
        .post("/v1/jobs/batch", &json!({"jobs": []}))
        .await
        .assert_problem(422, Some("jobs"));
    let many: Vec<_> = (0..10_001).map(|_| json!({"kind": "resize"})).collect();
    server
        .post("/v1/jobs/batch", &json!({ "jobs": many }))
        .await
        .assert_problem(422, Some("jobs"));
    server
        .post("/v1/jobs/batch", &json!({"job": []}))
        .await
        .assert_problem(422, Some("job"));
    assert!(server.stats().await.total.values().all(|n| *n == 0));
    server.stop().await;
}
