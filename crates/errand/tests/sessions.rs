//! Dashboard sessions end to end with the real binary (SQLite, loopback):
//! login sets a strict HttpOnly cookie (Secure only under TLS), the cookie
//! with its CSRF token may change state and without it changes nothing,
//! sessions end by logout, expiry and token revocation, a token that
//! cannot read cannot log in, state-changing requests a browser marks as
//! cross-site are refused with auth on and off, and no secret is logged.

mod common;

use common::{Server, eventually, self_signed};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use std::time::Duration;

const AUTH: &str = r#"
[server]
auth = "required"

[worker]
enabled = false

[kinds.echo]
command = ["cat"]
"#;

/// A status, the `Set-Cookie` header (if any) and the JSON body (null if none).
struct Answer {
    status: u16,
    set_cookie: Option<String>,
    body: Value,
}

fn answer(resp: Response) -> Answer {
    let status = resp.status().as_u16();
    let set_cookie = resp
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().unwrap_or(Value::Null);
    Answer {
        status,
        set_cookie,
        body,
    }
}

fn send(req: RequestBuilder) -> Answer {
    answer(req.send().unwrap())
}

/// A logged-in browser: its cookie (`errand_session=…`) and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

/// Logs in with `secret` over `http`; the session and the login's answer.
fn login(http: &Client, server: &Server, secret: &str) -> (Session, Answer) {
    let answer = send(
        http.post(server.url("/v1/session"))
            .json(&json!({ "token": secret })),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    let set_cookie = answer.set_cookie.clone().expect("a Set-Cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = answer.body["csrf_token"].as_str().unwrap().to_string();
    (Session { cookie, csrf }, answer)
}

/// Whether queue `name` is paused, read with `secret`.
fn paused(http: &Client, server: &Server, secret: &str, name: &str) -> bool {
    let queues = send(http.get(server.url("/v1/queues")).bearer_auth(secret));
    queues.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == name && q["paused"] == true)
}

/// `errand serve` with [`AUTH`] at debug level, in `dir`.
fn serve_debug(dir: &std::path::Path) -> Server {
    let config = dir.join("errand.toml");
    std::fs::write(&config, AUTH).unwrap();
    let args = ["serve", "--config", config.to_str().unwrap()];
    let extra = ["--listen", "127.0.0.1:0", "--log-level", "debug"];
    let mut server = Server::spawn(dir, &[&args[..], &extra[..]].concat())
        .unwrap_or_else(|log| panic!("errand serve did not start; log:\n{log}"));
    server.config = config;
    server
}

#[test]
fn a_session_cookie_acts_as_its_token_and_needs_the_csrf_token_to_change_state() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_debug(dir.path());
    let http = common::http();
    let admin = server.create_token("ops", &["admin"]);
    let enqueue = server.create_token("web-app", &["enqueue"]);
    let job = send(
        http.post(server.url("/v1/jobs"))
            .bearer_auth(&enqueue)
            .json(&json!({"kind": "echo"})),
    );
    assert_eq!(job.status, 201, "{}", job.body);

    // A token that cannot read cannot log in; an unknown one is 401.
    let refused = send(
        http.post(server.url("/v1/session"))
            .json(&json!({ "token": enqueue })),
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("read or admin"), "{detail}");
    assert_eq!(refused.set_cookie, None);
    let unknown = send(
        http.post(server.url("/v1/session"))
            .json(&json!({"token": format!("errand_{}", "0".repeat(64))})),
    );
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    assert_eq!(unknown.set_cookie, None);

    let (session, login) = login(&http, &server, &admin);
    let set_cookie = login.set_cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(
            set_cookie.split("; ").any(|a| a == attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    assert!(session.cookie.starts_with("errand_session=errand_session_"));
    assert_eq!(login.body["name"], "ops");
    assert_eq!(login.body["scopes"], json!(["admin"]));
    assert_eq!(session.csrf.len(), 64);

    // Who am I, by cookie: the same session; a GET needs no CSRF token.
    let me = send(
        http.get(server.url("/v1/session"))
            .header(COOKIE, &session.cookie),
    );
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["name"], "ops");
    assert_eq!(me.body["csrf_token"], session.csrf.as_str());
    assert_eq!(me.body["expires_at"], login.body["expires_at"]);

    // Without the CSRF token, or with a wrong one: refused, nothing changes.
    let pause = || {
        http.post(server.url("/v1/queues/default/pause"))
            .header(COOKIE, &session.cookie)
    };
    let missing = send(pause());
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap()
            .contains("missing CSRF token"),
        "{}",
        missing.body
    );
    let wrong = send(pause().header("X-CSRF-Token", "0".repeat(64)));
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        wrong.body["detail"]
            .as_str()
            .unwrap()
            .contains("wrong CSRF token")
    );
    let wrong_form = send(
        pause()
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("_csrf=nope"),
    );
    assert_eq!(wrong_form.status, 403, "{}", wrong_form.body);
    assert!(
        !paused(&http, &server, &admin, "default"),
        "refused: still running"
    );

    // With it (header, or a form's `_csrf` field): done as the token.
    let ok = send(pause().header("X-CSRF-Token", &session.csrf));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(paused(&http, &server, &admin, "default"));
    let resumed = send(
        http.post(server.url("/v1/queues/default/resume"))
            .header(COOKIE, &session.cookie)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("x=1&_csrf={}", session.csrf)),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert!(!paused(&http, &server, &admin, "default"));

    // Logout needs the CSRF token too, then ends the session.
    let logout = || {
        http.delete(server.url("/v1/session"))
            .header(COOKIE, &session.cookie)
    };
    assert_eq!(send(logout()).status, 403);
    let out = send(logout().header("X-CSRF-Token", &session.csrf));
    assert_eq!(out.status, 204);
    let cleared = out.set_cookie.unwrap();
    assert!(
        cleared.starts_with("errand_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let after = send(
        http.get(server.url("/v1/session"))
            .header(COOKIE, &session.cookie),
    );
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(
        after.body["detail"]
            .as_str()
            .unwrap()
            .contains("log in again")
    );

    // The debug log names the token, never a secret.
    let log = server.log_text();
    assert!(log.contains("session opened"), "{log}");
    let session_secret = session.cookie.split_once('=').unwrap().1;
    for secret in [session_secret, &session.csrf, &admin, &enqueue] {
        assert!(!log.contains(&secret[8..]), "a secret in the log:\n{log}");
    }
}

#[test]
fn revoking_the_token_ends_its_sessions() {
    let server = Server::start(AUTH);
    let http = common::http();
    let reader = server.create_token("viewer", &["read"]);
    let (session, login) = login(&http, &server, &reader);
    assert_eq!(login.body["scopes"], json!(["read"]));
    let whoami = || {
        send(
            http.get(server.url("/v1/session"))
                .header(COOKIE, &session.cookie),
        )
        .status
    };
    assert_eq!(whoami(), 200);
    // A read session may not do what only admin may.
    let pause = send(
        http.post(server.url("/v1/queues/default/pause"))
            .header(COOKIE, &session.cookie)
            .header("X-CSRF-Token", &session.csrf),
    );
    assert_eq!(pause.status, 403, "{}", pause.body);
    assert_eq!(pause.body["required_scope"], "admin");

    let out = server.cli(&[
        "tokens",
        "revoke",
        "viewer",
        "--config",
        server.config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(whoami(), 401, "sessions are not cached: revoked at once");
}

#[test]
fn an_expired_session_is_401() {
    let server = Server::start(&AUTH.replace("[server]", "[server]\nsession_ttl = \"1s\""));
    let http = common::http();
    let reader = server.create_token("viewer", &["read"]);
    let (session, login) = login(&http, &server, &reader);
    let set_cookie = login.set_cookie.unwrap();
    assert!(set_cookie.contains("Max-Age=1"), "{set_cookie}");
    let whoami = || {
        send(
            http.get(server.url("/v1/session"))
                .header(COOKIE, &session.cookie),
        )
        .status
    };
    assert_eq!(whoami(), 200);
    eventually(Duration::from_secs(5), "the session to expire", || {
        whoami() == 401
    });
}

#[test]
fn a_bad_session_ttl_stops_start_up_naming_the_key() {
    for bad in ["0s", "soon"] {
        let err = common::refused_config(&format!("[server]\nsession_ttl = \"{bad}\"\n"));
        assert!(err.contains("session_ttl"), "{bad}: {err}");
    }
}

/// Sends a pause of queue `default` with `headers`; the status.
fn pause_with(http: &Client, server: &Server, headers: &[(&str, &str)]) -> u16 {
    let mut req = http.post(server.url("/v1/queues/default/pause"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    send(req).status
}

#[test]
fn cross_site_changes_are_refused_with_auth_off() {
    let server = Server::start("[worker]\nenabled = false\n\n[kinds.echo]\ncommand = [\"cat\"]\n");
    let http = common::http();
    let origin = server.base.clone();
    for cross in [
        &[(ORIGIN.as_str(), "http://evil.example")][..],
        &[("sec-fetch-site", "cross-site")],
        &[(ORIGIN.as_str(), "null")],
        // Same host, another port: another origin.
        &[(ORIGIN.as_str(), "http://127.0.0.1:1")],
    ] {
        assert_eq!(pause_with(&http, &server, cross), 403, "{cross:?}");
        let login = send(
            http.post(server.url("/v1/session"))
                .header(cross[0].0, cross[0].1)
                .json(&json!({"token": "x"})),
        );
        assert_eq!(login.status, 403, "{cross:?}");
    }
    let queues = common::get(&server.url("/v1/queues")).1;
    assert_eq!(queues["queues"], json!([]), "nothing was paused");
    // A cross-site GET is served: it changes nothing.
    let read = send(
        http.get(server.url("/v1/stats"))
            .header(ORIGIN, "http://evil.example"),
    );
    assert_eq!(read.status, 200);

    // The dashboard's own page (same origin, no cookie) and curl pass.
    let same = [
        (ORIGIN.as_str(), origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(pause_with(&http, &server, &same), 200);
    assert_eq!(pause_with(&http, &server, &[]), 200);

    // With auth off everyone is `local` with admin; login opens nothing.
    let me = common::get(&server.url("/v1/session")).1;
    assert_eq!(me["name"], "local");
    assert_eq!(me["auth"], "off");
    assert_eq!(me["scopes"], json!(["admin"]));
    assert!(me["csrf_token"].is_string(), "{me}");
    let login = send(
        http.post(server.url("/v1/session"))
            .json(&json!({"token": "anything"})),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["name"], "local");
    assert_eq!(login.set_cookie, None);
    assert_eq!(send(http.delete(server.url("/v1/session"))).status, 204);
}

#[test]
fn cross_site_changes_are_refused_with_auth_on_even_with_a_token() {
    let server = Server::start(AUTH);
    let http = common::http();
    let admin = server.create_token("ops", &["admin"]);
    let (session, _) = login(&http, &server, &admin);
    let evil = [(ORIGIN.as_str(), "http://evil.example")];
    let bearer = format!("Bearer {admin}");
    let with_token = [evil[0], ("authorization", bearer.as_str())];
    assert_eq!(pause_with(&http, &server, &with_token), 403);
    let with_cookie = [
        evil[0],
        ("cookie", session.cookie.as_str()),
        ("x-csrf-token", session.csrf.as_str()),
    ];
    assert_eq!(pause_with(&http, &server, &with_cookie), 403);
    let login = send(
        http.post(server.url("/v1/session"))
            .header(ORIGIN, "http://evil.example")
            .json(&json!({ "token": admin })),
    );
    assert_eq!(login.status, 403, "no login from another site");
    assert!(!paused(&http, &server, &admin, "default"));

    let same = [
        (ORIGIN.as_str(), server.base.as_str()),
        ("cookie", session.cookie.as_str()),
        ("x-csrf-token", session.csrf.as_str()),
    ];
    assert_eq!(pause_with(&http, &server, &same), 200);
    assert!(paused(&http, &server, &admin, "default"));
}

#[test]
fn the_cookie_is_secure_under_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pem = self_signed(dir.path());
    let config = AUTH.replace(
        "[server]",
        "[server]\ntls = { cert = \"server.crt\", key = \"server.key\" }",
    );
    let server = Server::start_in(dir.path(), &config);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    errand_client::install_tls_provider();
    let http = Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let admin = server.create_token("ops", &["admin"]);
    let (session, login) = login(&http, &server, &admin);
    let set_cookie = login.set_cookie.unwrap();
    assert!(
        set_cookie.split("; ").any(|a| a == "Secure"),
        "{set_cookie}"
    );
    // Same origin over HTTPS (default port rules apply to https://).
    let same = [
        (ORIGIN.as_str(), server.base.as_str()),
        ("cookie", session.cookie.as_str()),
        ("x-csrf-token", session.csrf.as_str()),
    ];
    assert_eq!(pause_with(&http, &server, &same), 200);
    let logout = send(
        http.delete(server.url("/v1/session"))
            .header(COOKIE, &session.cookie)
            .header("X-CSRF-Token", &session.csrf),
    );
    assert!(
        logout.set_cookie.unwrap().contains("; Secure"),
        "the clearing cookie is Secure too"
    );
}
