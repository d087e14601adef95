//! The `/v1/batches` handlers: create a batch (all its jobs atomically,
//! plus an optional on-complete job), and read it back, optionally holding
//! the request until its last job has ended and answering every result.

use crate::auth::Grant;
use crate::body::JsonBody;
use crate::params::{BatchParams, IdParam, Params};
use crate::problem::ApiError;
use crate::wait::{self, Watch};
use crate::{App, Shared};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use errand_core::api::{BatchResults, BatchView, JobResult, NewBatchRequest, Problem};
use errand_core::{Batch, BatchId, EnqueueRequest, NewBatch, NewJob, Store, ValidationError};
use std::time::Duration;

/// Least time between two reads of a waited-on batch: its jobs may finish
/// thousands a second, each with its own event.
const BATCH_REREAD_GAP: Duration = Duration::from_millis(5);

impl App {
    /// The on-complete job: its kind's policy applies, but it runs when the
    /// batch ends and is never deduplicated, so timing and uniqueness
    /// fields are refused rather than ignored.
    fn resolve_on_complete(&self, req: EnqueueRequest) -> Result<NewJob, ApiError> {
        let refused = [
            ("run_at", req.run_at.is_some()),
            ("delay", req.delay.is_some()),
            ("unique_key", req.unique_key.is_some()),
            ("unique_for", req.unique_for.is_some()),
        ];
        if let Some((field, _)) = refused.iter().find(|(_, given)| *given) {
            let e = ValidationError::new(
                format!("on_complete.{field}"),
                "not allowed: the on-complete job runs once, when the batch ends",
            );
            return Err(e.into());
        }
        self.resolve(req, Some("on_complete"))
    }
}

/// `POST /v1/batches`: 201 with the new batch.
#[utoipa::path(
    post,
    path = "/v1/batches",
    operation_id = "create_batch",
    tag = "batches",
    request_body = NewBatchRequest,
    responses(
        (status = 201, description = "The batch, all its jobs enqueued", body = BatchView, links(
            ("get" = (operation_id = "get_batch", parameters(("id" = "$response.body#/batch/id")))),
        )),
        (status = 422, description = "A job or the on-complete job is wrong (`field` names it): nothing was enqueued", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create(
    State(app): State<Shared>,
    grant: Grant,
    JsonBody(req): JsonBody<NewBatchRequest>,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    grant.may_enqueue_jobs(&req.jobs)?;
    if let Some(job) = &req.on_complete {
        grant.may_enqueue("on_complete.kind", &job.kind)?;
    }
    // Batch jobs are each run exactly as submitted: a duplicate would leave
    // the batch waiting on a job it does not own.
    if let Some(i) = req.jobs.iter().position(|j| j.unique_key.is_some()) {
        let e = ValidationError::new(
            format!("jobs[{i}].unique_key"),
            "not allowed in a batch: every batch job is enqueued as given",
        );
        return Err(e.into());
    }
    let jobs = app.resolve_jobs(req.jobs)?;
    let on_complete = req
        .on_complete
        .map(|r| app.resolve_on_complete(r))
        .transpose()?;
    let batch = app
        .store
        .create_batch(NewBatch { jobs, on_complete })
        .await?;
    Ok((StatusCode::CREATED, Json(BatchView { batch })))
}

/// `GET /v1/batches/{id}[?wait=30s][&results=true]`: the batch; with a
/// wait (held until it finishes) or `results=true`, every job's outcome too.
#[utoipa::path(
    get,
    path = "/v1/batches/{id}",
    operation_id = "get_batch",
    tag = "batches",
    params(IdParam, BatchParams),
    responses((status = 200, description = "The batch with its counts by state; with `wait` or `results=true`, also `results`: each job's result or error, in submission order", body = BatchView)),
)]
pub(crate) async fn get(
    State(app): State<Shared>,
    IdParam(id): IdParam,
    Params(params): Params<BatchParams>,
) -> Result<Response, ApiError> {
    let wait = params.wait(app.config.max_wait)?;
    // Both are checked, whatever the other says: a bad one is refused.
    let results = params.results()?;
    let with_results = wait.is_some() || results;
    let store = &*app.store;
    let batch = match wait {
        Some(wait) => {
            let watch = Watch {
                wait,
                min_gap: BATCH_REREAD_GAP,
                // Which jobs are the batch's is not known without reading
                // them all; any finish may be its last.
                wakes: |_: &[_]| true,
                stop: app.config.shutdown.clone(),
            };
            wait::hold(store, watch, || fetch(store, id), Batch::is_finished).await?
        }
        None => fetch(store, id).await?,
    };
    if !with_results {
        return Ok(Json(BatchView { batch }).into_response());
    }
    let results = store
        .batch_jobs(id)
        .await?
        .into_iter()
        .map(JobResult::from)
        .collect();
    Ok(Json(BatchResults { batch, results }).into_response())
}

/// One batch, or 404.
async fn fetch(store: &dyn Store, id: BatchId) -> Result<Batch, ApiError> {
    store
        .batch(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("batch {id} not found")))
}
