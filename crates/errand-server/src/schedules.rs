//! `GET /v1/schedules`: the configured cron schedules with their next run
//! and the last tick any node recorded.

use crate::Shared;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::State;
use errand_core::schedule::ScheduleList;

/// `GET /v1/schedules`: every configured schedule, in configuration order.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    operation_id = "list_schedules",
    tag = "status",
    responses((status = 200, description = "Every configured schedule, in configuration order", body = ScheduleList)),
)]
pub(crate) async fn list(State(app): State<Shared>) -> Result<Json<ScheduleList>, ApiError> {
    let ticks = app.store.ticks().await?;
    let now = app.store.clock().now();
    let catalog = &app.config.catalog;
    let schedules = catalog
        .schedules()
        .iter()
        .map(|s| {
            let policy = catalog.policy(&s.kind).cloned().unwrap_or_default();
            s.view(&policy, now, ticks.get(&s.name).copied())
        })
        .collect();
    Ok(Json(ScheduleList { schedules }))
}
