//! The API contract, fuzzed: scripts/contract.py runs schemathesis against a
//! live `errand serve` (real binary, SQLite, kinds, events and a schedule
//! configured, auth required with a token of every scope, loopback) and
//! its own `GET /v1/openapi.json`, with valid and invalid data: no 5xx, every answer as documented, and a run of invalid
//! data only changes nothing. schemathesis comes from the venv that
//! scripts/test.sh sets up; without it this test fails, saying so.

mod common;

use common::Server;
use std::path::PathBuf;
use std::process::Command;

/// Nothing changes by itself (no worker, no tick due for years), held
/// `?wait=` requests answer within a second, and every route but
/// `/healthz` needs a token, as on a network.
const CONFIG: &str = r#"
database = "sqlite://errand.db"

[server]
max_wait = "1s"
auth = "required"
# A batch one job over the limit must reach the batch check (422), not the
# body limit (413, which schemathesis does not expect for invalid items).
body_limit = "16MiB"

[worker]
enabled = false

[kinds.echo]
command = ["cat"]

[kinds.report]
command = ["cat"]
queue = "reports"

# Claimed over the worker routes (which the fuzzer reaches with `work`).
[kinds.thumb]
remote = true

[events."order.paid"]
listeners = ["echo", "report"]

[[schedules]]
name = "leap-day"
cron = "0 0 29 2 *"
kind = "report"
"#;

/// The venv's Python (ERRAND_CONTRACT_PYTHON, else `.venv` at the
/// workspace root, where scripts/test.sh installs schemathesis).
fn python() -> PathBuf {
    let python = common::venv_python("ERRAND_CONTRACT_PYTHON");
    let schemathesis = python.with_file_name("schemathesis");
    assert!(
        schemathesis.exists(),
        "schemathesis is missing: {} does not exist. Run scripts/test.sh (it installs \
         schemathesis into .venv) or point ERRAND_CONTRACT_PYTHON at a venv's python that has it",
        schemathesis.display()
    );
    python
}

/// A token with every scope the API's routes need, made beside the
/// running server; the secret `errand tokens create` printed. The fuzzer
/// calls `DELETE /v1/tokens/{name}` with it, and may even hit its name:
/// a token cannot revoke itself over the API (409), so the run keeps it.
fn server_token(server: &Server) -> String {
    server.create_token("contract", &["admin", "enqueue", "work"])
}

#[test]
fn the_api_keeps_its_openapi_contract_under_fuzzing() {
    let python = python();
    let server = Server::start(CONFIG);
    let token = server_token(&server);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/contract.py");
    let out = Command::new(python)
        .arg(script)
        .arg(&server.base)
        .env("ERRAND_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "contract run failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    let cases: u64 = stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("contract: ")?
                .split_once(" cases in ")?
                .0
                .parse()
                .ok()
        })
        .expect("a case count");
    assert!(cases >= 2000, "only {cases} cases:\n{stdout}");
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}
