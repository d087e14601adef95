//! `GET /metrics` on the real binary, on SQLite and PostgreSQL: scraped
//! before and after running jobs that succeed, fail at once, and retry
//! then fail, every counter and histogram count moves by exactly what the
//! jobs did; `promtool check metrics` accepts the text; the counters
//! survive a restart; and the example alert rules pass `promtool check
//! rules`. promtool comes from Debian's `prometheus` package: these tests
//! fail (not skip) without it.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Kinds whose jobs succeed, fail permanently (exit 64), and fail with
/// a retry first (two attempts, no backoff).
const CONFIG: &str = r#"
[queues.default]
concurrency = 4
[kinds.ok]
command = ["true"]
[kinds.bad]
command = ["sh", "-c", "exit 64"]
[kinds.flaky]
command = ["sh", "-c", "exit 1"]
max_attempts = 2
backoff = { base = "0s", max = "0s", jitter = 0.0 }
"#;

const OK: usize = 5;
const BAD: usize = 3;
const FLAKY: usize = 2;

/// The promtool binary; panics when it is not installed.
fn promtool() -> &'static str {
    let path = "/usr/bin/promtool";
    assert!(
        Path::new(path).exists(),
        "promtool is missing: install Debian's `prometheus` package (scripts/test.sh does)"
    );
    path
}

/// Runs `promtool ARGS` with `stdin`; panics with its output unless it succeeds.
fn promtool_ok(args: &[&str], stdin: &str) {
    let mut child = Command::new(promtool())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "promtool {args:?} refused:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The scraped text, after checking the response's status and type.
fn scrape(server: &Server) -> String {
    let resp = http().get(server.url("/metrics")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    resp.text().unwrap()
}

/// Every sample of the text, by its series (`name{labels}`).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// A series' value, 0 when absent (a kind not yet seen).
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Enqueues the jobs, waits for all to end, and checks what moved.
fn run_and_check(server: &Server) {
    let before_text = scrape(server);
    promtool_ok(&["check", "metrics"], &before_text);
    let before = samples(&before_text);

    for (kind, n) in [("ok", OK), ("bad", BAD), ("flaky", FLAKY)] {
        let jobs: Vec<_> = (0..n)
            .map(|i| json!({"kind": kind, "payload": {"i": i}}))
            .collect();
        let (status, body) = post(&server.url("/v1/jobs/batch"), &json!({ "jobs": jobs }));
        assert_eq!(status, 201, "{body}");
    }
    eventually(Duration::from_secs(30), "every job to end", || {
        let done = kind_count(server, "ok", "completed") as usize == OK
            && kind_count(server, "bad", "failed") as usize == BAD
            && kind_count(server, "flaky", "failed") as usize == FLAKY;
        done.then_some(())
    });

    let after_text = scrape(server);
    promtool_ok(&["check", "metrics"], &after_text);
    let after = samples(&after_text);
    let moved = |series: &str| value(&after, series) - value(&before, series);
    let series = |name: &str, kind: &str| format!("{name}{{kind=\"{kind}\",queue=\"default\"}}");
    let expect = [
        ("errand_jobs_enqueued_total", "ok", OK),
        ("errand_jobs_completed_total", "ok", OK),
        ("errand_jobs_failed_total", "ok", 0),
        ("errand_jobs_enqueued_total", "bad", BAD),
        ("errand_jobs_failed_total", "bad", BAD),
        ("errand_jobs_retried_total", "bad", 0),
        ("errand_jobs_completed_total", "bad", 0),
        ("errand_jobs_enqueued_total", "flaky", FLAKY),
        ("errand_jobs_retried_total", "flaky", FLAKY),
        ("errand_jobs_failed_total", "flaky", FLAKY),
        ("errand_jobs_completed_total", "flaky", 0),
        // One claim and one run per attempt: the flaky jobs ran twice.
        ("errand_job_wait_seconds_count", "ok", OK),
        ("errand_job_run_seconds_count", "ok", OK),
        ("errand_job_run_seconds_count", "bad", BAD),
        ("errand_job_wait_seconds_count", "flaky", 2 * FLAKY),
        ("errand_job_run_seconds_count", "flaky", 2 * FLAKY),
    ];
    for (name, kind, n) in expect {
        assert_eq!(moved(&series(name, kind)), n as f64, "{name} of {kind}");
    }
    let inf = "errand_job_run_seconds_bucket{kind=\"ok\",queue=\"default\",le=\"+Inf\"}";
    assert_eq!(moved(inf), OK as f64, "the +Inf bucket is the count");
    assert_eq!(
        value(&after, "errand_jobs{queue=\"default\",state=\"completed\"}"),
        OK as f64
    );
    assert_eq!(
        value(&after, "errand_jobs{queue=\"default\",state=\"failed\"}"),
        (BAD + FLAKY) as f64
    );
    assert_eq!(value(&after, "errand_nodes_live"), 1.0);
    assert_eq!(value(&after, "errand_node_running_jobs"), 0.0);
    assert!(value(&after, "errand_store_commit_seconds_count") > 0.0);
}

/// Counters survive a restart: read from the database, not the process.
#[test]
fn sqlite_metrics_move_by_exactly_the_jobs_run_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), CONFIG);
    run_and_check(&server);
    let counted = samples(&scrape(&server));
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), 0);
    let again = Server::start_in(dir.path(), CONFIG);
    let restarted = samples(&scrape(&again));
    for name in [
        "errand_jobs_completed_total{kind=\"ok\",queue=\"default\"}",
        "errand_jobs_failed_total{kind=\"bad\",queue=\"default\"}",
        "errand_jobs_retried_total{kind=\"flaky\",queue=\"default\"}",
    ] {
        assert_eq!(value(&restarted, name), value(&counted, name), "{name}");
    }
}

#[test]
fn postgres_metrics_move_by_exactly_the_jobs_run() {
    let (_pg, url) = pg::fresh();
    let dir = tempfile::tempdir().unwrap();
    let server = pg::serve(dir.path(), &url, "node", CONFIG);
    run_and_check(&server);
}

/// The example alert rules shipped in docs/ are valid.
#[test]
fn the_example_alert_rules_pass_promtool() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/prometheus/alerts.yml");
    let out = Command::new(promtool())
        .args(["check", "rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example Grafana dashboard is valid JSON whose panels query only
/// metrics `/metrics` serves.
#[test]
fn the_grafana_dashboard_queries_served_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/errand.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let server = Server::start(CONFIG);
    let text = scrape(&server);
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let uses_served = served.iter().any(|m| expr.contains(m));
            assert!(uses_served, "panel {} queries {expr}", panel["title"]);
        }
    }
}
