//! The `/v1/jobs/bulk` handlers: start a bulk action (retry, cancel,
//! delete or run now on ids or on everything a filter matches), and read
//! its progress. The request only stores the operation; the node's
//! [`BulkStarter`] steps it in the background, chunk by chunk
//! (docs/decisions/0027), so even a million-job action answers at once.

use crate::Shared;
use crate::auth::ActingAs;
use crate::body::JsonBody;
use crate::params::{BulkListParams, IdParam, Params};
use crate::problem::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_core::api::Problem;
use errand_core::audit::AuditActor;
use errand_core::bulk::{BulkId, BulkOperation, BulkRequest};
use std::fmt;
use std::sync::Arc;

/// Starts stepping a stored bulk operation in the background (a node
/// passes its `errand_worker::BulkRunner`). Without one, the operation
/// waits for the maintenance leader to find it stale and resume it.
#[derive(Clone)]
pub struct BulkStarter(pub Arc<dyn Fn(BulkId) + Send + Sync>);

impl fmt::Debug for BulkStarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BulkStarter")
    }
}

/// `POST /v1/jobs/bulk`: 202 with the operation, stepped in the background.
#[utoipa::path(
    post,
    path = "/v1/jobs/bulk",
    operation_id = "start_bulk",
    tag = "jobs",
    request_body = BulkRequest,
    responses(
        (status = 202, description = "The operation, stored and started; `Location` is its progress", body = BulkOperation,
            headers(("location" = String, description = "`/v1/jobs/bulk/{id}`")),
            links(("progress" = (operation_id = "get_bulk", parameters(("id" = "$response.body#/id"))))),
        ),
        (status = 422, description = "Unknown action, no target or both, too many ids, or a bad filter value (`field` names it): nothing was stored", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn start(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    JsonBody(req): JsonBody<BulkRequest>,
) -> Result<Response, ApiError> {
    let actor = match actor {
        AuditActor::Token(name) => Some(name),
        AuditActor::Local => None,
    };
    let bulk = req.resolve(actor)?;
    // The store writes the operation and its one `bulk.<action>` audit
    // entry in one transaction.
    let op = app.store.create_bulk(bulk).await?;
    tracing::info!(
        bulk = op.id,
        action = %op.action,
        target = %op.target.summary(),
        actor = op.actor.as_deref().unwrap_or("-"),
        "bulk operation started"
    );
    if let Some(BulkStarter(start)) = &app.config.bulk_starter {
        start(op.id);
    }
    let location = HeaderValue::from_str(&format!("/v1/jobs/bulk/{}", op.id))
        .unwrap_or(HeaderValue::from_static("/v1/jobs/bulk"));
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(op),
    )
        .into_response())
}

/// `GET /v1/jobs/bulk/{id}`: one operation's progress.
#[utoipa::path(
    get,
    path = "/v1/jobs/bulk/{id}",
    operation_id = "get_bulk",
    tag = "jobs",
    params(IdParam),
    responses((status = 200, description = "The operation: state, counts so far, cursor", body = BulkOperation)),
)]
pub(crate) async fn get(
    State(app): State<Shared>,
    IdParam(id): IdParam,
) -> Result<Json<BulkOperation>, ApiError> {
    match app.store.bulk(id).await? {
        Some(op) => Ok(Json(op)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("bulk operation {id} not found"),
        )),
    }
}

/// `GET /v1/jobs/bulk?state=&limit=`: recent operations, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs/bulk",
    operation_id = "list_bulk",
    tag = "jobs",
    params(BulkListParams),
    responses((status = 200, description = "Operations, newest first", body = Vec<BulkOperation>)),
)]
pub(crate) async fn list(
    State(app): State<Shared>,
    Params(params): Params<BulkListParams>,
) -> Result<Json<Vec<BulkOperation>>, ApiError> {
    let (state, limit) = params.filter()?;
    Ok(Json(app.store.bulks(state, limit).await?))
}
