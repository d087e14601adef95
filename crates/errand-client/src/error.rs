//! What can go wrong calling errand, worded for a one-line CLI message.

use errand_core::api::Problem;
use reqwest::{StatusCode, Url};

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered an error status; `problem` says why.
    #[error("{problem}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's problem details (boxed to keep `Result`s small).
        problem: Box<Problem>,
    },
    /// The server could not be reached or the connection broke; the message
    /// names the server and the cause.
    #[error("{0}")]
    Transport(String),
    /// The server answered something that is not what the API promises.
    #[error("unexpected answer from errand: {0}")]
    Decode(String),
    /// The base URL given to [`crate::Client::new`] is not usable.
    #[error("invalid errand URL {0}")]
    BadUrl(String),
    /// A CA certificate given to [`crate::ClientBuilder`] is not usable.
    #[error("invalid CA certificate {0}")]
    BadCa(String),
    /// The token given to [`crate::Client::with_token`] cannot be sent in
    /// a header (it is not printable ASCII); the message leaves it out.
    #[error("invalid token: it must be printable ASCII, as `errand tokens create` prints it")]
    BadToken,
}

impl ClientError {
    /// The problem details when the server answered an error status.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// A transport failure, described by its root cause (e.g. "connection
    /// refused", or why the server's certificate is not trusted).
    pub(crate) fn transport(base: &Url, e: &reqwest::Error) -> Self {
        let base = base.as_str().trim_end_matches('/');
        let cause = if e.is_timeout() {
            "timed out".to_string()
        } else if let Some(tls) = tls_failure(e) {
            match tls {
                rustls::Error::InvalidCertificate(why) => format!(
                    "the server's certificate is not trusted ({why}); if a private CA signed it, trust that CA's certificate (a CA file)"
                ),
                other => format!("TLS handshake failed: {other}"),
            }
        } else {
            root_cause(e)
        };
        ClientError::Transport(format!("cannot reach errand at {base}: {cause}"))
    }

    /// An error status: the body is a problem, or (from a proxy, say) text.
    pub(crate) fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let problem = serde_json::from_slice::<Problem>(body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let detail = match text.trim() {
                "" => "no details given".to_string(),
                text => text.chars().take(200).collect(),
            };
            Problem::new(
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error"),
                detail,
            )
        });
        ClientError::Api {
            status: status.as_u16(),
            problem: Box::new(problem),
        }
    }
}

/// The TLS error behind a failed request, if that is what failed. An
/// `io::Error` hides the error it wraps from `source()` (and TLS errors
/// come wrapped in two), so it is opened with `get_ref`.
fn tls_failure(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        cause = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The innermost error's message: reqwest's outer layers only say "error
/// sending request". An I/O error is named by its kind ("connection refused").
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && io.kind() != std::io::ErrorKind::Other
        {
            return io.kind().to_string();
        }
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_answers_read_as_one_line() {
        let body = br#"{"type":"about:blank","title":"Unprocessable Entity","status":422,
            "detail":"kind: unknown kind \"nope\" (configured: resize, send_email)","field":"kind",
            "known_kinds":["resize","send_email"]}"#;
        let e = ClientError::from_answer(StatusCode::UNPROCESSABLE_ENTITY, body);
        assert_eq!(
            e.to_string(),
            r#"422 Unprocessable Entity: kind: unknown kind "nope" (configured: resize, send_email)"#
        );
        assert_eq!(e.problem().unwrap().known_kinds, ["resize", "send_email"]);
    }

    #[test]
    fn non_problem_answers_keep_their_text() {
        let e = ClientError::from_answer(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(e.to_string(), "502 Bad Gateway: upstream down");
        let e = ClientError::from_answer(StatusCode::NOT_FOUND, b"");
        assert_eq!(e.to_string(), "404 Not Found: no details given");
    }
}
