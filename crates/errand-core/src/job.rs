//! The job model: what a caller submits ([`EnqueueRequest`]), what a store
//! inserts after defaults are applied ([`NewJob`]), and what it returns
//! ([`Job`]). Validation of submitted fields lives here so the HTTP API, the
//! CLI and the library refuse the same things with the same words.

use crate::JobState;
use crate::batch::BatchId;
use crate::duration::{self, serde_human};
use crate::policy::KindPolicy;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A job's id: increasing in enqueue order.
pub type JobId = i64;

/// The most attempts a job may be given.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;
/// Longest kind, queue or unique key.
pub const MAX_NAME_LEN: usize = 255;
/// Most tags on one job.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// A field the caller got wrong, named so an API error can point at it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Path of the offending field, e.g. `jobs[3].priority`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, with its field placed under `prefix` (e.g. `jobs[2]`).
    pub fn within(self, prefix: &str) -> Self {
        ValidationError {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}

/// The error of one attempt, kept on the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptError {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// When it was recorded.
    pub at: Timestamp,
    /// What the executor said.
    pub error: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The name of the work; configuration maps it to an executor.
    pub kind: String,
    /// The lane it runs in.
    pub queue: String,
    /// Arguments for the executor.
    pub payload: Value,
    /// Lower runs first.
    pub priority: i16,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts used so far, the running one included: a snooze, a deadly
    /// outcome or a hand-back gives its attempt back.
    pub attempt: u32,
    /// Attempts it may use, as enqueued; the store never changes it.
    pub max_attempts: u32,
    /// Earliest time it may run.
    pub run_at: Timestamp,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When its latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// Per-attempt time limit, overriding the kind's.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Deduplication key among this kind's live jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the executor returned on success.
    #[serde(default)]
    pub result: Option<Value>,
    /// Every failed attempt's error, oldest first.
    #[serde(default)]
    pub errors: Vec<AttemptError>,
    /// While running: when the worker's lease ends unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// While running: the worker that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The batch it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<BatchId>,
    /// The latest progress its latest attempt reported (any JSON value of
    /// at most 4 KiB), kept once the attempt ended; `null` when it reported
    /// none. A new attempt starts without one.
    #[serde(default)]
    pub progress: Option<Value>,
    /// When that progress was reported.
    #[serde(default)]
    pub progress_at: Option<Timestamp>,
    /// The fencing token of its latest claim (see [`Lease`]); internal to
    /// the store and its workers, so never serialized.
    #[serde(skip)]
    pub fence: i64,
    /// In a listing: the values left out for being over
    /// [`crate::store::LIST_VALUE_CAP`], with their sizes. Empty elsewhere.
    #[serde(default, skip_serializing_if = "Omitted::is_empty")]
    pub omitted: Omitted,
}

/// The values a listing left out of a job (`null` payload or result, empty
/// errors in their place), each with the size of its JSON text in bytes.
/// `GET /v1/jobs/{id}` always has them in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Omitted {
    /// The payload's size, when it was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<u64>,
    /// The result's size, when it was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<u64>,
    /// The errors' size (all attempts together), when they were left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
}

impl Omitted {
    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        *self == Omitted::default()
    }

    /// What a listing leaves out, given the sizes of the stored values
    /// (`None` for a missing result): those over the cap.
    pub fn over_cap(payload: Option<u64>, result: Option<u64>, errors: Option<u64>) -> Omitted {
        let over = |size: Option<u64>| size.filter(|&n| n > crate::store::LIST_VALUE_CAP);
        Omitted {
            payload: over(payload),
            result: over(result),
            errors: over(errors),
        }
    }
}

impl Job {
    /// The job with the progress stored for it: `progress` and its time
    /// were reported under the claim `fence`, so they are the job's only
    /// while that claim is its latest (a new attempt starts without).
    pub fn with_progress(
        self,
        progress: Option<Value>,
        at: Option<Timestamp>,
        fence: Option<i64>,
    ) -> Job {
        if fence != Some(self.fence) {
            return self;
        }
        Job {
            progress,
            progress_at: at,
            ..self
        }
    }

    /// The lease a worker holds while this attempt runs.
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            fence: self.fence,
        }
    }
}

/// The pair that fences a running attempt: only the holder of the job's
/// latest claim may change the job. The fence grows by one on every claim
/// and never goes back, unlike the attempt count, which a refund lowers
/// (docs/decisions/0015).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The fencing token of the claim the worker holds.
    pub fence: i64,
}

/// A job ready to insert: every default applied, every field checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The name of the work.
    pub kind: String,
    /// The lane it runs in.
    pub queue: String,
    /// Arguments for the executor.
    pub payload: Value,
    /// Lower runs first.
    pub priority: i16,
    /// Earliest time it may run; `None` means now.
    pub run_at: Option<Timestamp>,
    /// Attempts it may use.
    pub max_attempts: u32,
    /// Per-attempt time limit.
    pub timeout: Option<Duration>,
    /// Deduplication key among this kind's live jobs.
    pub unique_key: Option<String>,
    /// With a unique key: for this long after the first job with the key
    /// was enqueued, it is returned even once it has ended.
    pub unique_for: Option<Duration>,
    /// Free-form labels.
    pub tags: Vec<String>,
}

impl NewJob {
    /// A job of `kind` with `payload` and the built-in defaults.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        EnqueueRequest {
            kind: kind.into(),
            payload,
            ..Default::default()
        }
        // Without run_at or delay, resolving does not read the time.
        .resolve(&KindPolicy::default(), Timestamp::UNIX_EPOCH)
        .expect("defaults are valid")
    }
}

/// The outcome of inserting one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The job inserted, or the live job with the same unique key.
    #[serde(flatten)]
    pub job: Job,
    /// True when nothing was inserted because of the unique key.
    pub duplicate: bool,
}

/// A job as a caller submits it over the API, the CLI or the client; every
/// field but `kind` is optional and filled from the kind's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The name of the work.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::name))]
    pub kind: String,
    /// Arguments for the executor (JSON `null` when absent).
    #[serde(default)]
    pub payload: Value,
    /// Lane; default from the kind, else `default`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_name))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Lower runs first; default from the kind, else 0.
    #[cfg_attr(feature = "openapi", schema(minimum = -32768, maximum = 32767))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i16>,
    /// Absolute start time (RFC 3339). Exclusive with `delay`.
    #[serde(
        default,
        deserialize_with = "deserialize_run_at",
        skip_serializing_if = "Option::is_none"
    )]
    pub run_at: Option<Timestamp>,
    /// Start after this long ("30s", or seconds). Exclusive with `run_at`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// Attempts it may use; default from the kind.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::max_attempts))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt time limit; default from the kind.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_positive_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Deduplication key among this kind's live jobs.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_key))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// With `unique_key`: how long after the first job the key keeps
    /// returning it, even once it has ended; default from the kind.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::optional_positive_duration))]
    #[serde(
        with = "serde_human::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unique_for: Option<Duration>,
    /// Free-form labels.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::tags))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl EnqueueRequest {
    /// Applies the kind's defaults and checks every field; `delay` and
    /// `run_at` count from `now`.
    pub fn resolve(self, policy: &KindPolicy, now: Timestamp) -> Result<NewJob, ValidationError> {
        check_name("kind", &self.kind)?;
        let queue = self.queue.unwrap_or_else(|| policy.queue.clone());
        check_name("queue", &queue)?;
        let run_at = match (self.run_at, self.delay) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "delay",
                    "give either run_at or delay, not both",
                ));
            }
            (Some(at), None) => Some(check_run_at("run_at", at, now)?),
            (None, Some(d)) => {
                let d = check_duration("delay", d)?;
                Some(
                    duration::after(now, d)
                        .ok_or_else(|| ValidationError::new("delay", "is past the end of time"))?,
                )
            }
            (None, None) => None,
        };
        let max_attempts = self.max_attempts.unwrap_or(policy.max_attempts);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        let timeout = self.timeout.or(policy.timeout);
        if let Some(t) = timeout {
            check_duration("timeout", t)?;
            if t.is_zero() {
                return Err(ValidationError::new("timeout", "must be greater than zero"));
            }
        }
        if let Some(key) = &self.unique_key
            && (key.is_empty() || key.len() > MAX_NAME_LEN)
        {
            return Err(ValidationError::new(
                "unique_key",
                format!("must be 1 to {MAX_NAME_LEN} bytes"),
            ));
        }
        if self.unique_for.is_some() && self.unique_key.is_none() {
            return Err(ValidationError::new(
                "unique_for",
                "needs a unique_key to deduplicate on",
            ));
        }
        if let Some(d) = self.unique_for {
            check_duration("unique_for", d)?;
        }
        if self.unique_for.is_some_and(|d| d.is_zero()) {
            return Err(ValidationError::new(
                "unique_for",
                "must be greater than zero",
            ));
        }
        let unique_for = self
            .unique_key
            .as_ref()
            .and(self.unique_for.or(policy.unique_for));
        if self.tags.len() > MAX_TAGS {
            return Err(ValidationError::new(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        if let Some(i) = self
            .tags
            .iter()
            .position(|t| t.is_empty() || t.len() > MAX_TAG_LEN)
        {
            return Err(ValidationError::new(
                format!("tags[{i}]"),
                format!("must be 1 to {MAX_TAG_LEN} bytes"),
            ));
        }
        Ok(NewJob {
            kind: self.kind,
            queue,
            payload: self.payload,
            priority: self.priority.unwrap_or(policy.priority),
            run_at,
            max_attempts,
            timeout,
            unique_key: self.unique_key,
            unique_for,
            tags: self.tags,
        })
    }
}

/// `d` when it is within [`duration::MAX`], else an error naming `field`.
pub fn check_duration(field: &str, d: Duration) -> Result<Duration, ValidationError> {
    duration::in_range(d).map_err(|m| ValidationError::new(field, m))
}

/// The earliest `run_at` accepted: anything before is surely a mistake.
pub const MIN_RUN_AT: Timestamp = Timestamp::UNIX_EPOCH;

/// The accepted range of `run_at`, as written in messages.
fn run_at_range() -> String {
    format!("between {MIN_RUN_AT} and {} from now", duration::MAX_TEXT)
}

/// `at` when it lies between [`MIN_RUN_AT`] and `now` + [`duration::MAX`]
/// (past times mean "now"), else an error naming `field`.
pub fn check_run_at(
    field: &str,
    at: Timestamp,
    now: Timestamp,
) -> Result<Timestamp, ValidationError> {
    let latest = duration::after(now, duration::MAX).unwrap_or(Timestamp::MAX);
    if at < MIN_RUN_AT || at > latest {
        return Err(ValidationError::new(
            field,
            format!("must be {} (got {at})", run_at_range()),
        ));
    }
    Ok(at)
}

/// Reads an RFC 3339 time for `run_at` (or `--at`); one message for text
/// that is no time and for times beyond what can be represented.
pub fn parse_run_at(text: &str) -> Result<Timestamp, String> {
    text.parse().map_err(|_| {
        format!(
            "invalid time {text:?}: must be an RFC 3339 time such as \"2030-01-01T09:00:00Z\", {}",
            run_at_range()
        )
    })
}

fn deserialize_run_at<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Timestamp>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| parse_run_at(&t).map_err(serde::de::Error::custom))
        .transpose()
}

/// Kinds and queues are names: letters, digits and `_ - . :`, 1 to 255 bytes.
pub fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} bytes"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
    {
        return Err(ValidationError::new(
            field,
            format!("invalid character {c:?}; use letters, digits and _ - . :"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> EnqueueRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_come_from_the_kind() {
        let policy = KindPolicy {
            queue: "mail".into(),
            priority: 3,
            max_attempts: 7,
            timeout: Some(Duration::from_secs(9)),
            ..Default::default()
        };
        let job = req(json!({"kind": "send_email", "payload": {"to": "a@b"}}))
            .resolve(&policy, Timestamp::now())
            .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.priority, job.max_attempts),
            ("mail", 3, 7)
        );
        assert_eq!(job.timeout, Some(Duration::from_secs(9)));
        let job = req(
            json!({"kind": "k", "queue": "q", "priority": -1, "max_attempts": 2, "timeout": "1s"}),
        )
        .resolve(&policy, Timestamp::now())
        .unwrap();
        assert_eq!(
            (job.queue.as_str(), job.priority, job.max_attempts),
            ("q", -1, 2)
        );
        assert_eq!(job.timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn unique_for_applies_only_with_a_key() {
        let policy = KindPolicy {
            unique_for: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        let keyed = req(json!({"kind": "k", "unique_key": "a"}))
            .resolve(&policy, Timestamp::now())
            .unwrap();
        assert_eq!(keyed.unique_for, Some(Duration::from_secs(60)));
        let own = req(json!({"kind": "k", "unique_key": "a", "unique_for": "1h"}))
            .resolve(&policy, Timestamp::now())
            .unwrap();
        assert_eq!(own.unique_for, Some(Duration::from_secs(3600)));
        let keyless = req(json!({"kind": "k"}))
            .resolve(&policy, Timestamp::now())
            .unwrap();
        assert_eq!(keyless.unique_for, None);
    }

    #[test]
    fn delay_sets_run_at_in_the_future() {
        let before = Timestamp::now();
        let job = req(json!({"kind": "k", "delay": "1h"}))
            .resolve(&KindPolicy::default(), Timestamp::now())
            .unwrap();
        let at = job.run_at.unwrap();
        assert!(at >= before + jiff::SignedDuration::from_secs(3600));
    }

    #[test]
    fn bad_fields_are_named() {
        let p = KindPolicy::default();
        let field = |v: Value| req(v).resolve(&p, Timestamp::now()).unwrap_err().field;
        assert_eq!(field(json!({"kind": ""})), "kind");
        assert_eq!(field(json!({"kind": "a b"})), "kind");
        assert_eq!(field(json!({"kind": "k", "queue": "x/y"})), "queue");
        assert_eq!(
            field(json!({"kind": "k", "max_attempts": 0})),
            "max_attempts"
        );
        assert_eq!(field(json!({"kind": "k", "timeout": 0})), "timeout");
        assert_eq!(
            field(json!({"kind": "k", "delay": "1s", "run_at": "2030-01-01T00:00:00Z"})),
            "delay"
        );
        assert_eq!(field(json!({"kind": "k", "unique_key": ""})), "unique_key");
        assert_eq!(
            field(json!({"kind": "k", "unique_for": "1h"})),
            "unique_for"
        );
        assert_eq!(
            field(json!({"kind": "k", "unique_key": "a", "unique_for": 0})),
            "unique_for"
        );
        assert_eq!(field(json!({"kind": "k", "tags": ["ok", ""]})), "tags[1]");
    }

    #[test]
    fn extreme_times_are_refused_naming_the_field() {
        let p = KindPolicy::default();
        let err = |v: Value| {
            let e = req(v).resolve(&p, Timestamp::now()).unwrap_err();
            (e.field, e.message)
        };
        let e = serde_json::from_value::<EnqueueRequest>(
            json!({"kind": "k", "run_at": "9999-12-31T00:00:00Z"}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("invalid time \"9999-12-31T00:00:00Z\": must be an RFC 3339 time"),
            "{e}"
        );
        for at in [
            "9999-12-30T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            let (field, message) = err(json!({"kind": "k", "run_at": at}));
            assert_eq!(field, "run_at");
            assert!(
                message.contains("must be between 1970-01-01T00:00:00Z and 36500d"),
                "{message}"
            );
        }
        let timeout = Some(duration::MAX + Duration::from_secs(1));
        let built = |r: EnqueueRequest| r.resolve(&p, Timestamp::now()).unwrap_err().field;
        let base = || EnqueueRequest {
            kind: "k".into(),
            ..Default::default()
        };
        assert_eq!(
            built(EnqueueRequest {
                delay: timeout,
                ..base()
            }),
            "delay"
        );
        assert_eq!(
            built(EnqueueRequest {
                delay: Some(Duration::MAX),
                ..base()
            }),
            "delay"
        );
        assert_eq!(built(EnqueueRequest { timeout, ..base() }), "timeout");
        let unique_key = Some("u".to_string());
        assert_eq!(
            built(EnqueueRequest {
                unique_for: timeout,
                unique_key,
                ..base()
            }),
            "unique_for"
        );
        let long = KindPolicy {
            timeout,
            ..KindPolicy::default()
        };
        assert_eq!(
            base().resolve(&long, Timestamp::now()).unwrap_err().field,
            "timeout"
        );
        assert!(
            req(json!({"kind": "k", "run_at": "2000-01-01T00:00:00Z"}))
                .resolve(&p, Timestamp::now())
                .is_ok()
        );
        assert!(
            req(json!({"kind": "k", "delay": "36500d"}))
                .resolve(&p, Timestamp::now())
                .is_ok()
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_do_not_parse() {
        assert!(serde_json::from_value::<EnqueueRequest>(json!({"kind": "k", "prio": 1})).is_err());
        assert!(
            serde_json::from_value::<EnqueueRequest>(json!({"kind": "k", "priority": "high"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<EnqueueRequest>(json!({"kind": "k", "delay": "soon"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<EnqueueRequest>(json!({"kind": "k", "run_at": "yesterday"}))
                .is_err()
        );
    }
}
