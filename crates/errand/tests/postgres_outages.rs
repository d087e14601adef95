//! Database outages are survived, not spread: a PostgreSQL restart in the
//! middle of a 5,000-job run, every errand backend terminated, and a
//! database that is down for a while. No job is marked failed or loses an
//! attempt, no acknowledged job is lost, and a node that cannot reach its
//! database says so (log, `/healthz` 503) instead of failing work.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Jobs that take a moment, so the run spans the outage.
const CONFIG: &str = r#"
[queues.default]
concurrency = 50
[kinds.work]
command = ["sh", "-c", "sleep 0.05"]
"#;

/// Enqueues single jobs until `stop`; answers the ids acknowledged (201).
/// Refusals and dropped connections during an outage are expected: those
/// jobs were not acknowledged.
fn enqueue_until(server: &Server, stop: &AtomicBool) -> Vec<i64> {
    let client = http();
    let mut acked = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let resp = client
            .post(server.url("/v1/jobs"))
            .json(&json!({"kind": "work"}))
            .send();
        match resp {
            Ok(r) if r.status() == 201 => {
                let body: serde_json::Value = r.json().unwrap();
                acked.push(body["id"].as_i64().unwrap());
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    acked
}

/// Runs 5,000 jobs through one node on `url`; once a fifth have completed,
/// `disrupt`s the database while more jobs are being enqueued; then checks
/// that every acknowledged job completed on its first attempt without errors.
fn run_survives(url: &str, disrupt: impl FnOnce()) {
    let tmp = tempfile::tempdir().unwrap();
    let server = pg::serve(tmp.path(), url, "errand", CONFIG);
    let mut acked = enqueue_batches(&server, "work", 5_000);
    eventually(Duration::from_secs(60), "1,000 completed jobs", || {
        (kind_count(&server, "work", "completed") >= 1_000).then_some(())
    });
    let stop = AtomicBool::new(false);
    let more = std::thread::scope(|s| {
        let enqueuer = s.spawn(|| enqueue_until(&server, &stop));
        let running = kind_count(&server, "work", "running");
        assert!(
            running > 0,
            "nothing running when the database was disrupted"
        );
        disrupt();
        // Keep enqueueing a moment after the server is back.
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        enqueuer.join().unwrap()
    });
    assert!(!more.is_empty(), "no enqueue succeeded around the outage");
    acked.extend(more);

    let pending = "SELECT count(*) FROM jobs WHERE state <> 'completed'";
    eventually(Duration::from_secs(90), "every job to complete", || {
        (pg::try_sql(url, pending).ok()? == "0").then_some(())
    });
    assert_eq!(
        pg::unclean_jobs(url),
        Vec::<String>::new(),
        "jobs failed, retried or recorded errors because of the outage; log:\n{}",
        server.log_text()
    );
    let ids: Vec<String> = acked.iter().map(i64::to_string).collect();
    let stored = pg::number(
        url,
        &format!("SELECT count(*) FROM jobs WHERE id IN ({})", ids.join(",")),
    );
    assert_eq!(stored, acked.len() as i64, "acknowledged jobs were lost");
}

#[test]
fn a_database_restart_mid_run_fails_no_job_and_loses_no_attempt() {
    let (pg, url) = pg::own();
    run_survives(&url, || pg.restart());
}

#[test]
fn terminating_every_errand_backend_mid_run_fails_no_job() {
    let (_pg, url) = pg::fresh();
    run_survives(&url, || {
        let killed = pg::number(
            &url,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'errand' AND datname = current_database()",
        );
        // The pool's connections and the listener.
        assert!(killed >= 2, "terminated {killed} backends");
    });
}

#[test]
fn an_unreachable_database_turns_health_red_and_fails_no_job() {
    let (pg, url) = pg::own();
    let tmp = tempfile::tempdir().unwrap();
    let config = r#"
[queues.default]
concurrency = 4
[kinds.work]
command = ["sh", "-c", "sleep 1"]
"#;
    let server = pg::serve(tmp.path(), &url, "errand", config);
    let ids = enqueue_batches(&server, "work", 20);
    eventually(Duration::from_secs(30), "jobs running", || {
        (kind_count(&server, "work", "running") > 0).then_some(())
    });

    pg.stop();
    let down = Instant::now();
    eventually(Duration::from_secs(15), "/healthz to answer 503", || {
        (get(&server.url("/healthz")).0 == 503).then_some(())
    });
    // The worker stops claiming and says why.
    eventually(Duration::from_secs(15), "the log to say so", || {
        server
            .log_text()
            .lines()
            .any(|l| l.contains("claim failed") && l.contains("store unavailable"))
            .then_some(())
    });
    // Long enough that running jobs finish while their completions cannot
    // be written, and idle workers keep failing to claim.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(down.elapsed()));
    pg.resume();

    eventually(
        Duration::from_secs(30),
        "/healthz to answer 200 again",
        || (get(&server.url("/healthz")).0 == 200).then_some(()),
    );
    wait_completed(&server, "work", ids.len() as u64, Duration::from_secs(60));
    assert_eq!(pg::unclean_jobs(&url), Vec::<String>::new());
}
