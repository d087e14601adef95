//! Global kind limits through the real binary, on one SQLite node with a
//! queue concurrency far above the limit and on three nodes (`errand serve`
//! and two `errand work`) sharing one PostgreSQL database.
//!
//! `max_running = 4`: every job writes "start ID NANOS" and "end ID NANOS"
//! to a log itself; a job's recorded span lies inside the time the store
//! counts it as running (claimed before it starts, finished after it ends),
//! so the recorded overlap can never exceed the limit.
//! `rate = "10/s"`: the store's `started_at` of each job is its claim time,
//! the instant the rate counts, so no 1 s window may hold more than 10.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const JOBS_FOR_CONCURRENCY: usize = 60;
const JOBS_FOR_RATE: usize = 40;
const DONE_WITHIN: Duration = Duration::from_secs(60);

/// Writes the job script into `dir`; it logs its start and end to its
/// first argument, sleeping 100 to 190 ms between them.
fn job_script(dir: &Path) -> PathBuf {
    let script = dir.join("job.sh");
    std::fs::write(
        &script,
        r#"echo "start $ERRAND_JOB_ID $(date +%s%N)" >> "$1"
sleep "0.1$((ERRAND_JOB_ID % 10))"
echo "end $ERRAND_JOB_ID $(date +%s%N)" >> "$1"
"#,
    )
    .unwrap();
    script
}

/// A node configuration whose kind `x` runs the job script with `limit`
/// (TOML keys of `[kinds.x]`), in a queue that would run 32 at once.
fn config(dir: &Path, name: &str, limit: &str) -> String {
    format!(
        r#"
[worker]
name = "{name}"
[queues.default]
concurrency = 32
[kinds.x]
command = ["sh", "{script}", "{log}"]
{limit}
"#,
        script = job_script(dir).display(),
        log = dir.join("spans.log").display()
    )
}

/// The most jobs the span log shows running at once; checks that every
/// job in `ids` logged one start and one end.
fn max_overlap(dir: &Path, ids: &[i64]) -> usize {
    let text = std::fs::read_to_string(dir.join("spans.log")).unwrap();
    let mut edges: Vec<(u128, i8)> = Vec::new();
    let mut seen: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, id, nanos] = parts[..] else {
            panic!("bad log line {line:?}");
        };
        let t: u128 = nanos.parse().unwrap();
        let counts = seen.entry(id.parse().unwrap()).or_default();
        match what {
            "start" => {
                counts.0 += 1;
                edges.push((t, 1));
            }
            "end" => {
                counts.1 += 1;
                edges.push((t, -1));
            }
            _ => panic!("bad log line {line:?}"),
        }
    }
    for id in ids {
        let (starts, ends) = seen.get(id).copied().unwrap_or_default();
        assert!(
            starts >= 1 && starts == ends,
            "job {id}: {starts} starts, {ends} ends"
        );
    }
    // At equal times an end sorts first: it was written before the other
    // job could have been claimed.
    edges.sort();
    let mut running = 0i64;
    let mut most = 0i64;
    for (_, delta) in edges {
        running += i64::from(delta);
        most = most.max(running);
    }
    most as usize
}

/// Every job's `started_at` (claim time) in nanoseconds, as the server lists them.
fn starts(server: &Server) -> Vec<i128> {
    let out = server.cli(&["jobs", "list", "--kind", "x", "--limit", "1000", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut starts: Vec<i128> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let t = j["started_at"].as_str().expect("a started job");
            t.parse::<jiff::Timestamp>().unwrap().as_nanosecond()
        })
        .collect();
    starts.sort();
    starts
}

/// The most starts in any window (t - `per`, t], the window a rate counts.
fn max_starts_in_window(starts: &[i128], per: Duration) -> usize {
    let per = per.as_nanos() as i128;
    starts
        .iter()
        .enumerate()
        .map(|(last, &t)| starts[..=last].iter().filter(|&&s| s > t - per).count())
        .max()
        .unwrap_or(0)
}

/// Enqueues `n` jobs of `x` and waits for all of them to complete.
fn run_all(server: &Server, n: usize) -> Vec<i64> {
    let ids = enqueue_batches(server, "x", n);
    wait_completed(server, "x", n as u64, DONE_WITHIN);
    ids
}

fn assert_concurrency_held(dir: &Path, ids: &[i64]) {
    let most = max_overlap(dir, ids);
    eprintln!("most jobs of x running at once: {most}");
    assert!(most <= 4, "{most} jobs of x ran at once; the limit is 4");
}

fn assert_rate_held(server: &Server) {
    let starts = starts(server);
    assert_eq!(starts.len(), JOBS_FOR_RATE);
    let most = max_starts_in_window(&starts, Duration::from_secs(1));
    let span = (starts[starts.len() - 1] - starts[0]) as f64 / 1e9;
    eprintln!(
        "most starts of x in 1 s: {most}; {} starts over {span:.2} s",
        starts.len()
    );
    assert!(
        most <= 10,
        "{most} jobs of x started within 1 s; the rate is 10/s"
    );
}

#[test]
fn sqlite_concurrency_limit_holds_under_a_larger_queue_concurrency() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &config(tmp.path(), "s", "max_running = 4"));
    let ids = run_all(&server, JOBS_FOR_CONCURRENCY);
    assert_concurrency_held(tmp.path(), &ids);
}

#[test]
fn sqlite_rate_limit_holds_in_every_window() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), &config(tmp.path(), "s", "rate = \"10/s\""));
    run_all(&server, JOBS_FOR_RATE);
    assert_rate_held(&server);
}

/// `errand serve` and two `errand work` nodes on one fresh PostgreSQL
/// database, all with `limit`; answers the serving node once all three
/// are live.
fn three_pg_nodes(dir: &Path, limit: &str) -> (Server, Vec<Server>) {
    let (_pg, url) = pg::fresh();
    let server = pg::serve(dir, &url, "s", &config(dir, "s", limit));
    let workers = ["a", "b"].map(|name| pg::work(dir, &url, name, &config(dir, name, limit)));
    eventually(Duration::from_secs(30), "three live nodes", || {
        let (_, body) = get(&server.url("/v1/nodes"));
        (body["nodes"].as_array()?.len() == 3).then_some(())
    });
    (server, workers.into())
}

#[test]
fn postgres_concurrency_limit_holds_across_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _workers) = three_pg_nodes(tmp.path(), "max_running = 4");
    let ids = run_all(&server, JOBS_FOR_CONCURRENCY);
    assert_concurrency_held(tmp.path(), &ids);
}

#[test]
fn postgres_rate_limit_holds_across_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _workers) = three_pg_nodes(tmp.path(), "rate = \"10/s\"");
    run_all(&server, JOBS_FOR_RATE);
    assert_rate_held(&server);
}

#[test]
fn the_window_count_is_sliding() {
    let tenth = 100_000_000i128;
    let ten: Vec<i128> = (0..10).map(|i| i * tenth).collect();
    let with = |t: i128| {
        let mut starts = ten.clone();
        starts.push(t);
        max_starts_in_window(&starts, Duration::from_secs(1))
    };
    // A window is (t - 1 s, t]: a start exactly 1 s after the first does not share its window.
    assert_eq!(with(10 * tenth), 10);
    assert_eq!(with(10 * tenth - 1), 11);
}
