//! Wire types of the HTTP API that the server and the client share: error
//! bodies (RFC 9457 problem details) and the envelopes around jobs, events
//! and batches.

use crate::JobState;
use crate::audit::{AuditEntry, AuditId};
use crate::auth::Token;
use crate::batch::Batch;
use crate::event::{Event, EventId};
use crate::job::{EnqueueRequest, Enqueued, Job, JobId};
use crate::store::{BreakerState, Stats};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// An error answer (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` means the status says it all.
    #[serde(rename = "type", default = "about_blank")]
    pub type_uri: String,
    /// The HTTP status phrase, e.g. "Unprocessable Entity".
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a human; starts with the field when one is at fault.
    pub detail: String,
    /// The request field at fault, e.g. `jobs[3].kind` or the query parameter `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For an unknown kind: the kinds the server is configured with, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_kinds: Vec<String>,
    /// For an unknown event name: the events the server is configured with, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_events: Vec<String>,
    /// For a 403: the scope the request needed (`read`, `enqueue`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scope: Option<String>,
    /// For a refused worker heartbeat (409): every lease listed, and why it
    /// is no longer held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<crate::remote::LostJob>,
    /// For a refused worker finish (409): what became of each finish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<crate::remote::FinishResult>,
}

fn about_blank() -> String {
    "about:blank".to_string()
}

impl Problem {
    /// A problem of `status` (with its phrase as `title`), not tied to a field.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: about_blank(),
            title: title.into(),
            status,
            detail: detail.into(),
            field: None,
            known_kinds: Vec::new(),
            known_events: Vec::new(),
            required_scope: None,
            lost: Vec::new(),
            results: Vec::new(),
        }
    }

    /// The same problem, naming the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

/// Most jobs sent together (`POST /v1/jobs/batch`, `POST /v1/batches`).
pub const MAX_BATCH: usize = 10_000;

/// Body of `POST /v1/jobs/batch`: jobs enqueued all or none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs, in order.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::jobs))]
    pub jobs: Vec<EnqueueRequest>,
}

/// Answer to a batch: one entry per submitted job, in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResponse {
    /// What became of each job.
    pub jobs: Vec<Enqueued>,
}

/// One page of `GET /v1/jobs`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<JobId>,
}

/// Answer of `GET /healthz` when the server and its store are up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok` (a failing check answers a problem instead).
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problem_round_trips_with_rfc_names() {
        let p = Problem::new(422, "Unprocessable Entity", "kind: unknown kind").with_field("kind");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["field"], "kind");
        assert!(v.get("known_kinds").is_none());
        assert_eq!(serde_json::from_value::<Problem>(v).unwrap(), p);
        assert_eq!(
            p.to_string(),
            "422 Unprocessable Entity: kind: unknown kind"
        );
    }

    #[test]
    fn problem_without_type_reads_as_about_blank() {
        let p: Problem =
            serde_json::from_value(json!({"title": "Not Found", "status": 404, "detail": "x"}))
                .unwrap();
        assert_eq!(p.type_uri, "about:blank");
    }
}

/// `GET /v1/nodes`: the live nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeList {
    /// Nodes that heartbeated within [`crate::store::NODE_ALIVE_WINDOW`], by name.
    pub nodes: Vec<crate::NodeInfo>,
}

/// `GET /v1/queues`: every queue with jobs or a pause record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueList {
    /// The queues, by name.
    pub queues: Vec<crate::QueueInfo>,
}

/// Body of `GET /v1/stats`: the job counts, plus every live node's
/// non-closed breakers (node name -> kind -> state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsResponse {
    /// Job counts (flattened, so clients reading only the counts still parse).
    #[serde(flatten)]
    pub stats: Stats,
    /// Open and half-open breakers by node, then kind.
    #[serde(default)]
    pub breakers: BTreeMap<String, BTreeMap<String, BreakerState>>,
}

/// Answer of `POST /v1/events`: the event and the listener jobs it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishResponse {
    /// The event stored (or the earlier one with the same unique key).
    pub event: Event,
    /// Its listener jobs, in listener order.
    pub jobs: Vec<Job>,
    /// True when nothing was stored because of the unique key.
    pub duplicate: bool,
}

/// Answer of `GET /v1/events/{id}`: the event and where each listener's job stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// The event.
    pub event: Event,
    /// Its listener jobs still stored (pruned ones are left out), in listener order.
    pub jobs: Vec<Job>,
}

/// One page of `GET /v1/events`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events on this page.
    pub events: Vec<Event>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<EventId>,
}

/// Body of `POST /v1/batches`: jobs enqueued together as one batch, and an
/// optional job to run once after the last of them ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBatchRequest {
    /// The jobs, in submission order (no `unique_key`).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::jobs))]
    pub jobs: Vec<EnqueueRequest>,
    /// Runs once after every job has ended; its payload reaches it as
    /// `payload` beside the batch's outcome (`batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete: Option<EnqueueRequest>,
}

/// Answer of `POST /v1/batches` and `GET /v1/batches/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchView {
    /// The batch with its counts by state.
    pub batch: Batch,
}

/// Answer of `GET /v1/batches/{id}?wait=` (or `?results=true`): the batch
/// and every job's result or error, in submission order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchResults {
    /// The batch with its counts by state; `finished_at` is set once all ended.
    pub batch: Batch,
    /// One entry per job, in submission order.
    pub results: Vec<JobResult>,
}

/// Where one job of a batch stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResult {
    /// The job.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// What it returned, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Its last attempt's error, once failed or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Job> for JobResult {
    fn from(job: Job) -> Self {
        let ended_badly = matches!(job.state, JobState::Failed | JobState::Cancelled);
        JobResult {
            id: job.id,
            error: job
                .errors
                .last()
                .filter(|_| ended_badly)
                .map(|e| e.error.clone()),
            kind: job.kind,
            state: job.state,
            result: job.result,
        }
    }
}

/// One page of `GET /v1/audit`, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// The entries on this page.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<AuditId>,
}

/// `GET /v1/tokens`: every token, by name (never a secret or a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<Token>,
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Unique name, shown in logs, listings and the audit log.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name))]
    pub name: String,
    /// What it may do.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::scopes))]
    pub scopes: Vec<String>,
}

/// Answer of `POST /v1/tokens`: the token and its secret, shown this once
/// (only its hash is stored). `Debug` hides the secret.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The token as stored.
    #[serde(flatten)]
    pub token: Token,
    /// Send as `Authorization: Bearer <secret>`.
    pub secret: String,
}

impl fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"…")
            .finish()
    }
}
