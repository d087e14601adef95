//! One long-lived worker process: started in its own process group (which
//! errand's guardian kills if errand dies), greeted with the handshake,
//! handed jobs one at a time, and stopped (gracefully or not) with its whole
//! group, always reaped.

use super::PoolConfig;
use super::protocol::{self, Line, MAX_LINE, Reply};
use crate::process::{self, ProcessGroup, SpawnError, Spawned};
use errand_core::{Job, Outcome};
use errand_worker::ProgressSink;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a process may take to print its handshake (framework bootstrap included).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit once its stdin is closed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// How long errand waits for a process that closed its stdout to exit.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// Longest stderr line logged whole.
const MAX_STDERR_LINE: usize = 16 << 10;
/// Least time between two reads of a process's memory from /proc (a few
/// files per read): after every job when jobs are slower, after the first
/// job this long after the last read when they are fast. A leak grows over
/// many jobs, so the check needs no more (docs/decisions/0040).
pub(super) const RSS_EVERY: Duration = Duration::from_millis(50);

/// A running worker process that has sent its handshake.
pub(super) struct WorkerProcess {
    child: Child,
    pid: u32,
    group: ProcessGroup,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    line: Vec<u8>,
    /// The job line being sent, reused from job to job.
    out: Vec<u8>,
    started: Instant,
    /// When it greeted, and how long it took to (spawn to handshake).
    greeted: Instant,
    start_took: Duration,
    /// Jobs answered so far.
    pub(super) jobs: u64,
    /// When its memory was last read (or it started).
    rss_read: Instant,
    /// Which of the pool's places it fills, and that place's restart history.
    pub(super) slot: super::supervisor::Slot,
}

/// Why a process could not finish a job: it must be replaced.
pub(super) struct Fault(pub(super) String);

/// A process that started but did not greet: the program's fault.
fn program_fault(error: String) -> SpawnError {
    SpawnError {
        error,
        machine: false,
    }
}

impl WorkerProcess {
    /// Starts a process for `slot` and waits for its handshake.
    pub(super) async fn start(
        pool: &Arc<str>,
        config: &PoolConfig,
        slot: super::supervisor::Slot,
        stop: &CancellationToken,
    ) -> Result<WorkerProcess, SpawnError> {
        let program = &config.command[0];
        let mut command = Command::new(program);
        process::set_environment(&mut command, config.env_allow.as_deref(), &config.env);
        command
            .args(&config.command[1..])
            .env("ERRAND_POOL", &**pool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &config.cwd {
            command.current_dir(cwd);
        }
        let spawning = Instant::now();
        let Spawned {
            mut child,
            pid,
            group,
        } = process::spawn(&mut command, program).await?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(pool.clone(), pid, stderr));
        }
        let mut process = WorkerProcess {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("stdout is piped")),
            child,
            pid,
            group,
            line: Vec::new(),
            out: Vec::new(),
            started: Instant::now(),
            greeted: Instant::now(),
            start_took: Duration::ZERO,
            jobs: 0,
            rss_read: Instant::now(),
            slot,
        };
        let handshake = tokio::select! {
            done = tokio::time::timeout(START_TIMEOUT, process.handshake()) => done.unwrap_or_else(|_| {
                Err(Fault(format!("sent no handshake within {START_TIMEOUT:?}")))
            }),
            _ = stop.cancelled() => Err(Fault("was stopped before its handshake".into())),
        };
        match handshake {
            Ok(()) => {
                process.greeted = Instant::now();
                process.start_took = spawning.elapsed();
                Ok(process)
            }
            Err(fault) => Err(program_fault(format!(
                "{program:?} (pid {pid}) {}",
                process.kill(fault).await
            ))),
        }
    }

    async fn handshake(&mut self) -> Result<(), Fault> {
        self.read_line().await?;
        protocol::parse_ready(&self.line).map_err(Fault)
    }

    /// Its process id.
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// How long it has been running.
    pub(super) fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether its replacement should start now, so that it is ready when
    /// this process reaches `max_jobs`: when the jobs it has left, at the
    /// rate it answered them since it greeted (idle time included), take
    /// less than twice its own start-up.
    pub(super) fn replacement_due(&self, max_jobs: u64) -> bool {
        let left = max_jobs.saturating_sub(self.jobs);
        if left == 0 || self.jobs == 0 {
            return false;
        }
        let per_job = self.greeted.elapsed() / u32::try_from(self.jobs).unwrap_or(u32::MAX);
        per_job.saturating_mul(u32::try_from(left).unwrap_or(u32::MAX)) <= self.start_took * 2
    }

    /// Hands `job` over and reads until its answer, passing its progress
    /// reports to `progress`.
    pub(super) async fn run(
        &mut self,
        job: &Job,
        progress: &ProgressSink,
    ) -> Result<Outcome, Fault> {
        protocol::job_line(job, &mut self.out);
        let line = &self.out;
        let stdin = self
            .stdin
            .as_mut()
            .expect("stdin is open until the process is stopped");
        if let Err(e) = async {
            stdin.write_all(line).await?;
            stdin.flush().await
        }
        .await
        {
            return Err(Fault(format!("could not be sent the job: {e}")));
        }
        loop {
            self.read_line().await?;
            match protocol::parse_reply(&self.line, job.id).map_err(Fault)? {
                Reply::Outcome(outcome) => return Ok(outcome),
                Reply::Progress(value) => {
                    if let Err(e) = progress.report(value) {
                        // Progress is user data: its size only, never its content.
                        tracing::warn!(job = job.id, pid = self.pid, error = %e, "progress not kept");
                    }
                }
            }
        }
    }

    async fn read_line(&mut self) -> Result<(), Fault> {
        match protocol::read_line(&mut self.stdout, &mut self.line, MAX_LINE).await {
            Ok(Line::Complete) => Ok(()),
            Ok(Line::TooLong) => Err(Fault(format!("wrote a line longer than {MAX_LINE} bytes"))),
            Ok(Line::Eof) => {
                // It closed stdout: it is exiting (or has); say how.
                let exit = match tokio::time::timeout(EXIT_WAIT, self.child.wait()).await {
                    Ok(Ok(status)) => process::describe_exit(status),
                    Ok(Err(e)) => format!("status unknown: {e}"),
                    Err(_) => "closed its stdout".into(),
                };
                Err(Fault(format!("exited ({exit})")))
            }
            Err(e) => Err(Fault(format!("could not be read from: {e}"))),
        }
    }

    /// Whether its memory is due to be read again ([`RSS_EVERY`]); counts
    /// the read as done.
    pub(super) fn rss_due(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.rss_read) < RSS_EVERY {
            return false;
        }
        self.rss_read = now;
        true
    }

    /// Resident memory of the process and its descendants, when /proc tells.
    pub(super) fn rss(&self) -> Option<u64> {
        super::rss::tree_rss(self.pid)
    }

    /// Stops it at once: kills its group and reaps it. Returns `fault`'s text.
    pub(super) async fn kill(mut self, fault: Fault) -> String {
        let _ = process::stop(&mut self.child, &self.group, Duration::ZERO).await;
        fault.0
    }

    /// Stops it gracefully: closes its stdin (its cue to exit), waits a
    /// little, then kills whatever is left of its group; always reaps.
    pub(super) async fn stop(mut self) {
        drop(self.stdin.take());
        let _ = process::stop(&mut self.child, &self.group, STOP_GRACE).await;
    }
}

/// Logs a process's stderr line by line until it closes.
async fn log_stderr(pool: Arc<str>, pid: u32, stderr: tokio::process::ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        match protocol::read_line(&mut reader, &mut line, MAX_STDERR_LINE).await {
            Ok(Line::Eof) | Err(_) if line.is_empty() => return,
            Ok(ended) => {
                let text = String::from_utf8_lossy(&line);
                let truncated = if ended == Line::TooLong {
                    " [truncated]"
                } else {
                    ""
                };
                tracing::info!(pool = %pool, pid, "{text}{truncated}");
                if ended == Line::Eof {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
