//! The remote worker protocol (docs/worker-protocol.md): the wire types of
//! claim, heartbeat and finish that the server and the client share, their
//! bounds, and the rules that turn them into store requests (an outcome on
//! the wire into an [`Outcome`], a lost lease into its reason). No I/O.

use crate::batch::BatchId;
use crate::duration::serde_human;
use crate::job::{JobId, Lease, ValidationError, check_name};
use crate::progress::Progress;
use crate::{Job, JobState, Outcome};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Most jobs one claim may ask for.
pub const MAX_CLAIM_JOBS: u32 = 1000;
/// Longest a claim may be held waiting for a job (long poll).
pub const MAX_CLAIM_WAIT: Duration = Duration::from_secs(30);
/// Most kinds or queues one claim may name.
pub const MAX_CLAIM_NAMES: usize = 100;
/// Most leases one heartbeat or finish may carry.
pub const MAX_LEASES: usize = 1000;
/// Longest free-text field of a worker's identity (`library`, `version`).
const MAX_LABEL: usize = 100;
/// Longest `host`.
const MAX_HOST: usize = 255;

/// Who a remote worker is; sent with every request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkerIdentity {
    /// Unique and stable for the worker process's life (`<host>-<pid>`):
    /// the job's `worker` and the name in the node registry.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name))]
    pub id: String,
    /// The machine it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its process id.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The client library, e.g. `errand-php`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The library's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl WorkerIdentity {
    /// A worker called `id`, with nothing else said.
    pub fn new(id: impl Into<String>) -> Self {
        WorkerIdentity {
            id: id.into(),
            ..Default::default()
        }
    }

    /// Refuses an id that is not a name, or labels that are too long.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("worker.id", &self.id)?;
        for (field, value, max) in [
            ("worker.host", &self.host, MAX_HOST),
            ("worker.library", &self.library, MAX_LABEL),
            ("worker.version", &self.version, MAX_LABEL),
        ] {
            if let Some(value) = value
                && value.len() > max
            {
                return Err(ValidationError::new(
                    field,
                    format!("must be at most {max} bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// Body of `POST /v1/worker/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkClaim {
    /// The worker asking.
    pub worker: WorkerIdentity,
    /// Kinds it runs (each configured `remote = true`).
    pub kinds: Vec<String>,
    /// Queues to take from, in order; default: the kinds' configured queues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Most jobs to take (1–1000, default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    #[serde(default = "one")]
    pub max_jobs: u32,
    /// How long to hold the request when there is no job (0–30 s, default 0).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub wait: Option<Duration>,
}

fn one() -> u32 {
    1
}

impl Default for WorkClaim {
    /// No kinds yet, one job, no wait (as the wire's defaults).
    fn default() -> Self {
        WorkClaim {
            worker: WorkerIdentity::default(),
            kinds: Vec::new(),
            queues: Vec::new(),
            max_jobs: one(),
            wait: None,
        }
    }
}

impl WorkClaim {
    /// Checks the bounds of every field but the kinds' configuration
    /// (the server's to check); errors name the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.worker.validate()?;
        if self.kinds.is_empty() {
            return Err(ValidationError::new("kinds", "must list at least one kind"));
        }
        for (field, names) in [("kinds", &self.kinds), ("queues", &self.queues)] {
            if names.len() > MAX_CLAIM_NAMES {
                return Err(ValidationError::new(
                    field,
                    format!("at most {MAX_CLAIM_NAMES} (got {})", names.len()),
                ));
            }
            let mut seen = HashSet::new();
            for (i, name) in names.iter().enumerate() {
                check_name(&format!("{field}[{i}]"), name)?;
                if !seen.insert(name) {
                    return Err(ValidationError::new(
                        format!("{field}[{i}]"),
                        format!("{name:?} is listed twice"),
                    ));
                }
            }
        }
        if !(1..=MAX_CLAIM_JOBS).contains(&self.max_jobs) {
            return Err(ValidationError::new(
                "max_jobs",
                format!(
                    "must be between 1 and {MAX_CLAIM_JOBS} (got {})",
                    self.max_jobs
                ),
            ));
        }
        if let Some(wait) = self.wait
            && wait > MAX_CLAIM_WAIT
        {
            return Err(ValidationError::new(
                "wait",
                format!(
                    "must be at most {} (got {})",
                    crate::duration::format(MAX_CLAIM_WAIT),
                    crate::duration::format(wait)
                ),
            ));
        }
        Ok(())
    }
}

/// What a worker needs of a claimed job to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedJob {
    /// The job.
    pub id: JobId,
    /// The fencing token of this claim: send it back with `id`.
    pub fence: i64,
    /// The name of the work.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its arguments.
    pub payload: Value,
    /// This attempt's number (1-based; for people, not for fencing).
    pub attempt: u32,
    /// Attempts the job may use.
    pub max_attempts: u32,
    /// Its priority (lower ran first).
    pub priority: i16,
    /// Its labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// The attempt's time limit in milliseconds, for the worker to enforce.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// When the lease runs out unless a heartbeat extends it.
    pub lease_expires_at: Timestamp,
    /// The batch it belongs to.
    #[serde(default)]
    pub batch_id: Option<BatchId>,
    /// Its unique key, when it was enqueued with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
}

impl ClaimedJob {
    /// A job as a claim returned it, with its effective `timeout`.
    pub fn new(job: Job, timeout: Option<Duration>, lease_expires_at: Timestamp) -> ClaimedJob {
        ClaimedJob {
            id: job.id,
            fence: job.fence,
            timeout_ms: timeout.map(millis),
            lease_expires_at: job.lease_expires_at.unwrap_or(lease_expires_at),
            kind: job.kind,
            queue: job.queue,
            payload: job.payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            priority: job.priority,
            tags: job.tags,
            created_at: job.created_at,
            batch_id: job.batch_id,
            unique_key: job.unique_key,
        }
    }

    /// The lease to heartbeat and finish with.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            fence: self.fence,
        }
    }
}

/// A duration in whole milliseconds, as answers give them.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Answer of `POST /v1/worker/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkClaimed {
    /// The jobs now running under the worker's leases (possibly none).
    pub jobs: Vec<ClaimedJob>,
    /// How long a lease lasts from a claim or heartbeat, in milliseconds.
    pub lease_ms: u64,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// The worker is asked to drain: finish what it runs and exit.
    pub stop: bool,
}

/// One lease held, in a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeldJob {
    /// The job.
    pub id: JobId,
    /// The fence its claim gave.
    pub fence: i64,
    /// Its latest progress (any JSON up to 4 KiB), if it reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

/// Body of `POST /v1/worker/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkHeartbeat {
    /// The worker.
    pub worker: WorkerIdentity,
    /// Every lease it holds (0–1000).
    pub jobs: Vec<HeldJob>,
}

impl WorkHeartbeat {
    /// Checks the identity, the leases (valid, each once, at most
    /// [`MAX_LEASES`]) and the size of each progress; answers the leases
    /// and the checked progress values.
    pub fn validate(&self) -> Result<Vec<(Lease, Option<Progress>)>, ValidationError> {
        self.worker.validate()?;
        let leases = check_leases(self.jobs.iter().map(|j| (j.id, j.fence)), true)?;
        leases
            .into_iter()
            .zip(&self.jobs)
            .enumerate()
            .map(|(i, (lease, job))| {
                let progress = job
                    .progress
                    .clone()
                    .map(Progress::new)
                    .transpose()
                    .map_err(|e| {
                        ValidationError::new(format!("jobs[{i}].progress"), e.to_string())
                    })?;
                Ok((lease, progress))
            })
            .collect()
    }
}

/// Checks leases sent in a request: ids and fences of at least 1, each
/// lease once, at most [`MAX_LEASES`] (and at least one unless `may_be_empty`).
fn check_leases(
    leases: impl ExactSizeIterator<Item = (JobId, i64)>,
    may_be_empty: bool,
) -> Result<Vec<Lease>, ValidationError> {
    let n = leases.len();
    if n == 0 && !may_be_empty {
        return Err(ValidationError::new("jobs", "must list at least one job"));
    }
    if n > MAX_LEASES {
        return Err(ValidationError::new(
            "jobs",
            format!("at most {MAX_LEASES} per request (got {n})"),
        ));
    }
    let mut seen = HashSet::with_capacity(n);
    leases
        .enumerate()
        .map(|(i, (id, fence))| {
            if id < 1 {
                return Err(ValidationError::new(
                    format!("jobs[{i}].id"),
                    "must be at least 1",
                ));
            }
            if fence < 1 {
                return Err(ValidationError::new(
                    format!("jobs[{i}].fence"),
                    "must be at least 1",
                ));
            }
            if !seen.insert(id) {
                return Err(ValidationError::new(
                    format!("jobs[{i}].id"),
                    format!("job {id} is listed twice"),
                ));
            }
            Ok(Lease { id, fence })
        })
        .collect()
}

/// Why a worker no longer owns a job it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LostReason {
    /// The job was cancelled.
    Cancelled,
    /// The job has ended (completed or failed).
    Finished,
    /// The lease expired and the job was claimed again.
    Reclaimed,
    /// The lease expired and the job waits to run again.
    Expired,
    /// No job has this id.
    NotFound,
    /// The job never ran under this fence: the lease was never given out.
    NotHeld,
}

impl LostReason {
    /// Why `lease` is not held, given the job as it is now (`None`: no
    /// such job).
    pub fn of(lease: Lease, job: Option<&Job>) -> LostReason {
        match job {
            None => LostReason::NotFound,
            Some(job) => match job.state {
                JobState::Cancelled => LostReason::Cancelled,
                JobState::Completed | JobState::Failed => LostReason::Finished,
                _ if job.fence < lease.fence => LostReason::NotHeld,
                JobState::Running if job.fence > lease.fence => LostReason::Reclaimed,
                // Running under this very fence yet refused: its lease ran
                // out and a rescue is due; or it waits to run again.
                JobState::Running
                | JobState::Available
                | JobState::Scheduled
                | JobState::Retryable => LostReason::Expired,
            },
        }
    }
}

/// A lease the worker no longer holds, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LostJob {
    /// The job.
    pub id: JobId,
    /// The fence the worker sent.
    pub fence: i64,
    /// Why it is not the worker's any more.
    pub reason: LostReason,
    /// The job's state now (absent when it does not exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
}

impl LostJob {
    /// `lease` lost, given the job as it is now.
    pub fn new(lease: Lease, job: Option<&Job>) -> LostJob {
        LostJob {
            id: lease.id,
            fence: lease.fence,
            reason: LostReason::of(lease, job),
            state: job.map(|j| j.state),
        }
    }
}

/// Answer of `POST /v1/worker/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAnswer {
    /// Leases no longer held: abandon these jobs.
    pub lost: Vec<LostJob>,
    /// When the extended leases run out now.
    pub lease_expires_at: Timestamp,
    /// How long a lease lasts from a heartbeat, in milliseconds.
    pub lease_ms: u64,
    /// How often to heartbeat, in milliseconds.
    pub heartbeat_ms: u64,
    /// The worker is asked to drain: finish what it runs and exit.
    pub stop: bool,
}

/// The outcomes a remote worker may report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutcomeName {
    /// Done (with an optional `result`).
    Success,
    /// Failed: retry after backoff while attempts remain (`error`).
    Retry,
    /// Failed for good (`error`).
    Permanent,
    /// Not now: run again after `delay`, no attempt used.
    Snooze,
    /// Infrastructure down (`error`): back at once, no attempt used, counts
    /// towards the kind's breaker.
    Deadly,
    /// Given back unstarted: back at once, no attempt used.
    Handback,
}

/// One attempt's end, in a finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FinishedJob {
    /// The job.
    pub id: JobId,
    /// The fence its claim gave.
    pub fence: i64,
    /// How the attempt ended.
    pub outcome: OutcomeName,
    /// For `success`: the result to keep on the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// For `retry`, `permanent` and `deadly`: what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `snooze`: when to run again ("30s", or seconds).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
}

impl FinishedJob {
    /// A finish of `lease` with `outcome` (the client's constructor).
    pub fn new(lease: Lease, outcome: &Outcome) -> FinishedJob {
        let mut job = FinishedJob {
            id: lease.id,
            fence: lease.fence,
            outcome: OutcomeName::Success,
            result: None,
            error: None,
            delay: None,
        };
        match outcome {
            Outcome::Success(result) => job.result = result.clone(),
            Outcome::Retry(e) => (job.outcome, job.error) = (OutcomeName::Retry, Some(e.clone())),
            Outcome::Permanent(e) => {
                (job.outcome, job.error) = (OutcomeName::Permanent, Some(e.clone()))
            }
            Outcome::Deadly(e) => (job.outcome, job.error) = (OutcomeName::Deadly, Some(e.clone())),
            Outcome::Snooze(d) => (job.outcome, job.delay) = (OutcomeName::Snooze, Some(*d)),
            Outcome::Handback | Outcome::LeaseExpired => job.outcome = OutcomeName::Handback,
        }
        job
    }

    /// The outcome this finish reports; each outcome takes exactly its own
    /// fields. `at` places errors (`jobs[3]`).
    pub fn outcome(&self, at: &str) -> Result<Outcome, ValidationError> {
        let field = |name: &str| format!("{at}.{name}");
        let name = match self.outcome {
            OutcomeName::Success => "success",
            OutcomeName::Retry => "retry",
            OutcomeName::Permanent => "permanent",
            OutcomeName::Snooze => "snooze",
            OutcomeName::Deadly => "deadly",
            OutcomeName::Handback => "handback",
        };
        let takes = |key: &str| match key {
            "result" => self.outcome == OutcomeName::Success,
            "delay" => self.outcome == OutcomeName::Snooze,
            _ => matches!(
                self.outcome,
                OutcomeName::Retry | OutcomeName::Permanent | OutcomeName::Deadly
            ),
        };
        for (key, set) in [
            ("result", self.result.is_some()),
            ("error", self.error.is_some()),
            ("delay", self.delay.is_some()),
        ] {
            if set && !takes(key) {
                return Err(ValidationError::new(
                    field(key),
                    format!("not taken by outcome {name:?}"),
                ));
            }
        }
        let error = || match &self.error {
            Some(e) if !e.trim().is_empty() => Ok(e.clone()),
            _ => Err(ValidationError::new(
                field("error"),
                format!("outcome {name:?} needs an error saying what went wrong"),
            )),
        };
        Ok(match self.outcome {
            OutcomeName::Success => Outcome::Success(self.result.clone()),
            OutcomeName::Retry => Outcome::Retry(error()?),
            OutcomeName::Permanent => Outcome::Permanent(error()?),
            OutcomeName::Deadly => Outcome::Deadly(error()?),
            OutcomeName::Handback => Outcome::Handback,
            OutcomeName::Snooze => {
                let delay = self.delay.ok_or_else(|| {
                    ValidationError::new(field("delay"), "outcome \"snooze\" needs a delay")
                })?;
                crate::duration::in_range(delay)
                    .map_err(|e| ValidationError::new(field("delay"), e))?;
                Outcome::Snooze(delay)
            }
        })
    }
}

/// Body of `POST /v1/worker/finish`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkFinish {
    /// The worker.
    pub worker: WorkerIdentity,
    /// The attempts that ended (1–1000), each lease once.
    pub jobs: Vec<FinishedJob>,
}

impl WorkFinish {
    /// Checks the identity and the leases, and reads each outcome.
    pub fn validate(&self) -> Result<Vec<(Lease, Outcome)>, ValidationError> {
        self.worker.validate()?;
        let leases = check_leases(self.jobs.iter().map(|j| (j.id, j.fence)), false)?;
        leases
            .into_iter()
            .zip(&self.jobs)
            .enumerate()
            .map(|(i, (lease, job))| Ok((lease, job.outcome(&format!("jobs[{i}]"))?)))
            .collect()
    }
}

/// What became of one finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishResult {
    /// The job.
    pub id: JobId,
    /// The fence the worker sent.
    pub fence: i64,
    /// Whether it was applied; false means it changed nothing.
    pub applied: bool,
    /// Why not, when not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<LostReason>,
    /// The job's state now, when not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
}

impl FinishResult {
    /// An applied finish of `lease`.
    pub fn applied(lease: Lease) -> FinishResult {
        FinishResult {
            id: lease.id,
            fence: lease.fence,
            applied: true,
            reason: None,
            state: None,
        }
    }

    /// A refused finish of `lease`, given the job as it is now.
    pub fn refused(lease: Lease, job: Option<&Job>) -> FinishResult {
        let lost = LostJob::new(lease, job);
        FinishResult {
            id: lease.id,
            fence: lease.fence,
            applied: false,
            reason: Some(lost.reason),
            state: lost.state,
        }
    }
}

/// Answer of `POST /v1/worker/finish`: one result per finish, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FinishAnswer {
    /// What became of each finish, in the request's order.
    pub results: Vec<FinishResult>,
}

/// A remote worker as the node registry shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoteWorker {
    /// The machine it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its process id.
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its client library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// The library's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The kinds it last claimed.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The node whose API it talked to last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finish(body: Value) -> Result<Vec<(Lease, Outcome)>, String> {
        let f: WorkFinish = serde_json::from_value(body).map_err(|e| e.to_string())?;
        f.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn outcomes_take_exactly_their_fields() {
        let w = json!({"id": "w1"});
        let ok = finish(json!({"worker": w, "jobs": [
            {"id": 1, "fence": 1, "outcome": "success", "result": {"a": 1}},
            {"id": 2, "fence": 1, "outcome": "retry", "error": "x"},
            {"id": 3, "fence": 1, "outcome": "snooze", "delay": "30s"},
            {"id": 4, "fence": 1, "outcome": "deadly", "error": "db"},
            {"id": 5, "fence": 1, "outcome": "handback"},
        ]}))
        .unwrap();
        assert_eq!(ok[0].1, Outcome::Success(Some(json!({"a": 1}))));
        assert_eq!(ok[2].1, Outcome::Snooze(Duration::from_secs(30)));
        assert_eq!(ok[4].1, Outcome::Handback);
        let e = finish(json!({"worker": w, "jobs": [{"id": 1, "fence": 1, "outcome": "retry"}]}));
        assert!(e.unwrap_err().contains("jobs[0].error"));
        let e = finish(
            json!({"worker": w, "jobs": [{"id": 1, "fence": 1, "outcome": "success", "delay": 1}]}),
        );
        assert!(e.unwrap_err().contains("jobs[0].delay"));
        let e = finish(json!({"worker": w, "jobs": [{"id": 1, "fence": 1, "outcome": "maybe"}]}));
        assert!(e.unwrap_err().contains("unknown variant"));
        let e = finish(json!({"worker": w, "jobs": [
            {"id": 1, "fence": 1, "outcome": "handback"},
            {"id": 1, "fence": 1, "outcome": "handback"}]}));
        assert!(e.unwrap_err().contains("listed twice"));
        assert!(finish(json!({"worker": w, "jobs": []})).is_err());
    }

    #[test]
    fn claims_are_bounded() {
        let claim = |max_jobs: u32, wait: u64| WorkClaim {
            worker: WorkerIdentity::new("w"),
            kinds: vec!["k".into()],
            max_jobs,
            wait: Some(Duration::from_secs(wait)),
            ..Default::default()
        };
        assert!(claim(1, 30).validate().is_ok());
        assert_eq!(claim(0, 0).validate().unwrap_err().field, "max_jobs");
        assert_eq!(
            claim(MAX_CLAIM_JOBS + 1, 0).validate().unwrap_err().field,
            "max_jobs"
        );
        assert_eq!(claim(1, 31).validate().unwrap_err().field, "wait");
        let mut bad = claim(1, 0);
        bad.worker.id = "a b".into();
        assert_eq!(bad.validate().unwrap_err().field, "worker.id");
        let wire: WorkClaim =
            serde_json::from_value(json!({"worker": {"id": "w"}, "kinds": ["k"]})).unwrap();
        assert_eq!(wire.max_jobs, 1);
        assert_eq!(WorkClaim::default().max_jobs, 1);
    }

    #[test]
    fn lost_reasons_follow_the_job() {
        let lease = Lease { id: 1, fence: 3 };
        let mut job: Job = serde_json::from_value(json!({
            "id": 1, "kind": "k", "queue": "q", "payload": null, "priority": 0,
            "state": "running", "attempt": 1, "max_attempts": 3,
            "run_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z",
            "started_at": null, "finished_at": null, "timeout": null,
        }))
        .unwrap();
        assert_eq!(LostReason::of(lease, None), LostReason::NotFound);
        job.state = JobState::Running;
        job.fence = 4;
        assert_eq!(LostReason::of(lease, Some(&job)), LostReason::Reclaimed);
        job.state = JobState::Available;
        assert_eq!(LostReason::of(lease, Some(&job)), LostReason::Expired);
        job.state = JobState::Cancelled;
        assert_eq!(LostReason::of(lease, Some(&job)), LostReason::Cancelled);
        job.state = JobState::Completed;
        assert_eq!(LostReason::of(lease, Some(&job)), LostReason::Finished);
        job.state = JobState::Running;
        job.fence = 2;
        assert_eq!(LostReason::of(lease, Some(&job)), LostReason::NotHeld);
    }
}
