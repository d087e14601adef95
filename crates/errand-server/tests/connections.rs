//! Connection bounds over raw TCP: the cap on open connections, the
//! header-read and idle keep-alive timeouts, the minimum body rate, and
//! held requests answered at shutdown. Timeouts are configured short so
//! each test takes a second or two.

mod common;

use common::{Server, config};
use errand_server::{Connections, ServerConfig};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short bounds: headers within 1 s, idle 1 s, bodies 500 ms plus 1 KB/s.
fn quick(max_connections: usize) -> ServerConfig {
    ServerConfig {
        connections: Connections {
            max_connections,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_grace: Duration::from_millis(500),
            body_min_rate: 1000,
        },
        ..config()
    }
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (EOF or reset) or `limit`
/// passes; answers what arrived and whether it was closed.
async fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `GET path` on `tcp` and reads one answer (its body is short).
async fn get(tcp: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: errand\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_at_the_cap_are_closed_and_new_clients_served() {
    let server = Server::with(quick(20)).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect(&server).await);
    }
    // Let the server accept them all: the cap is now reached.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    // This client waits in the backlog until the silent ones are closed.
    let mut late = connect(&server).await;
    let answer = get(&mut late, "/healthz").await;
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        waited >= Duration::from_millis(600),
        "answered after {waited:?}: the cap of 20 connections did not hold"
    );
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    for mut tcp in silent {
        let (said, closed) = read_until_closed(&mut tcp, Duration::from_secs(2)).await;
        assert!(closed, "a silent connection is still open");
        assert_eq!(said, "", "nothing is said to a silent connection");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_is_closed_by_the_header_timeout() {
    let server = Server::with(quick(100)).await;
    let mut tcp = connect(&server).await;
    let started = Instant::now();
    let trickle = b"GET /healthz HTTP/1.1\r\nhost: errand\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in trickle {
        // One byte every 200 ms: a write fails or a read sees EOF once closed.
        if tcp.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let (said, shut) = read_until_closed(&mut tcp, Duration::from_millis(200)).await;
        if shut {
            assert_eq!(said, "");
            closed = true;
            break;
        }
    }
    let lasted = started.elapsed();
    assert!(closed, "the slowloris was never closed");
    assert!(
        lasted >= Duration::from_millis(800) && lasted < Duration::from_secs(3),
        "closed after {lasted:?} with a 1 s header timeout"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_below_the_minimum_rate_gets_408_and_the_connection_closes() {
    let server = Server::with(quick(100)).await;
    let mut tcp = connect(&server).await;
    // 1,000 bytes at 1 KB/s after 500 ms of grace: due within 1.5 s.
    let head = "POST /v1/jobs HTTP/1.1\r\nhost: errand\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"kind\": \"resize\", \"payload\": \"";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        // 5 bytes a second, far below the minimum.
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut seen))
        .await
        .is_ok();
    let lasted = started.elapsed();
    let answer = String::from_utf8_lossy(&seen).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 408"), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
    assert!(closed, "the connection stayed open after the 408");
    assert!(
        lasted >= Duration::from_millis(1300) && lasted < Duration::from_secs(3),
        "answered after {lasted:?}; the body was due after 1.5 s"
    );
    trickle.abort();
    // Nothing was enqueued.
    assert!(server.stats().await.total.values().all(|n| *n == 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let config = ServerConfig {
        connections: Connections {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(1),
            ..Connections::default()
        },
        ..config()
    };
    let server = Server::with(config).await;
    let mut tcp = connect(&server).await;
    assert!(get(&mut tcp, "/healthz").await.starts_with("HTTP/1.1 200"));
    // Kept alive: a second request within the idle timeout is served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(get(&mut tcp, "/healthz").await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let (said, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    let idle = idle_from.elapsed();
    assert!(
        closed && said.is_empty(),
        "still open after {idle:?}: {said}"
    );
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "closed after {idle:?} idle with a 1 s idle timeout (header timeout 10 s)"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_outlasts_the_connection_timeouts() {
    let server = Server::with(quick(100)).await;
    let id = server.enqueue_empty("resize").await;
    let mut tcp = connect(&server).await;
    let started = Instant::now();
    let answer = get(&mut tcp, &format!("/v1/jobs/{id}?wait=2s")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_answer_the_current_state_at_shutdown() {
    let server = Server::start().await;
    let id = server.enqueue_empty("resize").await;
    let batch = server
        .post(
            "/v1/batches",
            &json!({"jobs": [{"kind": "resize", "payload": {}}]}),
        )
        .await;
    assert_eq!(batch.status, 201, "{}", batch.body);
    let batch_id = batch.body["batch"]["id"].as_i64().unwrap();
    let mut job_wait = connect(&server).await;
    let mut batch_wait = connect(&server).await;
    let job_answer =
        tokio::spawn(async move { get(&mut job_wait, &format!("/v1/jobs/{id}?wait=30s")).await });
    let batch_answer = tokio::spawn(async move {
        get(&mut batch_wait, &format!("/v1/batches/{batch_id}?wait=30s")).await
    });
    // Both are held now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = Instant::now();
    server.stop().await;
    let job_answer = job_answer.await.unwrap();
    let batch_answer = batch_answer.await.unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "stopping took {:?}",
        stopped.elapsed()
    );
    assert!(job_answer.starts_with("HTTP/1.1 200"), "{job_answer}");
    assert!(
        job_answer.contains("\"state\":\"available\""),
        "{job_answer}"
    );
    assert!(batch_answer.starts_with("HTTP/1.1 200"), "{batch_answer}");
    assert!(
        batch_answer.contains(&format!("\"id\":{batch_id}")),
        "{batch_answer}"
    );
}
