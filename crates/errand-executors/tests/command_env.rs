//! The command executor's environment allow-list, with real subprocesses:
//! unlisted variables of errand's environment stay out, listed ones, `PATH`,
//! `env` and the job's `ERRAND_*` get in; without a list everything is
//! inherited but errand's own `ERRAND_*` settings (`ERRAND_DATABASE`). One test in its own binary, because it sets variables of the
//! test process itself.

mod command_support;
mod common;

use command_support::*;
use errand_core::JobState;
use errand_executors::command::CommandSpec;
use serde_json::json;
use std::collections::BTreeMap;

/// Prints the variables the child sees, one `NAME=value` a line, sorted.
const PRINT_ENV: &str = r#"for v in LISTED_SECRET UNLISTED_SECRET ERRAND_DATABASE FROM_SPEC ERRAND_JOB_ID PATH; do eval "echo $v=\${$v-unset}"; done"#;

/// What the child printed, with its job id in place of `{id}`.
async fn seen(env_allow: Option<Vec<String>>) -> String {
    let spec = CommandSpec {
        env_allow,
        env: BTreeMap::from([("FROM_SPEC".to_string(), "spec".to_string())]),
        ..sh(PRINT_ENV)
    };
    let job = run_one(spec, None, json!(null)).await;
    assert_eq!(job.state, JobState::Completed, "{:?}", job.errors);
    let text = job.result.as_ref().unwrap().as_str().unwrap();
    text.replace(
        &format!("ERRAND_JOB_ID={}\n", job.id),
        "ERRAND_JOB_ID={id}\n",
    )
}

#[test]
fn env_allow_passes_only_listed_variables() {
    // SAFETY: set before any other thread of this binary exists (the
    // runtime is built below and this is the binary's only test).
    unsafe {
        std::env::set_var("LISTED_SECRET", "listed");
        std::env::set_var("UNLISTED_SECRET", "unlisted");
        std::env::set_var("ERRAND_DATABASE", "postgres://u:p@db/jobs");
    }
    let path = std::env::var("PATH").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let allowed = runtime.block_on(seen(Some(vec!["LISTED_SECRET".into()])));
    assert_eq!(
        allowed,
        format!(
            "LISTED_SECRET=listed\nUNLISTED_SECRET=unset\nERRAND_DATABASE=unset\nFROM_SPEC=spec\nERRAND_JOB_ID={{id}}\nPATH={path}"
        )
    );

    let inherited = runtime.block_on(seen(None));
    assert_eq!(
        inherited,
        format!(
            "LISTED_SECRET=listed\nUNLISTED_SECRET=unlisted\nERRAND_DATABASE=unset\nFROM_SPEC=spec\nERRAND_JOB_ID={{id}}\nPATH={path}"
        )
    );
}
