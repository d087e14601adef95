//! The worker routes through the Rust client's typed API (errand-client's
//! `worker_claim`, `worker_heartbeat`, `worker_finish`) against the real
//! router on SQLite: a round trip, a long poll woken by an enqueue, and a
//! cancelled job reported lost with its finish refused.

mod common;

use common::{Server, catalog};
use errand_client::{
    FinishedJob, HeldJob, LostReason, WorkClaim, WorkFinish, WorkHeartbeat, WorkerIdentity,
};
use errand_core::{KindPolicy, Outcome};
use errand_server::ServerConfig;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The test catalogue with `thumb`, a remote kind.
async fn server() -> Server {
    let mut kinds: BTreeMap<String, KindPolicy> = catalog(&[], Vec::new()).kinds().clone();
    kinds.insert(
        "thumb".into(),
        KindPolicy {
            remote: true,
            ..KindPolicy::default()
        },
    );
    let catalog = errand_core::Catalog::new(kinds, BTreeMap::new(), Vec::new()).unwrap();
    Server::with(ServerConfig {
        catalog: Arc::new(catalog),
        ..ServerConfig::default()
    })
    .await
}

fn claim(wait: Option<Duration>) -> WorkClaim {
    WorkClaim {
        worker: WorkerIdentity {
            library: Some("errand-client-test".into()),
            ..WorkerIdentity::new("rust-1")
        },
        kinds: vec!["thumb".into()],
        max_jobs: 4,
        wait,
        ..WorkClaim::default()
    }
}

#[tokio::test]
async fn a_typed_client_claims_heartbeats_and_finishes() {
    let s = server().await;
    let id = s.enqueue_empty("thumb").await;
    let claimed = s.client.worker_claim(&claim(None)).await.unwrap();
    assert_eq!(claimed.jobs.len(), 1);
    let job = &claimed.jobs[0];
    assert_eq!((job.id, job.attempt), (id, 1));
    let beat = s
        .client
        .worker_heartbeat(&WorkHeartbeat {
            worker: WorkerIdentity::new("rust-1"),
            jobs: vec![HeldJob {
                id,
                fence: job.fence,
                progress: Some(json!({"step": 1})),
            }],
        })
        .await
        .unwrap();
    assert!(beat.lost.is_empty());
    let done = s
        .client
        .worker_finish(&WorkFinish {
            worker: WorkerIdentity::new("rust-1"),
            jobs: vec![FinishedJob::new(
                job.lease(),
                &Outcome::Success(Some(json!("ok"))),
            )],
        })
        .await
        .unwrap();
    assert!(done.results[0].applied);
    let ended = s.client.get(id).await.unwrap();
    assert_eq!(ended.result, Some(json!("ok")));
}

#[tokio::test]
async fn a_long_poll_is_woken_by_an_enqueue() {
    let s = server().await;
    let client = s.client.clone();
    let waiting = tokio::spawn(async move {
        let answer = client
            .worker_claim(&claim(Some(Duration::from_secs(20))))
            .await
            .unwrap();
        (answer, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    let id = s.enqueue_empty("thumb").await;
    let (answer, at) = waiting.await.unwrap();
    assert_eq!(answer.jobs[0].id, id);
    assert!(
        at.duration_since(sent) < Duration::from_millis(300),
        "{:?}",
        at.duration_since(sent)
    );
}

#[tokio::test]
async fn a_cancelled_job_is_lost_and_its_finish_refused() {
    let s = server().await;
    let id = s.enqueue_empty("thumb").await;
    let job = s.client.worker_claim(&claim(None)).await.unwrap().jobs[0].clone();
    s.client.cancel(id).await.unwrap();
    let refused = s
        .client
        .worker_heartbeat(&WorkHeartbeat {
            worker: WorkerIdentity::new("rust-1"),
            jobs: vec![HeldJob {
                id,
                fence: job.fence,
                progress: None,
            }],
        })
        .await
        .unwrap_err();
    let problem = refused.problem().expect("a problem");
    assert_eq!(problem.status, 409);
    assert_eq!(problem.lost[0].reason, LostReason::Cancelled);
    let refused = s
        .client
        .worker_finish(&WorkFinish {
            worker: WorkerIdentity::new("rust-1"),
            jobs: vec![FinishedJob::new(job.lease(), &Outcome::Success(None))],
        })
        .await
        .unwrap_err();
    let problem = refused.problem().expect("a problem");
    assert_eq!(problem.status, 409);
    assert_eq!(problem.results[0].reason, Some(LostReason::Cancelled));
    assert_eq!(
        s.client.get(id).await.unwrap().state,
        errand_core::JobState::Cancelled
    );
}
