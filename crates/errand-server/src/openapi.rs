//! The OpenAPI 3.1 document at `GET /v1/openapi.json`. The router and the
//! document come from one list of handlers ([`crate::routes`], utoipa-axum),
//! each handler's `#[utoipa::path]` naming its own statuses, and the wire
//! types' schemas are derived from the types the handlers (de)serialize, so
//! the document cannot drift from the server (docs/decisions/0021). This
//! module adds what every operation shares: the problem+json answers of the
//! extractors (bad parameter, body errors, unknown id), of the store (503,
//! 500), of authentication (401, 403), and the bearer security scheme.

use crate::RouteAccess;
use crate::params::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::{Shared, problem::PROBLEM_JSON};
use axum::extract::State;
use axum::http::Method;
use axum::http::header;
use axum::response::IntoResponse;
use errand_core::api::Problem;
use errand_core::audit::AuditAction;
use errand_core::auth::Access;
use errand_core::bulk::BulkState;
use errand_core::{EnqueueRequest, JobState, NewEvent};
use std::borrow::Cow;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Components, ContentBuilder, KnownFormat, OpenApi, Ref, RefOr, ResponseBuilder, SchemaFormat,
};
use utoipa::{PartialSchema, ToSchema};

/// The security scheme every operation but the open ones requires.
pub(crate) const BEARER: &str = "bearer";
/// The alternative a browser uses: the dashboard session's cookie.
pub(crate) const SESSION: &str = "session";

/// Top-level facts of the document; the paths come from the router.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "errand",
        description = "errand's HTTP API: durable background jobs, events, batches, queues and schedules. Every error is application/problem+json (RFC 9457) naming the field at fault; a refused request changes nothing."
    ),
    tags(
        (name = "jobs", description = "Enqueue, read, cancel and retry jobs"),
        (name = "events", description = "Publish events: one job per configured listener"),
        (name = "batches", description = "Jobs enqueued and read together, with an optional on-complete job"),
        (name = "queues", description = "List, pause and resume queues"),
        (name = "admin", description = "The audit log of admin actions, and API tokens"),
        (name = "status", description = "Stats, nodes, schedules, health and this document"),
        (name = "session", description = "Dashboard sessions: log in with a token for a cookie, who am I, log out"),
        (name = "worker", description = "The remote worker protocol (docs/worker-protocol.md): claim with a long poll, heartbeat, fenced finish; needs the `work` scope"),
    )
)]
pub(crate) struct Base;

/// `GET /v1/openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "status",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document(State(app): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.openapi.clone(),
    )
}

/// The finished document: the router's paths plus the shared answers, with
/// the configured kinds and event names as the only ones accepted.
pub(crate) fn finish(mut doc: OpenApi, kinds: &[String], events: &[String]) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    only(components, EnqueueRequest::name(), "kind", kinds);
    only(components, NewEvent::name(), "name", events);
    components
        .schemas
        .insert(Problem::name().into_owned(), Problem::schema());
    components.security_schemes.insert(
        BEARER.to_string(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API token: `Authorization: Bearer errand_…`"))
                .build(),
        )
        .into(),
    );
    components.security_schemes.insert(
        SESSION.to_string(),
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::session::COOKIE,
            "A dashboard session (POST /v1/session); a request that changes state also \
             sends the session's csrf_token in X-CSRF-Token",
        )))
        .into(),
    );
    let rules = crate::route_scopes();
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_id = path.contains("{id}");
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
            (Method::PATCH, &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let needs = rules
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
                .and_then(|(_, _, access)| match access {
                    RouteAccess::Needs(access) => Some(*access),
                    RouteAccess::Open => None,
                });
            shared_answers(op, needs, has_id);
            name_parameters(op);
        }
    }
    doc
}

/// Narrows the name `field` of the schema `schema` to the configured
/// `names` (anything else is refused with 422); none configured: left as is.
fn only(components: &mut Components, schema: Cow<str>, field: &str, names: &[String]) {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema.as_ref()) else {
        return;
    };
    if names.is_empty() {
        return;
    }
    let choice = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().map(String::as_str)))
        .description(Some("One of the names configured on this server"));
    object.properties.insert(field.to_string(), choice.into());
}

/// A `{name}` path parameter (a queue's) is a name: utoipa's inline
/// parameters take no schema function, so it is set here.
fn name_parameters(op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        if let RefOr::T(param) = param
            && param.name == "name"
            && param.parameter_in == ParameterIn::Path
        {
            param.schema = Some(errand_core::openapi::name().into());
        }
    }
}

/// Adds the answers every operation of its sort can give, unless the
/// handler documented that status itself, and the scope it `needs` (none:
/// open) as its security requirement's role.
fn shared_answers(op: &mut Operation, needs: Option<Access>, has_id: bool) {
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    let mut add = |status: u16, why: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem(why).into());
    };
    if has_params {
        add(
            400,
            "A path or query parameter is malformed (`field` names it)",
        );
    }
    if has_id {
        add(404, "No such id");
    }
    if has_body {
        add(400, "The body is not valid JSON");
        add(413, "The body is larger than `[server] body_limit`");
        add(
            415,
            "The body was not sent as `content-type: application/json`",
        );
        add(
            422,
            "A field of the body is wrong, unknown or missing (`field` names it)",
        );
    }
    add(
        500,
        "An internal error; the server log has it under the `error_id` in `detail`",
    );
    add(
        503,
        "The store is unavailable (database down, locked or failing writes)",
    );
    if let Some(access) = needs {
        add(
            401,
            "No token, or an unknown or revoked one (or an expired or ended session)",
        );
        add(
            403,
            "The token lacks the scope this operation needs (or, for a change made with the \
             session cookie, the CSRF token is missing or wrong, or a browser sent it from \
             another site)",
        );
        // OpenAPI 3.1 lets a non-OAuth requirement name the roles it needs:
        // here, the token's scope.
        op.security = Some(vec![
            SecurityRequirement::new(BEARER, [access.as_str()]),
            SecurityRequirement::new(SESSION, [access.as_str()]),
        ]);
    }
}

/// An answer of `application/problem+json` with the [`Problem`] shape.
pub(crate) fn problem(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(Problem::name())))
                .build(),
        )
        .build()
}

/// A query parameter's schema, or the empty string, which the server
/// reads as "absent" (as a form's empty field sends it).
fn or_empty(schema: impl Into<RefOr<Schema>>) -> Schema {
    let empty = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(0));
    OneOfBuilder::new().item(schema).item(empty).into()
}

/// A listing's `cursor`: the previous page's `next_cursor`, an id.
pub(crate) fn cursor() -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .description(Some("The previous page's `next_cursor`")),
    )
}

/// A listing's page size.
pub(crate) fn limit() -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT))
            .description(Some(format!(
                "Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})"
            ))),
    )
}

/// `?state=`: a job state.
pub(crate) fn state() -> Schema {
    or_empty(Ref::from_schema_name(JobState::name()))
}

/// `?action=`: an audit action.
pub(crate) fn audit_action() -> Schema {
    or_empty(Ref::from_schema_name(AuditAction::name()))
}

/// `?since=`: an RFC 3339 time. No `format`: the server reads a little
/// more than RFC 3339 allows, and a format would call that a failure.
pub(crate) fn since() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Only entries at or after this time: RFC 3339, e.g. 2030-01-01T00:00:00Z",
        ))
        .into()
}

/// `?state=` of bulk operations.
pub(crate) fn bulk_state() -> Schema {
    or_empty(Ref::from_schema_name(BulkState::name()))
}

/// A time parameter: RFC 3339 (UTC when it has no offset).
pub(crate) fn time() -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("RFC 3339, such as 2030-01-01T09:00:00Z")),
    )
}

/// `?wait=`: a duration (capped at `[server] max_wait`).
pub(crate) fn wait() -> Schema {
    or_empty(errand_core::openapi::duration())
}

/// `?results=`: a flag.
pub(crate) fn flag() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false", "1", "0", ""]))
        .description(Some("Add every job's result or error without waiting"))
        .into()
}
