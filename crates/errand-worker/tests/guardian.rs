//! The process guardian, for real: a child test process (this binary run
//! again) runs a command job whose process group has a grandchild; when
//! that child is SIGKILLed, the job's processes must die too, and the
//! guardian with them.

mod command_support;
mod common;

use command_support::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set (to a directory) in the child test process.
const CHILD_DIR: &str = "GUARDIAN_TEST_CHILD_DIR";
const TEST_NAME: &str = "a_jobs_processes_die_with_the_process_that_started_them";

/// Whether `pid` is gone (or a zombie: dead, waiting to be reaped).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// In the child: runs a job that starts a grandchild, writes the pids
/// (its own, the grandchild's, the guardian's) and sleeps until killed.
fn child(dir: &Path) {
    let script = format!(
        "sleep 60 & echo $$ $! > {dir}/pids.tmp; wait",
        dir = dir.display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let watch = async {
            let pids = dir.join("pids.tmp");
            while !pids.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let guardian = errand_worker::process::guardian_pid().expect("a guardian runs");
            let text = std::fs::read_to_string(&pids).unwrap();
            std::fs::write(dir.join("pids"), format!("{} {guardian}", text.trim())).unwrap();
        };
        // Runs until this process is killed.
        tokio::join!(
            run_until(sh(&script), None, serde_json::json!(null), |_| false),
            watch
        );
    });
}

#[test]
fn a_jobs_processes_die_with_the_process_that_started_them() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        return child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut test_process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pids_file = dir.path().join("pids");
    wait_until(Duration::from_secs(30), "the job to start", || {
        pids_file.exists()
    });
    let pids: Vec<i32> = std::fs::read_to_string(&pids_file)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.iter().all(|&p| !dead(p)), "all alive before the kill");

    test_process.kill().unwrap();
    test_process.wait().unwrap();
    // The job's shell, its grandchild and the guardian itself.
    wait_until(Duration::from_secs(2), "the job's processes to die", || {
        pids.iter().all(|&p| dead(p))
    });
}
