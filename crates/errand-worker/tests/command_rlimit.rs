//! A command that cannot start because errand has no file descriptor left
//! (its pipes cannot be made) is the machine's fault: a deadly outcome,
//! which hands the job back without using an attempt, never a retry. One
//! test in its own binary, because it exhausts the test process's descriptors.

use errand_core::{Job, Outcome};
use errand_worker::{CommandExecutor, CommandSpec, Executor};
use tokio_util::sync::CancellationToken;

/// Opens /dev/null until the open-files limit is reached; dropping the
/// answer frees them.
fn exhaust_descriptors() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(nix::libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}

fn job() -> Job {
    let now = jiff::Timestamp::now();
    serde_json::from_value(serde_json::json!({
        "id": 1, "kind": "cmd", "queue": "default", "payload": {}, "priority": 0,
        "state": "running", "attempt": 1, "max_attempts": 3, "run_at": now, "created_at": now,
    }))
    .expect("a valid job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_for_lack_of_descriptors_is_deadly() {
    let executor = CommandExecutor::new(CommandSpec {
        argv: vec!["true".into()],
        ..CommandSpec::default()
    });
    // Runs once, which also starts the guardian, so the limit is met by the spawn.
    let ok = executor.execute(&job(), CancellationToken::new()).await;
    assert!(matches!(ok, Outcome::Success(_)), "{ok:?}");

    let held = exhaust_descriptors();
    let outcome = executor.execute(&job(), CancellationToken::new()).await;
    drop(held);
    match outcome {
        Outcome::Deadly(error) => assert!(
            error.contains("cannot start \"true\"") && error.contains("Too many open files"),
            "{error}"
        ),
        other => panic!("expected a deadly outcome, got {other:?}"),
    }
    let again = executor.execute(&job(), CancellationToken::new()).await;
    assert!(matches!(again, Outcome::Success(_)), "{again:?}");
}
