//! What a Gearman worker's report means for a background job, per function
//! (`[gearman.functions.NAME]`, docs/gearman.md "Outcomes"). Gearman has
//! one way to say "it failed" (`WORK_FAIL`), one to say "it failed, and
//! here is why" (`WORK_EXCEPTION`), and a worker that vanishes mid-job; errand
//! has retry, permanent failure and deadly. The defaults retry all three.

use errand_core::Outcome;
use serde::Deserialize;

/// What one Gearman ending does to a background job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnEnd {
    /// Run it again after the kind's backoff; the attempt counts.
    #[default]
    Retry,
    /// Failed for good: no further attempt.
    Permanent,
    /// Not the job's fault (e.g. the worker's database is down): run it
    /// again at once without counting the attempt, and count it towards the
    /// kind's circuit breaker.
    Deadly,
}

impl OnEnd {
    /// The errand outcome, with `error` as the recorded reason.
    pub(super) fn outcome(self, error: String) -> Outcome {
        match self {
            OnEnd::Retry => Outcome::Retry(error),
            OnEnd::Permanent => Outcome::Permanent(error),
            OnEnd::Deadly => Outcome::Deadly(error),
        }
    }
}

/// `[gearman.functions.NAME]`: how that function's background jobs end
/// on each Gearman failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionOutcomes {
    /// The worker sent `WORK_FAIL`.
    pub on_fail: OnEnd,
    /// The worker sent `WORK_EXCEPTION`.
    pub on_exception: OnEnd,
    /// The worker's connection closed while it held the job (it crashed,
    /// was killed, or the network cut). `deadly` here lets a job that
    /// kills its worker run forever unless the breaker opens; `retry`
    /// (the default) spends its attempts.
    pub on_disconnect: OnEnd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_map_to_outcomes() {
        let f: FunctionOutcomes =
            serde_json::from_str(r#"{"on_fail": "permanent", "on_disconnect": "deadly"}"#).unwrap();
        assert_eq!(f.on_fail, OnEnd::Permanent);
        assert_eq!(f.on_exception, OnEnd::Retry, "unset: retry");
        assert_eq!(f.on_disconnect, OnEnd::Deadly);
        assert!(serde_json::from_str::<FunctionOutcomes>(r#"{"on_fail": "ignore"}"#).is_err());
        assert!(serde_json::from_str::<FunctionOutcomes>(r#"{"on_fial": "retry"}"#).is_err());
        assert_eq!(
            OnEnd::Deadly.outcome("x".into()),
            Outcome::Deadly("x".into())
        );
    }
}
