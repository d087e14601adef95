//! The node registry and leader leases: which errand processes are alive,
//! and which one runs a cluster-wide duty such as maintenance.

use crate::rows::{after, db_error, from_micros, micros, to_json};
use errand_core::{NodeInfo, StoreError};
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Duration;

/// Inserts or refreshes a node; `last_seen` becomes now.
pub(crate) fn register(
    conn: &Connection,
    node: &NodeInfo,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO nodes (name, started_at, last_seen, queues, running, http, breakers, remote)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen,
             queues = excluded.queues, running = excluded.running, http = excluded.http,
             breakers = excluded.breakers, remote = excluded.remote",
    )
    .and_then(|mut st| {
        st.execute(params![
            node.name,
            micros(node.started_at),
            micros(now),
            to_json(&node.queues),
            node.running,
            node.http,
            to_json(&node.breakers),
            node.remote.as_ref().map(to_json)
        ])
    })
    .map_err(db_error)?;
    Ok(())
}

/// Asks a node to drain; answers whether it is registered.
pub(crate) fn drain(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let n = conn
        .execute("UPDATE nodes SET draining = 1 WHERE name = ?1", [name])
        .map_err(db_error)?;
    Ok(n > 0)
}

/// Deletes a node's record.
pub(crate) fn remove(conn: &Connection, name: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM nodes WHERE name = ?1", [name])
        .map_err(db_error)?;
    Ok(())
}

/// Deletes nodes silent for longer than `alive_within` and lists the rest.
pub(crate) fn list(
    conn: &Connection,
    alive_within: Duration,
    now: Timestamp,
) -> Result<Vec<NodeInfo>, StoreError> {
    let cutoff = micros(now) - crate::rows::duration_micros(alive_within);
    conn.execute("DELETE FROM nodes WHERE last_seen < ?1", [cutoff])
        .map_err(db_error)?;
    let mut st = conn
        .prepare_cached(
            "SELECT name, started_at, last_seen, queues, running, http, breakers, remote,
                    draining
             FROM nodes ORDER BY name",
        )
        .map_err(db_error)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, bool>(8)?,
            ))
        })
        .map_err(db_error)?;
    rows.map(|row| {
        let (name, started, seen, queues, running, http, breakers, remote, draining) =
            row.map_err(db_error)?;
        Ok(NodeInfo {
            name,
            started_at: from_micros(started)?,
            last_seen: from_micros(seen)?,
            queues: serde_json::from_str(&queues)
                .map_err(|e| StoreError::Internal(format!("node queues: {e}")))?,
            running,
            http,
            breakers: serde_json::from_str(&breakers)
                .map_err(|e| StoreError::Internal(format!("node breakers: {e}")))?,
            remote: remote
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|e| StoreError::Internal(format!("node remote: {e}")))?,
            draining,
        })
    })
    .collect()
}

/// Takes the role if it is free, expired or already `node`'s; renews it.
pub(crate) fn try_lead(
    conn: &Connection,
    role: &str,
    node: &str,
    ttl: Duration,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let holder: Option<String> = conn
        .query_row(
            "INSERT INTO leaders (role, node, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (role) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at
                 WHERE leaders.node = excluded.node OR leaders.expires_at < ?4
             RETURNING node",
            params![role, node, micros(after(now, ttl)), micros(now)],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_error)?;
    Ok(holder.as_deref() == Some(node))
}

/// Releases the role if `node` holds it.
pub(crate) fn resign(conn: &Connection, role: &str, node: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM leaders WHERE role = ?1 AND node = ?2",
        [role, node],
    )
    .map_err(db_error)?;
    Ok(())
}
