//! The process guardian, for real: a child test process (this binary run
//! again) runs command jobs whose process groups have a grandchild; when
//! that child is SIGKILLed, the jobs' processes must die too, and the
//! guardian with them. A guardian that died is replaced by one told of
//! every live group; terminal signals do not stop it.

mod command_support;
mod common;

use command_support::*;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set (to a directory) in the child test process.
const CHILD_DIR: &str = "GUARDIAN_TEST_CHILD_DIR";

/// Runs a job (until this process is killed) that starts a grandchild and
/// writes its shell's and grandchild's pids to `dir/<name>`.
async fn job_with_grandchild(dir: &Path, name: &str) {
    let script = format!(
        "sleep 60 & echo $$ $! > {name}.tmp; mv {name}.tmp {name}; wait",
        name = dir.join(name).display()
    );
    run_until(sh(&script), None, serde_json::json!(null), |_| false).await;
}

/// The pids in `path`, once it exists.
async fn pids_in(path: &Path) -> String {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn guardian() -> u32 {
    errand_executors::process::guardian_pid().expect("a guardian runs")
}

/// In the child: runs job `a`; with `replace`, kills the guardian and runs
/// job `b` too. Writes every pid to watch (the jobs' and the guardian's)
/// to `dir/pids`, then runs until killed.
fn child(dir: &Path, replace: bool) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let second = async {
            let a = pids_in(&dir.join("a")).await;
            if !replace {
                std::fs::write(dir.join("pids"), format!("{a} {}", guardian())).unwrap();
                return std::future::pending::<()>().await;
            }
            let first = guardian();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(first as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            // Job b's start finds the guardian gone and starts another.
            tokio::join!(job_with_grandchild(dir, "b"), async {
                let b = pids_in(&dir.join("b")).await;
                assert_ne!(guardian(), first, "a new guardian runs");
                std::fs::write(dir.join("pids"), format!("{a} {b} {}", guardian())).unwrap();
            });
        };
        tokio::join!(job_with_grandchild(dir, "a"), second);
    });
}

/// Runs `test` in a child process, kills it once it wrote its pids, and
/// checks that every one of them dies.
fn jobs_die_with_their_process(test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut test_process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pids_file = dir.path().join("pids");
    eventually_blocking(Duration::from_secs(30), "the jobs to start", || {
        pids_file.exists()
    });
    let pids: Vec<u32> = std::fs::read_to_string(&pids_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.iter().all(|&p| !dead(p)), "all alive before the kill");
    // Terminal and pkill signals do not stop the guardian.
    let guardian = nix::unistd::Pid::from_raw(*pids.last().unwrap() as i32);
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        nix::sys::signal::kill(guardian, signal).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !dead(guardian.as_raw() as u32),
        "the guardian ignored SIGTERM"
    );

    test_process.kill().unwrap();
    test_process.wait().unwrap();
    eventually_blocking(Duration::from_secs(2), "the jobs' processes to die", || {
        pids.iter().all(|&p| dead(p))
    });
}

#[test]
fn a_jobs_processes_die_with_the_process_that_started_them() {
    match std::env::var_os(CHILD_DIR) {
        Some(dir) => child(Path::new(&dir), false),
        None => {
            jobs_die_with_their_process("a_jobs_processes_die_with_the_process_that_started_them")
        }
    }
}

#[test]
fn a_guardian_that_died_is_replaced_and_told_every_live_group() {
    match std::env::var_os(CHILD_DIR) {
        Some(dir) => child(Path::new(&dir), true),
        None => jobs_die_with_their_process(
            "a_guardian_that_died_is_replaced_and_told_every_live_group",
        ),
    }
}
