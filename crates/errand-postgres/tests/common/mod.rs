//! Helpers shared by the PostgreSQL-specific tests: a connection for looking
//! at the server from outside the store, claims and finishes.
#![allow(dead_code)] // each test file uses its own subset

use errand_core::store::{ClaimRequest, Finish};
use errand_core::{Backoff, Job, Outcome};
use std::time::Duration;

/// A plain connection for looking at the server from outside the store.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    client
}

/// A claim of up to `limit` jobs of any kind from `queue`, without limits,
/// under a lease that outlasts any test.
pub fn claim_req(queue: &str, limit: u32) -> ClaimRequest {
    ClaimRequest {
        queue: queue.to_string(),
        kinds: Vec::new(),
        limit,
        worker: "test".to_string(),
        lease: Duration::from_secs(3600),
        limits: Default::default(),
    }
}

/// The end of `job`'s current attempt with `outcome`.
pub fn ending(job: &Job, outcome: Outcome) -> Finish {
    Finish {
        lease: job.lease(),
        outcome,
        backoff: Backoff::default(),
    }
}

/// The successful end of `job`'s current attempt.
pub fn success(job: &Job) -> Finish {
    ending(job, Outcome::Success(None))
}
