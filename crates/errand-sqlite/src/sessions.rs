//! Dashboard sessions (migration 0010): stored by the SHA-256 of their
//! secret, valid while unexpired and while their token exists.

use crate::rows::{after, db_error, from_micros, micros};
use errand_core::StoreError;
use errand_core::auth::{Scopes, TokenHash};
use errand_core::session::{NewSession, Session};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};

/// Stores `session` for its token, if that token exists.
pub(crate) fn create(
    conn: &Connection,
    session: NewSession,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let created = micros(now);
    let expires = micros(after(now, session.ttl));
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions (hash, token_name, token_hash, created_at, expires_at)
             SELECT ?1, name, hash, ?3, ?4 FROM tokens WHERE hash = ?2",
        )
        .and_then(|mut st| {
            st.execute((
                session.hash.to_hex(),
                session.token_hash.to_hex(),
                created,
                expires,
            ))
        })
        .map_err(db_error)?;
    if inserted == 0 {
        return Ok(None);
    }
    find(conn, &session.hash, created)
}

/// The session with `hash`, unless expired at `now` or its token is gone.
pub(crate) fn by_hash(
    conn: &Connection,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    find(conn, hash, micros(now))
}

fn find(conn: &Connection, hash: &TokenHash, now: i64) -> Result<Option<Session>, StoreError> {
    conn.prepare_cached(
        "SELECT t.name, t.scopes, s.created_at, s.expires_at
         FROM sessions s JOIN tokens t ON t.hash = s.token_hash
         WHERE s.hash = ?1 AND s.expires_at > ?2",
    )
    .and_then(|mut st| st.query_row((hash.to_hex(), now), raw).optional())
    .map_err(db_error)?
    .map(session)
    .transpose()
}

/// Deletes the session with `hash`; whether there was one.
pub(crate) fn delete(conn: &Connection, hash: &TokenHash) -> Result<bool, StoreError> {
    conn.prepare_cached("DELETE FROM sessions WHERE hash = ?1")
        .and_then(|mut st| st.execute([hash.to_hex()]))
        .map(|n| n > 0)
        .map_err(db_error)
}

/// Deletes sessions expired at `now` (in microseconds), and those whose
/// token is gone.
pub(crate) fn prune(conn: &Connection, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM sessions WHERE expires_at <= ?1
            OR NOT EXISTS (SELECT 1 FROM tokens t WHERE t.hash = sessions.token_hash)",
    )
    .and_then(|mut st| st.execute([now]))
    .map_err(db_error)?;
    Ok(())
}

type RawSession = (String, String, i64, i64);

fn raw(r: &Row) -> rusqlite::Result<RawSession> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn session((name, scopes, created_at, expires_at): RawSession) -> Result<Session, StoreError> {
    Ok(Session {
        scopes: Scopes::from_stored(&scopes)
            .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?,
        token_name: name,
        created_at: from_micros(created_at)?,
        expires_at: from_micros(expires_at)?,
    })
}
