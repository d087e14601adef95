//! Two store handles on one database behaving as two nodes: a kind's
//! concurrency limit holds across both while many tasks claim at once, a
//! claim that started a job before finding the last slot taken while it
//! waited for the kind's lock takes it back and says the kind is held, and
//! a batch whose last two jobs end at the same moment through different
//! handles enqueues its on-complete job exactly once, and claims far from
//! a limit share the kind's lock yet stop exactly at the limit.

use errand_core::batch::NewBatch;
mod common;

use common::{admin, claim_req, ending};
use errand_core::store::{ClaimRequest, Finish};
use errand_core::{KindLimit, NewJob, Outcome, Store};
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_testpg::TestPg;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Generous: the box is small and shared.
const PATIENCE: Duration = Duration::from_secs(60);

/// Two handles (separate pools and listeners) on one fresh database, and
/// its URL.
async fn two_nodes() -> (Arc<PostgresStore>, Arc<PostgresStore>, String) {
    let url = TestPg::shared().fresh_database();
    let connect = |name: &str| {
        let opts = PostgresOptions {
            application_name: name.to_string(),
            ..PostgresOptions::default()
        };
        PostgresStore::connect(&url, opts)
    };
    let a = connect("node-a").await.expect("connect a");
    let b = connect("node-b").await.expect("connect b");
    (Arc::new(a), Arc::new(b), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limit_holds_across_two_handles() {
    let (a, b, url) = two_nodes().await;
    const JOBS: usize = 60;
    const CAP: u32 = 3;
    let jobs = (0..JOBS)
        .map(|i| NewJob::new("capped", serde_json::json!({ "i": i })))
        .collect();
    a.enqueue(jobs).await.unwrap();
    let limits = BTreeMap::from([(
        "capped".to_string(),
        KindLimit {
            max_running: Some(CAP),
            rate: None,
        },
    )]);

    // The database's own count of running jobs, polled during the run.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let admin = admin(&url).await;
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                let running: i64 = admin
                    .query_one(
                        "SELECT count(*) FROM jobs WHERE kind = 'capped' AND state = 'running'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                most = most.max(running);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        })
    };

    // In this process: jobs between their claim and their finish call,
    // which the database counts as running all along.
    let holding = Arc::new(AtomicU64::new(0));
    let most_held = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + PATIENCE;
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            let req = ClaimRequest {
                limits: limits.clone(),
                ..claim_req("default", 2)
            };
            let (holding, most_held, completed) =
                (holding.clone(), most_held.clone(), completed.clone());
            tokio::spawn(async move {
                while completed.load(Ordering::Relaxed) < JOBS {
                    assert!(
                        Instant::now() < deadline,
                        "jobs still left after {PATIENCE:?}"
                    );
                    let claimed = node.claim(&req).await.unwrap();
                    if claimed.jobs.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    let n = claimed.jobs.len() as u64;
                    let now_held = holding.fetch_add(n, Ordering::SeqCst) + n;
                    most_held.fetch_max(now_held, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    holding.fetch_sub(n, Ordering::SeqCst);
                    let finishes = claimed
                        .jobs
                        .iter()
                        .map(|j| ending(j, Outcome::Success(None)))
                        .collect();
                    let applied = node.finish(finishes).await.unwrap();
                    assert!(applied.iter().all(|a| *a), "every lease was current");
                    completed.fetch_add(applied.len(), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let most_running = watcher.await.unwrap();
    assert_eq!(completed.load(Ordering::Relaxed), JOBS);
    assert!(
        most_running <= i64::from(CAP),
        "the database saw {most_running} capped jobs running at once"
    );
    let most_held = most_held.load(Ordering::SeqCst);
    assert!(
        most_held <= u64::from(CAP),
        "workers held {most_held} capped jobs at once"
    );
    assert!(most_held >= 2, "the workers did overlap ({most_held})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_beaten_to_the_last_slot_takes_its_job_back() {
    let (store, _, url) = two_nodes().await;
    let jobs = (0..2)
        .map(|i| NewJob::new("capped", serde_json::json!({ "i": i })))
        .collect();
    store.enqueue(jobs).await.unwrap();
    let limits = BTreeMap::from([(
        "capped".to_string(),
        KindLimit {
            max_running: Some(1),
            rate: None,
        },
    )]);
    // Another node's claim of the only slot, still uncommitted: it holds
    // the kind's lock, and the store's claim below cannot see its job.
    let mut other = admin(&url).await;
    let tx = other.transaction().await.unwrap();
    let taken = tx
        .query(
            "SELECT o_id FROM errand_claim_limited(now(), 3600000000, 'other', 'default', '{}', 1, \
             '{capped}', '{1}', '{NULL}', '{NULL}', '{NULL}', false) WHERE NOT o_held",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the other node took the slot");
    let req = ClaimRequest {
        limits,
        ..claim_req("default", 1)
    };
    let claim = tokio::spawn(async move { store.claim(&req).await });
    // Wait until the store's claim has started its job and waits for the lock.
    let watcher = admin(&url).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claim never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.commit().await.unwrap();
    let claimed = claim.await.unwrap().unwrap();
    assert!(claimed.jobs.is_empty(), "took {:?}", claimed.jobs);
    let held = claimed.held.expect("the kind was held");
    assert_eq!(held.retry_at, None, "concurrency, not a rate, held it");
    let rows = watcher
        .query("SELECT state, attempt, worker FROM jobs ORDER BY id", &[])
        .await
        .unwrap();
    let states: Vec<(String, i32, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        states,
        vec![
            ("running".to_string(), 1, Some("other".to_string())),
            ("available".to_string(), 0, None),
        ],
        "the job taken back is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_last_finishes_on_two_handles_enqueue_on_complete_once() {
    let (a, b, url) = two_nodes().await;
    let admin = admin(&url).await;
    for round in 0..50 {
        let on_complete = NewJob {
            queue: "done".into(),
            ..NewJob::new("report", serde_json::json!({ "round": round }))
        };
        let batch = a
            .create_batch(NewBatch {
                jobs: vec![
                    NewJob::new("part", serde_json::json!(1)),
                    NewJob::new("part", serde_json::json!(2)),
                ],
                on_complete: Some(on_complete),
            })
            .await
            .unwrap();
        let claimed = a.claim(&claim_req("default", 2)).await.unwrap().jobs;
        assert_eq!(claimed.len(), 2, "round {round}: both parts claimed");
        // Alternate which handle ends which job, and how the job ends.
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let end = |node: &Arc<PostgresStore>, finish: Finish| {
            let (node, barrier) = (node.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                node.finish(vec![finish]).await.unwrap()
            })
        };
        let one = end(first, ending(&claimed[0], Outcome::Success(None)));
        let two = end(second, ending(&claimed[1], Outcome::Permanent("no".into())));
        assert_eq!(one.await.unwrap(), [true]);
        assert_eq!(two.await.unwrap(), [true]);

        let batch = a.batch(batch.id).await.unwrap().expect("batch exists");
        assert!(batch.finished_at.is_some(), "round {round}: finished");
        let reports: Vec<(i64, serde_json::Value)> = admin
            .query(
                "SELECT id, payload FROM jobs WHERE kind = 'report' \
                 AND (payload -> 'batch' ->> 'id')::bigint = $1",
                &[&batch.id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(reports.len(), 1, "round {round}: one on-complete job");
        assert_eq!(batch.on_complete_job, Some(reports[0].0));
        let outcome = &reports[0].1["batch"];
        assert_eq!(outcome["completed"], 1, "round {round}");
        assert_eq!(outcome["failed"], 1, "round {round}");
        assert_eq!(reports[0].1["payload"]["round"], round);
    }
}

/// A kind whose limits leave more room than every transaction the server
/// can hold could take (migration 0020) is claimed under the kind's lock
/// held shared, its starts logged per backend; nearer the limit, claims go
/// back to the exclusive lock, and 8 tasks on two handles racing past the
/// boundary end with exactly the limit running, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_far_from_a_limit_share_the_lock_and_stop_at_it() {
    const CLAIMERS: i64 = 8;
    let (a, b, url) = two_nodes().await;
    let admin = admin(&url).await;
    let per_claim: i64 = admin
        .query_one("SELECT errand_limit_shared_claim()", &[])
        .await
        .unwrap()
        .get(0);
    // The room the shared lock needs is sized for every connection the
    // server allows (500 on the test cluster: half a million jobs). Only
    // this test's claimers (and the admin connection, which claims
    // nothing) use this database, so room for them is as safe and keeps
    // the test small.
    let room = (CLAIMERS + 1) * per_claim;
    admin
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION errand_limit_shared_room() RETURNS bigint \
             LANGUAGE sql STABLE AS $$ SELECT {room}::bigint $$"
        ))
        .await
        .unwrap();
    // Shared while at most 3 claims' worth run, exclusive past that.
    let cap = room + 3 * per_claim;
    let due = cap + 2 * per_claim;
    admin
        .execute(
            "INSERT INTO jobs (kind, queue, payload, priority, state, max_attempts, run_at, created_at) \
             SELECT 'wide', 'default', '{}', 0, 'available', 3, now() - interval '1 minute', now() \
             FROM generate_series(1, $1::bigint)",
            &[&due],
        )
        .await
        .unwrap();
    let limits = BTreeMap::from([(
        "wide".to_string(),
        KindLimit {
            max_running: Some(u32::try_from(cap).unwrap()),
            // A rate that never binds, so that the start log shows which
            // lock each claim held.
            rate: Some(format!("{}/h", 100 * cap).parse().unwrap()),
        },
    )]);
    let deadline = Instant::now() + PATIENCE;
    let tasks: Vec<_> = (0..CLAIMERS)
        .map(|i| {
            let node = if i % 2 == 0 { a.clone() } else { b.clone() };
            // Each its own worker: a claim recognises its own starts by
            // worker, instant and lease.
            let req = ClaimRequest {
                limits: limits.clone(),
                worker: format!("claimer-{i}"),
                ..claim_req("default", u32::try_from(per_claim).unwrap())
            };
            tokio::spawn(async move {
                let mut took = 0;
                loop {
                    assert!(
                        Instant::now() < deadline,
                        "claims still going after {PATIENCE:?}"
                    );
                    let claimed = node.claim(&req).await.unwrap();
                    took += claimed.jobs.len();
                    if claimed.held.is_some() {
                        return took;
                    }
                }
            })
        })
        .collect();
    let mut took = 0;
    for t in tasks {
        took += t.await.unwrap();
    }
    let running: i64 = admin
        .query_one(
            "SELECT count(*) FROM jobs WHERE kind = 'wide' AND state = 'running'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, cap, "the limit is reached, never passed");
    assert_eq!(took as i64, cap, "every claimed job was handed out once");
    let (shared, exclusive): (i64, i64) = {
        let row = admin
            .query_one(
                "SELECT coalesce(sum(starts) FILTER (WHERE slot <> 0), 0)::bigint, \
                 coalesce(sum(starts) FILTER (WHERE slot = 0), 0)::bigint \
                 FROM kind_starts WHERE kind = 'wide'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(shared > 0, "no claim took the shared lock");
    assert!(exclusive > 0, "no claim took the exclusive lock");
    assert_eq!(shared + exclusive, cap, "every start was logged once");
}

/// With limits of at least twice the room the shared lock needs, a claim
/// goes straight to the shared lock (no unlocked usage read first); when
/// the kind turns out to be near its limit after all, the lock's own read
/// sends it the exclusive way, which still takes only the room left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wide_limit_near_its_end_is_claimed_the_locked_way() {
    let (store, _, url) = two_nodes().await;
    let admin = admin(&url).await;
    let per_claim: i64 = admin
        .query_one("SELECT errand_limit_shared_claim()", &[])
        .await
        .unwrap()
        .get(0);
    // As in the test above: room for this database's few connections.
    let room = 4 * per_claim;
    admin
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION errand_limit_shared_room() RETURNS bigint \
             LANGUAGE sql STABLE AS $$ SELECT {room}::bigint $$"
        ))
        .await
        .unwrap();
    let cap = 2 * room;
    // Running already: all but half a claim of the cap, so the shared lock
    // finds too little room; then due jobs for two claims.
    let running = cap - per_claim / 2;
    let insert = "INSERT INTO jobs (kind, queue, payload, priority, state, max_attempts, run_at, \
                  created_at, started_at, lease_expires_at, worker, attempt, fence) \
                  SELECT $1, 'default', '{}', 0, $2, 3, now() - interval '1 minute', now(), \
                  now(), CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END, \
                  CASE WHEN $2 = 'running' THEN 'elsewhere' END, \
                  CASE WHEN $2 = 'running' THEN 1 ELSE 0 END, \
                  CASE WHEN $2 = 'running' THEN 1 ELSE 0 END \
                  FROM generate_series(1, $3::bigint)";
    for (kind, state, n) in [
        ("near", "running", running),
        ("near", "available", 2 * per_claim),
        ("far", "available", 2 * per_claim),
    ] {
        admin.execute(insert, &[&kind, &state, &n]).await.unwrap();
    }
    // Starts long out of the window, in slot 0 and in a shared holder's:
    // either way of logging forgets them.
    admin
        .batch_execute(
            "INSERT INTO kind_starts (kind, bucket, slot, started_at, starts) \
             SELECT k, now() - interval '2 days', s, now() - interval '2 days', 7 \
             FROM unnest(ARRAY['near', 'far']) AS k, unnest(ARRAY[0, 4242]) AS s",
        )
        .await
        .unwrap();
    let wide = |kind: &str| ClaimRequest {
        kinds: vec![kind.to_string()],
        limits: BTreeMap::from([(
            kind.to_string(),
            KindLimit {
                max_running: Some(u32::try_from(cap).unwrap()),
                rate: Some(format!("{}/h", 100 * cap).parse().unwrap()),
            },
        )]),
        ..claim_req("default", u32::try_from(per_claim).unwrap())
    };
    let logged = |kind: &'static str| {
        let admin = &admin;
        async move {
            let row = admin
                .query_one(
                    "SELECT coalesce(sum(starts) FILTER (WHERE slot <> 0), 0)::bigint, \
                     coalesce(sum(starts) FILTER (WHERE slot = 0), 0)::bigint \
                     FROM kind_starts WHERE kind = $1",
                    &[&kind],
                )
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, i64>(1))
        }
    };

    let far = store.claim(&wide("far")).await.unwrap();
    assert_eq!(far.jobs.len() as i64, per_claim, "a whole claim");
    assert_eq!(far.held, None);
    assert_eq!(logged("far").await, (per_claim, 0), "under the shared lock");

    let near = store.claim(&wide("near")).await.unwrap();
    assert_eq!(near.jobs.len() as i64, per_claim / 2, "only the room left");
    assert!(near.held.is_some(), "the rest held back");
    assert_eq!(
        logged("near").await,
        (0, per_claim / 2),
        "under the exclusive lock"
    );
    let old: i64 = admin
        .query_one(
            "SELECT count(*) FROM kind_starts WHERE bucket < now() - interval '1 day'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, 0, "starts out of the window forgotten by both ways");
}
