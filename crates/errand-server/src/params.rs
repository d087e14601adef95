//! Path and query parameters: each bad one is answered 400 naming it.

use crate::problem::ApiError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use errand_core::JobState;
use errand_core::audit::{AuditAction, AuditFilter};
use errand_core::bulk::BulkState;
use errand_core::event::EventFilter;
use errand_core::store::ListFilter;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;
use utoipa::IntoParams;

/// Page size when the caller gives none.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// The `{id}` of a job, event or batch route.
#[derive(IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
pub(crate) struct IdParam(#[param(minimum = 1)] pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::param("id", e.body_text()))?;
        id(&raw).map(IdParam).map_err(|e| ApiError::param("id", e))
    }
}

/// The query string parsed into `T`, whose fields are all optional text.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Params(q))
            .map_err(|e| ApiError::new(e.status(), e.body_text()))
    }
}

/// `GET /v1/jobs/{id}` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetParams {
    /// Hold the request until the job has ended, at most this long (capped at `[server] max_wait`).
    #[param(schema_with = crate::openapi::wait)]
    wait: Option<String>,
}

impl GetParams {
    /// How long to hold the request for the job to end, capped at `max`.
    pub(crate) fn wait(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        wait(&self.wait, max)
    }
}

/// `GET /v1/batches/{id}` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BatchParams {
    /// Hold the request until every job has ended, at most this long
    /// (capped at `[server] max_wait`); the answer then has `results`.
    #[param(schema_with = crate::openapi::wait)]
    wait: Option<String>,
    /// Add every job's result or error without waiting.
    #[param(schema_with = crate::openapi::flag)]
    results: Option<String>,
}

impl BatchParams {
    /// How long to hold the request for the batch to finish, capped at `max`.
    pub(crate) fn wait(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        wait(&self.wait, max)
    }

    /// Whether to list the jobs' results without waiting.
    pub(crate) fn results(&self) -> Result<bool, ApiError> {
        let flag = parse("results", &self.results, |s| match s {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("must be true or false"),
        })?;
        Ok(flag.unwrap_or(false))
    }
}

/// A `wait` parameter, capped at `max`.
fn wait(value: &Option<String>, max: Duration) -> Result<Option<Duration>, ApiError> {
    let wait = parse("wait", value, errand_core::duration::parse)?;
    Ok(wait.map(|w| w.min(max)))
}

/// `GET /v1/jobs` parameters (the dashboard's jobs page reads the same).
#[derive(Deserialize, IntoParams, Clone, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only jobs in this state.
    #[param(schema_with = crate::openapi::state)]
    pub(crate) state: Option<String>,
    /// Only jobs of this kind.
    pub(crate) kind: Option<String>,
    /// Only jobs in this queue.
    pub(crate) queue: Option<String>,
    /// Page size (default 50).
    #[param(schema_with = crate::openapi::limit)]
    pub(crate) limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(schema_with = crate::openapi::cursor)]
    pub(crate) cursor: Option<String>,
    /// Only jobs with this tag (checked on the newest 10,000 jobs the other filters match).
    pub(crate) tag: Option<String>,
    /// Only jobs created at or after this time (RFC 3339; UTC when it has no offset; checked on the newest 10,000 jobs the other filters match).
    #[param(schema_with = crate::openapi::time)]
    pub(crate) created_after: Option<String>,
    /// Only jobs created before this time (as `created_after`).
    #[param(schema_with = crate::openapi::time)]
    pub(crate) created_before: Option<String>,
    /// Only jobs whose payload or errors contain this text, ignoring ASCII case (checked on the newest 10,000 jobs the other filters match; `next_cursor` then goes on below them even when the page has fewer jobs).
    pub(crate) text: Option<String>,
}

pub(crate) use errand_core::store::MAX_SEARCH;

impl ListParams {
    /// The store filter these parameters ask for.
    pub(crate) fn filter(self) -> Result<ListFilter, ApiError> {
        let (before, limit) = page(&self.cursor, &self.limit)?;
        let text = self.text.filter(|s| !s.is_empty());
        if let Some(text) = &text
            && text.chars().count() > MAX_SEARCH
        {
            return Err(ApiError::param(
                "text",
                format!("at most {MAX_SEARCH} characters"),
            ));
        }
        Ok(ListFilter {
            state: parse("state", &self.state, JobState::from_str)?,
            kind: self.kind.filter(|s| !s.is_empty()),
            queue: self.queue.filter(|s| !s.is_empty()),
            before,
            limit,
            tag: self.tag.filter(|s| !s.is_empty()),
            created_after: parse("created_after", &self.created_after, time)?,
            created_before: parse("created_before", &self.created_before, time)?,
            text,
        })
    }
}

/// An RFC 3339 time, or a date and time without offset (as a browser's
/// `datetime-local` input sends it), read as UTC.
fn time(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{s:?} is not a time: use RFC 3339, such as 2030-01-01T09:00:00Z"))
}

/// `GET /v1/events` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventListParams {
    /// Only events with this name.
    name: Option<String>,
    /// Page size (default 50).
    #[param(schema_with = crate::openapi::limit)]
    limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(schema_with = crate::openapi::cursor)]
    cursor: Option<String>,
}

impl EventListParams {
    /// The store filter these parameters ask for.
    pub(crate) fn filter(self) -> Result<EventFilter, ApiError> {
        let (before, limit) = page(&self.cursor, &self.limit)?;
        Ok(EventFilter {
            name: self.name.filter(|s| !s.is_empty()),
            before,
            limit,
        })
    }
}

/// `GET /v1/audit` parameters (and the dashboard's audit page's).
#[derive(Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only entries of this actor: a token's name, or `local CLI`.
    pub(crate) actor: Option<String>,
    /// Only entries of this action.
    #[param(schema_with = crate::openapi::audit_action)]
    pub(crate) action: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(schema_with = crate::openapi::since)]
    pub(crate) since: Option<String>,
    /// Page size (default 50).
    #[param(schema_with = crate::openapi::limit)]
    pub(crate) limit: Option<String>,
    /// The previous page's `next_cursor`.
    #[param(schema_with = crate::openapi::cursor)]
    pub(crate) cursor: Option<String>,
}

impl AuditParams {
    /// The store filter these parameters ask for.
    pub(crate) fn filter(self) -> Result<AuditFilter, ApiError> {
        let (before, limit) = page(&self.cursor, &self.limit)?;
        Ok(AuditFilter {
            actor: self.actor.filter(|s| !s.is_empty()),
            action: parse("action", &self.action, |s| {
                AuditAction::from_str(s).map_err(|e| e.message)
            })?,
            since: parse("since", &self.since, |s| {
                s.parse::<jiff::Timestamp>()
                    .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
            })?,
            before,
            limit,
        })
    }
}

/// `GET /v1/jobs/bulk` parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BulkListParams {
    /// Only operations in this state.
    #[param(schema_with = crate::openapi::bulk_state)]
    state: Option<String>,
    /// How many, newest first (default 50).
    #[param(schema_with = crate::openapi::limit)]
    limit: Option<String>,
}

impl BulkListParams {
    /// The state asked for, if any, and how many operations.
    pub(crate) fn filter(self) -> Result<(Option<BulkState>, u32), ApiError> {
        let (_, limit) = page(&None, &self.limit)?;
        Ok((parse("state", &self.state, BulkState::from_str)?, limit))
    }
}

/// The `cursor` (an id to list below) and page size of a listing.
fn page(cursor: &Option<String>, limit: &Option<String>) -> Result<(Option<i64>, u32), ApiError> {
    let limit = parse("limit", limit, |s| match s.parse::<u32>() {
        Ok(n @ 1..=MAX_LIMIT) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
    })?;
    Ok((parse("cursor", cursor, id)?, limit.unwrap_or(DEFAULT_LIMIT)))
}

/// The cursor of the page after `items`: the last id when the page is full.
pub(crate) fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<i64> {
    items
        .last()
        .filter(|_| items.len() >= limit as usize)
        .map(id)
}

/// Parses an optional parameter; an empty value counts as absent.
fn parse<T, E: Display>(
    name: &str,
    value: &Option<String>,
    read: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => read(s).map(Some).map_err(|e| ApiError::param(name, e)),
    }
}

/// Job, event and batch ids are positive integers.
fn id(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!("{s:?} is not an id (a positive integer)")),
    }
}
