//! `errand-bench` as a user runs it: refused option mixes, and tiny runs
//! of the default scenarios on SQLite and PostgreSQL and of `--events
//! --limits`, checking the report's shape (the figures are not asserted:
//! they depend on the machine).

use errand_testpg::TestPg;
use serde_json::Value;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_errand-bench"))
        .args(args)
        .env("ERRAND_LOG", "warn")
        .output()
        .expect("run errand-bench")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a tiny bench with `--json` and answers its report.
fn json_report(args: &[&str]) -> Value {
    let mut all = vec!["--json", "--runs", "1"];
    all.extend_from_slice(args);
    let out = bench(&all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// A rate the run measured: a positive, finite number.
fn assert_rate(report: &Value, key: &str) {
    let v = report[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key}: {report}"));
    assert!(v.is_finite() && v > 0.0, "{key}: {report}");
}

const TINY: [&str; 6] = [
    "--jobs",
    "300",
    "--enqueue-jobs",
    "200",
    "--pickup-jobs",
    "5",
];

#[test]
fn executors_refuses_the_other_scenarios_options() {
    for args in [
        &["--executors", "--history"][..],
        &["--executors", "--database", "postgres://localhost/x"],
        &["--examples", "examples"],
    ] {
        let out = bench(args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr(&out).contains("--executors"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn default_scenarios_on_sqlite_print_a_table_and_json() {
    let mut args = vec!["--runs", "1"];
    args.extend_from_slice(&TINY);
    let out = bench(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "SCENARIO",
        "HTTP enqueue, 1 connection (baseline)",
        "HTTP enqueue, batches of 1,000",
        "end to end, 300 no-op jobs, concurrency 64",
        "pickup latency p99",
        "RSS, peak",
    ] {
        assert!(table.contains(row), "{row}: {table}");
    }

    let report = json_report(&TINY);
    assert_eq!(report["database"], "sqlite");
    for key in [
        "enqueue_jobs_per_s",
        "enqueue_sequential_jobs_per_s",
        "enqueue_batch_jobs_per_s",
        "e2e_jobs_per_s",
        "peak_rss_mb",
    ] {
        assert_rate(&report, key);
    }
    assert!(report["e2e_two_nodes_jobs_per_s"].is_null(), "{report}");
}

#[test]
fn events_and_limits_on_sqlite() {
    let report = json_report(&[
        "--events",
        "--limits",
        "--jobs",
        "300",
        "--enqueue-jobs",
        "100",
    ]);
    assert_rate(&report["events"], "publish_events_per_s");
    assert_rate(&report["events"], "enqueue3_calls_per_s");
    assert_rate(&report["limits"], "unlimited_jobs_per_s");
    assert_rate(&report["limits"], "rate_jobs_per_s");
    assert_rate(&report["limits"], "concurrency_jobs_per_s");
}

#[test]
fn default_scenarios_on_postgres_need_an_empty_database() {
    let pg = TestPg::shared();
    let url = pg.fresh_database();
    let mut args = vec!["--database", url.as_str()];
    args.extend_from_slice(&TINY);
    let report = json_report(&args);
    assert_eq!(report["database"], "postgres");
    assert_rate(&report, "e2e_jobs_per_s");
    assert_rate(&report, "e2e_two_nodes_jobs_per_s");
    // The run left its jobs behind: a second run on it is refused.
    let out = bench(&["--database", &url, "--runs", "1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("empty database"), "{}", stderr(&out));
}
