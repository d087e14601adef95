//! The pool executor: long-lived worker processes (for code whose start-up
//! is expensive) that errand starts, feeds one job at a time over a line
//! protocol (docs/pool-protocol.md), supervises and recycles.

mod config;
mod process;
mod protocol;
mod rss;
mod supervisor;

pub use config::PoolConfig;
pub use errand_core::size::ByteSize;

use crate::ConfigError;
use async_trait::async_trait;
use errand_core::{Job, Outcome};
use errand_worker::{Executor, ProgressSink};
use process::{Fault, WorkerProcess};
use std::sync::Arc;
use supervisor::{Checkout, Supervisor};
use tokio_util::sync::{CancellationToken, DropGuard};

/// One live process of a pool, for metrics and the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolProcess {
    /// Its process id.
    pub pid: u32,
    /// Jobs it has answered.
    pub jobs: u64,
    /// Time since it started.
    pub age: std::time::Duration,
    /// Resident memory of it and its children, when /proc can tell.
    pub rss_bytes: Option<u64>,
}

/// Runs jobs on a supervised pool of long-lived processes.
pub struct PoolExecutor {
    supervisor: Arc<Supervisor>,
    /// Stops the pool's background work when the executor is dropped
    /// without [`Executor::shutdown`]; the processes are then killed.
    _stop_on_drop: DropGuard,
}

impl PoolExecutor {
    /// Validates `config` and starts its processes in the background; `name`
    /// (the kind) labels the processes' logs. Must be called within a Tokio runtime.
    pub fn new(name: &str, config: PoolConfig) -> Result<PoolExecutor, ConfigError> {
        config.validate()?;
        let supervisor = Supervisor::start(name, config);
        let guard = supervisor.shutdown_token().clone().drop_guard();
        Ok(PoolExecutor {
            supervisor,
            _stop_on_drop: guard,
        })
    }

    /// The pool's live processes now (a process between jobs or running one).
    pub fn processes(&self) -> Vec<PoolProcess> {
        self.supervisor.processes()
    }

    /// Decides what happens to a process that answered a job.
    fn after_answer(&self, mut process: Box<WorkerProcess>, outcome: &Outcome) {
        process.jobs += 1;
        if let Outcome::Deadly(error) = outcome {
            return self
                .supervisor
                .replace(*process, Fault(format!("reported deadly: {error}")));
        }
        let config = self.supervisor.config();
        if config.max_jobs > 0 && process.jobs >= config.max_jobs {
            let why = format!("ran max_jobs = {}", config.max_jobs);
            return self.supervisor.retire(*process, &why);
        }
        if config.max_jobs > 0 && process.replacement_due(config.max_jobs) {
            // Its place is not empty while the replacement boots.
            self.supervisor.start_replacement(process.slot);
        }
        if config.max_rss.0 > 0
            && process.rss_due()
            && let Some(rss) = process.rss()
            && rss > config.max_rss.0
        {
            let why = format!(
                "resident memory {rss} bytes is above max_rss = {}",
                config.max_rss
            );
            if process.jobs == 1 {
                // Over the limit after one job: every process will be, and the
                // pool would start one per job.
                tracing::warn!(
                    pool = self.supervisor.name(),
                    pid = process.pid(),
                    rss,
                    "a pool process passed max_rss after its first job: raise max_rss above the worker's own size (or 0 = never)"
                );
            }
            return self.supervisor.retire(*process, &why);
        }
        self.supervisor.checkin(process);
    }
}

#[async_trait]
impl Executor for PoolExecutor {
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Outcome {
        let mut process = match self.supervisor.checkout(&cancel).await {
            Checkout::Process(process) => process,
            Checkout::Cancelled => {
                return Outcome::Retry("cancelled while waiting for an idle pool process".into());
            }
            // The machine's fault, not the job's: hand it back without using an attempt.
            Checkout::CannotStart(error) => {
                return Outcome::Deadly(format!("no pool process can start: {error}"));
            }
        };
        let pid = process.pid();
        let answer = tokio::select! {
            answer = process.run(job, &progress) => answer,
            _ = cancel.cancelled() => Err(Fault("did not answer before the job was cancelled".into())),
        };
        match answer {
            Ok(outcome) => {
                self.after_answer(process, &outcome);
                outcome
            }
            Err(fault) => {
                let error = format!("worker process {pid} {}", fault.0);
                self.supervisor.replace(*process, fault);
                Outcome::Retry(error)
            }
        }
    }

    async fn shutdown(&self) {
        self.supervisor.stop().await;
    }

    /// The processes ready to take a job: a job is claimed only when one is.
    fn capacity(&self) -> Option<tokio::sync::watch::Receiver<usize>> {
        Some(self.supervisor.ready())
    }
}
