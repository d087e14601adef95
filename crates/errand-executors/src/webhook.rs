//! The webhook executor: each attempt POSTs the job as signed JSON to a
//! configured URL and maps the HTTP answer to an outcome (2xx success,
//! 408/5xx/timeouts/connection errors retry, 429/503 with Retry-After
//! snooze, other 4xx permanent). One pooled client per executor, TLS by
//! rustls with the ring provider. The wire format is in docs/webhooks.md.

mod answer;
mod signature;

use crate::ConfigError;
use async_trait::async_trait;
use errand_core::duration::serde_human;
use errand_core::{Job, Outcome, redact};
use errand_worker::{Executor, ProgressSink};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

pub use answer::{RESULT_CAP, SNOOZE_CAP, SNOOZE_WITHOUT_RETRY_AFTER};
pub use signature::{SIGNATURE_HEADER, sign};

/// Header carrying the job's id.
pub const JOB_ID_HEADER: &str = "Errand-Job-Id";
/// Header carrying the attempt number (1-based).
pub const ATTEMPT_HEADER: &str = "Errand-Attempt";

/// Headers errand sets itself; configuration may not override them.
const RESERVED_HEADERS: [&str; 6] = [
    SIGNATURE_HEADER,
    JOB_ID_HEADER,
    ATTEMPT_HEADER,
    "content-type",
    "content-length",
    "host",
];

/// `webhook = { url, timeout?, secret, headers? }` in a kind's table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where jobs are POSTed: an `http://` or `https://` URL.
    pub url: String,
    /// Limit for one request, from connecting to the last byte of the answer.
    #[serde(with = "serde_human", default = "default_timeout")]
    pub timeout: Duration,
    /// Key of the HMAC-SHA256 signature receivers verify.
    pub secret: String,
    /// Extra request headers (e.g. an API key of the receiver).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl WebhookConfig {
    /// A configuration with the default timeout and no extra headers.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            timeout: default_timeout(),
            secret: secret.into(),
            headers: BTreeMap::new(),
        }
    }

    /// Checks every key; the error names the first bad one (`webhook.url`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parts().map(|_| ())
    }

    /// The parsed URL and headers, or the first bad key.
    fn parts(&self) -> Result<(reqwest::Url, HeaderMap), ConfigError> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| {
            ConfigError::new("webhook.url", format!("{:?}: {e}", redact::urls(&self.url)))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ConfigError::new(
                "webhook.url",
                format!(
                    "{:?}: must be an http:// or https:// URL with a host",
                    redact::urls(&self.url)
                ),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "webhook.timeout",
                "must be greater than zero",
            ));
        }
        if self.secret.is_empty() {
            return Err(ConfigError::new(
                "webhook.secret",
                "must not be empty: receivers verify the signature with it",
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let key = format!("webhook.headers.{name}");
            let bad = |message: String| ConfigError::new(&key, message);
            if RESERVED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                return Err(bad("is set by errand and cannot be configured".into()));
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad(format!("invalid header name: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| bad(format!("invalid header value: {e}")))?;
            headers.insert(name, value);
        }
        Ok((url, headers))
    }
}

/// POSTs each job to one URL over a shared, pooled HTTP client.
#[derive(Debug, Clone)]
pub struct WebhookExecutor {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    secret: String,
}

impl WebhookExecutor {
    /// Validates `config` and builds the executor's client.
    pub fn new(config: WebhookConfig) -> Result<WebhookExecutor, ConfigError> {
        let (url, mut headers) = config.parts()?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(concat!(
                "errand/",
                env!("CARGO_PKG_VERSION")
            )));
        install_ring_provider();
        let client = reqwest::Client::builder()
            .default_headers(headers)
            // A redirect would turn the POST into a GET or resend the job
            // elsewhere; the configured URL is the contract.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| {
                ConfigError::new("webhook", format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(WebhookExecutor {
            client,
            url,
            timeout: config.timeout,
            secret: config.secret,
        })
    }

    async fn post(&self, job: &Job) -> Outcome {
        let body = serde_json::to_vec(&Envelope::of(job)).expect("a job serializes");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let request = self
            .client
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(SIGNATURE_HEADER, sign(&self.secret, now, &body))
            .header(JOB_ID_HEADER, job.id)
            .header(ATTEMPT_HEADER, job.attempt)
            .body(body);
        match request.send().await {
            Ok(response) => answer::outcome(response, self.timeout).await,
            Err(e) => answer::failed_request(e, self.timeout),
        }
    }
}

#[async_trait]
impl Executor for WebhookExecutor {
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        _progress: ProgressSink,
    ) -> Outcome {
        tokio::select! {
            outcome = self.post(job) => outcome,
            // Dropping the request future closes its connection at once.
            _ = cancel.cancelled() => Outcome::Retry("cancelled".into()),
        }
    }
}

/// The JSON body of each request.
#[derive(Serialize)]
struct Envelope<'a> {
    id: i64,
    kind: &'a str,
    attempt: u32,
    max_attempts: u32,
    payload: &'a serde_json::Value,
}

impl<'a> Envelope<'a> {
    fn of(job: &'a Job) -> Self {
        Envelope {
            id: job.id,
            kind: &job.kind,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            payload: &job.payload,
        }
    }
}

/// reqwest is built without a default crypto provider (to avoid aws-lc's
/// C build); ring becomes the process default unless one is already set.
fn install_ring_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means another provider was installed first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(config: WebhookConfig) -> String {
        WebhookExecutor::new(config).unwrap_err().key
    }

    #[test]
    fn bad_configuration_names_the_key() {
        assert_eq!(key_of(WebhookConfig::new("not a url", "s")), "webhook.url");
        let refused = WebhookExecutor::new(WebhookConfig::new("ftp://u:hunter2@h/x", "s"));
        let message = refused.unwrap_err().to_string();
        assert!(
            message.contains("ftp://u:***@h/x") && !message.contains("hunter2"),
            "{message}"
        );
        assert_eq!(
            key_of(WebhookConfig::new("ftp://example.com/x", "s")),
            "webhook.url"
        );
        assert_eq!(
            key_of(WebhookConfig::new("https://example.com/hook", "")),
            "webhook.secret"
        );
        let mut zero = WebhookConfig::new("https://example.com/hook", "s");
        zero.timeout = Duration::ZERO;
        assert_eq!(key_of(zero), "webhook.timeout");
        let mut reserved = WebhookConfig::new("https://example.com/hook", "s");
        reserved
            .headers
            .insert("errand-signature".into(), "forged".into());
        assert_eq!(key_of(reserved), "webhook.headers.errand-signature");
        let mut bad_value = WebhookConfig::new("https://example.com/hook", "s");
        bad_value
            .headers
            .insert("X-Key".into(), "line\nbreak".into());
        assert_eq!(key_of(bad_value), "webhook.headers.X-Key");
    }

    #[test]
    fn reads_the_documented_toml() {
        let config: WebhookConfig = toml::from_str(
            r#"url = "https://hooks.example.com/errand"
               timeout = "3s"
               secret = "k"
               headers = { Authorization = "Bearer x" }"#,
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.headers["Authorization"], "Bearer x");
        assert!(WebhookExecutor::new(config).is_ok());
        let unknown =
            toml::from_str::<WebhookConfig>("url = \"https://x\"\nsecret = \"k\"\nretries = 3");
        assert!(unknown.is_err());
    }
}
