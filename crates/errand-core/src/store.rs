//! The `Store` contract: everything errand asks of a database. Each engine
//! (SQLite, PostgreSQL) implements it, and one conformance suite runs
//! against all of them. Engines apply [`crate::outcome::resolve`]; they
//! never decide a job's next state themselves.

use crate::audit::{AuditActor, AuditEntry, AuditFilter};
use crate::auth::{NewToken, Token, TokenHash};
use crate::batch::{Batch, BatchId, NewBatch};
use crate::bulk::{BulkId, BulkOperation, BulkState, NewBulk};
use crate::event::{Event, EventFilter, EventId, NewEvent, Published};
use crate::job::{Enqueued, Job, JobId, Lease, NewJob};
use crate::session::{NewSession, Session};
use crate::{Backoff, Clock, JobState, KindLimit, Outcome, Retention};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// What can go wrong talking to a store. Each variant's message is one
/// sentence; callers add context around it, never the variant's prefix again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The job is in a state that does not allow the action.
    #[error("job {id} is {state}; cannot {action} it")]
    Conflict {
        /// The job.
        id: JobId,
        /// Its current state.
        state: JobState,
        /// What was asked.
        action: &'static str,
    },
    /// Another process holds the database exclusively.
    #[error("{0}")]
    Locked(String),
    /// The database cannot be reached or refused the operation; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data that errand cannot read, or an engine bug.
    #[error("store error: {0}")]
    Internal(String),
    /// The store was asked for something its settings make impossible (a
    /// database URL that does not parse, say): the operator's to fix.
    #[error("invalid store settings: {0}")]
    Config(String),
    /// A name that must be unique (a token's) is already taken.
    #[error("{0} already exists")]
    Exists(String),
}

/// A request for a worker to take up to `limit` jobs from a queue.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The queue to take from.
    pub queue: String,
    /// Kinds the worker can run; empty means any.
    pub kinds: Vec<String>,
    /// Most jobs to take.
    pub limit: u32,
    /// Who takes them (shown on the job).
    pub worker: String,
    /// How long the lease lasts without a heartbeat.
    pub lease: Duration,
    /// Global limits of the requested kinds that have any (kinds absent
    /// here are unlimited). With `kinds` empty, these still apply.
    pub limits: BTreeMap<String, KindLimit>,
}

impl ClaimRequest {
    /// The limited kinds this request may take (all of `limits` when it
    /// names no kinds), by name; empty means the claim is unlimited.
    pub fn limited_kinds(&self) -> Vec<(&str, KindLimit)> {
        self.limits
            .iter()
            .filter(|(kind, limit)| {
                !limit.is_unlimited() && (self.kinds.is_empty() || self.kinds.contains(kind))
            })
            .map(|(kind, limit)| (kind.as_str(), *limit))
            .collect()
    }
}

/// What a claim took, and whether a kind limit held jobs back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claimed {
    /// The jobs now running under the caller's lease, at most `limit`.
    pub jobs: Vec<Job>,
    /// Set when due jobs of a limited kind were left because a limit was
    /// reached: the caller should claim again when a job of that kind
    /// ends, or at `Held::retry_at`.
    pub held: Option<Held>,
}

/// Due jobs were held back by a kind limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Held {
    /// When a rate limit lets the next job start, if a rate limit was the
    /// cause; `None` when only ending jobs (concurrency) can free room.
    pub retry_at: Option<jiff::Timestamp>,
}

/// The order a claim takes due jobs in, as the jobs table's columns for an
/// SQL `ORDER BY`: lower priority first, then earlier `run_at`, then lower
/// id. [`claim_key`] is the same order over jobs.
pub const CLAIM_ORDER: &str = "priority, run_at, id";

/// The SQL (SQLite and PostgreSQL alike) behind [`Store::oldest_available`],
/// with `{q}` for the queue's placeholder: a recursive skip scan over the
/// claim index's priorities, then for each the earliest `run_at` of an
/// available job (scheduled jobs sort after it, their `run_at` being in the
/// future). The index's own condition is repeated so both planners use it.
pub const OLDEST_AVAILABLE_SQL: &str = "\
WITH RECURSIVE p(priority) AS (
  SELECT MIN(priority) FROM jobs
   WHERE queue = {q} AND state IN ('scheduled', 'available', 'retryable')
  UNION ALL
  SELECT (SELECT MIN(priority) FROM jobs
           WHERE queue = {q} AND state IN ('scheduled', 'available', 'retryable')
             AND priority > p.priority)
    FROM p WHERE p.priority IS NOT NULL
)
SELECT MIN((SELECT run_at FROM jobs
             WHERE queue = {q} AND state IN ('scheduled', 'available', 'retryable')
               AND priority = p.priority AND state = 'available'
             ORDER BY run_at LIMIT 1))
  FROM p WHERE p.priority IS NOT NULL";

/// A job's place in the claim order ([`CLAIM_ORDER`]), for sorting.
pub fn claim_key(job: &Job) -> (i16, jiff::Timestamp, JobId) {
    (job.priority, job.run_at, job.id)
}

/// The end of one attempt, reported by the worker that holds its lease.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The attempt that ended.
    pub lease: Lease,
    /// How it ended.
    pub outcome: Outcome,
    /// The kind's backoff, for a retry.
    pub backoff: Backoff,
}

/// Largest payload, result or errors (bytes of JSON text as stored) a
/// listing carries; larger ones are left out and their sizes given in
/// [`Job::omitted`], so a page of `limit` jobs holds at most
/// `3 × limit × LIST_VALUE_CAP` bytes of user data whatever is stored.
pub const LIST_VALUE_CAP: u64 = 8 << 10;

/// How many jobs a listing with a scanned filter (tag, time range, text)
/// examines: the newest this many that match its indexed filters (state,
/// kind, queue, cursor). The scanned filters are checked on those alone,
/// so such a listing costs the same on a table of any size; the next page
/// continues below them ([`Store::scan_floor`]).
pub const SCAN_LIMIT: u32 = 10_000;

/// Longest `text` a job search takes, in characters.
pub const MAX_SEARCH: usize = 200;

/// Filters for listing jobs, newest first. `state`, `kind`, `queue` and
/// `before` use indexes; `tag`, `created_after`, `created_before` and
/// `text` are checked on at most [`SCAN_LIMIT`] rows (see there). Also the
/// target of a bulk action ([`crate::bulk::BulkTarget::Filter`]), so stored
/// and sent as JSON: a field it does not know is refused, never ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct ListFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub kind: Option<String>,
    /// Only jobs in this queue.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub queue: Option<String>,
    /// Only jobs with an id below this (the cursor of the previous page).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub before: Option<JobId>,
    /// Page size (a listing's alone: a bulk action takes every match).
    #[serde(skip)]
    pub limit: u32,
    /// Only jobs with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Only jobs created at or after this.
    #[serde(default)]
    pub created_after: Option<jiff::Timestamp>,
    /// Only jobs created before this.
    #[serde(default)]
    pub created_before: Option<jiff::Timestamp>,
    /// Only jobs whose payload or errors (as JSON text) contain this text,
    /// ignoring ASCII case.
    #[serde(default)]
    pub text: Option<String>,
}

impl ListFilter {
    /// Whether a scanned filter is set, so the listing looks at no more
    /// than [`SCAN_LIMIT`] rows.
    pub fn is_scanned(&self) -> bool {
        self.tag.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.text.is_some()
    }

    /// `text` as an SQL `LIKE` pattern (escape character `\`) that matches
    /// it anywhere: `%`, `_` and `\` in it match only themselves.
    pub fn text_pattern(&self) -> Option<String> {
        self.text.as_ref().map(|text| {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('%');
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push('%');
            pattern
        })
    }
}

/// Job counts by state, overall and per queue and kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// All jobs.
    pub total: BTreeMap<JobState, u64>,
    /// Per queue.
    pub queues: BTreeMap<String, BTreeMap<JobState, u64>>,
    /// Per kind.
    pub kinds: BTreeMap<String, BTreeMap<JobState, u64>>,
}

impl Stats {
    /// Adds `n` jobs of `queue`/`kind` in `state`.
    pub fn add(&mut self, queue: &str, kind: &str, state: JobState, n: u64) {
        *self.total.entry(state).or_default() += n;
        *self
            .queues
            .entry(queue.to_string())
            .or_default()
            .entry(state)
            .or_default() += n;
        *self
            .kinds
            .entry(kind.to_string())
            .or_default()
            .entry(state)
            .or_default() += n;
    }

    /// How many jobs are in `state`.
    pub fn in_state(&self, state: JobState) -> u64 {
        self.total.get(&state).copied().unwrap_or(0)
    }

    /// How many jobs of `kind` are in `state`.
    pub fn of_kind(&self, kind: &str, state: JobState) -> u64 {
        self.kinds
            .get(kind)
            .and_then(|by| by.get(&state))
            .copied()
            .unwrap_or(0)
    }
}

/// What the stored job counts say about a listing's state, kind and queue
/// filters, read by the engines before they list so the plan fits the
/// data: an SQL planner without statistics (SQLite) or with independent
/// ones (PostgreSQL) cannot know that, say, a queue has no available jobs
/// of a kind, and walks the whole table in id order looking for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListCounts {
    /// Jobs the state, kind and queue filters match together.
    pub matching: u64,
    /// Jobs in the filter's state alone, when it names one.
    pub state: Option<u64>,
    /// Jobs of the filter's kind alone, when it names one.
    pub kind: Option<u64>,
    /// Jobs in the filter's queue alone, when it names one.
    pub queue: Option<u64>,
    /// Every job.
    pub total: u64,
}

/// One of a listing's indexed filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListColumn {
    /// `state`.
    State,
    /// `kind`.
    Kind,
    /// `queue`.
    Queue,
}

impl ListColumn {
    /// The column's name in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            ListColumn::State => "state",
            ListColumn::Kind => "kind",
            ListColumn::Queue => "queue",
        }
    }
}

impl ListCounts {
    /// The counts from the five sums an engine reads for `filter`, in this
    /// order: jobs matching state, kind and queue together; in the state;
    /// of the kind; in the queue; all jobs. Only the filters given count.
    pub fn from_sums(filter: &ListFilter, sums: [i64; 5]) -> ListCounts {
        let n = |i: usize| u64::try_from(sums[i]).unwrap_or(0);
        ListCounts {
            matching: n(0),
            state: filter.state.map(|_| n(1)),
            kind: filter.kind.as_ref().map(|_| n(2)),
            queue: filter.queue.as_ref().map(|_| n(3)),
            total: n(4),
        }
    }

    /// True when the filters name a state, kind or queue and no job
    /// matches them: the listing is empty without reading a row.
    pub fn none_match(&self) -> bool {
        self.matching == 0 && (self.state.is_some() || self.kind.is_some() || self.queue.is_some())
    }

    /// With two or more of the filters given, the one that alone matches
    /// the fewest jobs: walking its index in id order reads the fewest rows.
    pub fn narrowest(&self) -> Option<ListColumn> {
        let given = [
            (ListColumn::State, self.state),
            (ListColumn::Kind, self.kind),
            (ListColumn::Queue, self.queue),
        ]
        .into_iter()
        .filter_map(|(column, n)| n.map(|n| (n, column)))
        .collect::<Vec<_>>();
        (given.len() >= 2)
            .then(|| given.iter().min_by_key(|(n, _)| *n).map(|(_, c)| *c))
            .flatten()
    }

    /// True when the matches are so few that walking `walked` rows (an
    /// index in id order, or the whole table) newest first until `wanted`
    /// match — about `wanted × walked ÷ matching` rows — would read more
    /// rows than finding all the matches by their filters and sorting them.
    pub fn sparse(&self, wanted: u64, walked: u64) -> bool {
        self.matching.saturating_mul(self.matching) < wanted.saturating_mul(walked)
    }
}

/// One queue: whether it is paused and its jobs by state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// A paused queue accepts jobs but no worker claims them.
    pub paused: bool,
    /// Its jobs by state.
    pub counts: BTreeMap<JobState, u64>,
}

impl QueueInfo {
    /// Every queue that has jobs (from [`Stats::queues`]) or a pause
    /// record (`paused`: name → paused), by name.
    pub fn merge(
        counts: BTreeMap<String, BTreeMap<JobState, u64>>,
        paused: BTreeMap<String, bool>,
    ) -> Vec<QueueInfo> {
        let mut queues: BTreeMap<String, QueueInfo> = counts
            .into_iter()
            .map(|(name, counts)| {
                let info = QueueInfo {
                    name: name.clone(),
                    paused: false,
                    counts,
                };
                (name, info)
            })
            .collect();
        for (name, paused) in paused {
            queues
                .entry(name.clone())
                .or_insert_with(|| QueueInfo {
                    name,
                    ..QueueInfo::default()
                })
                .paused = paused;
        }
        queues.into_values().collect()
    }
}

/// A node silent for this long is taken for dead and leaves the registry.
pub const NODE_ALIVE_WINDOW: Duration = Duration::from_secs(30);

/// One errand process as the node registry knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    /// Unique name (the worker name: `<host>-<pid>` by default).
    pub name: String,
    /// When the process started.
    pub started_at: jiff::Timestamp,
    /// Its latest heartbeat (set by the store on `register_node`).
    pub last_seen: jiff::Timestamp,
    /// Queues it works, with their concurrency.
    pub queues: BTreeMap<String, usize>,
    /// Jobs it was running at its latest heartbeat.
    pub running: u32,
    /// Where its HTTP API listens, if it serves one.
    pub http: Option<String>,
    /// Kinds whose breaker is not closed on this node (it is not claiming
    /// them, or only a probe), by kind.
    #[serde(default)]
    pub breakers: BTreeMap<String, BreakerState>,
    /// Set for a remote worker (one that claims over the HTTP worker
    /// protocol): its host, process and library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::remote::RemoteWorker>,
    /// An operator asked it to stop ([`Store::drain_node`]); kept by the
    /// store across its heartbeats ([`Store::register_node`] leaves it).
    #[serde(default)]
    pub draining: bool,
}

/// Where a kind's breaker stands on one node, when it is not closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakerPhase {
    /// The kind is not claimed until `retry_at`.
    Open,
    /// One probe job of the kind may run (or is running) to test recovery.
    HalfOpen,
}

/// A non-closed breaker of one kind on one node, as the registry shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerState {
    /// Open or half-open.
    pub state: BreakerPhase,
    /// When the breaker opened.
    pub since: jiff::Timestamp,
    /// When the next probe may run (absent while a probe is running).
    #[serde(default)]
    pub retry_at: Option<jiff::Timestamp>,
    /// The error of the latest deadly outcome.
    pub last_error: String,
    /// Deadly outcomes in a row, the one that opened it included.
    pub consecutive: u32,
}

/// Something that happened in the store, for waiters in this process.
#[derive(Debug, Clone)]
pub enum StoreEvent {
    /// Jobs became available in these queues.
    Enqueued(Arc<[String]>),
    /// These jobs reached a terminal state (a batch's last job among them
    /// means the batch finished).
    Finished(Arc<[JobId]>),
}

/// A durable home for jobs. Every method is one atomic change: it is done
/// and committed when it returns `Ok`, or it changed nothing.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts all jobs or none; a job whose `unique_key` matches a live job
    /// of the same kind returns that job with `duplicate: true` instead, as
    /// does one with `unique_for` set when a job of its kind and key was
    /// created within `unique_for` (in whatever state, newest such job).
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError>;

    /// One job by id.
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Jobs matching a filter, newest first. A payload, result or errors
    /// over [`LIST_VALUE_CAP`] is never loaded: it reads as `null` (errors
    /// as empty) and its size is in [`Job::omitted`]; smaller ones are whole.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError>;

    /// The stored counts for `filter`'s state, kind and queue (exact, read
    /// without touching the jobs table): how many jobs a bulk action on
    /// the filter would examine, before its scanned filters.
    async fn list_counts(&self, filter: &ListFilter) -> Result<ListCounts, StoreError>;

    /// For a filter with a scanned part ([`ListFilter::is_scanned`]): the
    /// lowest id among the [`SCAN_LIMIT`] rows a [`Store::list`] of it
    /// examined, where the next page continues; `None` when fewer rows
    /// match its indexed filters (the listing reached the end).
    async fn scan_floor(&self, filter: &ListFilter) -> Result<Option<JobId>, StoreError>;

    /// Takes up to `limit` due jobs of a queue in [`CLAIM_ORDER`]; each
    /// becomes `running` with its attempt and its fence raised by one and a
    /// lease of `lease`. For a kind in `req.limits`, never lets the kind's
    /// running jobs (on every node) exceed its `max_running` nor its starts
    /// within any window of its rate exceed the rate's count.
    async fn claim(&self, req: &ClaimRequest) -> Result<Claimed, StoreError>;

    /// Extends the leases still held; returns the ones that are no longer
    /// held (rescued, cancelled or finished elsewhere).
    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>, StoreError>;

    /// Ends attempts. Each is applied only if its lease is still current
    /// (fencing); the answer says, in order, which were applied.
    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>, StoreError>;

    /// Records the latest progress of attempts, each only if its lease is
    /// still the job's running claim (fenced like [`Store::finish`]); the
    /// answer says, in order, which were applied.
    async fn record_progress(
        &self,
        updates: Vec<crate::ProgressUpdate>,
    ) -> Result<Vec<bool>, StoreError>;

    /// Cancels a job that has not ended, recording a `job.cancel` audit
    /// entry by `actor` in the same transaction.
    async fn cancel(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError>;

    /// Makes a failed or cancelled job available again, with its attempt
    /// from [`crate::outcome::attempt_on_manual_retry`], recording a
    /// `job.retry` audit entry by `actor` in the same transaction.
    async fn retry(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError>;

    /// Counts by state.
    async fn stats(&self) -> Result<Stats, StoreError>;

    /// Puts running jobs whose lease has expired back to run (the attempt
    /// counts); returns their ids.
    async fn rescue_expired(&self) -> Result<Vec<JobId>, StoreError>;

    /// Marks scheduled and retryable jobs whose time has come as available.
    async fn promote_due(&self) -> Result<u64, StoreError>;

    /// Deletes terminal jobs older than the retention; events, finished
    /// batches and ended bulk operations older than the longest of its
    /// three job ages; audit entries older than `retention.audit`; and
    /// expired sessions. Returns how many jobs.
    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError>;

    /// A stream of what happens in this store, for local waiters.
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    /// Records a node's heartbeat (insert or update; `last_seen` becomes now).
    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError>;

    /// Asks the node called `name` to drain (a remote worker's answers then
    /// say `stop`); answers whether such a node is registered.
    async fn drain_node(&self, name: &str) -> Result<bool, StoreError>;

    /// Removes a node that is shutting down.
    async fn remove_node(&self, name: &str) -> Result<(), StoreError>;

    /// Nodes seen within `alive_within`, by name; older records are deleted.
    async fn nodes(&self, alive_within: Duration) -> Result<Vec<NodeInfo>, StoreError>;

    /// Takes or renews the leader lease of `role` for `node` for `ttl`:
    /// true when `node` holds it now. Only one node holds a role at a
    /// time; when its holder stops renewing, another takes it after `ttl`.
    async fn try_lead(&self, role: &str, node: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives up a leader lease at once (on shutdown), if `node` holds it.
    async fn resign(&self, role: &str, node: &str) -> Result<(), StoreError>;

    /// Pauses (no claim returns its jobs; enqueues still succeed) or
    /// resumes a queue, durably and for every node; resuming announces the
    /// queue as [`StoreEvent::Enqueued`] so idle workers look again. When
    /// this changes the queue (a queue never paused counts as resumed), a
    /// `queue.pause`/`queue.resume` audit entry by `actor` is recorded in
    /// the same transaction; a repeated pause or resume records none.
    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        actor: &AuditActor,
    ) -> Result<(), StoreError>;

    /// Every queue that has jobs or was ever paused, by name.
    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError>;

    /// When the longest-waiting available job of `queue` became due (its
    /// `run_at`), or `None` when none is available: now minus this is the
    /// queue's wait. Cheap on a large table (a skip scan of the claim
    /// index: one probe per distinct priority).
    async fn oldest_available(&self, queue: &str) -> Result<Option<jiff::Timestamp>, StoreError>;

    /// The newest job of one of `kinds` whose unique key is `key` and that
    /// has not ended (each kind has at most one such job: see
    /// [`Store::enqueue`]), or `None`. One probe of the live-unique index
    /// per kind.
    async fn live_by_unique(&self, kinds: &[String], key: &str) -> Result<Option<Job>, StoreError>;

    /// How many jobs of each of `kinds` wait to run (scheduled, available
    /// or retryable), by kind and priority; kinds and priorities without
    /// one are absent. Reads the claim index's entry of every waiting job
    /// once (no stored count has priorities): for an operator's command,
    /// not a hot path.
    async fn waiting_by_priority(
        &self,
        kinds: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError>;

    /// Stores an event and enqueues one job per listener, all or nothing;
    /// each listener job's payload becomes [`Event::listener_payload`].
    /// With a `unique_key` already used by an event of the same name, stores
    /// nothing and returns that event with `duplicate: true`.
    async fn publish(
        &self,
        event: NewEvent,
        listeners: Vec<NewJob>,
    ) -> Result<Published, StoreError>;

    /// One event by id.
    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError>;

    /// Events matching a filter, newest first.
    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError>;

    /// Inserts a batch and its jobs, all or nothing. Once every job of the
    /// batch is terminal (by any path: finish, cancel, rescue), the batch's
    /// `finished_at` is set and its on-complete job (payload from
    /// [`crate::batch::on_complete_payload`]) is enqueued, in the same
    /// transaction as the last job's end: exactly once, on any number of nodes.
    async fn create_batch(&self, batch: NewBatch) -> Result<Batch, StoreError>;

    /// One batch by id, with its counts by state.
    async fn batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError>;

    /// The jobs of a batch in submission order.
    async fn batch_jobs(&self, id: BatchId) -> Result<Vec<Job>, StoreError>;

    /// Records that schedule `name` fired at `tick` and enqueues `job` (if
    /// any), atomically, unless a tick at or after `tick` is already
    /// recorded for `name`: then nothing changes and the answer is `None`.
    /// Several nodes may race on one tick; exactly one enqueues.
    async fn record_tick(
        &self,
        name: &str,
        tick: jiff::Timestamp,
        job: Option<NewJob>,
    ) -> Result<Option<Enqueued>, StoreError>;

    /// The latest recorded tick of every schedule, by name.
    async fn ticks(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError>;

    /// Stores a new API token and a `token.create` audit entry by `actor`,
    /// together; a name in use answers [`StoreError::Exists`] and records
    /// nothing.
    async fn create_token(&self, token: NewToken, actor: &AuditActor) -> Result<Token, StoreError>;

    /// The token whose secret has `hash`, if one exists (revoked ones do not).
    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>, StoreError>;

    /// Every token, by name.
    async fn tokens(&self) -> Result<Vec<Token>, StoreError>;

    /// Deletes the token called `name`, recording a `token.revoke` audit
    /// entry by `actor` in the same transaction; answers whether there was
    /// one (none: nothing recorded).
    async fn revoke_token(&self, name: &str, actor: &AuditActor) -> Result<bool, StoreError>;

    /// Audit entries matching `filter`, newest (highest id) first.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Records that token `name` was used now, unless a use within
    /// [`crate::auth::LAST_USE_INTERVAL`] is already recorded.
    async fn record_token_use(&self, name: &str) -> Result<(), StoreError>;

    /// Opens a session of the token whose hash is `session.token_hash`,
    /// expiring `session.ttl` from now; `None` (nothing stored) when no
    /// such token exists.
    async fn create_session(&self, session: NewSession) -> Result<Option<Session>, StoreError>;

    /// The session whose secret has `hash`, only while it is unexpired and
    /// the token it was opened with still exists (a revoked token, or a new
    /// one of the same name, ends it).
    async fn session_by_hash(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError>;

    /// Deletes the session whose secret has `hash` (logout); answers
    /// whether there was one.
    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError>;

    /// Stores a bulk operation, `running`, its cursor just above the
    /// highest job id now (see [`NewBulk::first_cursor`]); no job changes yet.
    async fn create_bulk(&self, bulk: NewBulk) -> Result<BulkOperation, StoreError>;

    /// Applies a running bulk operation to its next `chunk` target jobs
    /// (ids below its cursor, highest first) and advances its cursor and
    /// counts ([`BulkOperation::advance`]), in one transaction; answers the
    /// operation as it is now. Several callers may step one operation: each
    /// step takes the cursor the previous one left. A finished operation
    /// is answered unchanged; an unknown id is an `Internal` error.
    async fn step_bulk(&self, id: BulkId, chunk: u32) -> Result<BulkOperation, StoreError>;

    /// Marks a running bulk operation failed with `error`.
    async fn fail_bulk(&self, id: BulkId, error: &str) -> Result<(), StoreError>;

    /// One bulk operation by id.
    async fn bulk(&self, id: BulkId) -> Result<Option<BulkOperation>, StoreError>;

    /// Bulk operations, newest first: at most `limit`, only those in
    /// `state` when given.
    async fn bulks(
        &self,
        state: Option<BulkState>,
        limit: u32,
    ) -> Result<Vec<BulkOperation>, StoreError>;

    /// The clock this store reads for every timestamp it writes and every
    /// deadline it checks; whatever runs on the store reads the same one.
    fn clock(&self) -> Clock;

    /// Throughput history (kept [`Retention::history`]) summed into the
    /// query's steps, oldest first; only steps with activity are returned.
    async fn throughput(
        &self,
        query: &crate::history::ThroughputQuery,
    ) -> Result<Vec<crate::history::ThroughputBucket>, StoreError>;

    /// Lifetime totals per (kind, queue), never pruned: counters made from
    /// them only go up, across restarts and on every node alike.
    async fn totals(&self) -> Result<Vec<crate::history::Total>, StoreError>;

    /// For each queue with due jobs (available, or scheduled/retryable
    /// whose time has come), when its longest-waiting one could first run.
    async fn oldest_due(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError>;

    /// Writes the history counts this process holds in memory now
    /// (engines write them about once a second on their own; a scrape and
    /// a shutdown want them at once).
    async fn flush_history(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// This node's view of the store's own work: commit latencies and
    /// writes waiting.
    fn load(&self) -> crate::load::StoreLoad {
        crate::load::StoreLoad::default()
    }

    /// Whether writes are failing, for health checks. Engines know nothing
    /// of it; [`crate::health::WriteTracked`] keeps it.
    fn write_health(&self) -> crate::health::WriteHealth {
        crate::health::WriteHealth::default()
    }
}

#[cfg(test)]
mod tests {
    use super::{ListColumn, ListCounts};

    #[test]
    fn a_listing_plan_follows_the_counts() {
        let counts = ListCounts {
            matching: 0,
            state: Some(100_000),
            kind: Some(1_000_000),
            queue: Some(250_000),
            total: 1_000_000,
        };
        assert!(counts.none_match());
        assert_eq!(counts.narrowest(), Some(ListColumn::State));
        let unfiltered = ListCounts {
            matching: 0,
            total: 0,
            ..ListCounts::default()
        };
        assert!(
            !unfiltered.none_match(),
            "an empty store lists nothing anyway"
        );
        let one = ListCounts {
            matching: 10,
            kind: Some(10),
            total: 1_000_000,
            ..ListCounts::default()
        };
        assert_eq!(one.narrowest(), None, "one filter: its own index");
        // 51 wanted of a million: about 7,100 matches is where walking in id
        // order starts to pay.
        assert!(one.sparse(51, one.total));
        let dense = ListCounts {
            matching: 700_000,
            ..one
        };
        assert!(!dense.sparse(51, dense.total));
        assert!(
            ListCounts {
                matching: 7_000,
                ..one
            }
            .sparse(51, 1_000_000)
        );
        assert!(
            !ListCounts {
                matching: 8_000,
                ..one
            }
            .sparse(51, 1_000_000)
        );
        // Half of the 100,000 failed jobs, 10,000 wanted: walking the
        // failed jobs in id order reads 20,000.
        let half = ListCounts {
            matching: 50_000,
            ..one
        };
        assert!(!half.sparse(10_000, 100_000));
        assert!(half.sparse(10_000, 1_000_000));
    }
}
