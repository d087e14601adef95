//! Process handling for every executor that starts job processes (a
//! command attempt, a pool process), written once: the child's environment,
//! spawning it in its own process group that the guardian kills when errand
//! dies (and the on-disk record for when the guardian died too), signalling
//! the group, telling the machine's faults from the program's, describing
//! how a process ended, keeping a bounded tail of its output, and reading
//! /proc. It lives here, not in errand-worker, because only executors start
//! processes: the worker runtime knows executors by their trait alone.

mod environment;
mod group;
mod guardian;
pub mod output;
pub mod procfs;
mod record;

pub use environment::{check_env_allow, set_environment};
pub use group::ProcessGroup;
pub use guardian::guardian_pid;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Whether `program` can be started: a path (relative to `cwd`, or to
/// errand's own directory without one) naming a file, or a bare name found
/// on `PATH`. Start-up checks use it so a misspelt program is refused at
/// once instead of failing every attempt of every job.
pub fn program_exists(program: &str, cwd: Option<&Path>) -> bool {
    if program.contains('/') {
        return cwd.unwrap_or(Path::new("")).join(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Checks a configured argv before anything runs: it names a program, and
/// that program exists ([`program_exists`]); the error says what is wrong.
pub fn check_program(argv: &[String], cwd: Option<&Path>) -> Result<(), String> {
    match argv.first() {
        None => Err("must name a program".into()),
        Some(program) if program.trim().is_empty() => Err("must name a program".into()),
        Some(program) if !program_exists(program, cwd) => {
            Err(format!("program {program:?} not found"))
        }
        Some(_) => Ok(()),
    }
}

/// Starts the guardian now if it does not run yet. Call it before starting
/// a job's process: when it fails (typically a resource limit) the job
/// should be handed back rather than run unguarded. The first call also
/// kills the job process groups that dead errand processes whose guardian
/// died with them left behind on this machine.
pub fn ensure_guardian() -> io::Result<()> {
    record::sweep_once();
    guardian::ensure()
}

/// Whether starting a process failed because the machine or errand ran out
/// of a resource (file descriptors, processes, memory) rather than because
/// of the program: the job is then not at fault and must not lose an attempt.
pub fn is_resource_limit(error: &io::Error) -> bool {
    use nix::libc::{EAGAIN, EMFILE, ENFILE, ENOMEM};
    matches!(
        error.raw_os_error(),
        Some(EMFILE | ENFILE | EAGAIN | ENOMEM)
    )
}

/// A job process started by [`spawn`]: the child, its pid and its group.
#[derive(Debug)]
pub struct Spawned {
    /// The group's leader; reap it (`wait`) before dropping it.
    pub child: Child,
    /// Its process id, which is also the group's id.
    pub pid: u32,
    /// Its process group, guarded; dropping it kills the group.
    pub group: ProcessGroup,
}

/// Why [`spawn`] could not start a process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct SpawnError {
    /// What happened, naming the program.
    pub error: String,
    /// The machine's fault (a resource limit, no guardian), not the
    /// program's: the job must not lose an attempt for it.
    pub machine: bool,
}

/// Starts `command` (running `program`) in a process group of its own, so
/// that signalling the group reaches every descendant, and puts the group
/// in the guardian's charge before it can outlive errand. A process that
/// cannot be guarded is killed rather than left to run unguarded.
pub async fn spawn(command: &mut Command, program: &str) -> Result<Spawned, SpawnError> {
    let machine = |error: String| SpawnError {
        error,
        machine: true,
    };
    ensure_guardian().map_err(|e| {
        machine(format!(
            "cannot start {program:?}: no process guardian: {e}"
        ))
    })?;
    let mut child = command.process_group(0).spawn().map_err(|e| SpawnError {
        error: format!("cannot start {program:?}: {e}"),
        machine: is_resource_limit(&e),
    })?;
    let Some(pid) = child.id() else {
        let status = child.wait().await;
        return Err(SpawnError {
            error: format!("{program:?} exited before it could be tracked ({status:?})"),
            machine: false,
        });
    };
    match ProcessGroup::guard(pid) {
        Ok(group) => Ok(Spawned { child, pid, group }),
        Err(e) => {
            // Killed already by `guard`: reap it.
            let _ = child.wait().await;
            Err(machine(format!("cannot guard {program:?}: {e}")))
        }
    }
}

/// Ends a process: waits up to `grace` for it to exit (the caller has asked
/// it to: SIGTERM, a closed stdin), then kills its whole group, also after
/// a clean exit since its children may linger; always reaps it. Its exit
/// status (a kill's, past the grace).
pub async fn stop(
    child: &mut Child,
    group: &ProcessGroup,
    grace: Duration,
) -> io::Result<ExitStatus> {
    let exited = tokio::time::timeout(grace, child.wait()).await;
    group.kill();
    match exited {
        Ok(status) => status,
        Err(_) => child.wait().await,
    }
}

/// How a process ended, in the words every executor uses: `exit status 3`,
/// `killed by signal SIGKILL`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {name}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => format!("ended abnormally ({status})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;

    #[test]
    fn resource_limits_are_told_from_the_programs_faults() {
        for code in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
            assert!(is_resource_limit(&io::Error::from_raw_os_error(code)));
        }
        for code in [libc::ENOENT, libc::EACCES, libc::ENOEXEC, libc::E2BIG] {
            assert!(!is_resource_limit(&io::Error::from_raw_os_error(code)));
        }
        assert!(!is_resource_limit(&io::Error::other("no os error")));
    }

    #[test]
    fn exits_and_signals_are_described_alike() {
        assert_eq!(describe_exit(ExitStatus::from_raw(3 << 8)), "exit status 3");
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGKILL)),
            "killed by signal SIGKILL"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(100)),
            "killed by signal 100"
        );
    }

    #[tokio::test]
    async fn a_spawned_process_runs_in_its_own_guarded_group() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 7"]);
        let mut spawned = spawn(&mut command, "sh").await.unwrap();
        let stat = procfs::stat(spawned.pid).unwrap();
        assert_eq!(stat.pgid, spawned.pid as i32, "it leads its own group");
        assert!(guardian_pid().is_some());
        let status = stop(&mut spawned.child, &spawned.group, Duration::from_secs(10)).await;
        assert_eq!(describe_exit(status.unwrap()), "exit status 7");

        let err = spawn(
            &mut Command::new("/no/such/program-errand"),
            "/no/such/program-errand",
        )
        .await
        .unwrap_err();
        assert!(!err.machine, "a missing program is the program's fault");
        assert!(
            err.error
                .starts_with("cannot start \"/no/such/program-errand\": "),
            "{}",
            err.error
        );
    }

    #[tokio::test]
    async fn stop_kills_a_process_that_outstays_its_grace() {
        let mut command = Command::new("sleep");
        command.arg("60");
        let mut spawned = spawn(&mut command, "sleep").await.unwrap();
        let status = stop(
            &mut spawned.child,
            &spawned.group,
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(describe_exit(status.unwrap()), "killed by signal SIGKILL");
    }

    #[test]
    fn programs_are_found_on_path_or_relative_to_cwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/work.sh"), "").unwrap();
        assert!(program_exists("sh", None));
        assert!(!program_exists("no-such-program-errand", Some(dir.path())));
        assert!(program_exists("bin/work.sh", Some(dir.path())));
        assert!(program_exists("./bin/work.sh", Some(dir.path())));
        assert!(!program_exists("./bin/other.sh", Some(dir.path())));
        // A directory is no program.
        assert!(!program_exists("./bin", Some(dir.path())));
        let absolute = dir.path().join("bin/work.sh");
        assert!(program_exists(absolute.to_str().unwrap(), None));
    }
}
