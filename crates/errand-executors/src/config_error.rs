//! The one error every executor constructor returns for bad configuration,
//! naming the key so `errand serve` can say which setting to fix.

/// A configuration value an executor refuses; `key` is relative to the
/// executor's table (e.g. `pool.max_rss`), the caller adds the kind.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ExecutorConfigError {
    /// The offending key, e.g. `webhook.url`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ExecutorConfigError {
    /// An error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ExecutorConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}
