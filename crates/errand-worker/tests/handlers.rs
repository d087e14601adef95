//! Typed handlers against a real SQLite store: each outcome lands the job
//! in the right state, payload mismatches and panics are recorded, and bad
//! configurations are refused before anything is claimed.

mod common;

use common::*;
use errand_core::{Backoff, JobState, KindPolicy};
use errand_worker::{JobContext, JobError, Worker, WorkerError};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// Retries wait an hour so that a retried job stays visible as retryable.
fn slow_retries() -> KindPolicy {
    KindPolicy {
        backoff: Backoff {
            base: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            jitter: 0.0,
        },
        ..KindPolicy::default()
    }
}

fn worker(store: &std::sync::Arc<dyn errand_core::Store>) -> Worker {
    let mut w = Worker::new(store.clone(), config("default", 8));
    // A deadly outcome gives its attempt back, so the attempt number cannot
    // tell the runs of `deadly_once` apart: a counter does.
    let deadly_runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let p = slow_retries;
    w.handler("add", p(), |x: Add, _ctx: JobContext| async move {
        Ok(Some(json!({"sum": x.a + x.b})))
    })
    .handler("retry", p(), |_: serde_json::Value, _| async {
        Err(JobError::Retry("boom".into()))
    })
    .handler("question_mark", p(), |s: String, _| async move {
        let n: i32 = s.parse()?;
        Ok(Some(json!(n)))
    })
    .handler("permanent", p(), |_: serde_json::Value, _| async {
        Err(JobError::Permanent("bad input".into()))
    })
    .handler("snooze", p(), |_: serde_json::Value, _| async {
        Err(JobError::Snooze(Duration::from_secs(3600)))
    })
    .handler(
        "deadly_once",
        p(),
        move |_: serde_json::Value, ctx: JobContext| {
            let first = deadly_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(JobError::Deadly("database down".into()))
                } else {
                    Ok(Some(json!(ctx.attempt)))
                }
            }
        },
    )
    .handler("panic", p(), |n: u32, _| async move {
        if n > 0 {
            panic!("kaboom {n}");
        }
        Ok(None)
    });
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_lands_in_its_state() {
    let (store, _dir) = store().await;
    let running = Running::spawn(worker(&store));

    let add = enqueue(&store, job("add", json!({"a": 2, "b": 40}))).await;
    let retry = enqueue(&store, job("retry", json!(null))).await;
    let qm = enqueue(&store, job("question_mark", json!("twelve"))).await;
    let permanent = enqueue(&store, job("permanent", json!(null))).await;
    let snooze = enqueue(&store, job("snooze", json!(null))).await;
    let deadly = enqueue(&store, job("deadly_once", json!(null))).await;
    let mismatch = enqueue(&store, job("add", json!({"a": "two"}))).await;
    let panic = enqueue(&store, job("panic", json!(7))).await;

    let j = wait_state(&store, add, JobState::Completed).await;
    assert_eq!(j.result, Some(json!({"sum": 42})));
    assert_eq!(j.attempt, 1);

    let j = wait_state(&store, retry, JobState::Retryable).await;
    assert_eq!(j.errors.len(), 1);
    assert_eq!(
        (j.errors[0].attempt, j.errors[0].error.as_str()),
        (1, "boom")
    );

    let j = wait_state(&store, qm, JobState::Retryable).await;
    assert!(
        j.errors[0].error.contains("invalid digit"),
        "{:?}",
        j.errors
    );

    let j = wait_state(&store, permanent, JobState::Failed).await;
    assert_eq!(j.errors[0].error, "bad input");

    let j = wait_state(&store, snooze, JobState::Scheduled).await;
    assert_eq!(
        (j.attempt, j.max_attempts),
        (0, 25),
        "a snooze does not use an attempt"
    );
    assert!(j.run_at > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3000));

    // Deadly hands the job back at once without using the attempt; the
    // second attempt then succeeds.
    let j = wait_state(&store, deadly, JobState::Completed).await;
    assert_eq!((j.attempt, j.max_attempts), (1, 25));
    assert_eq!(
        j.result,
        Some(json!(1)),
        "the run after it is attempt 1 again"
    );
    assert_eq!(j.errors[0].attempt, 1);
    assert!(
        j.errors[0].error.contains("database down"),
        "{:?}",
        j.errors
    );

    let j = wait_state(&store, mismatch, JobState::Failed).await;
    assert!(
        j.errors[0].error.contains("payload does not match") && j.errors[0].error.contains("a"),
        "{:?}",
        j.errors
    );
    assert!(j.errors[0].error.contains("invalid type"), "{:?}", j.errors);

    let j = wait_state(&store, panic, JobState::Retryable).await;
    assert_eq!(j.errors[0].error, "panicked: kaboom 7");

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_does_not_take_the_worker_down() {
    let (store, _dir) = store().await;
    let running = Running::spawn(worker(&store));
    let first = enqueue(&store, job("panic", json!(1))).await;
    wait_state(&store, first, JobState::Retryable).await;
    let after = enqueue(&store, job("panic", json!(0))).await;
    wait_state(&store, after, JobState::Completed).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_and_claims_nothing() {
    let (store, _dir) = store().await;
    let id = enqueue(&store, job("add", json!({"a": 1, "b": 1}))).await;
    let refused = |w: Worker| async move {
        match w.run(tokio_util::sync::CancellationToken::new()).await {
            Err(WorkerError::Config(msg)) => msg,
            Ok(()) => panic!("a bad configuration was accepted"),
        }
    };

    let msg = refused(Worker::new(store.clone(), config("default", 1))).await;
    assert!(msg.contains("no kinds registered"), "{msg}");

    let mut w = worker(&store);
    w.handler(
        "add",
        KindPolicy::default(),
        |_: serde_json::Value, _| async { Ok(None) },
    );
    assert!(
        refused(w)
            .await
            .contains("\"add\" is registered more than once")
    );

    type Change = fn(&mut errand_worker::WorkerConfig);
    let cases: [(&str, Change); 5] = [
        ("queues.default concurrency: must be at least 1", |c| {
            c.queues.insert("default".into(), 0);
        }),
        ("queues: at least one queue", |c| c.queues.clear()),
        ("invalid character", |c| {
            c.queues.insert("bad queue".into(), 1);
        }),
        (
            "heartbeat: must be shorter than lease (15s), got 15s",
            |c| c.heartbeat = c.lease,
        ),
        ("poll_interval: must be greater than zero", |c| {
            c.poll_interval = Duration::ZERO
        }),
    ];
    for (expected, change) in cases {
        let mut cfg = config("default", 1);
        change(&mut cfg);
        let mut w = Worker::new(store.clone(), cfg);
        w.handler(
            "add",
            KindPolicy::default(),
            |_: serde_json::Value, _| async { Ok(None) },
        );
        let msg = refused(w).await;
        assert!(
            msg.contains(expected),
            "{msg:?} should contain {expected:?}"
        );
    }

    let j = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempt),
        (JobState::Available, 0),
        "nothing was claimed"
    );
}

/// A handler's progress is visible on the running job within about a
/// second; a value over the limit is refused; the last report before the
/// handler returns is kept once it completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_progress_is_stored_while_it_runs_and_kept_after() {
    use errand_core::progress::MAX_PROGRESS_BYTES;
    use std::sync::Arc;
    use tokio::sync::Notify;

    let (store, _dir) = store().await;
    let release = Arc::new(Notify::new());
    let refused = Arc::new(std::sync::Mutex::new(None));
    let mut w = Worker::new(store.clone(), config("default", 1));
    let (gate, seen) = (release.clone(), refused.clone());
    w.handler(
        "long",
        KindPolicy::default(),
        move |_: serde_json::Value, ctx: JobContext| {
            let (gate, seen) = (gate.clone(), seen.clone());
            async move {
                let too_big = json!("x".repeat(MAX_PROGRESS_BYTES));
                *seen.lock().unwrap() = Some(ctx.progress(too_big).unwrap_err().bytes);
                for done in 1..=50 {
                    ctx.progress(json!({"done": done, "of": 100})).unwrap();
                }
                gate.notified().await;
                ctx.progress(json!({"done": 100, "of": 100})).unwrap();
                Ok(None)
            }
        },
    );
    let running = Running::spawn(w);
    let id = enqueue(&store, job("long", json!(null))).await;
    let fifty = Some(json!({"done": 50, "of": 100}));
    let midway = wait_for(&store, id, |j| j.progress == fifty).await;
    assert_eq!(midway.state, JobState::Running);
    assert!(midway.progress_at.is_some());
    assert_eq!(*refused.lock().unwrap(), Some(MAX_PROGRESS_BYTES + 2));
    release.notify_one();
    let done = wait_state(&store, id, JobState::Completed).await;
    assert_eq!(done.progress, Some(json!({"done": 100, "of": 100})));
    assert!(done.progress_at >= midway.progress_at);
    running.stop().await;
}
