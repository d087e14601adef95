//! The dashboard's pages over real HTTP on loopback with a real SQLite
//! store: the access table (pages need `read`, a browser without a token
//! is sent to the login page, the login page and assets are open), every
//! page's answer and headers, and user data escaped. The browser test is
//! crates/errand/tests/dashboard.rs.

mod common;

use common::{Server, config};
use errand_core::auth::{NewToken, Scopes, Secret};
use errand_core::{NewJob, Store};
use errand_server::{RouteAccess, dashboard_scopes};
use reqwest::header::{AUTHORIZATION, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Stores a token called `name` with `scopes`; its secret.
async fn token(server: &Server, name: &str, scopes: &[&str]) -> String {
    let secret = Secret::generate().unwrap();
    let scopes = Scopes::parse(scopes.iter().copied()).unwrap();
    let token = NewToken::new(name, scopes, secret.hash()).unwrap();
    server.store.create_token(token).await.unwrap();
    secret.expose().to_string()
}

/// `GET path` without following redirects: status, location, content
/// type, CSP and body.
async fn page(
    server: &Server,
    path: &str,
    secret: Option<&str>,
) -> (StatusCode, String, String, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.request(Method::GET, format!("{}{path}", server.base));
    if let Some(secret) = secret {
        req = req.header(AUTHORIZATION, format!("Bearer {secret}"));
    }
    let resp = req.send().await.unwrap();
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, location, ctype, csp) = (
        resp.status(),
        header(LOCATION),
        header(CONTENT_TYPE),
        header(CONTENT_SECURITY_POLICY),
    );
    (status, location, ctype, csp, resp.text().await.unwrap())
}

/// A job whose payload, tags and queue try to inject markup.
async fn hostile_job(server: &Server) -> i64 {
    let mut job = NewJob::new(
        "resize",
        json!({"html": "<script>alert(1)</script>", "q": "\"'&"}),
    );
    job.tags = vec!["<img src=x onerror=alert(2)>".into()];
    server.store.enqueue(vec![job]).await.unwrap()[0].job.id
}

#[tokio::test]
async fn pages_need_read_and_send_a_browser_without_a_token_to_login() {
    let mut config = config();
    config.auth_required = true;
    let server = Server::with(config).await;
    let id = hostile_job(&server).await;
    let reader = token(&server, "reader", &["read"]).await;
    let enqueuer = token(&server, "enqueuer", &["enqueue"]).await;
    let routes = dashboard_scopes();
    assert!(
        routes.len() >= 12,
        "every page and asset has a rule: {routes:?}"
    );
    for (method, template, access) in routes {
        assert_eq!(method, Method::GET, "{template}: pages are read with GET");
        let path = template.replace("{id}", &id.to_string());
        let path = if path == "/jobs/go" {
            format!("/jobs/go?id={id}")
        } else {
            path
        };
        match access {
            RouteAccess::Open => {
                let (status, ..) = page(&server, &path, None).await;
                assert_eq!(status, StatusCode::OK, "{path} is open");
            }
            RouteAccess::Needs(access) => {
                assert_eq!(access, errand_core::auth::Access::Read, "{path}");
                let (status, location, ..) = page(&server, &path, None).await;
                assert_eq!(status, StatusCode::SEE_OTHER, "{path} without a token");
                assert_eq!(location, "/login", "{path}");
                let (status, location, ..) = page(&server, &path, Some("errand_nonsense")).await;
                assert_eq!(
                    (status, location.as_str()),
                    (StatusCode::SEE_OTHER, "/login"),
                    "{path} with an unknown token"
                );
                let (status, ..) = page(&server, &path, Some(&enqueuer)).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{path} without the read scope"
                );
                let (status, location, ..) = page(&server, &path, Some(&reader)).await;
                assert!(
                    status == StatusCode::OK
                        || (path.starts_with("/jobs/go") && location == format!("/jobs/{id}")),
                    "{path} with read: {status}"
                );
            }
        }
    }
    // The API itself still answers 401, not a redirect.
    let (status, ..) = page(&server, "/v1/jobs", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_page_renders_with_user_data_escaped() {
    let server = Server::with(config()).await;
    let id = hostile_job(&server).await;
    for path in [
        "/",
        "/jobs",
        "/jobs?state=available&kind=resize",
        &format!("/jobs/{id}"),
        "/queues",
        "/kinds",
        "/nodes",
        "/schedules",
        "/events",
        "/batches",
        "/login",
    ] {
        let (status, _, ctype, csp, body) = page(&server, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(ctype, "text/html; charset=utf-8", "{path}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(
            !body.contains("<script>alert") && !body.contains("<img src=x"),
            "{path}: {body}"
        );
    }
    let (_, _, _, _, job) = page(&server, &format!("/jobs/{id}"), None).await;
    assert!(
        job.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{job}"
    );
    assert!(job.contains("&lt;img src=x onerror=alert(2)&gt;"), "{job}");
    assert!(
        job.contains(&format!("data-post=\"/v1/jobs/{id}/cancel\"")),
        "{job}"
    );

    let (status, _, ctype, _, body) = page(&server, "/jobs/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        ctype.starts_with("text/html") && body.contains("job 999 not found"),
        "{body}"
    );
    let (status, _, _, _, body) = page(&server, "/jobs?state=sleepy", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("state"), "{body}");
    let (status, _, _, _, body) = page(&server, "/batches?id=x", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, location, ..) = page(&server, &format!("/jobs/go?id={id}"), None).await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("/jobs/{id}"))
    );
    let (_, _, ctype, _, css) = page(&server, "/assets/dashboard.css", None).await;
    assert!(
        ctype.starts_with("text/css") && css.contains(":root"),
        "{ctype}"
    );
}
