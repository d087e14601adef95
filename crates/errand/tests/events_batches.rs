//! Events, batches and `unique_for` through the real binary on SQLite:
//! `errand publish` and `errand events`, `errand batch` with and without
//! `--wait`, `errand enqueue --unique-key` within a kind's `unique_for`,
//! and the configuration errors of limits and events.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const CONFIG: &str = r#"
[kinds.email_subscribers]
command = ["cat"]
[kinds.reindex_post]
command = ["sh", "-c", "echo 'index down' >&2; exit 3"]
max_attempts = 1
[kinds.square]
command = ["python3", "-c", "import json,sys; n = json.load(sys.stdin)['n']; print(n * n)"]
[kinds.slow]
command = ["sleep", "5"]
[kinds.summary]
command = ["sh", "-c", "cat > summary.json"]
[kinds.once]
command = ["true"]
unique_for = "1h"
[kinds.plain]
command = ["true"]
[events."comment.created"]
listeners = ["email_subscribers", "reindex_post"]
"#;

const WAIT: Duration = Duration::from_secs(30);

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a CLI command that must succeed; answers its stdout.
fn ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "errand {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a CLI command with `--json` that must succeed; answers its JSON.
fn ok_json(server: &Server, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = ok(server, &args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs a CLI command with `input` on its standard input.
fn cli_with_stdin(server: &Server, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(errand_bin())
        .args(args)
        .env("ERRAND_SERVER", &server.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn total_jobs(server: &Server) -> u64 {
    stats(server)["total"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

#[test]
fn publish_makes_one_job_per_listener_and_events_show_their_states() {
    let server = Server::start(CONFIG);
    let out = ok(&server, &["publish", "comment.created", r#"{"post": 7}"#]);
    assert!(
        out.starts_with("event 1 (comment.created) published\n"),
        "{out}"
    );
    assert!(
        out.contains("email_subscribers") && out.contains("reindex_post"),
        "{out}"
    );

    let published = ok_json(
        &server,
        &[
            "publish",
            "comment.created",
            r#"{"post": 8}"#,
            "--unique-key",
            "c8",
        ],
    );
    assert_eq!(published["duplicate"], false);
    let id = published["event"]["id"].as_i64().unwrap();
    let kinds: Vec<&str> = published["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["email_subscribers", "reindex_post"]);
    assert_eq!(published["jobs"][0]["payload"]["event"]["data"]["post"], 8);

    // Each listener runs on its own: one completes, the other fails.
    let view = eventually(WAIT, "both listener jobs to end", || {
        let v = ok_json(&server, &["events", "show", &id.to_string()]);
        let states: Vec<String> = v["jobs"]
            .as_array()?
            .iter()
            .map(|j| j["state"].as_str().unwrap().to_string())
            .collect();
        (states == ["completed", "failed"]).then_some(v)
    });
    assert_eq!(view["jobs"][0]["result"]["event"]["id"], id);
    let shown = ok(&server, &["events", "show", &id.to_string()]);
    for part in [
        "name:         comment.created",
        "unique key:   c8",
        "completed",
        "failed",
        "index down",
    ] {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }

    let again = ok(
        &server,
        &[
            "publish",
            "comment.created",
            r#"{"post": 8}"#,
            "--unique-key",
            "c8",
        ],
    );
    assert!(
        again.starts_with(&format!(
            "event {id} (comment.created) already published with this unique key"
        )),
        "{again}"
    );

    let page = ok_json(&server, &["events", "list", "--name", "comment.created"]);
    let ids: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [id, 1], "newest first, the duplicate not stored");
    let page = ok_json(&server, &["events", "list", "--limit", "1"]);
    assert_eq!(page["next_cursor"], id);
    let table = ok(&server, &["events", "list"]);
    assert!(
        table.starts_with("ID") && table.contains("c8") && table.lines().count() == 3,
        "{table}"
    );
}

#[test]
fn bad_publishes_are_refused_and_store_nothing() {
    let server = Server::start(CONFIG);
    let before = total_jobs(&server);
    let out = server.cli(&["publish", "comment.deleted", "{}"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("comment.deleted") && err.contains("comment.created"),
        "the error names the event and the configured ones: {err}"
    );
    let out = server.cli(&["publish", "comment.created", "{not json"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("data is not valid JSON"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["events", "show", "999"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let page = ok_json(&server, &["events", "list"]);
    assert_eq!(page["events"], json!([]));
    assert_eq!(total_jobs(&server), before);
}

#[test]
fn unknown_events_are_recorded_when_the_config_says_so() {
    let server = Server::start(&format!("[server]\nrecord_unknown_events = true\n{CONFIG}"));
    let published = ok_json(&server, &["publish", "audit.login", r#"{"user": 1}"#]);
    assert_eq!(published["jobs"], json!([]));
    let shown = ok(
        &server,
        &["events", "show", &published["event"]["id"].to_string()],
    );
    assert!(shown.contains("no listener jobs"), "{shown}");
}

#[test]
fn batch_wait_prints_results_in_order_and_the_on_complete_job_runs() {
    let server = Server::start(CONFIG);
    let lines: String = (1..=6)
        .map(|n| format!("{}\n\n", json!({"kind": "square", "payload": {"n": n}})))
        .collect();
    let file = server.dir.join("jobs.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let out = ok(
        &server,
        &[
            "batch",
            file.to_str().unwrap(),
            "--wait",
            "--on-complete",
            "summary",
            "--on-complete-payload",
            r#"{"report": 9}"#,
        ],
    );
    let results: Vec<&str> = out
        .lines()
        .skip(1)
        .take(6)
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert_eq!(results, ["1", "4", "9", "16", "25", "36"], "{out}");
    assert!(
        out.contains("finished: 6 jobs, 6 completed"),
        "the summary line: {out}"
    );
    let summary: Value = eventually(WAIT, "the on-complete job's output", || {
        let text = std::fs::read_to_string(server.dir.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    });
    assert_eq!(summary["batch"]["completed"], 6);
    assert_eq!(summary["batch"]["total"], 6);
    assert_eq!(summary["payload"]["report"], 9);

    // Standard input and JSON output.
    let out = cli_with_stdin(&server, &["batch", "-", "--wait", "--json"], &lines);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let squares: Vec<i64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_i64().unwrap())
        .collect();
    assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
    assert!(answer["batch"]["finished_at"].is_string());

    // Without --wait: the id, at once.
    let out = cli_with_stdin(&server, &["batch", "-"], &lines);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("batch ") && text.ends_with(" enqueued: 6 jobs\n"),
        "{text}"
    );
}

#[test]
fn batch_wait_exits_non_zero_on_timeout_or_failure() {
    let server = Server::start(CONFIG);
    let slow = format!(
        "{}\n{}\n",
        json!({"kind": "square", "payload": {"n": 2}}),
        json!({"kind": "slow"})
    );
    let out = cli_with_stdin(
        &server,
        &["batch", "-", "--wait", "--wait-timeout", "1s"],
        &slow,
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("not finished after 1s"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("not finished"), "{}", stdout(&out));

    let failing = format!(
        "{}\n{}\n",
        json!({"kind": "square", "payload": {"n": 3}}),
        json!({"kind": "reindex_post"})
    );
    let out = cli_with_stdin(&server, &["batch", "-", "--wait"], &failing);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1 of 2 jobs did not complete"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("index down"), "{}", stdout(&out));
}

#[test]
fn bad_batches_are_refused_and_enqueue_nothing() {
    let server = Server::start(CONFIG);
    let before = total_jobs(&server);
    let cases = [
        ("{\"kind\": \"square\"}\n{\"kind\": \n", "line 2: not a job"),
        ("\n\n", "no jobs"),
        (
            "{\"kind\": \"square\"}\n{\"kind\": \"nope\"}\n",
            "unknown kind",
        ),
    ];
    for (input, expected) in cases {
        let out = cli_with_stdin(&server, &["batch", "-"], input);
        assert!(!out.status.success(), "{input:?} was accepted");
        assert!(
            stderr(&out).contains(expected),
            "{input:?}: expected {expected:?} in {}",
            stderr(&out)
        );
    }
    let out = server.cli(&["batch", "/nonexistent/jobs.jsonl"]);
    assert!(stderr(&out).contains("/nonexistent/jobs.jsonl"));
    let out = server.cli(&["batch", "-", "--on-complete-payload", "{}"]);
    assert!(
        !out.status.success(),
        "--on-complete-payload needs --on-complete"
    );
    assert_eq!(total_jobs(&server), before);
}

#[test]
fn unique_for_returns_the_first_job_even_after_it_completed() {
    let server = Server::start(CONFIG);
    let enqueue = |args: &[&str]| -> (i64, bool) {
        let mut all = vec!["enqueue"];
        all.extend_from_slice(args);
        let v = ok_json(&server, &all);
        (v["id"].as_i64().unwrap(), v["duplicate"].as_bool().unwrap())
    };
    // The kind's `unique_for`.
    let (first, dup) = enqueue(&["once", "--unique-key", "a"]);
    assert!(!dup);
    wait_state(&server, first, "completed", WAIT);
    assert_eq!(enqueue(&["once", "--unique-key", "a"]), (first, true));
    let out = ok(&server, &["enqueue", "once", "--unique-key", "a"]);
    assert!(out.contains("duplicate"), "{out}");
    assert_ne!(enqueue(&["once", "--unique-key", "b"]).0, first);

    // Without one, a completed job no longer deduplicates...
    let (plain, _) = enqueue(&["plain", "--unique-key", "a"]);
    wait_state(&server, plain, "completed", WAIT);
    let (next, dup) = enqueue(&["plain", "--unique-key", "a"]);
    assert!(next != plain && !dup);
    // ...unless the request says for how long.
    let (kept, _) = enqueue(&["plain", "--unique-key", "k", "--unique-for", "1h"]);
    wait_state(&server, kept, "completed", WAIT);
    assert_eq!(
        enqueue(&["plain", "--unique-key", "k", "--unique-for", "1h"]),
        (kept, true)
    );

    let out = server.cli(&["enqueue", "plain", "--unique-for", "1h"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--unique-key"), "{}", stderr(&out));
    let out = server.cli(&[
        "enqueue",
        "plain",
        "--unique-key",
        "z",
        "--unique-for",
        "a while",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--unique-for"), "{}", stderr(&out));
}

#[test]
fn bad_limits_and_events_stop_serve_naming_the_key() {
    let kind = "[kinds.email]\ncommand = [\"true\"]\n";
    let cases = [
        (
            "max_running = 0",
            "[kinds.email] max_running: must be at least 1",
        ),
        (
            "max_running = -1",
            "[kinds.email] max_running: invalid value",
        ),
        (
            "concurrency = 4",
            "[kinds.email] concurrency: renamed to max_running",
        ),
        (
            "rate = \"fast\"",
            "[kinds.email] rate: invalid rate \"fast\"",
        ),
        (
            "rate = \"14/fortnight\"",
            "[kinds.email] rate: invalid rate",
        ),
        (
            "unique_for = \"0s\"",
            "[kinds.email] unique_for: must be greater than zero",
        ),
        (
            "[events.\"comment.created\"]\nlisteners = [\"email\", \"reindex\"]",
            "[events.\"comment.created\"] listeners: \"reindex\" is not a configured kind",
        ),
        (
            "[server]\nrecord_unknown_events = \"yes\"",
            "record_unknown_events",
        ),
    ];
    for (extra, expected) in cases {
        let err = refused_config(&format!("{kind}{extra}\n"));
        assert!(
            err.contains(expected),
            "{extra}: expected {expected:?} in {err}"
        );
    }
}
