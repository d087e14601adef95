//! The per-kind breaker against a real SQLite store: a kind whose handler
//! fails deadly stops being claimed after the threshold (other kinds keep
//! running), the node registry shows the breaker, and once the outage ends
//! a probe closes it and every job completes without failing.

mod common;

use common::*;
use errand_core::store::NODE_ALIVE_WINDOW;
use errand_core::{BreakerPhase, BreakerState, JobState, KindPolicy, Store};
use errand_worker::{BreakerConfig, JobContext, JobError, Worker};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

const JOBS: usize = 50;
const CONCURRENCY: usize = 4;

/// Invocations of the flaky kind, and the most that ran at once.
#[derive(Default)]
struct Calls {
    total: AtomicU32,
    running: AtomicU32,
    most_at_once: AtomicU32,
}

/// The breaker of kind `flaky` as this node last reported it, if not closed.
async fn reported(store: &Arc<dyn Store>) -> Option<BreakerState> {
    let nodes = store.nodes(NODE_ALIVE_WINDOW).await.unwrap();
    nodes
        .iter()
        .find(|n| n.name == "test-worker")?
        .breakers
        .get("flaky")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadly_kind_stops_being_claimed_until_a_probe_succeeds() {
    let (store, _dir) = store().await;
    let down = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(Calls::default());
    let mut config = config("default", CONCURRENCY);
    config.breaker = BreakerConfig {
        threshold: 3,
        base: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    let mut worker = Worker::new(store.clone(), config);
    let (d, c) = (down.clone(), calls.clone());
    worker
        .handler(
            "flaky",
            KindPolicy::default(),
            move |_: serde_json::Value, _: JobContext| {
                let (down, calls) = (d.clone(), c.clone());
                async move {
                    calls.total.fetch_add(1, Ordering::SeqCst);
                    let now = calls.running.fetch_add(1, Ordering::SeqCst) + 1;
                    calls.most_at_once.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    calls.running.fetch_sub(1, Ordering::SeqCst);
                    if down.load(Ordering::SeqCst) {
                        Err(JobError::Deadly("smtp down".into()))
                    } else {
                        Ok(None)
                    }
                }
            },
        )
        .handler(
            "steady",
            KindPolicy::default(),
            |_: serde_json::Value, _| async { Ok(Some(json!("ok"))) },
        );
    let flaky: Vec<_> = (0..JOBS).map(|i| job("flaky", json!(i))).collect();
    let flaky_ids: Vec<_> = store
        .enqueue(flaky)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    let running = Running::spawn(worker);

    eventually(DEADLINE, "the registry shows the breaker", || async {
        reported(&store).await.is_some()
    })
    .await;
    let state = reported(&store).await.unwrap();
    assert_eq!(state.last_error, "smtp down");
    assert!(state.consecutive >= 3, "{state:?}");

    // While it is open, the other kind runs and the flaky one is only probed.
    calls.most_at_once.store(0, Ordering::SeqCst);
    let before = calls.total.load(Ordering::SeqCst);
    for i in 0..20 {
        enqueue(&store, job("steady", json!(i))).await;
    }
    eventually(DEADLINE, "the other kind completes", || async {
        store
            .stats()
            .await
            .unwrap()
            .of_kind("steady", JobState::Completed)
            == 20
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = calls.total.load(Ordering::SeqCst) - before;
    // Waits of 0.2, 0.4, 0.8 then 1 s (less jitter): at most 6 probes in
    // the 3 s window plus the time the other kind took.
    assert!(during <= 12, "{during} flaky invocations while open");
    assert!(
        calls.most_at_once.load(Ordering::SeqCst) <= 1,
        "probes run alone"
    );
    assert_eq!(
        store
            .stats()
            .await
            .unwrap()
            .of_kind("flaky", JobState::Completed),
        0
    );
    let state = reported(&store).await.expect("still not closed");
    assert!(
        matches!(state.state, BreakerPhase::Open | BreakerPhase::HalfOpen),
        "{state:?}"
    );

    down.store(false, Ordering::SeqCst);
    eventually(DEADLINE, "every flaky job completes", || async {
        store
            .stats()
            .await
            .unwrap()
            .of_kind("flaky", JobState::Completed)
            == JOBS as u64
    })
    .await;
    eventually(
        DEADLINE,
        "the registry shows the breaker closed",
        || async { reported(&store).await.is_none() },
    )
    .await;
    running.stop().await;

    let total = calls.total.load(Ordering::SeqCst) as usize;
    assert!(
        total < JOBS + 30,
        "{total} invocations for {JOBS} jobs: the outage was hammered"
    );
    for id in flaky_ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert!(job.attempt <= 8, "job {id} ran {} times", job.attempt);
        assert!(job.errors.len() <= 7, "job {id}: {:?}", job.errors);
    }
    for state in [JobState::Failed, JobState::Retryable] {
        assert_eq!(
            store.stats().await.unwrap().of_kind("flaky", state),
            0,
            "{state:?}"
        );
    }
}
