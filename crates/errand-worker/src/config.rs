//! The worker's settings and the checks run before it starts.

use crate::{BreakerConfig, WorkerError};
use errand_core::NodeInfo;
use errand_core::job::check_name;
use errand_core::policy::DEFAULT_QUEUE;
use std::collections::BTreeMap;
use std::time::Duration;

/// How a worker claims and runs jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Worker id shown on running jobs; default `<hostname>-<pid>`.
    pub name: String,
    /// Queue name -> how many of its jobs run at once.
    pub queues: BTreeMap<String, usize>,
    /// How long a claimed job stays ours without a heartbeat.
    pub lease: Duration,
    /// How often leases are renewed (well under `lease`).
    pub heartbeat: Duration,
    /// Safety-net poll when idle (scheduled jobs become due without events).
    pub poll_interval: Duration,
    /// How long running jobs may finish after shutdown before being handed back.
    pub shutdown_timeout: Duration,
    /// The HTTP address this node serves, shown in the node registry.
    pub http: Option<String>,
    /// When a kind that keeps failing deadly stops being claimed, and for how long.
    pub breaker: BreakerConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        let lease = Duration::from_secs(15);
        WorkerConfig {
            name: default_name(),
            queues: BTreeMap::from([(DEFAULT_QUEUE.to_string(), 16)]),
            lease,
            heartbeat: lease / 3,
            poll_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            http: None,
            breaker: BreakerConfig::default(),
        }
    }
}

fn default_name() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

impl WorkerConfig {
    /// This node's entry in the registry, started `now` (running count filled per heartbeat).
    pub(crate) fn node_info(&self, now: jiff::Timestamp) -> NodeInfo {
        NodeInfo {
            name: self.name.clone(),
            started_at: now,
            last_seen: now,
            queues: self.queues.clone(),
            running: 0,
            http: self.http.clone(),
            breakers: BTreeMap::new(),
        }
    }

    /// Refuses settings the runtime cannot honour, naming the setting.
    pub(crate) fn validate(&self) -> Result<(), WorkerError> {
        let bad = |msg: String| Err(WorkerError::Config(msg));
        if self.name.trim().is_empty() {
            return bad("name must not be empty".into());
        }
        if self.queues.is_empty() {
            return bad("queues: at least one queue is needed".into());
        }
        for (queue, &concurrency) in &self.queues {
            check_name("queues", queue)
                .map_err(|e| WorkerError::Config(format!("{e} ({queue:?})")))?;
            if concurrency == 0 || concurrency > u32::MAX as usize {
                return bad(format!("queues.{queue}: concurrency must be at least 1"));
            }
        }
        for (field, d) in [
            ("lease", self.lease),
            ("heartbeat", self.heartbeat),
            ("poll_interval", self.poll_interval),
        ] {
            if d.is_zero() {
                return bad(format!("{field} must be greater than zero"));
            }
        }
        if let Err(e) = self.breaker.validate() {
            return bad(format!("breaker.{e}"));
        }
        if self.heartbeat >= self.lease {
            return bad(format!(
                "heartbeat ({}) must be shorter than lease ({})",
                errand_core::duration::format(self.heartbeat),
                errand_core::duration::format(self.lease)
            ));
        }
        Ok(())
    }
}
