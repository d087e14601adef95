//! Service-level answers: stats, the health check, and problems for
//! routes and methods that do not exist.

use crate::Shared;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use errand_core::api::{Health, NodeList, Problem, StatsResponse};
use errand_core::store::NODE_ALIVE_WINDOW;

/// `GET /v1/stats`: job counts by state, queue and kind, and the breakers
/// that live nodes hold open.
#[utoipa::path(
    get,
    path = "/v1/stats",
    operation_id = "stats",
    tag = "status",
    responses((status = 200, description = "Job counts by state, queue and kind, and the open breakers of each live node", body = StatsResponse)),
)]
pub(crate) async fn stats(State(app): State<Shared>) -> Result<Json<StatsResponse>, ApiError> {
    let stats = app.store.stats().await?;
    let breakers = app
        .store
        .nodes(NODE_ALIVE_WINDOW)
        .await?
        .into_iter()
        .filter(|n| !n.breakers.is_empty())
        .map(|n| (n.name, n.breakers))
        .collect();
    Ok(Json(StatsResponse { stats, breakers }))
}

/// `GET /v1/nodes`: the errand processes sharing this store.
#[utoipa::path(
    get,
    path = "/v1/nodes",
    operation_id = "list_nodes",
    tag = "status",
    responses((status = 200, description = "The live nodes", body = NodeList)),
)]
pub(crate) async fn nodes(State(app): State<Shared>) -> Result<Json<NodeList>, ApiError> {
    let nodes = app.store.nodes(NODE_ALIVE_WINDOW).await?;
    Ok(Json(NodeList { nodes }))
}

/// `GET /healthz`: 200 when the store answers a cheap read and its latest
/// write worked; 503 naming the reason otherwise.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "health",
    tag = "status",
    responses(
        (status = 200, description = "The store answers a read and its latest write worked", body = Health),
        (status = 503, description = "The store is unavailable, or writes are failing (`detail` says since when)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn health(State(app): State<Shared>) -> Result<Json<Health>, ApiError> {
    if let Err(e) = app.store.get(0).await {
        // The error's own sentence ("store unavailable: …") says it all.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        ));
    }
    if let Some(why) = app.store.write_health().degraded() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why));
    }
    Ok(Json(Health {
        status: "ok".to_string(),
    }))
}

/// Any path outside the API.
pub(crate) async fn no_route(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
}

/// A known path with a method it does not take.
pub(crate) async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}
