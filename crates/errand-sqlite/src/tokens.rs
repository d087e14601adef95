//! API tokens (migration 0008): stored by name with the SHA-256 of their
//! secret, found by that hash.

use crate::audit;
use crate::rows::{db_error, from_micros, micros};
use errand_core::StoreError;
use errand_core::audit::{AuditAction, AuditActor, NewAuditEntry};
use errand_core::auth::{LAST_USE_INTERVAL, NewToken, Scopes, Token, TokenHash};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};

const COLUMNS: &str = "name, scopes, created_at, last_used_at";

/// Inserts `token` with its audit entry; a taken name changes nothing and
/// answers `Exists`.
pub(crate) fn create(
    conn: &Connection,
    token: NewToken,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<Token, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO tokens (name, hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute((
                &token.name,
                token.hash.to_hex(),
                token.scopes.to_stored(),
                micros(now),
            ))
        })
        .map_err(db_error)?;
    if inserted == 0 {
        return Err(StoreError::Exists(format!("token {:?}", token.name)));
    }
    let entry = NewAuditEntry::token(actor, AuditAction::TokenCreate, &token.name, &token.scopes);
    audit::record(conn, &entry, now)?;
    Ok(Token {
        name: token.name,
        scopes: token.scopes,
        created_at: from_micros(micros(now))?,
        last_used_at: None,
    })
}

/// The token with `hash`.
pub(crate) fn by_hash(conn: &Connection, hash: &TokenHash) -> Result<Option<Token>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = ?1"))
        .and_then(|mut st| st.query_row([hash.to_hex()], raw).optional())
        .map_err(db_error)?
        .map(token)
        .transpose()
}

/// Every token, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<Token>, StoreError> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens ORDER BY name"))
        .map_err(db_error)?;
    let rows = st
        .query_map([], raw)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(db_error)?;
    rows.into_iter().map(token).collect()
}

/// Deletes the token `name`, with its audit entry; whether there was one.
pub(crate) fn revoke(
    conn: &Connection,
    name: &str,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let scopes: Option<String> = conn
        .prepare_cached("DELETE FROM tokens WHERE name = ?1 RETURNING scopes")
        .and_then(|mut st| st.query_row([name], |r| r.get(0)).optional())
        .map_err(db_error)?;
    let Some(scopes) = scopes else {
        return Ok(false);
    };
    let scopes = Scopes::from_stored(&scopes)
        .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?;
    let entry = NewAuditEntry::token(actor, AuditAction::TokenRevoke, name, &scopes);
    audit::record(conn, &entry, now)?;
    Ok(true)
}

/// Sets `name`'s last use to `now` unless one within [`LAST_USE_INTERVAL`]
/// is recorded.
pub(crate) fn record_use(conn: &Connection, name: &str, now: Timestamp) -> Result<(), StoreError> {
    let interval = i64::try_from(LAST_USE_INTERVAL.as_micros()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "UPDATE tokens SET last_used_at = ?2
         WHERE name = ?1 AND (last_used_at IS NULL OR last_used_at <= ?2 - ?3)",
    )
    .and_then(|mut st| st.execute((name, micros(now), interval)))
    .map_err(db_error)?;
    Ok(())
}

type RawToken = (String, String, i64, Option<i64>);

fn raw(r: &Row) -> rusqlite::Result<RawToken> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn token((name, scopes, created_at, last_used_at): RawToken) -> Result<Token, StoreError> {
    Ok(Token {
        scopes: Scopes::from_stored(&scopes)
            .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?,
        name,
        created_at: from_micros(created_at)?,
        last_used_at: last_used_at.map(from_micros).transpose()?,
    })
}
