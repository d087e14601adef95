//! The `/v1/events` handlers: publish an event (one job per configured
//! listener, in one transaction), show one with its listeners' jobs, list them.

use crate::body::JsonBody;
use crate::params::{EventListParams, IdParam, Params, next_cursor};
use crate::problem::ApiError;
use crate::{App, Shared};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use errand_core::api::{EventPage, EventView, PublishResponse};
use errand_core::event::Published;
use errand_core::{EnqueueRequest, Job, JobId, NewEvent, NewJob, Store, ValidationError};

impl App {
    /// One job per listener of event `name`; an unconfigured name is
    /// refused unless the server records unknown events (with no listeners).
    fn listener_jobs(&self, name: &str) -> Result<Vec<NewJob>, ApiError> {
        let Some(kinds) = self.config.events.get(name) else {
            if self.config.record_unknown_events {
                return Ok(Vec::new());
            }
            let configured = if self.known_events.is_empty() {
                "no events are configured".to_string()
            } else {
                format!("configured: {}", self.known_events.join(", "))
            };
            let e = ValidationError::new("name", format!("unknown event {name:?} ({configured})"));
            return Err(ApiError::from(e).with_known_events(&self.known_events));
        };
        let now = self.store.clock().now();
        kinds
            .iter()
            .map(|kind| {
                let misconfigured = |why: String| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("event {name:?}: listener {kind:?} {why}"),
                    )
                };
                let policy = self
                    .config
                    .kinds
                    .get(kind)
                    .ok_or_else(|| misconfigured("is not a configured kind".to_string()))?;
                let req = EnqueueRequest {
                    kind: kind.clone(),
                    ..Default::default()
                };
                req.resolve(policy, now)
                    .map_err(|e| misconfigured(e.to_string()))
            })
            .collect()
    }
}

/// `POST /v1/events`: 201 with the event and its listener jobs, or 200
/// with the earlier event of the same name and unique key.
pub(crate) async fn publish(
    State(app): State<Shared>,
    JsonBody(event): JsonBody<NewEvent>,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    event.validate()?;
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
