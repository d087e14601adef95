//! `[server] tls` with the real binary: HTTPS from the CLI with a CA file,
//! start-up refused with the path of a bad certificate, and SIGHUP
//! reloading the certificate while a keep-alive connection stays open.

mod common;

use common::{Server, eventually, refused_config, self_signed};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CONFIG: &str = r#"
[server]
tls = { cert = "server.crt", key = "server.key" }

[kinds.noop]
command = ["true"]
"#;

/// A blocking client that trusts only the system's CAs and `pem`.
fn client_trusting(pem: &str) -> reqwest::blocking::Client {
    errand_client::install_tls_provider();
    reqwest::blocking::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Whether a GET of /healthz over `client` succeeds.
fn healthy(client: &reqwest::blocking::Client, server: &Server) -> Result<(), String> {
    match client.get(server.url("/healthz")).send() {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn cli(server: &Server, ca: &Path, args: &[&str]) -> std::process::Output {
    Command::new(common::errand_bin())
        .args(args)
        .env("ERRAND_SERVER", &server.base)
        .env("ERRAND_CA_FILE", ca)
        .output()
        .unwrap()
}

#[test]
fn the_cli_talks_https_with_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let server = Server::start_in(dir.path(), CONFIG);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let ca = dir.path().join("server.crt");
    let out = cli(&server, &ca, &["enqueue", "noop", r#"{"n": 1}"#, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let enqueued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = enqueued["id"].as_i64().expect("an id").to_string();
    let out = cli(&server, &ca, &["jobs", "show", &id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["payload"]["n"], 1);

    // Without the CA the certificate is not trusted, and the message says so.
    let out = Command::new(common::errand_bin())
        .args(["stats"])
        .env("ERRAND_SERVER", &server.base)
        .env_remove("ERRAND_CA_FILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("the server's certificate is not trusted"),
        "{err}"
    );
}

#[test]
fn a_bad_certificate_file_stops_start_up_naming_the_path() {
    let err =
        refused_config("[server]\ntls = { cert = \"missing/server.crt\", key = \"server.key\" }\n");
    assert!(
        err.contains("[server] tls.cert ") && err.contains("missing/server.crt: cannot read"),
        "{err}"
    );

    // Readable but not PEM.
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let config = dir.path().join("errand.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let started = Server::spawn(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let log = started.err().expect("start-up refused");
    assert!(
        log.contains("[server] tls.key ") && log.contains("server.key: no private key found"),
        "{log}"
    );
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let old_pem = self_signed(dir.path());
    let server = Server::start_in(dir.path(), CONFIG);
    // One connection, kept alive (reqwest pools it) across the reload.
    let open = client_trusting(&old_pem);
    healthy(&open, &server).unwrap();

    let next = tempfile::tempdir().unwrap();
    let new_pem = self_signed(next.path());
    for file in ["server.crt", "server.key"] {
        std::fs::copy(next.path().join(file), dir.path().join(file)).unwrap();
    }
    server.signal("HUP");
    eventually(Duration::from_secs(10), "the reload to be logged", || {
        server.log_text().contains("TLS certificate reloaded")
    });
    // Only the open connection still succeeds trusting the old certificate:
    // a new one is offered the new certificate.
    healthy(&open, &server).unwrap();
    let refused = healthy(&client_trusting(&old_pem), &server).unwrap_err();
    assert!(refused.contains("InvalidCertificate"), "{refused}");
    healthy(&client_trusting(&new_pem), &server).unwrap();

    // A bad file at reload: logged with its path, the current certificate stays.
    std::fs::write(dir.path().join("server.key"), "garbage").unwrap();
    server.signal("HUP");
    let line = eventually(
        Duration::from_secs(10),
        "the failed reload to be logged",
        || {
            server
                .log_text()
                .lines()
                .find(|l| l.contains("TLS certificate not reloaded"))
                .map(String::from)
        },
    );
    assert!(
        line.contains("ERROR") && line.contains("tls.key ") && line.contains("server.key"),
        "{line}"
    );
    healthy(&client_trusting(&new_pem), &server).unwrap();
}
