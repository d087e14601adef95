//! Reads: one job, filtered lists, and counts by state.

use crate::rows::{
    JOB_COLUMNS, LIST_COLUMNS, LIST_SIZES, Listing, by_id, db_error, job_from_row,
    listed_job_from_row, parse_state,
};
use deadpool_postgres::Client;
use errand_core::store::{LIST_VALUE_CAP, ListFilter, Stats};
use errand_core::{Job, JobId, JobState, StoreError};
use std::sync::LazyLock;
use tokio_postgres::types::ToSql;

/// One job by id.
pub(crate) async fn get(client: &Client, id: JobId) -> Result<Option<Job>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    by_id(client, &sql, id, job_from_row).await
}

/// Jobs matching `filter`, newest first, large values left out.
pub(crate) async fn list(client: &Client, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
    let limit = i64::from(filter.limit);
    let mut listing = Listing::default();
    filter_jobs(&mut listing, filter);
    if let Some(before) = &filter.before {
        listing.filter("id <", before);
    }
    let (page, params) = listing.newest_first("*", "jobs", &limit);
    let columns = LIST_COLUMNS.replace("{cap}", &LIST_VALUE_CAP.to_string());
    let sql = format!("SELECT {columns} FROM ({page}) page, {LIST_SIZES} ORDER BY page.id DESC");
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &params).await.map_err(db_error)?;
    rows.iter().map(listed_job_from_row).collect()
}

/// Adds the conditions of `filter` apart from its page (`before`,
/// `limit`) to `listing`. Listings and bulk actions select jobs with this
/// one function.
pub(crate) fn filter_jobs<'a>(listing: &mut Listing<'a>, filter: &'a ListFilter) {
    if let Some(state) = filter.state {
        listing.filter("state =", state_param(state));
    }
    if let Some(kind) = &filter.kind {
        listing.filter("kind =", kind);
    }
    if let Some(queue) = &filter.queue {
        listing.filter("queue =", queue);
    }
}

/// A state's name as a statement parameter that lives for ever.
fn state_param(state: JobState) -> &'static (dyn ToSql + Sync) {
    static NAMES: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| JobState::ALL.iter().map(|s| s.as_str()).collect());
    let i = JobState::ALL.iter().position(|s| *s == state).unwrap_or(0);
    &NAMES[i]
}

/// Job counts by queue, kind and state.
pub(crate) async fn stats(client: &Client) -> Result<Stats, StoreError> {
    let stmt = client
        .prepare_cached("SELECT queue, kind, state, COUNT(*) FROM jobs GROUP BY queue, kind, state")
        .await
        .map_err(db_error)?;
    let mut stats = Stats::default();
    for row in client.query(&stmt, &[]).await.map_err(db_error)? {
        let n: i64 = row.get(3);
        stats.add(row.get(0), row.get(1), parse_state(row.get(2))?, n as u64);
    }
    Ok(stats)
}
