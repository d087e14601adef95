//! The webhook executor against a real axum receiver on 127.0.0.1: the
//! signature verifies, every status class maps to its outcome, Retry-After
//! becomes a snooze, timeouts, refused connections and failed TLS
//! handshakes are retried, and sequential jobs reuse pooled connections.

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use errand_core::{Job, JobState, Outcome};
use errand_executors::webhook::{WebhookConfig, WebhookExecutor};
use errand_worker::{Executor, ProgressSink};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_test";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
}

/// What the receiver answers, read from the job's payload.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Script {
    status: Option<u16>,
    body: String,
    retry_after: Option<String>,
    sleep_ms: u64,
}

/// A real HTTP receiver that records every request and answers as each
/// job's payload tells it to.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/hook", axum::routing::post(answer))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Receiver { url, seen, server }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn executor(&self, timeout: Duration) -> Arc<WebhookExecutor> {
        let mut config = WebhookConfig::new(&self.url, SECRET);
        config.timeout = timeout;
        config
            .headers
            .insert("X-Api-Key".into(), "receiver-key".into());
        Arc::new(WebhookExecutor::new(config).unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    seen.lock().unwrap().push(Seen {
        peer,
        headers,
        body: body.clone(),
    });
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    let script: Script = serde_json::from_value(envelope["payload"].clone()).unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(script.sleep_ms)).await;
    let status = StatusCode::from_u16(script.status.unwrap_or(200)).unwrap();
    let mut response = (status, script.body).into_response();
    if let Some(retry_after) = script.retry_after {
        response
            .headers_mut()
            .insert("retry-after", retry_after.parse().unwrap());
    }
    response
}

/// Runs every payload as a job of one worker and returns each job once its
/// first attempt has ended.
async fn run_jobs(receiver: &Receiver, timeout: Duration, payloads: Vec<Value>) -> Vec<Job> {
    let (store, _dir) = store().await;
    let running = run_executor(
        &store,
        "notify",
        hour_backoff(None),
        receiver.executor(timeout),
        4,
    );
    let mut ids = Vec::new();
    for payload in payloads {
        ids.push(enqueue(&store, "notify", payload).await);
    }
    let mut jobs = Vec::new();
    for id in ids {
        jobs.push(wait_attempted(&store, id).await);
    }
    running.stop().await;
    jobs
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Seconds from now until the job is due again.
fn due_in(job: &Job) -> i64 {
    job.run_at.as_second() - unix_now() as i64
}

fn last_error(job: &Job) -> &str {
    &job.errors.last().expect("an error was recorded").error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_signed_and_carry_the_job() {
    let receiver = Receiver::start().await;
    let payload = json!({"status": 200, "body": r#"{"delivered": true}"#, "note": "héllo\nwörld"});
    let job = run_jobs(&receiver, Duration::from_secs(10), vec![payload.clone()])
        .await
        .remove(0);
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!({"delivered": true})));

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    let header = |name: &str| request.headers[name].to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("errand-job-id"), job.id.to_string());
    assert_eq!(header("errand-attempt"), "1");
    assert_eq!(header("x-api-key"), "receiver-key");

    // Verify the way docs/webhooks.md tells receivers to.
    let signature = header("errand-signature");
    let (t, v1) = signature
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .expect("t=…,v1=…");
    let t: u64 = t.parse().unwrap();
    assert!(unix_now().abs_diff(t) <= 60, "timestamp {t} is not fresh");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected, "signature verifies with the secret");
    let mut forged = Hmac::<Sha256>::new_from_slice(b"other secret").unwrap();
    forged.update(format!("{t}.").as_bytes());
    forged.update(&request.body);
    assert!(forged.verify_slice(&hex_decode(v1)).is_err());

    let envelope: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        envelope,
        json!({"id": job.id, "kind": "notify", "attempt": 1, "max_attempts": job.max_attempts, "payload": payload})
    );
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_map_to_outcomes() {
    let receiver = Receiver::start().await;
    let jobs = run_jobs(
        &receiver,
        Duration::from_secs(10),
        vec![
            json!({"status": 201, "body": "queued"}),
            json!({"status": 204}),
            json!({"status": 500, "body": "database is down"}),
            json!({"status": 502}),
            json!({"status": 408}),
            json!({"status": 503}),
            json!({"status": 404, "body": "no such hook"}),
            json!({"status": 422, "retry_after": "5"}),
        ],
    )
    .await;
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    use JobState::*;
    assert_eq!(
        states,
        [
            Completed, Completed, Retryable, Retryable, Retryable, Retryable, Failed, Failed
        ]
    );
    assert_eq!(jobs[0].result, Some(json!("queued")));
    assert_eq!(jobs[1].result, None);
    assert_eq!(
        last_error(&jobs[2]),
        "webhook answered HTTP 500 Internal Server Error: database is down"
    );
    assert!(last_error(&jobs[4]).contains("408"));
    assert_eq!(
        last_error(&jobs[6]),
        "webhook answered HTTP 404 Not Found: no such hook"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_snoozes_without_using_an_attempt() {
    let receiver = Receiver::start().await;
    let in_five_minutes = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(300);
    let http_date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&in_five_minutes)
        .unwrap();
    let jobs = run_jobs(
        &receiver,
        Duration::from_secs(10),
        vec![
            json!({"status": 429, "retry_after": "120"}),
            json!({"status": 503, "retry_after": http_date}),
            json!({"status": 429}),
            json!({"status": 429, "retry_after": "86400"}),
        ],
    )
    .await;
    for job in &jobs {
        assert_eq!(job.state, JobState::Scheduled, "{job:?}");
        assert_eq!(
            (job.attempt, job.max_attempts),
            (0, 25),
            "the attempt is refunded: {job:?}"
        );
    }
    // Generous lower bounds: on a loaded machine seconds may pass between
    // the snooze and this check.
    let due: Vec<i64> = jobs.iter().map(due_in).collect();
    assert!((105..=121).contains(&due[0]), "{due:?}");
    assert!((285..=301).contains(&due[1]), "{due:?}");
    assert!((15..=31).contains(&due[2]), "{due:?}");
    assert!(
        (3585..=3601).contains(&due[3]),
        "capped at an hour: {due:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_times_out_and_is_retried() {
    let receiver = Receiver::start().await;
    let job = run_jobs(
        &receiver,
        Duration::from_millis(300),
        vec![json!({"sleep_ms": 5000})],
    )
    .await
    .remove(0);
    assert_eq!(job.state, JobState::Retryable);
    assert_eq!(last_error(&job), "webhook timed out after 300ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_retried() {
    // A port that was just free: nothing listens there any more. The URL's
    // credentials must not reach the job's error.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let executor = WebhookExecutor::new(WebhookConfig::new(
        format!("http://hook:hunter2@127.0.0.1:{port}/hook"),
        SECRET,
    ))
    .unwrap();
    let (store, _dir) = store().await;
    let running = run_executor(&store, "notify", hour_backoff(None), Arc::new(executor), 1);
    let id = enqueue(&store, "notify", json!({})).await;
    let job = wait_attempted(&store, id).await;
    running.stop().await;
    assert_eq!(job.state, JobState::Retryable);
    let error = last_error(&job);
    assert!(
        error.starts_with("cannot connect to the webhook") && error.contains("refused"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_jobs_reuse_pooled_connections() {
    let receiver = Receiver::start().await;
    let (store, _dir) = store().await;
    let running = run_executor(
        &store,
        "notify",
        hour_backoff(None),
        receiver.executor(Duration::from_secs(10)),
        1,
    );
    for _ in 0..20 {
        let id = enqueue(&store, "notify", json!({})).await;
        assert_eq!(wait_attempted(&store, id).await.state, JobState::Completed);
    }
    running.stop().await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 20);
    let mut ports: Vec<u16> = seen.iter().map(|s| s.peer.port()).collect();
    ports.sort_unstable();
    ports.dedup();
    assert!(
        ports.len() <= 3,
        "20 jobs used {} connections: {ports:?}",
        ports.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_drops_the_request_at_once() {
    let receiver = Receiver::start().await;
    let executor = receiver.executor(Duration::from_secs(60));
    let (store, _dir) = store().await;
    let id = enqueue(&store, "notify", json!({"sleep_ms": 60_000})).await;
    let job = store.get(id).await.unwrap().unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    // Far less than the receiver's minute and the webhook's own timeout.
    let outcome = tokio::time::timeout(
        DEADLINE,
        executor.execute(&job, cancel, ProgressSink::discard()),
    )
    .await
    .expect("execute returns once cancelled");
    assert_eq!(outcome, Outcome::Retry("cancelled".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_failure_is_retried() {
    // https:// to a plain-HTTP receiver: rustls starts a handshake and fails.
    let receiver = Receiver::start().await;
    let url = receiver.url.replace("http://", "https://");
    let executor = WebhookExecutor::new(WebhookConfig::new(url, SECRET)).unwrap();
    let (store, _dir) = store().await;
    let id = enqueue(&store, "notify", json!({})).await;
    let job = store.get(id).await.unwrap().unwrap();
    let outcome = executor
        .execute(&job, CancellationToken::new(), ProgressSink::discard())
        .await;
    assert!(
        matches!(&outcome, Outcome::Retry(m) if m.starts_with("cannot connect to the webhook")),
        "{outcome:?}"
    );
    assert!(receiver.seen().is_empty(), "no request got through");
}
