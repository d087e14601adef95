//! Checks of API tokens: unique names, lookup by secret hash only, listing
//! without secrets, revocation, and a throttled record of last use.

use errand_core::audit::AuditActor;
use errand_core::auth::{LAST_USE_INTERVAL, NewToken, Scopes, Secret, TokenHash};
use errand_core::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

fn new_token(name: &str, scopes: &[&str]) -> (NewToken, Secret) {
    let secret = Secret::generate().unwrap();
    let scopes = Scopes::parse(scopes.iter().copied()).unwrap();
    (NewToken::new(name, scopes, secret.hash()).unwrap(), secret)
}

/// A token is found by its secret's hash, with its scopes; another hash
/// finds nothing; a second token of the same name is refused and changes
/// nothing.
async fn tokens_are_found_by_hash_and_names_are_unique(store: Arc<dyn Store>) {
    let (token, secret) = new_token("web-app", &["enqueue:email,report", "read"]);
    let created = store.create_token(token.clone(), &AuditActor::Local).await.unwrap();
    assert_eq!(created.name, "web-app");
    assert_eq!(created.scopes, token.scopes);
    assert_eq!(created.created_at, store.clock().now());
    assert_eq!(created.last_used_at, None);

    let found = store.token_by_hash(&secret.hash()).await.unwrap();
    assert_eq!(found.as_ref(), Some(&created));
    let other = TokenHash::of("errand_not-a-token");
    assert_eq!(store.token_by_hash(&other).await.unwrap(), None);

    let (again, other_secret) = new_token("web-app", &["admin"]);
    match store.create_token(again, &AuditActor::Local).await {
        Err(StoreError::Exists(what)) => assert!(what.contains("web-app"), "{what}"),
        other => panic!("a taken name must answer Exists, got {other:?}"),
    }
    assert_eq!(store.token_by_hash(&other_secret.hash()).await.unwrap(), None);
    assert_eq!(store.tokens().await.unwrap(), vec![created]);
}

/// Tokens list by name; revoking one removes it (its secret finds nothing
/// any more) and answers whether it existed; the others stay.
async fn revoked_tokens_are_gone(store: Arc<dyn Store>) {
    let (b, b_secret) = new_token("b-worker", &["work"]);
    let (a, _) = new_token("a-scraper", &["metrics"]);
    store.create_token(b, &AuditActor::Local).await.unwrap();
    store.create_token(a, &AuditActor::Local).await.unwrap();
    let names: Vec<String> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a-scraper", "b-worker"]);

    assert!(store.revoke_token("b-worker", &AuditActor::Local).await.unwrap());
    assert_eq!(store.token_by_hash(&b_secret.hash()).await.unwrap(), None);
    assert!(!store.revoke_token("b-worker", &AuditActor::Local).await.unwrap(), "already gone");
    assert!(!store.revoke_token("never-was", &AuditActor::Local).await.unwrap());
    let left: Vec<String> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(left, ["a-scraper"]);
}

/// A use is recorded at once the first time, then at most once per
/// [`LAST_USE_INTERVAL`]; recording a use of an unknown token is harmless.
async fn last_use_is_recorded_at_most_once_a_minute(store: Arc<dyn Store>) {
    let (token, secret) = new_token("reader", &["read"]);
    store.create_token(token, &AuditActor::Local).await.unwrap();
    let clock = store.clock();
    let last_used = || async {
        store
            .token_by_hash(&secret.hash())
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };

    clock.advance(Duration::from_secs(5));
    let first = clock.now();
    store.record_token_use("reader").await.unwrap();
    assert_eq!(last_used().await, Some(first));

    clock.advance(LAST_USE_INTERVAL - Duration::from_secs(1));
    store.record_token_use("reader").await.unwrap();
    assert_eq!(last_used().await, Some(first), "within the interval: kept");

    clock.advance(Duration::from_secs(1));
    let later = clock.now();
    store.record_token_use("reader").await.unwrap();
    assert_eq!(last_used().await, Some(later), "after the interval: recorded");

    store.record_token_use("nobody").await.unwrap();
}

crate::checks![
    tokens_are_found_by_hash_and_names_are_unique,
    revoked_tokens_are_gone,
    last_use_is_recorded_at_most_once_a_minute,
];
