//! Bearer-token auth over real HTTP on loopback with a real SQLite store:
//! every route of the scope table answers 401 without a token, 403 with a
//! token lacking its scope and passes with it; restricted enqueue scopes;
//! malformed headers; revocation within the cache's lifetime; the client's
//! token.

mod common;

use common::{Server, config};
use errand_core::Store;
use errand_core::audit::AuditActor;
use errand_core::auth::{Access, NewToken, Scopes, Secret};
use errand_server::{RouteAccess, TOKEN_CACHE_TTL, route_scopes};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn auth_server() -> Server {
    let mut config = config();
    config.auth_required = true;
    Server::with(config).await
}

/// Stores a token called `name` with `scopes`; its secret.
async fn token(server: &Server, name: &str, scopes: &[&str]) -> String {
    let secret = Secret::generate().unwrap();
    let scopes = Scopes::parse(scopes.iter().copied()).unwrap();
    let token = NewToken::new(name, scopes, secret.hash()).unwrap();
    server
        .store
        .create_token(token, &AuditActor::Local)
        .await
        .unwrap();
    secret.expose().to_string()
}

/// Sends `method path` with a JSON `body` and an optional bearer token.
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: &Value,
    secret: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(secret) = secret {
        req = req.header(AUTHORIZATION, format!("Bearer {secret}"));
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Every scope name that does not grant `access` (admin grants read).
fn lacking(access: Access) -> Vec<&'static str> {
    Access::ALL
        .iter()
        .filter(|a| !Scopes::parse([a.as_str()]).unwrap().allows(access))
        .map(|a| a.as_str())
        .collect()
}

#[tokio::test]
async fn every_route_answers_401_403_or_passes_by_its_scope() {
    errand_client::install_tls_provider();
    let server = auth_server().await;
    let mut with = std::collections::BTreeMap::new();
    let mut without = std::collections::BTreeMap::new();
    for access in Access::ALL {
        with.insert(
            access,
            token(&server, &format!("has-{access}"), &[access.as_str()]).await,
        );
        let others = lacking(access);
        without.insert(
            access,
            token(&server, &format!("lacks-{access}"), &others).await,
        );
    }
    let routes = route_scopes();
    assert!(
        routes.len() >= 22,
        "the table lists every route: {routes:?}"
    );
    for (method, template, access) in routes {
        let path = template.replace("{id}", "1").replace("{name}", "q");
        let what = format!("{method} {template}");
        let body = json!({});
        match access {
            RouteAccess::Open => {
                let (status, ..) = call(&server, method.clone(), &path, &body, None).await;
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{what} is open");
                assert_ne!(status, StatusCode::NOT_FOUND, "{what} is served");
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{what} is served");
            }
            RouteAccess::Needs(access) => {
                let (status, headers, problem) =
                    call(&server, method.clone(), &path, &body, None).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} without a token");
                assert!(
                    headers[WWW_AUTHENTICATE]
                        .to_str()
                        .unwrap()
                        .starts_with("Bearer"),
                    "{what}"
                );
                assert_eq!(headers[CONTENT_TYPE], "application/problem+json", "{what}");
                assert_eq!(problem["status"], 401, "{what}: {problem}");

                let (status, _, problem) = call(
                    &server,
                    method.clone(),
                    &path,
                    &body,
                    Some(&without[&access]),
                )
                .await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{what} lacking {access}");
                assert_eq!(
                    problem["required_scope"],
                    access.as_str(),
                    "{what}: {problem}"
                );
                assert!(
                    problem["detail"]
                        .as_str()
                        .unwrap()
                        .contains(access.as_str()),
                    "{what}: {problem}"
                );

                let (status, _, problem) =
                    call(&server, method.clone(), &path, &body, Some(&with[&access])).await;
                // Past auth: the handler answers (a 404 for job 1 is its
                // answer; a missing route would say "no route").
                let handled = !matches!(
                    status,
                    StatusCode::UNAUTHORIZED
                        | StatusCode::FORBIDDEN
                        | StatusCode::METHOD_NOT_ALLOWED
                ) && !problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no route"));
                assert!(handled, "{what} with {access}: {status} {problem}");
            }
        }
    }
    server.stop().await;
}

/// Paths outside the table do not exist, with or without a token, and a
/// known path with another method is 405: the router serves the table only.
#[tokio::test]
async fn only_the_table_is_served() {
    errand_client::install_tls_provider();
    let server = auth_server().await;
    let admin = token(&server, "admin", &["admin", "enqueue", "work", "metrics"]).await;
    for secret in [None, Some(admin.as_str())] {
        let (status, ..) = call(&server, Method::GET, "/v1/secrets", &json!({}), secret).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, ..) = call(&server, Method::DELETE, "/v1/jobs", &json!({}), secret).await;
        assert!(
            matches!(
                status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNAUTHORIZED
            ),
            "{status}"
        );
    }
    server.stop().await;
}

/// `enqueue:send_email,order.paid` may enqueue that kind and publish that
/// event only; a batch with one other kind (or another on-complete kind)
/// is refused whole, naming the job, and changes nothing.
#[tokio::test]
async fn a_restricted_enqueue_scope_allows_only_its_kinds_and_events() {
    errand_client::install_tls_provider();
    let server = auth_server().await;
    let secret = token(&server, "mailer", &["enqueue:send_email,order.paid"]).await;
    let post = |path: &'static str, body: Value| {
        let (server, secret) = (&server, secret.clone());
        async move { call(server, Method::POST, path, &body, Some(&secret)).await }
    };
    let refused = |answer: &(StatusCode, reqwest::header::HeaderMap, Value), field: &str| {
        let (status, _, problem) = answer;
        assert_eq!(*status, StatusCode::FORBIDDEN, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["required_scope"], "enqueue", "{problem}");
    };

    let ok = post("/v1/jobs", json!({"kind": "send_email"})).await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.2);
    let no = post("/v1/jobs", json!({"kind": "resize"})).await;
    refused(&no, "kind");
    assert!(
        no.2["detail"].as_str().unwrap().contains("\"resize\""),
        "{}",
        no.2
    );

    let batch = json!({"jobs": [{"kind": "send_email"}, {"kind": "resize"}]});
    refused(&post("/v1/jobs/batch", batch).await, "jobs[1].kind");
    let batch = json!({"jobs": [{"kind": "resize"}]});
    refused(&post("/v1/batches", batch).await, "jobs[0].kind");
    let batch = json!({"jobs": [{"kind": "send_email"}], "on_complete": {"kind": "resize"}});
    refused(&post("/v1/batches", batch).await, "on_complete.kind");
    let batch = json!({"jobs": [{"kind": "send_email"}, {"kind": "send_email"}]});
    assert_eq!(post("/v1/jobs/batch", batch).await.0, StatusCode::CREATED);

    // The event name is what the scope restricts, not its listeners' kinds.
    let event = post("/v1/events", json!({"name": "order.paid"})).await;
    assert_eq!(event.0, StatusCode::CREATED, "{}", event.2);
    refused(
        &post("/v1/events", json!({"name": "comment.created"})).await,
        "name",
    );

    let stats = server.store.stats().await.unwrap();
    assert_eq!(
        stats.of_kind("send_email", errand_core::JobState::Available),
        3
    );
    assert_eq!(
        stats.of_kind("resize", errand_core::JobState::Available),
        1,
        "only order.paid's listener: no refused job was stored"
    );
    server.stop().await;
}

/// A header that is not `Bearer <secret>` and an unknown secret are 401
/// with the RFC 6750 error; `/healthz` needs nothing.
#[tokio::test]
async fn malformed_and_unknown_tokens_are_401() {
    errand_client::install_tls_provider();
    let server = auth_server().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/stats", server.base);
    for (header, error) in [
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer", "invalid_request"),
        ("Bearer    ", "invalid_request"),
        ("Bearer errand_0000", "invalid_token"),
    ] {
        let resp = http
            .get(&url)
            .header(AUTHORIZATION, header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
        let challenge = resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.contains(error), "{header}: {challenge}");
    }
    let health = http
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    server.stop().await;
}

/// A revoked token is refused within [`TOKEN_CACHE_TTL`] (plus scheduling
/// slack) although answers are cached, and a use is recorded.
#[tokio::test]
async fn a_revoked_token_is_refused_within_the_cache_ttl() {
    errand_client::install_tls_provider();
    let server = auth_server().await;
    let secret = token(&server, "reader", &["read"]).await;
    let client = errand_client::Client::new(&server.base)
        .unwrap()
        .with_token(&secret)
        .unwrap();
    client.stats().await.unwrap();
    let anonymous = errand_client::Client::new(&server.base).unwrap();
    let refused = anonymous.stats().await.unwrap_err();
    assert_eq!(refused.problem().map(|p| p.status), Some(401), "{refused}");

    errand_core::testing::eventually(Duration::from_secs(5), "the use recorded", || async {
        server.store.tokens().await.unwrap()[0]
            .last_used_at
            .is_some()
    })
    .await;

    assert!(
        server
            .store
            .revoke_token("reader", &AuditActor::Local)
            .await
            .unwrap()
    );
    let revoked = Instant::now();
    loop {
        match client.stats().await {
            Ok(_) => assert!(
                revoked.elapsed() < TOKEN_CACHE_TTL + Duration::from_millis(300),
                "still accepted {:?} after revocation",
                revoked.elapsed()
            ),
            Err(e) => {
                assert_eq!(e.problem().map(|p| p.status), Some(401), "{e}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
