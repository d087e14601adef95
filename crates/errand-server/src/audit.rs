//! `GET /v1/audit`: the audit log of admin actions, newest first. It needs
//! the `admin` scope: it names every token and what each did, which a
//! `read` token (a dashboard, a web app) has no need to know.

use crate::Shared;
use crate::params::{AuditParams, Params, next_cursor};
use crate::problem::ApiError;
use axum::Json;
use axum::extract::State;
use errand_core::api::AuditPage;

/// `GET /v1/audit`: one page of entries, newest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "admin",
    params(AuditParams),
    responses((status = 200, description = "Entries newest first; `next_cursor` when more may follow", body = AuditPage)),
)]
pub(crate) async fn list(
    State(app): State<Shared>,
    Params(params): Params<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = params.filter()?;
    let entries = app.store.audit(&filter).await?;
    let next_cursor = next_cursor(&entries, filter.limit, |e| e.id);
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
