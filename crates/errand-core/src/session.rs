//! Dashboard sessions: a login exchanges a token that may read (`read` or
//! `admin`) for a session secret, sent back as a cookie and stored only as
//! its SHA-256 hash, like a token's. A session acts as its token while the
//! token exists and until it expires. Its CSRF token is derived from the
//! secret, so nothing more is stored. See docs/decisions/0022-sessions-and-csrf.md.

use crate::auth::{Access, Scopes, Secret, TokenHash};
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Prefix of every session secret (scanners can tell it from a token's).
pub const SESSION_PREFIX: &str = "errand_session_";

/// How long a session lasts unless `[server] session_ttl` says otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The scopes a token needs (any one of them) to open a session.
pub const LOGIN_ACCESS: [Access; 2] = [Access::Read, Access::Admin];

/// Whether a token with `scopes` may open a session.
pub fn may_log_in(scopes: &Scopes) -> bool {
    LOGIN_ACCESS.iter().any(|&a| scopes.allows(a))
}

/// A fresh session secret, prefixed with [`SESSION_PREFIX`].
pub fn new_secret() -> Result<Secret, getrandom::Error> {
    Secret::generate_prefixed(SESSION_PREFIX)
}

/// Hashed with the secret so a CSRF token cannot be mistaken for any other
/// hash of it (the session id is the plain SHA-256 of the secret).
const CSRF_LABEL: &[u8] = b"errand csrf v1\0";

/// The CSRF token of the session whose secret is `secret`: hex SHA-256 of a
/// fixed label and the secret. Knowing it reveals nothing of the secret.
pub fn csrf_token(secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(CSRF_LABEL);
    hasher.update(secret.as_bytes());
    crate::auth::hex(&hasher.finalize())
}

/// Whether `presented` is the CSRF token `expected` (from [`csrf_token`]),
/// compared in constant time (only the length, always 64, is public).
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// A session to store.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The hash of the session's secret: its id.
    pub hash: TokenHash,
    /// The hash of the token it was opened with.
    pub token_hash: TokenHash,
    /// How long from now it lasts.
    pub ttl: Duration,
}

/// A stored, unexpired session of an existing token.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The name of the token it acts as.
    pub token_name: String,
    /// That token's scopes, as they are now.
    pub scopes: Scopes,
    /// When it was opened.
    pub created_at: jiff::Timestamp,
    /// When it stops being accepted.
    pub expires_at: jiff::Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_derived_and_checked() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert!(a.expose().starts_with(SESSION_PREFIX));
        let token = csrf_token(a.expose());
        assert_eq!(token.len(), 64);
        assert_ne!(token, a.hash().to_hex(), "not the session id");
        assert!(csrf_matches(&token, &csrf_token(a.expose())));
        assert!(!csrf_matches(&csrf_token(b.expose()), &token));
        assert!(!csrf_matches(&token, &token[..63]));
        assert!(!csrf_matches(&token, ""));
    }

    #[test]
    fn only_tokens_that_read_may_log_in() {
        for ok in [&["read"][..], &["admin"], &["enqueue", "read"]] {
            assert!(may_log_in(&Scopes::parse(ok.iter().copied()).unwrap()));
        }
        for no in [&["enqueue"][..], &["work", "metrics"]] {
            assert!(!may_log_in(&Scopes::parse(no.iter().copied()).unwrap()));
        }
    }
}
