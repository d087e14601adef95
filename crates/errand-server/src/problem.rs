//! API errors: every failure becomes an `application/problem+json` answer
//! with the right status and, when one field is at fault, its name.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_core::api::Problem;
use errand_core::{StoreError, ValidationError};
use std::fmt::Display;

/// The media type of error bodies (RFC 9457).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer. Boxed so handlers' `Result`s stay small on the happy path.
#[derive(Debug)]
pub(crate) struct ApiError(Box<Problem>);

impl ApiError {
    /// An error of `status`, not tied to a field.
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        let title = status.canonical_reason().unwrap_or("Error");
        ApiError(Box::new(Problem::new(status.as_u16(), title, detail)))
    }

    /// An error about one field (of the body, the path or the query).
    pub(crate) fn field(
        status: StatusCode,
        field: impl Into<String>,
        message: impl Display,
    ) -> Self {
        let field = field.into();
        let detail = format!("{field}: {message}");
        ApiError(Box::new(
            Problem::new(
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error"),
                detail,
            )
            .with_field(field),
        ))
    }

    /// The answer's status.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// What went wrong, for a human (the dashboard shows it).
    pub(crate) fn detail(&self) -> &str {
        &self.0.detail
    }

    /// A bad query or path parameter.
    pub(crate) fn param(name: &str, message: impl Display) -> Self {
        Self::field(StatusCode::BAD_REQUEST, name, message)
    }

    /// Lists the configured kinds, for an unknown kind.
    pub(crate) fn with_known_kinds(mut self, kinds: &[String]) -> Self {
        self.0.known_kinds = kinds.to_vec();
        self
    }

    /// Names the scope a refused (403) request needed.
    pub(crate) fn with_scope(mut self, scope: &str) -> Self {
        self.0.required_scope = Some(scope.to_string());
        self
    }

    /// Lists the leases a refused heartbeat no longer holds.
    pub(crate) fn set_lost(&mut self, lost: Vec<errand_core::remote::LostJob>) {
        self.0.lost = lost;
    }

    /// Lists what became of each finish of a refused finish.
    pub(crate) fn set_results(&mut self, results: Vec<errand_core::remote::FinishResult>) {
        self.0.results = results;
    }

    /// Lists the configured events, for an unknown event name.
    pub(crate) fn with_known_events(mut self, events: &[String]) -> Self {
        self.0.known_events = events.to_vec();
        self
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Conflict { .. } | StoreError::Exists(_) => StatusCode::CONFLICT,
            StoreError::Locked(_) | StoreError::Unavailable(_) => {
                // The message already says what failed ("store unavailable: …").
                tracing::warn!("{e}");
                StatusCode::SERVICE_UNAVAILABLE
            }
            StoreError::Internal(_) | StoreError::Config(_) => {
                // The text may name tables, values or paths: it goes to the
                // log, the client gets an id to find it there.
                let id = format!("{:016x}", fastrand::u64(..));
                tracing::error!(error_id = %id, "{e}");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error; the server log has the details under error_id {id}"),
                );
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // A Problem is strings and numbers: serializing it cannot fail.
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_is_logged_not_sent() {
        let error = ApiError::from(StoreError::Internal(
            "cannot read column payload of table jobs".into(),
        ));
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = &error.0.detail;
        assert!(!detail.contains("payload"), "{detail}");
        assert!(detail.contains("error_id"), "{detail}");
    }
}
