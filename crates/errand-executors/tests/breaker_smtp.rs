//! The outage test: the SMTP server (a real aiosmtpd) is down for
//! 10 seconds while 500 emails are queued. The kind's breaker opens instead
//! of cycling the queue through the outage: no email fails, every one is
//! delivered exactly once after the server is back, and no job records more
//! than a few attempts.

mod common;

use common::smtpd::{Smtpd, email_to_free_port, header};
use common::*;
use errand_core::store::NODE_ALIVE_WINDOW;
use errand_core::{JobState, KindPolicy, NewJob, Store};
use errand_worker::{BreakerConfig, Worker};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const EMAILS: usize = 500;
const OUTAGE: Duration = Duration::from_secs(10);
/// Delivering 500 messages through aiosmtpd on a loaded 2-core box.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);

fn recipient(i: usize) -> String {
    format!("user{i}@example.com")
}

async fn count(store: &Arc<dyn Store>, state: JobState) -> u64 {
    store.stats().await.unwrap().in_state(state)
}

/// Whether this node reports the email kind's breaker as not closed.
async fn breaker_reported(store: &Arc<dyn Store>) -> bool {
    let nodes = store.nodes(NODE_ALIVE_WINDOW).await.unwrap();
    nodes.iter().any(|n| n.breakers.contains_key("email"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_opens_the_breaker_and_every_email_is_delivered_once() {
    // The server comes up on this port only after the outage.
    let (executor, port) = email_to_free_port();
    let (store, _dir) = store().await;
    let jobs = (0..EMAILS)
        .map(|i| {
            NewJob::new(
                "email",
                json!({"to": [recipient(i)], "subject": format!("n{i}"), "text": "hello"}),
            )
        })
        .collect();
    let ids: Vec<_> = store
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    let mut config = config("default", 8);
    config.breaker = BreakerConfig {
        threshold: 3,
        base: Duration::from_millis(500),
        max: Duration::from_secs(4),
    };
    let mut worker = Worker::new(store.clone(), config);
    worker.register("email", KindPolicy::default(), executor);
    let running = Running::spawn(worker);

    let outage_start = tokio::time::Instant::now();
    let mut seen_open = false;
    while outage_start.elapsed() < OUTAGE {
        seen_open |= breaker_reported(&store).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen_open,
        "the node reported the email breaker during the outage"
    );
    assert_eq!(count(&store, JobState::Completed).await, 0);
    assert_eq!(count(&store, JobState::Failed).await, 0);

    let smtpd = Smtpd::start_on(port);
    eventually(DELIVERY_DEADLINE, "every email to be delivered", || async {
        count(&store, JobState::Completed).await >= EMAILS as u64
    })
    .await;
    running.stop().await;

    assert_eq!(count(&store, JobState::Failed).await, 0, "no email failed");
    assert_eq!(smtpd.eml_count(), EMAILS, "each email delivered once");
    let messages = smtpd.messages();
    let message_ids: BTreeSet<String> = messages
        .iter()
        .flat_map(|m| header(m, "Message-ID"))
        .collect();
    assert_eq!(message_ids.len(), EMAILS, "distinct Message-IDs");
    let recipients: BTreeSet<String> = messages
        .iter()
        .flat_map(|m| m["rcpt_tos"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recipients, (0..EMAILS).map(recipient).collect());
    for id in ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert!(job.attempt <= 5, "job {id}: {} attempts", job.attempt);
        assert!(job.errors.len() <= 5, "job {id}: {:?}", job.errors);
    }
}
