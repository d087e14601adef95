//! Benchmark, not a timed test (#[ignore]d): the time each dashboard page
//! and the reads behind it take with 1,000,000 jobs in the table (seeded
//! straight into the database: seven in ten completed, one failed, one
//! available, one scheduled; four queues, a hundred tags), on SQLite and on
//! PostgreSQL. Prints one table row per page: median and slowest of
//! `ROUNDS` requests after the first (whose time is printed apart: the
//! live pages count on their first view, then show a count at most two
//! seconds old while a new one runs in the background). Every answer must
//! be 200.
//!
//! Run: `cargo test --release -p errand --test dashboard_scale -- --ignored
//! --nocapture --test-threads 1`; the figures go to docs/benchmarks.md.

mod common;

use common::{Server, http};
use std::time::{Duration, Instant};

const JOBS: u64 = 1_000_000;
const ROUNDS: usize = 7;

/// No worker: the seeded jobs stay as they are.
const CONFIG: &str = r#"
[worker]
enabled = false

[kinds.seeded]
command = ["true"]
"#;

/// The pages a user opens, and the API reads the dashboard is made of.
/// Each Jobs page also counts what its filter matches (the count a bulk
/// action on it confirms). The seed's available jobs are all in queues q0
/// and q2: the q0 listing finds 50,000 matches, the q1 one none.
fn paths() -> Vec<String> {
    [
        "/",
        "/jobs",
        "/jobs?state=failed",
        "/jobs?kind=seeded&queue=q0&state=available",
        "/jobs?kind=seeded&queue=q1&state=available",
        "/jobs?queue=q1&state=failed&tag=t41",
        "/jobs?tag=t42",
        "/jobs?text=user4242%40",
        "/jobs/500000",
        "/queues",
        "/kinds",
        "/nodes",
        "/audit",
        "/v1/stats",
        "/v1/queues",
        "/metrics",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect()
}

/// Requests every page `ROUNDS` times (after one warm-up) and prints the
/// median and the slowest.
fn measure(server: &Server, engine: &str) {
    let client = http();
    println!("| engine | page | first | median | slowest |");
    println!("| --- | --- | --- | --- | --- |");
    for path in paths() {
        let url = server.url(&path);
        let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
        let mut first = Duration::ZERO;
        for round in 0..=ROUNDS {
            let started = Instant::now();
            let resp = client.get(&url).send().unwrap();
            let status = resp.status();
            let body = resp.bytes().unwrap();
            let took = started.elapsed();
            assert_eq!(
                status.as_u16(),
                200,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            if round > 0 {
                times.push(took);
            } else {
                first = took;
            }
        }
        times.sort();
        println!(
            "| {engine} | `{path}` | {:.1} ms | {:.1} ms | {:.1} ms |",
            first.as_secs_f64() * 1000.0,
            times[ROUNDS / 2].as_secs_f64() * 1000.0,
            times[ROUNDS - 1].as_secs_f64() * 1000.0
        );
    }
}

#[test]
#[ignore = "benchmark: seeds 1,000,000 jobs; run with --ignored"]
fn dashboard_pages_with_a_million_jobs_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("errand.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        // Opening migrates; dropping releases the file for the seeder.
        errand_sqlite::SqliteStore::open(&db, Default::default())
            .await
            .unwrap();
    });
    let started = Instant::now();
    let added = errand_sqlite::seed::fill_mixed(&db, "seeded", JOBS).unwrap();
    assert_eq!(added, JOBS);
    eprintln!("seeded {JOBS} jobs in {:?}", started.elapsed());
    let config = format!("database = \"sqlite://errand.db\"\n{CONFIG}");
    let server = Server::start_in(tmp.path(), &config);
    measure(&server, "SQLite");
}

#[test]
#[ignore = "benchmark: seeds 1,000,000 jobs; run with --ignored"]
fn dashboard_pages_with_a_million_jobs_on_postgres() {
    let (_pg, url) = common::pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let server = common::pg::serve(tmp.path(), &url, "scale", CONFIG);
    let started = Instant::now();
    common::pg::sql(
        &url,
        &format!(
            "INSERT INTO jobs (kind, queue, payload, priority, state, attempt, max_attempts, \
                 run_at, created_at, started_at, finished_at, tags) \
             SELECT 'seeded', 'q' || (g % 4), \
                 jsonb_build_object('n', g, 'to', 'user' || g || '@example.com'), 0, \
                 CASE WHEN g % 10 < 7 THEN 'completed' WHEN g % 10 = 7 THEN 'failed' \
                      WHEN g % 10 = 8 THEN 'available' ELSE 'scheduled' END, \
                 1, 3, CASE WHEN g % 10 = 9 THEN now() + interval '1 day' ELSE now() END, now(), \
                 CASE WHEN g % 10 < 8 THEN now() END, CASE WHEN g % 10 < 8 THEN now() END, \
                 ARRAY['t' || (g % 100)] \
             FROM generate_series(1, {JOBS}) g"
        ),
    );
    common::pg::sql(&url, "VACUUM ANALYZE jobs");
    eprintln!("seeded {JOBS} jobs in {:?}", started.elapsed());
    measure(&server, "PostgreSQL");
}
