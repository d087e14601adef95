//! The command executor with real subprocesses: results from stdout, the
//! environment and payload the process sees, failures, and that a timeout
//! kills the whole process group and leaves no zombie behind.

mod command_support;
mod common;

use command_support::*;
use common::*;
use errand_core::JobState;
use errand_executors::command::{CommandExecutor, CommandSpec};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_stdout_is_the_result() {
    let job = run_one(sh(r#"echo '{"sent": 3}'"#), None, json!(null)).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!({"sent": 3})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_stdout_is_a_string_result() {
    let job = run_one(sh("echo hello world"), None, json!(null)).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!("hello world")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_cwd_and_payload_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let spec = CommandSpec {
        argv: vec![
            "sh".into(),
            "-c".into(),
            r#"printf '%s|%s|%s|%s|%s|%s' "$ERRAND_JOB_ID" "$ERRAND_JOB_KIND" "$ERRAND_ATTEMPT" "$ERRAND_MAX_ATTEMPTS" "$GREETING" "$(pwd)""#.into(),
        ],
        cwd: Some(dir.path().to_path_buf()),
        env: BTreeMap::from([("GREETING".to_string(), "héllo wörld".to_string())]),
        ..CommandSpec::default()
    };
    let job = run_one(spec, None, json!(null)).await;
    let cwd = dir.path().canonicalize().unwrap();
    let expected = format!("{}|cmd|1|25|héllo wörld|{}", job.id, cwd.display());
    assert_eq!(job.result, Some(json!(expected)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_unicode_payload_round_trips_through_cat() {
    let big = "ünïcødé ✓ line\nnext \"quoted\" \\ tab\t".repeat(22_000);
    let payload = json!({"text": big, "emoji": "🦀"});
    let size = serde_json::to_vec(&payload).unwrap().len();
    assert!(
        (900_000..1 << 20).contains(&size),
        "{size} bytes: just under the stdout cap"
    );
    let spec = CommandSpec {
        argv: vec!["cat".into()],
        ..CommandSpec::default()
    };
    let job = run_one(spec, None, payload.clone()).await;
    assert_eq!(job.state, JobState::Completed);
    // Not assert_eq: a megabyte of diff helps nobody.
    assert!(job.result == Some(payload), "the payload came back altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_beyond_the_cap_is_truncated_not_fatal() {
    let job = run_one(
        sh("head -c 3000000 /dev/zero | tr '\\0' x"),
        None,
        json!(null),
    )
    .await;
    assert_eq!(job.state, JobState::Completed);
    let text = job
        .result
        .as_ref()
        .and_then(|r| r.as_str())
        .expect("a string result");
    assert!(text.starts_with("xxxx"));
    assert!(
        text.ends_with("[truncated: stdout exceeded 1048576 bytes]"),
        "{}",
        &text[text.len() - 60..]
    );
    assert!(text.len() < (1 << 20) + 100, "{}", text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonzero_exit_retries_with_the_stderr_tail() {
    let script = "i=0; while [ $i -lt 500 ]; do echo \"noise $i\" >&2; i=$((i+1)); done; echo 'the real reason' >&2; exit 3";
    let job = run_one(sh(script), None, json!(null)).await;
    assert_eq!(job.state, JobState::Retryable);
    let error = &job.errors[0].error;
    assert!(error.starts_with("exit status 3: "), "{error}");
    assert!(error.ends_with("the real reason"), "{error}");
    assert!(!error.contains("noise 0\n"), "only the tail is kept");
    assert!(error.len() <= 4096 + 64, "{}", error.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_gone_after_start_up_is_retried_and_named() {
    // Start-up refuses a missing program; one that goes missing later (a
    // deployment in progress) may come back, so its jobs are retried.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("errand-test-program");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let spec = CommandSpec {
        argv: vec![program.display().to_string()],
        ..CommandSpec::default()
    };
    let executor = CommandExecutor::new(spec).unwrap();
    std::fs::remove_file(&program).unwrap();
    let job = run_with(executor, None, json!(null), |j| {
        j.attempt > 0 && j.state != JobState::Running
    })
    .await;
    assert_eq!(job.state, JobState::Retryable);
    let error = &job.errors[0].error;
    assert!(
        error.contains("errand-test-program") && error.contains("No such file"),
        "{error}"
    );
}

#[test]
fn an_unusable_spec_is_refused_naming_its_key() {
    let refused = |spec: CommandSpec| CommandExecutor::new(spec).unwrap_err().to_string();
    assert_eq!(
        refused(CommandSpec::default()),
        "command: must name a program"
    );
    assert_eq!(
        refused(CommandSpec {
            argv: vec!["/nonexistent/errand-test-program".into()],
            ..CommandSpec::default()
        }),
        "command: program \"/nonexistent/errand-test-program\" not found"
    );
    assert_eq!(
        refused(CommandSpec {
            deadly_exit_codes: vec![0],
            ..sh("true")
        }),
        "deadly_exit_codes: 0 means success and cannot be mapped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_group_and_reaps_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "sleep 1000 & echo $! > {d}/grandchild; echo $$ > {d}/child; sleep 1000",
        d = dir.path().display()
    );
    let job = run_one(sh(&script), Some(Duration::from_secs(2)), json!(null)).await;
    assert_eq!(job.state, JobState::Retryable);
    assert_eq!(job.errors[0].error, "timed out after 2s");

    let grandchild = read_pid(&dir.path().join("grandchild"));
    let child = read_pid(&dir.path().join("child"));
    // The grandchild was reparented when the shell died; its new parent may
    // take a moment to reap it, so wait for it to stop being a live process.
    wait_until_dead(grandchild).await;
    // Our own child must be reaped by us: no zombie, no process at all.
    assert_eq!(proc_of(child), None, "child {child} still exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_background_processes_die_with_a_successful_job() {
    let dir = tempfile::tempdir().unwrap();
    // The grandchild keeps stdout open: without killing the group the read would hang.
    let script = format!(
        "sleep 1000 & echo $! > {}/grandchild; echo done",
        dir.path().display()
    );
    let job = run_one(sh(&script), None, json!(null)).await;
    assert_eq!(
        (job.state, job.result),
        (JobState::Completed, Some(json!("done")))
    );
    wait_until_dead(read_pid(&dir.path().join("grandchild"))).await;
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits until `pid` is gone (or a zombie of a parent that is not us).
async fn wait_until_dead(pid: u32) {
    eventually(DEADLINE, &format!("process {pid} to die"), || async {
        dead(pid)
    })
    .await;
}
