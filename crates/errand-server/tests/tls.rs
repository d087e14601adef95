//! HTTPS: the real router over loopback TLS with self-signed certificates
//! made in the test — a round trip with the client trusting the
//! certificate, a clear error without it, certificate reload with an open
//! keep-alive connection, and the handshake deadline on a silent client.

mod common;

use common::config;
use errand_client::{Client, ClientError};
use errand_server::{Connections, ServerConfig, Tls, TlsFiles};
use errand_sqlite::{SqliteOptions, SqliteStore};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// A self-signed certificate for 127.0.0.1, written as `name`.crt/.key in
/// `dir`; its PEM is also what a client trusts.
fn self_signed(dir: &Path, name: &str) -> (TlsFiles, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, made.cert.pem()).unwrap();
    std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
    (files, made.cert.pem())
}

/// An HTTPS server over a fresh database; stops when dropped.
struct Server {
    base: String,
    tls: Tls,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(dir: tempfile::TempDir, files: TlsFiles, config: ServerConfig) -> Server {
        let store = SqliteStore::open(dir.path().join("errand.db"), SqliteOptions::default())
            .await
            .unwrap();
        let tls = Tls::load(files).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let stop = config.shutdown.clone();
        let connections = config.connections.clone();
        let router = errand_server::router(Arc::new(store), config);
        tokio::spawn(errand_server::serve_tls(
            listener,
            router,
            connections,
            tls.clone(),
            stop.clone().cancelled_owned(),
        ));
        Server {
            base,
            tls,
            stop,
            _dir: dir,
        }
    }

    fn client_trusting(&self, pem: &str) -> Client {
        Client::builder(&self.base).ca_pem(pem).build().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn an_https_round_trip_with_the_certificate_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = self_signed(dir.path(), "server");
    let server = Server::start(dir, files, config()).await;
    let client = server.client_trusting(&pem);
    let enqueued = client
        .enqueue(errand_client::job("resize", serde_json::json!({"w": 10})))
        .await
        .unwrap();
    let job = client.get(enqueued.job.id).await.unwrap();
    assert_eq!(
        (job.kind.as_str(), job.payload["w"].as_i64()),
        ("resize", Some(10))
    );
}

#[tokio::test]
async fn a_client_without_the_certificate_gets_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = self_signed(dir.path(), "server");
    let server = Server::start(dir, files, config()).await;
    let err = Client::new(&server.base)
        .unwrap()
        .health()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(
        text.contains(&server.base)
            && text.contains("the server's certificate is not trusted")
            && text.contains("UnknownIssuer"),
        "{text}"
    );
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (files, old_pem) = self_signed(dir.path(), "server");
    let server = Server::start(dir, files.clone(), config()).await;
    // One connection, kept alive across the reload.
    let open = server.client_trusting(&old_pem);
    open.health().await.unwrap();

    let new_dir = tempfile::tempdir().unwrap();
    let (new_files, new_pem) = self_signed(new_dir.path(), "next");
    std::fs::copy(&new_files.cert, &files.cert).unwrap();
    std::fs::copy(&new_files.key, &files.key).unwrap();
    server.tls.reload().unwrap();

    // Only the open connection can still succeed with the old certificate
    // trusted: a new one is offered the new certificate.
    open.health().await.unwrap();
    let e = server
        .client_trusting(&old_pem)
        .health()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate is not trusted"), "{e}");
    server.client_trusting(&new_pem).health().await.unwrap();
}

#[tokio::test]
async fn a_silent_client_does_not_hold_a_slot_past_the_handshake_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = self_signed(dir.path(), "server");
    let deadline = Duration::from_millis(500);
    let server = Server::start(
        dir,
        files,
        ServerConfig {
            connections: Connections {
                max_connections: 1,
                header_read_timeout: deadline,
                ..Connections::default()
            },
            ..config()
        },
    )
    .await;
    // Opens a socket and never sends a ClientHello, taking the only slot.
    let mut silent = tokio::net::TcpStream::connect(server.base.trim_start_matches("https://"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    // Waits in the backlog until the silent client's slot is freed.
    server.client_trusting(&pem).health().await.unwrap();
    assert!(started.elapsed() < deadline * 6, "{:?}", started.elapsed());
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent connection was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}
