//! The JSON body extractor: checks the content type, enforces the body
//! limit, and parses with the path of the offending field kept, so a wrong
//! type or unknown field is answered 422 naming that field (axum's `Json`
//! loses the path).

use crate::Shared;
use crate::problem::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

/// A request body parsed as JSON into `T`.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Shared> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with content-type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, app).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    e.status(),
                    format!(
                        "request body is larger than the limit of {} bytes",
                        app.config.body_limit
                    ),
                )
            } else {
                ApiError::new(e.status(), e.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// `application/json` or any `application/*+json`, with optional parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Parses a whole body: syntax errors are 400, data errors 422 with the field.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde also reads a struct from an array of its fields in order; the
    // API only speaks objects, and a field path into an array would mislead.
    let is_object = bytes.trim_ascii_start().first() == Some(&b'{');
    let not_object = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = field_of(&e);
        match data_or_syntax(e.into_inner(), field) {
            e if !is_object && e.status() == StatusCode::UNPROCESSABLE_ENTITY => not_object(),
            e => e,
        }
    })?;
    de.end().map_err(|e| data_or_syntax(e, None))?;
    if !is_object {
        return Err(not_object());
    }
    Ok(value)
}

fn data_or_syntax(e: serde_json::Error, field: Option<String>) -> ApiError {
    match e.classify() {
        Category::Data => {
            let message = without_position(&e);
            match field {
                Some(field) => ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, message),
                None => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}"))
        }
    }
}

/// The dotted path of the field at fault. A missing field is reported by
/// serde at the enclosing object, so its name is taken from the message.
fn field_of(e: &serde_path_to_error::Error<serde_json::Error>) -> Option<String> {
    let path = e.path().to_string();
    let parent = (path != ".").then_some(path);
    let message = e.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (parent, missing) {
        (Some(parent), Some(name)) => Some(format!("{parent}.{name}")),
        (None, Some(name)) => Some(name.to_string()),
        (parent, None) => parent,
    }
}

/// serde_json's message without " at line L column C": the field names the
/// place better for a data error.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match message.strip_suffix(&suffix) {
        Some(bare) => bare.to_string(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_media_types() {
        let accepts = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_json(&h)
        };
        assert!(accepts("application/json"));
        assert!(accepts("Application/JSON; charset=utf-8"));
        assert!(accepts("application/merge-patch+json"));
        assert!(!accepts("text/plain"));
        assert!(!accepts("application/+json"));
        assert!(!accepts("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
