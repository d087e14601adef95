//! How a command's report becomes the job's next state, with real
//! subprocesses and a real store: exit codes (defaults and configured
//! lists), status lines on stdout (snooze, progress), the per-kind process
//! limit, and an invalid spec refused before any job runs.

mod command_support;
mod common;

use command_support::*;
use common::*;
use errand_core::{Job, JobState, NewJob, Outcome};
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_worker::{Executor, ProgressSink, Worker};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The default budget of a job; refunds never change it.
const MAX_ATTEMPTS: u32 = 25;

/// Fails on its first run with `code` (saying why on stderr), then
/// succeeds. A deadly exit gives its attempt back, so `ERRAND_ATTEMPT` is 1
/// again on the next run: a marker file in `dir` tells the runs apart.
fn first_attempt_exits(code: i32, dir: &std::path::Path) -> CommandSpec {
    let marker = dir.join("ran-once");
    let marker = marker.display();
    sh(&format!(
        r#"if [ ! -e '{marker}' ]; then touch '{marker}'; echo 'database unreachable' >&2; exit {code}; fi; echo ok"#
    ))
}

/// Runs until the job is completed.
async fn run_to_completion(spec: CommandSpec) -> Job {
    run_until(spec, None, json!(null), |j| j.state == JobState::Completed).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exit_codes_follow_sysexits() {
    for (code, state) in [
        (64, JobState::Failed),
        (65, JobState::Failed),
        (75, JobState::Retryable),
        (1, JobState::Retryable),
        (70, JobState::Retryable),
    ] {
        let job = run_one(
            sh(&format!("echo 'reason {code}' >&2; exit {code}")),
            None,
            json!(null),
        )
        .await;
        assert_eq!((code, job.state), (code, state));
        assert_eq!(job.attempt, 1);
        assert_eq!(
            job.errors[0].error,
            format!("exit status {code}: reason {code}")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadly_exit_hands_the_job_back_without_using_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let job = run_to_completion(first_attempt_exits(69, dir.path())).await;
    assert_eq!(job.result, Some(json!("ok")));
    assert_eq!(
        (job.attempt, job.max_attempts),
        (1, MAX_ATTEMPTS),
        "the attempt was refunded"
    );
    assert_eq!(
        job.errors[0].error,
        "deadly (attempt not counted): exit status 69: database unreachable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_lists_override_the_defaults() {
    let custom = |script: &str| CommandSpec {
        permanent_exit_codes: vec![3],
        deadly_exit_codes: vec![4],
        retry_exit_codes: vec![64, 69],
        ..sh(script)
    };
    let job = run_one(custom("exit 3"), None, json!(null)).await;
    assert_eq!(job.state, JobState::Failed);
    for code in [64, 69] {
        let job = run_one(custom(&format!("exit {code}")), None, json!(null)).await;
        assert_eq!((code, job.state), (code, JobState::Retryable));
    }
    let marker_dir = tempfile::tempdir().unwrap();
    let deadly = CommandSpec {
        deadly_exit_codes: vec![4],
        ..first_attempt_exits(4, marker_dir.path())
    };
    let job = run_to_completion(deadly).await;
    assert_eq!((job.attempt, job.max_attempts), (1, MAX_ATTEMPTS));
}

#[test]
fn an_invalid_spec_is_refused_naming_the_key() {
    let spec = CommandSpec {
        permanent_exit_codes: vec![3],
        deadly_exit_codes: vec![3],
        ..sh("echo never")
    };
    assert_eq!(
        CommandExecutor::new(spec).unwrap_err().to_string(),
        "deadly_exit_codes: exit code 3 is also in permanent_exit_codes; a code may be in one list only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snooze_line_reschedules_without_using_an_attempt() {
    let before = jiff::Timestamp::now();
    let script = r#"echo 'working'; echo '{"errand": "snooze", "seconds": 120}'"#;
    let job = run_one(sh(script), None, json!(null)).await;
    let after = jiff::Timestamp::now();
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!((job.attempt, job.max_attempts), (0, MAX_ATTEMPTS));
    assert!(job.errors.is_empty(), "{:?}", job.errors);
    assert_eq!(job.result, None);
    let in_two_minutes = |t: jiff::Timestamp| t + jiff::SignedDuration::from_secs(120);
    assert!(
        in_two_minutes(before) <= job.run_at && job.run_at <= in_two_minutes(after),
        "run_at {} not 120 s after [{before}, {after}]",
        job.run_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snooze_line_counts_only_with_exit_zero() {
    let script = r#"echo '{"errand": "snooze", "seconds": 120}'; echo 'it broke' >&2; exit 3"#;
    let job = run_one(sh(script), None, json!(null)).await;
    assert_eq!(job.state, JobState::Retryable);
    assert_eq!(job.errors[0].error, "exit status 3: it broke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_are_stripped_from_the_result_and_the_last_kept() {
    // The last line's value is over the 4 KiB limit: it is dropped, and
    // the job keeps the one before.
    let too_big = "x".repeat(errand_core::progress::MAX_PROGRESS_BYTES);
    let script = format!(
        r#"echo '{{"errand":"progress","progress":{{"done":1,"of":2}}}}'
echo '{{"sent": 3}}'
echo '{{"errand":"progress","progress":"almost"}}'
echo '{{"errand":"progress","progress":"{too_big}"}}'"#
    );
    let job = run_one(sh(&script), None, json!(null)).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(json!({"sent": 3})));
    assert_eq!(job.progress, Some(json!("almost")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_processes_bounds_processes_alive_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("times");
    let spec = CommandSpec {
        max_processes: Some(2),
        env: BTreeMap::from([("LOG".to_string(), log.display().to_string())]),
        ..sh(r#"echo "$(date +%s%N) 1" >> "$LOG"; sleep 0.5; echo "$(date +%s%N) -1" >> "$LOG""#)
    };
    let (store, _db) = store().await;
    let mut worker = Worker::new(store.clone(), config("default", 6));
    worker.register(
        "cmd",
        errand_worker::testing::hour_backoff(None),
        Arc::new(CommandExecutor::new(spec).unwrap()),
    );
    let running = Running::spawn(worker);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(enqueue(&store, "cmd", json!(null)).await);
    }
    for id in ids {
        wait_state(&store, id, JobState::Completed).await;
    }
    running.stop().await;

    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let (t, delta) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), delta.parse().unwrap())
        })
        .collect();
    assert_eq!(events.len(), 12, "6 starts and 6 ends");
    events.sort();
    let (mut alive, mut most) = (0, 0);
    for (_, delta) in events {
        alive += delta;
        most = most.max(alive);
    }
    assert_eq!(most, 2, "at most 2 at once, and the limit was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_process_slot_ends_on_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let spec = CommandSpec {
        max_processes: Some(1),
        env: BTreeMap::from([("DIR".to_string(), dir.path().display().to_string())]),
        ..sh(r#"touch "$DIR/ran-$ERRAND_JOB_ID"; sleep "$(cat)""#)
    };
    let executor = Arc::new(CommandExecutor::new(spec).unwrap());
    let (store, _db) = store().await;
    let enqueued = store
        .enqueue(vec![
            NewJob::new("cmd", json!(30)),
            NewJob::new("cmd", json!(0)),
        ])
        .await
        .unwrap();
    let (long, short) = (enqueued[0].job.clone(), enqueued[1].job.clone());
    let ran = |job: &Job| dir.path().join(format!("ran-{}", job.id)).exists();

    let first_cancel = CancellationToken::new();
    let first = tokio::spawn({
        let (executor, cancel, long) = (executor.clone(), first_cancel.clone(), long.clone());
        async move {
            executor
                .execute(&long, cancel, ProgressSink::discard())
                .await
        }
    });
    eventually(DEADLINE, "the first process to start", || async {
        ran(&long)
    })
    .await;

    let cancel = CancellationToken::new();
    let waiting = tokio::spawn({
        let (executor, cancel, short) = (executor.clone(), cancel.clone(), short.clone());
        async move {
            executor
                .execute(&short, cancel, ProgressSink::discard())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished() && !ran(&short),
        "it waits for the slot"
    );
    cancel.cancel();
    let outcome = tokio::time::timeout(DEADLINE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Retry("cancelled while waiting for a process slot".into())
    );
    assert!(!ran(&short));

    first_cancel.cancel();
    let outcome = tokio::time::timeout(DEADLINE, first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome, Outcome::Retry("cancelled".into()));
    // The slot is free again.
    let outcome = executor
        .execute(&short, CancellationToken::new(), ProgressSink::discard())
        .await;
    assert_eq!(outcome, Outcome::Success(None));
    assert!(ran(&short));
}
