//! The [`Worker`]: registration of kinds, then the run loop that starts one
//! fetch loop per queue, the heartbeat, the progress writer and the
//! completer, and shuts them down gracefully.

use crate::breaker::Breakers;
use crate::capacity::KindCapacity;
use crate::execution::{Attempts, Registration};
use crate::fetch::QueueLoop;
use crate::handler::{HandlerExecutor, HandlerResult, JobContext};
use crate::running::Running;
use crate::{Executor, WorkerConfig, WorkerError, completer, heartbeat, progress};
use errand_core::job::check_name;
use errand_core::{KindLimit, KindPolicy, Store};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Claims jobs of the registered kinds from the configured queues and runs them.
pub struct Worker {
    store: Arc<dyn Store>,
    config: WorkerConfig,
    registrations: HashMap<String, Arc<Registration>>,
    /// Kinds registered more than once, reported by [`Worker::run`].
    duplicates: Vec<String>,
    /// The attempts running (made here so [`Worker::running_jobs`] can
    /// be handed out before the worker runs).
    running: Arc<Running>,
}

impl Worker {
    /// A worker on `store` with no kinds registered yet.
    pub fn new(store: Arc<dyn Store>, config: WorkerConfig) -> Worker {
        Worker {
            store,
            config,
            registrations: HashMap::new(),
            duplicates: Vec::new(),
            running: Arc::default(),
        }
    }

    /// A live count of the jobs this worker runs, for metrics.
    pub fn running_jobs(&self) -> crate::running::RunningJobs {
        crate::running::RunningJobs(self.running.clone())
    }

    /// Runs jobs of `kind` with `executor`; `policy` gives backoff and the default timeout.
    pub fn register(
        &mut self,
        kind: &str,
        policy: KindPolicy,
        executor: Arc<dyn Executor>,
    ) -> &mut Self {
        let capacity = executor
            .capacity()
            .map(|limit| Arc::new(KindCapacity::new(limit)));
        let reg = Arc::new(Registration {
            policy,
            executor,
            capacity,
        });
        if self.registrations.insert(kind.to_string(), reg).is_some() {
            self.duplicates.push(kind.to_string());
        }
        self
    }

    /// A typed in-process handler: the payload is deserialized into P (a
    /// mismatch is a permanent failure naming the serde error).
    pub fn handler<P, F, Fut>(&mut self, kind: &str, policy: KindPolicy, f: F) -> &mut Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.register(kind, policy, Arc::new(HandlerExecutor::new(f)))
    }

    /// Runs until `shutdown` is cancelled, then shuts down gracefully: stops
    /// claiming, lets running jobs finish within `shutdown_timeout`, hands
    /// the rest back, and writes every completion. Returns when every job is
    /// finished or handed back.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        self.validate()?;
        let Worker {
            store,
            config,
            registrations,
            running,
            ..
        } = self;
        // Limits travel with each claim: the store enforces them for every node.
        let limits: BTreeMap<String, KindLimit> = registrations
            .iter()
            .filter(|(_, reg)| !reg.policy.limit.is_unlimited())
            .map(|(kind, reg)| (kind.clone(), reg.policy.limit))
            .collect();
        let registrations = Arc::new(registrations);
        let (completions, completer) = completer::start(store.clone());
        let clock = store.clock();
        let breakers = Arc::new(Breakers::new(config.breaker.clone(), clock.clone()));
        let board = progress::Board::new(store.clone());
        let stop_progress = CancellationToken::new();
        let progress_writer = tokio::spawn(progress::run(board.clone(), stop_progress.clone()));
        let attempts = Arc::new(Attempts {
            running: running.clone(),
            completions,
            abort: CancellationToken::new(),
            breakers: breakers.clone(),
            progress: board,
        });
        let tracker = TaskTracker::new();
        let room_freed = Arc::new(Notify::new());
        let stop_watching = CancellationToken::new();
        watch_capacities(&registrations, &room_freed, &stop_watching);
        let stop_heartbeat = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat::run(
            store.clone(),
            running,
            heartbeat::Beat {
                node: config.node_info(clock.now()),
                every: config.heartbeat,
                lease: config.lease,
                breakers: breakers.clone(),
            },
            stop_heartbeat.clone(),
        ));
        let loops: Vec<_> = config
            .queues
            .iter()
            .map(|(queue, &concurrency)| {
                tokio::spawn(
                    QueueLoop {
                        store: store.clone(),
                        queue: queue.clone(),
                        concurrency,
                        worker: config.name.clone(),
                        lease: config.lease,
                        poll_interval: config.poll_interval,
                        limits: limits.clone(),
                        registrations: registrations.clone(),
                        breakers: breakers.clone(),
                        room_freed: room_freed.clone(),
                        attempts: attempts.clone(),
                        ahead: Default::default(),
                        tracker: tracker.clone(),
                        shutdown: shutdown.clone(),
                    }
                    .run(),
                )
            })
            .collect();
        tracing::info!(worker = config.name, queues = ?config.queues, "worker started");

        shutdown.cancelled().await;
        for fetch in loops {
            if let Err(e) = fetch.await {
                tracing::error!(error = %e, "a fetch loop ended abnormally");
            }
        }
        tracker.close();
        tracing::info!(
            running = tracker.len(),
            grace = ?config.shutdown_timeout,
            "shutting down: claiming stopped, letting running jobs finish"
        );
        if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = tracker.len(),
                "shutdown grace period over; cancelling and handing back the remaining jobs"
            );
            attempts.abort.cancel();
            tracker.wait().await;
        }
        // Every attempt has ended: executors may now stop what they keep
        // running between jobs (e.g. a pool's processes).
        for registration in registrations.values() {
            registration.executor.shutdown().await;
        }
        stop_watching.cancel();
        // Each ended attempt wrote its own last progress.
        stop_progress.cancel();
        let _ = progress_writer.await;
        stop_heartbeat.cancel();
        let _ = heartbeat.await;
        // The last sender goes with `attempts`; the completer then flushes and ends.
        drop(attempts);
        let _ = completer.await;
        tracing::info!(worker = config.name, "worker stopped");
        Ok(())
    }

    fn validate(&self) -> Result<(), WorkerError> {
        self.config.validate()?;
        if self.registrations.is_empty() {
            return Err(WorkerError::Config(
                "no kinds registered: call register or handler before run".into(),
            ));
        }
        if let Some(kind) = self.duplicates.first() {
            return Err(WorkerError::Config(format!(
                "kind {kind:?} is registered more than once"
            )));
        }
        for kind in self.registrations.keys() {
            check_name("kind", kind).map_err(|e| WorkerError::Config(format!("{e} ({kind:?})")))?;
        }
        Ok(())
    }
}

/// Wakes the fetch loops whenever a limited executor's capacity changes (a
/// pool process became ready), until `stop`.
fn watch_capacities(
    registrations: &HashMap<String, Arc<Registration>>,
    room_freed: &Arc<Notify>,
    stop: &CancellationToken,
) {
    for capacity in registrations.values().filter_map(|r| r.capacity.as_ref()) {
        let (mut limit, room_freed, stop) = (capacity.watch(), room_freed.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = limit.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        room_freed.notify_waiters();
                    }
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
}
