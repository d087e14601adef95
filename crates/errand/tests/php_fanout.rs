//! The PHP fan-out example, end to end: the real binary serves
//! examples/php/errand.toml on a temporary SQLite file and a free port, the
//! example's pool worker runs the report parts, and fanout-report.php's
//! printed total must be the sum it asked for. Skipped (with a message)
//! when `php` is missing, unless CI=true.

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// examples/php in this repository.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/php")
}

/// Whether php-cli runs here; on CI its absence is a failure.
fn php_available() -> bool {
    let found = Command::new("php")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "php is required on CI (scripts/test.sh installs php-cli)"
        );
        eprintln!("skipping: php is not installed");
    }
    found
}

/// `errand serve` with the example's config, on a database in `dir`.
fn serve_example(dir: &Path) -> Server {
    let config = example_dir().join("errand.toml");
    let database = format!("sqlite://{}", dir.join("errand.db").display());
    let args = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--database",
        &database,
    ];
    Server::spawn(dir, &args).unwrap_or_else(|log| panic!("errand serve did not start:\n{log}"))
}

/// Runs fanout-report.php with `args` against `server` (any URL).
fn fanout(server: &str, args: &[&str]) -> Output {
    Command::new("php")
        .arg(example_dir().join("fanout-report.php"))
        .args(args)
        .env("ERRAND_SERVER", server)
        .output()
        .unwrap()
}

/// The number after `prefix` on a line of the script's standard output.
fn printed(out: &Output, prefix: &str) -> Option<u64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
}

#[test]
fn the_report_fans_out_to_the_pool_and_sums_the_parts() {
    if !php_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_example(tmp.path());
    // 7 does not divide 1,000: the parts are unequal and must still cover it.
    let out = fanout(&server.base, &["7", "1000"]);
    assert!(
        out.status.success(),
        "fanout-report.php failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert_eq!(printed(&out, "total: "), Some(1000 * 1001 / 2), "{out:?}");

    // The batch it made: seven report_part jobs, each with its partial sum.
    let batch = printed(&out, "batch ").expect("the script names its batch");
    let (status, body) = get(&server.url(&format!("/v1/batches/{batch}?results=true")));
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7, "{body}");
    assert_eq!(
        results[0]["result"],
        json!({"from": 1, "to": 142, "sum": 142 * 143 / 2})
    );
    let sum: u64 = results
        .iter()
        .map(|r| r["result"]["sum"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 500_500);
}

#[test]
fn bad_arguments_are_refused_before_anything_is_enqueued() {
    if !php_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_example(tmp.path());
    for args in [&["0"][..], &["ten"], &["5", "3"]] {
        let out = fanout(&server.base, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage: php fanout-report.php"),
            "{args:?}: {out:?}"
        );
    }
    let jobs: u64 = stats(&server)["total"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(jobs, 0, "jobs were enqueued: {}", stats(&server));
}

#[test]
fn an_unreachable_server_is_reported() {
    if !php_available() {
        return;
    }
    // A port that was free a moment ago: nothing answers there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = fanout(&format!("http://127.0.0.1:{port}"), &["3", "30"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach errand"),
        "{out:?}"
    );
    assert_eq!(printed(&out, "total: "), None);
}

#[test]
fn the_worker_fails_a_part_without_its_range_at_once() {
    if !php_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = serve_example(tmp.path());
    let jobs = json!({"jobs": [
        {"kind": "report_part", "payload": {"from": 1, "to": 4}},
        {"kind": "report_part", "payload": {"from": "one", "to": 4}},
    ]});
    let (status, body) = post(&server.url("/v1/batches"), &jobs);
    assert_eq!(status, 201, "{body}");
    let id = body["batch"]["id"].as_i64().unwrap();
    let done = eventually(Duration::from_secs(30), "the batch to finish", || {
        let (_, b) = get(&server.url(&format!("/v1/batches/{id}?wait=10s")));
        (!b["batch"]["finished_at"].is_null()).then_some(b)
    });
    let results = done["results"].as_array().unwrap();
    assert_eq!(results[0]["state"], "completed", "{done}");
    assert_eq!(results[0]["result"]["sum"], 10);
    assert_eq!(results[1]["state"], "failed", "{done}");
    assert!(
        results[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("whole numbers")),
        "{done}"
    );
    // Permanent: one attempt, not the kind's three.
    let job = job(&server, results[1]["id"].as_i64().unwrap());
    assert_eq!(job["attempt"], 1, "{job}");
}
