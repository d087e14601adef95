//! Stored progress through the real binary (SQLite): a command job reports
//! progress, then blocks reading a FIFO the test controls; meanwhile
//! `GET /v1/jobs/{id}` and the listing show that progress. Once released it
//! reports again and completes, and its last value stays on the job.

mod common;

use common::*;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_running_jobs_progress_is_visible_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("release.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let script = format!(
        r#"echo '{{"errand":"progress","progress":{{"done":1,"of":2}}}}'; read go < '{}'; echo '{{"errand":"progress","progress":{{"done":2,"of":2}}}}'; echo finished"#,
        fifo.display()
    );
    let config = format!(
        "[kinds.steps]\ncommand = {}\n[kinds.idle]\ncommand = [\"true\"]\n",
        json!(["sh", "-c", script])
    );
    let server = Server::start_in(dir.path(), &config);

    // A job that has not run shows both fields, null.
    let (status, waiting) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "idle", "delay": "1h"}),
    );
    assert_eq!(status, 201, "{waiting}");
    assert_eq!(
        (&waiting["progress"], &waiting["progress_at"]),
        (&Value::Null, &Value::Null),
        "{waiting}"
    );
    assert!(waiting.as_object().unwrap().contains_key("progress"));

    let (status, enqueued) = post(&server.url("/v1/jobs"), &json!({"kind": "steps"}));
    assert_eq!(status, 201, "{enqueued}");
    let id = enqueued["id"].as_i64().unwrap();
    let midway = eventually(LIMIT, "the first progress to be visible", || {
        let j = job(&server, id);
        (j["progress"] != Value::Null).then_some(j)
    });
    assert_eq!(midway["state"], "running", "{midway}");
    assert_eq!(midway["progress"], json!({"done": 1, "of": 2}));
    assert!(midway["progress_at"].is_string(), "{midway}");
    let (status, listed) = get(&server.url("/v1/jobs?state=running"));
    assert_eq!(status, 200);
    let listed = listed["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("a listing: {listed}"))
        .iter()
        .find(|j| j["id"] == id)
        .cloned()
        .expect("the running job is listed");
    assert_eq!(listed["progress"], midway["progress"]);

    // Opening the FIFO for writing waits for the script's read: the job is
    // still running its first step until this line.
    writeln!(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap()).unwrap();
    let done = wait_state(&server, id, "completed", LIMIT);
    assert_eq!(done["progress"], json!({"done": 2, "of": 2}), "{done}");
    assert_eq!(done["result"], json!("finished"));
    assert!(done["progress_at"].as_str() >= midway["progress_at"].as_str());
}
