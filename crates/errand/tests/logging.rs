//! What `errand serve` writes to its log, through the real binary: a log
//! pipe whose reader has gone does not take the server down, and at debug
//! level neither payloads nor results (on SQLite and on PostgreSQL) nor
//! configured secrets (webhook keys and headers, SMTP and database
//! passwords) appear in what it prints or in any API response.

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
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
    serve_debug_with(dir, path.to_str().unwrap(), extra)
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

const WEBHOOK_SECRET: &str = "whsec-marker-Jq3vT";
const HEADER_SECRET: &str = "header-marker-Lw8pZ";
const SMTP_PASSWORD: &str = "smtp-marker-Rk5nB";
const PG_PASSWORD: &str = "pg-marker-Ud2xM";

/// A webhook receiver on loopback that answers every request 200 `{}`;
/// its URL, and how many requests carried a signature.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let signed = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = signed.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            let counter = counter.clone();
            std::thread::spawn(move || {
                while let Some(head) = answer_one(&conn) {
                    if head.to_ascii_lowercase().contains("errand-signature: t=") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (url, signed)
}

/// Reads one request from `conn` and answers 200; its head, or `None` at
/// the end of the connection.
fn answer_one(mut conn: &TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).ok()?;
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    )
    .ok()?;
    Some(head)
}

#[test]
fn configured_secrets_appear_in_no_log_line_and_no_response() {
    let (_pg, url) = pg::fresh();
    let url = url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{PG_PASSWORD}@"),
        1,
    );
    assert!(url.contains(PG_PASSWORD), "{url}");
    let (hook_url, signed) = webhook_receiver();
    // Nothing listens on this port: each delivery fails to connect.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("errand.toml");
    std::fs::write(
        &path,
        format!(
            "[kinds.hook]\nwebhook = {{ url = \"{hook_url}\", secret = \"{WEBHOOK_SECRET}\", \
             headers = {{ Authorization = \"Bearer {HEADER_SECRET}\" }} }}\n\
             [kinds.mail]\nmax_attempts = 1\n\
             smtp = {{ url = \"smtp://app:{SMTP_PASSWORD}@127.0.0.1:{closed}\", from = \"a@example.com\", timeout = \"2s\" }}\n"
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let server = serve_debug_with(dir.path(), config, &["--database", &url]);
    let base = server.base.clone();

    let (status, hook) = post(
        &format!("{base}/v1/jobs"),
        &json!({"kind": "hook", "payload": {}}),
    );
    assert_eq!(status, 201, "{hook}");
    let mail_payload = json!({"to": "b@example.com", "subject": "s", "text": "t"});
    let (status, mail) = post(
        &format!("{base}/v1/jobs"),
        &json!({"kind": "mail", "payload": mail_payload}),
    );
    assert_eq!(status, 201, "{mail}");
    wait_state(&server, hook["id"].as_i64().unwrap(), "completed", SETTLE);
    // A refused connection is deadly (the mail system is at fault): the
    // attempt ends with an error and the job waits for another.
    let mail_id = mail["id"].as_i64().unwrap();
    let failed = eventually(SETTLE, "the delivery to fail", || {
        let j = job(&server, mail_id);
        (j["errors"].as_array().is_some_and(|e| !e.is_empty())).then_some(j)
    });
    assert!(
        signed.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the webhook was signed"
    );

    let mut answers = String::new();
    for path in [
        "/v1/jobs?limit=100",
        &format!("/v1/jobs/{}", mail["id"]),
        &format!("/v1/jobs/{}", hook["id"]),
        "/v1/stats",
        "/v1/nodes",
        "/v1/queues",
        "/v1/schedules",
        "/v1/events",
        "/v1/openapi.json",
        "/healthz",
    ] {
        let response = http().get(format!("{base}{path}")).send().unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        answers.push_str(&response.text().unwrap());
    }
    assert!(
        failed["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("SMTP")),
        "the SMTP executor ran: {failed}"
    );
    let log = stop(server);
    assert!(
        log.contains("attempt ended"),
        "debug lines were logged:\n{log}"
    );
    for secret in [WEBHOOK_SECRET, HEADER_SECRET, SMTP_PASSWORD, PG_PASSWORD] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "the log holds {secret}: {line:?}");
        assert!(!answers.contains(secret), "an API response holds {secret}");
    }
}

/// `errand serve --config CONFIG --log-level debug` in `dir`, plus `extra` args.
fn serve_debug_with(dir: &Path, config: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "--config",
        config,
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "debug",
    ];
    args.extend_from_slice(extra);
    Server::spawn(dir, &args).unwrap_or_else(|log| panic!("errand serve did not start:\n{log}"))
}
