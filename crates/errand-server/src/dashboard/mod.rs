//! The built-in web dashboard: server-rendered HTML pages at `/`, `/jobs`,
//! `/jobs/{id}`, `/queues`, `/kinds`, `/nodes`, `/schedules`, `/events`,
//! `/batches` and `/login`, with one CSS and one small JS file embedded in
//! the binary. Pages read the same store queries as the `/v1` handlers;
//! their buttons call the `/v1` API (with `X-CSRF-Token`). The dashboard's
//! routes are not part of the OpenAPI document: [`route_scopes`] is their
//! access table, enforced by the same guard as the API's.
//! See docs/decisions/0026-dashboard.md.

pub(crate) mod chart;
pub(crate) mod html;
mod pages;

use crate::problem::ApiError;
use crate::{RouteAccess, Shared};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use errand_core::auth::Access;
use html::{Viewer, esc};
use std::convert::Infallible;

/// Where the stylesheet and the script are served (open: they hold no data).
pub(crate) const CSS_PATH: &str = "/assets/dashboard.css";
/// See [`CSS_PATH`].
pub(crate) const JS_PATH: &str = "/assets/dashboard.js";
/// The login page, where an unauthenticated page request is sent.
pub(crate) const LOGIN_PATH: &str = "/login";

const CSS: &str = include_str!("assets/dashboard.css");
const JS: &str = include_str!("assets/dashboard.js");

/// Every dashboard route: method, path, access, handler. The router and
/// [`route_scopes`] are both made from it, so no route lacks a rule.
fn table() -> Vec<(Method, &'static str, RouteAccess, MethodRouter<Shared>)> {
    use RouteAccess::{Needs, Open};
    let read = Needs(Access::Read);
    vec![
        (Method::GET, "/", read, get(pages::overview)),
        (Method::GET, "/jobs", read, get(pages::jobs)),
        (Method::GET, "/jobs/go", read, get(pages::go_to_job)),
        (Method::GET, "/jobs/{id}", read, get(pages::job)),
        (Method::GET, "/queues", read, get(pages::queues)),
        (Method::GET, "/kinds", read, get(pages::kinds)),
        (Method::GET, "/nodes", read, get(pages::nodes)),
        (Method::GET, "/schedules", read, get(pages::schedules)),
        (Method::GET, "/events", read, get(pages::events)),
        (Method::GET, "/batches", read, get(pages::batches)),
        (
            Method::GET,
            "/audit",
            Needs(Access::Admin),
            get(pages::audit),
        ),
        (Method::GET, LOGIN_PATH, Open, get(pages::login)),
        (Method::GET, CSS_PATH, Open, get(css)),
        (Method::GET, JS_PATH, Open, get(js)),
    ]
}

/// Which access each dashboard route needs: pages need `read` (their
/// buttons call `/v1` routes, which need `admin`), the audit log `admin`
/// as in the API; the login page and the assets are open.
pub fn route_scopes() -> Vec<(Method, &'static str, RouteAccess)> {
    table()
        .into_iter()
        .map(|(method, path, access, _)| (method, path, access))
        .collect()
}

/// The page paths that send an unauthenticated browser to the login page
/// instead of answering 401.
pub(crate) fn login_redirects() -> Vec<&'static str> {
    table()
        .into_iter()
        .filter(|(_, _, access, _)| *access != RouteAccess::Open)
        .map(|(_, path, _, _)| path)
        .collect()
}

/// The dashboard's routes, to merge into the API's router (before the
/// auth layer, so the guard sees them).
pub(crate) fn router() -> Router<Shared> {
    table()
        .into_iter()
        .fold(Router::new(), |router, (_, path, _, handler)| {
            router.route(path, handler)
        })
}

/// Headers every page carries: no inline script or style can run, no
/// framing, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A rendered page with the dashboard's security headers.
pub(crate) fn page(body: String) -> Response {
    let mut response = Html(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An embedded asset; browsers may keep it for five minutes.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// A failed page: the API error's status and detail as a small HTML page.
pub(crate) struct PageError(ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<errand_core::StoreError> for PageError {
    fn from(e: errand_core::StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = html::layout(
            status.canonical_reason().unwrap_or("Error"),
            "",
            &Viewer::default(),
            &format!("<p class=\"error\">{}</p>", esc(self.0.detail())),
        );
        (status, page(body)).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Infallible;

    /// The token's name when the guard verified one, else "local" (auth
    /// off); and, for a browser's session, its CSRF token, which the page
    /// embeds for its buttons to send as `X-CSRF-Token`.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let name = parts
            .extensions
            .get::<crate::Actor>()
            .map(|a| a.name.to_string())
            .unwrap_or_else(|| "local".to_string());
        let csrf = parts
            .extensions
            .get::<crate::session::CookieSession>()
            .map(|s| s.csrf.clone())
            .unwrap_or_default();
        Ok(Viewer { name, csrf })
    }
}
