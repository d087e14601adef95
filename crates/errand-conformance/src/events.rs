//! Checks of events: publishing stores the event and one job per listener
//! atomically, listing goes newest first, unique keys dedupe per name, and
//! listener jobs live independent lives.

use crate::support::{claim, count_kind, expect_event, finish, fixed_backoff, get, job_in};
use errand_core::event::EventFilter;
use errand_core::store::Finish;
use errand_core::{Event, EventId, JobState, NewEvent, NewJob, Outcome, Store, StoreEvent};
use jiff::SignedDuration;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// An event named `name` with `data` and no unique key.
fn event(name: &str, data: Value) -> NewEvent {
    NewEvent {
        name: name.into(),
        data,
        unique_key: None,
    }
}

/// Listener jobs of `kinds` in queue `queue`, with payloads the store must
/// replace.
fn listeners(queue: &str, kinds: &[&str]) -> Vec<NewJob> {
    kinds
        .iter()
        .map(|k| NewJob {
            payload: json!("replaced by the store"),
            ..job_in(queue, k)
        })
        .collect()
}

/// Publishes and returns the event, which must be new.
async fn publish_new(store: &dyn Store, new: NewEvent, jobs: Vec<NewJob>) -> Event {
    let published = store.publish(new, jobs).await.expect("publish");
    assert!(!published.duplicate, "a new event is no duplicate");
    published.event
}

/// The event and one job per listener, in listener order, each with the
/// event as its payload; the event reads back as published; the listener
/// queue is announced; zero listeners still records the event.
async fn publish_stores_the_event_and_one_job_per_listener(store: Arc<dyn Store>) {
    let mut events = store.subscribe();
    let kinds = ["email_subscribers", "reindex_post", "audit"];
    let before = store.clock().now() - SignedDuration::from_secs(1);
    let e = publish_new(
        &*store,
        event("comment.created", json!({"post": 3, "by": "ann"})),
        listeners("listeners", &kinds),
    )
    .await;
    let after = store.clock().now() + SignedDuration::from_secs(1);
    assert_eq!(e.name, "comment.created");
    assert_eq!(e.data, json!({"post": 3, "by": "ann"}));
    assert_eq!(e.unique_key, None);
    assert!(e.published_at >= before && e.published_at <= after);
    assert_eq!(e.jobs.len(), kinds.len(), "one job per listener");
    assert!(e.jobs.windows(2).all(|w| w[0] < w[1]), "in listener order");
    for (id, kind) in e.jobs.iter().zip(kinds) {
        let j = get(&*store, *id).await;
        assert_eq!((j.kind.as_str(), j.queue.as_str()), (kind, "listeners"));
        assert_eq!(j.payload, e.listener_payload(), "the event is the payload");
        assert_eq!(j.state, JobState::Available);
    }
    assert_eq!(store.event(e.id).await.unwrap(), Some(e.clone()));
    expect_event(
        &mut events,
        "Enqueued(listeners) after publish",
        |ev| matches!(ev, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "listeners")),
    )
    .await;

    let lonely = publish_new(&*store, event("nobody.cares", Value::Null), Vec::new()).await;
    assert!(lonely.jobs.is_empty());
    assert!(lonely.id > e.id, "ids increase in publish order");
    assert_eq!(store.event(lonely.id).await.unwrap(), Some(lonely.clone()));
    assert_eq!(store.event(lonely.id + 1000).await.unwrap(), None);
    let total: u64 = store.stats().await.unwrap().total.values().sum();
    assert_eq!(total, 3, "only the listener jobs exist");
}

async fn event_ids(store: &dyn Store, filter: EventFilter) -> Vec<EventId> {
    let events = store.events(&filter).await.expect("events");
    events.iter().map(|e| e.id).collect()
}

/// Newest first, by name, by cursor and by page size; pages follow the
/// cursor without gaps or repeats.
async fn events_list_newest_first_by_name_and_cursor(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for name in ["a.x", "b.x", "a.x", "c.x", "a.x"] {
        let e = publish_new(&*store, event(name, json!({"n": ids.len()})), Vec::new()).await;
        ids.push(e.id);
    }
    let page = |limit| EventFilter {
        limit,
        ..Default::default()
    };
    let newest_first: Vec<EventId> = ids.iter().rev().copied().collect();
    assert_eq!(event_ids(&*store, page(100)).await, newest_first);
    let listed = store.events(&page(100)).await.unwrap();
    assert_eq!(listed[0], store.event(ids[4]).await.unwrap().unwrap());
    let named = |name: &str| EventFilter {
        name: Some(name.into()),
        ..page(100)
    };
    assert_eq!(
        event_ids(&*store, named("a.x")).await,
        [ids[4], ids[2], ids[0]]
    );
    assert_eq!(event_ids(&*store, named("c.x")).await, [ids[3]]);
    assert!(event_ids(&*store, named("zzz")).await.is_empty());
    let a_before = EventFilter {
        before: Some(ids[4]),
        limit: 1,
        ..named("a.x")
    };
    assert_eq!(event_ids(&*store, a_before).await, [ids[2]]);

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let got = event_ids(&*store, EventFilter { before, ..page(2) }).await;
        assert!(got.len() <= 2, "the page size is kept");
        let Some(&last) = got.last() else { break };
        pages.extend(got);
        before = Some(last);
    }
    assert_eq!(pages, newest_first);
}

/// A second publish with the same name and key returns the first event
/// and stores nothing; the same key under another name is a new event.
async fn event_unique_key_dedupes_per_name(store: Arc<dyn Store>) {
    let keyed = |name: &str, data| NewEvent {
        unique_key: Some("order-17".into()),
        ..event(name, data)
    };
    let kinds = ["receipt", "ledger"];
    let first = publish_new(
        &*store,
        keyed("order.paid", json!(1)),
        listeners("default", &kinds),
    )
    .await;
    assert_eq!(first.unique_key.as_deref(), Some("order-17"));
    let again = store
        .publish(keyed("order.paid", json!(2)), listeners("default", &kinds))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event, first, "the first event, unchanged");
    assert_eq!(count_kind(&*store, "receipt").await, 1, "no new jobs");
    assert_eq!(count_kind(&*store, "ledger").await, 1, "no new jobs");
    let all = EventFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(event_ids(&*store, all.clone()).await, [first.id]);

    let other = publish_new(
        &*store,
        keyed("order.refunded", json!(3)),
        listeners("default", &kinds),
    )
    .await;
    assert_ne!(other.id, first.id);
    assert_eq!(other.jobs.len(), 2);
    assert_eq!(count_kind(&*store, "receipt").await, 2);
    assert_eq!(event_ids(&*store, all).await, [other.id, first.id]);
}

/// One listener's failure or retry leaves the others as they were: only
/// the retried job runs again.
async fn listener_jobs_are_independent(store: Arc<dyn Store>) {
    let e = publish_new(
        &*store,
        event("post.published", json!({"post": 9})),
        listeners("fan", &["notify", "index", "thumbnail", "audit"]),
    )
    .await;
    let claimed = claim(&*store, "fan", 10).await;
    let ids: Vec<_> = claimed.iter().map(|j| j.id).collect();
    assert_eq!(ids, e.jobs, "claimed in listener order");

    assert!(
        finish(
            &*store,
            claimed[0].lease(),
            Outcome::Permanent("bad".into())
        )
        .await
    );
    for j in &claimed[1..] {
        assert_eq!(
            &get(&*store, j.id).await,
            j,
            "a failing listener touches no other"
        );
    }
    assert!(finish(&*store, claimed[1].lease(), Outcome::Success(None)).await);
    let retry = Finish {
        lease: claimed[2].lease(),
        outcome: Outcome::Retry("flaky".into()),
        backoff: fixed_backoff(Duration::ZERO),
    };
    assert_eq!(store.finish(vec![retry]).await.unwrap(), [true]);
    let again = claim(&*store, "fan", 10).await;
    let again: Vec<_> = again.iter().map(|j| (j.id, j.attempt)).collect();
    assert_eq!(
        again,
        [(e.jobs[2], 2)],
        "only the retried listener runs again"
    );

    assert_eq!(get(&*store, e.jobs[0]).await.state, JobState::Failed);
    let done = get(&*store, e.jobs[1]).await;
    assert_eq!((done.state, done.attempt), (JobState::Completed, 1));
    assert_eq!(&get(&*store, e.jobs[3]).await, &claimed[3]);
    assert_eq!(
        store.event(e.id).await.unwrap(),
        Some(e),
        "the event is unchanged"
    );
}

crate::checks![
    publish_stores_the_event_and_one_job_per_listener,
    events_list_newest_first_by_name_and_cursor,
    event_unique_key_dedupes_per_name,
    listener_jobs_are_independent,
];
