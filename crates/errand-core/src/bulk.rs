//! Bulk actions on jobs (retry, cancel, delete, run now) over explicit ids
//! or everything a [`ListFilter`] matches. An action is stored as a
//! [`BulkOperation`] and applied in chunks, newest job first, each chunk in
//! one short transaction that also advances the operation's cursor, so a
//! million-job action never holds the writer for long and survives a
//! restart (docs/decisions/0027). Which states each action touches is
//! decided here, once ([`BulkAction::applies_to`]); engines only apply it.

use crate::audit::{AuditAction, LOCAL_ACTOR, NewAuditEntry};
use crate::job::{JobId, MAX_NAME_LEN, ValidationError};
use crate::state::JobState;
use crate::store::{ListFilter, MAX_SEARCH};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A bulk operation's id.
pub type BulkId = i64;

/// Most job ids one bulk action may name (a filter has no such bound).
pub const MAX_BULK_IDS: usize = 10_000;

/// Jobs one step examines (one transaction): small enough that the SQLite
/// writer serves enqueues between chunks within milliseconds, large enough
/// that a million jobs take minutes, not hours (measured in
/// docs/benchmarks.md).
pub const BULK_CHUNK: u32 = 500;

/// A running operation whose latest step is older than this is taken for
/// abandoned (its node died) and resumed by the maintenance leader.
pub const BULK_STALE_AFTER: Duration = Duration::from_secs(10);

/// What a bulk operation does to each job it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Failed or cancelled jobs become available now (as a single retry).
    Retry,
    /// Jobs that have not ended are cancelled (running ones too: their
    /// worker's result is then refused, as for a single cancel).
    Cancel,
    /// Ended jobs (completed, failed, cancelled) are deleted. A job that
    /// has not ended is never deleted: cancel it first.
    Delete,
    /// Scheduled and retryable jobs become available now.
    RunNow,
}

impl BulkAction {
    /// Every action.
    pub const ALL: [BulkAction; 4] = [
        BulkAction::Retry,
        BulkAction::Cancel,
        BulkAction::Delete,
        BulkAction::RunNow,
    ];

    /// The name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Retry => "retry",
            BulkAction::Cancel => "cancel",
            BulkAction::Delete => "delete",
            BulkAction::RunNow => "run_now",
        }
    }

    /// Whether the action changes a job in `state`; jobs in other states
    /// are counted as matched and left alone.
    pub fn applies_to(self, state: JobState) -> bool {
        match self {
            BulkAction::Retry => state.can_retry(),
            BulkAction::Cancel => state.can_cancel(),
            BulkAction::Delete => state.is_terminal(),
            BulkAction::RunNow => matches!(state, JobState::Scheduled | JobState::Retryable),
        }
    }

    /// The states [`BulkAction::applies_to`] accepts, in life-cycle order.
    pub fn states(self) -> Vec<JobState> {
        JobState::ALL
            .into_iter()
            .filter(|s| self.applies_to(*s))
            .collect()
    }

    /// The state the action leaves a job in; `None` for a delete.
    pub fn to_state(self) -> Option<JobState> {
        match self {
            BulkAction::Retry | BulkAction::RunNow => Some(JobState::Available),
            BulkAction::Cancel => Some(JobState::Cancelled),
            BulkAction::Delete => None,
        }
    }

    /// The audit log's name for the action (`bulk.retry`, …).
    pub fn audit_name(self) -> String {
        format!("bulk.{}", self.as_str())
    }
}

impl fmt::Display for BulkAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BulkAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BulkAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?}; expected one of {}", action_names()))
    }
}

fn action_names() -> String {
    BulkAction::ALL.map(BulkAction::as_str).join(", ")
}

/// Where a bulk operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BulkState {
    /// Chunks remain; some node is stepping it (or will resume it).
    Running,
    /// Every matching job was examined.
    Done,
    /// Stopped for good; `error` says why.
    Failed,
}

impl BulkState {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkState::Running => "running",
            BulkState::Done => "done",
            BulkState::Failed => "failed",
        }
    }
}

impl FromStr for BulkState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [BulkState::Running, BulkState::Done, BulkState::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown bulk state {s:?}; expected running, done or failed"))
    }
}

/// The jobs a bulk operation applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BulkTarget {
    /// These jobs (sorted, highest first, no repeats), those that exist.
    Ids(Vec<JobId>),
    /// Every job the filter matches (`before` bounds the ids), among those
    /// that existed when the operation was created.
    Filter(ListFilter),
}

impl BulkTarget {
    /// The target as the audit log records it: the filter as JSON, or how
    /// many ids (never the ids themselves: up to 10,000 of them).
    pub fn summary(&self) -> String {
        match self {
            BulkTarget::Ids(ids) => format!("{} ids", ids.len()),
            BulkTarget::Filter(filter) => format!(
                "filter {}",
                serde_json::to_string(filter).unwrap_or_default()
            ),
        }
    }
}

/// A bulk operation to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBulk {
    /// What to do.
    pub action: BulkAction,
    /// To which jobs.
    pub target: BulkTarget,
    /// Who asked (the token's name), if auth is on.
    pub actor: Option<String>,
}

impl NewBulk {
    /// The one audit entry the whole operation records, written with the
    /// operation itself: `bulk.<action>`, its target's summary, and the
    /// bulk operation's id in `change` once stored.
    pub fn audit_entry(&self, id: BulkId) -> NewAuditEntry {
        let action = match self.action {
            BulkAction::Retry => AuditAction::BulkRetry,
            BulkAction::Cancel => AuditAction::BulkCancel,
            BulkAction::Delete => AuditAction::BulkDelete,
            BulkAction::RunNow => AuditAction::BulkRunNow,
        };
        NewAuditEntry {
            actor: self.actor.as_deref().unwrap_or(LOCAL_ACTOR).to_string(),
            action,
            target: self.target.summary(),
            change: serde_json::json!({ "bulk": id }),
        }
    }

    /// The first cursor (chunks take ids below it), given the highest job
    /// id in the store when the operation is created: jobs enqueued later
    /// are never swept in.
    pub fn first_cursor(&self, highest_id: Option<JobId>) -> JobId {
        match &self.target {
            BulkTarget::Ids(ids) => ids.first().map_or(0, |id| id.saturating_add(1)),
            BulkTarget::Filter(filter) => {
                let above_all = highest_id.unwrap_or(0).saturating_add(1);
                filter.before.map_or(above_all, |b| b.min(above_all))
            }
        }
    }
}

/// A bulk operation as stored: its target, counts and cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkOperation {
    /// Its id.
    pub id: BulkId,
    /// What it does.
    pub action: BulkAction,
    /// To which jobs.
    pub target: BulkTarget,
    /// Who asked for it (a token's name), when auth was on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Running, done or failed.
    pub state: BulkState,
    /// Jobs of the target examined so far.
    pub matched: u64,
    /// Of those, the jobs the action changed (the others were in a state
    /// it does not apply to, or a retry would have duplicated a live
    /// job's unique key).
    pub changed: u64,
    /// The next chunk takes target jobs with ids below this.
    pub cursor: JobId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its latest step ran (or it was created).
    pub updated_at: Timestamp,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BulkOperation {
    /// Records one step: `examined` jobs were looked at (at most `chunk`,
    /// the lowest id among them `lowest`), `matched` of them were targets
    /// (a filter's scanned conditions may reject some), `changed` of those
    /// changed. Fewer than a chunk examined means the target is exhausted.
    pub fn advance(
        &mut self,
        examined: u64,
        matched: u64,
        lowest: Option<JobId>,
        changed: u64,
        chunk: u32,
        now: Timestamp,
    ) {
        self.matched += matched;
        self.changed += changed;
        if let Some(lowest) = lowest {
            self.cursor = self.cursor.min(lowest);
        }
        self.updated_at = now;
        if examined < u64::from(chunk) {
            self.state = BulkState::Done;
            self.finished_at = Some(now);
        }
    }

    /// Whether it is running but no step has run for
    /// [`BULK_STALE_AFTER`]: its node is taken for dead.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        let stale = jiff::SignedDuration::try_from(BULK_STALE_AFTER).unwrap_or_default();
        self.state == BulkState::Running && self.updated_at.saturating_add(stale).ok() < Some(now)
    }
}

/// Body of `POST /v1/jobs/bulk`: an action and either a filter or ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// What to do: `retry`, `cancel`, `delete` or `run_now`.
    pub action: BulkAction,
    /// Every job this filter matches (`{}` matches every job); the same
    /// fields as `GET /v1/jobs`' parameters, without paging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ListFilter>,
    /// These jobs (1 to 10,000 ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 10000, min_items = 1))]
    pub ids: Option<Vec<JobId>>,
}

impl BulkRequest {
    /// Checks the request; answers the operation to create for `actor`.
    pub fn resolve(self, actor: Option<String>) -> Result<NewBulk, ValidationError> {
        let target = match (self.filter, self.ids) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "ids",
                    "give either `filter` or `ids`, not both",
                ));
            }
            (None, None) => {
                return Err(ValidationError::new(
                    "filter",
                    "give the jobs to act on: `filter` (`{}` for every job) or `ids`",
                ));
            }
            (Some(filter), None) => BulkTarget::Filter(check_filter(filter)?),
            (None, Some(ids)) => BulkTarget::Ids(check_ids(ids)?),
        };
        Ok(NewBulk {
            action: self.action,
            target,
            actor,
        })
    }
}

/// A filter fit for a bulk action: names and search text neither empty nor
/// too long, a positive `before` (a page size is refused when parsed: not a
/// field). The creation times need no check: any range is a valid one.
fn check_filter(filter: ListFilter) -> Result<ListFilter, ValidationError> {
    for (field, value) in [
        ("filter.kind", &filter.kind),
        ("filter.queue", &filter.queue),
        ("filter.tag", &filter.tag),
    ] {
        match value {
            Some(v) if v.is_empty() => {
                return Err(ValidationError::new(field, "must not be empty"));
            }
            Some(v) if v.len() > MAX_NAME_LEN => {
                return Err(ValidationError::new(
                    field,
                    format!("at most {MAX_NAME_LEN} bytes"),
                ));
            }
            _ => {}
        }
    }
    if filter.before.is_some_and(|b| b < 1) {
        return Err(ValidationError::new(
            "filter.before",
            "must be a job id (a positive integer)",
        ));
    }
    match &filter.text {
        Some(t) if t.is_empty() => {
            return Err(ValidationError::new("filter.text", "must not be empty"));
        }
        Some(t) if t.chars().count() > MAX_SEARCH => {
            return Err(ValidationError::new(
                "filter.text",
                format!("at most {MAX_SEARCH} characters"),
            ));
        }
        _ => {}
    }
    Ok(filter)
}

/// Ids fit for a bulk action: 1 to [`MAX_BULK_IDS`] positive ids, sorted
/// highest first without repeats.
fn check_ids(mut ids: Vec<JobId>) -> Result<Vec<JobId>, ValidationError> {
    if ids.is_empty() {
        return Err(ValidationError::new("ids", "must list at least one job id"));
    }
    if ids.len() > MAX_BULK_IDS {
        return Err(ValidationError::new(
            "ids",
            format!("at most {MAX_BULK_IDS} ids (got {})", ids.len()),
        ));
    }
    if let Some(i) = ids.iter().position(|id| *id < 1) {
        return Err(ValidationError::new(
            format!("ids[{i}]"),
            "must be a job id (a positive integer)",
        ));
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_touches_only_its_states() {
        use JobState::*;
        assert_eq!(BulkAction::Retry.states(), vec![Failed, Cancelled]);
        assert_eq!(
            BulkAction::Cancel.states(),
            vec![Scheduled, Available, Running, Retryable]
        );
        assert_eq!(
            BulkAction::Delete.states(),
            vec![Completed, Failed, Cancelled]
        );
        assert_eq!(BulkAction::RunNow.states(), vec![Scheduled, Retryable]);
        assert!(!BulkAction::Delete.applies_to(Running));
        for a in BulkAction::ALL {
            assert_eq!(a.as_str().parse::<BulkAction>().unwrap(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        let unknown = "purge".parse::<BulkAction>().unwrap_err();
        assert!(
            unknown.contains("retry, cancel, delete, run_now"),
            "{unknown}"
        );
    }

    fn request(body: serde_json::Value) -> Result<NewBulk, ValidationError> {
        serde_json::from_value::<BulkRequest>(body)
            .expect("parses")
            .resolve(None)
    }

    #[test]
    fn a_request_names_its_jobs_once() {
        let field = |body| request(body).unwrap_err().field;
        assert_eq!(field(serde_json::json!({"action": "retry"})), "filter");
        assert_eq!(
            field(serde_json::json!({"action": "retry", "ids": [1], "filter": {}})),
            "ids"
        );
        assert_eq!(
            field(serde_json::json!({"action": "retry", "ids": []})),
            "ids"
        );
        assert_eq!(
            field(serde_json::json!({"action": "retry", "ids": [3, 0]})),
            "ids[1]"
        );
        let many: Vec<i64> = (1..=MAX_BULK_IDS as i64 + 1).collect();
        assert_eq!(
            field(serde_json::json!({"action": "retry", "ids": many})),
            "ids"
        );
        assert_eq!(
            field(serde_json::json!({"action": "cancel", "filter": {"kind": ""}})),
            "filter.kind"
        );
        let ok = request(serde_json::json!({"action": "delete", "ids": [2, 9, 2]})).unwrap();
        assert_eq!(ok.target, BulkTarget::Ids(vec![9, 2]));
        assert_eq!(ok.first_cursor(Some(100)), 10);
        let all = request(serde_json::json!({"action": "run_now", "filter": {}})).unwrap();
        assert_eq!(all.first_cursor(Some(100)), 101);
        assert_eq!(all.first_cursor(None), 1);
        let below = request(serde_json::json!({"action": "run_now", "filter": {"before": 7}}));
        assert_eq!(below.unwrap().first_cursor(Some(100)), 7);
        for filter in [
            serde_json::json!({"stat": "failed"}),
            serde_json::json!({"limit": 5}),
        ] {
            assert!(
                serde_json::from_value::<BulkRequest>(
                    serde_json::json!({"action": "retry", "filter": filter})
                )
                .is_err(),
                "a misspelt or paging field must not widen the target: {filter}"
            );
        }
    }

    #[test]
    fn a_step_short_of_a_chunk_ends_the_operation() {
        let t0 = Timestamp::from_second(1_900_000_000).unwrap();
        let mut op = BulkOperation {
            id: 1,
            action: BulkAction::Retry,
            target: BulkTarget::Ids(vec![5]),
            actor: None,
            state: BulkState::Running,
            matched: 0,
            changed: 0,
            cursor: 100,
            created_at: t0,
            updated_at: t0,
            finished_at: None,
            error: None,
        };
        op.advance(10, 10, Some(60), 4, 10, t0);
        assert_eq!(
            (op.state, op.cursor, op.matched, op.changed),
            (BulkState::Running, 60, 10, 4)
        );
        assert!(!op.is_stale(t0 + BULK_STALE_AFTER));
        assert!(op.is_stale(t0 + BULK_STALE_AFTER + Duration::from_secs(1)));
        op.advance(3, 3, Some(2), 3, 10, t0);
        assert_eq!((op.state, op.cursor, op.matched), (BulkState::Done, 2, 13));
        assert_eq!(op.finished_at, Some(t0));
        assert!(!op.is_stale(t0 + Duration::from_secs(3600)));
    }
}
