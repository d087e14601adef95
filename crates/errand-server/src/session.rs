//! Dashboard sessions over HTTP (docs/decisions/0022-sessions-and-csrf.md):
//! `POST /v1/session` exchanges a token that may read for a session cookie,
//! `GET /v1/session` says who the caller is, `DELETE /v1/session` logs out.
//! Also the two rules that keep another web site from using a browser's
//! cookie (or, with auth off, its reach to a loopback server): a
//! state-changing request authenticated by the cookie carries the session's
//! CSRF token, and no state-changing request a browser marks as cross-site
//! is served at all.

use crate::Shared;
use crate::auth::Grant;
use crate::body::JsonBody;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use errand_core::api::Problem;
use errand_core::auth::TokenHash;
use errand_core::session::{self, NewSession, csrf_matches, csrf_token, may_log_in};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::ToSchema;

/// The session cookie's name.
pub const COOKIE: &str = "errand_session";
/// The header a cookie-authenticated state-changing request carries the
/// session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field an HTML form carries the CSRF token in instead.
pub const CSRF_FIELD: &str = "_csrf";

/// `POST /v1/session`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// An API token (`errand_…`) with the `read` or `admin` scope.
    token: String,
}

/// Whether the server asks for tokens.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuthState {
    /// Every route but the open ones needs a token or a session.
    Required,
    /// Nothing is asked (loopback): everyone is `local` with `admin`.
    Off,
}

/// Who the caller is: the token (or session) the request acts as.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionInfo {
    /// The token's name (`local` with auth off).
    name: String,
    /// The token's scopes (`["admin"]` with auth off).
    scopes: Vec<String>,
    /// Whether the server asks for tokens.
    auth: AuthState,
    /// When the session ends; absent for a bearer token and with auth off.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    /// What a state-changing request of this session sends in
    /// `X-CSRF-Token` (or a `_csrf` form field); absent for a bearer token.
    /// With auth off it is given but not checked (there is no session).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// A request the guard authenticated by the session cookie (an extension).
#[derive(Clone)]
pub(crate) struct CookieSession {
    /// The session's id.
    pub(crate) hash: TokenHash,
    /// Its CSRF token.
    pub(crate) csrf: String,
    /// When it ends.
    pub(crate) expires_at: Timestamp,
}

/// The identity of an auth-off server.
fn local(app: &Shared) -> SessionInfo {
    SessionInfo {
        name: "local".into(),
        scopes: vec!["admin".into()],
        auth: AuthState::Off,
        expires_at: None,
        csrf_token: Some(app.local_csrf.clone()),
    }
}

/// `POST /v1/session`: log in (with auth off: opens nothing, answers 200
/// with the local identity).
#[utoipa::path(
    post,
    path = "/v1/session",
    operation_id = "login",
    tag = "session",
    request_body = Login,
    responses(
        (status = 201, description = "A session: its cookie is in `Set-Cookie` (HttpOnly, SameSite=Strict, Secure under TLS)", body = SessionInfo,
            headers(("set-cookie" = String, description = "`errand_session=…; HttpOnly; SameSite=Strict; Path=/; Max-Age=…`"))),
        (status = 200, description = "Auth is off: no session is needed, none is opened", body = SessionInfo),
        (status = 401, description = "Unknown or revoked token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has neither `read` nor `admin`, or the request came from another site", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn login(
    State(app): State<Shared>,
    JsonBody(login): JsonBody<Login>,
) -> Result<Response, ApiError> {
    if !app.config.auth_required {
        return Ok(Json(local(&app)).into_response());
    }
    let unknown = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown or revoked token; `errand tokens list` shows the valid ones",
        )
    };
    let token_hash = TokenHash::of(login.token.trim());
    let token = app
        .store
        .token_by_hash(&token_hash)
        .await?
        .ok_or_else(unknown)?;
    if !may_log_in(&token.scopes) {
        let allowed: Vec<&str> = session::LOGIN_ACCESS.iter().map(|a| a.as_str()).collect();
        return Err(ApiError::field(
            StatusCode::FORBIDDEN,
            "token",
            format!(
                "token {:?} may not log in: a session needs the {} scope (it has: {})",
                token.name,
                allowed.join(" or "),
                token.scopes
            ),
        )
        .with_scope(allowed[0]));
    }
    let secret = session::new_secret().map_err(|e| {
        tracing::error!(error = %e, "no randomness for a session secret");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot make a session secret now; try again",
        )
    })?;
    let new = NewSession {
        hash: secret.hash(),
        token_hash,
        ttl: app.config.session_ttl,
    };
    // The token may have been revoked since it was read.
    let stored = app.store.create_session(new).await?.ok_or_else(unknown)?;
    tracing::debug!(token = %stored.token_name, "session opened");
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        secret.expose(),
        app.config.session_ttl.as_secs(),
        secure(&app)
    );
    let info = SessionInfo {
        name: stored.token_name,
        scopes: stored.scopes.iter().map(ToString::to_string).collect(),
        auth: AuthState::Required,
        expires_at: Some(stored.expires_at),
        csrf_token: Some(csrf_token(secret.expose())),
    };
    Ok((StatusCode::CREATED, set_cookie(cookie), Json(info)).into_response())
}

/// `GET /v1/session`: who the caller is.
#[utoipa::path(
    get,
    path = "/v1/session",
    operation_id = "whoami",
    tag = "session",
    responses((status = 200, description = "The token or session the request acts as", body = SessionInfo)),
)]
pub(crate) async fn whoami(
    State(app): State<Shared>,
    grant: Grant,
    cookie: Csrf,
) -> Json<SessionInfo> {
    let Some((name, scopes)) = grant.identity() else {
        return Json(local(&app));
    };
    Json(SessionInfo {
        name: name.to_string(),
        scopes: scopes.iter().map(ToString::to_string).collect(),
        auth: AuthState::Required,
        expires_at: cookie.0.as_ref().map(|s| s.expires_at),
        csrf_token: cookie.0.map(|s| s.csrf),
    })
}

/// `DELETE /v1/session`: log out, ending the session on every node, and
/// clear the cookie (with a bearer token or auth off: only the latter).
#[utoipa::path(
    delete,
    path = "/v1/session",
    operation_id = "logout",
    tag = "session",
    responses((status = 204, description = "Logged out; the cookie is cleared",
        headers(("set-cookie" = String, description = "`errand_session=; …; Max-Age=0`")))),
)]
pub(crate) async fn logout(State(app): State<Shared>, cookie: Csrf) -> Result<Response, ApiError> {
    if let Some(session) = cookie.0 {
        app.store.delete_session(&session.hash).await?;
    }
    let cookie = format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(&app)
    );
    Ok((StatusCode::NO_CONTENT, set_cookie(cookie)).into_response())
}

fn secure(app: &Shared) -> &'static str {
    if app.config.tls { "; Secure" } else { "" }
}

fn set_cookie(cookie: String) -> [(header::HeaderName, HeaderValue); 2] {
    // A secret is hex and the attributes are fixed: always a valid value.
    let value = HeaderValue::try_from(cookie).unwrap_or(HeaderValue::from_static(""));
    [
        (header::SET_COOKIE, value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// The session secret in the request's `errand_session` cookie.
pub(crate) fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// GET, HEAD and OPTIONS change nothing (a test keeps it so): they need
/// neither a CSRF token nor a same-origin request.
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF check of a cookie-authenticated request, for a handler that
/// reads the token itself (an HTML form's `_csrf` field): the guard puts
/// the session here. [`Csrf::check`] passes a request that came with a
/// bearer token or to an auth-off server: a browser never sends those by
/// itself.
pub(crate) struct Csrf(pub(crate) Option<CookieSession>);

impl Csrf {
    /// Refuses (403) a cookie-authenticated request whose `presented`
    /// token is missing or not its session's.
    #[allow(dead_code)] // For the dashboard's form handlers.
    pub(crate) fn check(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match &self.0 {
            Some(session) => check_csrf(&session.csrf, presented),
            None => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Csrf(parts.extensions.get::<CookieSession>().cloned()))
    }
}

/// Compares a presented CSRF token with the session's, in constant time.
pub(crate) fn check_csrf(expected: &str, presented: Option<&str>) -> Result<(), ApiError> {
    match presented {
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "missing CSRF token: a state-changing request made with the session cookie must \
             send the session's csrf_token (from POST or GET /v1/session) in the X-CSRF-Token \
             header or a `_csrf` form field",
        )),
        Some(presented) if csrf_matches(expected, presented.trim()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong CSRF token: send this session's csrf_token (GET /v1/session shows it)",
        )),
    }
}

/// The CSRF token a cookie-authenticated request presents: the
/// `X-CSRF-Token` header, else the `_csrf` field of a form body (read
/// within `limit` bytes and put back for the handler). Answers the
/// request to go on with.
pub(crate) async fn presented_csrf(
    req: Request,
    limit: usize,
) -> Result<(Request, Option<String>), ApiError> {
    if let Some(value) = req.headers().get(CSRF_HEADER) {
        let value = value.to_str().ok().map(str::to_owned);
        return Ok((req, Some(value.unwrap_or_default())));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    })?;
    let field = form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.into_owned());
    Ok((Request::from_parts(parts, bytes.into()), field))
}

/// Middleware over every route, whatever the auth mode: refuses (403) a
/// state-changing request that a browser marks as cross-site
/// (`Sec-Fetch-Site: cross-site`, or an `Origin` other than the `Host`
/// it was sent to). Clients that send neither header (curl, the CLI,
/// libraries) pass.
pub(crate) async fn refuse_cross_site(req: Request, next: Next) -> Response {
    if !is_safe(req.method())
        && let Some(why) = cross_site(req.headers(), req.uri())
    {
        tracing::debug!(method = %req.method(), path = req.uri().path(), "{why}");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-site request refused: {why}; errand accepts state-changing requests \
                 from its own pages and from clients that are not browsers"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Why a request is cross-site, if a browser says it is.
fn cross_site(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site.is_some_and(|v| v.eq_ignore_ascii_case("cross-site")) {
        return Some("the browser marked it Sec-Fetch-Site: cross-site".into());
    }
    let origin = headers.get(header::ORIGIN)?;
    let Some(origin) = origin.to_str().ok().and_then(origin_parts) else {
        return Some("its Origin is opaque or malformed".into());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    let host = host
        .as_deref()
        .and_then(|h| host_port(h, default_port(&origin.0)));
    if host.as_ref() == Some(&(origin.1.clone(), origin.2)) {
        return None;
    }
    Some(format!(
        "its Origin {}:{} is not the host it was sent to",
        origin.1, origin.2
    ))
}

/// `scheme://host[:port]` as (scheme, host, port); `None` for `null` or
/// anything else.
fn origin_parts(origin: &str) -> Option<(String, String, u16)> {
    let uri: Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let port = authority.port_u16().unwrap_or(default_port(&scheme));
    Some((scheme, authority.host().to_ascii_lowercase(), port))
}

/// A `Host` header as (host, port), the port defaulting to `default`.
fn host_port(host: &str, default: u16) -> Option<(String, u16)> {
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    let port = authority.port_u16().unwrap_or(default);
    Some((authority.host().to_ascii_lowercase(), port))
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_origin_must_be_the_host() {
        let uri = Uri::from_static("/v1/jobs");
        let same = [
            ("http://127.0.0.1:7070", "127.0.0.1:7070"),
            ("HTTP://LocalHost:7070", "localhost:7070"),
            ("https://errand.internal", "errand.internal"),
            ("https://errand.internal", "errand.internal:443"),
            ("http://[::1]:7070", "[::1]:7070"),
        ];
        for (origin, host) in same {
            let h = headers(&[("origin", origin), ("host", host)]);
            assert_eq!(cross_site(&h, &uri), None, "{origin} -> {host}");
        }
        let other = [
            ("http://evil.example", "127.0.0.1:7070"),
            ("http://127.0.0.1:8080", "127.0.0.1:7070"),
            ("http://localhost:7070", "127.0.0.1:7070"),
            ("https://errand.internal", "errand.internal:80"),
            ("null", "127.0.0.1:7070"),
        ];
        for (origin, host) in other {
            let h = headers(&[("origin", origin), ("host", host)]);
            assert!(cross_site(&h, &uri).is_some(), "{origin} -> {host}");
        }
        let h = headers(&[("sec-fetch-site", "cross-site"), ("host", "a:1")]);
        assert!(cross_site(&h, &uri).is_some());
        for fine in [
            &[][..],
            &[("host", "a:1"), ("sec-fetch-site", "same-origin")],
        ] {
            assert_eq!(cross_site(&headers(fine), &uri), None);
        }
    }

    #[tokio::test]
    async fn a_form_gives_its_csrf_field_and_keeps_its_body() {
        let body = "name=q&_csrf=abc%20d&x=1";
        let req = Request::post("/dashboard/pause")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        let (req, presented) = presented_csrf(req, 1024).await.unwrap();
        assert_eq!(presented.as_deref(), Some("abc d"));
        let kept = axum::body::to_bytes(req.into_body(), 1024).await.unwrap();
        assert_eq!(kept, body.as_bytes(), "the handler reads the same form");

        let big = Request::post("/")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(
                "_csrf=".to_string() + &"a".repeat(2000),
            ))
            .unwrap();
        let refused = presented_csrf(big, 1024).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);

        let header_wins = Request::post("/")
            .header(CSRF_HEADER, "h")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from("_csrf=f"))
            .unwrap();
        let (_, presented) = presented_csrf(header_wins, 1024).await.unwrap();
        assert_eq!(presented.as_deref(), Some("h"));
        let json = Request::post("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(r#"{"_csrf":"x"}"#))
            .unwrap();
        assert_eq!(presented_csrf(json, 1024).await.unwrap().1, None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[
            ("cookie", "theme=dark; errand_session=errand_session_abc"),
            ("cookie", "other=1"),
        ]);
        assert_eq!(cookie_secret(&h), Some("errand_session_abc"));
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "errand_sessionx=1")])),
            None
        );
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "errand_session=")])),
            None
        );
        assert_eq!(cookie_secret(&HeaderMap::new()), None);
    }
}
