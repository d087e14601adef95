//! Keeping a pool at strength: idle processes wait in a channel; a process
//! that crashed, hung or reported its infrastructure down is replaced after
//! an exponential (capped) backoff that resets once processes stay healthy;
//! a process that reached its job or memory limit is retired gracefully and
//! replaced at once; a process nearing `max_jobs` gets its replacement
//! started early, so its place stays filled while the replacement boots
//! (stopped again if the process goes idle short of its limit).
//! Every stop and start is a tracked task so shutdown can
//! wait for all of them. While processes cannot start for lack of a
//! resource (file descriptors, processes, memory), jobs that find no idle
//! process are handed back rather than left to time out.

use super::PoolConfig;
use super::process::{Fault, WorkerProcess};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// First restart delay after a process failed.
const RESTART_BASE: Duration = Duration::from_millis(200);
/// Longest restart delay.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A process that ran this long before failing is not part of a crash
/// loop: its place starts the backoff over.
const HEALTHY: Duration = Duration::from_secs(60);

/// Longest an early replacement waits for the process it replaces to
/// leave: longer means that process went idle short of `max_jobs`, and the
/// replacement is stopped rather than kept as an extra process.
const SPARE_WAIT: Duration = Duration::from_secs(1);

/// One of the pool's places and how often its processes failed in a row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    index: usize,
    failures: u32,
}

impl Slot {
    /// Delay before the next start after a failure, counting that failure.
    fn after_failure(&mut self, age: Duration) -> Duration {
        if age >= HEALTHY {
            self.failures = 0;
        }
        let delay = RESTART_BASE.saturating_mul(1 << self.failures.min(16));
        self.failures += 1;
        delay.min(RESTART_MAX)
    }
}

/// What the executor and its background tasks share.
pub(super) struct Supervisor {
    pool: Arc<str>,
    config: PoolConfig,
    /// Idle processes, boxed so that handing one to a job and back moves a
    /// pointer, not the process's state (twice per job).
    idle_tx: mpsc::UnboundedSender<Box<WorkerProcess>>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<Box<WorkerProcess>>>,
    /// Processes that have sent their handshake and not been stopped: the
    /// jobs the pool can run at once now.
    ready: watch::Sender<usize>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Why the last start failed, while that was the machine's fault (a
    /// resource limit). This overlaps capacity gating (docs/decisions/0010)
    /// without duplicating it: the worker claims a job only while a process
    /// is ready, so with no process starting nothing more is claimed; but a
    /// job claimed just before its process died (crashed, recycled) waits
    /// here for the replacement, and if that cannot start it would wait
    /// with its lease held until its timeout. `start_blocked` hands such a
    /// job back as deadly (no attempt used; the kind's breaker hears of
    /// it) instead. Neither can go: gating stops the claims, this frees
    /// the few jobs caught between a claim and a failed restart.
    start_blocked: std::sync::Mutex<Option<String>>,
    /// Woken when a start fails for a resource limit.
    start_failed: Notify,
    /// The live processes by slot, for [`Supervisor::processes`].
    live: std::sync::Mutex<std::collections::BTreeMap<usize, Live>>,
    /// Replacements started early for processes nearing `max_jobs`, by slot.
    spares: std::sync::Mutex<std::collections::HashMap<usize, Spare>>,
}

/// A replacement started before the process it replaces left.
enum Spare {
    /// Booting; `wanted` once the process it replaces has left.
    Starting { wanted: bool },
    /// Greeted, waiting for the process it replaces to leave.
    Ready(Box<WorkerProcess>),
}

/// A live process as [`Supervisor::processes`] reports it.
#[derive(Debug, Clone, Copy)]
struct Live {
    pid: u32,
    started: std::time::Instant,
    jobs: u64,
}

/// What a job waiting for a process gets.
pub(super) enum Checkout {
    /// An idle process, now the job's (boxed: it is large and moves often).
    Process(Box<WorkerProcess>),
    /// The job was cancelled or the pool stopped first.
    Cancelled,
    /// No process is idle and none can start: why.
    CannotStart(String),
}

impl Supervisor {
    /// A supervisor for `config`, starting its processes in the background.
    pub(super) fn start(pool: &str, config: PoolConfig) -> Arc<Supervisor> {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let supervisor = Arc::new(Supervisor {
            pool: pool.into(),
            config,
            idle_tx,
            idle_rx: Mutex::new(idle_rx),
            ready: watch::Sender::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            start_blocked: std::sync::Mutex::new(None),
            start_failed: Notify::new(),
            live: Default::default(),
            spares: Default::default(),
        });
        for index in 0..supervisor.config.processes {
            supervisor.spawn_process(Slot { index, failures: 0 }, Duration::ZERO);
        }
        supervisor
    }

    /// The token that stops the pool.
    pub(super) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The pool's name (its kind), for logs.
    pub(super) fn name(&self) -> &str {
        &self.pool
    }

    /// The pool's configuration.
    pub(super) fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// How many processes are ready, kept current.
    pub(super) fn ready(&self) -> watch::Receiver<usize> {
        self.ready.subscribe()
    }

    /// Counts a process out of the ready ones (it is being stopped).
    fn leaving(&self, slot: Slot) {
        self.ready.send_modify(|n| *n = n.saturating_sub(1));
        self.live_map().remove(&slot.index);
    }

    fn spares_map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<usize, Spare>> {
        self.spares.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<usize, Live>> {
        // Plain data: a panic while holding the lock leaves it usable.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live processes, by slot.
    pub(super) fn processes(&self) -> Vec<super::PoolProcess> {
        let live: Vec<Live> = self.live_map().values().copied().collect();
        live.into_iter()
            .map(|p| super::PoolProcess {
                pid: p.pid,
                jobs: p.jobs,
                age: p.started.elapsed(),
                rss_bytes: super::rss::tree_rss(p.pid),
            })
            .collect()
    }

    /// Waits for an idle process, unless `cancel` fires, the pool stops,
    /// or processes cannot start for lack of a resource.
    pub(super) async fn checkout(&self, cancel: &CancellationToken) -> Checkout {
        let wait = async { self.idle_rx.lock().await.recv().await };
        tokio::select! {
            biased;
            process = wait => process.map_or(Checkout::Cancelled, Checkout::Process),
            error = self.blocked() => Checkout::CannotStart(error),
            _ = cancel.cancelled() => Checkout::Cancelled,
            _ = self.shutdown.cancelled() => Checkout::Cancelled,
        }
    }

    /// Resolves (with its error) once starts fail for a resource limit.
    async fn blocked(&self) -> String {
        loop {
            let failed = self.start_failed.notified();
            tokio::pin!(failed);
            failed.as_mut().enable();
            if let Some(error) = self.blocked_by() {
                return error;
            }
            failed.await;
        }
    }

    fn blocked_by(&self) -> Option<String> {
        self.start_blocked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_blocked(&self, error: Option<String>) {
        let blocked = error.is_some();
        *self.start_blocked.lock().unwrap_or_else(|e| e.into_inner()) = error;
        if blocked {
            self.start_failed.notify_waiters();
        }
    }

    /// Makes a process that answered its job available again.
    pub(super) fn checkin(self: &Arc<Self>, process: Box<WorkerProcess>) {
        if let Some(live) = self.live_map().get_mut(&process.slot.index) {
            live.jobs = process.jobs;
        }
        if self.shutdown.is_cancelled() {
            self.tasks.spawn((*process).stop());
        } else if let Err(returned) = self.idle_tx.send(process) {
            // The receiver lives as long as the supervisor, so this cannot happen;
            // stop the process rather than leak it all the same.
            self.tasks.spawn((*returned.0).stop());
        }
    }

    /// Replaces a process that reached its job or memory limit.
    pub(super) fn retire(self: &Arc<Self>, process: WorkerProcess, why: &str) {
        tracing::info!(pool = %self.pool, pid = process.pid(), jobs = process.jobs, "recycling pool process: {why}");
        let slot = process.slot;
        self.leaving(slot);
        self.tasks.spawn(process.stop());
        self.refill(slot, Duration::ZERO);
    }

    /// Starts the replacement of the process in `slot` before it leaves
    /// (it nears `max_jobs`); it takes the place when the process leaves.
    pub(super) fn start_replacement(self: &Arc<Self>, slot: Slot) {
        {
            let mut spares = self.spares_map();
            if spares.contains_key(&slot.index) || self.shutdown.is_cancelled() {
                return;
            }
            spares.insert(slot.index, Spare::Starting { wanted: false });
        }
        let this = self.clone();
        self.tasks.spawn(async move {
            let started = WorkerProcess::start(&this.pool, &this.config, slot, &this.shutdown).await;
            let mut spares = this.spares_map();
            let wanted = matches!(
                spares.get(&slot.index),
                Some(Spare::Starting { wanted: true })
            );
            match started {
                Ok(process) if wanted => {
                    spares.remove(&slot.index);
                    drop(spares);
                    this.enter(process);
                }
                // `stop` cancels before it takes the spares, under this lock.
                Ok(process) if this.shutdown.is_cancelled() => {
                    spares.remove(&slot.index);
                    drop(spares);
                    this.tasks.spawn(process.stop());
                }
                Ok(process) => {
                    let pid = process.pid();
                    spares.insert(slot.index, Spare::Ready(Box::new(process)));
                    drop(spares);
                    this.expire_spare(slot, pid);
                }
                Err(e) => {
                    spares.remove(&slot.index);
                    drop(spares);
                    if this.shutdown.is_cancelled() {
                        return;
                    }
                    tracing::warn!(pool = %this.pool, slot = slot.index, "early replacement failed to start: {}", e.error);
                    if wanted {
                        // The place is empty now: the usual restart, with backoff.
                        let mut slot = slot;
                        let delay = slot.after_failure(Duration::ZERO);
                        this.spawn_process(slot, delay);
                    }
                }
            }
        });
    }

    /// Stops the early replacement `pid` of `slot` if it is still unused
    /// after [`SPARE_WAIT`].
    fn expire_spare(self: &Arc<Self>, slot: Slot, pid: u32) {
        let this = self.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(SPARE_WAIT) => {}
                _ = this.shutdown.cancelled() => return,
            }
            let unused = {
                let mut spares = this.spares_map();
                match spares.get(&slot.index) {
                    Some(Spare::Ready(spare)) if spare.pid() == pid => spares.remove(&slot.index),
                    _ => None,
                }
            };
            if let Some(Spare::Ready(spare)) = unused {
                spare.stop().await;
            }
        });
    }

    /// Fills the place `slot` left: with its early replacement when there
    /// is one (at once, or as soon as it greets), else with a new process
    /// after `delay`.
    fn refill(self: &Arc<Self>, slot: Slot, delay: Duration) {
        let mut spares = self.spares_map();
        match spares.remove(&slot.index) {
            Some(Spare::Ready(process)) => {
                drop(spares);
                self.enter(*process);
            }
            Some(Spare::Starting { .. }) => {
                spares.insert(slot.index, Spare::Starting { wanted: true });
            }
            None => {
                drop(spares);
                self.spawn_process(slot, delay);
            }
        }
    }

    /// A greeted process takes its place: counted ready, idle.
    fn enter(self: &Arc<Self>, process: WorkerProcess) {
        let live = Live {
            pid: process.pid(),
            started: std::time::Instant::now(),
            jobs: 0,
        };
        self.live_map().insert(process.slot.index, live);
        self.set_blocked(None);
        self.ready.send_modify(|n| *n += 1);
        self.checkin(Box::new(process));
    }

    /// Kills a process that failed and starts another after backoff.
    pub(super) fn replace(self: &Arc<Self>, mut process: WorkerProcess, fault: Fault) {
        let delay = process.slot.after_failure(process.age());
        tracing::warn!(pool = %self.pool, pid = process.pid(), ?delay, "pool process {}; restarting it", fault.0);
        let slot = process.slot;
        self.leaving(slot);
        self.tasks.spawn(async move {
            process.kill(fault).await;
        });
        self.refill(slot, delay);
    }

    /// Starts a process for `slot` after `delay`, retrying with backoff
    /// until it starts or the pool stops.
    fn spawn_process(self: &Arc<Self>, mut slot: Slot, mut delay: Duration) {
        let this = self.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = this.shutdown.cancelled() => return,
                }
                match WorkerProcess::start(&this.pool, &this.config, slot, &this.shutdown).await {
                    Ok(process) => return this.enter(process),
                    Err(_) if this.shutdown.is_cancelled() => return,
                    Err(e) => {
                        delay = slot.after_failure(Duration::ZERO);
                        tracing::error!(pool = %this.pool, slot = slot.index, ?delay, "pool process failed to start: {}", e.error);
                        this.set_blocked(e.machine.then_some(e.error));
                    }
                }
            }
        });
    }

    /// Stops every process gracefully and waits until all are reaped.
    pub(super) async fn stop(&self) {
        self.shutdown.cancel();
        self.live_map().clear();
        let spares: Vec<Spare> = self.spares_map().drain().map(|(_, spare)| spare).collect();
        for spare in spares {
            if let Spare::Ready(process) = spare {
                self.tasks.spawn(process.stop());
            }
        }
        {
            let mut idle = self.idle_rx.lock().await;
            while let Ok(process) = idle.try_recv() {
                self.tasks.spawn((*process).stop());
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_grows_caps_and_resets_after_a_healthy_run() {
        let mut slot = Slot {
            index: 0,
            failures: 0,
        };
        let quick = Duration::from_secs(1);
        let delays: Vec<_> = (0..12).map(|_| slot.after_failure(quick)).collect();
        assert_eq!(delays[0], RESTART_BASE);
        assert_eq!(delays[1], RESTART_BASE * 2);
        assert_eq!(delays[2], RESTART_BASE * 4);
        assert_eq!(delays[11], RESTART_MAX);
        assert_eq!(slot.after_failure(HEALTHY), RESTART_BASE);
    }
}
