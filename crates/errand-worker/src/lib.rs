//! errand-worker: the worker runtime that claims jobs from a [`Store`],
//! runs them through executors (typed Rust handlers here; processes, pools,
//! webhooks and email in errand-executors),
//! heartbeats their leases, writes their progress (coalesced), batches their completions and shuts down
//! gracefully; plus the maintenance loop that rescues and promotes jobs,
//! and the scheduler loop that enqueues cron schedules' jobs.
//!
//! [`Store`]: errand_core::Store

mod ahead;
mod breaker;
mod bulk;
mod capacity;
mod completer;
mod config;
mod execution;
mod executor;
mod fetch;
mod handler;
mod heartbeat;
mod maintenance;
mod progress;
mod remote;
mod retry_delay;
mod running;
mod runtime;
mod scheduler;
#[cfg(feature = "test-util")]
pub mod testing;

pub use breaker::BreakerConfig;
pub use bulk::BulkRunner;
pub use config::{MIN_LEASE, WorkerConfig, WorkerSettings, check_queue};
pub use executor::Executor;
pub use handler::{HandlerResult, JobContext, JobError};
pub use maintenance::{MaintenanceConfig, run_maintenance};
pub use progress::ProgressSink;
pub use remote::{RemoteError, RemoteSettings, RemoteWorkers};
pub use running::RunningJobs;
pub use runtime::Worker;
pub use scheduler::{MISFIRE_GRACE, RECHECK, run_scheduler};

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration or the registrations are unusable; nothing was claimed.
    #[error("invalid worker configuration: {0}")]
    Config(String),
}
