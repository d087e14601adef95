//! `errand serve` and `errand migrate` on a real PostgreSQL server: the
//! foreground flow works as on SQLite, bad input changes nothing, and
//! migrations run safely from several processes at once.

mod common;

use common::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};

const CONFIG: &str = r#"
[kinds.echo]
command = ["cat"]
"#;

#[test]
fn serve_on_postgres_runs_jobs_and_answers_waiting_callers() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let server = pg::serve(tmp.path(), &url, "errand", CONFIG);

    let (status, job) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "echo", "payload": {"x": [1, 2]}}),
    );
    assert_eq!(status, 201, "{job}");
    let (status, done) = get(&server.url(&format!("/v1/jobs/{}?wait=30s", job["id"])));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"x": [1, 2]}));
    assert_eq!(done["attempt"], 1);

    let out = server.cli(&["enqueue", "echo", r#"{"n": 1}"#, "--json", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited: Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(waited["state"], "completed", "{waited}");
    assert_eq!(waited["result"], json!({"n": 1}));

    // The jobs live in PostgreSQL, not in an SQLite file beside the config.
    assert_eq!(
        pg::sql(
            &url,
            &format!("SELECT state FROM jobs WHERE id = {}", waited["id"])
        ),
        "completed"
    );
    assert!(!tmp.path().join("errand.db").exists());

    // Bad input is refused and stores nothing.
    let (status, problem) = post(&server.url("/v1/jobs"), &json!({"kind": "nope"}));
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = post(
        &server.url("/v1/jobs/batch"),
        &json!({"jobs": [{"kind": "echo"}, {"kind": "echo", "priority": "high"}]}),
    );
    assert_eq!(status, 422, "{problem}");
    assert_eq!(pg::number(&url, "SELECT count(*) FROM jobs"), 2);
}

fn migrate(url: &str) -> Command {
    let mut cmd = Command::new(errand_bin());
    cmd.args(["migrate", "--database", url])
        .env_remove("ERRAND_CONFIG");
    cmd
}

#[test]
fn migrate_from_three_processes_at_once_applies_each_version_once() {
    let (_pg, url) = pg::fresh();
    let racing: Vec<_> = (0..3)
        .map(|_| {
            migrate(&url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = racing
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let said = String::from_utf8_lossy(&outputs[0].stdout).into_owned();
    let version: i64 = said
        .trim()
        .rsplit_once("schema version ")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no schema version in {said:?}"));
    assert!(version >= 1, "{said}");
    for out in &outputs {
        assert_eq!(String::from_utf8_lossy(&out.stdout), said);
    }
    // Each version applied once, and all of them.
    assert_eq!(
        pg::number(&url, "SELECT count(*) FROM schema_migrations"),
        version
    );
    assert_eq!(
        pg::number(&url, "SELECT max(version) FROM schema_migrations"),
        version
    );
    // Again: nothing to do, same answer.
    let again = migrate(&url).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), said);
}

#[test]
fn migrate_refuses_a_malformed_url_clearly() {
    let out = migrate("postgres://postgres@127.0.0.1:notaport/errand")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid PostgreSQL URL"), "{err}");
}
