//! The audit log and token management end to end with the real binary:
//! admin actions over the API with a named admin token each leave one
//! entry naming it, refused ones none; `errand audit` lists them; the token
//! API's round trip (the secret works, listings never show it, revocation
//! stops it); and without auth the actor is `local CLI`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Auth on over loopback, a worker that completes `echo` jobs at once.
const CONFIG: &str = r#"
database = "sqlite://errand.db"

[server]
auth = "required"

[kinds.echo]
command = ["cat"]
"#;

/// `method path` with `body` and a bearer `secret`; status and JSON body.
fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<Value>,
    secret: &str,
) -> (u16, Value) {
    let mut req = http().request(method, server.url(path)).bearer_auth(secret);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The entries' (actor, action, target, change), newest first.
fn entries(page: &Value) -> Vec<(String, String, String, Value)> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {page}"))
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap().to_string();
            (
                text("actor"),
                text("action"),
                text("target"),
                e["change"].clone(),
            )
        })
        .collect()
}

fn entry(
    actor: &str,
    action: &str,
    target: &str,
    change: Value,
) -> (String, String, String, Value) {
    (actor.into(), action.into(), target.into(), change)
}

#[test]
fn admin_actions_over_the_api_are_audited_with_the_token_name() {
    let server = Server::start(CONFIG);
    let ops = server.create_token("ops", &["admin", "enqueue"]);

    // Cancel and retry a job that waits an hour, so the worker leaves it be
    // until the retry makes it available.
    let (status, later) = call(
        &server,
        Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "echo", "delay": "1h"})),
        &ops,
    );
    assert_eq!(status, 201, "{later}");
    let later = later["id"].as_i64().unwrap();
    let cancel = format!("/v1/jobs/{later}/cancel");
    assert_eq!(call(&server, Method::POST, &cancel, None, &ops).0, 200);
    let retry = format!("/v1/jobs/{later}/retry");
    assert_eq!(call(&server, Method::POST, &retry, None, &ops).0, 200);
    assert_eq!(
        call(&server, Method::POST, "/v1/queues/mail/pause", None, &ops).0,
        200
    );
    assert_eq!(
        call(&server, Method::POST, "/v1/queues/mail/resume", None, &ops).0,
        200
    );

    // Refused: cancelling a completed job, revoking an unknown token or the
    // caller's own, pausing with a bad name.
    let (_, done) = call(
        &server,
        Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "echo"})),
        &ops,
    );
    let done = done["id"].as_i64().unwrap();
    eventually(Duration::from_secs(20), "the job to complete", || {
        let (_, job) = call(
            &server,
            Method::GET,
            &format!("/v1/jobs/{done}"),
            None,
            &ops,
        );
        job["state"] == "completed"
    });
    let (status, problem) = call(
        &server,
        Method::POST,
        &format!("/v1/jobs/{done}/cancel"),
        None,
        &ops,
    );
    assert_eq!(status, 409, "{problem}");
    let (status, problem) = call(&server, Method::DELETE, "/v1/tokens/nobody", None, &ops);
    assert_eq!(status, 404, "{problem}");
    let (status, problem) = call(&server, Method::DELETE, "/v1/tokens/ops", None, &ops);
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("cannot revoke itself"),
        "{problem}"
    );

    // The token API: the secret is answered once and works; listings
    // never show it; a read token cannot see the log; revocation stops it.
    let (status, created) = call(
        &server,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "dash", "scopes": ["read"]})),
        &ops,
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "dash");
    assert_eq!(created["scopes"], json!(["read"]));
    let dash = created["secret"].as_str().unwrap().to_string();
    assert!(dash.starts_with("errand_"), "{created}");
    assert_eq!(call(&server, Method::GET, "/v1/stats", None, &dash).0, 200);
    assert_eq!(call(&server, Method::GET, "/v1/audit", None, &dash).0, 403);
    assert_eq!(call(&server, Method::GET, "/v1/tokens", None, &dash).0, 403);
    let (status, list) = call(&server, Method::GET, "/v1/tokens", None, &ops);
    assert_eq!(status, 200, "{list}");
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dash", "ops"]);
    let text = list.to_string();
    assert!(
        !text.contains(&dash) && !text.contains(&ops) && !text.contains("errand_"),
        "{text}"
    );
    assert!(list["tokens"][0].get("secret").is_none() && list["tokens"][0].get("hash").is_none());
    let (status, problem) = call(
        &server,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "dash", "scopes": ["read"]})),
        &ops,
    );
    assert_eq!(status, 409, "a taken name: {problem}");
    let (status, problem) = call(
        &server,
        Method::POST,
        "/v1/tokens",
        Some(json!({"name": "bad", "scopes": ["read", "write"]})),
        &ops,
    );
    assert_eq!(
        (status, problem["field"].as_str()),
        (422, Some("scopes[1]")),
        "{problem}"
    );
    let (status, _) = call(&server, Method::DELETE, "/v1/tokens/dash", None, &ops);
    assert_eq!(status, 204);
    eventually(
        Duration::from_secs(3),
        "the revoked token to be refused",
        || call(&server, Method::GET, "/v1/stats", None, &dash).0 == 401,
    );

    let (status, page) = call(&server, Method::GET, "/v1/audit", None, &ops);
    assert_eq!(status, 200, "{page}");
    let later = later.to_string();
    assert_eq!(
        entries(&page),
        vec![
            entry("ops", "token.revoke", "dash", json!({"scopes": ["read"]})),
            entry("ops", "token.create", "dash", json!({"scopes": ["read"]})),
            entry("ops", "queue.resume", "mail", json!({"paused": false})),
            entry("ops", "queue.pause", "mail", json!({"paused": true})),
            entry(
                "ops",
                "job.retry",
                &later,
                json!({"from": "cancelled", "to": "available"})
            ),
            entry(
                "ops",
                "job.cancel",
                &later,
                json!({"from": "scheduled", "to": "cancelled"})
            ),
            entry(
                "local CLI",
                "token.create",
                "ops",
                json!({"scopes": ["enqueue", "admin"]})
            ),
        ],
        "one entry per action, none for the refused ones"
    );
    assert!(
        !page.to_string().contains("errand_"),
        "no secret in the log: {page}"
    );

    // Filters and paging over the API, and a bad filter named.
    let (_, only) = call(
        &server,
        Method::GET,
        "/v1/audit?actor=ops&action=queue.pause",
        None,
        &ops,
    );
    assert_eq!(entries(&only).len(), 1, "{only}");
    let (_, first) = call(&server, Method::GET, "/v1/audit?limit=4", None, &ops);
    let cursor = first["next_cursor"].as_i64().expect("a next cursor");
    let (_, rest) = call(
        &server,
        Method::GET,
        &format!("/v1/audit?limit=4&cursor={cursor}"),
        None,
        &ops,
    );
    assert_eq!(
        entries(&first).len() + entries(&rest).len(),
        7,
        "{first} {rest}"
    );
    let (status, problem) = call(
        &server,
        Method::GET,
        "/v1/audit?action=job.delete",
        None,
        &ops,
    );
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("action")),
        "{problem}"
    );

    // `errand audit` reads the same log through the API with the token.
    let out = server.cli(&["audit", "--token", &ops]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("ACTOR") && table.contains("job.cancel") && table.contains("local CLI"),
        "{table}"
    );
    let out = server.cli(&[
        "audit",
        "--json",
        "--action",
        "token.create",
        "--token",
        &ops,
    ]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries(&json).len(), 2, "{json}");
    let out = server.cli(&["audit", "--action", "nope", "--token", &ops]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--action"));
    let out = server.cli(&["audit"]);
    assert!(!out.status.success(), "no token, auth on");
    assert!(
        !server.log_text().contains(&ops[7..]),
        "no secret in the log"
    );
}

#[test]
fn without_auth_the_actor_is_the_local_cli() {
    let server = Server::start(
        "database = \"sqlite://errand.db\"\n[worker]\nenabled = false\n[kinds.echo]\ncommand = [\"cat\"]\n",
    );
    let (status, job) = post(&server.url("/v1/jobs"), &json!({"kind": "echo"}));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_i64().unwrap().to_string();
    let out = server.cli(&["jobs", "cancel", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.cli(&[
        "tokens",
        "revoke",
        "nobody",
        "--config",
        server.config.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "no such token");
    let out = server.cli(&["audit", "--json"]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        entries(&page),
        vec![entry(
            "local CLI",
            "job.cancel",
            &id,
            json!({"from": "available", "to": "cancelled"})
        )]
    );
}
