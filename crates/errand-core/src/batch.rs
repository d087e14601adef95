//! Batches: jobs enqueued together whose results are read together, and an
//! optional on-complete job that runs once, after the last of them ends,
//! with the batch's outcome in its payload.

use crate::JobState;
use crate::job::{JobId, NewJob};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A batch's id: increasing in creation order.
pub type BatchId = i64;

/// A batch ready to insert: jobs resolved and checked, none with a unique key.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatch {
    /// Its jobs, in submission order.
    pub jobs: Vec<NewJob>,
    /// Runs once every job has ended; its payload is replaced by
    /// [`on_complete_payload`] when it is enqueued.
    pub on_complete: Option<NewJob>,
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Batch {
    /// Its id.
    pub id: BatchId,
    /// When it was created.
    pub created_at: Timestamp,
    /// How many jobs it has.
    pub total: u64,
    /// Its jobs by state.
    pub counts: BTreeMap<JobState, u64>,
    /// When its last job ended; `None` while any is still to run.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// The on-complete job, once enqueued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_complete_job: Option<JobId>,
}

impl Batch {
    /// True once every job is terminal.
    pub fn is_finished(&self) -> bool {
        self.finished_at.is_some()
    }
}

/// The payload of a batch's on-complete job: the batch's outcome (its id and
/// how many of its jobs completed, failed or were cancelled) and the
/// caller's own `payload`.
pub fn on_complete_payload(id: BatchId, counts: &BTreeMap<JobState, u64>, payload: Value) -> Value {
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    json!({
        "batch": {
            "id": id,
            "total": counts.values().sum::<u64>(),
            "completed": count(JobState::Completed),
            "failed": count(JobState::Failed),
            "cancelled": count(JobState::Cancelled),
        },
        "payload": payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_on_complete_payload_carries_the_outcome() {
        let counts = BTreeMap::from([(JobState::Completed, 8), (JobState::Failed, 2)]);
        let p = on_complete_payload(4, &counts, json!({"report": 9}));
        assert_eq!(p["batch"]["id"], 4);
        assert_eq!(p["batch"]["total"], 10);
        assert_eq!(p["batch"]["completed"], 8);
        assert_eq!(p["batch"]["failed"], 2);
        assert_eq!(p["batch"]["cancelled"], 0);
        assert_eq!(p["payload"]["report"], 9);
    }
}
