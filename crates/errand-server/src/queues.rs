//! Queue administration: listing queues, pausing and resuming them.

use crate::Shared;
use crate::auth::ActingAs;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use errand_core::QueueInfo;
use errand_core::api::{Problem, QueueList};
use errand_core::audit::AuditActor;
use errand_core::job::check_name;

/// `GET /v1/queues`: every queue with jobs or a pause record.
#[utoipa::path(
    get,
    path = "/v1/queues",
    operation_id = "list_queues",
    tag = "queues",
    responses((status = 200, description = "Every queue with jobs or a pause record, by name", body = QueueList)),
)]
pub(crate) async fn list(State(app): State<Shared>) -> Result<Json<QueueList>, ApiError> {
    let queues = app.store.queues().await?;
    Ok(Json(QueueList { queues }))
}

/// `POST /v1/queues/{name}/pause`: its jobs stay queued until resumed.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/pause",
    operation_id = "pause_queue",
    tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses(
        (status = 200, description = "The queue as it is now", body = QueueInfo),
        (status = 422, description = "The name is not a queue name (letters, digits and `_ - . :`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn pause(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    Path(name): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    set_paused(&app, name, true, &actor).await
}

/// `POST /v1/queues/{name}/resume`: its jobs run again.
#[utoipa::path(
    post,
    path = "/v1/queues/{name}/resume",
    operation_id = "resume_queue",
    tag = "queues",
    params(("name" = String, Path, description = "The queue")),
    responses(
        (status = 200, description = "The queue as it is now", body = QueueInfo),
        (status = 422, description = "The name is not a queue name (letters, digits and `_ - . :`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn resume(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    Path(name): Path<String>,
) -> Result<Json<QueueInfo>, ApiError> {
    set_paused(&app, name, false, &actor).await
}

/// Records the pause (audited as `actor`) and answers the queue as it stands now.
async fn set_paused(
    app: &Shared,
    name: String,
    paused: bool,
    actor: &AuditActor,
) -> Result<Json<QueueInfo>, ApiError> {
    check_name("name", &name)?;
    app.store.set_queue_paused(&name, paused, actor).await?;
    let info = app
        .store
        .queues()
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .unwrap_or(QueueInfo {
            name,
            paused,
            counts: Default::default(),
        });
    Ok(Json(info))
}
