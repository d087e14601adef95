//! errand-server: errand's HTTP/JSON API under `/v1`.
//!
//! [`router`] builds the axum routes over any [`Store`]; [`serve_with`] runs
//! them on a listener until shutdown, with bounded connections
//! ([`Connections`]), or [`serve_tls`] over HTTPS ([`Tls`]). Every error answers
//! `application/problem+json` ([`errand_core::api::Problem`]) naming the
//! field at fault, and no rejected request changes the store. With auth
//! required, every route but `/healthz` and login needs a bearer token
//! (or a dashboard session's cookie and, to change state, its CSRF token)
//! with the scope [`route_scopes`] names. Whatever the auth mode, a
//! state-changing request a browser marks as cross-site is refused.

mod audit;
mod auth;
mod batches;
mod body;
mod bulk;
mod dashboard;
mod events;
mod gearman;
mod jobs;
mod listen;
mod metrics;
mod openapi;
mod pace;
mod params;
mod problem;
mod queues;
mod schedules;
mod session;
mod settings;
mod status;
mod tls;
mod tokens;
mod wait;
mod worker;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use errand_core::auth::Access;
use errand_core::{Catalog, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Actor, AuthMode, TOKEN_CACHE_TTL, auth_required};
pub use bulk::BulkStarter;
pub use dashboard::route_scopes as dashboard_scopes;
pub use gearman::{FunctionOutcomes, GearmanConfig, GearmanSettings, OnEnd, serve_gearman};
pub use listen::Connections;
pub use metrics::{NodeMetrics, PoolProcessGauge};
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
    /// Whether every route but `/healthz` needs a bearer token (decided by
    /// [`auth_required`]; off by default for an embedded router).
    pub auth_required: bool,
    /// How long a dashboard session lasts (`[server] session_ttl`).
    pub session_ttl: Duration,
    /// Whether the server is served over TLS: session cookies get `Secure`.
    pub tls: bool,
    /// Cancelled when the node stops: held `?wait=` requests answer at once
    /// with the current state instead of delaying the exit.
    pub shutdown: CancellationToken,
    /// Steps each bulk operation the API stores (see [`BulkStarter`]).
    pub bulk_starter: Option<BulkStarter>,
    /// The node's own gauges for `/metrics` (running jobs, pool
    /// processes); without it only the store's metrics are served.
    pub node_metrics: Option<Arc<dyn NodeMetrics>>,
    /// Lease, heartbeat and breaker settings for remote workers (the
    /// `[worker]` section's, as for the node's own worker).
    pub remote: errand_worker::RemoteSettings,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            catalog: Arc::default(),
            body_limit: 1024 * 1024,
            max_wait: Duration::from_secs(60),
            connections: Connections::default(),
            auth_required: false,
            session_ttl: errand_core::session::DEFAULT_SESSION_TTL,
            tls: false,
            shutdown: CancellationToken::new(),
            bulk_starter: None,
            node_metrics: None,
            remote: errand_worker::RemoteSettings::default(),
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
    /// The OpenAPI document, as served.
    openapi: Bytes,
    /// The CSRF token `GET /v1/session` gives with auth off (not checked:
    /// there is no session; the cross-site rule protects such a server).
    local_csrf: String,
    /// Serves remote workers' claims, heartbeats and finishes.
    remote: errand_worker::RemoteWorkers,
}

/// The handlers' view of [`App`].
pub(crate) type Shared = Arc<App>;

/// What a route asks of a request before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAccess {
    /// No token needed (`/healthz`: it reveals nothing; login: it takes
    /// the token in its body).
    Open,
    /// A bearer token (or a session of a token) with this scope, when auth
    /// is required.
    Needs(Access),
}

/// Which scope each route needs: (method, path template, access). The
/// auth middleware reads it for the route a request matched; a route the
/// OpenAPI document lists but this table lacks is refused (and a test
/// keeps the two equal).
pub fn route_scopes() -> Vec<(Method, &'static str, RouteAccess)> {
    use Access::{Admin, Enqueue, Metrics, Read, Work};
    use RouteAccess::{Needs, Open};
    vec![
        (Method::POST, "/v1/jobs", Needs(Enqueue)),
        (Method::GET, "/v1/jobs", Needs(Read)),
        (Method::POST, "/v1/jobs/batch", Needs(Enqueue)),
        (Method::POST, "/v1/jobs/bulk", Needs(Admin)),
        (Method::GET, "/v1/jobs/bulk", Needs(Read)),
        (Method::GET, "/v1/jobs/bulk/{id}", Needs(Read)),
        (Method::GET, "/v1/jobs/{id}", Needs(Read)),
        (Method::POST, "/v1/jobs/{id}/cancel", Needs(Admin)),
        (Method::POST, "/v1/jobs/{id}/retry", Needs(Admin)),
        (Method::POST, "/v1/events", Needs(Enqueue)),
        (Method::GET, "/v1/events", Needs(Read)),
        (Method::GET, "/v1/events/{id}", Needs(Read)),
        (Method::POST, "/v1/batches", Needs(Enqueue)),
        (Method::GET, "/v1/batches/{id}", Needs(Read)),
        (Method::GET, "/v1/stats", Needs(Read)),
        (Method::GET, "/v1/nodes", Needs(Read)),
        (Method::POST, "/v1/nodes/{name}/drain", Needs(Admin)),
        (Method::POST, "/v1/worker/claim", Needs(Work)),
        (Method::POST, "/v1/worker/heartbeat", Needs(Work)),
        (Method::POST, "/v1/worker/finish", Needs(Work)),
        (Method::GET, "/v1/schedules", Needs(Read)),
        (Method::GET, "/v1/queues", Needs(Read)),
        (Method::POST, "/v1/queues/{name}/pause", Needs(Admin)),
        (Method::POST, "/v1/queues/{name}/resume", Needs(Admin)),
        (Method::GET, "/v1/openapi.json", Needs(Read)),
        // Login takes a token in its body; the session acts as that token.
        (Method::POST, "/v1/session", Open),
        (Method::GET, "/v1/session", Needs(Read)),
        (Method::DELETE, "/v1/session", Needs(Read)),
        (Method::GET, "/v1/audit", Needs(Admin)),
        (Method::GET, "/v1/tokens", Needs(Admin)),
        (Method::POST, "/v1/tokens", Needs(Admin)),
        (Method::DELETE, "/v1/tokens/{name}", Needs(Admin)),
        (Method::GET, "/healthz", Open),
        (Method::GET, "/metrics", Needs(Metrics)),
    ]
}

/// The API's routes over `store`; with `config.auth_required`, each route
/// but the open ones answers 401/403 unless the request carries a token
/// with the route's scope (see [`route_scopes`]).
pub fn router(store: Arc<dyn Store>, config: ServerConfig) -> Router {
    let body_limit = config.body_limit;
    let verifier = config
        .auth_required
        .then(|| Arc::new(auth::Verifier::new(store.clone())));
    let (router, doc) = routes().split_for_parts();
    let router = router.merge(dashboard::router());
    let (known_kinds, known_events) = names(&config.catalog);
    let doc = openapi::finish(doc, &known_kinds, &known_events);
    // A document of strings and maps: serializing it cannot fail.
    let openapi = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let remote = errand_worker::RemoteWorkers::new(
        store.clone(),
        config.catalog.clone(),
        config.remote.clone(),
        config.shutdown.clone(),
    );
    let app = Arc::new(App {
        remote,
        store,
        known_kinds,
        known_events,
        openapi,
        local_csrf: format!("{:032x}", fastrand::u128(..)),
        config,
    });
    // Auth runs once routing has matched, so it knows the route's template.
    let router = match verifier {
        Some(verifier) => {
            let mut rules = route_scopes();
            rules.extend(dashboard::route_scopes());
            let guard =
                auth::RouteGuard::new(verifier, rules, body_limit, dashboard::login_redirects());
            router.route_layer(middleware::from_fn_with_state(guard, auth::require))
        }
        None => router,
    };
    router
        .fallback(status::no_route)
        .method_not_allowed_fallback(status::wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(session::refuse_cross_site))
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// The API's OpenAPI 3.1 document as a server with `catalog` serves it
/// at `GET /v1/openapi.json` (its kinds and events are the accepted names).
pub fn openapi(catalog: &Catalog) -> utoipa::openapi::OpenApi {
    let (kinds, events) = names(catalog);
    openapi::finish(routes().into_openapi(), &kinds, &events)
}

/// The configured kinds and event names, each sorted.
fn names(catalog: &Catalog) -> (Vec<String>, Vec<String>) {
    let kinds = catalog.kinds().keys().cloned().collect();
    let events = catalog.event_names().map(String::from).collect();
    (kinds, events)
}

/// Every route with its handler: the one list the router and the OpenAPI
/// document are both made from, so neither has a route the other lacks.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(openapi::Base::openapi())
        .routes(routes!(jobs::enqueue, jobs::list))
        .routes(routes!(jobs::enqueue_batch))
        .routes(routes!(bulk::start, bulk::list))
        .routes(routes!(bulk::get))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::cancel))
        .routes(routes!(jobs::retry))
        .routes(routes!(events::publish, events::list))
        .routes(routes!(events::get))
        .routes(routes!(batches::create))
        .routes(routes!(batches::get))
        .routes(routes!(status::stats))
        .routes(routes!(status::nodes))
        .routes(routes!(worker::drain))
        .routes(routes!(worker::claim))
        .routes(routes!(worker::heartbeat))
        .routes(routes!(worker::finish))
        .routes(routes!(schedules::list))
        .routes(routes!(queues::list))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(openapi::document))
        .routes(routes!(session::login, session::whoami, session::logout))
        .routes(routes!(audit::list))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(status::health))
        .routes(routes!(metrics::metrics))
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
