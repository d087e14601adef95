//! Checks of dashboard sessions: opened only for an existing token, found
//! by their secret's hash while unexpired and while the token lives,
//! deleted by logout, and pruned once expired.

use errand_core::auth::{NewToken, Scopes, Secret, TokenHash};
use errand_core::session::{NewSession, new_secret};
use errand_core::audit::AuditActor;
use errand_core::{Retention, Store};
use std::sync::Arc;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// Stores a token named `name` with `scopes`; returns its secret.
async fn token(store: &dyn Store, name: &str, scopes: &str) -> Secret {
    let secret = Secret::generate().unwrap();
    let scopes = Scopes::parse(scopes.split_whitespace()).unwrap();
    let token = NewToken::new(name, scopes, secret.hash()).unwrap();
    store.create_token(token, &AuditActor::Local).await.unwrap();
    secret
}

/// Opens a session of the token whose secret is `token` for `ttl`;
/// returns the session's hash and what the store answered.
async fn open(
    store: &dyn Store,
    token: &Secret,
    ttl: Duration,
) -> (TokenHash, Option<errand_core::session::Session>) {
    let hash = new_secret().unwrap().hash();
    let session = NewSession {
        hash,
        token_hash: token.hash(),
        ttl,
    };
    (hash, store.create_session(session).await.unwrap())
}

/// A session acts as its token (name and scopes) from now until `ttl`
/// from now, and not a moment longer; another hash finds nothing.
async fn a_session_acts_as_its_token_until_it_expires(store: Arc<dyn Store>) {
    let secret = token(&*store, "dashboard", "admin").await;
    let clock = store.clock();
    let opened = clock.now();
    let (hash, created) = open(&*store, &secret, HOUR).await;
    let created = created.expect("the token exists");
    assert_eq!(created.token_name, "dashboard");
    assert_eq!(created.scopes, Scopes::parse(["admin"]).unwrap());
    assert_eq!(created.created_at, opened);
    assert_eq!(
        created.expires_at,
        errand_core::duration::after(opened, HOUR).unwrap()
    );
    assert_eq!(
        store.session_by_hash(&hash).await.unwrap().as_ref(),
        Some(&created)
    );
    let other = TokenHash::of("errand_session_nope");
    assert_eq!(store.session_by_hash(&other).await.unwrap(), None);
    assert_eq!(
        store.session_by_hash(&secret.hash()).await.unwrap(),
        None,
        "a token's hash is no session"
    );

    clock.advance(HOUR - Duration::from_secs(1));
    assert!(store.session_by_hash(&hash).await.unwrap().is_some());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        store.session_by_hash(&hash).await.unwrap(),
        None,
        "expired at expires_at"
    );
}

/// A session of a token that does not exist is not stored.
async fn no_session_without_its_token(store: Arc<dyn Store>) {
    let stranger = Secret::generate().unwrap();
    let (hash, created) = open(&*store, &stranger, HOUR).await;
    assert_eq!(created, None);
    assert_eq!(store.session_by_hash(&hash).await.unwrap(), None);
}

/// Logout deletes one session and answers whether it existed; the
/// token's other sessions stay.
async fn logout_deletes_the_session(store: Arc<dyn Store>) {
    let secret = token(&*store, "reader", "read").await;
    let (one, _) = open(&*store, &secret, HOUR).await;
    let (two, _) = open(&*store, &secret, HOUR).await;
    assert!(store.delete_session(&one).await.unwrap());
    assert_eq!(store.session_by_hash(&one).await.unwrap(), None);
    assert!(!store.delete_session(&one).await.unwrap(), "already gone");
    assert!(store.session_by_hash(&two).await.unwrap().is_some());
}

/// Revoking a token ends its sessions, and a new token of the same name
/// does not bring them back.
async fn revoking_the_token_ends_its_sessions(store: Arc<dyn Store>) {
    let secret = token(&*store, "ops", "admin").await;
    let other = token(&*store, "other", "read").await;
    let (hash, _) = open(&*store, &secret, HOUR).await;
    let (kept, _) = open(&*store, &other, HOUR).await;
    assert!(store.revoke_token("ops", &AuditActor::Local).await.unwrap());
    assert_eq!(store.session_by_hash(&hash).await.unwrap(), None);
    let _again = token(&*store, "ops", "admin").await;
    assert_eq!(
        store.session_by_hash(&hash).await.unwrap(),
        None,
        "a new token of the same name is another token"
    );
    assert!(store.session_by_hash(&kept).await.unwrap().is_some());
}

/// Prune deletes expired sessions (turning the clock back does not bring
/// them back) and keeps the others.
async fn prune_deletes_expired_sessions(store: Arc<dyn Store>) {
    let secret = token(&*store, "viewer", "read").await;
    let clock = store.clock();
    let start = clock.now();
    let (short, _) = open(&*store, &secret, Duration::from_secs(60)).await;
    let (long, _) = open(&*store, &secret, HOUR).await;
    clock.advance(Duration::from_secs(120));
    store.prune(&Retention::default()).await.unwrap();
    clock.set(start);
    assert_eq!(
        store.session_by_hash(&short).await.unwrap(),
        None,
        "the expired session was deleted"
    );
    assert!(store.session_by_hash(&long).await.unwrap().is_some());
}

crate::checks![
    a_session_acts_as_its_token_until_it_expires,
    no_session_without_its_token,
    logout_deletes_the_session,
    revoking_the_token_ends_its_sessions,
    prune_deletes_expired_sessions,
];
