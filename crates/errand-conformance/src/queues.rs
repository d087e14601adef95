//! Checks of queue pausing: a paused queue accepts jobs and hands out
//! none until it is resumed.

use errand_core::audit::AuditActor;
use crate::support::{claim, enqueue, expect_event, job_in};
use errand_core::{JobState, QueueInfo, Store, StoreEvent};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A paused queue takes enqueues but its claims return nothing, while
/// other queues run on; resuming makes its jobs claimable and announces it.
async fn paused_queue_accepts_but_claims_nothing(store: Arc<dyn Store>) {
    store.set_queue_paused("pq", true, &AuditActor::Local).await.unwrap();
    let ids = enqueue(&*store, vec![job_in("pq", "a"), job_in("pq", "b")]).await;
    assert_eq!(ids.len(), 2, "a paused queue still accepts jobs");
    enqueue(&*store, vec![job_in("other", "c")]).await;
    assert!(
        claim(&*store, "pq", 10).await.is_empty(),
        "paused: no claim"
    );
    assert_eq!(claim(&*store, "other", 10).await.len(), 1, "others run");
    // Pausing twice is harmless.
    store.set_queue_paused("pq", true, &AuditActor::Local).await.unwrap();
    assert!(claim(&*store, "pq", 10).await.is_empty());

    let mut events = store.subscribe();
    store.set_queue_paused("pq", false, &AuditActor::Local).await.unwrap();
    expect_event(
        &mut events,
        "Enqueued(pq) on resume",
        |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == "pq")),
    )
    .await;
    let claimed: Vec<_> = claim(&*store, "pq", 10)
        .await
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(claimed, ids, "resumed: every job is claimable");
}

/// `queues()` lists queues with jobs and paused queues without any, with
/// their counts by state and paused flags, by name.
async fn queues_list_counts_and_paused_flags(store: Arc<dyn Store>) {
    assert!(
        store.queues().await.unwrap().is_empty(),
        "a new store has none"
    );
    enqueue(&*store, vec![job_in("busy", "a"), job_in("busy", "b")]).await;
    claim(&*store, "busy", 1).await;
    store.set_queue_paused("idle", true, &AuditActor::Local).await.unwrap();
    store.set_queue_paused("resumed", true, &AuditActor::Local).await.unwrap();
    store.set_queue_paused("resumed", false, &AuditActor::Local).await.unwrap();
    let counts = |pairs: &[(JobState, u64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    assert_eq!(
        store.queues().await.unwrap(),
        vec![
            QueueInfo {
                name: "busy".into(),
                paused: false,
                counts: counts(&[(JobState::Available, 1), (JobState::Running, 1)]),
            },
            QueueInfo {
                name: "idle".into(),
                paused: true,
                counts: counts(&[]),
            },
            QueueInfo {
                name: "resumed".into(),
                paused: false,
                counts: counts(&[]),
            },
        ]
    );
}

/// `oldest_available` answers the earliest `run_at` among a queue's
/// available jobs whatever their priorities, ignoring scheduled jobs,
/// running jobs and other queues; `None` when none waits.
async fn oldest_available_spans_priorities(store: Arc<dyn Store>) {
    assert_eq!(store.oldest_available("wq").await.unwrap(), None);
    let now = store.clock().now();
    let now = jiff::Timestamp::from_microsecond(now.as_microsecond()).unwrap();
    let at = |secs: i64, priority: i16| {
        let mut job = job_in("wq", "a");
        job.run_at = Some(now + jiff::SignedDuration::from_secs(secs));
        job.priority = priority;
        job
    };
    let mut elsewhere = job_in("other", "a");
    elsewhere.run_at = Some(now - jiff::SignedDuration::from_secs(600));
    enqueue(
        &*store,
        vec![at(-60, 5), at(-10, -1), at(3600, -2), elsewhere],
    )
    .await;
    let oldest = now - jiff::SignedDuration::from_secs(60);
    assert_eq!(store.oldest_available("wq").await.unwrap(), Some(oldest));
    // The claim takes priority -1 first: the oldest (priority 5) still waits.
    assert_eq!(claim(&*store, "wq", 1).await.len(), 1);
    assert_eq!(store.oldest_available("wq").await.unwrap(), Some(oldest));
    assert_eq!(claim(&*store, "wq", 10).await.len(), 1, "scheduled stays");
    assert_eq!(store.oldest_available("wq").await.unwrap(), None);
}

crate::checks![
    paused_queue_accepts_but_claims_nothing,
    queues_list_counts_and_paused_flags,
    oldest_available_spans_priorities,
];
