//! Reads: one job, filtered lists, and counts by state.

use crate::rows::{
    JOB_COLUMNS, LIST_COLUMNS, LIST_SIZES, Listing, by_id, db_error, job_from_row,
    listed_job_from_row, sql_time,
};
use deadpool_postgres::Client;
use errand_core::store::{LIST_VALUE_CAP, ListFilter, SCAN_LIMIT};
use errand_core::{Job, JobId, JobState, StoreError};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// One job by id.
pub(crate) async fn get(client: &Client, id: JobId) -> Result<Option<Job>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
    by_id(client, &sql, id, job_from_row).await
}

/// The states `jobs_state_id` (state, id) holds (migration 5): the others
/// are too many (completed), too few (running) or served by the claim index.
const STATE_ID_STATES: [JobState; 4] = [
    JobState::Scheduled,
    JobState::Retryable,
    JobState::Failed,
    JobState::Cancelled,
];

/// Values a listing's SQL refers to, kept alive for its parameters.
pub(crate) struct Values<'a> {
    state: Option<&'static str>,
    limit: i64,
    created_after: Option<SystemTime>,
    created_before: Option<SystemTime>,
    text: Option<String>,
    filter: &'a ListFilter,
}

impl<'a> Values<'a> {
    /// The values of `filter`; listings and bulk actions share them.
    pub(crate) fn of(filter: &'a ListFilter) -> Values<'a> {
        Values {
            state: filter.state.map(|s| s.as_str()),
            limit: i64::from(filter.limit),
            created_after: filter.created_after.map(sql_time),
            created_before: filter.created_before.map(sql_time),
            text: filter.text_pattern(),
            filter,
        }
    }

    /// The filters as a [`Listing`]: indexed ones, then scanned ones.
    pub(crate) fn listing(&self) -> Listing<'_> {
        let mut listing = Listing::default();
        if let Some(state) = self.state {
            listing.constant(format!("state = '{state}'"));
        }
        if let Some(kind) = &self.filter.kind {
            listing.filter("kind =", kind);
        }
        if let Some(queue) = &self.filter.queue {
            listing.filter("queue =", queue);
        }
        if let Some(before) = &self.filter.before {
            listing.filter("id <", before);
        }
        if let Some(tag) = &self.filter.tag {
            listing.scan("{} = ANY(tags)", tag);
        }
        if let Some(after) = &self.created_after {
            listing.scan("created_at >= {}", after);
        }
        if let Some(before) = &self.created_before {
            listing.scan("created_at < {}", before);
        }
        if let Some(text) = &self.text {
            listing.scan(
                "(payload::text ILIKE {0} ESCAPE '\\' OR errors::text ILIKE {0} ESCAPE '\\')",
                text,
            );
        }
        listing
    }
}

/// The listing of `filter`, its plan chosen by the stored counts
/// ([`errand_core::store::ListCounts`]); `None` when nothing matches.
async fn planned<'v>(
    client: &Client,
    filter: &ListFilter,
    values: &'v Values<'_>,
) -> Result<Option<Listing<'v>>, StoreError> {
    let counts = crate::counts::for_listing(client, filter).await?;
    if counts.none_match() {
        return Ok(None);
    }
    let mut listing = values.listing();
    let wanted = if listing.scans() {
        SCAN_LIMIT
    } else {
        filter.limit
    };
    // Newest first, the planner can walk `jobs_state_id` for the states it
    // holds, else the primary key over every job.
    let walked = match (filter.state, counts.state) {
        (Some(state), Some(n)) if STATE_ID_STATES.contains(&state) => n,
        _ => counts.total,
    };
    if counts.sparse(wanted.into(), walked) {
        listing.sort_matches();
    }
    Ok(Some(listing))
}

/// Jobs matching `filter`, newest first, large values left out. Scanned
/// filters are checked on the newest [`SCAN_LIMIT`] rows that pass the
/// indexed ones.
pub(crate) async fn list(client: &Client, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
    let values = Values::of(filter);
    let Some(listing) = planned(client, filter, &values).await? else {
        return Ok(Vec::new());
    };
    let (page, params) = listing.newest_first("*", "jobs", &values.limit, SCAN_LIMIT);
    let columns = LIST_COLUMNS.replace("{cap}", &LIST_VALUE_CAP.to_string());
    let sql = format!("SELECT {columns} FROM ({page}) page, {LIST_SIZES} ORDER BY page.id DESC");
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &params).await.map_err(db_error)?;
    rows.iter().map(listed_job_from_row).collect()
}

/// The lowest id among the newest [`SCAN_LIMIT`] rows passing `filter`'s
/// indexed filters, when there are that many.
pub(crate) async fn scan_floor(
    client: &Client,
    filter: &ListFilter,
) -> Result<Option<JobId>, StoreError> {
    let values = Values::of(filter);
    let Some(listing) = planned(client, filter, &values).await? else {
        return Ok(None);
    };
    let (sql, params) = listing.floor("jobs", SCAN_LIMIT);
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let row = client.query_opt(&stmt, &params).await.map_err(db_error)?;
    Ok(row.map(|r| r.get(0)))
}

/// The newest live job of one of `kinds` with unique key `key`, through
/// `jobs_unique_live` (its condition repeated, so it is used).
pub(crate) async fn live_by_unique(
    client: &Client,
    kinds: &[String],
    key: &str,
) -> Result<Option<Job>, StoreError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ANY($1) AND unique_key = $2 \
             AND state NOT IN ('completed', 'failed', 'cancelled') \
             ORDER BY id DESC LIMIT 1"
        ))
        .await
        .map_err(db_error)?;
    client
        .query_opt(&stmt, &[&kinds, &key])
        .await
        .map_err(db_error)?
        .as_ref()
        .map(job_from_row)
        .transpose()
}

/// Waiting jobs of `kinds` by kind and priority.
pub(crate) async fn waiting_by_priority(
    client: &Client,
    kinds: &[String],
) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT kind, priority, count(*) FROM jobs \
             WHERE state IN ('scheduled', 'available', 'retryable') AND kind = ANY($1) \
             GROUP BY kind, priority",
        )
        .await
        .map_err(db_error)?;
    let rows = client.query(&stmt, &[&kinds]).await.map_err(db_error)?;
    let mut counts: BTreeMap<String, BTreeMap<i16, u64>> = BTreeMap::new();
    for row in rows {
        let kind: String = row.try_get(0).map_err(db_error)?;
        let priority: i16 = row.try_get(1).map_err(db_error)?;
        let n: i64 = row.try_get(2).map_err(db_error)?;
        counts
            .entry(kind)
            .or_default()
            .insert(priority, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}
