//! The command executor: each attempt runs a program (argv, never a shell)
//! in its own process group, with the payload on stdin and the job's
//! identity in the environment; its stdout is the result, its exit status
//! the outcome. The whole group is killed when the attempt ends.

mod capture;
mod group;

use crate::Executor;
use async_trait::async_trait;
use capture::{read_capped, read_tail};
use errand_core::{Job, Outcome};
use group::ProcessGroup;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
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

/// The program a [`CommandExecutor`] runs for each job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandSpec {
    /// Program and arguments; run directly, never through a shell.
    pub argv: Vec<String>,
    /// Working directory; the worker's when absent.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (the worker's environment is inherited).
    pub env: BTreeMap<String, String>,
}

/// Runs a process per job.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    spec: CommandSpec,
}

impl CommandExecutor {
    /// An executor that runs `spec` for each job.
    pub fn new(spec: CommandSpec) -> Self {
        CommandExecutor { spec }
    }

    fn command(&self, program: &str, job: &Job) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(&self.spec.argv[1..])
            .envs(&self.spec.env)
            .env("ERRAND_JOB_ID", job.id.to_string())
            .env("ERRAND_JOB_KIND", &job.kind)
            .env("ERRAND_ATTEMPT", job.attempt.to_string())
            .env("ERRAND_MAX_ATTEMPTS", job.max_attempts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that killing the group reaches every descendant.
            .process_group(0);
        if let Some(cwd) = &self.spec.cwd {
            cmd.current_dir(cwd);
        }
        cmd
    }
}

#[async_trait]
impl Executor for CommandExecutor {
    async fn execute(&self, job: &Job, cancel: CancellationToken) -> Outcome {
        let Some(program) = self.spec.argv.first() else {
            return Outcome::Permanent("command has an empty argv: no program to run".into());
        };
        let mut child = match self.command(program, job).spawn() {
            Ok(child) => child,
            Err(e) => return Outcome::Retry(format!("cannot start {program:?}: {e}")),
        };
        let Some(group) = child.id().map(ProcessGroup::new) else {
            return Outcome::Retry(format!("{program:?} exited before it could be tracked"));
        };
        let payload = serde_json::to_vec(&job.payload).expect("a JSON value serializes");
        let (mut stdin, mut stdout, mut stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (mut out, mut err) = (Captured::default(), Vec::new());
        let io = async {
            tokio::join!(
                async {
                    if let Some(mut pipe) = stdin.take() {
                        // A program that ignores stdin closes it early; that is its right.
                        let _ = pipe.write_all(&payload).await;
                    }
                },
                read_capped(
                    stdout.as_mut(),
                    STDOUT_CAP,
                    &mut out.bytes,
                    &mut out.truncated
                ),
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
            Ok(status) => outcome_of(status, out, &err),
            Err(e) => Outcome::Retry(format!("waiting for {program:?} failed: {e}")),
        }
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
    if let Ok(status) = tokio::time::timeout(TERM_GRACE, child.wait()).await {
        return (status, true);
    }
    group.kill();
    (child.wait().await, true)
}

/// Stdout as read: at most the cap, and whether more was discarded.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    truncated: bool,
}

fn outcome_of(status: ExitStatus, out: Captured, err: &[u8]) -> Outcome {
    if status.success() {
        return Outcome::Success(result_of(out));
    }
    let stderr = String::from_utf8_lossy(err);
    let stderr = stderr.trim();
    let cause = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {name}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => format!("ended abnormally ({status})"),
    };
    if stderr.is_empty() {
        Outcome::Retry(cause)
    } else {
        Outcome::Retry(format!("{cause}: {stderr}"))
    }
}

/// Stdout as JSON when it parses, else as a string; nothing when empty.
fn result_of(out: Captured) -> Option<serde_json::Value> {
    if !out.truncated
        && let Ok(value) = serde_json::from_slice(&out.bytes)
    {
        return Some(value);
    }
    let text = String::from_utf8_lossy(&out.bytes);
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
