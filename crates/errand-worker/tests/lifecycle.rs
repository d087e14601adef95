//! The runtime's life cycle on a real SQLite store: lost leases stop their
//! attempts, graceful shutdown finishes or hands back, enqueue events wake
//! an idle worker, and maintenance rescues jobs of a dead worker.

mod common;

use common::*;
use errand_core::audit::AuditActor;
use errand_core::store::ClaimRequest;
use errand_core::{Clock, JobState, KindPolicy};
use errand_worker::{JobContext, MaintenanceConfig, Worker, run_maintenance};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A handler that runs until cancelled (or `max` passes), noting that it saw the cancellation.
async fn until_cancelled(
    ctx: JobContext,
    max: Duration,
    saw_cancel: Arc<AtomicBool>,
) -> errand_worker::HandlerResult {
    tokio::select! {
        _ = ctx.cancel.cancelled() => {
            saw_cancel.store(true, Ordering::SeqCst);
            Ok(Some(json!("stopped")))
        }
        _ = tokio::time::sleep(max) => Ok(Some(json!("ran to the end"))),
    }
}

/// Maintenance ticking every 100 ms, stopped by the returned token.
fn start_maintenance(
    store: &Arc<dyn errand_core::Store>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let config = MaintenanceConfig {
        interval: Duration::from_millis(100),
        ..MaintenanceConfig::default()
    };
    let handle = tokio::spawn(run_maintenance(store.clone(), config, stop.clone()));
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_cancels_the_attempt_and_the_job_stays_cancelled() {
    let (store, _dir) = store().await;
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let mut worker = Worker::new(store.clone(), config("default", 2));
    let flag = saw_cancel.clone();
    worker.handler(
        "long",
        KindPolicy::default(),
        move |_: serde_json::Value, ctx| {
            until_cancelled(ctx, Duration::from_secs(60), flag.clone())
        },
    );
    let running = Running::spawn(worker);
    let id = enqueue(&store, job("long", json!(null))).await;
    wait_state(&store, id, JobState::Running).await;

    store.cancel(id, &AuditActor::Local).await.unwrap();
    let start = tokio::time::Instant::now();
    while !saw_cancel.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < DEADLINE,
            "the handler was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the dropped outcome time to (wrongly) reach the store.
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    let job = store.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.result, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_short_jobs_and_hands_back_long_ones() {
    let (store, _dir) = store().await;
    let started = Arc::new(AtomicU32::new(0));
    let mut cfg = config("default", 3);
    cfg.shutdown_timeout = Duration::from_secs(2);
    let mut worker = Worker::new(store.clone(), cfg);
    let count = started.clone();
    worker.handler(
        "short",
        KindPolicy::default(),
        move |_: serde_json::Value, _| {
            count.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                Ok(Some(json!("done")))
            }
        },
    );
    let count = started.clone();
    worker.handler(
        "long",
        KindPolicy::default(),
        move |_: serde_json::Value, ctx| {
            count.fetch_add(1, Ordering::SeqCst);
            until_cancelled(
                ctx,
                Duration::from_secs(60),
                Arc::new(AtomicBool::new(false)),
            )
        },
    );
    let running = Running::spawn(worker);
    let long = enqueue(&store, job("long", json!(null))).await;
    let short = [
        enqueue(&store, job("short", json!(1))).await,
        enqueue(&store, job("short", json!(2))).await,
    ];
    for id in [long, short[0], short[1]] {
        wait_state(&store, id, JobState::Running).await;
    }
    // Every slot is busy: these wait, and must not start once shutdown begins.
    let mut waiting = Vec::new();
    for i in 0..5 {
        waiting.push(enqueue(&store, job("short", json!(10 + i))).await);
    }
    let began = tokio::time::Instant::now();
    running.stop().await;
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "waited for the grace period"
    );

    for id in short {
        let j = store.get(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.result),
            (JobState::Completed, Some(json!("done")))
        );
    }
    let j = store.get(long).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Available, "handed back");
    assert_eq!(
        (j.attempt, j.max_attempts),
        (0, 25),
        "the attempt is refunded"
    );
    assert!(j.errors.is_empty(), "{:?}", j.errors);
    for id in waiting {
        let j = store.get(id).await.unwrap().unwrap();
        assert_eq!((j.state, j.attempt), (JobState::Available, 0));
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "nothing new started after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_is_woken_by_an_enqueue_not_the_poll() {
    let (store, _dir) = store().await;
    let mut cfg = config("default", 4);
    cfg.poll_interval = Duration::from_secs(30);
    let mut worker = Worker::new(store.clone(), cfg);
    worker.handler(
        "ping",
        KindPolicy::default(),
        |_: serde_json::Value, _| async { Ok(Some(json!("pong"))) },
    );
    let running = Running::spawn(worker);
    // Let the worker find the queue empty and go to sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let enqueued = tokio::time::Instant::now();
        let id = enqueue(&store, job("ping", json!(null))).await;
        let j = wait_state(&store, id, JobState::Completed).await;
        assert!(
            enqueued.elapsed() < Duration::from_secs(10),
            "picked up only after {:?}: the poll, not the event",
            enqueued.elapsed()
        );
        assert_eq!(j.result, Some(json!("pong")));
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_rescues_a_dead_workers_job() {
    let clock = Clock::manual(jiff::Timestamp::now());
    let (store, _dir) = store_on(clock.clone()).await;
    let lease = Duration::from_secs(30);
    let id = enqueue(&store, job("work", json!(null))).await;
    let claimed = store
        .claim(&ClaimRequest {
            queue: "default".into(),
            kinds: vec!["work".into()],
            limit: 1,
            worker: "dead-worker".into(),
            lease,
            limits: Default::default(),
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!(claimed.len(), 1);

    let mut worker = Worker::new(store.clone(), config("default", 2));
    worker.handler(
        "work",
        KindPolicy::default(),
        |_: serde_json::Value, ctx: JobContext| async move {
            Ok(Some(json!({"attempt": ctx.attempt, "worker_saw": ctx.id})))
        },
    );
    let running = Running::spawn(worker);
    let (stop_maintenance, maintenance) = start_maintenance(&store);
    clock.advance(lease + Duration::from_secs(1));

    let j = wait_state(&store, id, JobState::Completed).await;
    assert_eq!(j.attempt, 2);
    assert_eq!(j.result, Some(json!({"attempt": 2, "worker_saw": id})));
    assert!(
        j.errors[0].error.contains("lease expired"),
        "{:?}",
        j.errors
    );

    stop_maintenance.cancel();
    tokio::time::timeout(DEADLINE, maintenance)
        .await
        .unwrap()
        .unwrap();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_job_longer_than_its_lease() {
    let clock = Clock::manual(jiff::Timestamp::now());
    let (store, _dir) = store_on(clock.clone()).await;
    let mut cfg = config("default", 1);
    cfg.heartbeat = Duration::from_millis(50);
    let lease = cfg.lease;
    let mut worker = Worker::new(store.clone(), cfg);
    let done = Arc::new(tokio::sync::Notify::new());
    let release = done.clone();
    worker.handler(
        "slow",
        KindPolicy::default(),
        move |_: serde_json::Value, ctx: JobContext| {
            let release = release.clone();
            async move {
                release.notified().await;
                Ok(Some(json!(ctx.attempt)))
            }
        },
    );
    let running = Running::spawn(worker);
    let (stop_maintenance, maintenance) = start_maintenance(&store);
    let id = enqueue(&store, job("slow", json!(null))).await;
    wait_state(&store, id, JobState::Running).await;
    // Three times two thirds of a lease: the first lease alone would have
    // run out, each heartbeat pushes the expiry a lease past the new now.
    // Wait for that renewal (an expiry still a third of a lease ahead is
    // the previous one's), or the next advance could outrun the heartbeat.
    for _ in 0..3 {
        clock.advance(lease * 2 / 3);
        let renewed = errand_core::duration::after(clock.now(), lease / 2).unwrap();
        wait_for(&store, id, |j| {
            j.lease_expires_at.is_some_and(|at| at > renewed)
        })
        .await;
        assert!(
            store.rescue_expired().await.unwrap().is_empty(),
            "nothing expired"
        );
    }
    done.notify_one();
    let j = wait_state(&store, id, JobState::Completed).await;
    assert_eq!((j.attempt, j.result), (1, Some(json!(1))), "never rescued");
    assert!(j.errors.is_empty(), "{:?}", j.errors);
    stop_maintenance.cancel();
    maintenance.await.unwrap();
    running.stop().await;
}

/// A job held back by its kind's rate starts when the store's clock
/// reaches the rate window's end, not at the next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_held_job_starts_when_the_clock_reopens_the_window() {
    let clock = Clock::manual(jiff::Timestamp::now());
    let (store, _dir) = store_on(clock.clone()).await;
    let mut cfg = config("default", 4);
    // Only the clock can wake the held claim in time.
    cfg.poll_interval = Duration::from_secs(300);
    let mut worker = Worker::new(store.clone(), cfg);
    let policy = KindPolicy {
        limit: errand_core::KindLimit {
            max_running: None,
            rate: Some("1/min".parse().unwrap()),
        },
        ..KindPolicy::default()
    };
    worker.handler("rated", policy, |_: serde_json::Value, _| async {
        Ok(Some(json!("sent")))
    });
    let first = enqueue(&store, job("rated", json!(1))).await;
    let second = enqueue(&store, job("rated", json!(2))).await;
    let running = Running::spawn(worker);
    wait_state(&store, first, JobState::Completed).await;
    assert_eq!(
        store.get(second).await.unwrap().unwrap().state,
        JobState::Available,
        "held by the rate"
    );
    clock.advance(Duration::from_secs(61));
    let j = wait_state(&store, second, JobState::Completed).await;
    assert!(j.started_at.unwrap() >= clock.now() - jiff::SignedDuration::from_secs(1));
    running.stop().await;
}
