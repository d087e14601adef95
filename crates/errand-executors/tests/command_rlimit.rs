//! A command that cannot start because errand has no file descriptor left
//! (its pipes cannot be made) is the machine's fault: a deadly outcome,
//! which hands the job back without using an attempt, never a retry. One
//! test in its own binary, because it exhausts the test process's descriptors.

use errand_core::{Job, Outcome};
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_worker::testing::{bare_job, exhaust_descriptors};
use errand_worker::{Executor, ProgressSink};
use tokio_util::sync::CancellationToken;

fn job() -> Job {
    bare_job("cmd", 1, serde_json::json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_for_lack_of_descriptors_is_deadly() {
    let executor = CommandExecutor::new(CommandSpec {
        argv: vec!["true".into()],
        ..CommandSpec::default()
    })
    .unwrap();
    // Runs once, which also starts the guardian, so the limit is met by the spawn.
    let ok = executor
        .execute(&job(), CancellationToken::new(), ProgressSink::discard())
        .await;
    assert!(matches!(ok, Outcome::Success(_)), "{ok:?}");

    let held = exhaust_descriptors();
    let outcome = executor
        .execute(&job(), CancellationToken::new(), ProgressSink::discard())
        .await;
    drop(held);
    match outcome {
        Outcome::Deadly(error) => assert!(
            error.contains("cannot start \"true\"") && error.contains("Too many open files"),
            "{error}"
        ),
        other => panic!("expected a deadly outcome, got {other:?}"),
    }
    let again = executor
        .execute(&job(), CancellationToken::new(), ProgressSink::discard())
        .await;
    assert!(matches!(again, Outcome::Success(_)), "{again:?}");
}
