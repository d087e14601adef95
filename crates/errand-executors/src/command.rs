//! The command executor: each attempt runs a program (argv, never a shell)
//! in its own process group, with the payload on stdin and the job's
//! identity in the environment; its stdout is the result (minus status
//! lines such as a snooze), its exit status the outcome (mapped through the
//! configured exit-code lists). The whole group is killed when the attempt
//! ends (or when errand dies: see [`crate::process`], shared with the pool
//! executor), and at most
//! `max_processes` run at once. A process that cannot start for lack of a
//! resource is a deadly outcome: the machine's fault, not the job's.

mod exit_codes;
mod spec;
mod stdout;

pub use spec::CommandSpec;

use crate::ConfigError;
use crate::process::{self, ProcessGroup, Spawned, output::read_tail};
use async_trait::async_trait;
use errand_core::{Job, Outcome};
use errand_worker::{Executor, ProgressSink};
use exit_codes::ExitCodes;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use stdout::{Stdout, read_stdout};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

/// Most stdout kept as the result.
const STDOUT_CAP: usize = 1 << 20;
/// Most stderr quoted in an error.
const STDERR_TAIL: usize = 4 << 10;
/// How long a process may take to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long pipes may stay open after the group is killed (a process that
/// left the group with setsid could hold them forever).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Runs a process per job.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    spec: CommandSpec,
    /// The exit-code mapping.
    exit_codes: ExitCodes,
    /// One permit per process allowed at once, when limited.
    slots: Option<Arc<Semaphore>>,
}

impl CommandExecutor {
    /// Validates `spec` ([`CommandSpec::validate`]: the program must exist)
    /// and makes an executor that runs it for each job.
    pub fn new(spec: CommandSpec) -> Result<CommandExecutor, ConfigError> {
        spec.validate()?;
        let exit_codes = spec.checked()?;
        let slots = spec.max_processes.map(|n| Arc::new(Semaphore::new(n)));
        Ok(CommandExecutor {
            spec,
            exit_codes,
            slots,
        })
    }

    fn command(&self, program: &str, job: &Job) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.spec.argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        process::set_environment(&mut cmd, self.spec.env_allow.as_deref(), &self.spec.env);
        // The job's identity, which nothing can override.
        cmd.env("ERRAND_JOB_ID", job.id.to_string())
            .env("ERRAND_JOB_KIND", &job.kind)
            .env("ERRAND_ATTEMPT", job.attempt.to_string())
            .env("ERRAND_MAX_ATTEMPTS", job.max_attempts.to_string());
        if let Some(cwd) = &self.spec.cwd {
            cmd.current_dir(cwd);
        }
        cmd
    }

    /// Waits for a process slot when the kind is limited; `None` when
    /// cancelled first.
    async fn slot(&self, cancel: &CancellationToken) -> Option<Option<SemaphorePermit<'_>>> {
        let Some(slots) = &self.slots else {
            return Some(None);
        };
        tokio::select! {
            permit = slots.acquire() => Some(Some(permit.expect("the semaphore is never closed"))),
            _ = cancel.cancelled() => None,
        }
    }
}

#[async_trait]
impl Executor for CommandExecutor {
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Outcome {
        // `new` checked that there is one.
        let program = &self.spec.argv[0];
        // Held until the process is reaped and its pipes are closed.
        let Some(_slot) = self.slot(&cancel).await else {
            return Outcome::Retry("cancelled while waiting for a process slot".into());
        };
        let Spawned {
            mut child, group, ..
        } = match process::spawn(&mut self.command(program, job), program).await {
            Ok(spawned) => spawned,
            // The machine's fault, not the job's: hand it back without using an attempt.
            Err(e) if e.machine => return Outcome::Deadly(e.error),
            Err(e) => return Outcome::Retry(e.error),
        };
        let payload = serde_json::to_vec(&job.payload).expect("a JSON value serializes");
        let (mut stdin, mut stdout, mut stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (mut out, mut err) = (Stdout::default(), Vec::new());
        let io = async {
            tokio::join!(
                async {
                    if let Some(mut pipe) = stdin.take() {
                        // A program that ignores stdin closes it early; that is its right.
                        let _ = pipe.write_all(&payload).await;
                    }
                },
                read_stdout(stdout.as_mut(), STDOUT_CAP, job.id, &progress, &mut out),
                read_tail(stderr.as_mut(), STDERR_TAIL, &mut err),
            )
        };
        let (status, cancelled) = {
            tokio::pin!(io);
            let mut io_done = false;
            let process = wait_or_stop(&mut child, &group, &cancel);
            tokio::pin!(process);
            let result = loop {
                tokio::select! {
                    _ = &mut io, if !io_done => io_done = true,
                    result = &mut process => break result,
                }
            };
            // The main process is gone; kill what it left behind so the pipes close.
            group.kill();
            if !io_done && tokio::time::timeout(PIPE_GRACE, &mut io).await.is_err() {
                tracing::warn!(
                    job = job.id,
                    "output pipes still open after the process group was killed"
                );
            }
            result
        };
        if cancelled {
            return Outcome::Retry("cancelled".into());
        }
        match status {
            Ok(status) => outcome_of(status, out, &err, &self.exit_codes),
            Err(e) => Outcome::Retry(format!("waiting for {program:?} failed: {e}")),
        }
    }

    /// `max_processes`, when set: no more of the kind's jobs are claimed.
    fn capacity(&self) -> Option<tokio::sync::watch::Receiver<usize>> {
        let limit = self.slots.as_ref().and(self.spec.max_processes)?;
        // The limit never changes: the sender can go at once.
        Some(tokio::sync::watch::channel(limit).1)
    }
}

/// Waits for the process to exit, or on cancellation terminates its group
/// (SIGTERM, then SIGKILL after a grace period). The child is always reaped.
async fn wait_or_stop(
    child: &mut Child,
    group: &ProcessGroup,
    cancel: &CancellationToken,
) -> (std::io::Result<ExitStatus>, bool) {
    tokio::select! {
        status = child.wait() => return (status, false),
        _ = cancel.cancelled() => {}
    }
    group.terminate();
    (process::stop(child, group, TERM_GRACE).await, true)
}

/// The outcome of a process that exited on its own: success (or the
/// snooze it asked for) on exit 0, else its exit code's class with the
/// stderr tail as the error.
fn outcome_of(status: ExitStatus, out: Stdout, err: &[u8], exit_codes: &ExitCodes) -> Outcome {
    if status.success() {
        return match out.snooze {
            Some(delay) => Outcome::Snooze(delay),
            None => Outcome::Success(result_of(out)),
        };
    }
    let stderr = String::from_utf8_lossy(err);
    let stderr = stderr.trim();
    let cause = process::describe_exit(status);
    let error = if stderr.is_empty() {
        cause
    } else {
        format!("{cause}: {stderr}")
    };
    match status.code() {
        Some(code) => exit_codes.outcome(code, error),
        // A signal is no verdict of the program's: try again.
        None => Outcome::Retry(error),
    }
}

/// Stdout as JSON when it parses, else as a string; nothing when empty.
fn result_of(out: Stdout) -> Option<serde_json::Value> {
    if !out.truncated
        && let Ok(value) = serde_json::from_slice(&out.result)
    {
        return Some(value);
    }
    let text = String::from_utf8_lossy(&out.result);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.trim().is_empty() && !out.truncated {
        return None;
    }
    let mut text = text.to_string();
    if out.truncated {
        tracing::warn!(
            cap = STDOUT_CAP,
            "command stdout exceeded the cap; result truncated"
        );
        text.push_str(&format!(
            "\n[truncated: stdout exceeded {STDOUT_CAP} bytes]"
        ));
    }
    Some(serde_json::Value::String(text))
}
