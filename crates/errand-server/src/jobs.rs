//! The `/v1/jobs` handlers: enqueue one or many, get (and wait), list,
//! cancel and retry; and the checks of submitted jobs that batches share.

use crate::auth::{ActingAs, Grant};
use crate::body::JsonBody;
use crate::params::{GetParams, IdParam, ListParams, Params, next_cursor};
use crate::problem::ApiError;
use crate::{App, Shared, wait};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use errand_core::api::MAX_BATCH;
use errand_core::api::{BatchRequest, BatchResponse, JobPage, Problem};
use errand_core::store::ListFilter;
use errand_core::{EnqueueRequest, Enqueued, Job, JobId, NewJob, ValidationError};

impl App {
    /// Checks a submitted job against its kind's policy; `within` places
    /// errors inside the body (`jobs[3]` gives `jobs[3].kind`).
    pub(crate) fn resolve(
        &self,
        req: EnqueueRequest,
        within: Option<&str>,
    ) -> Result<NewJob, ApiError> {
        let place = |e: ValidationError| match within {
            Some(prefix) => e.within(prefix),
            None => e,
        };
        let now = self.store.clock().now();
        let unknown_kind = !self.config.catalog.kinds().contains_key(&req.kind);
        self.config.catalog.resolve(req, now).map_err(|e| {
            let error = ApiError::from(place(e));
            if unknown_kind {
                error.with_known_kinds(&self.known_kinds)
            } else {
                error
            }
        })
    }

    /// Checks the number of jobs sent together (1 to [`MAX_BATCH`]) and
    /// resolves each, naming errors `jobs[i].field`.
    pub(crate) fn resolve_jobs(&self, reqs: Vec<EnqueueRequest>) -> Result<Vec<NewJob>, ApiError> {
        if reqs.is_empty() {
            return Err(ValidationError::new("jobs", "must list at least one job").into());
        }
        if reqs.len() > MAX_BATCH {
            return Err(ValidationError::new(
                "jobs",
                format!("at most {MAX_BATCH} jobs per batch (got {})", reqs.len()),
            )
            .into());
        }
        reqs.into_iter()
            .enumerate()
            .map(|(i, req)| self.resolve(req, Some(&format!("jobs[{i}]"))))
            .collect()
    }
}

/// `POST /v1/jobs`: 201 with the new job, or 200 with the live duplicate.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "enqueue_job",
    tag = "jobs",
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Enqueued", body = Enqueued, links(
            ("get" = (operation_id = "get_job", parameters(("id" = "$response.body#/id")))),
            ("cancel" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/id")))),
            ("retry" = (operation_id = "retry_job", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 200, description = "A live job of the kind has this `unique_key` (or one was created within `unique_for`): that job, with `duplicate: true`", body = Enqueued),
        (status = 422, description = "A field is wrong, or the kind is unknown (`known_kinds` lists the configured ones)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn enqueue(
    State(app): State<Shared>,
    grant: Grant,
    JsonBody(req): JsonBody<EnqueueRequest>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    grant.may_enqueue("kind", &req.kind)?;
    let job = app.resolve(req, None)?;
    let enqueued = app.store.enqueue(vec![job]).await?.pop().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store answered no job for an enqueue",
        )
    })?;
    let status = if enqueued.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(enqueued)))
}

/// `POST /v1/jobs/batch`: all jobs or none, answered in input order.
#[utoipa::path(
    post,
    path = "/v1/jobs/batch",
    operation_id = "enqueue_jobs",
    tag = "jobs",
    request_body = BatchRequest,
    responses(
        (status = 201, description = "All enqueued (or their live duplicates), in input order", body = BatchResponse),
        (status = 422, description = "A job is wrong (`field` is `jobs[i].…`), or there are none or too many: nothing was enqueued", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn enqueue_batch(
    State(app): State<Shared>,
    grant: Grant,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    grant.may_enqueue_jobs(&batch.jobs)?;
    let jobs = app.resolve_jobs(batch.jobs)?;
    let jobs = app.store.enqueue(jobs).await?;
    Ok((StatusCode::CREATED, Json(BatchResponse { jobs })))
}

/// `GET /v1/jobs/{id}[?wait=10s]`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(IdParam, GetParams),
    responses((status = 200, description = "The job with every attempt's error (when waiting: once it has ended, or as it is when the wait runs out)", body = Job)),
)]
pub(crate) async fn get(
    State(app): State<Shared>,
    IdParam(id): IdParam,
    Params(params): Params<GetParams>,
) -> Result<Json<Job>, ApiError> {
    let job = match params.wait(app.config.max_wait)? {
        Some(wait) => {
            wait::until_terminal(&*app.store, id, wait, app.config.shutdown.clone()).await?
        }
        None => wait::fetch(&*app.store, id).await?,
    };
    Ok(Json(job))
}

/// `GET /v1/jobs?state=&kind=&queue=&tag=&created_after=&created_before=&text=&limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListParams),
    responses((status = 200, description = "A page of jobs, newest first; values over 8 KiB are left out (see `omitted`)", body = JobPage)),
)]
pub(crate) async fn list(
    State(app): State<Shared>,
    Params(params): Params<ListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let filter = params.filter()?;
    let (jobs, next_cursor) = app.list_page(&filter).await?;
    Ok(Json(JobPage { jobs, next_cursor }))
}

impl App {
    /// A page of jobs and the cursor of the next: the last id of a full
    /// page, or, when a scanned filter stopped at its window, the window's
    /// floor (more may match below it).
    pub(crate) async fn list_page(
        &self,
        filter: &ListFilter,
    ) -> Result<(Vec<Job>, Option<JobId>), ApiError> {
        if !filter.is_scanned() {
            let jobs = self.store.list(filter).await?;
            let next = next_cursor(&jobs, filter.limit, |job| job.id);
            return Ok((jobs, next));
        }
        // A short page of a scanned filter continues below its window.
        // Both read the same window (up to SCAN_LIMIT rows), so they run
        // side by side on two connections rather than one after the other.
        let (jobs, floor) =
            tokio::try_join!(self.store.list(filter), self.store.scan_floor(filter))?;
        let next = next_cursor(&jobs, filter.limit, |job| job.id).or(floor);
        Ok((jobs, next))
    }
}

/// `POST /v1/jobs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(IdParam),
    responses(
        (status = 200, description = "The job as it is now", body = Job),
        (status = 409, description = "The job has already ended", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn cancel(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    IdParam(id): IdParam,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(app.store.cancel(id, &actor).await?))
}

/// `POST /v1/jobs/{id}/retry`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    operation_id = "retry_job",
    tag = "jobs",
    params(IdParam),
    responses(
        (status = 200, description = "The job as it is now", body = Job),
        (status = 409, description = "The job is neither failed nor cancelled", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn retry(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    IdParam(id): IdParam,
) -> Result<Json<Job>, ApiError> {
    Ok(Json(app.store.retry(id, &actor).await?))
}
