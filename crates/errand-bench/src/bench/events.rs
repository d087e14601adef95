//! `errand-bench --events`: publish throughput of an event with three
//! listeners, straight against the store (`Store::publish`: the event row
//! and three jobs in one transaction) from concurrent tasks, against plain
//! `Store::enqueue` of three jobs per call in the same run as the baseline.

use super::{Bench, median};
use anyhow::Result;
use errand_core::{NewEvent, NewJob, Store};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The listener kinds of the benchmarked event (each on its own queue,
/// which no worker serves: the jobs only have to be stored).
const LISTENERS: [&str; 3] = ["bench_listener_a", "bench_listener_b", "bench_listener_c"];
/// The kind of the baseline's jobs.
const BASELINE_KIND: &str = "bench_enqueue3";
/// Concurrent publishers (as many as the HTTP enqueue scenario's clients).
const TASKS: usize = 32;

/// What `--events` reports: medians over the runs.
#[derive(Debug, Serialize)]
pub(super) struct EventsReport {
    /// Events published (and enqueue calls made) in each measurement.
    calls: usize,
    tasks: usize,
    publish_events_per_s: f64,
    publish_jobs_per_s: f64,
    enqueue3_calls_per_s: f64,
    enqueue3_jobs_per_s: f64,
    /// Publish calls/s ÷ enqueue-of-3 calls/s.
    publish_vs_enqueue3: f64,
}

/// Makes `calls` calls of `call(i)` from [`TASKS`] concurrent tasks; calls/s.
async fn calls_per_s<F, Fut>(calls: usize, call: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (call, next) = (call.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= calls {
                        return anyhow::Ok(());
                    }
                    call(i).await?;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}

/// One job per listener kind, on the queue of the same name.
fn three_jobs(payload: serde_json::Value) -> Vec<NewJob> {
    LISTENERS
        .iter()
        .map(|kind| NewJob {
            queue: kind.to_string(),
            ..NewJob::new(*kind, payload.clone())
        })
        .collect()
}

/// Publishes `calls` events with three listeners.
async fn publish(store: Arc<dyn Store>, calls: usize) -> Result<f64> {
    calls_per_s(calls, move |i| {
        let store = store.clone();
        async move {
            let event = NewEvent {
                name: "bench.published".into(),
                data: serde_json::json!({ "n": i }),
                unique_key: None,
            };
            // The engine replaces each listener's payload with the event.
            let published = store
                .publish(event, three_jobs(serde_json::Value::Null))
                .await?;
            anyhow::ensure!(
                published.event.jobs.len() == LISTENERS.len(),
                "publish made {} jobs, not {}",
                published.event.jobs.len(),
                LISTENERS.len()
            );
            Ok(())
        }
    })
    .await
}

/// Enqueues three jobs per call, `calls` times.
async fn enqueue3(store: Arc<dyn Store>, calls: usize) -> Result<f64> {
    calls_per_s(calls, move |i| {
        let store = store.clone();
        async move {
            let jobs = three_jobs(serde_json::json!({ "n": i }))
                .into_iter()
                .map(|job| NewJob {
                    kind: BASELINE_KIND.into(),
                    ..job
                })
                .collect();
            store.enqueue(jobs).await?;
            Ok(())
        }
    })
    .await
}

/// Measures both, `runs` times, alternating which goes first.
pub(super) async fn run(bench: &Bench, calls: usize, runs: usize) -> Result<EventsReport> {
    let (mut published, mut enqueued) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        eprintln!("publish vs enqueue of 3 jobs ({run}/{runs})…");
        if run % 2 == 1 {
            published.push(publish(bench.store.clone(), calls).await?);
            enqueued.push(enqueue3(bench.store.clone(), calls).await?);
        } else {
            enqueued.push(enqueue3(bench.store.clone(), calls).await?);
            published.push(publish(bench.store.clone(), calls).await?);
        }
    }
    let (events, baseline) = (median(&published), median(&enqueued));
    let per_call = LISTENERS.len() as f64;
    Ok(EventsReport {
        calls,
        tasks: TASKS,
        publish_events_per_s: events,
        publish_jobs_per_s: events * per_call,
        enqueue3_calls_per_s: baseline,
        enqueue3_jobs_per_s: baseline * per_call,
        publish_vs_enqueue3: events / baseline,
    })
}

/// Table rows: scenario, median, ratio to the baseline.
pub(super) fn rows(r: &EventsReport) -> Vec<Vec<String>> {
    vec![
        vec![
            format!(
                "enqueue of 3 jobs per call, {} calls, {} tasks (baseline)",
                r.calls, r.tasks
            ),
            format!(
                "{:.0} calls/s = {:.0} jobs/s",
                r.enqueue3_calls_per_s, r.enqueue3_jobs_per_s
            ),
            "1.00×".into(),
        ],
        vec![
            format!(
                "publish, event with 3 listeners, {} events, {} tasks",
                r.calls, r.tasks
            ),
            format!(
                "{:.0} events/s = {:.0} jobs/s",
                r.publish_events_per_s, r.publish_jobs_per_s
            ),
            format!("{:.2}×", r.publish_vs_enqueue3),
        ],
    ]
}
