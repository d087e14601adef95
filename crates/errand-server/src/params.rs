//! Path and query parameters: each bad one is answered 400 naming it.

use crate::problem::ApiError;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use errand_core::store::ListFilter;
use errand_core::{JobId, JobState};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// Page size when the caller gives none.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub(crate) const MAX_LIMIT: u32 = 1000;

/// The `{id}` of a job route.
pub(crate) struct IdParam(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for IdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::param("id", e.body_text()))?;
        job_id(&raw)
            .map(IdParam)
            .map_err(|e| ApiError::param("id", e))
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
#[derive(Deserialize)]
pub(crate) struct GetParams {
    wait: Option<String>,
}

impl GetParams {
    /// How long to hold the request for the job to end, capped at `max`.
    pub(crate) fn wait(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        parse("wait", &self.wait, errand_core::duration::parse).map(|wait| wait.map(|w| w.min(max)))
    }
}

/// `GET /v1/jobs` parameters.
#[derive(Deserialize)]
pub(crate) struct ListParams {
    state: Option<String>,
    kind: Option<String>,
    queue: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl ListParams {
    /// The store filter these parameters ask for.
    pub(crate) fn filter(self) -> Result<ListFilter, ApiError> {
        let limit = parse("limit", &self.limit, |s| match s.parse::<u32>() {
            Ok(n @ 1..=MAX_LIMIT) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?;
        Ok(ListFilter {
            state: parse("state", &self.state, JobState::from_str)?,
            kind: self.kind.filter(|s| !s.is_empty()),
            queue: self.queue.filter(|s| !s.is_empty()),
            before: parse("cursor", &self.cursor, job_id)?,
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        })
    }
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

/// Job ids are positive integers.
fn job_id(s: &str) -> Result<JobId, String> {
    match s.parse::<JobId>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(format!("{s:?} is not a job id (a positive integer)")),
    }
}
