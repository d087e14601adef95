//! The node registry and leader leases: which errand processes are alive,
//! and which one runs a cluster-wide duty such as maintenance. Leader
//! leases are timed by the store's clock like every other deadline
//! (docs/decisions/0014-one-clock.md): nodes need synchronised clocks.

use crate::rows::{after, before, db_error, int, sql_time, time_column, uint};
use deadpool_postgres::Client;
use errand_core::{NodeInfo, StoreError};
use jiff::Timestamp;
use std::time::Duration;

/// Inserts or refreshes a node; `last_seen` becomes `now`. Answers the
/// database server's own time, for [`crate::skew`].
pub(crate) async fn register(
    client: &Client,
    node: &NodeInfo,
    now: Timestamp,
) -> Result<Timestamp, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO nodes (name, started_at, last_seen, queues, running, http, breakers, remote) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, \
                 queues = excluded.queues, running = excluded.running, http = excluded.http, \
                 breakers = excluded.breakers, remote = excluded.remote \
             RETURNING statement_timestamp()",
        )
        .await
        .map_err(db_error)?;
    let queues = serde_json::to_value(&node.queues).expect("queue maps serialize");
    let breakers = serde_json::to_value(&node.breakers).expect("breaker maps serialize");
    let remote = node
        .remote
        .as_ref()
        .map(|r| serde_json::to_value(r).expect("remote worker infos serialize"));
    let row = client
        .query_one(
            &stmt,
            &[
                &node.name,
                &sql_time(node.started_at),
                &sql_time(now),
                &queues,
                &int(node.running),
                &node.http,
                &breakers,
                &remote,
            ],
        )
        .await
        .map_err(db_error)?;
    time_column(&row, 0)
}

/// Asks a node to drain; answers whether it is registered.
pub(crate) async fn drain(client: &Client, name: &str) -> Result<bool, StoreError> {
    let n = client
        .execute("UPDATE nodes SET draining = true WHERE name = $1", &[&name])
        .await
        .map_err(db_error)?;
    Ok(n > 0)
}

/// Deletes a node's record.
pub(crate) async fn remove(client: &Client, name: &str) -> Result<(), StoreError> {
    client
        .execute("DELETE FROM nodes WHERE name = $1", &[&name])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes nodes silent for longer than `alive_within` and lists the rest.
pub(crate) async fn list(
    client: &Client,
    alive_within: Duration,
    now: Timestamp,
) -> Result<Vec<NodeInfo>, StoreError> {
    let cutoff = before(now, alive_within);
    client
        .execute(
            "DELETE FROM nodes WHERE last_seen < $1",
            &[&sql_time(cutoff)],
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            "SELECT name, started_at, last_seen, queues, running, http, breakers, remote, \
                    draining \
             FROM nodes ORDER BY name",
            &[],
        )
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(NodeInfo {
                name: r.get(0),
                started_at: time_column(r, 1)?,
                last_seen: time_column(r, 2)?,
                queues: serde_json::from_value(r.get(3))
                    .map_err(|e| StoreError::Internal(format!("node queues: {e}")))?,
                running: uint(r.get(4), "running")?,
                http: r.get(5),
                breakers: serde_json::from_value(r.get(6))
                    .map_err(|e| StoreError::Internal(format!("node breakers: {e}")))?,
                remote: r
                    .get::<_, Option<serde_json::Value>>(7)
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| StoreError::Internal(format!("node remote: {e}")))?,
                draining: r.get(8),
            })
        })
        .collect()
}

/// Takes the role if it is free, expired or already `node`'s; renews it.
pub(crate) async fn try_lead(
    client: &Client,
    role: &str,
    node: &str,
    ttl: Duration,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO leaders (role, node, expires_at) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (role) DO UPDATE SET node = excluded.node, \
                 expires_at = excluded.expires_at \
                 WHERE leaders.node = excluded.node OR leaders.expires_at < $4 \
             RETURNING node",
        )
        .await
        .map_err(db_error)?;
    let holder = client
        .query_opt(
            &stmt,
            &[&role, &node, &sql_time(after(now, ttl)), &sql_time(now)],
        )
        .await
        .map_err(db_error)?;
    Ok(holder.is_some_and(|r| r.get::<_, &str>(0) == node))
}

/// Releases the role if `node` holds it.
pub(crate) async fn resign(client: &Client, role: &str, node: &str) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM leaders WHERE role = $1 AND node = $2",
            &[&role, &node],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}
