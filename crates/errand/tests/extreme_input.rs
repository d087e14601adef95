//! Extreme durations and times given to the `errand` binary, as CLI flags,
//! batch files and configuration keys: each run exits 1 with one line naming
//! the flag or key, never 101 (a panic).

mod common;

use common::errand_bin;
use std::path::Path;
use std::process::{Command, Output};

/// Duration values as written on a command line.
const DURATIONS: [&str; 10] = [
    "1e20",
    "1e300",
    "-1",
    "NaN",
    "inf",
    "9999999999999d",
    "36501d",
    "18446744073709551616",
    "PT99999999999999999H",
    "1y",
];

/// Runs `errand args` in `dir`; no server is needed, as flags are read first.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(errand_bin())
        .args(args)
        .current_dir(dir)
        .env("ERRAND_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap()
}

/// Asserts exit code 1 and one line of stderr containing `named`.
fn refused(out: &Output, named: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{what}: {stderr}");
    assert!(stderr.contains(named), "{what}: {stderr}");
}

#[test]
fn extreme_cli_durations_and_times_exit_1_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for value in DURATIONS {
        // `--flag=value`, so that "-1" is a value, not a flag.
        let flag = |f: &str| format!("{f}={value}");
        for f in ["--delay", "--job-timeout"] {
            let out = run(dir.path(), &["enqueue", "k", "{}", &flag(f)]);
            refused(&out, &format!("{f}: invalid duration"), value);
        }
        let args = [
            "enqueue",
            "k",
            "{}",
            "--unique-key",
            "u",
            &flag("--unique-for"),
        ];
        refused(
            &run(dir.path(), &args),
            "--unique-for: invalid duration",
            value,
        );
        let args = ["enqueue", "k", "{}", "--wait", &flag("--wait-timeout")];
        refused(
            &run(dir.path(), &args),
            "--wait-timeout: invalid duration",
            value,
        );
        let args = ["batch", "jobs.jsonl", "--wait", &flag("--wait-timeout")];
        refused(
            &run(dir.path(), &args),
            "--wait-timeout: invalid duration",
            value,
        );
    }
    for at in [
        "9999-12-31T23:59:59Z",
        "-009999-01-01T00:00:00Z",
        "99999-01-01T00:00:00Z",
        "soon",
    ] {
        let out = run(dir.path(), &["enqueue", "k", "{}", &format!("--at={at}")]);
        refused(&out, "--at: invalid time", at);
    }
    for line in [
        r#"{"kind": "k", "delay": 1e20}"#,
        r#"{"kind": "k", "timeout": "9999999999999d"}"#,
        r#"{"kind": "k", "run_at": "9999-12-31T23:59:59Z"}"#,
    ] {
        std::fs::write(dir.path().join("jobs.jsonl"), line).unwrap();
        let out = run(dir.path(), &["batch", "jobs.jsonl"]);
        refused(&out, "line 1: not a job (an enqueue request): ", line);
    }
}

#[test]
fn extreme_config_durations_exit_1_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let kind = "[kinds.k]\ncommand = [\"true\"]\n";
    let keys = [
        ("[worker]\n", "lease", "[worker] lease"),
        ("[worker]\n", "heartbeat", "[worker] heartbeat"),
        ("[worker]\n", "poll_interval", "[worker] poll_interval"),
        (
            "[worker]\n",
            "shutdown_timeout",
            "[worker] shutdown_timeout",
        ),
        ("[worker.breaker]\n", "max", "[worker.breaker] max"),
        ("[server]\n", "max_wait", "[server] max_wait"),
        (
            "[postgres]\n",
            "connect_timeout",
            "[postgres] connect_timeout",
        ),
        ("[retention]\n", "completed", "[retention] completed"),
        (kind, "timeout", "[kinds.k] timeout"),
        (kind, "unique_for", "[kinds.k] unique_for"),
        (kind, "backoff = { base", "[kinds.k] backoff.base"),
    ];
    for (section, key, named) in keys {
        for value in ["1e20", "-1", "\"9999999999999d\"", "nan"] {
            let close = if key.contains('{') { " }" } else { "" };
            let text = format!("{section}{key} = {value}{close}\n");
            std::fs::write(dir.path().join("bad.toml"), &text).unwrap();
            let out = run(
                dir.path(),
                &["serve", "--listen", "127.0.0.1:0", "--config", "bad.toml"],
            );
            refused(&out, &format!("{named}: invalid duration"), &text);
        }
    }
    let text = format!("{kind}backoff = {{ base = \"10s\", max = \"1s\", jitter = 5.0 }}\n");
    std::fs::write(dir.path().join("bad.toml"), &text).unwrap();
    let out = run(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--config", "bad.toml"],
    );
    refused(
        &out,
        "[kinds.k] backoff.base: must be at most backoff.max",
        &text,
    );
}
