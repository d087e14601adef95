//! The node's side of remote workers (docs/worker-protocol.md): claims with
//! a long poll woken by the store's events, heartbeats, fenced finishes, a
//! breaker per remote kind fed by the workers' deadly outcomes, and the
//! workers' entries in the node registry. It calls the same store
//! operations as the local worker, so pauses, kind limits, rates, order,
//! batches and events hold alike; the HTTP edge is errand-server's.

use crate::BreakerConfig;
use crate::breaker::Breakers;
use errand_core::remote::{
    ClaimedJob, FinishResult, HeartbeatAnswer, LostJob, RemoteWorker, WorkClaim, WorkClaimed,
    WorkFinish, WorkHeartbeat, WorkerIdentity, millis,
};
use errand_core::store::{ClaimRequest, Finish, Held, NODE_ALIVE_WINDOW};
use errand_core::{
    Catalog, Job, KindLimit, Lease, NodeInfo, ProgressUpdate, Store, StoreError, StoreEvent,
    ValidationError,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How a node serves remote workers (from `[worker]`: the same lease,
/// heartbeat and breaker settings as its own worker).
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// This node's name, shown as the `via` of the workers it serves.
    pub node: String,
    /// Lease of a claimed job, renewed by each heartbeat.
    pub lease: Duration,
    /// How often workers are told to heartbeat.
    pub heartbeat: Duration,
    /// A held claim claims again at least this often (a scheduled job
    /// coming due sends no event).
    pub poll_interval: Duration,
    /// When deadly outcomes stop a remote kind from being handed out.
    pub breaker: BreakerConfig,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        let w = crate::WorkerConfig::default();
        RemoteSettings {
            node: w.name,
            lease: w.lease,
            heartbeat: w.heartbeat,
            poll_interval: w.poll_interval,
            breaker: w.breaker,
        }
    }
}

/// Why a remote worker's request was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A field is wrong.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// A kind that remote workers do not run (unknown, or not `remote = true`).
    #[error("{field}: {message}")]
    NotRemote {
        /// Where in the request (`kinds[1]`).
        field: String,
        /// What is wrong.
        message: String,
        /// The kinds remote workers may claim, sorted.
        remote_kinds: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often a worker's registry entry is rewritten by its claims (its
/// heartbeats always rewrite it).
const REGISTER_EVERY: Duration = Duration::from_secs(5);

/// How often the drain requests are read from the registry.
const DRAINS_EVERY: Duration = Duration::from_secs(1);

/// Most leases remembered with their kind before old ones are forgotten.
const MAX_REMEMBERED: usize = 100_000;

/// A worker this node has heard from.
struct Seen {
    started_at: jiff::Timestamp,
    running: u32,
    queues: BTreeMap<String, usize>,
    kinds: Vec<String>,
    registered: Option<Instant>,
    last: Instant,
}

/// The names in the node registry that matter to remote workers.
#[derive(Default)]
struct Registry {
    /// When they were read.
    read_at: Option<Instant>,
    /// Nodes an operator asked to drain.
    draining: Vec<String>,
    /// errand's own nodes: no remote worker may take their names.
    errand_nodes: Vec<String>,
}

/// What a request tells of its worker.
enum Seeing<'a> {
    /// A claim of these kinds over these queues took `claimed` jobs.
    Claim {
        kinds: &'a [String],
        queues: &'a [String],
        max_jobs: u32,
        claimed: u32,
    },
    /// A heartbeat: it holds `running` jobs.
    Heartbeat { running: u32 },
    /// This many of its jobs ended.
    Finished(u32),
}

/// Serves remote workers on one node.
pub struct RemoteWorkers {
    store: Arc<dyn Store>,
    catalog: Arc<Catalog>,
    settings: RemoteSettings,
    breakers: Breakers,
    workers: Mutex<HashMap<String, Seen>>,
    /// The kind of each lease handed out here, so a finish needs no read
    /// for its backoff (one from another node falls back to a read).
    leases: Mutex<HashMap<Lease, (String, Instant)>>,
    /// What the registry said, and when it was read.
    registry: tokio::sync::Mutex<Registry>,
    shutdown: CancellationToken,
}

impl RemoteWorkers {
    /// Remote workers of `catalog`'s remote kinds on `store`; held claims
    /// answer at once when `shutdown` fires.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        settings: RemoteSettings,
        shutdown: CancellationToken,
    ) -> RemoteWorkers {
        let breakers = Breakers::new(settings.breaker.clone(), store.clock());
        RemoteWorkers {
            store,
            catalog,
            settings,
            breakers,
            workers: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            registry: tokio::sync::Mutex::new(Registry::default()),
            shutdown,
        }
    }

    /// The kinds remote workers may claim, sorted.
    pub fn remote_kinds(&self) -> Vec<String> {
        self.catalog.remote_kinds().map(String::from).collect()
    }

    /// Takes up to `max_jobs` jobs, holding the request up to `wait` for one.
    pub async fn claim(&self, req: WorkClaim) -> Result<WorkClaimed, RemoteError> {
        req.validate()?;
        let mut limits = BTreeMap::new();
        let mut default_queues = Vec::new();
        for (i, kind) in req.kinds.iter().enumerate() {
            let policy = self
                .catalog
                .policy(kind)
                .filter(|p| p.remote)
                .ok_or_else(|| self.not_remote(i, kind))?;
            if !policy.limit.is_unlimited() {
                limits.insert(kind.clone(), policy.limit);
            }
            if !default_queues.contains(&policy.queue) {
                default_queues.push(policy.queue.clone());
            }
        }
        default_queues.sort();
        let queues = if req.queues.is_empty() {
            default_queues
        } else {
            req.queues.clone()
        };
        let stop = self.draining(&req.worker.id).await?;
        let jobs = if stop {
            Vec::new()
        } else {
            self.claim_waiting(&req, &queues, &limits).await?
        };
        let claimed = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
        let seeing = Seeing::Claim {
            kinds: &req.kinds,
            queues: &queues,
            max_jobs: req.max_jobs,
            claimed,
        };
        self.seen(&req.worker, seeing).await;
        let now = self.store.clock().now();
        let expires = errand_core::duration::after(now, self.settings.lease).unwrap_or(now);
        let jobs = jobs
            .into_iter()
            .map(|job| {
                let timeout = job
                    .timeout
                    .or_else(|| self.catalog.policy(&job.kind).and_then(|p| p.timeout));
                ClaimedJob::new(job, timeout, expires)
            })
            .collect();
        Ok(WorkClaimed {
            jobs,
            lease_ms: millis(self.settings.lease),
            heartbeat_ms: millis(self.settings.heartbeat),
            stop,
        })
    }

    fn not_remote(&self, i: usize, kind: &str) -> RemoteError {
        let remote_kinds = self.remote_kinds();
        let message = match self.catalog.policy(kind) {
            Some(_) => format!(
                "kind {kind:?} is run by errand's own workers, not remote ones (configure it with remote = true)"
            ),
            None => format!("unknown kind {kind:?}"),
        };
        RemoteError::NotRemote {
            field: format!("kinds[{i}]"),
            message: format!("{message}; remote kinds: {}", list(&remote_kinds)),
            remote_kinds,
        }
    }

    /// Claims until a job comes, the wait runs out or the node stops.
    async fn claim_waiting(
        &self,
        req: &WorkClaim,
        queues: &[String],
        limits: &BTreeMap<String, KindLimit>,
    ) -> Result<Vec<Job>, RemoteError> {
        // Subscribed before the first claim, so an enqueue between an empty
        // claim and the wait still wakes it.
        let mut events = self.store.subscribe();
        let deadline = Instant::now() + req.wait.unwrap_or_default();
        loop {
            let (jobs, held, wake_at) = self.claim_once(req, queues, limits).await?;
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline || self.shutdown.is_cancelled() {
                return Ok(jobs);
            }
            let mut until = deadline.min(now + self.settings.poll_interval);
            if let Some(at) = wake_at {
                until = until.min(at);
            }
            let clock = self.store.clock();
            let reopens = async {
                match held.and_then(|h| h.retry_at) {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = self.shutdown.cancelled() => {}
                _ = reopens => {}
                _ = work_event(&mut events, queues, held.is_some()) => {}
            }
        }
    }

    /// One pass over the queues: the jobs taken, whether a kind limit held
    /// jobs back, and when an open breaker's probe becomes due.
    async fn claim_once(
        &self,
        req: &WorkClaim,
        queues: &[String],
        limits: &BTreeMap<String, KindLimit>,
    ) -> Result<(Vec<Job>, Option<Held>, Option<Instant>), RemoteError> {
        let plan = self.breakers.plan(&req.kinds, Instant::now());
        let mut jobs = Vec::new();
        let mut held = None;
        if let Some(kind) = plan.probe
            && self.breakers.take_probe(&kind, Instant::now())
        {
            let (probe, _) = self
                .claim_queues(req, queues, std::slice::from_ref(&kind), 1, limits)
                .await;
            let probe = match probe {
                Ok(probe) => probe,
                Err(e) => {
                    self.breakers.probe_unused(&kind, Instant::now());
                    return Err(e.into());
                }
            };
            if probe.is_empty() {
                self.breakers
                    .probe_unused(&kind, Instant::now() + self.settings.poll_interval);
            }
            jobs.extend(probe);
        }
        let room = req.max_jobs - u32::try_from(jobs.len()).unwrap_or(0);
        if !plan.closed.is_empty() && room > 0 {
            let (more, h) = self
                .claim_queues(req, queues, &plan.closed, room, limits)
                .await;
            jobs.extend(more?);
            held = h;
        }
        self.remember(&jobs);
        Ok((jobs, held, plan.wake_at))
    }

    /// Claims up to `limit` jobs of `kinds`, queue by queue in order.
    async fn claim_queues(
        &self,
        req: &WorkClaim,
        queues: &[String],
        kinds: &[String],
        limit: u32,
        limits: &BTreeMap<String, KindLimit>,
    ) -> (Result<Vec<Job>, StoreError>, Option<Held>) {
        let mut jobs = Vec::new();
        let mut held = None;
        for queue in queues {
            let room = limit - u32::try_from(jobs.len()).unwrap_or(0);
            if room == 0 {
                break;
            }
            let request = ClaimRequest {
                queue: queue.clone(),
                kinds: kinds.to_vec(),
                limit: room,
                worker: req.worker.id.clone(),
                lease: self.settings.lease,
                limits: limits.clone(),
            };
            match self.store.claim(&request).await {
                Ok(claimed) => {
                    jobs.extend(claimed.jobs);
                    held = held.or(claimed.held);
                }
                // Jobs already claimed stay claimed: hand them out rather
                // than let their leases run out unseen.
                Err(e) if jobs.is_empty() => return (Err(e), held),
                Err(e) => {
                    tracing::warn!(error = %e, queue, "remote claim failed on a later queue");
                    break;
                }
            }
        }
        (Ok(jobs), held)
    }

    fn remember(&self, jobs: &[Job]) {
        if jobs.is_empty() {
            return;
        }
        let mut leases = lock(&self.leases);
        if leases.len() + jobs.len() > MAX_REMEMBERED {
            // Leases of workers that died unseen: forget the oldest half.
            let mut ages: Vec<Instant> = leases.values().map(|(_, at)| *at).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            leases.retain(|_, (_, at)| *at > cut);
        }
        let now = Instant::now();
        for job in jobs {
            leases.insert(job.lease(), (job.kind.clone(), now));
        }
    }

    /// Extends the leases still held, stores their progress, and says which
    /// are lost and whether the worker should stop.
    pub async fn heartbeat(&self, req: WorkHeartbeat) -> Result<HeartbeatAnswer, RemoteError> {
        let held = req.validate()?;
        let stop = self.draining(&req.worker.id).await?;
        let leases: Vec<Lease> = held.iter().map(|(lease, _)| *lease).collect();
        let lost = if leases.is_empty() {
            Vec::new()
        } else {
            self.store.heartbeat(&leases, self.settings.lease).await?
        };
        let now = self.store.clock().now();
        let updates: Vec<ProgressUpdate> = held
            .into_iter()
            .filter(|(lease, _)| !lost.contains(lease))
            .filter_map(|(lease, progress)| {
                Some(ProgressUpdate {
                    lease,
                    progress: progress?,
                    at: now,
                })
            })
            .collect();
        if !updates.is_empty()
            && let Err(e) = self.store.record_progress(updates).await
        {
            // Progress is informational: the leases were extended.
            tracing::warn!(error = %e, worker = req.worker.id, "remote progress not recorded");
        }
        let running = u32::try_from(leases.len() - lost.len()).unwrap_or(u32::MAX);
        self.seen(&req.worker, Seeing::Heartbeat { running }).await;
        let mut lost_jobs = Vec::with_capacity(lost.len());
        for lease in lost {
            lock(&self.leases).remove(&lease);
            let job = self.store.get(lease.id).await?;
            lost_jobs.push(LostJob::new(lease, job.as_ref()));
        }
        Ok(HeartbeatAnswer {
            lost: lost_jobs,
            lease_expires_at: errand_core::duration::after(now, self.settings.lease).unwrap_or(now),
            lease_ms: millis(self.settings.lease),
            heartbeat_ms: millis(self.settings.heartbeat),
            stop,
        })
    }

    /// Ends attempts, each only while its lease is current; a deadly
    /// outcome counts towards its kind's breaker on this node.
    pub async fn finish(&self, req: WorkFinish) -> Result<Vec<FinishResult>, RemoteError> {
        let ends = req.validate()?;
        let mut finishes = Vec::with_capacity(ends.len());
        // Leases whose job has no kind known here and does not exist.
        let mut missing = Vec::new();
        for (lease, outcome) in ends {
            let kind = lock(&self.leases).get(&lease).map(|(kind, _)| kind.clone());
            let kind = match kind {
                Some(kind) => Some(kind),
                None => self.store.get(lease.id).await?.map(|job| job.kind),
            };
            let Some(kind) = kind else {
                missing.push(lease);
                continue;
            };
            let backoff = self
                .catalog
                .policy(&kind)
                .map(|p| p.backoff)
                .unwrap_or_default();
            self.breakers.record(&kind, &outcome, Instant::now());
            finishes.push(Finish {
                lease,
                outcome,
                backoff,
            });
        }
        let sent: Vec<Lease> = finishes.iter().map(|f| f.lease).collect();
        let applied = if finishes.is_empty() {
            Vec::new()
        } else {
            self.store.finish(finishes).await?
        };
        let mut done = HashMap::new();
        for (lease, ok) in sent.into_iter().zip(applied) {
            done.insert(lease, ok);
        }
        let mut results = Vec::with_capacity(req.jobs.len());
        let mut ended = 0u32;
        for job in &req.jobs {
            let lease = Lease {
                id: job.id,
                fence: job.fence,
            };
            if done.get(&lease) == Some(&true) {
                lock(&self.leases).remove(&lease);
                ended += 1;
                results.push(FinishResult::applied(lease));
            } else {
                let now = if missing.contains(&lease) {
                    None
                } else {
                    self.store.get(lease.id).await?
                };
                results.push(FinishResult::refused(lease, now.as_ref()));
            }
        }
        if ended > 0 {
            self.seen(&req.worker, Seeing::Finished(ended)).await;
        }
        Ok(results)
    }

    /// Whether the registry marks worker `id` draining (read at most every
    /// [`DRAINS_EVERY`] for all workers at once); refuses an id that is the
    /// name of one of errand's own live nodes, whose registry entry the
    /// worker's would overwrite.
    async fn draining(&self, id: &str) -> Result<bool, RemoteError> {
        let mut registry = self.registry.lock().await;
        if registry
            .read_at
            .is_none_or(|at| at.elapsed() >= DRAINS_EVERY)
        {
            let nodes = self.store.nodes(NODE_ALIVE_WINDOW).await?;
            registry.draining = nodes
                .iter()
                .filter(|n| n.draining)
                .map(|n| n.name.clone())
                .collect();
            registry.errand_nodes = nodes
                .into_iter()
                .filter(|n| n.remote.is_none())
                .map(|n| n.name)
                .collect();
            registry.read_at = Some(Instant::now());
        }
        if registry.errand_nodes.iter().any(|name| name == id) {
            return Err(ValidationError::new(
                "worker.id",
                format!("{id:?} is the name of a live errand node; give the worker its own id (e.g. <host>-<pid>)"),
            )
            .into());
        }
        Ok(registry.draining.iter().any(|name| name == id))
    }

    /// Records what a worker's request says of it, and rewrites its
    /// registry entry when due (every heartbeat, else every
    /// [`REGISTER_EVERY`]).
    async fn seen(&self, worker: &WorkerIdentity, what: Seeing<'_>) {
        let node = {
            let mut workers = lock(&self.workers);
            let now = Instant::now();
            workers.retain(|_, s| now.duration_since(s.last) < NODE_ALIVE_WINDOW);
            let seen = workers.entry(worker.id.clone()).or_insert_with(|| Seen {
                started_at: self.store.clock().now(),
                running: 0,
                queues: BTreeMap::new(),
                kinds: Vec::new(),
                registered: None,
                last: now,
            });
            seen.last = now;
            let force = match what {
                Seeing::Claim {
                    kinds,
                    queues,
                    max_jobs,
                    claimed,
                } => {
                    let queues: BTreeMap<String, usize> = queues
                        .iter()
                        .map(|q| (q.clone(), max_jobs as usize))
                        .collect();
                    // A worker first seen by a heartbeat (before its first
                    // claim answered) is registered without kinds: what it
                    // serves is news worth writing at once.
                    let changed = seen.kinds != kinds || seen.queues != queues;
                    seen.kinds = kinds.to_vec();
                    seen.queues = queues;
                    seen.running = seen.running.saturating_add(claimed);
                    changed
                }
                Seeing::Heartbeat { running } => {
                    seen.running = running;
                    true
                }
                Seeing::Finished(n) => {
                    seen.running = seen.running.saturating_sub(n);
                    false
                }
            };
            let due = force
                || seen
                    .registered
                    .is_none_or(|at| now.duration_since(at) >= REGISTER_EVERY);
            if !due {
                return;
            }
            seen.registered = Some(now);
            self.node_info(worker, seen)
        };
        if let Err(e) = self.store.register_node(&node).await {
            tracing::warn!(error = %e, worker = worker.id, "remote worker not registered");
        }
    }

    fn node_info(&self, worker: &WorkerIdentity, seen: &Seen) -> NodeInfo {
        let now = self.store.clock().now();
        let breakers = self
            .breakers
            .snapshot(Instant::now())
            .into_iter()
            .filter(|(kind, _)| seen.kinds.contains(kind))
            .collect();
        NodeInfo {
            name: worker.id.clone(),
            started_at: seen.started_at,
            last_seen: now,
            queues: seen.queues.clone(),
            running: seen.running,
            http: None,
            breakers,
            remote: Some(RemoteWorker {
                host: worker.host.clone(),
                pid: worker.pid,
                library: worker.library.clone(),
                version: worker.version.clone(),
                kinds: seen.kinds.clone(),
                via: Some(self.settings.node.clone()),
            }),
            draining: false,
        }
    }
}

/// Resolves when jobs became available in one of `queues`, or (with
/// `on_finish`) some job ended, or events were missed.
async fn work_event(
    events: &mut broadcast::Receiver<StoreEvent>,
    queues: &[String],
    on_finish: bool,
) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::Enqueued(names)) if names.iter().any(|q| queues.contains(q)) => return,
            Ok(StoreEvent::Finished(_)) if on_finish => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A poisoned lock only means a panic while holding it: the maps stay valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
