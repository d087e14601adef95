//! Test harness: a real SqliteStore in a temp dir behind the real router,
//! served over loopback HTTP, with a client and raw-request helpers.
#![allow(dead_code)] // each test file uses a different part of the harness

use errand_client::Client;
use errand_core::schedule::ScheduleSpec;
use errand_core::store::{ClaimRequest, Finish, Stats};
use errand_core::{Backoff, Catalog, Job, KindPolicy, Outcome, Store};
use errand_server::ServerConfig;
use errand_sqlite::{SqliteOptions, SqliteStore};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Kinds every test server is configured with.
pub const KINDS: [&str; 2] = ["resize", "send_email"];

/// A running server over a fresh database.
pub struct Server {
    pub client: Client,
    pub store: SqliteStore,
    pub base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Events every test server is configured with, sorted.
pub const EVENTS: [&str; 2] = ["comment.created", "order.paid"];

/// The test configuration: two kinds, `send_email` in queue `mail`;
/// `comment.created` heard by `send_email` then `resize`, `order.paid` by `resize`.
pub fn config() -> ServerConfig {
    config_with(&[])
}

/// The test configuration plus `extra` kinds with the default policy.
pub fn config_with(extra: &[&str]) -> ServerConfig {
    ServerConfig {
        catalog: Arc::new(catalog(extra, Vec::new())),
        ..ServerConfig::default()
    }
}

/// The test catalogue plus `extra` kinds and `schedules`.
pub fn catalog(extra: &[&str], schedules: Vec<ScheduleSpec>) -> Catalog {
    let mut kinds = BTreeMap::from([
        ("resize".to_string(), KindPolicy::default()),
        (
            "send_email".to_string(),
            KindPolicy {
                queue: "mail".into(),
                ..KindPolicy::default()
            },
        ),
    ]);
    kinds.extend(extra.iter().map(|k| (k.to_string(), KindPolicy::default())));
    let events = BTreeMap::from([
        (
            "comment.created".to_string(),
            vec!["send_email".into(), "resize".into()],
        ),
        ("order.paid".to_string(), vec!["resize".into()]),
    ]);
    Catalog::new(kinds, events, schedules).expect("a valid catalogue")
}

/// An answer read as JSON, with its status and headers.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem+json answer of `status` naming `field`.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers[CONTENT_TYPE], "application/problem+json",
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "problem without detail: {}",
            self.body
        );
        assert_eq!(self.body["field"].as_str(), field, "body: {}", self.body);
    }
}

impl Server {
    /// Starts a server with [`config`].
    pub async fn start() -> Server {
        Self::with(config()).await
    }

    /// Enqueues a job of `kind` with an empty payload through the client;
    /// its id.
    pub async fn enqueue_empty(&self, kind: &str) -> i64 {
        let request = errand_client::job(kind, serde_json::json!({}));
        self.client.enqueue(request).await.unwrap().job.id
    }

    /// Starts a server with `config`.
    pub async fn with(config: ServerConfig) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("errand.db"), SqliteOptions::default())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        // Stopping cancels the configured shutdown token, as a node does.
        let (connections, shutdown) = (config.connections.clone(), config.shutdown.clone());
        let router = errand_server::router(Arc::new(store.clone()), config);
        let task = tokio::spawn(errand_server::serve_with(
            listener,
            router,
            connections,
            async move {
                let _ = stopped.await;
                shutdown.cancel();
            },
        ));
        Server {
            client: Client::new(&base).unwrap(),
            store,
            base,
            http: {
                errand_client::install_tls_provider();
                reqwest::Client::new()
            },
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Sends `body` with an optional content type.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        // An empty body (204) reads as null; `/metrics` answers plain text;
        // every other answer must be JSON.
        let text = headers
            .get(CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"text/plain"));
        let body = if bytes.is_empty() {
            Value::Null
        } else if text {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{status} answer is not JSON ({e}): {bytes:?}");
            })
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// POSTs a JSON value.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            path,
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    /// GETs a path.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, Vec::new())
            .await
    }

    /// Counts by state, read through the API.
    pub async fn stats(&self) -> Stats {
        self.client.stats().await.unwrap().stats
    }

    /// Claims the next job of `queue` and ends its attempt with `outcome`.
    pub async fn run_next(&self, queue: &str, outcome: Outcome) -> Job {
        finish_next(&self.store, queue, outcome).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// Claims the next job of `queue` from `store` and ends its attempt with `outcome`.
pub async fn finish_next(store: &SqliteStore, queue: &str, outcome: Outcome) -> Job {
    let claimed = store
        .claim(&ClaimRequest {
            queue: queue.into(),
            kinds: vec![],
            limit: 1,
            worker: "test".into(),
            lease: Duration::from_secs(30),
            limits: Default::default(),
        })
        .await
        .unwrap();
    let job = claimed.jobs.into_iter().next().expect("a job to claim");
    let applied = store
        .finish(vec![Finish {
            lease: job.lease(),
            outcome,
            backoff: Backoff::default(),
        }])
        .await
        .unwrap();
    assert_eq!(applied, [true]);
    job
}
