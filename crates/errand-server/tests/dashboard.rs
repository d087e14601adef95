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
    server
        .store
        .create_token(token, &errand_core::audit::AuditActor::Local)
        .await
        .unwrap();
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
    let admin = token(&server, "admin", &["admin"]).await;
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
            RouteAccess::Needs(errand_core::auth::Access::Admin) => {
                // The audit log: admin only, as GET /v1/audit.
                let (status, location, ..) = page(&server, &path, None).await;
                assert_eq!(
                    (status, location.as_str()),
                    (StatusCode::SEE_OTHER, "/login")
                );
                let (status, ..) = page(&server, &path, Some(&reader)).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{path} with read only");
                let (status, _, _, _, body) = page(&server, &path, Some(&admin)).await;
                assert_eq!(status, StatusCode::OK, "{path} with admin");
                assert!(
                    body.contains("token.create"),
                    "{path} lists the tokens made"
                );
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

/// `GET path` as JSON: status and body.
async fn api(server: &Server, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = reqwest::get(format!("{}{path}", server.base))
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn ids(page: &serde_json::Value) -> Vec<i64> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn tag_time_and_text_filters_from_the_api_and_the_jobs_page() {
    let server = Server::with(config()).await;
    let mut old = NewJob::new("resize", json!({"file": "Holiday.JPG"}));
    old.tags = vec!["photos".into()];
    let old = server.store.enqueue(vec![old]).await.unwrap()[0]
        .job
        .clone();
    let other = server
        .store
        .enqueue(vec![NewJob::new("resize", json!({"file": "cv.pdf"}))])
        .await
        .unwrap()[0]
        .job
        .id;

    let (status, listing) = api(&server, "/v1/jobs?tag=photos").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&listing), [old.id]);
    assert_eq!(
        listing["next_cursor"],
        serde_json::Value::Null,
        "the window held every job"
    );
    let (_, listing) = api(&server, "/v1/jobs?text=holiday.jpg&kind=resize").await;
    assert_eq!(ids(&listing), [old.id]);
    let after = old.created_at.to_string();
    let (_, listing) = api(
        &server,
        &format!("/v1/jobs?created_after={}", after.replace('+', "%2B")),
    )
    .await;
    assert_eq!(ids(&listing), [other, old.id]);
    let (_, listing) = api(&server, "/v1/jobs?created_before=2000-01-01T00:00").await;
    assert_eq!(
        ids(&listing),
        Vec::<i64>::new(),
        "a time without offset reads as UTC"
    );
    for (query, field) in [
        ("created_after=yesterday", "created_after"),
        ("created_before=2030-13-01T00:00:00Z", "created_before"),
        (&format!("text={}", "x".repeat(201)), "text"),
    ] {
        let (status, problem) = api(&server, &format!("/v1/jobs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }

    let (status, _, _, _, body) = page(&server, "/jobs?text=HOLIDAY&tag=photos", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("href=\"/jobs/{}\"", old.id)),
        "{body}"
    );
    assert!(!body.contains(&format!("href=\"/jobs/{other}\"")), "{body}");
    assert!(body.contains("searched the newest 10000 jobs"), "{body}");
    assert!(
        body.contains("value=\"HOLIDAY\""),
        "the form keeps the search: {body}"
    );

    // A window of newer jobs without the tag: the page is empty, and the
    // cursor goes on below the window, where the tagged job is.
    let newer: Vec<NewJob> = (0..errand_core::store::SCAN_LIMIT)
        .map(|_| NewJob::new("resize", json!({})))
        .collect();
    server.store.enqueue(newer).await.unwrap();
    let (_, listing) = api(&server, "/v1/jobs?tag=photos").await;
    assert_eq!(ids(&listing), Vec::<i64>::new());
    let cursor = listing["next_cursor"]
        .as_i64()
        .expect("a cursor below the window");
    assert!(cursor > other, "{cursor}");
    let (_, listing) = api(&server, &format!("/v1/jobs?tag=photos&cursor={cursor}")).await;
    assert_eq!(ids(&listing), [old.id]);
    assert_eq!(listing["next_cursor"], serde_json::Value::Null);
    let (_, _, _, _, body) = page(&server, "/jobs?tag=photos", None).await;
    assert!(
        body.contains(&format!("cursor={cursor}&amp;tag=photos")),
        "{body}"
    );
}

/// The available count of queue `default` as the Queues page shows it.
async fn available_on_queues_page(server: &Server) -> String {
    let (status, _, _, _, body) = page(server, "/queues", None).await;
    assert_eq!(status, StatusCode::OK);
    let row = body
        .split("<tr")
        .find(|r| r.contains("data-queue=\"default\""))
        .unwrap_or_else(|| panic!("no row of queue default: {body}"));
    match row.split("state=available&amp;queue=default\">").nth(1) {
        Some(rest) => rest.split('<').next().unwrap().to_string(),
        None => "0".to_string(),
    }
}

/// The live pages read the stored counts, so each view shows every change
/// committed before it, a pause included.
#[tokio::test]
async fn live_pages_show_each_change_at_once() {
    let server = Server::start().await;
    server.enqueue_empty("resize").await;
    assert_eq!(available_on_queues_page(&server).await, "1");
    server.enqueue_empty("resize").await;
    assert_eq!(available_on_queues_page(&server).await, "2");
    let paused = server.post("/v1/queues/default/pause", &json!({})).await;
    assert_eq!(paused.status, StatusCode::OK);
    let (_, _, _, _, body) = page(&server, "/queues", None).await;
    assert!(body.contains("paused"), "the pause is shown");
}

/// The Jobs page says how many jobs its filter matches, from the stored
/// counts (an upper bound with a scanned filter), and the bulk bar carries
/// it for the confirmation.
#[tokio::test]
async fn the_jobs_page_counts_what_its_filter_matches() {
    let server = Server::start().await;
    for _ in 0..3 {
        server.enqueue_empty("resize").await;
    }
    server.enqueue_empty("send_email").await;
    for (query, text, count) in [
        ("/jobs?kind=resize", "3 jobs match.", "3"),
        ("/jobs?kind=resize&state=available", "3 jobs match.", "3"),
        ("/jobs?kind=resize&state=failed", "0 jobs match.", "0"),
        ("/jobs", "4 jobs match.", "4"),
        (
            "/jobs?kind=resize&tag=photos",
            "Up to 3 jobs match (before the tag, time and text filters).",
            "up to 3",
        ),
    ] {
        let (status, _, _, _, body) = page(&server, query, None).await;
        assert_eq!(status, StatusCode::OK, "{query}");
        assert!(
            body.contains(&format!("<p data-matching>{text}</p>")),
            "{query}: {body}"
        );
        assert!(
            body.contains(&format!("data-count=\"{count}\"")),
            "{query}: {body}"
        );
    }
}
