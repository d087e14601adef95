//! errand's embedded SQLite store engine.
//!
//! One file in WAL mode, locked for exclusive use by one errand process.
//! Writes go through a single writer thread that commits everything queued
//! at the time in one transaction (group commit), so an acknowledged write
//! is durable without one fsync per job; reads use their own read-only
//! connections.

mod audit;
#[cfg(feature = "baseline")]
pub mod baseline;
mod batches;
mod bulk;
mod counts;
mod events;
mod history;
mod limits;
mod lock;
mod migrate;
/// The schema version this build migrates a database to (its newest migration).
pub use crate::migrate::LATEST as SCHEMA_VERSION;
mod nodes;
mod ops;
mod queues;
mod read;
mod rows;
mod schedules;
#[cfg(feature = "seed")]
pub mod seed;
mod sessions;
mod tokens;
mod writer;

use crate::lock::DbLock;
use crate::read::{BUSY_TIMEOUT, Readers};
use crate::rows::db_error;
use crate::writer::Writer;
use async_trait::async_trait;
use errand_core::Clock;
use errand_core::audit::{AuditActor, AuditEntry, AuditFilter};
use errand_core::auth::{NewToken, Token, TokenHash};
use errand_core::bulk::{BulkId, BulkOperation, BulkState, NewBulk};
use errand_core::event::{EventFilter, Published};
use errand_core::history::{ThroughputBucket, ThroughputQuery, Total};
use errand_core::load::StoreLoad;
use errand_core::session::{NewSession, Session};
use errand_core::store::{ClaimRequest, Claimed, Finish, ListCounts, ListFilter, Stats};
use errand_core::{
    Batch, BatchId, Enqueued, Event, EventId, Job, JobId, Lease, NewBatch, NewEvent, NewJob,
    NodeInfo, ProgressUpdate, QueueInfo, Retention, Store, StoreError, StoreEvent,
};
use rusqlite::Connection;
use rusqlite::config::DbConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it lags.
const EVENT_CAPACITY: usize = 1024;

/// How hard SQLite works to make each commit durable (`[sqlite]
/// synchronous`: `full`, `normal` or `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged write survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a crash of errand, not of the machine.
    Normal,
    /// No fsync: for tests and benchmarks.
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
            Synchronous::Off => "OFF",
        }
    }

    fn from_level(level: i64) -> Option<Synchronous> {
        match level {
            0 => Some(Synchronous::Off),
            1 => Some(Synchronous::Normal),
            2 => Some(Synchronous::Full),
            _ => None,
        }
    }
}

/// How to open a SQLite store; the `[sqlite]` section of the
/// configuration file sets `synchronous`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteOptions {
    /// Durability of each commit.
    pub synchronous: Synchronous,
    /// Most read-only connections open at once.
    #[serde(skip)]
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

/// A job store in one SQLite file; cheap to clone, all clones share it.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Field order is drop order: the writer finishes its queue before the
    // lock is released.
    writer: Writer,
    readers: Readers,
    events: broadcast::Sender<StoreEvent>,
    clock: Clock,
    /// `None` for [`SqliteStore::open_beside`].
    _lock: Option<DbLock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, takes the exclusive lock, applies pending migrations.
    pub async fn open(
        path: impl AsRef<Path>,
        opts: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with_clock(path, opts, Clock::system()).await
    }

    /// [`SqliteStore::open`] with the time read from `clock` (a manual one in tests).
    pub async fn open_with_clock(
        path: impl AsRef<Path>,
        opts: SqliteOptions,
        clock: Clock,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let lock = Some(DbLock::acquire(&path)?);
        SqliteStore::start(path, opts, clock, lock).await
    }

    /// Opens the database without taking the exclusive lock, beside a node
    /// that may be running on it: only for short administrative commands
    /// that do no job work (`errand tokens`), whose few writes wait their
    /// turn on SQLite's own lock. Claims and maintenance need [`open`].
    ///
    /// [`open`]: SqliteStore::open
    pub async fn open_beside(
        path: impl AsRef<Path>,
        opts: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        SqliteStore::start(path, opts, Clock::system(), None).await
    }

    async fn start(
        path: PathBuf,
        opts: SqliteOptions,
        clock: Clock,
        lock: Option<DbLock>,
    ) -> Result<SqliteStore, StoreError> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let writer_path = path.clone();
        let writer_clock = clock.clone();
        let writer = Writer::start(
            move || open_writer(&writer_path, opts.synchronous, writer_clock.now()),
            events.clone(),
        )
        .await?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer,
                readers: Readers::new(path, opts.readers),
                events,
                clock,
                _lock: lock,
            }),
        })
    }

    /// Applied schema version (for `errand migrate` to print).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        self.inner.readers.read(migrate::applied_version).await
    }

    /// The `synchronous` setting the writer connection runs with.
    pub async fn synchronous(&self) -> Result<Synchronous, StoreError> {
        let level: i64 = self
            .inner
            .writer
            .submit(|conn, _| {
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0))
                    .map_err(db_error)
            })
            .await?;
        Synchronous::from_level(level)
            .ok_or_else(|| StoreError::Internal(format!("unknown synchronous level {level}")))
    }
}

/// Turns off SQLite's global allocation statistics, which take a process-wide
/// mutex on every malloc; this is only possible before SQLite initializes, so
/// a process that used SQLite earlier keeps them (harmlessly).
fn disable_memstatus() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int argument; before
        // initialization no other thread can be inside SQLite, and after it
        // the call only returns SQLITE_MISUSE.
        unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// The write connection: WAL, the chosen durability, migrated.
fn open_writer(
    path: &PathBuf,
    synchronous: Synchronous,
    now: jiff::Timestamp,
) -> Result<Connection, StoreError> {
    disable_memstatus();
    let mut conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!("cannot open database {}: {e}", path.display()))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(db_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "database {} cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    // Savepoint journals stay in memory instead of temp files, and a larger
    // page cache keeps the hot index pages of the claim path resident.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;",
        synchronous.pragma()
    ))
    .map_err(db_error)?;
    // Plans fixed at prepare time: otherwise a new value bound to the claim's
    // LIMIT (or any parameter the planner looked at) re-prepares the
    // statement on its next step, which cost more than running it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(db_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate::migrate(&mut conn, now)?;
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| ops::enqueue(conn, events, jobs, clock.now()))
            .await
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.inner
            .readers
            .read(move |conn| read::get(conn, id))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| read::list(conn, &filter))
            .await
    }

    async fn live_by_unique(&self, kinds: &[String], key: &str) -> Result<Option<Job>, StoreError> {
        let (kinds, key) = (kinds.to_vec(), key.to_string());
        self.inner
            .readers
            .read(move |conn| read::live_by_unique(conn, &kinds, &key))
            .await
    }

    async fn waiting_by_priority(
        &self,
        kinds: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<i16, u64>>, StoreError> {
        let kinds = kinds.to_vec();
        self.inner
            .readers
            .read(move |conn| read::waiting_by_priority(conn, &kinds))
            .await
    }

    async fn list_counts(&self, filter: &ListFilter) -> Result<ListCounts, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| counts::for_listing(conn, &filter))
            .await
    }

    async fn scan_floor(&self, filter: &ListFilter) -> Result<Option<JobId>, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| read::scan_floor(conn, &filter))
            .await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Claimed, StoreError> {
        let req = req.clone();
        let clock = self.clock();
        self.inner
            .writer
            .submit_repeatable(move |conn, events| {
                let now = clock.now();
                let claimed = ops::claim(conn, events, &req, now)?;
                events.history.claimed(now, &claimed.jobs);
                Ok(claimed)
            })
            .await
    }

    async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<Vec<Lease>, StoreError> {
        let leases = leases.to_vec();
        let clock = self.clock();
        self.inner
            .writer
            .submit_repeatable(move |conn, _| ops::heartbeat(conn, &leases, lease, clock.now()))
            .await
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit_repeatable(move |conn, events| {
                ops::finish(conn, events, &finishes, clock.now())
            })
            .await
    }

    async fn record_progress(&self, updates: Vec<ProgressUpdate>) -> Result<Vec<bool>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .writer
            .submit_repeatable(move |conn, _| ops::record_progress(conn, &updates))
            .await
    }

    async fn cancel(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let actor = actor.clone();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| ops::cancel(conn, events, id, &actor, clock.now()))
            .await
    }

    async fn retry(&self, id: JobId, actor: &AuditActor) -> Result<Job, StoreError> {
        let actor = actor.clone();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| ops::retry(conn, events, id, &actor, clock.now()))
            .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.inner.readers.read(counts::read).await
    }

    async fn throughput(
        &self,
        query: &ThroughputQuery,
    ) -> Result<Vec<ThroughputBucket>, StoreError> {
        let query = query.clone();
        self.inner
            .readers
            .read(move |conn| history::throughput(conn, &query))
            .await
    }

    async fn totals(&self) -> Result<Vec<Total>, StoreError> {
        self.inner.readers.read(history::totals).await
    }

    async fn oldest_due(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError> {
        let now = self.clock().now();
        self.inner
            .readers
            .read(move |conn| history::oldest_due(conn, now))
            .await
    }

    async fn flush_history(&self) -> Result<(), StoreError> {
        self.inner
            .writer
            .submit(|_, events| {
                events.flush_history = true;
                Ok(())
            })
            .await
    }

    fn load(&self) -> StoreLoad {
        self.inner.writer.load()
    }

    async fn rescue_expired(&self) -> Result<Vec<JobId>, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit_repeatable(move |conn, events| ops::rescue_expired(conn, events, clock.now()))
            .await
    }

    async fn promote_due(&self) -> Result<u64, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit_repeatable(move |conn, events| ops::promote_due(conn, events, clock.now()))
            .await
    }

    async fn prune(&self, retention: &Retention) -> Result<u64, StoreError> {
        let retention = *retention;
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| ops::prune(conn, events, &retention, clock.now()))
            .await
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    async fn register_node(&self, node: &NodeInfo) -> Result<(), StoreError> {
        let node = node.clone();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| nodes::register(conn, &node, clock.now()))
            .await
    }

    async fn drain_node(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.inner
            .writer
            .submit(move |conn, _| nodes::drain(conn, &name))
            .await
    }

    async fn remove_node(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        self.inner
            .writer
            .submit(move |conn, _| nodes::remove(conn, &name))
            .await
    }

    async fn nodes(&self, alive_within: Duration) -> Result<Vec<NodeInfo>, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| nodes::list(conn, alive_within, clock.now()))
            .await
    }

    async fn try_lead(&self, role: &str, node: &str, ttl: Duration) -> Result<bool, StoreError> {
        let (role, node) = (role.to_string(), node.to_string());
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| nodes::try_lead(conn, &role, &node, ttl, clock.now()))
            .await
    }

    async fn resign(&self, role: &str, node: &str) -> Result<(), StoreError> {
        let (role, node) = (role.to_string(), node.to_string());
        self.inner
            .writer
            .submit(move |conn, _| nodes::resign(conn, &role, &node))
            .await
    }

    async fn set_queue_paused(
        &self,
        queue: &str,
        paused: bool,
        actor: &AuditActor,
    ) -> Result<(), StoreError> {
        let (queue, actor) = (queue.to_string(), actor.clone());
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| {
                queues::set_paused(conn, events, &queue, paused, &actor, clock.now())
            })
            .await
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError> {
        self.inner.readers.read(queues::list).await
    }

    async fn oldest_available(&self, queue: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        let queue = queue.to_string();
        self.inner
            .readers
            .read(move |conn| queues::oldest_available(conn, &queue))
            .await
    }

    async fn publish(
        &self,
        event: NewEvent,
        listeners: Vec<NewJob>,
    ) -> Result<Published, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| {
                events::publish(conn, events, event, listeners, clock.now())
            })
            .await
    }

    async fn event(&self, id: EventId) -> Result<Option<Event>, StoreError> {
        self.inner
            .readers
            .read(move |conn| events::get(conn, id))
            .await
    }

    async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| events::list(conn, &filter))
            .await
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<Batch, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| batches::create(conn, events, batch, clock.now()))
            .await
    }

    async fn batch(&self, id: BatchId) -> Result<Option<Batch>, StoreError> {
        self.inner
            .readers
            .read(move |conn| batches::get(conn, id))
            .await
    }

    async fn batch_jobs(&self, id: BatchId) -> Result<Vec<Job>, StoreError> {
        self.inner
            .readers
            .read(move |conn| batches::jobs(conn, id))
            .await
    }

    async fn record_tick(
        &self,
        name: &str,
        tick: jiff::Timestamp,
        job: Option<NewJob>,
    ) -> Result<Option<Enqueued>, StoreError> {
        let name = name.to_string();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| {
                schedules::record(conn, events, &name, tick, job, clock.now())
            })
            .await
    }

    async fn ticks(&self) -> Result<BTreeMap<String, jiff::Timestamp>, StoreError> {
        self.inner.readers.read(schedules::ticks).await
    }

    async fn create_token(&self, token: NewToken, actor: &AuditActor) -> Result<Token, StoreError> {
        let actor = actor.clone();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| tokens::create(conn, token, &actor, clock.now()))
            .await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<Token>, StoreError> {
        let hash = *hash;
        self.inner
            .readers
            .read(move |conn| tokens::by_hash(conn, &hash))
            .await
    }

    async fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.inner.readers.read(tokens::list).await
    }

    async fn revoke_token(&self, name: &str, actor: &AuditActor) -> Result<bool, StoreError> {
        let (name, actor) = (name.to_string(), actor.clone());
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| tokens::revoke(conn, &name, &actor, clock.now()))
            .await
    }

    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let filter = filter.clone();
        self.inner
            .readers
            .read(move |conn| audit::list(conn, &filter))
            .await
    }

    async fn record_token_use(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| tokens::record_use(conn, &name, clock.now()))
            .await
    }

    async fn create_session(&self, session: NewSession) -> Result<Option<Session>, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| sessions::create(conn, session, clock.now()))
            .await
    }

    async fn session_by_hash(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        let hash = *hash;
        let now = self.clock().now();
        self.inner
            .readers
            .read(move |conn| sessions::by_hash(conn, &hash, now))
            .await
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let hash = *hash;
        self.inner
            .writer
            .submit(move |conn, _| sessions::delete(conn, &hash))
            .await
    }

    async fn create_bulk(&self, bulk: NewBulk) -> Result<BulkOperation, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| bulk::create(conn, bulk, clock.now()))
            .await
    }

    async fn step_bulk(&self, id: BulkId, chunk: u32) -> Result<BulkOperation, StoreError> {
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, events| bulk::step(conn, events, id, chunk, clock.now()))
            .await
    }

    async fn fail_bulk(&self, id: BulkId, error: &str) -> Result<(), StoreError> {
        let error = error.to_string();
        let clock = self.clock();
        self.inner
            .writer
            .submit(move |conn, _| bulk::fail(conn, id, &error, clock.now()))
            .await
    }

    async fn bulk(&self, id: BulkId) -> Result<Option<BulkOperation>, StoreError> {
        self.inner
            .readers
            .read(move |conn| bulk::get(conn, id))
            .await
    }

    async fn bulks(
        &self,
        state: Option<BulkState>,
        limit: u32,
    ) -> Result<Vec<BulkOperation>, StoreError> {
        self.inner
            .readers
            .read(move |conn| bulk::list(conn, state, limit))
            .await
    }
}
