//! Events over HTTP: publishing makes one job per configured listener,
//! a unique key makes a second publish a duplicate, the event's view shows
//! each listener's job as it stands, and listing pages newest first.

mod common;

use common::{Server, config};
use errand_core::event::EventFilter;
use errand_core::{JobState, NewEvent, Outcome};
use serde_json::json;
use std::sync::Arc;

fn event(name: &str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        name: name.into(),
        data,
        unique_key: None,
    }
}

#[tokio::test]
async fn publish_enqueues_one_job_per_listener_in_order() {
    let server = Server::start().await;
    let answer = server
        .post(
            "/v1/events",
            &json!({"name": "comment.created", "data": {"post": 3}}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["duplicate"], false);
    let event = &answer.body["event"];
    assert_eq!(event["name"], "comment.created");
    assert_eq!(event["data"]["post"], 3);
    let jobs = answer.body["jobs"].as_array().unwrap();
    let kinds: Vec<_> = jobs.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["send_email", "resize"]);
    assert_eq!(
        jobs[0]["queue"], "mail",
        "the listener kind's policy applies"
    );
    assert_eq!(event["jobs"], json!([jobs[0]["id"], jobs[1]["id"]]));
    for job in jobs {
        assert_eq!(job["state"], "available");
        assert_eq!(job["payload"]["event"]["id"], event["id"]);
        assert_eq!(job["payload"]["event"]["data"]["post"], 3);
    }
    let stats = server.stats().await;
    assert_eq!(stats.total.get(&JobState::Available), Some(&2));
    server.stop().await;
}

#[tokio::test]
async fn a_second_publish_with_the_key_is_a_duplicate() {
    let server = Server::start().await;
    let mut first = event("order.paid", json!({"order": 1}));
    first.unique_key = Some("order-1".into());
    let published = server.client.publish(&first).await.unwrap();
    assert!(!published.duplicate);
    assert_eq!(published.jobs.len(), 1);
    let stats = server.stats().await;

    let again = server
        .post(
            "/v1/events",
            &json!({"name": "order.paid", "data": {"order": 2}, "unique_key": "order-1"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["event"]["id"], published.event.id);
    assert_eq!(again.body["event"]["data"]["order"], 1, "the first event");
    assert_eq!(again.body["jobs"][0]["id"], published.jobs[0].id);
    assert_eq!(server.stats().await, stats, "a duplicate enqueues nothing");

    // The key is per name: another event may use it.
    let mut other = event("comment.created", json!(null));
    other.unique_key = Some("order-1".into());
    assert!(!server.client.publish(&other).await.unwrap().duplicate);
    server.stop().await;
}

#[tokio::test]
async fn the_event_view_shows_each_listener_job_state() {
    let server = Server::start().await;
    let published = server
        .client
        .publish(&event("comment.created", json!({"post": 9})))
        .await
        .unwrap();
    server
        .run_next("mail", Outcome::Permanent("smtp said no".into()))
        .await;

    let view = server.client.event(published.event.id).await.unwrap();
    assert_eq!(view.event, published.event);
    let states: Vec<_> = view
        .jobs
        .iter()
        .map(|j| (j.kind.as_str(), j.state))
        .collect();
    assert_eq!(
        states,
        [
            ("send_email", JobState::Failed),
            ("resize", JobState::Available)
        ],
        "one listener failing leaves the other alone"
    );
    assert_eq!(view.jobs[0].errors[0].error, "smtp said no");

    let missing = server.get("/v1/events/999").await;
    missing.assert_problem(404, None);
    assert_eq!(missing.body["detail"], "event 999 not found");
    server.stop().await;
}

#[tokio::test]
async fn events_list_newest_first_by_name_in_pages() {
    let server = Server::start().await;
    let mut comments = Vec::new();
    for i in 0..5 {
        let name = if i % 2 == 0 {
            "comment.created"
        } else {
            "order.paid"
        };
        let published = server.client.publish(&event(name, json!(i))).await.unwrap();
        if name == "comment.created" {
            comments.push(published.event.id);
        }
    }
    comments.reverse();

    let mut filter = EventFilter {
        name: Some("comment.created".into()),
        before: None,
        limit: 2,
    };
    let mut seen = Vec::new();
    for _ in 0..5 {
        let page = server.client.events(&filter).await.unwrap();
        assert!(page.events.iter().all(|e| e.name == "comment.created"));
        seen.extend(page.events.iter().map(|e| e.id));
        match page.next_cursor {
            Some(cursor) => filter.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen, comments, "every comment event once, newest first");

    let all = server.get("/v1/events").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["events"].as_array().unwrap().len(), 5);
    assert_eq!(all.body["next_cursor"], json!(null));
    server.stop().await;
}

#[tokio::test]
async fn unknown_events_can_be_recorded_without_listeners() {
    let mut config = config();
    config.catalog = Arc::new((*config.catalog).clone().record_unknown_events(true));
    let server = Server::with(config).await;
    let answer = server
        .post("/v1/events", &json!({"name": "user.signed_in"}))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body["jobs"], json!([]));
    assert_eq!(answer.body["event"]["jobs"], json!([]));
    let id = answer.body["event"]["id"].as_i64().unwrap();
    let view = server.client.event(id).await.unwrap();
    assert_eq!(view.event.name, "user.signed_in");
    assert_eq!(view.event.data, json!(null));
    assert!(server.stats().await.total.is_empty(), "no job was made");
    server.stop().await;
}
