//! Listing with filters and cursor pages, cancel and retry flows, stats,
//! health, and the client's transport errors.

mod common;

use common::Server;
use errand_client::{ClientError, job};
use errand_core::store::ListFilter;
use errand_core::{BreakerPhase, BreakerState, JobState, NodeInfo, Outcome, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

#[tokio::test]
async fn cursor_pages_walk_every_job_once_newest_first() {
    let server = Server::start().await;
    let reqs = (0..53).map(|i| job("resize", json!(i)).into()).collect();
    let ids: Vec<i64> = server
        .client
        .enqueue_many(reqs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.job.id)
        .collect();

    let mut filter = ListFilter {
        limit: 10,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = server.client.list(&filter).await.unwrap();
        pages += 1;
        seen.extend(page.jobs.iter().map(|j| j.id));
        match page.next_cursor {
            Some(cursor) => filter.before = Some(cursor),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "no duplicates, no gaps, newest first");
    assert_eq!(pages, 6);

    // Default page size over raw HTTP.
    let page = server.get("/v1/jobs").await;
    assert_eq!(page.body["jobs"].as_array().unwrap().len(), 50);
    assert_eq!(page.body["next_cursor"], newest_first[49]);
    server.stop().await;
}

#[tokio::test]
async fn list_filters_by_state_kind_and_queue() {
    let server = Server::start().await;
    for i in 0..3 {
        server
            .client
            .enqueue(job("resize", json!(i)))
            .await
            .unwrap();
    }
    for i in 0..2 {
        server
            .client
            .enqueue(job("send_email", json!(i)))
            .await
            .unwrap();
    }
    server
        .client
        .enqueue(job("send_email", json!("other")).queue("urgent"))
        .await
        .unwrap();
    let done = server.run_next("default", Outcome::Success(None)).await;

    let count = |filter: ListFilter| {
        let client = server.client.clone();
        async move {
            let page = client
                .list(&ListFilter {
                    limit: 100,
                    ..filter
                })
                .await
                .unwrap();
            assert_eq!(page.next_cursor, None);
            page.jobs
        }
    };
    let kinds: BTreeSet<_> = count(ListFilter {
        kind: Some("send_email".into()),
        ..Default::default()
    })
    .await
    .into_iter()
    .map(|j| j.kind)
    .collect();
    assert_eq!(kinds, BTreeSet::from(["send_email".to_string()]));
    let mail = count(ListFilter {
        queue: Some("mail".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(mail.len(), 2);
    let completed = count(ListFilter {
        state: Some(JobState::Completed),
        ..Default::default()
    })
    .await;
    assert_eq!(
        completed.iter().map(|j| j.id).collect::<Vec<_>>(),
        [done.id]
    );
    let raw = server
        .get("/v1/jobs?state=available&kind=resize&limit=1")
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body["jobs"].as_array().unwrap().len(), 1);
    assert!(raw.body["next_cursor"].is_i64());
    server.stop().await;
}

#[tokio::test]
async fn cancel_and_retry_flow() {
    let server = Server::start().await;
    let id = server.enqueue_empty("resize").await;
    let cancelled = server.client.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let err = server.client.cancel(id).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 409, problem } if problem.status == 409),
        "{err}"
    );
    let again = server.client.retry(id).await.unwrap();
    assert_eq!(again.state, JobState::Available);

    server
        .run_next("default", Outcome::Permanent("broken".into()))
        .await;
    assert_eq!(server.client.get(id).await.unwrap().state, JobState::Failed);
    let retried = server.client.retry(id).await.unwrap();
    assert_eq!(retried.state, JobState::Available);
    assert_eq!(retried.errors.len(), 1, "history is kept");
    server.stop().await;
}

#[tokio::test]
async fn stats_count_by_state_queue_and_kind() {
    let server = Server::start().await;
    server
        .client
        .enqueue(job("resize", json!(1)))
        .await
        .unwrap();
    server
        .client
        .enqueue(job("send_email", json!(2)))
        .await
        .unwrap();
    let cancel = server
        .client
        .enqueue(job("send_email", json!(3)))
        .await
        .unwrap();
    server.client.cancel(cancel.job.id).await.unwrap();

    let stats = server.client.stats().await.unwrap().stats;
    assert_eq!(stats.total.get(&JobState::Available), Some(&2));
    assert_eq!(stats.total.get(&JobState::Cancelled), Some(&1));
    assert_eq!(stats.queues["mail"].values().sum::<u64>(), 2);
    assert_eq!(stats.kinds["resize"].get(&JobState::Available), Some(&1));
    let raw = server.get("/v1/stats").await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body["total"]["available"], 2);
    server.stop().await;
}

#[tokio::test]
async fn stats_show_the_breakers_live_nodes_hold_open() {
    let server = Server::start().await;
    let node = |name: &str| NodeInfo {
        name: name.to_string(),
        started_at: jiff::Timestamp::now(),
        last_seen: jiff::Timestamp::now(),
        queues: BTreeMap::from([("default".to_string(), 4)]),
        running: 0,
        http: None,
        breakers: BTreeMap::new(),
        remote: None,
        draining: false,
    };
    let mut tripped = node("node-a");
    let breaker = BreakerState {
        state: BreakerPhase::Open,
        since: jiff::Timestamp::now(),
        retry_at: None,
        last_error: "connection refused".into(),
        consecutive: 3,
    };
    tripped.breakers.insert("email".into(), breaker.clone());
    server.store.register_node(&tripped).await.unwrap();
    server.store.register_node(&node("node-b")).await.unwrap();

    let raw = server.get("/v1/stats").await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body["breakers"]["node-a"]["email"]["state"], "open");
    assert_eq!(
        raw.body["breakers"]["node-a"]["email"]["last_error"],
        "connection refused"
    );
    assert!(raw.body["breakers"].get("node-b").is_none(), "{}", raw.body);
    assert!(
        raw.body["total"].is_object(),
        "the counts stay at the top level"
    );
    let stats = server.client.stats().await.unwrap();
    assert_eq!(stats.breakers["node-a"]["email"], breaker);
    assert_eq!(stats.breakers.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn health_is_ok_while_serving() {
    let server = Server::start().await;
    let answer = server.get("/healthz").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!({"status": "ok"}));
    server.client.health().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn client_names_an_unreachable_server() {
    // Bind then drop, so the port is very likely closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = errand_client::Client::new(&base).unwrap();
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot reach errand at {base}: connection refused")
    );
}

#[test]
fn client_refuses_bad_urls() {
    for url in ["", "127.0.0.1:7070", "ftp://host", "http://host/?q=1"] {
        let err = errand_client::Client::new(url).unwrap_err();
        assert!(matches!(err, ClientError::BadUrl(_)), "{url}: {err:?}");
        assert!(err.to_string().starts_with("invalid errand URL"), "{err}");
    }
    errand_client::Client::new("http://127.0.0.1:7070/").unwrap();
}
