//! `errand serve` and `errand migrate`: open the store, then run the HTTP
//! API, the in-process worker, maintenance and the scheduler until SIGTERM
//! or SIGINT.

use crate::cli::{NodeArgs, WorkArgs};
use crate::config::ExecutorSpec;
use crate::plan::{Database, NodePlan, Overrides};
use anyhow::{Context, Result};
use errand_core::health::WriteTracked;
use errand_core::{Store, StoreError};
use errand_executors::command::CommandExecutor;
use errand_executors::email::EmailExecutor;
use errand_executors::pool::PoolExecutor;
use errand_executors::webhook::WebhookExecutor;
use errand_postgres::PostgresStore;
use errand_sqlite::SqliteStore;
use errand_worker::{Executor, Worker};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// The plan a node runs with: the file, then environment and flags.
pub(crate) fn load_plan(
    args: &NodeArgs,
    queues: Option<Vec<String>>,
    concurrency: Option<usize>,
) -> Result<NodePlan> {
    let overrides = Overrides {
        listen: args.listen.clone(),
        database: args.database.clone(),
        queues,
        concurrency,
        unsafe_no_auth: args.unsafe_no_auth,
    };
    NodePlan::load(args.config.as_deref(), overrides)
}

/// Opens the store the plan names. A PostgreSQL server that is not
/// reachable yet (starting, restarting) is waited for with backoff.
pub async fn open_store(plan: &NodePlan) -> Result<Arc<dyn Store>> {
    match &plan.database {
        Database::Sqlite(path) => Ok(Arc::new(open_sqlite(plan, path).await?)),
        Database::Postgres(url) => {
            let store =
                with_backoff(plan, || PostgresStore::connect(url, plan.postgres.clone())).await?;
            Ok(Arc::new(store))
        }
    }
}

/// Opens an SQLite file with the configured durability.
async fn open_sqlite(plan: &NodePlan, path: &std::path::Path) -> Result<SqliteStore> {
    SqliteStore::open(path, plan.sqlite.clone())
        .await
        .with_context(|| format!("cannot open database {}", path.display()))
}

/// Retries `connect` while the database is unavailable, for up to a minute.
async fn with_backoff<T, F, Fut>(plan: &NodePlan, connect: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + STARTUP_PATIENCE;
    let mut pause = Duration::from_millis(200);
    loop {
        match connect().await {
            Ok(v) => return Ok(v),
            Err(StoreError::Unavailable(why)) if tokio::time::Instant::now() < deadline => {
                warn!(database = %plan.database_label, error = %why, "database unavailable; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open database {}", plan.database_label));
            }
        }
    }
}

/// How long start-up waits for an unreachable database before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// `errand migrate`
pub async fn migrate(args: NodeArgs) -> Result<ExitCode> {
    let plan = load_plan(&args, None, None)?;
    let version = match &plan.database {
        // The SQLite store migrates when it opens.
        Database::Sqlite(path) => open_sqlite(&plan, path).await?.schema_version().await?,
        Database::Postgres(url) => with_backoff(&plan, || PostgresStore::migrate(url)).await?,
    };
    crate::logging::print(&format!(
        "database {} is at schema version {version}\n",
        plan.database_label
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `errand serve`: the HTTP API, maintenance and (with kinds configured)
/// an in-process worker.
pub async fn serve(args: NodeArgs) -> Result<ExitCode> {
    run_node(load_plan(&args, None, None)?, true).await
}

/// `errand work`: a worker-only node (no HTTP listener).
pub async fn work(args: WorkArgs) -> Result<ExitCode> {
    let plan = load_plan(&args.node, args.queues.clone(), args.concurrency)?;
    if plan.catalog.kinds().is_empty() {
        anyhow::bail!(
            "errand work needs kinds to run: configure [kinds.NAME] sections (see --config)"
        );
    }
    run_node(plan, false).await
}

async fn run_node(plan: NodePlan, http: bool) -> Result<ExitCode> {
    // Refused before anything is opened: a node never serves unsafely.
    let auth_required = http && plan.auth_required()?;
    let fd_limit = raise_fd_limit();
    ignore_file_size_signal();
    let executors = executors(&plan)?;
    let gauges = Arc::new(NodeGauges::new(&executors));
    // Certificates are checked before the database is touched, and the
    // SIGHUP handler is in place before the address is announced.
    let tls = match (&plan.server.tls, http) {
        (Some(files), true) => {
            let tls = errand_server::Tls::load(files.clone())
                .map_err(|e| anyhow::anyhow!("[server] {e}"))?;
            reload_on_hangup(tls.clone())?;
            Some(tls)
        }
        _ => None,
    };
    // Every writer of this node shares the tracked store, so /healthz
    // reports failing writes whoever made them.
    let store: Arc<dyn Store> = Arc::new(WriteTracked::new(open_store(&plan).await?));
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let mut address = None;
    let mut gearman_task = None;
    let server = if http {
        let listener = tokio::net::TcpListener::bind(&plan.listen)
            .await
            .with_context(|| format!("cannot listen on {}", plan.listen))?;
        let addr = listener.local_addr()?;
        address = Some(addr.to_string());
        let scheme = if tls.is_some() { "https" } else { "http" };
        info!(
            database = %plan.database_label,
            kinds = ?plan.catalog.kinds().keys().collect::<Vec<_>>(),
            "errand listening on {scheme}://{addr}"
        );
        let mut server_config =
            plan.server
                .config(plan.catalog.clone(), fd_limit, shutdown.clone());
        server_config.auth_required = auth_required;
        // Bulk actions this node accepts, it steps itself (see errand_worker::BulkRunner).
        let bulk = errand_worker::BulkRunner::new(store.clone(), shutdown.clone());
        server_config.bulk_starter = Some(errand_server::BulkStarter(Arc::new(move |id| {
            bulk.start(id)
        })));
        server_config.node_metrics = Some(gauges.clone());
        // Remote workers get the leases and breakers of this node's own worker.
        let own = plan.worker.worker_config(plan.queues.clone(), None);
        server_config.remote = errand_worker::RemoteSettings {
            node: own.name,
            lease: own.lease,
            heartbeat: own.heartbeat,
            poll_interval: own.poll_interval,
            breaker: own.breaker,
        };
        if auth_required {
            info!("API tokens required (every route but /healthz)");
        } else if plan.unsafe_no_auth && !addr.ip().is_loopback() {
            warn!(
                "serving WITHOUT authentication on {addr} (--unsafe-no-auth): anyone who reaches it can read and change every job"
            );
        } else {
            info!("API auth off (loopback address)");
        }
        debug!(
            "at most {} HTTP connections at once",
            server_config.connections.max_connections
        );
        let connections = server_config.connections.clone();
        if let Some(listen) = &plan.gearman.listen {
            let gearman = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("[gearman] cannot listen on {listen}"))?;
            info!("Gearman listener on {}", gearman.local_addr()?);
            let config = errand_server::GearmanConfig {
                catalog: server_config.catalog.clone(),
                remote: server_config.remote.clone(),
                shutdown: shutdown.clone(),
                version: format!("errand-{}", env!("CARGO_PKG_VERSION")),
                payload_limit: server_config.body_limit,
                functions: plan.gearman.functions.clone(),
            };
            gearman_task = Some(tokio::spawn(errand_server::serve_gearman(
                gearman,
                store.clone(),
                config,
            )));
        }
        let router = errand_server::router(store.clone(), server_config);
        let stopped = shutdown.clone().cancelled_owned();
        Some(match tls {
            Some(tls) => tokio::spawn(errand_server::serve_tls(
                listener,
                router,
                connections,
                tls,
                stopped,
            )),
            None => tokio::spawn(errand_server::serve_with(
                listener,
                router,
                connections,
                stopped,
            )),
        })
    } else {
        info!(
            database = %plan.database_label,
            queues = ?plan.queues,
            "errand worker node started"
        );
        None
    };
    let worker_config = plan.worker.worker_config(plan.queues.clone(), address);
    let maintenance = tokio::spawn(errand_worker::run_maintenance(
        store.clone(),
        plan.worker
            .maintenance_config(worker_config.name.clone(), plan.retention),
        shutdown.clone(),
    ));
    let catalog = Arc::new(plan.catalog);
    let scheduler = tokio::spawn(errand_worker::run_scheduler(
        store.clone(),
        catalog.clone(),
        worker_config.name.clone(),
        shutdown.clone(),
    ));
    // With no kinds configured there is nothing this node could run.
    if plan.worker.enabled && !executors.is_empty() {
        let mut worker = Worker::new(store.clone(), worker_config);
        let _ = gauges.running.set(worker.running_jobs());
        for (name, built) in executors {
            let policy = catalog.policy(&name).cloned().unwrap_or_default();
            worker.register(&name, policy, built.executor);
        }
        worker.run(shutdown.clone()).await?;
    } else {
        shutdown.cancelled().await;
    }
    if let Some(server) = server {
        server.await?.context("HTTP server failed")?;
    }
    if let Some(gearman) = gearman_task {
        gearman.await?.context("Gearman listener failed")?;
    }
    maintenance.await?;
    scheduler.await?;
    // PostgreSQL keeps up to a second of throughput counts in memory.
    if let Err(e) = store.flush_history().await {
        warn!(error = %e, "throughput counts of the last second not written");
    }
    info!("errand stopped");
    Ok(ExitCode::SUCCESS)
}

/// Every kind's executor, built before the node touches the database so a
/// bad executor stops start-up at once. Remote kinds have none here: remote
/// workers claim them over the API.
fn executors(plan: &NodePlan) -> Result<BTreeMap<String, Built>> {
    plan.executors
        .iter()
        .filter(|(_, spec)| !matches!(spec, ExecutorSpec::Remote))
        .map(|(name, spec)| {
            let executor = executor_for(name, spec).with_context(|| format!("[kinds.{name}]"))?;
            Ok((name.clone(), executor))
        })
        .collect()
}

/// A kind's executor, and its pool when it is one (for its gauges).
struct Built {
    executor: Arc<dyn Executor>,
    pool: Option<Arc<PoolExecutor>>,
}

/// Builds the executor a kind's checked spec names.
fn executor_for(name: &str, spec: &ExecutorSpec) -> Result<Built> {
    let executor: Arc<dyn Executor> = match spec {
        ExecutorSpec::Command(spec) => Arc::new(CommandExecutor::new(spec.clone())?),
        ExecutorSpec::Pool(pool) => {
            let pool = Arc::new(PoolExecutor::new(name, pool.clone())?);
            return Ok(Built {
                executor: pool.clone(),
                pool: Some(pool),
            });
        }
        ExecutorSpec::Webhook(webhook) => Arc::new(WebhookExecutor::new(webhook.clone())?),
        ExecutorSpec::Smtp(smtp) => Arc::new(EmailExecutor::new(smtp.clone())?),
        ExecutorSpec::Remote => anyhow::bail!("a remote kind has no executor on this node"),
    };
    Ok(Built {
        executor,
        pool: None,
    })
}

/// This node's own gauges for `/metrics`: its worker's running jobs (once
/// the worker exists) and its pools' processes.
struct NodeGauges {
    running: std::sync::OnceLock<errand_worker::RunningJobs>,
    pools: Vec<(String, Arc<PoolExecutor>)>,
}

impl NodeGauges {
    fn new(executors: &BTreeMap<String, Built>) -> NodeGauges {
        let pools = executors
            .iter()
            .filter_map(|(name, built)| Some((name.clone(), built.pool.clone()?)))
            .collect();
        NodeGauges {
            running: std::sync::OnceLock::new(),
            pools,
        }
    }
}

impl std::fmt::Debug for NodeGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pools: Vec<&str> = self.pools.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("NodeGauges")
            .field("running", &self.running.get().map(|r| r.get()))
            .field("pools", &pools)
            .finish()
    }
}

impl errand_server::NodeMetrics for NodeGauges {
    fn running_jobs(&self) -> Option<u64> {
        self.running.get().map(|r| r.get() as u64)
    }

    fn pool_processes(&self) -> Vec<errand_server::PoolProcessGauge> {
        self.pools
            .iter()
            .flat_map(|(name, pool)| {
                pool.processes()
                    .into_iter()
                    .map(|p| errand_server::PoolProcessGauge {
                        pool: name.clone(),
                        pid: p.pid,
                        rss_bytes: p.rss_bytes,
                        jobs: p.jobs,
                        age: p.age,
                    })
            })
            .collect()
    }
}

/// Raises the soft open-files limit to the hard one (each connection and
/// each job's pipes take descriptors; the usual soft 1,024 is low for a
/// server) and answers the limit in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                debug!("open-files limit raised from {soft} to {hard}");
                hard
            }
            Err(e) => {
                debug!("open-files limit stays {soft}: cannot raise it to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => {
            debug!("open-files limit is {soft} (the hard limit)");
            soft
        }
        Err(e) => {
            debug!("cannot read the open-files limit ({e}); assuming 1024");
            1024
        }
    }
}

/// A write past the file-size limit (RLIMIT_FSIZE) raises SIGXFSZ, which
/// would kill the process; caught, the write fails instead and the store
/// reports it (503, /healthz degraded) like a full disk.
fn ignore_file_size_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    // The handler stays installed after the stream is dropped; nothing reads it.
    if let Err(e) = signal(SignalKind::from_raw(nix::libc::SIGXFSZ)) {
        debug!("cannot catch SIGXFSZ: {e}");
    }
}

/// Reloads the TLS certificate and key on every SIGHUP: new connections
/// get the new certificate, open ones keep theirs; files that fail to load
/// leave the current certificate in use.
fn reload_on_hangup(tls: errand_server::Tls) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("cannot catch SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // Small files: reading them on the runtime costs less than a thread hop.
            match tls.reload() {
                Ok(()) => info!(
                    cert = %tls.files().cert.display(),
                    "SIGHUP received: TLS certificate reloaded"
                ),
                Err(e) => error!(
                    "SIGHUP received: TLS certificate not reloaded, the previous one stays in use: [server] {e}"
                ),
            }
        }
    });
    Ok(())
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            warn!("cannot install signal handlers; stop errand with SIGKILL");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!("{name} received: no new jobs start; running jobs may finish");
    shutdown.cancel();
}
