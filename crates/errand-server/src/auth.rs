//! Bearer-token authentication: the one table of which scope each route
//! needs lives in `crate::routes`; here, the middleware that enforces it
//! (401 before a handler runs for a missing or unknown token, 403 for a
//! missing scope), the short-lived cache of verified tokens, the rule that
//! decides when auth is required, and the per-job check of a restricted
//! `enqueue` scope. See docs/decisions/0019-api-tokens.md.

use crate::RouteAccess;
use crate::problem::ApiError;
use crate::session::{self, CookieSession};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use errand_core::audit::AuditActor;
use errand_core::auth::{Access, LAST_USE_INTERVAL, Scopes, TokenHash};
use errand_core::session::csrf_token;
use errand_core::{EnqueueRequest, Store};
use serde::Deserialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a verified (or refused) token is trusted without asking the
/// store again: a revocation reaches every node within this time.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most tokens cached at once; random tokens sent by a stranger cannot
/// grow the cache past it.
const MAX_CACHED: usize = 4096;

/// `[server] auth`: whether requests need a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Every route but `/healthz` needs a token with the route's scope.
    Required,
    /// No token is asked for: only safe on a loopback address.
    Off,
}

/// Whether a server listening on `listen` must require tokens, given the
/// `[server] auth` setting: unset means off on a loopback address and
/// required elsewhere; `off` on a non-loopback address is refused unless
/// `unsafe_override` (`--unsafe-no-auth`) is set.
pub fn auth_required(
    listen: &str,
    setting: Option<AuthMode>,
    unsafe_override: bool,
) -> Result<bool, String> {
    match setting {
        Some(AuthMode::Required) => Ok(true),
        None => Ok(!is_loopback(listen)),
        Some(AuthMode::Off) if is_loopback(listen) || unsafe_override => Ok(false),
        Some(AuthMode::Off) => Err(format!(
            "auth = \"off\" is refused on {listen}, which is not a loopback address: anyone who \
             can reach it could read and change every job. Create a token with \
             `errand tokens create --name NAME --scope enqueue` and remove `auth = \"off\"`, \
             or listen on 127.0.0.1; to serve without auth anyway, pass --unsafe-no-auth \
             (ERRAND_UNSAFE_NO_AUTH=1)"
        )),
    }
}

/// Whether `listen` (`HOST:PORT`) is a loopback address; a host name other
/// than `localhost` counts as not loopback.
fn is_loopback(listen: &str) -> bool {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return addr.ip().is_loopback();
    }
    listen
        .rsplit_once(':')
        .is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost"))
}

/// Who made a request: the name of the token it carried. Handlers (and
/// the audit log) read it from the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name (never its secret).
    pub name: Arc<str>,
}

/// A verified token: who, and what it may do.
#[derive(Debug)]
struct Verified {
    actor: Actor,
    scopes: Scopes,
}

/// A cached answer about one hash: the token, or `None` for no token.
struct Cached {
    at: Instant,
    token: Option<Arc<Verified>>,
}

/// Verifies bearer tokens against the store, remembering answers for
/// [`TOKEN_CACHE_TTL`] and recording each token's use at most every
/// [`LAST_USE_INTERVAL`] from this node.
pub(crate) struct Verifier {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<TokenHash, Cached>>,
    last_recorded: Mutex<HashMap<Arc<str>, Instant>>,
}

impl Verifier {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Verifier {
            store,
            cache: Mutex::new(HashMap::new()),
            last_recorded: Mutex::new(HashMap::new()),
        }
    }

    /// The token whose secret hashes to `hash`. Lookups are by hash, so no
    /// comparison ever runs over the secret itself: timing can tell an
    /// attacker at most about hashes, which does not help find a secret.
    async fn verify(&self, hash: TokenHash) -> Result<Option<Arc<Verified>>, ApiError> {
        if let Some(cached) = lock(&self.cache).get(&hash)
            && cached.at.elapsed() < TOKEN_CACHE_TTL
        {
            return Ok(cached.token.clone());
        }
        let token = self.store.token_by_hash(&hash).await?.map(|t| {
            Arc::new(Verified {
                actor: Actor {
                    name: t.name.into(),
                },
                scopes: t.scopes,
            })
        });
        let mut cache = lock(&self.cache);
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.at.elapsed() < TOKEN_CACHE_TTL);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            hash,
            Cached {
                at: Instant::now(),
                token: token.clone(),
            },
        );
        Ok(token)
    }

    /// The token acting through the session whose secret is `secret`, and
    /// the session, while it lasts. Not cached: a logout takes effect at
    /// once on every node.
    async fn session(
        &self,
        secret: &str,
    ) -> Result<Option<(Arc<Verified>, CookieSession)>, ApiError> {
        let hash = TokenHash::of(secret);
        let Some(found) = self.store.session_by_hash(&hash).await? else {
            return Ok(None);
        };
        let token = Arc::new(Verified {
            actor: Actor {
                name: found.token_name.into(),
            },
            scopes: found.scopes,
        });
        let session = CookieSession {
            hash,
            csrf: csrf_token(secret),
            expires_at: found.expires_at,
        };
        Ok(Some((token, session)))
    }

    /// Records a use of `actor`'s token in the background, unless this node
    /// did within [`LAST_USE_INTERVAL`].
    fn record_use(&self, actor: &Actor) {
        {
            let mut last = lock(&self.last_recorded);
            if last
                .get(&actor.name)
                .is_some_and(|at| at.elapsed() < LAST_USE_INTERVAL)
            {
                return;
            }
            last.insert(actor.name.clone(), Instant::now());
        }
        let store = self.store.clone();
        let name = actor.name.clone();
        tokio::spawn(async move {
            if let Err(e) = store.record_token_use(&name).await {
                tracing::debug!(token = %name, error = %e, "cannot record the token's use");
            }
        });
    }
}

/// A poisoned lock only means a panic while holding it: the maps stay valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the auth middleware checks: the verifier, and the access each
/// route (method and path template) needs.
#[derive(Clone)]
pub(crate) struct RouteGuard {
    verifier: Arc<Verifier>,
    rules: Arc<Vec<((Method, &'static str), RouteAccess)>>,
    /// Largest form body read for its `_csrf` field.
    body_limit: usize,
    /// Dashboard pages: a browser without credentials is sent to the
    /// login page rather than answered 401.
    login_redirects: Arc<Vec<&'static str>>,
}

impl RouteGuard {
    /// A guard enforcing `rules` ([`crate::route_scopes`] and the
    /// dashboard's) with `verifier`, reading at most `body_limit` bytes of a
    /// form for its CSRF token; GETs of `login_redirects` without
    /// credentials are sent to the login page.
    pub(crate) fn new(
        verifier: Arc<Verifier>,
        rules: Vec<(Method, &'static str, RouteAccess)>,
        body_limit: usize,
        login_redirects: Vec<&'static str>,
    ) -> RouteGuard {
        let rules = rules
            .into_iter()
            .map(|(method, path, access)| ((method, path), access))
            .collect();
        RouteGuard {
            verifier,
            rules: Arc::new(rules),
            body_limit,
            login_redirects: Arc::new(login_redirects),
        }
    }
}

/// Middleware (a route layer, so the matched route is known): lets the
/// request through only with a bearer token, or a session cookie, whose
/// token has the route's scope, recording the token's [`Actor`] and
/// [`Grant`] (and the [`CookieSession`]) in the request's extensions. A
/// cookie-authenticated request that may change state must also carry the
/// session's CSRF token. Open routes pass; a route without a rule is refused, so a
/// forgotten rule fails closed.
pub(crate) async fn require(
    State(guard): State<RouteGuard>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let rule = guard
        .rules
        .iter()
        .find(|((method, template), _)| method == req.method() && *template == path)
        .map(|(_, access)| *access);
    let access = match rule {
        Some(RouteAccess::Open) => return next.run(req).await,
        Some(RouteAccess::Needs(access)) => access,
        None => {
            tracing::error!(method = %req.method(), path, "route without an access rule refused");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "this route has no access rule; it is refused",
            )
            .into_response();
        }
    };
    // A bearer token wins; without one, the session cookie (a browser's).
    // A dashboard page asked for without valid credentials goes to login.
    let to_login = req.method() == Method::GET && guard.login_redirects.contains(&path.as_str());
    let mut session = None;
    let token = if req.headers().contains_key(header::AUTHORIZATION) {
        let secret = match bearer(&req) {
            Ok(secret) => secret,
            Err(_) if to_login => {
                return Redirect::to(crate::dashboard::LOGIN_PATH).into_response();
            }
            Err((detail, error)) => return unauthorized(detail, error),
        };
        match guard.verifier.verify(TokenHash::of(secret)).await {
            Ok(Some(token)) => token,
            Ok(None) if to_login => {
                return Redirect::to(crate::dashboard::LOGIN_PATH).into_response();
            }
            Ok(None) => {
                return unauthorized(
                    "unknown or revoked token; `errand tokens list` shows the valid ones",
                    "invalid_token",
                );
            }
            Err(e) => return e.into_response(),
        }
    } else if let Some(secret) = session::cookie_secret(req.headers()) {
        match guard.verifier.session(secret).await {
            Ok(Some((token, found))) => {
                session = Some(found);
                token
            }
            Ok(None) if to_login => {
                return Redirect::to(crate::dashboard::LOGIN_PATH).into_response();
            }
            Ok(None) => {
                return unauthorized(
                    "the session has expired or ended (logout, or its token was revoked); \
                     log in again with POST /v1/session",
                    "invalid_token",
                );
            }
            Err(e) => return e.into_response(),
        }
    } else if to_login {
        return Redirect::to(crate::dashboard::LOGIN_PATH).into_response();
    } else {
        return unauthorized(MISSING_CREDENTIALS, "");
    };
    if !token.scopes.allows(access) {
        tracing::debug!(token = %token.actor.name, scope = %access, "scope missing");
        return forbidden(
            None,
            format!(
                "token {:?} lacks the {:?} scope this route needs (it has: {})",
                &*token.actor.name,
                access.as_str(),
                token.scopes
            ),
            access,
        )
        .into_response();
    }
    if let Some(found) = &session
        && !session::is_safe(req.method())
    {
        // A browser sends the cookie by itself, even for another site's
        // form: only the session's own pages know its CSRF token.
        let presented;
        (req, presented) = match session::presented_csrf(req, guard.body_limit).await {
            Ok(read) => read,
            Err(e) => return e.into_response(),
        };
        if let Err(e) = session::check_csrf(&found.csrf, presented.as_deref()) {
            tracing::debug!(token = %token.actor.name, "CSRF token missing or wrong");
            return e.into_response();
        }
    }
    guard.verifier.record_use(&token.actor);
    req.extensions_mut().insert(token.actor.clone());
    req.extensions_mut().insert(Grant(Some(token)));
    if let Some(found) = session {
        req.extensions_mut().insert(found);
    }
    next.run(req).await
}

/// The 401's detail for a request with neither a token nor a session.
const MISSING_CREDENTIALS: &str = "missing bearer token: send `Authorization: Bearer <token>` \
     (make one with `errand tokens create --name NAME --scope SCOPE`), or log in with \
     POST /v1/session for a session cookie";

/// The secret of an `Authorization: Bearer …` header, or why not (the
/// 401's detail and RFC 6750 error code).
fn bearer(req: &Request) -> Result<&str, (&'static str, &'static str)> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err((MISSING_CREDENTIALS, ""));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret.trim())
        .filter(|secret| !secret.is_empty())
        .ok_or((
            "the Authorization header must be `Bearer <token>`",
            "invalid_request",
        ))
}

/// A 401 with `WWW-Authenticate: Bearer` (and the RFC 6750 error code).
fn unauthorized(detail: &str, error: &str) -> Response {
    let challenge = if error.is_empty() {
        HeaderValue::from_static("Bearer realm=\"errand\"")
    } else {
        HeaderValue::from_str(&format!("Bearer realm=\"errand\", error=\"{error}\""))
            .unwrap_or(HeaderValue::from_static("Bearer realm=\"errand\""))
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge);
    response
}

/// A 403 naming the scope needed (and the field refused, if one).
fn forbidden(field: Option<&str>, detail: String, access: Access) -> ApiError {
    let error = match field {
        Some(field) => ApiError::field(StatusCode::FORBIDDEN, field, detail),
        None => ApiError::new(StatusCode::FORBIDDEN, detail),
    };
    error.with_scope(access.as_str())
}

/// Who the audit log names for a request: its token's name, or
/// [`errand_core::audit::LOCAL_ACTOR`] when it carried none (auth off).
pub(crate) struct ActingAs(pub AuditActor);

impl<S: Send + Sync> FromRequestParts<S> for ActingAs {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ActingAs(match parts.extensions.get::<Actor>() {
            Some(actor) => AuditActor::Token(actor.name.to_string()),
            None => AuditActor::Local,
        }))
    }
}

/// What the request's token allows; `None` when auth is off (anything).
/// Handlers that enqueue take it to check a restricted `enqueue` scope.
#[derive(Clone, Default)]
pub(crate) struct Grant(Option<Arc<Verified>>);

impl Grant {
    /// The token's name and scopes; `None` when auth is off.
    pub(crate) fn identity(&self) -> Option<(&str, &Scopes)> {
        self.0.as_ref().map(|t| (&*t.actor.name, &t.scopes))
    }

    /// Refuses (403) enqueueing `name` — a kind or an event name, at
    /// `field` of the body — unless the token's `enqueue` scope allows it.
    pub(crate) fn may_enqueue(&self, field: &str, name: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some(token) if !token.scopes.may_enqueue(name) => Err(forbidden(
                Some(field),
                format!(
                    "token {:?} may not enqueue {name:?} (its scopes: {})",
                    &*token.actor.name, token.scopes
                ),
                Access::Enqueue,
            )),
            _ => Ok(()),
        }
    }

    /// Refuses (403) claiming jobs of `kind`, at `field` of the body,
    /// unless the token's `work` scope allows it.
    pub(crate) fn may_work(&self, field: &str, kind: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some(token) if !token.scopes.may_work(kind) => Err(forbidden(
                Some(field),
                format!(
                    "token {:?} may not claim jobs of kind {kind:?} (its scopes: {})",
                    &*token.actor.name, token.scopes
                ),
                Access::Work,
            )),
            _ => Ok(()),
        }
    }

    /// [`Grant::may_enqueue`] for each job's kind (`jobs[i].kind`).
    pub(crate) fn may_enqueue_jobs(&self, jobs: &[EnqueueRequest]) -> Result<(), ApiError> {
        jobs.iter()
            .enumerate()
            .try_for_each(|(i, job)| self.may_enqueue(&format!("jobs[{i}].kind"), &job.kind))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Grant {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Grant>().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_is_off_by_default_only_on_loopback() {
        for local in [
            "127.0.0.1:7070",
            "[::1]:7070",
            "localhost:7070",
            "127.0.0.2:1",
        ] {
            assert_eq!(auth_required(local, None, false), Ok(false), "{local}");
            assert_eq!(auth_required(local, Some(AuthMode::Off), false), Ok(false));
        }
        for remote in [
            "0.0.0.0:7070",
            "[::]:7070",
            "10.0.0.5:7070",
            "errand.internal:7070",
        ] {
            assert_eq!(auth_required(remote, None, false), Ok(true), "{remote}");
            let refused = auth_required(remote, Some(AuthMode::Off), false).unwrap_err();
            assert!(refused.contains("errand tokens create"), "{refused}");
            assert_eq!(auth_required(remote, Some(AuthMode::Off), true), Ok(false));
        }
        assert_eq!(
            auth_required("127.0.0.1:1", Some(AuthMode::Required), false),
            Ok(true)
        );
    }
}
