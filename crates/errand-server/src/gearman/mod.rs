//! The Gearman listener (issue 14, docs/gearman.md, decision 0032):
//! unmodified Gearman clients and workers talk to errand on a second port.
//! Submits become ordinary errand jobs (the function is the kind); Gearman
//! workers are remote workers, claiming, renewing and finishing through
//! [`errand_worker::RemoteWorkers`], so fencing, leases, limits and
//! breakers are the HTTP workers'. The wire is errand-gearman's; here are
//! the sockets, the per-connection state and the foreground listeners.

mod ahead;
mod conn;
mod data;
mod outcomes;

pub use outcomes::{FunctionOutcomes, OnEnd};

use bytes::Bytes;
use errand_core::{Catalog, Job, JobId, JobState, Store, StoreEvent};
use errand_gearman::Packet;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `[gearman]`: the Gearman listener, off unless `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GearmanSettings {
    /// Address of the Gearman port, e.g. "127.0.0.1:4730"; unset: no
    /// listener.
    pub listen: Option<String>,
    /// `[gearman.functions.NAME]`: how Gearman failures end the background
    /// jobs of function (kind) NAME; unlisted functions retry.
    pub functions: BTreeMap<String, FunctionOutcomes>,
}

impl GearmanSettings {
    /// Refuses an address that is not `IP:port` on loopback: the Gearman
    /// protocol has no authentication, so until errand maps tokens or TLS
    /// onto it, only this host may reach it (decision 0032).
    pub fn validate(&self) -> Result<(), String> {
        let Some(listen) = &self.listen else {
            return Ok(());
        };
        let addr: SocketAddr = listen.parse().map_err(|_| {
            format!("listen = {listen:?}: expected IP:port, e.g. \"127.0.0.1:4730\"")
        })?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "listen = {listen:?}: the Gearman protocol has no authentication, so the listener binds only to a loopback address (127.0.0.1 or ::1); reach it from other hosts through an SSH tunnel or a local proxy"
            ));
        }
        Ok(())
    }
}

/// What a Gearman listener serves.
#[derive(Debug, Clone)]
pub struct GearmanConfig {
    /// The configured kinds: submits are accepted for any of them, grabs
    /// hand out jobs of the `remote = true` ones.
    pub catalog: Arc<Catalog>,
    /// Lease, heartbeat and breaker settings of the node's remote workers.
    pub remote: errand_worker::RemoteSettings,
    /// Cancelled when the node stops: connections hand their jobs back and
    /// close.
    pub shutdown: CancellationToken,
    /// The version `version` answers.
    pub version: String,
    /// Largest workload in bytes (`[server] body_limit`, as over HTTP);
    /// a larger packet gets `ERROR` before its body is read.
    pub payload_limit: usize,
    /// Per-function outcome mapping (`[gearman.functions]`).
    pub functions: BTreeMap<String, FunctionOutcomes>,
}

impl GearmanConfig {
    /// How Gearman failures end background jobs of `kind`.
    fn outcomes(&self, kind: &str) -> FunctionOutcomes {
        self.functions.get(kind).copied().unwrap_or_default()
    }
}

/// A foreground client waiting for a job's `WORK_*` packets.
struct Listener {
    conn: u64,
    tx: mpsc::UnboundedSender<Packet>,
    exceptions: bool,
}

/// What the admin `workers` command shows of a connection.
#[derive(Debug, Clone)]
struct ConnInfo {
    ip: IpAddr,
    client_id: Option<Bytes>,
    functions: Vec<Bytes>,
}

/// How a job's error begins when its worker sent `WORK_EXCEPTION`: the
/// rest is the exception text, which a foreground client on another node
/// gets back as its `WORK_EXCEPTION` data.
const EXCEPTION_ERROR: &str = "the Gearman worker sent WORK_EXCEPTION: ";

/// While foreground clients wait, the jobs they wait for are re-read this
/// often, in case their end was never announced here: a NOTIFY from
/// another node lost while this node's LISTEN connection reconnected, or
/// an end that came between a submit's commit and its listener.
const SAFETY_REREAD: Duration = Duration::from_secs(1);

/// What every connection of one listener shares.
struct Hub {
    store: Arc<dyn Store>,
    config: GearmanConfig,
    remote: errand_worker::RemoteWorkers,
    /// `H:<node>`: the handles' prefix.
    handle_prefix: String,
    next_conn: AtomicU64,
    conns: Mutex<BTreeMap<u64, ConnInfo>>,
    listeners: Mutex<HashMap<JobId, Vec<Listener>>>,
    /// `maxqueue`'s caps per configured kind, for HIGH, NORMAL and LOW
    /// submits (above 0: a cap), on this node until it stops.
    max_queue: Mutex<HashMap<String, [i64; 3]>>,
    /// Jobs a connection here is finishing: it forwards their end itself
    /// (with the exception data the store does not keep).
    finishing: Mutex<HashSet<JobId>>,
}

impl Hub {
    /// Sends `packet` to every foreground listener of `job`; with `ends`,
    /// forgets them. `exception` is the data of a `WORK_EXCEPTION`, sent as
    /// `WORK_FAIL` to a listener without the `exceptions` option.
    fn forward(&self, job: JobId, packet: &Packet, ends: bool) {
        let mut listeners = lock(&self.listeners);
        let Some(list) = listeners.get(&job) else {
            return;
        };
        for l in list {
            let packet = match packet {
                Packet::WorkException { handle, .. } if !l.exceptions => Packet::WorkFail {
                    handle: handle.clone(),
                },
                p => p.clone(),
            };
            // A closed receiver is a client that left; its entry goes with
            // its connection.
            let _ = l.tx.send(packet);
        }
        if ends {
            listeners.remove(&job);
        }
    }

    /// Tells the foreground listeners of jobs that ended some other way
    /// (a worker on another node, an errand executor, a cancel, attempts
    /// used up by lost leases) how they ended.
    async fn ended(&self, ids: &[JobId]) {
        let waiting: Vec<JobId> = {
            let listeners = lock(&self.listeners);
            let finishing = lock(&self.finishing);
            ids.iter()
                .copied()
                .filter(|id| listeners.contains_key(id) && !finishing.contains(id))
                .collect()
        };
        for id in waiting {
            let job = match self.store.get(id).await {
                Ok(Some(job)) if job.state.is_terminal() => job,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, job = id, "gearman: ended job not read");
                    continue;
                }
            };
            // A connection here began finishing it meanwhile: it tells the
            // listeners itself, with the worker's own data.
            if lock(&self.finishing).contains(&id) {
                continue;
            }
            let handle = conn::handle(&self.handle_prefix, id);
            self.forward(id, &end_packet(&job, handle), true);
        }
    }

    /// Delivers the ends of jobs with listeners here as the store reports
    /// them, until the node stops. With PostgreSQL the store's `Finished`
    /// events include the jobs that ended on other nodes (its NOTIFYs), so
    /// a client here gets the outcome of a job run by a worker on another
    /// node; while clients wait, a re-read every [`SAFETY_REREAD`] covers
    /// an end that was never announced here.
    async fn watch_ends(self: Arc<Hub>) {
        let mut events = self.store.subscribe();
        let mut reread = tokio::time::interval(SAFETY_REREAD);
        reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ids: Vec<JobId> = tokio::select! {
                event = events.recv() => match event {
                    Ok(StoreEvent::Finished(ids)) => ids.to_vec(),
                    Ok(_) => continue,
                    // Missed some: look at every job listened to.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.waited(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                // Nobody waiting: no read.
                _ = reread.tick() => self.waited(),
                _ = self.config.shutdown.cancelled() => return,
            };
            if !ids.is_empty() {
                self.ended(&ids).await;
            }
        }
    }

    /// The jobs foreground clients here wait for.
    fn waited(&self) -> Vec<JobId> {
        lock(&self.listeners).keys().copied().collect()
    }
}

/// Accepts Gearman connections on `listener` until `config.shutdown`
/// fires, then waits for every connection to hand its jobs back.
pub async fn serve_gearman(
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    config: GearmanConfig,
) -> std::io::Result<()> {
    let remote = errand_worker::RemoteWorkers::new(
        store.clone(),
        config.catalog.clone(),
        config.remote.clone(),
        config.shutdown.clone(),
    );
    let handle_prefix = handle_prefix(&config.remote.node);
    let shutdown = config.shutdown.clone();
    let hub = Arc::new(Hub {
        store,
        config,
        remote,
        handle_prefix,
        next_conn: AtomicU64::new(1),
        conns: Mutex::new(BTreeMap::new()),
        listeners: Mutex::new(HashMap::new()),
        max_queue: Mutex::new(HashMap::new()),
        finishing: Mutex::new(HashSet::new()),
    });
    let tracker = TaskTracker::new();
    tracker.spawn(hub.clone().watch_ends());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let id = hub.next_conn.fetch_add(1, Ordering::Relaxed);
                    tracker.spawn(conn::run(hub.clone(), id, stream, peer));
                }
                // Out of file descriptors and the like: back off, go on.
                Err(e) => {
                    tracing::warn!(error = %e, "gearman accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// The packet telling a foreground client how `job` (terminal) ended:
/// `WORK_COMPLETE` with its result; `WORK_EXCEPTION` with the exception
/// text kept in its last error when its worker sent one (a client without
/// the `exceptions` option gets `WORK_FAIL` from [`Hub::forward`]);
/// `WORK_FAIL` otherwise.
fn end_packet(job: &Job, handle: Bytes) -> Packet {
    if job.state == JobState::Completed {
        return Packet::WorkComplete {
            handle,
            data: job.result.as_ref().map(data::to_bytes).unwrap_or_default(),
        };
    }
    let exception = (job.state == JobState::Failed)
        .then(|| job.errors.last()?.error.strip_prefix(EXCEPTION_ERROR))
        .flatten();
    match exception {
        Some(text) => Packet::WorkException {
            handle,
            data: Bytes::from(text.to_string()),
        },
        None => Packet::WorkFail { handle },
    }
}

/// `H:<node>` when the node name makes a valid prefix, else `H:errand`.
fn handle_prefix(node: &str) -> String {
    let prefix = format!("H:{node}");
    match errand_gearman::JobHandle::new(prefix.clone(), 0) {
        Ok(_) => prefix,
        Err(_) => "H:errand".to_string(),
    }
}

/// A poisoned lock only means a panic while holding it: the maps stay valid.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let s = |l: &str| GearmanSettings {
            listen: Some(l.into()),
            ..Default::default()
        };
        assert!(GearmanSettings::default().validate().is_ok());
        assert!(s("127.0.0.1:4730").validate().is_ok());
        assert!(s("[::1]:4730").validate().is_ok());
        assert!(
            s("0.0.0.0:4730")
                .validate()
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            s("localhost:4730")
                .validate()
                .unwrap_err()
                .contains("IP:port")
        );
    }
}
