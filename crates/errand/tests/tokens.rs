//! API tokens end to end with the real binary: `errand tokens
//! create/list/revoke` on the database, auth required by default off
//! loopback, start-up refused for `auth = "off"` there without the
//! override, secrets absent from a debug log, `--token`/`ERRAND_TOKEN`,
//! and a revocation reaching a second PostgreSQL node within a second.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// `errand ARGS` in `dir` with `envs`, never reading the caller's settings.
fn errand(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(errand_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("ERRAND_CONFIG")
        .env_remove("ERRAND_DATABASE")
        .env_remove("ERRAND_TOKEN")
        .env_remove("ERRAND_UNSAFE_NO_AUTH")
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of_failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `errand tokens create` with `db_args` (`--config F` or `--database URL`);
/// the secret it printed.
fn create_token(dir: &Path, db_args: &[&str], name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["tokens", "create", "--name", name];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    args.extend_from_slice(db_args);
    let text = stdout(&errand(dir, &args, &[]));
    let secret = text
        .split_whitespace()
        .find(|w| w.starts_with("errand_"))
        .unwrap_or_else(|| panic!("no secret in {text}"))
        .to_string();
    assert_eq!(secret.len(), "errand_".len() + 64, "{secret}");
    secret
}

/// GET `url` with an optional bearer token; the status.
fn status_with(url: &str, secret: Option<&str>) -> u16 {
    let mut req = http().get(url);
    if let Some(secret) = secret {
        req = req.bearer_auth(secret);
    }
    req.send().unwrap().status().as_u16()
}

/// A serving node on all interfaces, reached over loopback.
fn serve_everywhere(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Result<Server, String> {
    let mut args = vec!["serve", "--config", "errand.toml", "--listen", "0.0.0.0:0"];
    args.extend_from_slice(extra);
    let mut server = Server::spawn_env(dir, &args, envs)?;
    server.base = server.base.replace("0.0.0.0", "127.0.0.1");
    Ok(server)
}

#[test]
fn tokens_round_trip_and_auth_is_required_off_loopback_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("errand.toml"),
        "database = \"sqlite://errand.db\"\n",
    )
    .unwrap();
    let db = ["--config", "errand.toml"];

    let secret = create_token(dir, &db, "web-app", &["enqueue:email,report", "read"]);
    let again = errand(
        dir,
        &[
            "tokens",
            "create",
            "--name",
            "web-app",
            "--scope",
            "read",
            "--config",
            "errand.toml",
        ],
        &[],
    );
    assert!(stderr_of_failure(&again).contains("already exists"));
    let bad = errand(
        dir,
        &[
            "tokens",
            "create",
            "--name",
            "x",
            "--scope",
            "write",
            "--config",
            "errand.toml",
        ],
        &[],
    );
    let bad = stderr_of_failure(&bad);
    assert!(
        bad.contains("--scope") && bad.contains("unknown scope \"write\""),
        "{bad}"
    );

    let list = stdout(&errand(
        dir,
        &["tokens", "list", "--config", "errand.toml"],
        &[],
    ));
    assert!(
        list.contains("web-app") && list.contains("enqueue:email,report read"),
        "{list}"
    );
    assert!(list.contains("never"), "{list}");
    assert!(
        !list.contains(&secret[7..]),
        "the list shows no secret: {list}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&errand(
        dir,
        &["tokens", "list", "--json", "--config", "errand.toml"],
        &[],
    )))
    .unwrap();
    assert_eq!(json[0]["name"], "web-app");
    assert_eq!(
        json[0]["scopes"],
        serde_json::json!(["enqueue:email,report", "read"])
    );

    // No `auth` setting on 0.0.0.0: required. Debug logging on throughout.
    let server = serve_everywhere(dir, &["--log-level", "debug"], &[]).unwrap();
    let stats = server.url("/v1/stats");
    assert_eq!(status_with(&stats, None), 401);
    assert_eq!(status_with(&stats, Some("errand_wrong")), 401);
    assert_eq!(status_with(&stats, Some(&secret)), 200);
    assert_eq!(status_with(&server.url("/healthz"), None), 200);

    // The CLI: --token, ERRAND_TOKEN, and nothing.
    let base = server.base.clone();
    let cli = |args: &[&str], envs: &[(&str, &str)]| {
        let mut all = args.to_vec();
        all.extend(["--server", &base]);
        errand(dir, &all, envs)
    };
    stdout(&cli(&["stats", "--token", &secret], &[]));
    stdout(&cli(&["stats", "--json"], &[("ERRAND_TOKEN", &secret)]));
    let refused = stderr_of_failure(&cli(&["stats"], &[]));
    assert!(refused.contains("bearer token"), "{refused}");
    let forbidden = stderr_of_failure(&cli(&["queues", "pause", "q", "--token", &secret], &[]));
    assert!(forbidden.contains("admin"), "{forbidden}");

    // The last use shows once recorded (the server writes it in the background).
    let mut server = server;
    // Listed beside the running server (SQLite: no stop needed).
    eventually(Duration::from_secs(10), "last use listed", || {
        !stdout(&errand(
            dir,
            &["tokens", "list", "--json", "--config", "errand.toml"],
            &[],
        ))
        .contains("\"last_used_at\": null")
    });
    let log = server.log_text();
    assert!(log.contains("DEBUG"), "debug logging was on: {log}");
    for secret in [secret.as_str(), &secret[7..], "errand_wrong"] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }

    let revoked = stdout(&errand(
        dir,
        &["tokens", "revoke", "web-app", "--config", "errand.toml"],
        &[],
    ));
    assert!(revoked.contains("revoked token \"web-app\""), "{revoked}");
    eventually(Duration::from_secs(5), "the revoked token refused", || {
        status_with(&stats, Some(&secret)) == 401
    });
    server.kill9();
    let missing = stderr_of_failure(&errand(
        dir,
        &["tokens", "revoke", "web-app", "--config", "errand.toml"],
        &[],
    ));
    assert!(missing.contains("no token named \"web-app\""), "{missing}");
    let list = stdout(&errand(
        dir,
        &["tokens", "list", "--config", "errand.toml"],
        &[],
    ));
    assert!(!list.contains("web-app"), "{list}");
}

#[test]
fn auth_off_off_loopback_is_refused_without_the_override() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("errand.toml"), "[server]\nauth = \"off\"\n").unwrap();

    let refused = serve_everywhere(dir, &[], &[]).map(|_| ()).unwrap_err();
    assert!(
        refused.contains("errand tokens create --name NAME --scope enqueue"),
        "{refused}"
    );
    assert!(refused.contains("--unsafe-no-auth"), "{refused}");
    assert!(
        !dir.join("errand.db").exists(),
        "refused before opening the database"
    );

    for (flags, envs) in [
        (&["--unsafe-no-auth"][..], &[][..]),
        (&[][..], &[("ERRAND_UNSAFE_NO_AUTH", "1")][..]),
    ] {
        let server = serve_everywhere(dir, flags, envs).unwrap();
        assert_eq!(status_with(&server.url("/v1/stats"), None), 200);
        let log = server.log_text();
        assert!(log.contains("WITHOUT authentication"), "{log}");
    }

    // On loopback, off is fine without an override.
    let server = Server::spawn(
        dir,
        &[
            "serve",
            "--config",
            "errand.toml",
            "--listen",
            "127.0.0.1:0",
        ],
    )
    .unwrap();
    assert_eq!(status_with(&server.url("/v1/stats"), None), 200);
}

/// Two nodes on one PostgreSQL database, both caching the token: once
/// `errand tokens revoke` returns, the other node refuses it within a
/// second (its cache's lifetime).
#[test]
fn a_revoked_token_stops_working_on_a_second_postgres_node_within_a_second() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = "[server]\nauth = \"required\"\n";
    let secret = create_token(dir, &["--database", &url], "dashboard", &["read"]);
    let a = pg::serve(dir, &url, "a", config);
    let b = pg::serve(dir, &url, "b", config);
    for node in [&a, &b] {
        assert_eq!(status_with(&node.url("/v1/stats"), Some(&secret)), 200);
        assert_eq!(status_with(&node.url("/v1/stats"), None), 401);
    }

    // Node b has just verified (and cached) the token.
    assert_eq!(status_with(&b.url("/v1/jobs"), Some(&secret)), 200);
    stdout(&errand(
        dir,
        &["tokens", "revoke", "dashboard", "--database", &url],
        &[],
    ));
    let revoked = Instant::now();
    eventually(Duration::from_secs(5), "node b refuses the token", || {
        status_with(&b.url("/v1/stats"), Some(&secret)) == 401
    });
    let took = revoked.elapsed();
    assert!(took <= Duration::from_millis(1300), "node b took {took:?}");
    assert_eq!(status_with(&a.url("/v1/stats"), Some(&secret)), 401);
}
