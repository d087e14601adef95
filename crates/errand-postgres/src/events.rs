//! Store events across nodes. Local subscribers hear of a commit directly,
//! in-process; other nodes hear of it through PostgreSQL NOTIFY on one
//! channel, received by a LISTEN connection of its own outside the pool.
//!
//! NOTIFY is never sent inside a job transaction: a transaction with a
//! pending NOTIFY takes a database-wide lock at commit, which would
//! serialise every enqueue. Instead one notifier task per store coalesces
//! what happened into at most one short NOTIFY statement per
//! [`NOTIFY_INTERVAL`].

use crate::rows::{db_error, pool_error};
use deadpool_postgres::Pool;
use errand_core::{JobId, StoreEvent};
use futures_util::StreamExt;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

/// The NOTIFY channel every errand node listens on.
pub(crate) const CHANNEL: &str = "errand_jobs";

/// Shortest gap between two NOTIFYs of one store: what piles up meanwhile
/// goes out together.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(3);

/// Most job ids in one NOTIFY payload (PostgreSQL caps payloads at 8000 bytes).
const IDS_PER_NOTIFY: usize = 400;

/// How often the idle listener checks that its connection still works.
const PING_INTERVAL: Duration = Duration::from_secs(15);

/// Longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one committed operation did that waiters care about.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Queues where jobs became claimable now.
    pub enqueued: BTreeSet<String>,
    /// Jobs that reached a terminal state.
    pub finished: Vec<JobId>,
    /// Throughput counts, for the store's recorder once committed.
    pub history: errand_core::history::Pending,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.enqueued.is_empty() && self.finished.is_empty()
    }

    /// Adds what another change did.
    pub(crate) fn absorb(&mut self, other: Changes) {
        self.enqueued.extend(other.enqueued);
        self.finished.extend(other.finished);
        self.history.absorb(other.history);
    }

    fn send_local(&self, tx: &broadcast::Sender<StoreEvent>) {
        // Nobody listening is fine.
        if !self.enqueued.is_empty() {
            let queues: Arc<[String]> = self.enqueued.iter().cloned().collect();
            let _ = tx.send(StoreEvent::Enqueued(queues));
        }
        if !self.finished.is_empty() {
            let _ = tx.send(StoreEvent::Finished(self.finished.as_slice().into()));
        }
    }

    /// NOTIFY payloads: the queues in the first, the ids spread over as many
    /// as needed; each names the origin so it can ignore its own.
    fn payloads(&self, origin: u64) -> Vec<String> {
        let mut chunks: Vec<&[JobId]> = self.finished.chunks(IDS_PER_NOTIFY).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, ids)| {
                let queues: Vec<&String> = if i == 0 {
                    self.enqueued.iter().collect()
                } else {
                    Vec::new()
                };
                json!({"o": origin, "q": queues, "f": ids}).to_string()
            })
            .collect()
    }
}

/// The event hub of one store: local subscribers and the notifier queue.
#[derive(Debug)]
pub(crate) struct Events {
    local: broadcast::Sender<StoreEvent>,
    outbox: mpsc::UnboundedSender<Changes>,
}

impl Events {
    /// Tells local subscribers at once and other nodes soon.
    pub(crate) fn publish(&self, changes: Changes) {
        if changes.is_empty() {
            return;
        }
        changes.send_local(&self.local);
        // The notifier is gone only when the store is being dropped.
        let _ = self.outbox.send(changes);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.local.subscribe()
    }
}

/// Starts the notifier and listener tasks of a store; answers the hub and
/// the tasks' abort handles.
pub(crate) fn start(
    pool: Pool,
    listen_config: tokio_postgres::Config,
    capacity: usize,
) -> (Events, Vec<tokio::task::AbortHandle>) {
    let (local, _) = broadcast::channel(capacity);
    let (outbox, inbox) = mpsc::unbounded_channel();
    let origin = fastrand::u64(..);
    let notifier = tokio::spawn(notify_loop(pool, inbox, origin));
    let listener = tokio::spawn(listen_loop(listen_config, local.clone(), origin));
    (
        Events { local, outbox },
        vec![notifier.abort_handle(), listener.abort_handle()],
    )
}

/// Sends what was published as coalesced NOTIFYs, outside any job transaction.
async fn notify_loop(pool: Pool, mut inbox: mpsc::UnboundedReceiver<Changes>, origin: u64) {
    while let Some(first) = inbox.recv().await {
        let mut batch = first;
        while let Ok(more) = inbox.try_recv() {
            batch.absorb(more);
        }
        if let Err(e) = notify(&pool, &batch.payloads(origin)).await {
            // Other nodes still poll, and re-read everything when their
            // listener reconnects; a lost wake-up only delays them.
            tracing::warn!(error = %e, "cannot notify other nodes");
        }
        tokio::time::sleep(NOTIFY_INTERVAL).await;
    }
}

async fn notify(pool: &Pool, payloads: &[String]) -> Result<(), errand_core::StoreError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .await
        .map_err(db_error)?;
    client
        .execute(&stmt, &[&CHANNEL, &payloads])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Keeps a LISTEN connection open, reconnecting with backoff, and turns
/// other nodes' NOTIFYs into local events. After a reconnection it
/// announces every queue with claimable jobs, since NOTIFYs sent while the
/// connection was down are lost.
async fn listen_loop(
    config: tokio_postgres::Config,
    local: broadcast::Sender<StoreEvent>,
    origin: u64,
) {
    let mut backoff = Duration::from_millis(100);
    let mut reconnecting = false;
    loop {
        match listen_once(&config, &local, origin, reconnecting).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "event listener connection lost");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        reconnecting = true;
    }
}

/// One listener connection, until it drops. `Ok` means it had been up.
async fn listen_once(
    config: &tokio_postgres::Config,
    local: &broadcast::Sender<StoreEvent>,
    origin: u64,
    reconnecting: bool,
) -> Result<(), String> {
    let (client, mut connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| db_error(e).to_string())?;
    let (tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_string());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::rows::db_error(e), "event listener connection failed");
                    break;
                }
            }
        }
    });
    let setup = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if reconnecting {
            let rows = client
                .query(
                    "SELECT DISTINCT queue FROM jobs \
                     WHERE state IN ('scheduled', 'available', 'retryable')",
                    &[],
                )
                .await?;
            let queues: Arc<[String]> = rows.iter().map(|r| r.get(0)).collect();
            tracing::info!("event listener reconnected");
            let _ = local.send(StoreEvent::Enqueued(queues));
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    if let Err(e) = setup.await {
        driver.abort();
        return Err(db_error(e).to_string());
    }
    // A connection that died without a word (no FIN) is found by pinging.
    let mut ping = tokio::time::interval(PING_INTERVAL);
    loop {
        tokio::select! {
            payload = messages.recv() => match payload {
                Some(payload) => {
                    if let Some(changes) = parse(&payload, origin) {
                        changes.send_local(local);
                    }
                }
                None => break,
            },
            _ = ping.tick() => {
                let answer = tokio::time::timeout(PING_INTERVAL, client.simple_query("")).await;
                if !matches!(answer, Ok(Ok(_))) {
                    driver.abort();
                    return Err("the listener connection stopped answering".to_string());
                }
            }
        }
    }
    drop(client);
    tracing::warn!("event listener connection closed; reconnecting");
    Ok(())
}

/// Another node's NOTIFY payload as changes; `None` for our own or garbage.
fn parse(payload: &str, origin: u64) -> Option<Changes> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    if v["o"].as_u64() == Some(origin) {
        return None;
    }
    Some(Changes {
        enqueued: serde_json::from_value(v["q"].clone()).ok()?,
        finished: serde_json::from_value(v["f"].clone()).ok()?,
        history: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_split_ids_and_round_trip() {
        let changes = Changes {
            enqueued: ["a".to_string(), "b".to_string()].into(),
            finished: (0..1000).collect(),
            history: Default::default(),
        };
        let payloads = changes.payloads(7);
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        assert!(
            parse(&payloads[0], 7).is_none(),
            "our own NOTIFY is ignored"
        );
        let mut back = Changes::default();
        for p in &payloads {
            back.absorb(parse(p, 8).expect("another node's payload parses"));
        }
        assert_eq!(back.enqueued, changes.enqueued);
        assert_eq!(back.finished, changes.finished);
        assert!(parse("not json", 8).is_none());
    }
}
