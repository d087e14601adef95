//! Checks of schedule ticks: each tick of a schedule enqueues at most once,
//! only moving forward, even when many nodes race on it.

use crate::support::{count_kind, job_in};
use errand_core::Store;
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A fixed tick, on a whole second so every engine stores it exactly.
fn tick(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap() + SignedDuration::from_mins(minutes)
}

/// The first tick enqueues; the same or an older tick changes nothing; a
/// newer one enqueues again; a tick without a job is recorded all the same;
/// schedules are independent; `ticks()` holds the latest of each.
async fn record_tick_enqueues_once_per_tick(store: Arc<dyn Store>) {
    let cleanup = || Some(job_in("sched", "cleanup"));
    let first = store
        .record_tick("nightly", tick(0), cleanup())
        .await
        .unwrap()
        .expect("the first tick enqueues");
    assert!(!first.duplicate);
    assert_eq!(
        (first.job.kind.as_str(), first.job.queue.as_str()),
        ("cleanup", "sched")
    );
    assert_eq!(
        store.get(first.job.id).await.unwrap(),
        Some(first.job.clone())
    );
    for (again, what) in [(tick(0), "the same tick"), (tick(-1), "an older tick")] {
        let answer = store
            .record_tick("nightly", again, cleanup())
            .await
            .unwrap();
        assert_eq!(answer, None, "{what} enqueues nothing");
    }
    assert_eq!(count_kind(&*store, "cleanup").await, 1);
    assert_eq!(
        store.ticks().await.unwrap(),
        BTreeMap::from([("nightly".to_string(), tick(0))])
    );

    let next = store
        .record_tick("nightly", tick(1), cleanup())
        .await
        .unwrap();
    assert!(next.expect("a newer tick enqueues").job.id > first.job.id);
    let other = store
        .record_tick("hourly", tick(0), cleanup())
        .await
        .unwrap();
    assert!(other.is_some(), "schedules are independent");

    assert_eq!(
        store.record_tick("silent", tick(5), None).await.unwrap(),
        None
    );
    let late = store
        .record_tick("silent", tick(5), cleanup())
        .await
        .unwrap();
    assert_eq!(late, None, "a tick without a job is recorded too");
    assert_eq!(count_kind(&*store, "cleanup").await, 3);
    assert_eq!(
        store.ticks().await.unwrap(),
        BTreeMap::from([
            ("hourly".to_string(), tick(0)),
            ("nightly".to_string(), tick(1)),
            ("silent".to_string(), tick(5)),
        ])
    );
}

/// Twenty callers racing on one tick: exactly one enqueues, round after round.
async fn record_tick_race_has_one_winner(store: Arc<dyn Store>) {
    const CALLERS: usize = 20;
    for round in 1..=3 {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .record_tick("race", tick(round), Some(job_in("sched", "raced")))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(winners, 1, "round {round}: one caller enqueues");
        assert_eq!(count_kind(&*store, "raced").await, round as u64);
        assert_eq!(store.ticks().await.unwrap()["race"], tick(round));
    }
}

crate::checks![
    record_tick_enqueues_once_per_tick,
    record_tick_race_has_one_winner,
];
