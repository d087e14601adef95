//! The OpenAPI document at `GET /v1/openapi.json`: served as built, and it
//! lists exactly the routes the server answers (every documented method of
//! every documented path is routed; every other method there answers 405),
//! and no GET is outside the known read-only set.
//! Its validity as OpenAPI 3.1 and the server's conformance to it are
//! checked by schemathesis (crates/errand/tests/contract.rs).

mod common;

use common::Server;
use reqwest::Method;
use serde_json::{Value, json};

/// Every method the API could route.
const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[tokio::test]
async fn the_served_document_is_the_built_one() {
    let server = Server::start().await;
    let served = server.get("/v1/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "application/json");
    let built = serde_json::to_value(errand_server::openapi(&common::config().catalog)).unwrap();
    assert_eq!(served.body, built);
    assert_eq!(built["openapi"], "3.1.0");
    server.stop().await;
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_no_other_method() {
    let server = Server::start().await;
    let doc = server.get("/v1/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{:?}", paths.keys());
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{name}", "default");
        for method in METHODS {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = server
                .send(m, &concrete, Some("application/json"), "{}")
                .await;
            let status = answer.status.as_u16();
            if item.get(method).is_some() {
                // Routed: a 404 may only be "no such id", never "no route".
                let no_route = answer.body["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("no route"));
                assert!(
                    status != 405 && !no_route,
                    "{method} {path}: {status} {}",
                    answer.body
                );
                let documented = &item[method]["responses"];
                assert!(
                    documented.get(status.to_string()).is_some(),
                    "{method} {path} answered {status}, not documented: {}",
                    answer.body
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is routed but not documented");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn every_operation_documents_its_problems_and_security() {
    let doc = serde_json::to_value(errand_server::openapi(&common::config().catalog)).unwrap();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let session = &doc["components"]["securitySchemes"]["session"];
    assert_eq!(
        (&session["type"], &session["in"], &session["name"]),
        (&json!("apiKey"), &json!("cookie"), &json!("errand_session"))
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let problem = &response["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        problem["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
            let security = op.get("security").and_then(Value::as_array);
            let rule = errand_server::route_scopes()
                .into_iter()
                .find(|(m, p, _)| m.as_str().eq_ignore_ascii_case(method) && *p == path)
                .map(|(_, _, access)| access);
            match rule {
                Some(errand_server::RouteAccess::Needs(access)) => {
                    // Both ways in name the scope the route needs.
                    let want = json!([
                        { "bearer": [access.as_str()] },
                        { "session": [access.as_str()] }
                    ]);
                    assert_eq!(security, want.as_array(), "{method} {path}");
                    assert!(responses.contains_key("401") && responses.contains_key("403"));
                }
                _ => assert!(security.is_none(), "{method} {path} is open"),
            }
        }
    }
}

/// The auth rules ([`errand_server::route_scopes`]) cover exactly the
/// documented operations: a route added to the router (and so to the
/// document) without a rule fails here, and its requests are refused.
#[test]
fn the_scope_table_lists_exactly_the_documented_operations() {
    let doc = serde_json::to_value(errand_server::openapi(&common::config().catalog)).unwrap();
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let mut ruled: Vec<(String, String)> = errand_server::route_scopes()
        .into_iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .collect();
    documented.sort();
    ruled.sort();
    assert_eq!(documented, ruled);
}

/// A job's latest progress and its time are in its schema, and a job
/// without them still validates (both may be null).
#[test]
fn the_job_schema_has_its_progress() {
    let doc = serde_json::to_value(errand_server::openapi(&common::config().catalog)).unwrap();
    let job = &doc["components"]["schemas"]["Job"]["properties"];
    assert!(
        job["progress"]["description"]
            .as_str()
            .unwrap()
            .starts_with("The latest progress")
    );
    assert_eq!(job["progress_at"]["format"], "date-time");
    assert_eq!(
        job["progress_at"]["type"],
        serde_json::json!(["string", "null"])
    );
}

/// Every GET (and HEAD) the API serves, each known to change nothing: a
/// GET may be sent by a browser from any page (no CSRF token, no Origin
/// check), so a new one must be added here deliberately, after checking
/// that its handler only reads.
const READ_ONLY: &[&str] = &[
    "/healthz",
    "/metrics",
    "/v1/audit",
    "/v1/batches/{id}",
    "/v1/events",
    "/v1/events/{id}",
    "/v1/jobs",
    "/v1/jobs/bulk",
    "/v1/jobs/bulk/{id}",
    "/v1/jobs/{id}",
    "/v1/nodes",
    "/v1/openapi.json",
    "/v1/queues",
    "/v1/schedules",
    "/v1/session",
    "/v1/stats",
    "/v1/tokens",
];

/// Reads that need `admin` although they change nothing: they name every
/// token and what it did.
const ADMIN_READS: &[&str] = &["/v1/audit", "/v1/tokens"];

/// No GET changes state: every GET or HEAD operation, in the document and
/// in the scope table, is one of [`READ_ONLY`], and none needs a scope that
/// writes (`enqueue`, `admin`, `work`) but the [`ADMIN_READS`].
#[test]
fn every_get_is_a_known_read_only_operation() {
    use errand_core::auth::Access;
    let doc = serde_json::to_value(errand_server::openapi(&common::config().catalog)).unwrap();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "head"] {
            if item.get(method).is_some() {
                documented.push(path.clone());
            }
        }
    }
    for path in &documented {
        assert!(
            READ_ONLY.contains(&path.as_str()),
            "GET {path} is not in READ_ONLY: check that it changes nothing, then add it"
        );
    }
    for (method, path, access) in errand_server::route_scopes() {
        if method != Method::GET && method != Method::HEAD {
            continue;
        }
        assert!(
            READ_ONLY.contains(&path),
            "{method} {path} is not in READ_ONLY"
        );
        if let errand_server::RouteAccess::Needs(access) = access {
            let writes = match access {
                Access::Admin => !ADMIN_READS.contains(&path),
                Access::Enqueue | Access::Work => true,
                _ => false,
            };
            assert!(
                !writes,
                "{method} {path} needs {access}, a scope that writes"
            );
        }
    }
    assert_eq!(documented.len(), READ_ONLY.len(), "{documented:?}");
}
