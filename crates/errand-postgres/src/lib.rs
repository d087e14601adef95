//! errand's PostgreSQL store engine: many errand nodes share one database.
//!
//! Claims take rows with `FOR UPDATE SKIP LOCKED` in batches; completions
//! are written many per statement; idle workers on every node are woken by
//! LISTEN/NOTIFY (see [`events`]). Claims of kinds with global limits take
//! a slower, per-kind serialised path (see [`limits`]); a batch's
//! on-complete job is enqueued by the transaction that ends its last job
//! (see [`batches`]). Connections come from a bounded pool and
//! are checked before use; a lost or refused connection surfaces as
//! `StoreError::Unavailable`, which callers retry with backoff, never as a
//! failed job.

mod audit;
mod batches;
mod bulk;
mod counts;
mod enqueue;
mod events;
mod history;
mod limits;
mod migrate;
/// The schema version this build migrates a database to (its newest migration).
pub use crate::migrate::LATEST as SCHEMA_VERSION;
mod nodes;
mod ops;
mod published;
mod queues;
mod read;
mod rows;
mod schedules;
#[cfg(feature = "seed")]
pub mod seed;
mod sessions;
mod skew;
mod tokens;

use crate::events::{Changes, Events};
use crate::rows::{db_error, pool_error};
pub use crate::skew::SKEW_BOUND;
use crate::skew::SkewWatch;
use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use errand_core::audit::{AuditActor, AuditEntry, AuditFilter};
use errand_core::auth::{NewToken, Token, TokenHash};
use errand_core::batch::{Batch, BatchId, NewBatch};
use errand_core::bulk::{BulkId, BulkOperation, BulkState, NewBulk};
use errand_core::event::{Event, EventFilter, EventId, NewEvent, Published};
use errand_core::history::{ThroughputBucket, ThroughputQuery, Total};
use errand_core::load::{CommitTimes, StoreLoad};
use errand_core::session::{NewSession, Session};
use errand_core::store::{ClaimRequest, Claimed, Finish, ListCounts, ListFilter, Stats};
use errand_core::{
    Clock, Enqueued, Job, JobId, Lease, NewJob, NodeInfo, ProgressUpdate, QueueInfo, Retention,
    Store, StoreError, StoreEvent,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it lags.
const EVENT_CAPACITY: usize = 1024;

/// How to connect to PostgreSQL; the `[postgres]` section of the
/// configuration file sets `pool_size`, `connect_timeout` and
/// `verify_connections`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresOptions {
    /// Most pooled connections open at once (the LISTEN connection is one more).
    pub pool_size: usize,
    /// Longest wait to open a connection.
    #[serde(with = "errand_core::duration::serde_human")]
    pub connect_timeout: Duration,
    /// Longest wait for a free pooled connection before `Unavailable`.
    #[serde(skip)]
    pub pool_timeout: Duration,
    /// The `application_name` of every connection, to find them in `pg_stat_activity`.
    #[serde(skip)]
    pub application_name: String,
    /// Run a test query on a pooled connection before each use (one more
    /// round trip on every store call). Off by default: a closed socket is
    /// noticed without it, and a connection that died silently fails its
    /// next call with `Unavailable`, which every caller retries.
    pub verify_connections: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 10,
            connect_timeout: Duration::from_secs(5),
            pool_timeout: Duration::from_secs(30),
            application_name: "errand".to_string(),
            verify_connections: false,
        }
    }
}

/// A job store in a PostgreSQL database; cheap to clone, all clones share
/// one pool and one listener.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    events: Events,
    clock: Clock,
    skew: SkewWatch,
    /// Throughput counts of committed operations, written every second.
    history: Arc<history::Recorder>,
    /// Time of each enqueue, claim and finish call.
    commits: CommitTimes,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PostgresStore {
    /// Connects, applies pending migrations, and starts the event listener.
    pub async fn connect(url: &str, opts: PostgresOptions) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect_with_clock(url, opts, Clock::system()).await
    }

    /// [`PostgresStore::connect`] with the time read from `clock` (a manual
    /// one in tests). Every timestamp and deadline, leader leases and rate
    /// windows included, comes from it, never from the server's `now()`.
    pub async fn connect_with_clock(
        url: &str,
        opts: PostgresOptions,
        clock: Clock,
    ) -> Result<PostgresStore, StoreError> {
        let mut config = parse_url(url)?;
        config
            .application_name(&opts.application_name)
            .connect_timeout(opts.connect_timeout);
        migrate::migrate(&mut connect_one(&config).await?).await?;
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: if opts.verify_connections {
                    RecyclingMethod::Verified
                } else {
                    RecyclingMethod::Fast
                },
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(opts.pool_timeout))
            .create_timeout(Some(opts.connect_timeout))
            .recycle_timeout(Some(opts.connect_timeout))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        let (events, mut tasks) = events::start(pool.clone(), config, EVENT_CAPACITY);
        let recorder = Arc::new(history::Recorder::default());
        tasks.push(history::start(recorder.clone(), pool.clone()));
        tasks.push(counts::start(pool.clone()));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                pool,
                events,
                clock,
                skew: SkewWatch::default(),
                history: recorder,
                commits: CommitTimes::default(),
                tasks,
            }),
        })
    }

    /// Applies pending migrations (for `errand migrate`); answers the
    /// schema version the database has now. Safe to run from many nodes at once.
    pub async fn migrate(url: &str) -> Result<u32, StoreError> {
        let config = parse_url(url)?;
        migrate::migrate(&mut connect_one(&config).await?).await
    }

    /// Applied schema version.
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        migrate::applied_version(&**self.client().await?).await
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.inner.pool.get().await.map_err(pool_error)
    }

    /// How far the database server's clock was ahead of this store's
    /// (negative: behind) at the latest node heartbeat; a node warns in its
    /// log when this passes [`SKEW_BOUND`].
    pub fn clock_offset(&self) -> Option<jiff::SignedDuration> {
        self.inner.skew.latest()
    }

    /// The time now, by the store's clock.
    fn now(&self) -> jiff::Timestamp {
        self.inner.clock.now()
    }

    /// Answers `value`, after telling waiters what changed and keeping
    /// its throughput counts for the next history flush.
    fn announce<T>(&self, (value, mut changes): (T, Changes)) -> T {
        self.inner.history.add(std::mem::take(&mut changes.history));
        self.inner.events.publish(changes);
        value
    }

    /// Records how long a write call took since `started`.
    fn timed<T>(&self, started: Instant, result: T) -> T {
        self.inner.commits.observe(started.elapsed());
        result
    }
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse().map_err(|e| {
        let message = format!("invalid PostgreSQL URL: {e}");
        StoreError::Config(errand_core::redact::urls(&message))
    })
}

/// One connection outside the pool, driven by its own task until dropped.
async fn connect_one(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(db_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "unpooled connection ended");
        }
    });
    Ok(client)
}

#[async_trait]
impl Store for PostgresStore {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let started = Instant::now();
        let answer = enqueue::insert(&self.client().await?, &jobs, None, self.now()).await;
        Ok(self.announce(self.timed(started, answer)?))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        read::get(&self.client().await?, id).await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        read::list(&self.client().await?, filter).await
    }

    async fn live_by_unique(&self, kinds: &[String], key: &str) -> Result<Option<Job>, StoreError> {
        read::live_by_unique(&self.client().await?, kinds, key).await
    }

    async fn waiting_by_priority(
        &self,
        kinds: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError> {
        read::waiting_by_priority(&self.client().await?, kinds).await
    }

    async fn list_counts(&self, filter: &ListFilter) -> Result<ListCounts, StoreError> {
        counts::for_listing(&self.client().await?, filter).await
    }

    async fn scan_floor(&self, filter: &ListFilter) -> Result<Option<JobId>, StoreError> {
        read::scan_floor(&self.client().await?, filter).await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Claimed, StoreError> {
        let started = Instant::now();
        let now = self.now();
        let limited = req.limited_kinds();
        let claimed = if limited.is_empty() {
            let jobs = ops::claim(&self.client().await?, req, now).await;
            jobs.map(|jobs| Claimed { jobs, held: None })
        } else {
            limits::claim(&self.client().await?, req, &limited, now).await
        };
        let claimed = self.timed(started, claimed)?;
        if !claimed.jobs.is_empty() {
            let mut counted = errand_core::history::Pending::default();
            counted.claimed(now, &claimed.jobs);
            self.inner.history.add(counted);
        }
        Ok(claimed)
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>, StoreError> {
        ops::heartbeat(&self.client().await?, leases, lease, self.now()).await
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        let started = Instant::now();
        let answer = ops::finish(&mut self.client().await?, finishes, self.now()).await;
        Ok(self.announce(self.timed(started, answer)?))
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> Result<Vec<bool>, StoreError> {
        ops::record_progress(&self.client().await?, &updates).await
    }

    async fn cancel(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let answer = ops::cancel(&mut self.client().await?, id, actor, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn retry(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let answer = ops::retry(&mut self.client().await?, id, actor, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        counts::read(&self.client().await?).await
    }

    async fn throughput(
        &self,
        query: &ThroughputQuery,
    ) -> Result<Vec<ThroughputBucket>, StoreError> {
        history::throughput(&self.client().await?, query).await
    }

    async fn totals(&self) -> Result<Vec<Total>, StoreError> {
        history::totals(&self.client().await?).await
    }

    async fn oldest_due(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError> {
        history::oldest_due(&self.client().await?, self.now()).await
    }

    async fn flush_history(&self) -> Result<(), StoreError> {
        self.inner.history.flush(&self.inner.pool).await
    }

    fn load(&self) -> StoreLoad {
        let pool = self.inner.pool.status();
        StoreLoad {
            commits: self.inner.commits.snapshot(),
            pending_writes: (pool.size.saturating_sub(pool.available) + pool.waiting) as u64,
        }
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>, StoreError> {
        let answer = ops::rescue_expired(&mut self.client().await?, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn promote_due(&self) -> Result<u64, StoreError> {
        let answer = ops::promote_due(&self.client().await?, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        ops::prune(&self.client().await?, retention, self.now()).await
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let client = self.client().await?;
        let now = self.now();
        let database_now = nodes::register(&client, node, now).await?;
        self.inner.skew.observe(database_now, now);
        Ok(())
    }

    async fn drain_node(&self, name: &str) -> Result<bool, StoreError> {
        nodes::drain(&self.client().await?, name).await
    }

    async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        nodes::remove(&self.client().await?, name).await
    }

    async fn nodes(&self, alive_within: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        nodes::list(&self.client().await?, alive_within, self.now()).await
    }

    async fn try_lead(&self, role: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        nodes::try_lead(&self.client().await?, role, node, ttl, self.now()).await
    }

    async fn resign(&self, role: &str, node: &str) -> Result<(), StoreError> {
        nodes::resign(&self.client().await?, role, node).await
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        actor: &AuditActor,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let changes = queues::set_paused(&mut client, queue, paused, actor, self.now()).await?;
        self.inner.events.publish(changes);
        Ok(())
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        queues::list(&self.client().await?).await
    }

    async fn oldest_available(&self, queue: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        queues::oldest_available(&self.client().await?, queue).await
    }

    async fn publish(
        &self,
        event: NewEvent,
        listeners: Vec<NewJob>,
    ) -> Result<Published, StoreError> {
        let answer =
            published::publish(&mut self.client().await?, event, listeners, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        published::get(&self.client().await?, id).await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        published::list(&self.client().await?, filter).await
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<Batch, StoreError> {
        let answer = batches::create(&mut self.client().await?, batch, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError> {
        batches::get(&self.client().await?, id).await
    }

    async fn batch_jobs(&self, id: BatchId) -> Result<Vec<Job>, StoreError> {
        batches::jobs(&self.client().await?, id).await
    }

    async fn record_tick(
        &self,
        name: &str,
        tick: jiff::Timestamp,
        job: Option<NewJob>,
    ) -> Result<Option<Enqueued>, StoreError> {
        let answer =
            schedules::record_tick(&mut self.client().await?, name, tick, job, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn ticks(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError> {
        schedules::ticks(&self.client().await?).await
    }

    async fn create_token(&self, token: NewToken, actor: &AuditActor) -> Result<Token, StoreError> {
        tokens::create(&mut self.client().await?, token, actor, self.now()).await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>, StoreError> {
        tokens::by_hash(&self.client().await?, hash).await
    }

    async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        tokens::list(&self.client().await?).await
    }

    async fn revoke_token(&self, name: &str, actor: &AuditActor) -> Result<bool, StoreError> {
        tokens::revoke(&mut self.client().await?, name, actor, self.now()).await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        audit::list(&self.client().await?, filter).await
    }

    async fn record_token_use(&self, name: &str) -> Result<(), StoreError> {
        tokens::record_use(&self.client().await?, name, self.now()).await
    }

    async fn create_session(&self, session: NewSession) -> Result<Option<Session>, StoreError> {
        sessions::create(&self.client().await?, session, self.now()).await
    }

    async fn session_by_hash(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        sessions::by_hash(&self.client().await?, hash, self.now()).await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        sessions::delete(&self.client().await?, hash).await
    }

    async fn create_bulk(&self, bulk: NewBulk) -> Result<BulkOperation, StoreError> {
        bulk::create(&mut self.client().await?, bulk, self.now()).await
    }

    async fn step_bulk(&self, id: BulkId, chunk: u32) -> Result<BulkOperation, StoreError> {
        let answer = bulk::step(&mut self.client().await?, id, chunk, self.now()).await?;
        Ok(self.announce(answer))
    }

    async fn fail_bulk(&self, id: BulkId, error: &str) -> Result<(), StoreError> {
        bulk::fail(&self.client().await?, id, error, self.now()).await
    }

    async fn bulk(&self, id: BulkId) -> Result<Option<BulkOperation>, StoreError> {
        bulk::get(&self.client().await?, id).await
    }

    async fn bulks(
        &self,
        state: Option<BulkState>,
        limit: u32,
    ) -> Result<Vec<BulkOperation>, StoreError> {
        bulk::list(&self.client().await?, state, limit).await
    }
}
