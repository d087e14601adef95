//! The `errand` command line against a real server: start-up with and
//! without a config, refused configurations, the single-process lock,
//! migrate, and the client commands with their tables, JSON and errors.

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

const ECHO: &str = r#"
[kinds.echo]
command = ["python3", "-c", "import json,sys; print(json.dumps({'echo': json.load(sys.stdin)}))"]
[kinds.fail]
command = ["sh", "-c", "echo 'something broke' >&2; exit 3"]
max_attempts = 1
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn serve_starts_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(dir.path(), &["serve", "--listen", "127.0.0.1:0"]).unwrap();
    assert_eq!(get(&server.url("/healthz")).0, 200);
    assert!(
        dir.path().join("errand.db").exists(),
        "default database errand.db in the working directory"
    );
    // No kinds configured: every enqueue is refused, naming the field.
    let (status, body) = post(&server.url("/v1/jobs"), &json!({"kind": "anything"}));
    assert_eq!((status, body["field"].as_str()), (422, Some("kind")));
}

#[test]
fn database_flag_and_env_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("errand.toml"),
        "database = \"sqlite://from-file.db\"\n",
    )
    .unwrap();
    let s = Server::spawn(
        dir.path(),
        &[
            "serve",
            "-c",
            "errand.toml",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite://from-flag.db",
        ],
    )
    .unwrap();
    assert!(dir.path().join("from-flag.db").exists());
    assert!(!dir.path().join("from-file.db").exists());
    drop(s);
}

#[test]
fn the_start_up_line_shows_the_database_file_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("conf")).unwrap();
    std::fs::write(
        root.join("conf/errand.toml"),
        "database = \"sqlite://jobs.db\"\n",
    )
    .unwrap();
    let s = Server::spawn(
        &root,
        &["serve", "-c", "conf/errand.toml", "--listen", "127.0.0.1:0"],
    )
    .unwrap();
    // The file lies next to the config, and the log says so in full.
    let file = root.join("conf/jobs.db");
    assert!(file.exists());
    // The address is announced as soon as it is read; the log keeps the
    // line a moment later.
    let line = eventually(Duration::from_secs(10), "the start-up line", || {
        let log = s.log_text();
        let line = log.lines().find(|l| l.contains("listening on"))?;
        Some(line.to_string())
    });
    assert!(
        line.contains(&format!("database=sqlite://{}", file.display())),
        "{line}"
    );
}

#[test]
fn bad_config_stops_serve_naming_kind_and_key() {
    let cases = [
        (
            "[kinds.resize]\nqueue = \"media\"\n",
            "[kinds.resize] missing executor",
        ),
        (
            "[kinds.resize]\ncommand = [\"true\"]\ntimeout = \"forever\"\n",
            "invalid duration",
        ),
        (
            "[kinds.resize]\ncommand = [\"true\"]\nretries = 3\n",
            "retries",
        ),
        (
            "[queues.media]\nconcurrency = 0\n",
            "[queues.media] concurrency",
        ),
        (
            "[kinds.resize]\ncommand = [\"resize-nope\", \"--fast\"]\n",
            "[kinds.resize] command: program \"resize-nope\" not found",
        ),
    ];
    for (text, expected) in cases {
        let err = refused_config(text);
        assert!(
            err.contains(expected),
            "for {text:?} expected {expected:?} in: {err}"
        );
        if expected.contains("resize") || text.contains("resize") {
            assert!(err.contains("resize"), "message must name the kind: {err}");
        }
    }
}

#[test]
fn a_second_server_on_the_same_database_is_refused() {
    let first = Server::start(ECHO);
    let second = Server::spawn(
        &first.dir,
        &[
            "serve",
            "--config",
            first.config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let log = second.err().expect("second server must not start");
    assert!(log.contains("in use by another errand process"), "{log}");
    // The first one is unaffected.
    assert_eq!(get(&first.url("/healthz")).0, 200);
}

#[test]
fn migrate_creates_the_schema_and_reports_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(errand_bin())
        .current_dir(dir.path())
        .args(["migrate", "--database", "sqlite://m.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The latest version is the number of SQLite migrations shipped.
    let migrations = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../errand-sqlite/migrations"),
    )
    .unwrap()
    .count();
    assert!(
        stdout(&out).contains(&format!("schema version {migrations}")),
        "{} (expected version {migrations})",
        stdout(&out)
    );
    assert!(dir.path().join("m.db").exists());
    // Running it again is a no-op that reports the same version.
    let again = Command::new(errand_bin())
        .current_dir(dir.path())
        .args(["migrate", "--database", "sqlite://m.db"])
        .output()
        .unwrap();
    assert_eq!(stdout(&again), stdout(&out));
}

#[test]
fn enqueue_wait_prints_the_result_and_json_mode_is_parseable() {
    let server = Server::start(ECHO);
    let out = server.cli(&[
        "enqueue",
        "echo",
        r#"{"word": "héllo"}"#,
        "--wait",
        "--wait-timeout",
        "30s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("completed"), "{}", stdout(&out));
    assert!(stdout(&out).contains("héllo"));

    let out = server.cli(&["enqueue", "echo", r#"{"n": 1}"#, "--json", "--wait"]);
    let job: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(job["state"], "completed");
    assert_eq!(job["result"], json!({"echo": {"n": 1}}));

    // From a file and from stdin.
    let file = server.dir.join("payload.json");
    std::fs::write(&file, r#"{"from": "file"}"#).unwrap();
    let out = server.cli(&["enqueue", "echo", &format!("@{}", file.display()), "--json"]);
    let enq: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enq["payload"], json!({"from": "file"}));
    let mut child = Command::new(errand_bin())
        .args(["enqueue", "echo", "-", "--json"])
        .env("ERRAND_SERVER", &server.base)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"from": "stdin"}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let enq: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enq["payload"], json!({"from": "stdin"}));
}

#[test]
fn wait_timeout_bounds_the_wait_and_the_old_timeout_spelling_is_refused() {
    let server = Server::start(
        r#"
[kinds.slow]
command = ["sleep", "10"]
"#,
    );
    // --wait-timeout bounds how long --wait waits, not the job.
    let started = std::time::Instant::now();
    let out = server.cli(&["enqueue", "slow", "--wait", "--wait-timeout", "1s"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("still running after waiting 1s"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "waited for the job"
    );

    // The old spelling, which read like the job's own time limit, is
    // refused naming the new flag, with or without --wait or a value, and
    // nothing is enqueued.
    let jobs_before = stdout(&server.cli(&["jobs", "list", "--json"]));
    for (args, job_limit) in [
        (
            &["enqueue", "slow", "--wait", "--timeout", "30s"][..],
            "--job-timeout",
        ),
        (&["enqueue", "slow", "--timeout", "5m"], "--job-timeout"),
        (&["enqueue", "slow", "--wait", "--timeout"], "--job-timeout"),
        (
            &["batch", "-", "--wait", "--timeout", "30s"],
            r#"line's "timeout""#,
        ),
    ] {
        let out = server.cli(args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("--timeout is now --wait-timeout") && err.contains(job_limit),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        stdout(&server.cli(&["jobs", "list", "--json"])),
        jobs_before
    );
    // Neither --help mentions the old spelling.
    for command in ["enqueue", "batch"] {
        let help = stdout(&server.cli(&[command, "--help"]));
        assert!(help.contains("--wait-timeout"), "{help}");
        assert!(!help.contains("--timeout"), "{help}");
    }
}

#[test]
fn a_failed_job_makes_enqueue_wait_exit_non_zero_with_its_error() {
    let server = Server::start(ECHO);
    let out = server.cli(&["enqueue", "fail", "--wait"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("failed") && err.contains("something broke"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one-line message: {err}");
}

#[test]
fn cli_errors_are_one_line_and_change_nothing() {
    let server = Server::start(ECHO);
    let before = stats(&server);
    let cases: [&[&str]; 6] = [
        &["enqueue", "echo", "{not json"],
        &["enqueue", "nope", "{}"],
        &["enqueue", "echo", "{}", "--delay", "soon"],
        &["enqueue", "echo", "{}", "--at", "tomorrow"],
        &["enqueue", "echo", "{}", "--max-attempts", "0"],
        &["jobs", "show", "999999"],
    ];
    for args in cases {
        let out = server.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let unknown = stderr(&server.cli(&["enqueue", "nope", "{}"]));
    assert!(
        unknown.contains("echo") && unknown.contains("fail"),
        "lists the configured kinds: {unknown}"
    );
    assert_eq!(stats(&server), before, "nothing changed");

    let out = Command::new(errand_bin())
        .args(["stats", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("127.0.0.1:9"), "{}", stderr(&out));
}

#[test]
fn jobs_list_show_cancel_retry_and_stats() {
    let server = Server::start(ECHO);
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            let out = server.cli(&[
                "enqueue",
                "echo",
                &format!("{{\"i\": {i}}}"),
                "--delay",
                "1h",
                "--json",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();

    let table = stdout(&server.cli(&["jobs", "list", "--state", "scheduled"]));
    assert!(table.starts_with("ID"), "{table}");
    for id in &ids {
        assert!(
            table.lines().any(|l| l.starts_with(&format!("{id} "))),
            "{table}"
        );
    }
    let page: Value = serde_json::from_slice(
        &server
            .cli(&["jobs", "list", "--limit", "2", "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["id"].as_i64(), Some(ids[2]), "newest first");
    let cursor = page["next_cursor"].as_i64().unwrap().to_string();
    let rest: Value = serde_json::from_slice(
        &server
            .cli(&["jobs", "list", "--cursor", &cursor, "--json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(rest["jobs"][0]["id"].as_i64(), Some(ids[0]));

    let show = stdout(&server.cli(&["jobs", "show", &ids[0].to_string()]));
    assert!(
        show.contains("state:") && show.contains("scheduled"),
        "{show}"
    );

    let out = server.cli(&["jobs", "cancel", &ids[0].to_string()]);
    assert!(stdout(&out).contains("cancelled"), "{}", stdout(&out));
    let again = server.cli(&["jobs", "cancel", &ids[0].to_string()]);
    assert!(
        !again.status.success() && stderr(&again).contains("409"),
        "{}",
        stderr(&again)
    );

    let out = server.cli(&["jobs", "retry", &ids[0].to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_state(&server, ids[0], "completed", Duration::from_secs(30));

    let stats_table = stdout(&server.cli(&["stats"]));
    assert!(stats_table.contains("kind echo"), "{stats_table}");
    let stats_json: Value =
        serde_json::from_slice(&server.cli(&["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats_json["kinds"]["echo"]["scheduled"], 2);
    assert_eq!(stats_json["kinds"]["echo"]["completed"], 1);
}

/// A job that snoozes twice has used none of its 3 attempts: lists and
/// `jobs show` say 0 of 3 (not the 2 of 5 raised refunds used to show).
#[test]
fn snoozes_leave_the_attempt_count_and_its_budget_as_they_were() {
    const SNOOZY: &str = r#"
[kinds.snoozy]
max_attempts = 3
command = ["python3", "-c", """
import json, os, sys
marker = os.path.join(json.load(sys.stdin)['dir'], 'snoozed-once')
seconds = 3600 if os.path.exists(marker) else 0
open(marker, 'a').close()
print(json.dumps({'errand': 'snooze', 'seconds': seconds}).replace(' ', ''))
"""]
"#;
    let server = Server::start(SNOOZY);
    let payload = json!({"dir": server.dir}).to_string();
    let out = server.cli(&["enqueue", "snoozy", &payload, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap();
    let j = eventually(Duration::from_secs(30), "the second snooze", || {
        let j = job(&server, id);
        let snoozed_long = j["run_at"].as_str().is_some_and(|t| {
            t.parse::<jiff::Timestamp>().unwrap()
                > jiff::Timestamp::now() + jiff::SignedDuration::from_secs(600)
        });
        (j["state"] == "scheduled" && snoozed_long).then_some(j)
    });
    assert_eq!(
        (j["attempt"].as_u64(), j["max_attempts"].as_u64()),
        (Some(0), Some(3))
    );
    assert!(
        j.get("fence").is_none(),
        "the fence is not part of the job: {j}"
    );
    let show = stdout(&server.cli(&["jobs", "show", &id.to_string()]));
    assert!(show.contains("attempt:      0 of 3"), "{show}");
    let table = stdout(&server.cli(&["jobs", "list"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap();
    assert!(row.contains(" 0/3 "), "{table}");
}

#[test]
fn a_paused_queue_keeps_its_jobs_across_a_restart_until_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(tmp.path(), ECHO);
    let out = server.cli(&["queues", "pause", "default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("queue default paused"),
        "{}",
        stdout(&out)
    );
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            let out = server.cli(&["enqueue", "echo", &i.to_string(), "--json"]);
            assert!(out.status.success(), "{}", stderr(&out));
            let enq: Value = serde_json::from_slice(&out.stdout).unwrap();
            enq["id"].as_i64().expect("job id")
        })
        .collect();
    let all_available = |server: &Server| {
        for id in &ids {
            assert_eq!(job(server, *id)["state"], "available", "job {id}");
        }
    };
    std::thread::sleep(Duration::from_secs(2));
    all_available(&server);

    server.kill9();
    let server = Server::start_in(tmp.path(), ECHO);
    let out = server.cli(&["queues", "list", "--json"]);
    let queues: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(
        queues,
        json!([{"name": "default", "paused": true, "counts": {"available": 3}}])
    );
    let table = stdout(&server.cli(&["queues", "list"]));
    assert!(
        table.contains("default") && table.contains("paused"),
        "{table}"
    );
    std::thread::sleep(Duration::from_secs(2));
    all_available(&server);

    let out = server.cli(&["queues", "resume", "default", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resumed["paused"], false);
    for id in &ids {
        wait_state(&server, *id, "completed", Duration::from_secs(30));
    }

    let out = server.cli(&["queues", "pause", "bad name"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("name"), "{}", stderr(&out));
    let queues: Value =
        serde_json::from_slice(&server.cli(&["queues", "list", "--json"]).stdout).unwrap();
    assert_eq!(queues.as_array().map(Vec::len), Some(1), "{queues}");
    // A bare `errand queues` lists too, as tables or JSON.
    let out = server.cli(&["queues", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        queues
    );
    let (bare, listed) = (server.cli(&["queues"]), server.cli(&["queues", "list"]));
    assert!(bare.status.success(), "{}", stderr(&bare));
    assert_eq!(stdout(&bare), stdout(&listed));
    assert!(stdout(&bare).contains("default"), "{}", stdout(&bare));
}

#[test]
fn help_is_everywhere() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["enqueue", "--help"],
        &["jobs", "list", "--help"],
        &["queues", "pause", "--help"],
        &["publish", "--help"],
        &["events", "show", "--help"],
        &["batch", "--help"],
        &["tokens", "create", "--help"],
    ] {
        let out = Command::new(errand_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
}

#[test]
fn help_lists_every_command_and_sets_global_options_apart() {
    let help = |args: &[&str]| {
        let out = Command::new(errand_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        stdout(&out)
    };
    let top = help(&["--help"]);
    let commands = [
        "serve",
        "work",
        "migrate",
        "enqueue",
        "jobs",
        "stats",
        "nodes",
        "schedules",
        "queues",
        "publish",
        "events",
        "batch",
        "tokens",
    ];
    for command in commands {
        assert!(top.contains(&format!("\n  {command} ")), "{command}: {top}");
        // Each command's own options come first; the global ones follow
        // under their own heading.
        let own = help(&[command, "--help"]);
        let (options, global) = own
            .split_once("Global options:")
            .unwrap_or_else(|| panic!("{command}: {own}"));
        assert!(!options.contains("--log-format"), "{command}: {own}");
        assert!(
            global.contains("--log-format") && global.contains("--log-level"),
            "{command}: {own}"
        );
    }
    // The benchmark is a binary of its own (errand-bench).
    assert!(!top.contains("\n  bench "), "{top}");
    // The one-line description no longer names a handful of commands.
    assert!(!top.lines().next().unwrap().contains("migrate"), "{top}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::spawn(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--log-format", "json"],
    )
    .unwrap();
    let log = server.log_text();
    let first = log.lines().next().unwrap();
    let parsed: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{first}: {e}"));
    assert!(parsed.get("level").is_some(), "{parsed}");
}

#[test]
fn nodes_lists_the_serving_node_and_work_shares_no_sqlite_file() {
    let server = Server::start(ECHO);
    let nodes: Value = eventually(Duration::from_secs(20), "the node to register", || {
        let out = server.cli(&["nodes", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v.as_array()?.len() == 1).then_some(v)
    });
    let node = &nodes[0];
    assert_eq!(
        node["http"].as_str(),
        server.base.strip_prefix("http://"),
        "{node}"
    );
    assert_eq!(node["queues"]["default"], 16);
    let table = stdout(&server.cli(&["nodes"]));
    assert!(
        table.starts_with("NODE") && table.contains(node["name"].as_str().unwrap()),
        "{table}"
    );

    // A worker-only node cannot share the SQLite file of a running server.
    let out = Command::new(errand_bin())
        .args(["work", "--config"])
        .arg(&server.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another errand process"),
        "{}",
        stderr(&out)
    );
}
