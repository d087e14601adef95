//! API tokens (migration 0011): stored by name with the SHA-256 of their
//! secret, found by that hash. Every node reads the same table, so a
//! revocation reaches all of them.

use crate::audit;
use crate::rows::{db_error, optional_time, sql_time, time_column};
use deadpool_postgres::Client;
use errand_core::StoreError;
use errand_core::audit::{AuditAction, AuditActor, NewAuditEntry};
use errand_core::auth::{LAST_USE_INTERVAL, NewToken, Scopes, Token, TokenHash};
use jiff::Timestamp;
use tokio_postgres::Row;

const COLUMNS: &str = "name, scopes, created_at, last_used_at";

/// Inserts `token` with its audit entry; a taken name changes nothing and
/// answers `Exists`.
pub(crate) async fn create(
    client: &mut Client,
    token: NewToken,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<Token, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO tokens (name, hash, scopes, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
        ))
        .await
        .map_err(db_error)?;
    let row = tx
        .query_opt(
            &stmt,
            &[
                &token.name,
                &token.hash.to_hex(),
                &token.scopes.to_stored(),
                &sql_time(now),
            ],
        )
        .await
        .map_err(db_error)?;
    let Some(row) = row else {
        return Err(StoreError::Exists(format!("token {:?}", token.name)));
    };
    let created = read(&row)?;
    let entry = NewAuditEntry::token(actor, AuditAction::TokenCreate, &token.name, &token.scopes);
    audit::record(&tx, &entry, now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(created)
}

/// The token with `hash`.
pub(crate) async fn by_hash(
    client: &Client,
    hash: &TokenHash,
) -> Result<Option<Token>, StoreError> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE hash = $1"))
        .await
        .map_err(db_error)?;
    client
        .query_opt(&stmt, &[&hash.to_hex()])
        .await
        .map_err(db_error)?
        .as_ref()
        .map(read)
        .transpose()
}

/// Every token, by name.
pub(crate) async fn list(client: &Client) -> Result<Vec<Token>, StoreError> {
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens ORDER BY name"))
        .await
        .map_err(db_error)?;
    client
        .query(&stmt, &[])
        .await
        .map_err(db_error)?
        .iter()
        .map(read)
        .collect()
}

/// Deletes the token `name`, with its audit entry; whether there was one.
pub(crate) async fn revoke(
    client: &mut Client,
    name: &str,
    actor: &AuditActor,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached("DELETE FROM tokens WHERE name = $1 RETURNING scopes")
        .await
        .map_err(db_error)?;
    let Some(row) = tx.query_opt(&stmt, &[&name]).await.map_err(db_error)? else {
        return Ok(false);
    };
    let scopes: String = row.try_get(0).map_err(db_error)?;
    let scopes = Scopes::from_stored(&scopes)
        .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?;
    let entry = NewAuditEntry::token(actor, AuditAction::TokenRevoke, name, &scopes);
    audit::record(&tx, &entry, now).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(true)
}

/// Sets `name`'s last use to `now` unless one within [`LAST_USE_INTERVAL`]
/// is recorded.
pub(crate) async fn record_use(
    client: &Client,
    name: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let since = crate::rows::before(now, LAST_USE_INTERVAL);
    let stmt = client
        .prepare_cached(
            "UPDATE tokens SET last_used_at = $2 \
             WHERE name = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .await
        .map_err(db_error)?;
    client
        .execute(&stmt, &[&name, &sql_time(now), &sql_time(since)])
        .await
        .map_err(db_error)?;
    Ok(())
}

fn read(row: &Row) -> Result<Token, StoreError> {
    let name: String = row.try_get(0).map_err(db_error)?;
    let scopes: String = row.try_get(1).map_err(db_error)?;
    Ok(Token {
        scopes: Scopes::from_stored(&scopes)
            .map_err(|e| StoreError::Internal(format!("token {name:?}: {e}")))?,
        name,
        created_at: time_column(row, 2)?,
        last_used_at: optional_time(row, 3)?,
    })
}
