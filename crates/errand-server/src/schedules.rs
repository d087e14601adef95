//! `GET /v1/schedules`: the configured cron schedules with their next run
//! and the last tick any node recorded.

use crate::problem::ApiError;
use crate::{App, Shared};
use axum::Json;
use axum::extract::State;
use errand_core::schedule::{ScheduleList, ScheduleView};

/// `GET /v1/schedules`: every configured schedule, in configuration order.
#[utoipa::path(
    get,
    path = "/v1/schedules",
    operation_id = "list_schedules",
    tag = "status",
    responses((status = 200, description = "Every configured schedule, in configuration order", body = ScheduleList)),
)]
pub(crate) async fn list(State(app): State<Shared>) -> Result<Json<ScheduleList>, ApiError> {
    Ok(Json(ScheduleList {
        schedules: views(&app).await?,
    }))
}

/// Every configured schedule with its next run and last tick (the API and
/// the dashboard both answer this).
pub(crate) async fn views(app: &App) -> Result<Vec<ScheduleView>, ApiError> {
    let ticks = app.store.ticks().await?;
    let now = app.store.clock().now();
    let catalog = &app.config.catalog;
    Ok(catalog
        .schedules()
        .iter()
        .map(|s| {
            let policy = catalog.policy(&s.kind).cloned().unwrap_or_default();
            s.view(&policy, now, ticks.get(&s.name).copied())
        })
        .collect())
}
