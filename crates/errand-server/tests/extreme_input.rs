//! Extreme durations and times in every field of the API that holds one:
//! each is answered 422 (body) or 400 (query) naming the field, changes
//! nothing, and never drops the connection (a panic in a handler would).

mod common;

use common::Server;
use errand_core::Outcome;
use reqwest::Method;
use serde_json::{Value, json};

/// Duration values as raw JSON: too large, negative, not numbers.
const DURATIONS: [&str; 12] = [
    "1e20",
    "1e300",
    "-1",
    "18446744073709551616",
    "3153600001",
    r#""1e20""#,
    r#""NaN""#,
    r#""inf""#,
    r#""-1s""#,
    r#""9999999999999d""#,
    r#""36501d""#,
    r#""PT99999999999999999H""#,
];

/// Times as raw JSON: beyond what can be represented, before 1970, after
/// now + 100 years, not times.
const TIMES: [&str; 7] = [
    r#""9999-12-31T23:59:59Z""#,
    r#""9999-12-30T00:00:00Z""#,
    r#""2200-01-01T00:00:00Z""#,
    r#""0001-01-01T00:00:00Z""#,
    r#""-009999-01-01T00:00:00Z""#,
    r#""1969-12-31T23:59:59Z""#,
    "1e20",
];

/// POSTs `body` (raw JSON text) to `path`, asserting 422 naming `field`
/// and an unchanged store.
async fn refused(server: &Server, path: &str, body: String, field: &str) {
    let before = server.stats().await;
    let answer = server
        .send(Method::POST, path, Some("application/json"), body.clone())
        .await;
    assert_eq!(answer.status.as_u16(), 422, "{body}: {}", answer.body);
    assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
    assert_eq!(server.stats().await, before, "{body} changed the store");
}

#[tokio::test]
async fn extreme_durations_and_times_in_bodies_are_422_naming_the_field() {
    let server = Server::start().await;
    let fields = [
        ("delay", ""),
        ("timeout", ""),
        ("unique_for", r#", "unique_key": "u""#),
    ];
    for value in DURATIONS {
        for (field, extra) in fields {
            let job = format!(r#"{{"kind": "resize", "{field}": {value}{extra}}}"#);
            refused(&server, "/v1/jobs", job.clone(), field).await;
            let batch = format!(r#"{{"jobs": [{{"kind": "resize"}}, {job}]}}"#);
            let at = format!("jobs[1].{field}");
            refused(&server, "/v1/jobs/batch", batch.clone(), &at).await;
            if field != "unique_for" {
                refused(&server, "/v1/batches", batch, &at).await;
                let batch = format!(r#"{{"jobs": [{{"kind": "resize"}}], "on_complete": {job}}}"#);
                let at = format!("on_complete.{field}");
                refused(&server, "/v1/batches", batch, &at).await;
            }
        }
    }
    for value in TIMES {
        let job = format!(r#"{{"kind": "resize", "run_at": {value}}}"#);
        refused(&server, "/v1/jobs", job.clone(), "run_at").await;
        let batch = format!(r#"{{"jobs": [{job}]}}"#);
        refused(&server, "/v1/jobs/batch", batch.clone(), "jobs[0].run_at").await;
        refused(&server, "/v1/batches", batch, "jobs[0].run_at").await;
    }
    // Beyond f64, JSON itself cannot hold the number: a syntax error, 400.
    let body = r#"{"kind": "resize", "delay": 1e400}"#;
    let answer = server
        .send(Method::POST, "/v1/jobs", Some("application/json"), body)
        .await;
    answer.assert_problem(400, None);
    let answer = server
        .post("/v1/jobs", &json!({"kind": "resize", "delay": 1e20}))
        .await;
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("must be at most 36500d (100 years)"),
        "{detail}"
    );
    let answer = server
        .post(
            "/v1/jobs",
            &json!({"kind": "resize", "run_at": "9999-12-30T00:00:00Z"}),
        )
        .await;
    let detail = answer.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("must be between 1970-01-01T00:00:00Z and 36500d (100 years) from now"),
        "{detail}"
    );
}

#[tokio::test]
async fn the_largest_accepted_values_work() {
    let server = Server::start().await;
    for body in [
        json!({"kind": "resize", "delay": "36500d", "timeout": 3153600000u64}),
        json!({"kind": "resize", "unique_key": "u", "unique_for": "36500d"}),
        json!({"kind": "resize", "run_at": "1970-01-01T00:00:00Z"}),
        json!({"kind": "resize", "run_at": "2100-01-01T00:00:00Z"}),
    ] {
        let answer = server.post("/v1/jobs", &body).await;
        assert_eq!(answer.status.as_u16(), 201, "{body}: {}", answer.body);
    }
}

#[tokio::test]
async fn extreme_waits_are_400_naming_wait() {
    let server = Server::start().await;
    let job = server.enqueue_empty("resize").await;
    server.run_next("default", Outcome::Success(None)).await;
    let batch = server
        .post("/v1/batches", &json!({"jobs": [{"kind": "resize"}]}))
        .await;
    assert_eq!(batch.status.as_u16(), 201, "{}", batch.body);
    let batch = batch.body["batch"]["id"].as_i64().unwrap();
    for wait in [
        "1e20",
        "1e300",
        "-1",
        "NaN",
        "inf",
        "9999999999999d",
        "36501d",
        "18446744073709551616",
        "1y",
    ] {
        for path in [format!("/v1/jobs/{job}"), format!("/v1/batches/{batch}")] {
            let answer = server.get(&format!("{path}?wait={wait}")).await;
            answer.assert_problem(400, Some("wait"));
        }
    }
    // The longest wait accepted is capped by max_wait, not refused: the
    // job has ended, so the answer is immediate.
    let answer = server.get(&format!("/v1/jobs/{job}?wait=36500d")).await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.body);
    assert_eq!(answer.body["state"], Value::from("completed"));
}
