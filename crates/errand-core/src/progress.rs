//! A running attempt's progress: any JSON value its executor reports (a
//! command's status line, a pool worker's message, a handler's context),
//! bounded in size and kept on the job with the time it was reported
//! (docs/decisions/0025). Workers coalesce reports before they reach the
//! store ([`PROGRESS_INTERVAL`]); the store keeps the latest per attempt.

use crate::job::Lease;
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;

/// Largest progress value, in bytes of JSON text. A larger report is
/// refused and the job keeps its previous value: progress is a status for
/// people to read, not a place for results.
pub const MAX_PROGRESS_BYTES: usize = 4 << 10;

/// How often a worker writes the progress its jobs reported (the latest
/// value of each since the previous write), so a chatty job costs the
/// store at most about one write per interval.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// A progress value known to be within [`MAX_PROGRESS_BYTES`].
#[derive(Debug, Clone, PartialEq)]
pub struct Progress(Value);

/// A progress value over [`MAX_PROGRESS_BYTES`]; it was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "progress: {bytes} bytes of JSON is over the limit of {MAX_PROGRESS_BYTES}; the report was dropped"
)]
pub struct ProgressTooLarge {
    /// The size of the refused value's JSON text.
    pub bytes: usize,
}

impl Progress {
    /// Checks `value`'s size.
    pub fn new(value: Value) -> Result<Progress, ProgressTooLarge> {
        let bytes = serde_json::to_string(&value)
            .expect("JSON values always serialize")
            .len();
        if bytes > MAX_PROGRESS_BYTES {
            return Err(ProgressTooLarge { bytes });
        }
        Ok(Progress(value))
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The value, owned.
    pub fn into_value(self) -> Value {
        self.0
    }
}

/// The latest progress of one attempt, for [`crate::Store::record_progress`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressUpdate {
    /// The attempt that reported it; the update applies only while this
    /// lease is still the job's running claim.
    pub lease: Lease,
    /// What it reported.
    pub progress: Progress,
    /// When it reported it.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_up_to_the_limit_are_kept_and_larger_ones_refused() {
        // `"` + n characters + `"` is n + 2 bytes of JSON.
        let at_limit = json!("x".repeat(MAX_PROGRESS_BYTES - 2));
        assert_eq!(
            Progress::new(at_limit.clone()).unwrap().into_value(),
            at_limit
        );
        let over = json!("x".repeat(MAX_PROGRESS_BYTES - 1));
        let err = Progress::new(over).unwrap_err();
        assert_eq!(err.bytes, MAX_PROGRESS_BYTES + 1);
        assert!(err.to_string().starts_with("progress: 4097 bytes"), "{err}");
    }
}
