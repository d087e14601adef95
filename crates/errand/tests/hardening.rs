//! A real `errand serve` under stress it must survive: held requests at
//! SIGTERM, writes failing (a file-size limit makes every write to the
//! database fail, as a full disk does), too few file descriptors for the
//! connections clients open, and a low soft open-files limit.

mod common;

use common::{Server, get, post};
use serde_json::json;
use std::io::Read;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sets resource `limit` (a `prlimit` option, e.g. `--fsize=1:unlimited`)
/// of the running server.
fn prlimit(server: &Server, limit: &str) {
    let status = Command::new("prlimit")
        .args(["--pid", &server.child.id().to_string(), limit])
        .status()
        .expect("prlimit (util-linux) is installed");
    assert!(status.success(), "prlimit {limit} failed");
}

fn enqueue(server: &Server) -> (u16, serde_json::Value) {
    post(
        &server.url("/v1/jobs"),
        &json!({"kind": "later", "payload": {"n": 1}}),
    )
}

/// Jobs of kind `later` stay available: this node runs nothing.
const IDLE_NODE: &str = r#"
[worker]
enabled = false
shutdown_timeout = "5s"

[kinds.later]
command = ["true"]
"#;

#[test]
fn held_waits_answer_at_sigterm_and_the_process_exits_promptly() {
    let mut server = Server::start(IDLE_NODE);
    let mut paths: Vec<String> = (0..4)
        .map(|_| {
            let (status, job) = enqueue(&server);
            assert_eq!(status, 201, "{job}");
            format!("/v1/jobs/{}?wait=30s", job["id"])
        })
        .collect();
    let (status, batch) = post(
        &server.url("/v1/batches"),
        &json!({"jobs": [{"kind": "later", "payload": {}}]}),
    );
    assert_eq!(status, 201, "{batch}");
    paths.push(format!("/v1/batches/{}?wait=30s", batch["batch"]["id"]));
    let waits: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let url = server.url(&path);
            std::thread::spawn(move || (get(&url), Instant::now()))
        })
        .collect();
    // Let all five be held.
    std::thread::sleep(Duration::from_millis(500));
    let termed = Instant::now();
    server.signal("TERM");
    for wait in waits {
        let ((status, body), answered) = wait.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let state = body["state"]
            .as_str()
            .or(body["batch"]["total"].as_u64().map(|_| "batch"));
        assert!(
            matches!(state, Some("available" | "batch")),
            "not the current state: {body}"
        );
        assert!(
            answered.duration_since(termed) < Duration::from_secs(2),
            "a held request answered {:?} after SIGTERM",
            answered.duration_since(termed)
        );
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(4)),
        0,
        "{}",
        server.log_text()
    );
    assert!(termed.elapsed() < Duration::from_secs(4));
}

#[test]
fn failing_writes_degrade_healthz_with_one_clear_message() {
    let server = Server::start(IDLE_NODE);
    assert_eq!(enqueue(&server).0, 201);
    assert_eq!(get(&server.url("/healthz")).0, 200);

    // Every write past the first byte of a file now fails (EFBIG), as on
    // a full disk; the hard limit stays so the soft one can be raised again.
    prlimit(&server, "--fsize=1:unlimited");
    let (status, problem) = enqueue(&server);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["detail"], "store unavailable: disk I/O error");
    let (status, health) = get(&server.url("/healthz"));
    assert_eq!(status, 503, "{health}");
    let detail = health["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("degraded: writes are failing: disk I/O error (since "),
        "{detail}"
    );
    // Reads still work.
    assert_eq!(get(&server.url("/v1/jobs/1")).0, 200);

    // Space again: the next write succeeds and health recovers.
    prlimit(&server, "--fsize=unlimited:unlimited");
    let (status, job) = enqueue(&server);
    assert_eq!(status, 201, "{job}");
    let (status, health) = get(&server.url("/healthz"));
    assert_eq!(status, 200, "{health}");
    let log = server.log_text();
    assert!(log.contains("store unavailable: disk I/O error"), "{log}");
    assert!(
        !log.contains("store unavailable: store unavailable"),
        "{log}"
    );
}

#[test]
fn silent_connections_cannot_exhaust_the_descriptors() {
    let server = Server::start(
        r#"
[server]
max_connections = 40
header_read_timeout = "1s"
"#,
    );
    // 128 descriptors: fewer than the silent clients below.
    prlimit(&server, "--nofile=128:128");
    let address = server.base.trim_start_matches("http://").to_string();
    let silent: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, body) = get(&server.url("/healthz"));
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered after {:?}",
        started.elapsed()
    );
    // The silent ones are closed in turn, without a word.
    for mut tcp in silent.into_iter().take(10) {
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(tcp.read(&mut buf), Ok(0) | Err(_)));
    }
    assert!(
        !server.log_text().contains("Too many open files"),
        "{}",
        server.log_text()
    );
}

#[test]
fn serve_raises_its_soft_open_files_limit_to_the_hard_one() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // The server inherits a low soft limit from this test process.
    setrlimit(Resource::RLIMIT_NOFILE, 512.min(hard), hard).unwrap();
    let server = Server::start("");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "{line}");
}
