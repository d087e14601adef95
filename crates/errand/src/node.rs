//! `errand serve` and `errand migrate`: open the store, then run the HTTP
//! API, the in-process worker, maintenance and the scheduler until SIGTERM
//! or SIGINT.

use crate::cli::{NodeArgs, WorkArgs};
use crate::config::{Config, Database, KindSection, SyncMode};
use anyhow::{Context, Result};
use errand_core::health::WriteTracked;
use errand_core::{KindPolicy, Store, StoreError};
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_executors::email::EmailExecutor;
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_executors::webhook::WebhookExecutor;
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use errand_worker::{Executor, MaintenanceConfig, Worker, WorkerConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Loads the configuration a node runs with: file, then environment and flags.
pub fn load_config(args: &NodeArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(database) = &args.database {
        config.database = database.clone();
        config.database_from_cli = true;
    }
    Ok(config)
}

/// Opens the store the configuration names. A PostgreSQL server that is
/// not reachable yet (starting, restarting) is waited for with backoff.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    match config.database()? {
        Database::Sqlite(path) => Ok(Arc::new(open_sqlite(config, &path).await?)),
        Database::Postgres(url) => {
            let opts = PostgresOptions {
                pool_size: config.postgres.pool_size,
                connect_timeout: config.postgres.connect_timeout,
                verify_connections: config.postgres.verify_connections,
                ..PostgresOptions::default()
            };
            let store = with_backoff(config, || PostgresStore::connect(&url, opts.clone())).await?;
            Ok(Arc::new(store))
        }
    }
}

/// Opens an SQLite file with the configured durability.
async fn open_sqlite(config: &Config, path: &std::path::Path) -> Result<SqliteStore> {
    let synchronous = match config.sqlite.synchronous {
        SyncMode::Full => Synchronous::Full,
        SyncMode::Normal => Synchronous::Normal,
        SyncMode::Off => Synchronous::Off,
    };
    let opts = SqliteOptions {
        synchronous,
        ..SqliteOptions::default()
    };
    SqliteStore::open(path, opts)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))
}

/// Retries `connect` while the database is unavailable, for up to a minute.
async fn with_backoff<T, F, Fut>(config: &Config, connect: F) -> Result<T>
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
                warn!(database = %config.database_label(), error = %why, "database unavailable; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot open database {}", config.database_label()));
            }
        }
    }
}

/// How long start-up waits for an unreachable database before giving up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// `errand migrate`
pub async fn migrate(args: NodeArgs) -> Result<ExitCode> {
    let config = load_config(&args)?;
    let version = match config.database()? {
        // The SQLite store migrates when it opens.
        Database::Sqlite(path) => open_sqlite(&config, &path).await?.schema_version().await?,
        Database::Postgres(url) => with_backoff(&config, || PostgresStore::migrate(&url)).await?,
    };
    crate::logging::print(&format!(
        "database {} is at schema version {version}\n",
        config.database_label()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `errand serve`: the HTTP API, maintenance and (with kinds configured)
/// an in-process worker.
pub async fn serve(args: NodeArgs) -> Result<ExitCode> {
    run_node(load_config(&args)?, true).await
}

/// `errand work`: a worker-only node (no HTTP listener).
pub async fn work(args: WorkArgs) -> Result<ExitCode> {
    let mut config = load_config(&args.node)?;
    if let Some(queues) = &args.queues {
        config.restrict_queues(queues, args.concurrency)?;
    } else if let Some(n) = args.concurrency {
        config.restrict_queues(
            &config.queue_concurrency().into_keys().collect::<Vec<_>>(),
            Some(n),
        )?;
    }
    if config.kinds.is_empty() {
        anyhow::bail!(
            "errand work needs kinds to run: configure [kinds.NAME] sections (see --config)"
        );
    }
    run_node(config, false).await
}

async fn run_node(config: Config, http: bool) -> Result<ExitCode> {
    let fd_limit = raise_fd_limit();
    ignore_file_size_signal();
    let executors = executors(&config)?;
    // A node limited to some queues lacks the other kinds' policies, so it
    // leaves the schedules to nodes configured with every kind.
    let schedules = if config.only_listed_queues {
        Vec::new()
    } else {
        config.schedules()?
    };
    // Every writer of this node shares the tracked store, so /healthz
    // reports failing writes whoever made them.
    let store: Arc<dyn Store> = Arc::new(WriteTracked::new(open_store(&config).await?));
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    let mut address = None;
    let server = if http {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        address = Some(addr.to_string());
        info!(
            database = %config.database_label(),
            kinds = ?config.kinds.keys().collect::<Vec<_>>(),
            "errand listening on http://{addr}"
        );
        let connections = config.server.connections(fd_limit);
        debug!(
            "at most {} HTTP connections at once",
            connections.max_connections
        );
        let server_config = errand_server::ServerConfig {
            kinds: config.policies(),
            body_limit: config.server.body_limit.0 as usize,
            max_wait: config.server.max_wait,
            events: config.event_listeners(),
            record_unknown_events: config.server.record_unknown_events,
            schedules: schedules.clone(),
            connections: connections.clone(),
            shutdown: shutdown.clone(),
        };
        let router = errand_server::router(store.clone(), server_config);
        Some(tokio::spawn(errand_server::serve_with(
            listener,
            router,
            connections,
            shutdown.clone().cancelled_owned(),
        )))
    } else {
        info!(
            database = %config.database_label(),
            queues = ?config.queue_concurrency(),
            "errand worker node started"
        );
        None
    };
    let worker_config = worker_config(&config, address);
    let maintenance = tokio::spawn(errand_worker::run_maintenance(
        store.clone(),
        MaintenanceConfig {
            interval: config.worker.maintenance_interval,
            retention: config.retention,
            node: worker_config.name.clone(),
            ..MaintenanceConfig::default()
        },
        shutdown.clone(),
    ));
    let scheduler = tokio::spawn(errand_worker::run_scheduler(
        store.clone(),
        schedules,
        config.policies(),
        worker_config.name.clone(),
        shutdown.clone(),
    ));
    // With no kinds configured there is nothing this node could run.
    if config.worker.enabled && !executors.is_empty() {
        let mut worker = Worker::new(store.clone(), worker_config);
        for (name, policy, executor) in executors {
            worker.register(&name, policy, executor);
        }
        worker.run(shutdown.clone()).await?;
    } else {
        shutdown.cancelled().await;
    }
    if let Some(server) = server {
        server.await?.context("HTTP server failed")?;
    }
    maintenance.await?;
    scheduler.await?;
    info!("errand stopped");
    Ok(ExitCode::SUCCESS)
}

/// The worker settings of this node.
fn worker_config(config: &Config, http: Option<String>) -> WorkerConfig {
    let defaults = WorkerConfig::default();
    WorkerConfig {
        name: config.worker.name.clone().unwrap_or(defaults.name),
        queues: config.queue_concurrency(),
        lease: config.worker.lease,
        heartbeat: config.worker.heartbeat,
        poll_interval: config.worker.poll_interval,
        shutdown_timeout: config.worker.shutdown_timeout,
        http,
        breaker: config.worker.breaker.config(),
    }
}

/// Every configured kind with its policy and executor, built before the
/// node touches the database so a bad executor stops start-up at once.
/// A kind ready to register: name, policy, executor.
type Registration = (String, KindPolicy, Arc<dyn Executor>);

fn executors(config: &Config) -> Result<Vec<Registration>> {
    config
        .kinds
        .iter()
        .map(|(name, kind)| {
            let executor =
                executor_for(config, name, kind).with_context(|| format!("[kinds.{name}]"))?;
            Ok((name.clone(), kind.policy(), executor))
        })
        .collect()
}

/// Builds the executor a kind's section names (config validation has made
/// sure exactly one is set).
fn executor_for(config: &Config, name: &str, kind: &KindSection) -> Result<Arc<dyn Executor>> {
    if let Some(pool) = &kind.pool {
        let pool = PoolConfig {
            cwd: Some(config.resolve(pool.cwd.as_deref())),
            ..pool.clone()
        };
        return Ok(Arc::new(PoolExecutor::new(name, pool)?));
    }
    if let Some(webhook) = &kind.webhook {
        return Ok(Arc::new(WebhookExecutor::new(webhook.clone())?));
    }
    if let Some(smtp) = &kind.smtp {
        return Ok(Arc::new(EmailExecutor::new(smtp.clone())?));
    }
    let spec = kind.command_spec().unwrap_or_default();
    let spec = CommandSpec {
        cwd: Some(config.resolve(spec.cwd.as_deref())),
        ..spec
    };
    Ok(Arc::new(CommandExecutor::new(spec)?))
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
