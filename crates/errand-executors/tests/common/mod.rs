//! Helpers shared by the executors' integration tests: errand-worker's
//! `testing` helpers, a worker running one executor, polling for job
//! states, and the processes and footprint of the test process as /proc
//! tells them (through errand's own [`procfs`]).
#![allow(dead_code, unused_imports)] // each test file uses its own subset

pub mod smtpd;

use errand_core::{Job, JobId, KindPolicy, NewJob, Store};
use errand_executors::process::{guardian_pid, procfs};
use errand_worker::{Executor, Worker};
use std::sync::Arc;

pub use errand_worker::testing::{
    DEADLINE, Running, config, eventually, eventually_blocking, hour_backoff, store, wait_for,
    wait_state,
};

/// Starts a worker that runs `kind` through `executor` with `policy`, on
/// the default queue.
pub fn run_executor(
    store: &Arc<dyn Store>,
    kind: &str,
    policy: KindPolicy,
    executor: Arc<dyn Executor>,
    concurrency: usize,
) -> Running {
    let mut worker = Worker::new(store.clone(), config("default", concurrency));
    worker.register(kind, policy, executor);
    Running::spawn(worker)
}

/// Enqueues one job of `kind` and returns its id.
pub async fn enqueue(store: &Arc<dyn Store>, kind: &str, payload: serde_json::Value) -> JobId {
    store
        .enqueue(vec![NewJob::new(kind, payload)])
        .await
        .unwrap()[0]
        .job
        .id
}

/// Polls the job until its first attempt has ended (it left `running`).
pub async fn wait_attempted(store: &Arc<dyn Store>, id: JobId) -> Job {
    wait_for(store, id, |j| {
        j.started_at.is_some() && j.state != errand_core::JobState::Running
    })
    .await
}

/// A process seen in /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Its state letter (`Z` for a zombie).
    pub state: char,
}

/// `pid`'s entry in /proc, if it still exists.
pub fn proc_of(pid: u32) -> Option<Proc> {
    let stat = procfs::stat(pid)?;
    Some(Proc {
        pid,
        ppid: stat.ppid,
        state: stat.state,
    })
}

/// Whether `pid` is gone, or a zombie (dead, waiting to be reaped).
pub fn dead(pid: u32) -> bool {
    proc_of(pid).is_none_or(|p| p.state == 'Z')
}

/// Every process whose command line mentions `tag`.
pub fn processes_with(tag: &str) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(tag))
        })
        .filter_map(proc_of)
        .collect()
}

/// Live (not zombie) processes mentioning `tag`.
pub fn live_with(tag: &str) -> Vec<u32> {
    processes_with(tag)
        .into_iter()
        .filter(|p| p.state != 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Child processes of this test process (live or zombie), but errand's
/// process guardian, which lives as long as the test process.
pub fn own_children() -> Vec<Proc> {
    let guardian = guardian_pid();
    procfs::children(std::process::id())
        .into_iter()
        .filter(|&pid| Some(pid) != guardian)
        .filter_map(proc_of)
        .collect()
}

/// What the test process itself holds, for soak tests to compare over time.
#[derive(Debug)]
pub struct Footprint {
    pub fds: usize,
    pub threads: u64,
    pub rss_kib: u64,
}

impl Footprint {
    /// The test process's footprint now.
    pub fn now() -> Footprint {
        let me = std::process::id();
        Footprint {
            fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
            threads: procfs::status(me, "Threads").unwrap(),
            rss_kib: procfs::status(me, "VmRSS").unwrap(),
        }
    }
}
