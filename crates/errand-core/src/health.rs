//! Whether the store's writes are working: [`WriteTracked`] wraps any store,
//! remembers the latest write that failed with [`StoreError::Unavailable`]
//! (a full disk, a read-only file, a database that is down) and forgets it
//! once a write that changed something succeeds. Every writer of a node
//! (the API and the worker) shares the wrapped store, so `/healthz` reports
//! what all of them see.

use crate::audit::{AuditActor, AuditEntry, AuditFilter};
use crate::auth::{NewToken, Token, TokenHash};
use crate::batch::{Batch, BatchId, NewBatch};
use crate::bulk::{BulkId, BulkOperation, BulkState, NewBulk};
use crate::event::{Event, EventFilter, EventId, NewEvent, Published};
use crate::job::{Enqueued, Job, JobId, Lease, NewJob};
use crate::session::{NewSession, Session};
use crate::store::{
    Claimed, Finish, ListFilter, NodeInfo, QueueInfo, Stats, Store, StoreError, StoreEvent,
};
use crate::{Clock, Retention};
use async_trait::async_trait;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// What a node knows about its writes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteHealth {
    /// Set while the latest write that reached the database failed.
    pub failing: Option<WriteFailure>,
    /// When a write last changed something.
    pub last_success: Option<Timestamp>,
}

/// Writes have been failing since `since`, the latest because of `reason`.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteFailure {
    /// The first failure of this run of failures.
    pub since: Timestamp,
    /// The engine's words for the latest one (e.g. "database or disk is full").
    pub reason: String,
}

impl WriteHealth {
    /// One sentence for `/healthz` while writes fail, `None` when they work.
    pub fn degraded(&self) -> Option<String> {
        self.failing.as_ref().map(|f| {
            format!(
                "degraded: writes are failing: {} (since {})",
                f.reason,
                f.since.round(jiff::Unit::Second).unwrap_or(f.since)
            )
        })
    }

    /// Takes in the outcome of one write; `changed` says whether a success
    /// wrote anything. A write with nothing to do (an empty claim) commits
    /// even on a full disk, so only one that changed data proves writes work.
    fn record<T>(
        &mut self,
        result: &Result<T, StoreError>,
        changed: impl FnOnce(&T) -> bool,
        now: Timestamp,
    ) {
        match result {
            Ok(value) if changed(value) => {
                self.failing = None;
                self.last_success = Some(now);
            }
            Err(StoreError::Unavailable(reason)) => {
                let since = self.failing.as_ref().map_or(now, |f| f.since);
                self.failing = Some(WriteFailure {
                    since,
                    reason: reason.clone(),
                });
            }
            // A refused request (not found, conflict) or an engine bug says
            // nothing about whether the database can write.
            Ok(_) | Err(_) => {}
        }
    }
}

/// A store that records the outcome of every write in a [`WriteHealth`].
pub struct WriteTracked {
    inner: Arc<dyn Store>,
    health: Mutex<WriteHealth>,
}

impl WriteTracked {
    /// Wraps `inner`; its writes are healthy until one fails.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        WriteTracked {
            inner,
            health: Mutex::new(WriteHealth::default()),
        }
    }

    fn track<T>(
        &self,
        result: Result<T, StoreError>,
        changed: impl FnOnce(&T) -> bool,
    ) -> Result<T, StoreError> {
        // A poisoned lock only means a panic while recording: the data is plain.
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        health.record(&result, changed, self.inner.clock().now());
        result
    }
}

/// Every successful call of this write changed something.
fn always<T>(_: &T) -> bool {
    true
}

#[async_trait]
impl Store for WriteTracked {
    fn write_health(&self) -> WriteHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let result = self.inner.enqueue(jobs).await;
        self.track(result, |e| e.iter().any(|e| !e.duplicate))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.inner.get(id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        self.inner.list(filter).await
    }

    async fn live_by_unique(&self, kinds: &[String], key: &str) -> Result<Option<Job>, StoreError> {
        self.inner.live_by_unique(kinds, key).await
    }

    async fn waiting_by_priority(
        &self,
        kinds: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError> {
        self.inner.waiting_by_priority(kinds).await
    }

    async fn list_counts(
        &self,
        filter: &ListFilter,
    ) -> Result<crate::store::ListCounts, StoreError> {
        self.inner.list_counts(filter).await
    }

    async fn scan_floor(&self, filter: &ListFilter) -> Result<Option<JobId>, StoreError> {
        self.inner.scan_floor(filter).await
    }

    async fn claim(&self, req: &crate::store::ClaimRequest) -> Result<Claimed, StoreError> {
        let result = self.inner.claim(req).await;
        self.track(result, |c| !c.jobs.is_empty())
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>, StoreError> {
        let result = self.inner.heartbeat(leases, lease).await;
        self.track(result, |lost| lost.len() < leases.len())
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        let result = self.inner.finish(finishes).await;
        self.track(result, |applied| applied.contains(&true))
    }

    async fn record_progress(
        &self,
        updates: Vec<crate::ProgressUpdate>,
    ) -> Result<Vec<bool>, StoreError> {
        let result = self.inner.record_progress(updates).await;
        self.track(result, |applied| applied.contains(&true))
    }

    async fn cancel(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let result = self.inner.cancel(id, actor).await;
        self.track(result, always)
    }

    async fn retry(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let result = self.inner.retry(id, actor).await;
        self.track(result, always)
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.inner.stats().await
    }

    async fn throughput(
        &self,
        query: &crate::history::ThroughputQuery,
    ) -> Result<Vec<crate::history::ThroughputBucket>, StoreError> {
        self.inner.throughput(query).await
    }

    async fn totals(&self) -> Result<Vec<crate::history::Total>, StoreError> {
        self.inner.totals().await
    }

    async fn oldest_due(
        &self,
    ) -> Result<std::collections::BTreeMap<String, jiff::Timestamp>, StoreError> {
        self.inner.oldest_due().await
    }

    async fn flush_history(&self) -> Result<(), StoreError> {
        let result = self.inner.flush_history().await;
        self.track(result, always)
    }

    fn load(&self) -> crate::load::StoreLoad {
        self.inner.load()
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>, StoreError> {
        let result = self.inner.rescue_expired().await;
        self.track(result, |ids| !ids.is_empty())
    }

    async fn promote_due(&self) -> Result<u64, StoreError> {
        let result = self.inner.promote_due().await;
        self.track(result, |n| *n > 0)
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        let result = self.inner.prune(retention).await;
        self.track(result, |n| *n > 0)
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.subscribe()
    }

    fn clock(&self) -> Clock {
        self.inner.clock()
    }

    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let result = self.inner.register_node(node).await;
        self.track(result, always)
    }

    async fn drain_node(&self, name: &str) -> Result<bool, StoreError> {
        let result = self.inner.drain_node(name).await;
        self.track(result, always)
    }

    async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        let result = self.inner.remove_node(name).await;
        self.track(result, always)
    }

    async fn nodes(&self, alive_within: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        self.inner.nodes(alive_within).await
    }

    async fn try_lead(&self, role: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let result = self.inner.try_lead(role, node, ttl).await;
        self.track(result, |led| *led)
    }

    async fn resign(&self, role: &str, node: &str) -> Result<(), StoreError> {
        let result = self.inner.resign(role, node).await;
        self.track(result, always)
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        actor: &AuditActor,
    ) -> Result<(), StoreError> {
        let result = self.inner.set_queue_paused(queue, paused, actor).await;
        self.track(result, always)
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        self.inner.queues().await
    }

    async fn oldest_available(&self, queue: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        self.inner.oldest_available(queue).await
    }

    async fn publish(
        &self,
        event: NewEvent,
        listeners: Vec<NewJob>,
    ) -> Result<Published, StoreError> {
        let result = self.inner.publish(event, listeners).await;
        self.track(result, |p| !p.duplicate)
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        self.inner.event(id).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        self.inner.events(filter).await
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<Batch, StoreError> {
        let result = self.inner.create_batch(batch).await;
        self.track(result, always)
    }

    async fn batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError> {
        self.inner.batch(id).await
    }

    async fn batch_jobs(&self, id: BatchId) -> Result<Vec<Job>, StoreError> {
        self.inner.batch_jobs(id).await
    }

    async fn record_tick(
        &self,
        name: &str,
        tick: Timestamp,
        job: Option<NewJob>,
    ) -> Result<Option<Enqueued>, StoreError> {
        let result = self.inner.record_tick(name, tick, job).await;
        self.track(result, |e| e.is_some())
    }

    async fn ticks(&self) -> Result<BTreeMap<String, Timestamp>, StoreError> {
        self.inner.ticks().await
    }

    async fn create_token(&self, token: NewToken, actor: &AuditActor) -> Result<Token, StoreError> {
        let result = self.inner.create_token(token, actor).await;
        self.track(result, always)
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>, StoreError> {
        self.inner.token_by_hash(hash).await
    }

    async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.inner.tokens().await
    }

    async fn revoke_token(&self, name: &str, actor: &AuditActor) -> Result<bool, StoreError> {
        let result = self.inner.revoke_token(name, actor).await;
        self.track(result, |found| *found)
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(filter).await
    }

    async fn record_token_use(&self, name: &str) -> Result<(), StoreError> {
        let result = self.inner.record_token_use(name).await;
        self.track(result, always)
    }

    async fn create_session(&self, session: NewSession) -> Result<Option<Session>, StoreError> {
        let result = self.inner.create_session(session).await;
        self.track(result, Option::is_some)
    }

    async fn session_by_hash(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        self.inner.session_by_hash(hash).await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let result = self.inner.delete_session(hash).await;
        self.track(result, |found| *found)
    }

    async fn create_bulk(&self, bulk: NewBulk) -> Result<BulkOperation, StoreError> {
        let result = self.inner.create_bulk(bulk).await;
        self.track(result, always)
    }

    async fn step_bulk(&self, id: BulkId, chunk: u32) -> Result<BulkOperation, StoreError> {
        let result = self.inner.step_bulk(id, chunk).await;
        self.track(result, always)
    }

    async fn fail_bulk(&self, id: BulkId, error: &str) -> Result<(), StoreError> {
        let result = self.inner.fail_bulk(id, error).await;
        self.track(result, always)
    }

    async fn bulk(&self, id: BulkId) -> Result<Option<BulkOperation>, StoreError> {
        self.inner.bulk(id).await
    }

    async fn bulks(
        &self,
        state: Option<BulkState>,
        limit: u32,
    ) -> Result<Vec<BulkOperation>, StoreError> {
        self.inner.bulks(state, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_lasts_until_a_write_changes_something() {
        let mut health = WriteHealth::default();
        let start = Timestamp::from_second(1_900_000_000).unwrap();
        let later = start + jiff::SignedDuration::from_secs(60);
        assert_eq!(health.degraded(), None);
        let full: Result<u64, _> = Err(StoreError::Unavailable("database or disk is full".into()));
        health.record(&full, |_| true, start);
        let message = health.degraded().unwrap();
        assert!(
            message.starts_with("degraded: writes are failing: database or disk is full (since "),
            "{message}"
        );
        // A refused request and a write with nothing to do change nothing.
        health.record(&Err::<u64, _>(StoreError::NotFound(7)), |_| true, later);
        health.record(&Ok(0u64), |n| *n > 0, later);
        // A second failure keeps the start of the run.
        health.record(&full, |_| true, later);
        assert_eq!(health.failing.as_ref().unwrap().since, start);
        health.record(&Ok(3u64), |n| *n > 0, later);
        assert_eq!(health.degraded(), None);
        assert_eq!(health.last_success, Some(later));
    }
}
