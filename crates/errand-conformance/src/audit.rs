//! Checks of the audit log: each admin action writes exactly one entry
//! with its actor, target and change, in its own transaction; a refused
//! action, or one that changes nothing, writes none; listings are newest
//! first with a cursor and filters; pruning removes old entries only.

use crate::support::{enqueue, finish, job, job_in, running};
use errand_core::audit::{AuditAction, AuditActor, AuditEntry, AuditFilter, LOCAL_ACTOR};
use errand_core::auth::{NewToken, Scopes, TokenHash};
use errand_core::{Outcome, Retention, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Every entry, newest first.
async fn all(store: &dyn Store) -> Vec<AuditEntry> {
    let filter = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    store.audit(&filter).await.unwrap()
}

fn token(name: &str, scopes: &[&str]) -> NewToken {
    let scopes = Scopes::parse(scopes.iter().copied()).unwrap();
    NewToken::new(name, scopes, TokenHash::of(&format!("secret-of-{name}"))).unwrap()
}

/// The (actor, action, target, change) of an entry, to compare.
fn what(e: &AuditEntry) -> (&str, AuditAction, &str, serde_json::Value) {
    (&e.actor, e.action, &e.target, e.change.clone())
}

/// Cancel, retry, pause, resume, token create and revoke each write one
/// entry naming the actor, the target and what changed, at the store's time.
async fn each_action_writes_one_entry(store: Arc<dyn Store>) {
    let ops = AuditActor::Token("ops".into());
    let id = enqueue(&*store, vec![job("a")]).await[0];
    let at = store.clock().now();
    store.cancel(id, &ops).await.unwrap();
    store.retry(id, &ops).await.unwrap();
    store.set_queue_paused("mail", true, &ops).await.unwrap();
    store.set_queue_paused("mail", false, &ops).await.unwrap();
    store
        .create_token(token("web", &["enqueue:email", "read"]), &AuditActor::Local)
        .await
        .unwrap();
    assert!(store.revoke_token("web", &ops).await.unwrap());

    let entries = all(&*store).await;
    let id = id.to_string();
    let scopes = json!({ "scopes": ["enqueue:email", "read"] });
    assert_eq!(
        entries.iter().map(what).collect::<Vec<_>>(),
        vec![
            ("ops", AuditAction::TokenRevoke, "web", scopes.clone()),
            (LOCAL_ACTOR, AuditAction::TokenCreate, "web", scopes),
            ("ops", AuditAction::QueueResume, "mail", json!({ "paused": false })),
            ("ops", AuditAction::QueuePause, "mail", json!({ "paused": true })),
            (
                "ops",
                AuditAction::JobRetry,
                id.as_str(),
                json!({ "from": "cancelled", "to": "available" })
            ),
            (
                "ops",
                AuditAction::JobCancel,
                id.as_str(),
                json!({ "from": "available", "to": "cancelled" })
            ),
        ],
        "newest first"
    );
    for e in &entries {
        assert_eq!(e.at, at, "the store's clock: {e:?}");
    }
    assert!(
        entries.windows(2).all(|w| w[0].id > w[1].id),
        "ids fall: {entries:?}"
    );
}

/// A refused action (wrong state, unknown job, taken name, unknown token)
/// and one that changes nothing (pausing a paused queue, resuming one never
/// paused) write no entry.
async fn refused_or_idle_actions_write_nothing(store: Arc<dyn Store>) {
    let actor = AuditActor::Token("ops".into());
    let done = running(&*store, job("c")).await;
    assert!(finish(&*store, done.lease(), Outcome::Success(None)).await);
    let available = enqueue(&*store, vec![job_in("q", "a")]).await[0];
    assert!(store.cancel(done.id, &actor).await.is_err(), "completed");
    assert!(store.cancel(done.id + 10_000, &actor).await.is_err());
    assert!(store.retry(available, &actor).await.is_err(), "available");
    assert!(store.retry(done.id + 10_000, &actor).await.is_err());
    assert!(!store.revoke_token("never-was", &actor).await.unwrap());
    store.set_queue_paused("q", false, &actor).await.unwrap();
    assert!(all(&*store).await.is_empty(), "{:?}", all(&*store).await);

    store.set_queue_paused("q", true, &actor).await.unwrap();
    store.set_queue_paused("q", true, &actor).await.unwrap();
    store
        .create_token(token("web", &["read"]), &actor)
        .await
        .unwrap();
    assert!(
        store
            .create_token(token("web", &["admin"]), &actor)
            .await
            .is_err()
    );
    let actions: Vec<AuditAction> = all(&*store).await.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        [AuditAction::TokenCreate, AuditAction::QueuePause],
        "one entry per change"
    );
}

/// Pages follow the cursor (ids below it), newest first, and the actor,
/// action and since filters combine.
async fn listing_pages_and_filters(store: Arc<dyn Store>) {
    let (a, b) = (
        AuditActor::Token("a".into()),
        AuditActor::Token("b".into()),
    );
    let start = store.clock().now();
    for i in 0..5 {
        let actor = if i % 2 == 0 { &a } else { &b };
        store.set_queue_paused("q", true, actor).await.unwrap();
        store.clock().advance(Duration::from_secs(60));
        store.set_queue_paused("q", false, actor).await.unwrap();
        store.clock().advance(Duration::from_secs(60));
    }
    let every = all(&*store).await;
    assert_eq!(every.len(), 10);

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let filter = AuditFilter {
            before,
            limit: 3,
            ..AuditFilter::default()
        };
        let page = store.audit(&filter).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        pages.extend(page);
    }
    assert_eq!(pages, every, "the pages together are the whole log, once");

    let only_b = AuditFilter {
        actor: Some("b".into()),
        action: Some(AuditAction::QueuePause),
        limit: 100,
        ..AuditFilter::default()
    };
    let found = store.audit(&only_b).await.unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|e| e.actor == "b" && e.action == AuditAction::QueuePause)
    );

    let since = AuditFilter {
        since: Some(start + jiff::SignedDuration::from_secs(8 * 60)),
        limit: 100,
        ..AuditFilter::default()
    };
    let recent = store.audit(&since).await.unwrap();
    assert_eq!(recent, every[..2], "the last two, at 8 and 9 minutes");
    let nobody = AuditFilter {
        actor: Some("c".into()),
        limit: 100,
        ..AuditFilter::default()
    };
    assert!(store.audit(&nobody).await.unwrap().is_empty());
}

/// Pruning deletes entries older than `retention.audit`, keeps newer ones,
/// and is independent of the jobs' ages.
async fn pruning_removes_old_entries(store: Arc<dyn Store>) {
    let actor = AuditActor::Local;
    store.set_queue_paused("old", true, &actor).await.unwrap();
    store.clock().advance(Duration::from_secs(3600));
    store.set_queue_paused("new", true, &actor).await.unwrap();
    store.clock().advance(Duration::from_secs(60));

    let keep_hours = Retention {
        audit: Duration::from_secs(2 * 3600),
        ..Retention::default()
    };
    store.prune(&keep_hours).await.unwrap();
    assert_eq!(all(&*store).await.len(), 2, "both younger than 2 h");

    let keep_half_hour = Retention {
        audit: Duration::from_secs(1800),
        ..Retention::default()
    };
    store.prune(&keep_half_hour).await.unwrap();
    let left: Vec<String> = all(&*store).await.into_iter().map(|e| e.target).collect();
    assert_eq!(left, ["new"], "the hour-old entry is gone");
}

crate::checks![
    each_action_writes_one_entry,
    refused_or_idle_actions_write_nothing,
    listing_pages_and_filters,
    pruning_removes_old_entries,
];
