//! The one error every executor's `validate()` and constructor return for
//! bad configuration, naming the key so `errand serve` can say which
//! setting to fix.

/// A configuration value an executor refuses; `key` is relative to the
/// kind's table (e.g. `max_processes`, `pool.max_rss`), the caller adds the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The offending key, e.g. `webhook.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}
