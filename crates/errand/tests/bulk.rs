//! Bulk actions through the real binary: a bulk retry of 100,000 failed
//! jobs (seeded straight into the database, in seconds) completes with
//! every one available, while a client keeps enqueueing; the enqueue
//! latency before and during the action is printed (the figures in
//! docs/benchmarks.md come from here; correctness is what is asserted).
//! Also: bad requests are refused naming the field and change nothing,
//! and an operation left running by a node that died is resumed.

mod common;

use common::{Server, eventually, get, http, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const SEEDED: u64 = 100_000;

/// No worker, so retried jobs stay `available` and can be counted.
const CONFIG: &str = r#"
[worker]
enabled = false

[kinds.echo]
command = ["cat"]

[kinds.seeded]
command = ["cat"]
"#;

/// A server on a database already holding `failed` failed `seeded` jobs.
fn sqlite_server_with_failed(failed: u64) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("errand.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Opening migrates; dropping releases the file for the seeder.
        errand_sqlite::SqliteStore::open(&db, Default::default())
            .await
            .unwrap();
    });
    let started = Instant::now();
    let added = errand_sqlite::seed::fill_failed(&db, "seeded", failed).unwrap();
    assert_eq!(added, failed);
    eprintln!("seeded {failed} failed jobs in {:?}", started.elapsed());
    let config = format!("database = \"sqlite://errand.db\"\n{CONFIG}");
    let server = Server::start_in(tmp.path(), &config);
    (tmp, server)
}

/// Enqueue latencies of one client sending jobs one at a time until `stop`.
fn enqueue_until(base: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let client = http();
        let url = format!("{base}/v1/jobs");
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let resp = client
                .post(&url)
                .json(&json!({"kind": "echo", "payload": {"n": latencies.len()}}))
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201);
            latencies.push(started.elapsed());
        }
        latencies
    })
}

/// p50, p99 and max of `latencies`, in milliseconds, as one line.
fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    format!(
        "{} enqueues, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn count(stats: &Value, kind: &str, state: &str) -> u64 {
    stats["kinds"][kind][state].as_u64().unwrap_or(0)
}

/// Runs a bulk retry of every failed `seeded` job on `server` while a
/// client enqueues; asserts every one became available, none of the
/// enqueued jobs changed, and prints the latencies.
fn bulk_retry_while_enqueueing(server: &Server, engine: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = enqueue_until(server.base.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let before = baseline.join().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let during = enqueue_until(server.base.clone(), stop.clone());
    let started = Instant::now();
    let resp = http()
        .post(server.url("/v1/jobs/bulk"))
        .json(&json!({"action": "retry", "filter": {"kind": "seeded", "state": "failed"}}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let op: Value = resp.json().unwrap();
    assert_eq!(location, format!("/v1/jobs/bulk/{}", op["id"]));
    assert_eq!(op["state"], "running");
    let done = eventually(Duration::from_secs(120), "the bulk retry to end", || {
        let (status, op) = get(&server.url(&location));
        assert_eq!(status, 200, "{op}");
        (op["state"] != "running").then_some(op)
    });
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = during.join().unwrap();
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["matched"], SEEDED);
    assert_eq!(done["changed"], SEEDED);
    let stats = common::stats(server);
    assert_eq!(count(&stats, "seeded", "available"), SEEDED, "{stats}");
    assert_eq!(count(&stats, "seeded", "failed"), 0);
    let enqueued = (before.len() + during.len()) as u64;
    assert_eq!(count(&stats, "echo", "available"), enqueued, "untouched");
    // One audit entry for the whole action (auth is off: the local actor).
    let (status, audit) = get(&server.url("/v1/audit?action=bulk.retry"));
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "local CLI");
    assert_eq!(entries[0]["change"]["bulk"], done["id"]);
    assert!(
        entries[0]["target"].as_str().unwrap().contains("seeded"),
        "the target names the filter: {audit}"
    );
    eprintln!(
        "{engine}: bulk retry of {SEEDED} failed jobs took {took:.2?}\n  \
         enqueue before: {}\n  enqueue during: {}",
        summary(before),
        summary(during)
    );
}

#[test]
fn a_bulk_retry_of_100k_failed_jobs_on_sqlite_leaves_enqueues_served() {
    let (_tmp, server) = sqlite_server_with_failed(SEEDED);
    bulk_retry_while_enqueueing(&server, "sqlite");
}

#[test]
fn a_bulk_retry_of_100k_failed_jobs_on_postgres_leaves_enqueues_served() {
    let (_pg, url) = common::pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let server = common::pg::serve(tmp.path(), &url, "bulk", CONFIG);
    let started = Instant::now();
    common::pg::sql(
        &url,
        &format!(
            "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
                 run_at, created_at, started_at, finished_at) \
             SELECT 'seeded', 'default', jsonb_build_object('n', g), 0, 'failed', 3, 3, \
                 now(), now(), now(), now() FROM generate_series(1, {SEEDED}) g"
        ),
    );
    common::pg::sql(&url, "VACUUM ANALYZE jobs");
    eprintln!("seeded {SEEDED} failed jobs in {:?}", started.elapsed());
    bulk_retry_while_enqueueing(&server, "postgres");
}

/// Each bad request is refused with a problem naming the field, and
/// stores no operation.
#[test]
fn bad_bulk_requests_are_refused_naming_the_field() {
    let server = Server::start(&format!("database = \"sqlite://errand.db\"\n{CONFIG}"));
    let url = server.url("/v1/jobs/bulk");
    let many: Vec<i64> = (1..=10_001).collect();
    for (body, field) in [
        (json!({"action": "purge", "filter": {}}), "action"),
        (json!({"action": "retry"}), "filter"),
        (json!({"action": "retry", "ids": []}), "ids"),
        (json!({"action": "retry", "ids": many}), "ids"),
        (json!({"action": "retry", "ids": [1], "filter": {}}), "ids"),
        (
            json!({"action": "retry", "filter": {"state": "done"}}),
            "filter.state",
        ),
        (
            json!({"action": "retry", "filter": {"kind": ""}}),
            "filter.kind",
        ),
        (
            json!({"action": "retry", "filter": {"stat": "failed"}}),
            "filter.stat",
        ),
        (
            json!({"action": "retry", "filter": {"limit": 5}}),
            "filter.limit",
        ),
    ] {
        let (status, problem) = post(&url, &body);
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let (status, listed) = get(&url);
    assert_eq!(status, 200);
    assert_eq!(listed, json!([]), "nothing stored");
    let (status, problem) = get(&server.url("/v1/jobs/bulk/7"));
    assert_eq!(status, 404, "{problem}");
    let (status, problem) = get(&server.url("/v1/jobs/bulk?state=sleeping"));
    assert_eq!((status, problem["field"].as_str()), (400, Some("state")));
}

/// A node killed in the middle of a bulk action leaves it `running`; the
/// next node's maintenance finds it stale and finishes it from its cursor.
#[test]
fn an_operation_left_by_a_dead_node_is_resumed() {
    let (tmp, mut server) = sqlite_server_with_failed(SEEDED);
    let (status, op) = post(
        &server.url("/v1/jobs/bulk"),
        &json!({"action": "retry", "filter": {"state": "failed"}}),
    );
    assert_eq!(status, 202, "{op}");
    let location = server.url(&format!("/v1/jobs/bulk/{}", op["id"]));
    server.kill9();
    let restarted = Server::start_in(
        tmp.path(),
        &format!("database = \"sqlite://errand.db\"\n{CONFIG}"),
    );
    let location = location.replace(&server.base, &restarted.base);
    let (_, left) = get(&location);
    let done = eventually(
        Duration::from_secs(60),
        "the operation to be resumed",
        || {
            let (_, op) = get(&location);
            (op["state"] == "done").then_some(op)
        },
    );
    eprintln!(
        "left at {} of {SEEDED} matched; resumed and done: {}",
        left["matched"], done["matched"]
    );
    assert_eq!(done["matched"], SEEDED);
    assert_eq!(done["changed"], SEEDED);
    let stats = common::stats(&restarted);
    assert_eq!(count(&stats, "seeded", "available"), SEEDED, "{stats}");
}

/// `errand jobs bulk`: refuses to act on every job unless told `--all`,
/// and with `--wait` prints the finished operation.
#[test]
fn the_cli_starts_a_bulk_action_and_waits_for_it() {
    let (_tmp, server) = sqlite_server_with_failed(1500);
    let refused = server.cli(&["jobs", "bulk", "retry"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--all"), "{said}");
    let out = server.cli(&["jobs", "bulk", "retry", "--state", "failed", "--wait"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("done, 1500 jobs matched, 1500 changed"),
        "{text}"
    );
    let out = server.cli(&["jobs", "bulk", "delete", "--id", "1,2", "--json", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let op: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Jobs 1 and 2 were just retried: available, not ended, so kept.
    assert_eq!(
        (op["matched"].as_u64(), op["changed"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(op["target"], json!({"ids": [2, 1]}));
}
