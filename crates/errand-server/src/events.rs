//! The `/v1/events` handlers: publish an event (one job per listener the
//! catalogue names, in one transaction), show one with its listeners' jobs,
//! list them.

use crate::auth::Grant;
use crate::body::JsonBody;
use crate::params::{EventListParams, IdParam, Params, next_cursor};
use crate::problem::ApiError;
use crate::{App, Shared};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use errand_core::api::{EventPage, EventView, Problem, PublishResponse};
use errand_core::event::Published;
use errand_core::{Job, JobId, NewEvent, NewJob, Store};

impl App {
    /// One job per listener of event `name`, as the catalogue decides; an
    /// unknown name is refused listing the configured events.
    fn listener_jobs(&self, name: &str) -> Result<Vec<NewJob>, ApiError> {
        self.config
            .catalog
            .listener_jobs(name, self.store.clock().now())
            .map_err(|e| ApiError::from(e).with_known_events(&self.known_events))
    }
}

/// `POST /v1/events`: 201 with the event and its listener jobs, or 200
/// with the earlier event of the same name and unique key.
#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "publish_event",
    tag = "events",
    request_body = NewEvent,
    responses(
        (status = 201, description = "Published: the event and one job per listener", body = PublishResponse, links(
            ("get" = (operation_id = "get_event", parameters(("id" = "$response.body#/event/id")))),
        )),
        (status = 200, description = "An event of this name and `unique_key` exists: that one, with `duplicate: true`", body = PublishResponse),
        (status = 422, description = "A field is wrong, or no listener is configured for the name (`known_events` lists the configured ones)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn publish(
    State(app): State<Shared>,
    grant: Grant,
    JsonBody(event): JsonBody<NewEvent>,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    event.validate()?;
    grant.may_enqueue("name", &event.name)?;
    let listeners = app.listener_jobs(&event.name)?;
    let Published { event, duplicate } = app.store.publish(event, listeners).await?;
    let jobs = stored_jobs(&*app.store, &event.jobs).await?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PublishResponse {
            event,
            jobs,
            duplicate,
        }),
    ))
}

/// `GET /v1/events/{id}`: the event and its listener jobs as they stand.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    operation_id = "get_event",
    tag = "events",
    params(IdParam),
    responses((status = 200, description = "The event and its listeners' jobs still stored", body = EventView)),
)]
pub(crate) async fn get(
    State(app): State<Shared>,
    IdParam(id): IdParam,
) -> Result<Json<EventView>, ApiError> {
    let event = app
        .store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("event {id} not found")))?;
    let jobs = stored_jobs(&*app.store, &event.jobs).await?;
    Ok(Json(EventView { event, jobs }))
}

/// `GET /v1/events?name=&limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "list_events",
    tag = "events",
    params(EventListParams),
    responses((status = 200, description = "A page of events, newest first", body = EventPage)),
)]
pub(crate) async fn list(
    State(app): State<Shared>,
    Params(params): Params<EventListParams>,
) -> Result<Json<EventPage>, ApiError> {
    let filter = params.filter()?;
    let events = app.store.events(&filter).await?;
    let next_cursor = next_cursor(&events, filter.limit, |event| event.id);
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}

/// The jobs of `ids` that are still stored (pruning may have removed some), in order.
async fn stored_jobs(store: &dyn Store, ids: &[JobId]) -> Result<Vec<Job>, ApiError> {
    let mut jobs = Vec::with_capacity(ids.len());
    for &id in ids {
        jobs.extend(store.get(id).await?);
    }
    Ok(jobs)
}
