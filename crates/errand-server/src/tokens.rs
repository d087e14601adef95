//! Token management over the API (`admin` scope): list, create (the secret
//! is answered once), revoke. Each change is audited with the caller's
//! token name. An admin token may create a token with any scope, `admin`
//! included: whoever holds one is trusted with the whole server, and the
//! audit log names who made which token (docs/decisions/0023-audit-log.md).
//! A token cannot revoke itself here, so a client cannot lock itself out.

use crate::Shared;
use crate::auth::ActingAs;
use crate::body::JsonBody;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use errand_core::ValidationError;
use errand_core::api::{CreatedToken, NewTokenRequest, Problem, TokenList};
use errand_core::audit::AuditActor;
use errand_core::auth::{NewToken, Scope, Scopes, Secret};
use errand_core::job::check_name;

/// `GET /v1/tokens`: every token by name, never a secret or a hash.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    operation_id = "list_tokens",
    tag = "admin",
    responses((status = 200, description = "Every token: name, scopes, created, last used", body = TokenList)),
)]
pub(crate) async fn list(State(app): State<Shared>) -> Result<Json<TokenList>, ApiError> {
    let tokens = app.store.tokens().await?;
    Ok(Json(TokenList { tokens }))
}

/// `POST /v1/tokens`: makes a token; its secret is in this answer only.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    operation_id = "create_token",
    tag = "admin",
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "The token, with its secret: shown this once, only its hash is stored", body = CreatedToken),
        (status = 409, description = "A token of this name exists", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    JsonBody(req): JsonBody<NewTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let scopes = scopes(&req.scopes)?;
    let secret = Secret::generate().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the system's random source: {e}"),
        )
    })?;
    let token = NewToken::new(&req.name, scopes, secret.hash())?;
    let token = app.store.create_token(token, &actor).await?;
    tracing::info!(token = %token.name, by = %actor, "token created");
    let created = CreatedToken {
        token,
        secret: secret.expose().to_string(),
    };
    // The secret must not linger in a cache on the way.
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(created),
    ))
}

/// The requested scopes, each error naming its place (`scopes[2]`).
fn scopes(items: &[String]) -> Result<Scopes, ValidationError> {
    if items.is_empty() {
        return Err(ValidationError::new("scopes", "give at least one scope"));
    }
    let scopes = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.parse::<Scope>()
                .map_err(|e| ValidationError::new(format!("scopes[{i}]"), e.message))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scopes::new(scopes))
}

/// `DELETE /v1/tokens/{name}`: revokes a token on every node within a second.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{name}",
    operation_id = "revoke_token",
    tag = "admin",
    params(("name" = String, Path, description = "The token's name")),
    responses(
        (status = 204, description = "Revoked: every node refuses it within a second"),
        (status = 404, description = "No token has this name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The request's own token: revoke it with another admin token or `errand tokens revoke`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The name is not a token name (letters, digits and `_ - . :`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn revoke(
    State(app): State<Shared>,
    ActingAs(actor): ActingAs,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    check_name("name", &name)?;
    if matches!(&actor, AuditActor::Token(own) if *own == name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "token {name:?} is the one making this request and cannot revoke itself; \
                 use another admin token or `errand tokens revoke {name}`"
            ),
        ));
    }
    if !app.store.revoke_token(&name, &actor).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no token named {name:?}; GET /v1/tokens lists them"),
        ));
    }
    tracing::info!(token = %name, by = %actor, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
