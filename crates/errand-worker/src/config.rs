//! The worker's settings and the checks run before it starts: the
//! runtime's [`WorkerConfig`], and [`WorkerSettings`], the `[worker]`
//! section of the configuration file that becomes it.

use crate::{BreakerConfig, MaintenanceConfig, WorkerError};
use errand_core::duration::serde_human;
use errand_core::job::check_name;
use errand_core::policy::DEFAULT_QUEUE;
use errand_core::{NodeInfo, Retention};
use serde::Deserialize;
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
            remote: None,
            draining: false,
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
            check_queue(queue, concurrency)
                .map_err(|e| WorkerError::Config(format!("queues.{queue} {e}")))?;
        }
        check_times(self.lease, self.heartbeat, self.poll_interval).map_err(WorkerError::Config)?;
        self.breaker
            .validate()
            .map_err(|e| WorkerError::Config(format!("breaker.{e}")))
    }
}

/// Checks a queue this node serves: a valid name and at least one job at
/// a time. The message starts with the key at fault (`name`, `concurrency`).
pub fn check_queue(name: &str, concurrency: usize) -> Result<(), String> {
    check_name("queue", name).map_err(|e| format!("name: {}", e.message))?;
    if concurrency == 0 || concurrency > u32::MAX as usize {
        return Err("concurrency: must be at least 1".into());
    }
    Ok(())
}

/// The timing rules a worker needs: every period non-zero, and heartbeats
/// more frequent than the lease they renew.
fn check_times(
    lease: Duration,
    heartbeat: Duration,
    poll_interval: Duration,
) -> Result<(), String> {
    for (key, d) in [
        ("lease", lease),
        ("heartbeat", heartbeat),
        ("poll_interval", poll_interval),
    ] {
        if d.is_zero() {
            return Err(format!("{key}: must be greater than zero"));
        }
    }
    if heartbeat >= lease {
        return Err(format!(
            "heartbeat: must be shorter than lease ({}), got {}",
            errand_core::duration::format(lease),
            errand_core::duration::format(heartbeat)
        ));
    }
    Ok(())
}

/// The shortest lease a configuration file may set: a shorter one would
/// expire on ordinary scheduling hiccups and run jobs twice. (Tests build
/// [`WorkerConfig`] directly with shorter ones.)
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// `[worker]`: how a node's in-process worker and maintenance run, as an
/// operator writes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Run jobs in the `serve` process.
    pub enabled: bool,
    /// Name shown on running jobs; default `<hostname>-<pid>`.
    pub name: Option<String>,
    /// How long a claim lasts without a heartbeat.
    #[serde(with = "serde_human")]
    pub lease: Duration,
    /// How often running jobs' leases are renewed.
    #[serde(with = "serde_human")]
    pub heartbeat: Duration,
    /// Safety-net poll when idle.
    #[serde(with = "serde_human")]
    pub poll_interval: Duration,
    /// How long running jobs may take to finish on SIGTERM.
    #[serde(with = "serde_human")]
    pub shutdown_timeout: Duration,
    /// How often expired leases are rescued and due jobs promoted.
    #[serde(with = "serde_human")]
    pub maintenance_interval: Duration,
    /// When deadly outcomes stop a kind from being claimed on this node.
    pub breaker: BreakerConfig,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        let w = WorkerConfig::default();
        WorkerSettings {
            enabled: true,
            name: None,
            lease: w.lease,
            heartbeat: w.heartbeat,
            poll_interval: w.poll_interval,
            shutdown_timeout: w.shutdown_timeout,
            maintenance_interval: MaintenanceConfig::default().interval,
            breaker: w.breaker,
        }
    }
}

impl WorkerSettings {
    /// Refuses settings the worker cannot honour; the message starts with
    /// the key at fault (`breaker.` for the breaker's).
    pub fn validate(&self) -> Result<(), String> {
        if self.lease < MIN_LEASE {
            return Err(format!(
                "lease: must be at least {} (got {})",
                errand_core::duration::format(MIN_LEASE),
                errand_core::duration::format(self.lease)
            ));
        }
        if self.maintenance_interval.is_zero() {
            return Err("maintenance_interval: must be greater than zero".into());
        }
        check_times(self.lease, self.heartbeat, self.poll_interval)?;
        self.breaker.validate().map_err(|e| format!("breaker.{e}"))
    }

    /// The worker these settings describe, serving `queues` (name ->
    /// concurrency) and showing `http` in the node registry.
    pub fn worker_config(
        &self,
        queues: BTreeMap<String, usize>,
        http: Option<String>,
    ) -> WorkerConfig {
        let defaults = WorkerConfig::default();
        WorkerConfig {
            name: self.name.clone().unwrap_or(defaults.name),
            queues,
            lease: self.lease,
            heartbeat: self.heartbeat,
            poll_interval: self.poll_interval,
            shutdown_timeout: self.shutdown_timeout,
            http,
            breaker: self.breaker.clone(),
        }
    }

    /// Maintenance of a node named `node` keeping terminal jobs for `retention`.
    pub fn maintenance_config(&self, node: String, retention: Retention) -> MaintenanceConfig {
        MaintenanceConfig {
            interval: self.maintenance_interval,
            retention,
            node,
            ..MaintenanceConfig::default()
        }
    }
}
