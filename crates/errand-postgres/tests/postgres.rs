//! PostgreSQL-specific behaviour against real throwaway clusters:
//! concurrent migrations, the pool bound, wake-ups across nodes, and
//! surviving server restarts and killed connections.

mod common;

use common::{admin, claim_req, success};
use errand_core::{JobId, NewJob, Store, StoreError, StoreEvent};
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Generous: the box is small and shared.
const PATIENCE: Duration = Duration::from_secs(30);

/// A fresh database on the shared cluster.
fn fresh() -> String {
    TestPg::shared().fresh_database()
}

fn opts(application_name: &str, pool_size: usize) -> PostgresOptions {
    PostgresOptions {
        pool_size,
        application_name: application_name.to_string(),
        ..PostgresOptions::default()
    }
}

/// Connections the server has open for `application_name`.
async fn connections(admin: &tokio_postgres::Client, application_name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .await
        .expect("count connections")
        .get(0)
}

/// Waits for an event that `wanted` accepts.
async fn expect_event(
    events: &mut broadcast::Receiver<StoreEvent>,
    what: &str,
    wanted: impl Fn(&StoreEvent) -> bool,
) {
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(e) if wanted(&e) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "timed out waiting for {what}");
}

fn enqueued_into(queue: &'static str) -> impl Fn(&StoreEvent) -> bool {
    move |e| matches!(e, StoreEvent::Enqueued(q) if q.iter().any(|q| q == queue))
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_migrations_apply_once() {
    let url = fresh();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::migrate(&url).await })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().expect("migrate"));
    }
    let latest = versions[0];
    assert!(latest >= 11, "every migration applied: {versions:?}");
    assert!(versions.iter().all(|v| *v == latest), "{versions:?}");
    let applied: i64 = admin(&url)
        .await
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        applied,
        i64::from(latest),
        "each migration is recorded once"
    );
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), latest);
    assert_eq!(
        PostgresStore::migrate(&url).await.unwrap(),
        latest,
        "idempotent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_urls_are_refused_clearly() {
    let err = PostgresStore::connect("mysql://nope", PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Config(m) if m.contains("invalid PostgreSQL URL")),
        "{err}"
    );
    let pg = TestPg::shared();
    // Nothing listens on port 1: a connection failure, which is retryable.
    let url = pg.url().replace(&format!(":{}/", pg.port()), ":1/");
    let err = PostgresStore::migrate(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_stay_within_the_pool_bound() {
    let url = fresh();
    let pool_size = 4;
    let store = PostgresStore::connect(&url, opts("errand-bound", pool_size))
        .await
        .unwrap();
    let admin = admin(&url).await;
    // `connect` migrated over a one-off connection; its backend may linger
    // in pg_stat_activity for a moment after the client closed it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections(&admin, "errand-bound").await > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(connections(&admin, "errand-bound").await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    store
                        .enqueue(vec![NewJob::new("k", serde_json::json!({"i": i}))])
                        .await
                        .unwrap();
                    let jobs = store.claim(&claim_req("default", 2)).await.unwrap().jobs;
                    let applied = store
                        .finish(jobs.iter().map(success).collect())
                        .await
                        .unwrap();
                    finished.fetch_add(applied.len(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let most = watcher.await.unwrap();
    assert!(
        most >= 2,
        "the watcher saw the store's connections ({most})"
    );
    assert!(
        most <= pool_size as i64 + 1,
        "{most} connections for a pool of {pool_size} plus one listener"
    );
    assert!(finished.load(Ordering::Relaxed) > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enqueue_on_one_node_wakes_another() {
    let url = fresh();
    let a = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let b = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let mut on_b = b.subscribe();
    // The listener may still be starting: keep enqueueing until B hears.
    let enqueuer = {
        let a = a.clone();
        tokio::spawn(async move {
            loop {
                a.enqueue(vec![NewJob {
                    queue: "wake".into(),
                    ..NewJob::new("k", serde_json::Value::Null)
                }])
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    expect_event(&mut on_b, "Enqueued(wake) on B", enqueued_into("wake")).await;
    enqueuer.abort();
    let job = a.claim(&claim_req("wake", 1)).await.unwrap().jobs.remove(0);
    assert_eq!(a.finish(vec![success(&job)]).await.unwrap(), [true]);
    expect_event(
        &mut on_b,
        "Finished on B",
        |e| matches!(e, StoreEvent::Finished(ids) if ids.contains(&job.id)),
    )
    .await;
}

/// What a stream of enqueue, claim and finish calls saw.
#[derive(Default)]
struct Traffic {
    acknowledged: Vec<JobId>,
    unavailable: usize,
    other_errors: Vec<String>,
    last_success: Option<Instant>,
}

/// Enqueues, claims and finishes on `store` until `stop` is set.
fn run_traffic(store: PostgresStore, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Traffic> {
    tokio::spawn(async move {
        let mut t = Traffic::default();
        while !stop.load(Ordering::Relaxed) {
            let result = async {
                let ids = store
                    .enqueue(vec![NewJob::new("k", serde_json::Value::Null)])
                    .await?;
                t.acknowledged.push(ids[0].job.id);
                let jobs = store.claim(&claim_req("default", 4)).await?.jobs;
                store.finish(jobs.iter().map(success).collect()).await?;
                Ok::<_, StoreError>(())
            }
            .await;
            match result {
                Ok(()) => t.last_success = Some(Instant::now()),
                Err(StoreError::Unavailable(_)) => {
                    t.unavailable += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => t.other_errors.push(e.to_string()),
            }
        }
        t
    })
}

/// Runs traffic through `disrupt` and checks the store rode it out: only
/// `Unavailable` errors, success again soon after, every acknowledged job kept.
async fn survives(store: &PostgresStore, disrupt: impl AsyncFnOnce()) -> Traffic {
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = run_traffic(store.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    disrupt().await;
    let back = Instant::now();
    // Keep the traffic going until it has succeeded after the disruption.
    let deadline = back + PATIENCE;
    let probe = store.clone();
    loop {
        if probe.stats().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the store never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let t = traffic.await.unwrap();
    assert!(
        t.other_errors.is_empty(),
        "only Unavailable: {:?}",
        t.other_errors
    );
    assert!(
        t.last_success.is_some_and(|at| at > back),
        "calls succeed again after the disruption"
    );
    for id in &t.acknowledged {
        assert!(
            store.get(*id).await.unwrap().is_some(),
            "acknowledged job {id} was lost"
        );
    }
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_is_survived() {
    let pg = TestPg::start();
    let pg = Arc::new(pg);
    let url = pg.url();
    let a = PostgresStore::connect(&url, opts("errand-a", 4))
        .await
        .unwrap();
    let b = PostgresStore::connect(&url, opts("errand-b", 4))
        .await
        .unwrap();
    survives(&a, async || {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.restart())
            .await
            .unwrap();
    })
    .await;

    // While the server is down every call answers Unavailable, not Internal.
    let down = pg.clone();
    let traffic = survives(&a, async || {
        tokio::task::spawn_blocking(move || down.stop())
            .await
            .unwrap();
        let err = a
            .enqueue(vec![NewJob::new("k", serde_json::Value::Null)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let up = pg.clone();
        tokio::task::spawn_blocking(move || up.resume())
            .await
            .unwrap();
    })
    .await;
    assert!(traffic.unavailable > 0, "the outage was seen");

    // B's listener reconnected: an enqueue on A still reaches it.
    assert_listener_hears(&a, &b, "after-restart").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_connections_are_survived() {
    let url = fresh();
    // Without the test query: a killed connection is noticed by its closed
    // socket alone.
    let a = PostgresStore::connect(
        &url,
        PostgresOptions {
            verify_connections: false,
            ..opts("errand-kill-a", 4)
        },
    )
    .await
    .unwrap();
    // With it, the other node tests each connection before use.
    let b = PostgresStore::connect(
        &url,
        PostgresOptions {
            verify_connections: true,
            ..opts("errand-kill-b", 4)
        },
    )
    .await
    .unwrap();
    let admin = admin(&url).await;
    let mut killed = 0;
    survives(&a, async || {
        for _ in 0..3 {
            killed += admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name IN ('errand-kill-a', 'errand-kill-b')",
                    &[],
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        killed >= 3,
        "pool and listener connections were killed ({killed})"
    );
    assert_listener_hears(&a, &b, "after-kill").await;
    assert_listener_hears(&b, &a, "after-kill").await;
}

/// Enqueues into `queue` on `from` until `to` hears of it.
async fn assert_listener_hears(from: &PostgresStore, to: &PostgresStore, queue: &'static str) {
    let mut events = to.subscribe();
    let enqueuer = {
        let from = from.clone();
        tokio::spawn(async move {
            loop {
                let job = NewJob {
                    queue: queue.into(),
                    ..NewJob::new("k", serde_json::Value::Null)
                };
                // The listener may be mid-reconnect; failures are retried.
                let _ = from.enqueue(vec![job]).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    expect_event(&mut events, queue, enqueued_into(queue)).await;
    enqueuer.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_in_batches_and_keeps_the_rest() {
    let url = fresh();
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let live = store
        .enqueue(vec![NewJob::new("k", serde_json::Value::Null)])
        .await
        .unwrap()[0]
        .job
        .id;
    // More old terminal jobs than one pruning batch, and some recent ones.
    admin(&url)
        .await
        .batch_execute(
            "INSERT INTO jobs (kind, queue, payload, priority, state, max_attempts, run_at, \
                 created_at, finished_at) \
             SELECT 'k', 'default', 'null', 0, 'completed', 1, now(), now(), \
                 now() - CASE WHEN i <= 12000 THEN interval '2 days' ELSE interval '1 minute' END \
             FROM generate_series(1, 12010) AS i",
        )
        .await
        .unwrap();
    let retention = errand_core::Retention {
        completed: Duration::from_secs(86_400),
        ..errand_core::Retention::default()
    };
    assert_eq!(store.prune(&retention).await.unwrap(), 12_000);
    assert_eq!(store.prune(&retention).await.unwrap(), 0);
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total[&errand_core::JobState::Completed], 10);
    assert!(store.get(live).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_work_without_overlap() {
    let url = fresh();
    let nodes = [
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .unwrap(),
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .unwrap(),
    ];
    // The same unique key from both nodes at once: one job, one winner.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let node = nodes[i % 2].clone();
            tokio::spawn(async move {
                let job = NewJob {
                    unique_key: Some("once".into()),
                    ..NewJob::new("u", serde_json::Value::Null)
                };
                node.enqueue(vec![job]).await.unwrap().remove(0)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for r in racers {
        answers.push(r.await.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    assert!(answers.iter().all(|a| a.job.id == answers[0].job.id));

    let total = 2000;
    for chunk in 0..(total / 500) {
        let jobs = (0..500)
            .map(|i| NewJob::new("w", serde_json::json!({"n": chunk * 500 + i})))
            .collect();
        nodes[chunk % 2].enqueue(jobs).await.unwrap();
    }
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let node = nodes[i % 2].clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let jobs = node.claim(&claim_req("default", 16)).await.unwrap().jobs;
                    if jobs.is_empty() {
                        return mine;
                    }
                    let applied = node
                        .finish(jobs.iter().map(success).collect())
                        .await
                        .unwrap();
                    assert!(applied.iter().all(|a| *a), "every held lease finishes");
                    mine.extend(jobs.into_iter().filter(|j| j.kind == "w").map(|j| j.id));
                }
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for w in workers {
        for id in w.await.unwrap() {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), total);
}

/// A node whose clock is an hour behind the database server's measures the
/// offset at its heartbeat (and warns, once); its own leader lease still
/// runs by its own clock.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_measures_its_clock_against_the_database() {
    let behind = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let clock = errand_core::Clock::manual(behind);
    let store = PostgresStore::connect_with_clock(&fresh(), opts("errand-skew", 2), clock.clone())
        .await
        .expect("connect");
    assert_eq!(store.clock_offset(), None, "nothing measured yet");
    let node = errand_core::NodeInfo {
        name: "skewed".into(),
        started_at: clock.now(),
        last_seen: clock.now(),
        queues: Default::default(),
        running: 0,
        http: None,
        breakers: Default::default(),
        remote: None,
        draining: false,
    };
    store.register_node(&node).await.unwrap();
    let offset = store.clock_offset().expect("measured at the heartbeat");
    assert!(
        (offset - jiff::SignedDuration::from_hours(1)).abs() < jiff::SignedDuration::from_secs(60),
        "{offset}"
    );
    assert!(offset > errand_postgres::SKEW_BOUND);
    let seen = store.nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        seen[0].last_seen,
        clock.now(),
        "last_seen is the node's time"
    );
}
