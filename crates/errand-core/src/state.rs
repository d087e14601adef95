//! The job state machine: which states exist and which moves between them
//! are legal. Engines and executors ask this module instead of deciding.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at` in the future.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker that holds a lease on it.
    Running,
    /// Failed an attempt; waits out its backoff before running again.
    Retryable,
    /// Ended with success.
    Completed,
    /// Ended with its attempts used up or a permanent error.
    Failed,
    /// Cancelled by a user before it ended.
    Cancelled,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name used in the API and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Terminal states never change again (except by an explicit retry).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    /// States a worker may claim from once `run_at` has passed.
    pub fn is_claimable(self) -> bool {
        matches!(
            self,
            JobState::Scheduled | JobState::Available | JobState::Retryable
        )
    }

    /// A user may cancel any job that has not ended.
    pub fn can_cancel(self) -> bool {
        !self.is_terminal()
    }

    /// A user may re-run a job that failed or was cancelled.
    pub fn can_retry(self) -> bool {
        matches!(self, JobState::Failed | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown state {0:?}; expected one of scheduled, available, running, retryable, completed, failed, cancelled"
)]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn only_failed_and_cancelled_can_be_retried() {
        let retryable: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.can_retry())
            .collect();
        assert_eq!(retryable, vec![JobState::Failed, JobState::Cancelled]);
        assert!(!JobState::Completed.can_cancel());
        assert!(JobState::Running.can_cancel());
    }
}
