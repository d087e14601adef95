//! errand-server: errand's HTTP/JSON API under `/v1`.
//!
//! [`router`] builds the axum routes over any [`Store`]; [`serve_with`] runs
//! them on a listener until shutdown, with bounded connections
//! ([`Connections`]), or [`serve_tls`] over HTTPS ([`Tls`]). Every error answers
//! `application/problem+json` ([`errand_core::api::Problem`]) naming the
//! field at fault, and no rejected request changes the store.

mod batches;
mod body;
mod events;
mod jobs;
mod listen;
mod pace;
mod params;
mod problem;
mod queues;
mod schedules;
mod settings;
mod status;
mod tls;
mod wait;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use errand_core::{Catalog, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub use listen::Connections;
pub use settings::ServerSettings;
pub use tls::{Tls, TlsError, TlsFiles};

/// What the API accepts.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The kinds, events and schedules the API knows; enqueueing any other
    /// kind or publishing an unknown event is refused (422).
    pub catalog: Arc<Catalog>,
    /// Largest request body in bytes (413 above it).
    pub body_limit: usize,
    /// Longest `?wait=` a request may hold the connection.
    pub max_wait: Duration,
    /// Bounds on connections, header and body times (for [`serve_with`]).
    pub connections: Connections,
    /// Cancelled when the node stops: held `?wait=` requests answer at once
    /// with the current state instead of delaying the exit.
    pub shutdown: CancellationToken,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            catalog: Arc::default(),
            body_limit: 1024 * 1024,
            max_wait: Duration::from_secs(60),
            connections: Connections::default(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    store: Arc<dyn Store>,
    config: ServerConfig,
    /// The configured kinds, sorted, for "unknown kind" answers.
    known_kinds: Vec<String>,
    /// The configured event names, sorted, for "unknown event" answers.
    known_events: Vec<String>,
}

/// The handlers' view of [`App`].
pub(crate) type Shared = Arc<App>;

/// The API's routes over `store`.
pub fn router(store: Arc<dyn Store>, config: ServerConfig) -> Router {
    let body_limit = config.body_limit;
    let app = Arc::new(App {
        store,
        known_kinds: config.catalog.kinds().keys().cloned().collect(),
        known_events: config.catalog.event_names().map(String::from).collect(),
        config,
    });
    Router::new()
        .route("/v1/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/v1/jobs/batch", post(jobs::enqueue_batch))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/events", post(events::publish).get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/batches", post(batches::create))
        .route("/v1/batches/{id}", get(batches::get))
        .route("/v1/stats", get(status::stats))
        .route("/v1/nodes", get(status::nodes))
        .route("/v1/schedules", get(schedules::list))
        .route("/v1/queues", get(queues::list))
        .route("/v1/queues/{name}/pause", post(queues::pause))
        .route("/v1/queues/{name}/resume", post(queues::resume))
        .route("/healthz", get(status::health))
        .fallback(status::no_route)
        .method_not_allowed_fallback(status::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// Serves until `shutdown` resolves (graceful: in-flight requests finish),
/// with the default [`Connections`] bounds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Connections::default(), shutdown).await
}

/// Serves until `shutdown` resolves (graceful: in-flight requests finish,
/// idle connections close), within `connections`' bounds.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    connections: Connections,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::run(listener, router, connections, None, shutdown).await
}

/// [`serve_with`] over HTTPS: every connection first completes a TLS
/// handshake (within `connections.header_read_timeout`) with the
/// certificate `tls` holds at that moment.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    connections: Connections,
    tls: Tls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::run(listener, router, connections, Some(tls), shutdown).await
}

/// Logs each request at debug level; costs nothing more when debug is off.
async fn log_request(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}
