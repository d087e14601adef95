//! Per-kind policy (defaults for new jobs and retry behaviour) and the
//! retention of terminal jobs. Configuration fills these; rules read them.

use crate::duration::serde_human;
use crate::job::{MAX_ATTEMPTS_LIMIT, ValidationError, check_duration, check_name};
use crate::limit::KindLimit;
use crate::{Backoff, JobState};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The queue jobs go to when nothing else says.
pub const DEFAULT_QUEUE: &str = "default";

/// How jobs of one kind are enqueued and retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KindPolicy {
    /// Queue for new jobs.
    pub queue: String,
    /// Priority for new jobs (lower runs first).
    pub priority: i16,
    /// Attempts a new job may use.
    pub max_attempts: u32,
    /// Time limit of one attempt.
    #[serde(with = "serde_human::option")]
    pub timeout: Option<Duration>,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Default `unique_for` of jobs enqueued with a unique key.
    #[serde(with = "serde_human::option")]
    pub unique_for: Option<Duration>,
    /// Global limits on running and starting jobs of the kind.
    #[serde(flatten)]
    pub limit: KindLimit,
    /// Run by remote workers over the HTTP worker protocol, never by an
    /// executor of errand's own nodes (`remote = true`).
    pub remote: bool,
}

impl Default for KindPolicy {
    fn default() -> Self {
        KindPolicy {
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            max_attempts: 25,
            timeout: None,
            backoff: Backoff::default(),
            unique_for: None,
            limit: KindLimit::default(),
            remote: false,
        }
    }
}

impl KindPolicy {
    /// Refuses a policy no job could be given, naming the field: the same
    /// limits [`crate::EnqueueRequest::resolve`] applies, plus the backoff's.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_name("queue", &self.queue)?;
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        for (field, d) in [("timeout", self.timeout), ("unique_for", self.unique_for)] {
            if let Some(d) = d {
                check_duration(field, d)?;
                if d.is_zero() {
                    return Err(ValidationError::new(field, "must be greater than zero"));
                }
            }
        }
        self.backoff.validate()?;
        if self.limit.max_running == Some(0) {
            return Err(ValidationError::new("max_running", "must be at least 1"));
        }
        Ok(())
    }
}

/// How long terminal jobs (and audit entries) are kept before pruning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Completed jobs.
    #[serde(with = "serde_human")]
    pub completed: Duration,
    /// Failed jobs.
    #[serde(with = "serde_human")]
    pub failed: Duration,
    /// Cancelled jobs.
    #[serde(with = "serde_human")]
    pub cancelled: Duration,
    /// Audit log entries (`[retention] audit`).
    #[serde(with = "serde_human")]
    pub audit: Duration,
    /// Throughput history rows (per-minute counts); lifetime totals are
    /// never pruned.
    #[serde(with = "serde_human")]
    pub history: Duration,
}

impl Retention {
    /// Each terminal state with how long its jobs are kept.
    pub fn by_state(&self) -> [(JobState, Duration); 3] {
        [
            (JobState::Completed, self.completed),
            (JobState::Failed, self.failed),
            (JobState::Cancelled, self.cancelled),
        ]
    }

    /// The longest of the three: events and finished batches are kept this
    /// long, so a job's event or batch outlives the job.
    pub fn longest(&self) -> Duration {
        self.completed.max(self.failed).max(self.cancelled)
    }
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Retention {
            completed: Duration::from_secs(7 * DAY),
            failed: Duration::from_secs(30 * DAY),
            cancelled: Duration::from_secs(30 * DAY),
            audit: Duration::from_secs(90 * DAY),
            history: Duration::from_secs(14 * DAY),
        }
    }
}
