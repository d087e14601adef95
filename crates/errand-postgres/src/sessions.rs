//! Dashboard sessions (migration 0013): stored by the SHA-256 of their
//! secret, valid while unexpired and while their token exists. Every node
//! reads the same table, so a logout ends a session everywhere.

use crate::rows::{after, db_error, sql_time, time_column};
use deadpool_postgres::Client;
use errand_core::StoreError;
use errand_core::auth::{Scopes, TokenHash};
use errand_core::session::{NewSession, Session};
use jiff::Timestamp;
use tokio_postgres::Row;

/// Stores `session` for its token, if that token exists.
pub(crate) async fn create(
    client: &Client,
    session: NewSession,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let stmt = client
        .prepare_cached(
            "WITH t AS (SELECT name, hash, scopes FROM tokens WHERE hash = $2), \
             ins AS (INSERT INTO sessions (hash, token_name, token_hash, created_at, expires_at) \
                     SELECT $1, name, hash, $3, $4 FROM t RETURNING created_at, expires_at) \
             SELECT t.name, t.scopes, ins.created_at, ins.expires_at FROM t, ins",
        )
        .await
        .map_err(db_error)?;
    client
        .query_opt(
            &stmt,
            &[
                &session.hash.to_hex(),
                &session.token_hash.to_hex(),
                &sql_time(now),
                &sql_time(after(now, session.ttl)),
            ],
        )
        .await
        .map_err(db_error)?
        .as_ref()
        .map(read)
        .transpose()
}

/// The session with `hash`, unless expired at `now` or its token is gone.
pub(crate) async fn by_hash(
    client: &Client,
    hash: &TokenHash,
    now: Timestamp,
) -> Result<Option<Session>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT t.name, t.scopes, s.created_at, s.expires_at \
             FROM sessions s JOIN tokens t ON t.hash = s.token_hash \
             WHERE s.hash = $1 AND s.expires_at > $2",
        )
        .await
        .map_err(db_error)?;
    client
        .query_opt(&stmt, &[&hash.to_hex(), &sql_time(now)])
        .await
        .map_err(db_error)?
        .as_ref()
        .map(read)
        .transpose()
}

/// Deletes the session with `hash`; whether there was one.
pub(crate) async fn delete(client: &Client, hash: &TokenHash) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached("DELETE FROM sessions WHERE hash = $1")
        .await
        .map_err(db_error)?;
    Ok(client
        .execute(&stmt, &[&hash.to_hex()])
        .await
        .map_err(db_error)?
        > 0)
}

/// Deletes sessions expired at `now`, and those whose token is gone.
pub(crate) async fn prune(client: &Client, now: Timestamp) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "DELETE FROM sessions WHERE expires_at <= $1 \
             OR NOT EXISTS (SELECT 1 FROM tokens t WHERE t.hash = sessions.token_hash)",
        )
        .await
        .map_err(db_error)?;
    client
        .execute(&stmt, &[&sql_time(now)])
        .await
        .map_err(db_error)?;
    Ok(())
}

fn read(row: &Row) -> Result<Session, StoreError> {
    let name: String = row.try_get(0).map_err(db_error)?;
    let scopes: String = row.try_get(1).map_err(db_error)?;
    Ok(Session {
        scopes: Scopes::from_stored(&scopes)
            .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?,
        token_name: name,
        created_at: time_column(row, 2)?,
        expires_at: time_column(row, 3)?,
    })
}
