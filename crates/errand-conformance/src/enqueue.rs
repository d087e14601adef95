//! Checks of enqueue: answers in input order, increasing ids, stored fields,
//! and unique-key deduplication among live jobs.

use crate::support::{claim, finish, get, job};
use errand_core::{JobState, NewJob, Outcome, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// One job and a batch: every field is stored, answers come in input order
/// with increasing ids.
async fn enqueue_one_and_batch(store: Arc<dyn Store>) {
    let one = NewJob {
        queue: "mail".into(),
        priority: -3,
        max_attempts: 7,
        timeout: Some(Duration::from_millis(1500)),
        unique_key: Some("k1".into()),
        tags: vec!["a".into(), "b".into()],
        ..NewJob::new("send_email", json!({"to": "a@example.com", "n": [1, 2]}))
    };
    let answer = store.enqueue(vec![one.clone()]).await.unwrap();
    assert_eq!(answer.len(), 1);
    let first = &answer[0];
    assert!(!first.duplicate);
    let j = &first.job;
    assert_eq!(
        (
            j.kind.as_str(),
            j.queue.as_str(),
            j.priority,
            j.max_attempts
        ),
        ("send_email", "mail", -3, 7)
    );
    assert_eq!(j.payload, one.payload);
    assert_eq!(j.timeout, one.timeout);
    assert_eq!(j.unique_key.as_deref(), Some("k1"));
    assert_eq!(j.tags, one.tags);
    assert_eq!((j.state, j.attempt), (JobState::Available, 0));
    assert!(j.errors.is_empty() && j.result.is_none() && j.finished_at.is_none());
    assert_eq!(
        &get(&*store, j.id).await,
        j,
        "get returns what enqueue answered"
    );

    let kinds = ["a", "b", "c", "d", "e"];
    let batch = store
        .enqueue(kinds.iter().map(|k| job(k)).collect())
        .await
        .unwrap();
    let got: Vec<&str> = batch.iter().map(|e| e.job.kind.as_str()).collect();
    assert_eq!(got, kinds, "answers follow input order");
    let mut last = j.id;
    for e in &batch {
        assert!(e.job.id > last, "ids increase in enqueue order");
        assert!(!e.duplicate);
        last = e.job.id;
    }
    assert!(store.get(last + 1000).await.unwrap().is_none());
}

/// A live job with the same kind and key is returned instead of inserting;
/// other kinds may reuse the key; once the job ends, the key is free again;
/// duplicates inside one batch resolve to the first entry.
async fn unique_key_dedupes_live_jobs(store: Arc<dyn Store>) {
    let keyed = |kind: &str, key: &str| NewJob {
        unique_key: Some(key.into()),
        ..job(kind)
    };
    let first = store.enqueue(vec![keyed("report", "r1")]).await.unwrap();
    let again = store
        .enqueue(vec![NewJob {
            payload: json!("different"),
            ..keyed("report", "r1")
        }])
        .await
        .unwrap();
    assert!(again[0].duplicate);
    assert_eq!(
        again[0].job, first[0].job,
        "the live job is returned unchanged"
    );
    let other_kind = store.enqueue(vec![keyed("invoice", "r1")]).await.unwrap();
    assert!(!other_kind[0].duplicate, "keys are per kind");
    let stats = store.stats().await.unwrap();
    assert_eq!(
        stats.total.get(&JobState::Available),
        Some(&2),
        "no extra row"
    );

    // Finish the first job: its key is free again.
    let claimed = claim(&*store, "default", 10).await;
    let report = claimed.iter().find(|j| j.kind == "report").unwrap();
    assert!(finish(&*store, report.lease(), Outcome::Success(None)).await);
    let fresh = store.enqueue(vec![keyed("report", "r1")]).await.unwrap();
    assert!(!fresh[0].duplicate);
    assert!(fresh[0].job.id > first[0].job.id);

    // Inside one batch.
    let batch = store
        .enqueue(vec![keyed("sync", "s"), job("sync"), keyed("sync", "s")])
        .await
        .unwrap();
    assert!(!batch[0].duplicate && !batch[1].duplicate);
    assert!(batch[2].duplicate);
    assert_eq!(batch[2].job.id, batch[0].job.id);
    let filter = errand_core::store::ListFilter {
        kind: Some("sync".into()),
        limit: 100,
        ..Default::default()
    };
    let syncs = store.list(&filter).await.unwrap();
    assert_eq!(syncs.len(), 2, "the duplicate inserted nothing");
}

crate::checks![
    enqueue_one_and_batch,
    unique_key_dedupes_live_jobs,
];
