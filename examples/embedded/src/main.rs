//! errand embedded in a Rust program: a typed handler, the HTTP API on a
//! loopback port, and a client that enqueues jobs and waits for results.
//!
//! Run it with `cargo run -p errand-example-embedded`.

use errand_client::Client;
use errand_core::{Catalog, EnqueueRequest, JobState, KindPolicy, Store};
use errand_sqlite::{SqliteOptions, SqliteStore};
use errand_worker::{HandlerResult, JobContext, JobError, Worker, WorkerConfig};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The payload of a `greet` job.
#[derive(Deserialize)]
struct Greet {
    name: String,
}

/// Says hello; refuses an empty name for good (another attempt cannot fix it).
async fn greet(payload: Greet, ctx: JobContext) -> HandlerResult {
    if payload.name.is_empty() {
        return Err(JobError::Permanent("name is empty".into()));
    }
    Ok(Some(
        json!({ "greeting": format!("hello, {}", payload.name), "attempt": ctx.attempt }),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.join("example.db"), SqliteOptions::default()).await?);
    let stop = CancellationToken::new();

    // The HTTP API, so other programs (PHP, Python, curl) can enqueue too.
    let kinds = BTreeMap::from([("greet".to_string(), KindPolicy::default())]);
    let catalog = Catalog::new(kinds, BTreeMap::new(), Vec::new())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = errand_server::router(
        store.clone(),
        errand_server::ServerConfig {
            catalog: Arc::new(catalog),
            ..Default::default()
        },
    );
    let server = tokio::spawn(errand_server::serve(
        listener,
        router,
        stop.clone().cancelled_owned(),
    ));

    // The worker, running typed handlers in this process.
    let mut worker = Worker::new(store.clone(), WorkerConfig::default());
    worker.handler("greet", KindPolicy::default(), greet);
    let worker = tokio::spawn(worker.run(stop.clone()));

    let client = Client::new(&base)?;
    for name in ["Ada", ""] {
        let job = client
            .enqueue(EnqueueRequest {
                kind: "greet".into(),
                payload: json!({ "name": name }),
                ..Default::default()
            })
            .await?;
        let done = client.wait(job.job.id, Duration::from_secs(10)).await?;
        match done.state {
            JobState::Completed => println!(
                "job {} completed: {}",
                done.id,
                done.result.unwrap_or_default()
            ),
            state => println!(
                "job {} {state}: {}",
                done.id,
                done.errors.last().map(|e| e.error.as_str()).unwrap_or("")
            ),
        }
    }

    stop.cancel();
    worker.await??;
    server.await??;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh directory for the example's database.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("errand-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
