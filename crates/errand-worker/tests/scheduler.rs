//! The scheduler loop on a real SQLite store: each tick enqueues exactly
//! once however many loops run, and missed ticks after downtime are
//! skipped or, with `catch_up`, run once.

mod common;

use common::*;
use errand_core::schedule::ScheduleSpec;
use errand_core::store::ListFilter;
use errand_core::{Catalog, Clock, Job, KindPolicy, Store};
use errand_worker::run_scheduler;
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn schedule(name: &str, cron: &str, catch_up: bool) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: cron.into(),
        kind: "tick".into(),
        payload: serde_json::json!({"from": name}),
        queue: None,
        timezone: None,
        catch_up,
    }
}

/// The kind `tick` (queue `cron`) and `schedule`.
fn catalog(schedule: ScheduleSpec) -> Arc<Catalog> {
    let policy = KindPolicy {
        queue: "cron".into(),
        ..KindPolicy::default()
    };
    let kinds = BTreeMap::from([("tick".to_string(), policy)]);
    Arc::new(Catalog::new(kinds, BTreeMap::new(), vec![schedule]).unwrap())
}

fn start(
    store: &Arc<dyn Store>,
    schedule: ScheduleSpec,
    node: &str,
) -> (CancellationToken, JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(run_scheduler(
        store.clone(),
        catalog(schedule),
        node.to_string(),
        shutdown.clone(),
    ));
    (shutdown, handle)
}

async fn stop(loops: Vec<(CancellationToken, JoinHandle<()>)>) {
    for (shutdown, handle) in loops {
        shutdown.cancel();
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("the scheduler stops in time")
            .unwrap();
    }
}

async fn tick_jobs(store: &Arc<dyn Store>) -> Vec<Job> {
    let mut jobs = store
        .list(&ListFilter {
            kind: Some("tick".into()),
            limit: 1000,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    jobs.sort_by_key(|j| j.run_at);
    jobs
}

/// Polls the store's recorded tick of `name` until `done` says so.
async fn wait_for_tick(
    store: &Arc<dyn Store>,
    name: &str,
    done: impl Fn(Timestamp) -> bool,
) -> Timestamp {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(&t) = store.ticks().await.unwrap().get(name)
            && done(t)
        {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no tick of {name} recorded in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tick_enqueues_exactly_once_with_several_loops() {
    // Half way through a second, so every tick is a clear step away.
    let clock = Clock::manual(Timestamp::from_millisecond(1_900_000_000_500).unwrap());
    let (store, _dir) = store_on(clock.clone()).await;
    let name = "every-second";
    // Two loops of one node name both hold the lease, so they race on every
    // tick; a third node waits for the lease.
    let loops = vec![
        start(&store, schedule(name, "* * * * * *", false), "twin"),
        start(&store, schedule(name, "* * * * * *", false), "twin"),
        start(&store, schedule(name, "* * * * * *", false), "other"),
    ];
    let seen = wait_for_tick(&store, name, |_| true).await;
    for step in 1..=4 {
        clock.advance(Duration::from_secs(1));
        wait_for_tick(&store, name, |t| t >= seen + step.seconds()).await;
    }
    stop(loops).await;

    let jobs = tick_jobs(&store).await;
    let last = store.ticks().await.unwrap()[name];
    let run_ats: Vec<Timestamp> = jobs.iter().map(|j| j.run_at).collect();
    let expected: Vec<Timestamp> = std::iter::successors(run_ats.first().copied(), |t| {
        Some(*t + 1.second()).filter(|t| *t <= last)
    })
    .collect();
    assert!(run_ats.len() >= 4, "{run_ats:?}");
    assert_eq!(
        run_ats, expected,
        "one job per tick, none twice, none left out"
    );
    for job in &jobs {
        assert_eq!(job.tags, ["schedule:every-second"]);
        assert_eq!(job.queue, "cron");
        assert_eq!(job.payload, serde_json::json!({"from": name}));
    }
}

/// An hourly schedule whose last tick was half an hour ago (missed: past
/// the grace) and whose next is half an hour away; the store remembers a
/// tick from three hours before that, as if every node had been down since.
async fn after_downtime(
    catch_up: bool,
) -> (Arc<dyn Store>, tempfile::TempDir, Vec<Job>, Timestamp) {
    let now: Timestamp = "2030-06-01T10:00:00Z".parse().unwrap();
    let (store, dir) = store_on(Clock::manual(now)).await;
    let s = schedule("hourly", "0 30 * * * *", catch_up);
    let missed: Timestamp = "2030-06-01T09:30:00Z".parse().unwrap();
    let old = missed - SignedDuration::from_hours(3);
    store.record_tick("hourly", old, None).await.unwrap();

    let loops = vec![start(&store, s, "solo")];
    let recorded = wait_for_tick(&store, "hourly", |t| t > old).await;
    // The loop returns only between passes, so its decisions are all made.
    stop(loops).await;
    assert_eq!(recorded, missed, "the newest missed tick is recorded");
    assert_eq!(store.ticks().await.unwrap()["hourly"], missed);
    (store.clone(), dir, tick_jobs(&store).await, missed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_skipped_by_default() {
    let (_store, _dir, jobs, _) = after_downtime(false).await;
    assert!(jobs.is_empty(), "nothing runs for missed ticks: {jobs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_run_once_with_catch_up() {
    let (_store, _dir, jobs, missed) = after_downtime(true).await;
    assert_eq!(jobs.len(), 1, "one job for all missed ticks: {jobs:?}");
    assert_eq!(jobs[0].run_at, missed);
    assert_eq!(jobs[0].tags, ["schedule:hourly"]);
}
