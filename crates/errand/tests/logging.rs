//! What `errand serve` writes to its log, through the real binary: a log
//! pipe whose reader has gone does not take the server down, and at debug
//! level neither payloads nor results (on SQLite and on PostgreSQL) nor
//! database passwords appear in what it prints.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAYLOAD_MARKER: &str = "payload-marker-5Qz81";
const RESULT_MARKER: &str = "result-marker-Hx07c";
const SETTLE: Duration = Duration::from_secs(30);

/// A kind `echo` whose command reads the payload and answers a result
/// holding [`RESULT_MARKER`].
fn config() -> String {
    format!(
        "[kinds.echo]\ncommand = [\"sh\", \"-c\", \"cat >/dev/null; echo '{{\\\"r\\\": \\\"{RESULT_MARKER}\\\"}}'\"]\n"
    )
}

/// Enqueues a job whose payload holds [`PAYLOAD_MARKER`] on the server at
/// `base`, waits for it to complete, and reads it back one by one and in a
/// listing.
fn run_marked_job(base: &str) {
    let (status, body) = post(
        &format!("{base}/v1/jobs"),
        &json!({"kind": "echo", "payload": {"secret": PAYLOAD_MARKER}}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let done = eventually(SETTLE, "the job to complete", || {
        let (_, job) = get(&format!("{base}/v1/jobs/{id}"));
        (job["state"] == "completed").then_some(job)
    });
    assert_eq!(done["result"]["r"], RESULT_MARKER);
    assert_eq!(done["payload"]["secret"], PAYLOAD_MARKER);
    let (status, page) = get(&format!("{base}/v1/jobs?limit=10"));
    assert_eq!((status, &page["jobs"][0]["id"]), (200, &json!(id)));
    let (status, _) = get(&format!("{base}/healthz"));
    assert_eq!(status, 200);
}

/// `errand serve --log-level debug` in `dir` with [`config`], plus `extra` args.
fn serve_debug(dir: &Path, extra: &[&str]) -> Server {
    let path = dir.join("errand.toml");
    std::fs::write(&path, config()).unwrap();
    let mut args = vec![
        "serve",
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "debug",
    ];
    args.extend_from_slice(extra);
    Server::spawn(dir, &args).unwrap_or_else(|log| panic!("errand serve did not start:\n{log}"))
}

/// Stops the server with SIGTERM and answers everything it logged.
fn stop(mut server: Server) -> String {
    server.signal("TERM");
    assert_eq!(server.wait_exit(SETTLE), 0, "{}", server.log_text());
    // The log reader thread drains what was written before the exit.
    std::thread::sleep(Duration::from_millis(200));
    server.log_text()
}

fn assert_no_user_data(log: &str) {
    assert!(
        log.contains("attempt ended"),
        "debug lines were logged:\n{log}"
    );
    for marker in [PAYLOAD_MARKER, RESULT_MARKER] {
        let line = log.lines().find(|l| l.contains(marker));
        assert!(line.is_none(), "the log holds {marker}: {line:?}");
    }
}

#[test]
fn debug_logs_on_sqlite_hold_no_payload_or_result() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_debug(dir.path(), &[]);
    run_marked_job(&server.base);
    assert_no_user_data(&stop(server));
}

#[test]
fn debug_logs_on_postgres_hold_no_payload_or_result() {
    let (_pg, url) = pg::fresh();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_debug(dir.path(), &["--database", &url]);
    run_marked_job(&server.base);
    let log = stop(server);
    assert_no_user_data(&log);
    assert!(
        !log.contains("tokio_postgres"),
        "tokio_postgres logs below info"
    );
}

#[test]
fn a_closed_log_pipe_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.toml");
    std::fs::write(&path, config()).unwrap();
    // stdout and stderr share one pipe, like `errand serve 2>&1 | head -1`.
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(errand_bin())
        .args(["serve", "--config", path.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--log-level", "debug"])
        .current_dir(dir.path())
        .env_remove("ERRAND_DATABASE")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("errand serve announces its address")
            .unwrap();
        if let Some((_, rest)) = line.split_once("listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // The reader goes away: every later write to the pipe fails.
    drop(lines);
    for _ in 0..3 {
        run_marked_job(&base);
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exited = eventually(SETTLE, "errand serve to exit", || child.try_wait().unwrap());
    assert_eq!(exited.code(), Some(0), "{exited:?}");
}

#[test]
fn an_unknown_database_scheme_is_refused_without_its_password() {
    let out = Command::new(errand_bin())
        .args(["migrate", "--database", "mysql://root:hunter2@db:3306/app"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mysql://root:***@db:3306/app"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
