//! The remote worker routes under `/v1/worker` (docs/worker-protocol.md):
//! claim (long poll), heartbeat and finish, for tokens with the `work`
//! scope; and `POST /v1/nodes/{name}/drain`. The protocol's rules live in
//! errand-core (`remote`) and errand-worker (`RemoteWorkers`); here, the
//! HTTP edge: the token's kind restriction and the answers' statuses.

use crate::Shared;
use crate::auth::Grant;
use crate::body::JsonBody;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use errand_core::api::Problem;
use errand_core::remote::{
    FinishAnswer, HeartbeatAnswer, WorkClaim, WorkClaimed, WorkFinish, WorkHeartbeat,
};
use errand_worker::RemoteError;

impl From<RemoteError> for ApiError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Invalid(e) => e.into(),
            RemoteError::NotRemote {
                field,
                message,
                remote_kinds,
            } => ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, message)
                .with_known_kinds(&remote_kinds),
            RemoteError::Store(e) => e.into(),
        }
    }
}

/// `POST /v1/worker/claim`: up to `max_jobs` jobs, waiting up to `wait`.
#[utoipa::path(
    post,
    path = "/v1/worker/claim",
    operation_id = "worker_claim",
    tag = "worker",
    request_body = WorkClaim,
    responses(
        (status = 200, description = "The jobs now running under the worker's leases (none when the wait ran out)", body = WorkClaimed),
        (status = 403, description = "The token lacks `work`, or its `work:…` list lacks a kind (`field: kinds[i]`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong: `max_jobs` outside 1–1000, `wait` over 30 s, a kind not configured `remote = true` (`known_kinds` lists those)…", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn claim(
    State(app): State<Shared>,
    grant: Grant,
    JsonBody(req): JsonBody<WorkClaim>,
) -> Result<Json<WorkClaimed>, ApiError> {
    for (i, kind) in req.kinds.iter().enumerate() {
        grant.may_work(&format!("kinds[{i}]"), kind)?;
    }
    Ok(Json(app.remote.claim(req).await?))
}

/// `POST /v1/worker/heartbeat`: extends the leases held; says which are lost.
#[utoipa::path(
    post,
    path = "/v1/worker/heartbeat",
    operation_id = "worker_heartbeat",
    tag = "worker",
    request_body = WorkHeartbeat,
    responses(
        (status = 200, description = "The leases not in `lost` are extended; abandon those in `lost`", body = HeartbeatAnswer),
        (status = 409, description = "None of the listed leases is held any more; nothing was extended (`lost` says why for each)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (a lease listed twice, progress over 4 KiB…)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn heartbeat(
    State(app): State<Shared>,
    JsonBody(req): JsonBody<WorkHeartbeat>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let listed = req.jobs.len();
    let answer = app.remote.heartbeat(req).await?;
    if listed > 0 && answer.lost.len() == listed {
        let mut error = ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "none of the {listed} listed jobs is held by this worker any more; nothing was extended (`lost` says why for each)"
            ),
        );
        error.set_lost(answer.lost);
        return Err(error);
    }
    Ok(Json(answer))
}

/// `POST /v1/worker/finish`: ends attempts, each only if its lease is current.
#[utoipa::path(
    post,
    path = "/v1/worker/finish",
    operation_id = "worker_finish",
    tag = "worker",
    request_body = WorkFinish,
    responses(
        (status = 200, description = "At least one finish was applied; `results` says, in order, which", body = FinishAnswer),
        (status = 409, description = "No finish was applied (the leases are no longer held): nothing changed; `results` says why for each", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is wrong (unknown outcome, an outcome without its `error` or `delay`, a lease listed twice…)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn finish(
    State(app): State<Shared>,
    JsonBody(req): JsonBody<WorkFinish>,
) -> Result<Json<FinishAnswer>, ApiError> {
    let results = app.remote.finish(req).await?;
    if results.iter().all(|r| !r.applied) {
        let mut error = ApiError::new(
            StatusCode::CONFLICT,
            "no finish was applied: the leases are no longer held by this worker; nothing changed (`results` says why for each)",
        );
        error.set_results(results);
        return Err(error);
    }
    Ok(Json(FinishAnswer { results }))
}

/// `POST /v1/nodes/{name}/drain`: asks a node (a remote worker) to stop.
#[utoipa::path(
    post,
    path = "/v1/nodes/{name}/drain",
    operation_id = "drain_node",
    tag = "status",
    params(("name" = String, Path, description = "The node's name (a remote worker's id)")),
    responses(
        (status = 204, description = "Asked: its next claim or heartbeat answers `stop: true`"),
        (status = 404, description = "No live node has this name", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn drain(
    State(app): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.drain_node(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no live node is called {name:?}; `errand nodes` lists them"),
        ))
    }
}
