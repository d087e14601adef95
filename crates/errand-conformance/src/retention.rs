//! Checks of pruning beyond jobs: events and finished batches go once older
//! than the longest retention age; unfinished batches stay.

use crate::support::{claim, finish, job_in};
use errand_core::event::EventFilter;
use errand_core::{NewBatch, NewEvent, Outcome, Retention, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Events and finished batches survive while any retention age is longer
/// than they are old, and are deleted once every age is shorter; an
/// unfinished batch and a live listener job are never deleted.
async fn prune_removes_old_events_and_finished_batches(store: Arc<dyn Store>) {
    let event = NewEvent {
        name: "old.news".into(),
        data: json!({"n": 1}),
        unique_key: None,
    };
    let published = store
        .publish(event, vec![job_in("listeners", "listener")])
        .await
        .unwrap()
        .event;
    let one = |queue: &str| NewBatch {
        jobs: vec![job_in(queue, "part")],
        on_complete: None,
    };
    let finished = store.create_batch(one("done")).await.unwrap();
    let live = store.create_batch(one("live")).await.unwrap();
    let j = claim(&*store, "done", 1).await.remove(0);
    assert!(finish(&*store, j.lease(), Outcome::Success(None)).await);
    assert!(
        store
            .batch(finished.id)
            .await
            .unwrap()
            .unwrap()
            .is_finished()
    );
    // Finished strictly before the cutoff of a zero retention.
    store.clock().advance(Duration::from_millis(20));

    let hour = Duration::from_secs(3600);
    let one_long = Retention {
        completed: Duration::ZERO,
        failed: hour,
        cancelled: Duration::ZERO,
        ..Retention::default()
    };
    store.prune(&one_long).await.unwrap();
    assert!(
        store.event(published.id).await.unwrap().is_some(),
        "the longest age keeps events"
    );
    assert!(
        store.batch(finished.id).await.unwrap().is_some(),
        "and finished batches"
    );

    let none_kept = Retention {
        failed: Duration::ZERO,
        ..one_long
    };
    store.prune(&none_kept).await.unwrap();
    assert_eq!(store.event(published.id).await.unwrap(), None);
    let all = EventFilter {
        limit: 100,
        ..Default::default()
    };
    assert!(store.events(&all).await.unwrap().is_empty());
    assert_eq!(store.batch(finished.id).await.unwrap(), None);
    assert!(
        store.batch(live.id).await.unwrap().is_some(),
        "an unfinished batch stays"
    );
    assert_eq!(store.batch_jobs(live.id).await.unwrap().len(), 1);
    assert!(
        store.get(published.jobs[0]).await.unwrap().is_some(),
        "a live listener job stays"
    );
}

crate::checks![
    prune_removes_old_events_and_finished_batches,
];
