//! The HTTP API of the real binary: the foreground pattern (enqueue, then
//! wait for the result), unique keys, and bad input that must change nothing.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[server]
body_limit = "4KiB"
[kinds.echo]
command = ["python3", "-c", "import json,sys; print(json.dumps(json.load(sys.stdin)))"]
[kinds.later]
command = ["true"]
"#;

#[test]
fn enqueue_then_wait_returns_the_result() {
    let server = Server::start(CONFIG);
    let (status, job) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "echo", "payload": {"x": [1, 2]}}),
    );
    assert_eq!(status, 201);
    let started = Instant::now();
    let (status, done) = get(&server.url(&format!("/v1/jobs/{}?wait=20s", job["id"])));
    assert_eq!(status, 200);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result"], json!({"x": [1, 2]}));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn unique_key_returns_the_live_job() {
    let server = Server::start(CONFIG);
    let body = json!({"kind": "later", "delay": "1h", "unique_key": "report-42"});
    let (s1, first) = post(&server.url("/v1/jobs"), &body);
    let (s2, second) = post(&server.url("/v1/jobs"), &body);
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["duplicate"], true);
    assert_eq!(stats(&server)["total"]["scheduled"], 1);
}

#[test]
fn bad_input_gets_4xx_problem_json_and_changes_nothing() {
    let server = Server::start(CONFIG);
    post(
        &server.url("/v1/jobs"),
        &json!({"kind": "later", "delay": "1h"}),
    );
    let before = stats(&server);
    let client = http();
    let raw = |body: &str| {
        let r = client
            .post(server.url("/v1/jobs"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        let status = r.status().as_u16();
        (status, ctype, r.json::<serde_json::Value>().unwrap())
    };
    let big = "x".repeat(5000);
    let cases = [
        ("{\"kind\": ", 400, None),
        (
            r#"{"kind": "echo", "priority": "high"}"#,
            422,
            Some("priority"),
        ),
        (r#"{"kind": "echo", "colour": "red"}"#, 422, None),
        (r#"{"kind": "nope"}"#, 422, Some("kind")),
        (r#"{"kind": "echo", "delay": "soon"}"#, 422, Some("delay")),
        (
            r#"{"kind": "echo", "run_at": "yesterday"}"#,
            422,
            Some("run_at"),
        ),
        (
            r#"{"kind": "echo", "max_attempts": 0}"#,
            422,
            Some("max_attempts"),
        ),
        (
            &format!(r#"{{"kind": "echo", "payload": "{big}"}}"#),
            413,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let (got, ctype, problem) = raw(body);
        assert_eq!(got, status, "{body:.60}: {problem}");
        assert_eq!(ctype, "application/problem+json", "{body:.60}");
        if let Some(field) = field {
            assert_eq!(problem["field"], field, "{body:.60}: {problem}");
        }
    }
    let (_, _, unknown) = raw(r#"{"kind": "nope"}"#);
    assert_eq!(unknown["known_kinds"], json!(["echo", "later"]));

    let (status, problem) = post(
        &server.url("/v1/jobs/batch"),
        &json!({"jobs": [{"kind": "later"}, {"kind": "later", "priority": 1.5}]}),
    );
    assert_eq!(status, 422);
    assert!(
        problem["field"].as_str().unwrap().starts_with("jobs[1]"),
        "{problem}"
    );
    let (status, _) = post(
        &server.url("/v1/jobs/batch"),
        &json!({"jobs": [{"kind": "later"}, {"kind": "nope"}]}),
    );
    assert_eq!(status, 422);

    let r = client
        .post(server.url("/v1/jobs"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(get(&server.url("/v1/jobs/424242")).0, 404);
    assert_eq!(get(&server.url("/v1/jobs?state=done")).0, 400);

    assert_eq!(
        stats(&server),
        before,
        "a refused request changed the database"
    );
}
