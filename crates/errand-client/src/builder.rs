//! A short way to write an [`EnqueueRequest`]:
//! `job("resize", json!({...})).queue("images").delay(Duration::from_secs(5))`.

use errand_core::EnqueueRequest;
use jiff::Timestamp;
use serde_json::Value;
use std::time::Duration;

/// Starts a job of `kind` with `payload`; everything else comes from the kind's policy.
pub fn job(kind: impl Into<String>, payload: Value) -> JobBuilder {
    JobBuilder(EnqueueRequest {
        kind: kind.into(),
        payload,
        ..Default::default()
    })
}

/// An [`EnqueueRequest`] being written; pass it to [`crate::Client::enqueue`]
/// or turn it into the request with `.into()`.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct JobBuilder(EnqueueRequest);

impl JobBuilder {
    /// The lane to run in.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.0.queue = Some(queue.into());
        self
    }

    /// Lower runs first.
    pub fn priority(mut self, priority: i16) -> Self {
        self.0.priority = Some(priority);
        self
    }

    /// Start after this long.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.0.delay = Some(delay);
        self
    }

    /// Start at this time.
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.0.run_at = Some(at);
        self
    }

    /// Attempts it may use.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = Some(n);
        self
    }

    /// Time limit of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.0.timeout = Some(timeout);
        self
    }

    /// Deduplicates among this kind's live jobs.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.0.unique_key = Some(key.into());
        self
    }

    /// Adds a label.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.0.tags.push(tag.into());
        self
    }
}

impl From<JobBuilder> for EnqueueRequest {
    fn from(b: JobBuilder) -> Self {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_the_request() {
        let req: EnqueueRequest = job("resize", json!({"w": 10}))
            .queue("images")
            .priority(-1)
            .unique_key("img-1")
            .tag("a")
            .into();
        assert_eq!(req.kind, "resize");
        assert_eq!(req.queue.as_deref(), Some("images"));
        assert_eq!(req.priority, Some(-1));
        assert_eq!(req.unique_key.as_deref(), Some("img-1"));
        assert_eq!(req.tags, ["a"]);
        assert_eq!(req.delay, None);
    }
}
