//! The configuration file (TOML) and how it combines with flags and
//! environment variables. Every setting has a default, so `errand serve`
//! runs with no file at all; a bad file stops start-up with a message that
//! names the kind and the key.

use anyhow::{Context, Result, anyhow, bail};
use errand_core::duration::serde_human;
use errand_core::limit::{KindLimit, Rate};
use errand_core::policy::DEFAULT_QUEUE;
use errand_core::schedule::{Schedule, ScheduleSpec};
use errand_core::size::ByteSize;
use errand_core::{Backoff, KindPolicy, Retention};
use errand_executors::command::CommandSpec;
use errand_executors::email::SmtpConfig;
use errand_executors::pool::PoolConfig;
use errand_executors::webhook::WebhookConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where jobs live: `sqlite://PATH`.
    pub database: String,
    /// Address of the HTTP API.
    pub listen: String,
    /// HTTP API settings.
    pub server: ServerSection,
    /// In-process worker settings.
    pub worker: WorkerSection,
    /// SQLite engine settings.
    pub sqlite: SqliteSection,
    /// PostgreSQL engine settings.
    pub postgres: PostgresSection,
    /// How long terminal jobs are kept.
    pub retention: Retention,
    /// Queues and their concurrency.
    pub queues: BTreeMap<String, QueueSection>,
    /// Kinds of work and how each runs.
    pub kinds: BTreeMap<String, KindSection>,
    /// Events and the kinds that listen to each.
    pub events: BTreeMap<String, EventSection>,
    /// Cron schedules (`[[schedules]]`), each enqueueing a kind.
    pub schedules: Vec<ScheduleSpec>,
    /// Directory relative paths resolve against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The database came from a flag or the environment, so a relative
    /// path means relative to the working directory, not the file.
    #[serde(skip)]
    pub database_from_cli: bool,
    /// `errand work --queues` chose the queues: serve only those.
    #[serde(skip)]
    pub only_listed_queues: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: "sqlite://errand.db".into(),
            listen: "127.0.0.1:7070".into(),
            server: ServerSection::default(),
            worker: WorkerSection::default(),
            sqlite: SqliteSection::default(),
            postgres: PostgresSection::default(),
            retention: Retention::default(),
            queues: BTreeMap::new(),
            kinds: BTreeMap::new(),
            events: BTreeMap::new(),
            schedules: Vec::new(),
            base_dir: PathBuf::from("."),
            database_from_cli: false,
            only_listed_queues: false,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Largest request body, e.g. "1MiB".
    pub body_limit: ByteSize,
    /// Longest `?wait=` a request may hold.
    #[serde(with = "serde_human")]
    pub max_wait: Duration,
    /// Record events no `[events.NAME]` section names (with no listeners)
    /// instead of refusing them.
    pub record_unknown_events: bool,
    /// Most HTTP connections open at once; unset: half the open-files limit.
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers.
    #[serde(with = "serde_human")]
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    #[serde(with = "serde_human")]
    pub idle_timeout: Duration,
    /// Time a request body may take on top of its size at `body_min_rate`.
    #[serde(with = "serde_human")]
    pub body_grace: Duration,
    /// Slowest request body accepted, per second (e.g. "64KiB").
    pub body_min_rate: ByteSize,
}

impl Default for ServerSection {
    fn default() -> Self {
        let defaults = errand_server::ServerConfig::default();
        let connections = defaults.connections;
        ServerSection {
            body_limit: ByteSize(defaults.body_limit as u64),
            max_wait: defaults.max_wait,
            record_unknown_events: defaults.record_unknown_events,
            max_connections: None,
            header_read_timeout: connections.header_read_timeout,
            idle_timeout: connections.idle_timeout,
            body_grace: connections.body_grace,
            body_min_rate: ByteSize(connections.body_min_rate),
        }
    }
}

impl ServerSection {
    /// The connection bounds, the cap sized from `fd_limit` (the process's
    /// open-files limit) unless configured.
    pub fn connections(&self, fd_limit: u64) -> errand_server::Connections {
        errand_server::Connections {
            max_connections: self
                .max_connections
                .unwrap_or_else(|| errand_server::Connections::max_for_fd_limit(fd_limit)),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_grace: self.body_grace,
            body_min_rate: self.body_min_rate.0,
        }
    }

    /// Checks what TOML types alone cannot.
    fn validate(&self) -> Result<()> {
        if self.max_connections == Some(0) {
            bail!("[server] max_connections: must be at least 1");
        }
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                bail!("[server] {key}: must be greater than zero");
            }
        }
        if self.body_min_rate.0 == 0 {
            bail!("[server] body_min_rate: must be greater than zero");
        }
        Ok(())
    }
}

/// `[events."NAME"]`: the kinds that get a job each time the event is published.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSection {
    /// Configured kinds, one job each, in this order.
    pub listeners: Vec<String>,
}

/// The shortest `[worker] lease`: a shorter one would expire on ordinary
/// scheduling hiccups and run jobs twice.
pub const MIN_LEASE: Duration = Duration::from_secs(1);

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSection {
    /// Run jobs in the `serve` process.
    pub enabled: bool,
    /// Name shown on running jobs.
    pub name: Option<String>,
    /// How long a claim lasts without a heartbeat.
    #[serde(with = "serde_human")]
    pub lease: Duration,
    /// How often running jobs' leases are renewed.
    #[serde(with = "serde_human")]
    pub heartbeat: Duration,
    /// Safety-net poll when idle.
    #[serde(with = "serde_human")]
    pub poll_interval: Duration,
    /// How long running jobs may take to finish on SIGTERM.
    #[serde(with = "serde_human")]
    pub shutdown_timeout: Duration,
    /// How often expired leases are rescued and due jobs promoted.
    #[serde(with = "serde_human")]
    pub maintenance_interval: Duration,
    /// When deadly outcomes stop a kind from being claimed on this node.
    pub breaker: BreakerSection,
}

/// `[worker.breaker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSection {
    /// Consecutive deadly outcomes of a kind that open its breaker.
    pub threshold: u32,
    /// First wait before a probe job; doubles after each failed probe.
    #[serde(with = "serde_human")]
    pub base: Duration,
    /// Longest wait before a probe job.
    #[serde(with = "serde_human")]
    pub max: Duration,
}

impl BreakerSection {
    /// The worker's breaker settings these stand for.
    pub fn config(&self) -> errand_worker::BreakerConfig {
        errand_worker::BreakerConfig {
            threshold: self.threshold,
            base: self.base,
            max: self.max,
        }
    }
}

impl Default for BreakerSection {
    fn default() -> Self {
        let d = errand_worker::BreakerConfig::default();
        BreakerSection {
            threshold: d.threshold,
            base: d.base,
            max: d.max,
        }
    }
}

impl Default for WorkerSection {
    fn default() -> Self {
        let w = errand_worker::WorkerConfig::default();
        let m = errand_worker::MaintenanceConfig::default();
        WorkerSection {
            enabled: true,
            name: None,
            lease: w.lease,
            heartbeat: w.heartbeat,
            poll_interval: w.poll_interval,
            shutdown_timeout: w.shutdown_timeout,
            maintenance_interval: m.interval,
            breaker: BreakerSection::default(),
        }
    }
}

/// `[sqlite]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteSection {
    /// `full` (default: an acknowledged job survives power loss), `normal` or `off`.
    pub synchronous: SyncMode,
}

/// `[postgres]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSection {
    /// Connections this node keeps at most (plus one for LISTEN).
    pub pool_size: usize,
    /// How long to wait for a new connection.
    #[serde(with = "serde_human")]
    pub connect_timeout: Duration,
    /// Test each pooled connection before use (one extra round trip).
    pub verify_connections: bool,
}

impl Default for PostgresSection {
    fn default() -> Self {
        let d = errand_postgres::PostgresOptions::default();
        PostgresSection {
            pool_size: d.pool_size,
            connect_timeout: d.connect_timeout,
            verify_connections: d.verify_connections,
        }
    }
}

/// Which engine a `database` URL names.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// SQLite's `synchronous` setting as written in the file.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync at every commit.
    #[default]
    Full,
    /// fsync at checkpoints only.
    Normal,
    /// never fsync.
    Off,
}

/// `[queues.NAME]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    /// Jobs of this queue run at once on this node.
    pub concurrency: usize,
}

/// Concurrency of a queue nobody configured.
pub const DEFAULT_CONCURRENCY: usize = 16;

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// `[kinds.NAME]`: how one kind of work is enqueued, run and retried.
/// Exactly one executor key (`command`, `pool`, `webhook`, `smtp`) is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSection {
    /// Program and arguments run per job (never through a shell).
    pub command: Option<Vec<String>>,
    /// A supervised pool of long-lived worker processes.
    pub pool: Option<PoolConfig>,
    /// An HTTP endpoint each job is POSTed to.
    pub webhook: Option<WebhookConfig>,
    /// An SMTP server each job's email is sent through.
    pub smtp: Option<SmtpConfig>,
    /// Working directory of the command (relative to the config file).
    pub cwd: Option<PathBuf>,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Command exit codes that fail the job at once (besides 64 and 65).
    pub permanent_exit_codes: Option<Vec<i32>>,
    /// Command exit codes meaning "infrastructure down" (besides 69).
    pub deadly_exit_codes: Option<Vec<i32>>,
    /// Command exit codes retried even though a default list names them.
    pub retry_exit_codes: Option<Vec<i32>>,
    /// Most command processes of this kind at once on this node.
    pub max_processes: Option<usize>,
    /// The only variables of errand's environment the command gets.
    pub env_allow: Option<Vec<String>>,
    /// Queue for new jobs.
    pub queue: Option<String>,
    /// Priority for new jobs (lower first).
    pub priority: Option<i16>,
    /// Attempts a job may use.
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt.
    #[serde(default, with = "serde_human::option")]
    pub timeout: Option<Duration>,
    /// Delay between attempts.
    pub backoff: Option<Backoff>,
    /// Most jobs of the kind running at once, on all nodes together.
    pub max_running: Option<u32>,
    /// Most starts of the kind per period on all nodes together, e.g. "14/s".
    pub rate: Option<Rate>,
    /// With a unique key, a new job is deduplicated against jobs of the
    /// kind created this long ago, even ended ones.
    #[serde(default, with = "serde_human::option")]
    pub unique_for: Option<Duration>,
}

impl KindSection {
    /// Checks that exactly one executor is configured, and that it is valid
    /// when run where it will run (`resolve` turns a configured working
    /// directory into the real one), so a program that cannot be found is
    /// refused at start-up.
    fn check_executor(&self, resolve: impl Fn(Option<&Path>) -> PathBuf) -> Result<(), String> {
        let set: Vec<&str> = [
            ("command", self.command.is_some()),
            ("pool", self.pool.is_some()),
            ("webhook", self.webhook.is_some()),
            ("smtp", self.smtp.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, on)| on.then_some(key))
        .collect();
        match set.as_slice() {
            [] => return Err("missing executor: set one of `command` (a process per job, e.g. command = [\"php\", \"bin/console\", \"app:job\"]), `pool`, `webhook` or `smtp`".into()),
            [_] => {}
            [a, b] => return Err(format!("both `{a}` and `{b}` are set: a kind has exactly one executor")),
            many => return Err(format!("`{}` are all set: a kind has exactly one executor", many.join("`, `"))),
        }
        match self.command_spec() {
            Some(spec) => CommandSpec {
                cwd: Some(resolve(spec.cwd.as_deref())),
                ..spec
            }
            .validate()
            .map_err(|e| e.to_string())?,
            None => self.check_no_command_keys(set[0])?,
        }
        let pool = self.pool.as_ref().map(|pool| PoolConfig {
            cwd: Some(resolve(pool.cwd.as_deref())),
            ..pool.clone()
        });
        let checks = [
            pool.as_ref().map(PoolConfig::validate),
            self.webhook.as_ref().map(WebhookConfig::validate),
            self.smtp.as_ref().map(SmtpConfig::validate),
        ];
        checks
            .into_iter()
            .flatten()
            .try_for_each(|r| r.map_err(|e| e.to_string()))
    }

    /// The command executor's spec, when this kind runs a command; `cwd`
    /// is as written (the caller resolves it against the config file).
    pub fn command_spec(&self) -> Option<CommandSpec> {
        Some(CommandSpec {
            argv: self.command.clone()?,
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            permanent_exit_codes: self.permanent_exit_codes.clone().unwrap_or_default(),
            deadly_exit_codes: self.deadly_exit_codes.clone().unwrap_or_default(),
            retry_exit_codes: self.retry_exit_codes.clone().unwrap_or_default(),
            max_processes: self.max_processes,
            env_allow: self.env_allow.clone(),
        })
    }

    /// Rejects the command-only keys on a kind run by another `executor`.
    fn check_no_command_keys(&self, executor: &str) -> Result<(), String> {
        let set = [
            ("permanent_exit_codes", self.permanent_exit_codes.is_some()),
            ("deadly_exit_codes", self.deadly_exit_codes.is_some()),
            ("retry_exit_codes", self.retry_exit_codes.is_some()),
            ("max_processes", self.max_processes.is_some()),
            ("env_allow", self.env_allow.is_some()),
        ];
        match set.into_iter().find(|(_, on)| *on) {
            Some(("env_allow", _)) if executor == "pool" => Err(
                "env_allow: for a pool, set it in the pool's table: pool = { command = [...], env_allow = [...] }".into(),
            ),
            Some((key, _)) => Err(format!(
                "{key}: only valid with `command`, but this kind uses `{executor}`"
            )),
            None => Ok(()),
        }
    }

    /// The enqueue and retry policy this section describes.
    pub fn policy(&self) -> KindPolicy {
        let d = KindPolicy::default();
        KindPolicy {
            queue: self.queue.clone().unwrap_or(d.queue),
            priority: self.priority.unwrap_or(d.priority),
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            timeout: self.timeout.or(d.timeout),
            backoff: self.backoff.unwrap_or(d.backoff),
            unique_for: self.unique_for,
            limit: KindLimit {
                max_running: self.max_running,
                rate: self.rate,
            },
        }
    }
}

impl Config {
    /// Reads `path`, or the defaults when there is none.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config =
            Config::parse(&text).with_context(|| format!("config file {}", path.display()))?;
        config.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        config
            .validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    /// Parses the file's text. Each kind is read on its own so that an
    /// error names the kind it is about.
    fn parse(text: &str) -> Result<Config> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        let kinds = match table.remove("kinds") {
            None => toml::Table::new(),
            Some(toml::Value::Table(kinds)) => kinds,
            Some(_) => bail!("`kinds` must be a table of [kinds.NAME] sections"),
        };
        let mut config: Config = table.try_into().map_err(|e| top_level_error(&e))?;
        for (name, value) in kinds {
            // The key meant a global limit while `[queues.X] concurrency` is
            // per node; refuse it by name rather than as an unknown field.
            if value.get("concurrency").is_some() {
                bail!(
                    "[kinds.{name}] concurrency: renamed to max_running (the most jobs of the kind running at once across all nodes); [queues.NAME] concurrency is the per-node setting"
                );
            }
            let kind = KindSection::deserialize(value).map_err(|e| key_error(&name, &e))?;
            config.kinds.insert(name, kind);
        }
        Ok(config)
    }

    /// Checks what TOML types alone cannot.
    pub fn validate(&self) -> Result<()> {
        self.server.validate()?;
        for (name, kind) in &self.kinds {
            errand_core::job::check_name("kind", name)
                .map_err(|e| anyhow!("[kinds.{name}]: {}", e.message))?;
            kind.check_executor(|dir| self.resolve(dir))
                .map_err(|e| anyhow!("[kinds.{name}] {e}"))?;
            kind.policy()
                .validate()
                .map_err(|e| anyhow!("[kinds.{name}] {e}"))?;
        }
        self.validate_events()?;
        self.schedules()?;
        for (name, q) in &self.queues {
            errand_core::job::check_name("queue", name)
                .map_err(|e| anyhow!("[queues.{name}]: {}", e.message))?;
            if q.concurrency == 0 {
                bail!("[queues.{name}] concurrency: must be at least 1");
            }
        }
        self.worker
            .breaker
            .config()
            .validate()
            .map_err(|e| anyhow!("[worker.breaker] {e}"))?;
        self.validate_worker_times()
    }

    /// The `[worker]` durations the runtime needs non-zero and in order.
    fn validate_worker_times(&self) -> Result<()> {
        let w = &self.worker;
        if w.lease < MIN_LEASE {
            bail!(
                "[worker] lease: must be at least {} (got {})",
                errand_core::duration::format(MIN_LEASE),
                errand_core::duration::format(w.lease)
            );
        }
        for (key, d) in [
            ("heartbeat", w.heartbeat),
            ("poll_interval", w.poll_interval),
            ("maintenance_interval", w.maintenance_interval),
        ] {
            if d.is_zero() {
                bail!("[worker] {key}: must be greater than zero");
            }
        }
        if w.lease <= w.heartbeat {
            bail!(
                "[worker] lease ({}) must be longer than heartbeat ({})",
                errand_core::duration::format(w.lease),
                errand_core::duration::format(w.heartbeat)
            );
        }
        Ok(())
    }

    /// Checks that every event is a valid name and its listeners are
    /// configured kinds, each listed once.
    fn validate_events(&self) -> Result<()> {
        for (name, event) in &self.events {
            errand_core::job::check_name("event", name)
                .map_err(|e| anyhow!("[events.{name:?}]: {}", e.message))?;
            for (i, kind) in event.listeners.iter().enumerate() {
                if !self.kinds.contains_key(kind) {
                    bail!(
                        "[events.{name:?}] listeners: {kind:?} is not a configured kind (configured: {})",
                        self.kind_list()
                    );
                }
                if event.listeners[..i].contains(kind) {
                    bail!("[events.{name:?}] listeners: {kind:?} is listed twice");
                }
            }
        }
        Ok(())
    }

    /// The configured kinds for a message: "a, b", or "none".
    fn kind_list(&self) -> String {
        if self.kinds.is_empty() {
            return "none".to_string();
        }
        self.kinds.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The `[[schedules]]`, checked: cron expression, time zone, a
    /// configured kind, a name used once. Errors name the schedule.
    pub fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut parsed: Vec<Schedule> = Vec::with_capacity(self.schedules.len());
        for spec in &self.schedules {
            let s = Schedule::parse(spec.clone()).map_err(|e| anyhow!("[[schedules]] {e}"))?;
            if !self.kinds.contains_key(&s.kind) {
                bail!(
                    "[[schedules]] schedule {:?}: kind {:?} is not a configured kind (configured: {})",
                    s.name,
                    s.kind,
                    self.kind_list()
                );
            }
            if parsed.iter().any(|p| p.name == s.name) {
                bail!(
                    "[[schedules]] schedule {:?}: the name is used twice",
                    s.name
                );
            }
            parsed.push(s);
        }
        Ok(parsed)
    }

    /// Each event's listener kinds, for the API.
    pub fn event_listeners(&self) -> BTreeMap<String, Vec<String>> {
        self.events
            .iter()
            .map(|(name, e)| (name.clone(), e.listeners.clone()))
            .collect()
    }

    /// The engine and location named by `database`; relative SQLite paths
    /// resolve against the config file's directory.
    pub fn database(&self) -> Result<Database> {
        let url = self.database.as_str();
        let shown = errand_core::redact::urls(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                anyhow!(
                    "database {shown:?}: unsupported URL; use sqlite://PATH (e.g. sqlite://errand.db) or postgres://USER:PASSWORD@HOST:PORT/DB"
                )
            })?;
        if path.is_empty() {
            bail!("database {shown:?}: missing file path");
        }
        let path = Path::new(path);
        Ok(Database::Sqlite(
            if path.is_absolute() || self.database_from_cli {
                path.to_path_buf()
            } else {
                self.base_dir.join(path)
            },
        ))
    }

    /// Each kind's policy, for the API's defaults and its list of known kinds.
    pub fn policies(&self) -> BTreeMap<String, KindPolicy> {
        self.kinds
            .iter()
            .map(|(n, k)| (n.clone(), k.policy()))
            .collect()
    }

    /// Queue concurrency for this node: the configured queues plus every
    /// queue a kind sends jobs to, so no configured kind is left unserved.
    pub fn queue_concurrency(&self) -> BTreeMap<String, usize> {
        let mut queues: BTreeMap<String, usize> = self
            .queues
            .iter()
            .map(|(n, q)| (n.clone(), q.concurrency))
            .collect();
        for kind in self.kinds.values() {
            let queue = kind
                .queue
                .clone()
                .unwrap_or_else(|| DEFAULT_QUEUE.to_string());
            queues.entry(queue).or_insert(DEFAULT_CONCURRENCY);
        }
        if self.only_listed_queues {
            queues.retain(|q, _| self.queues.contains_key(q));
        } else {
            queues
                .entry(DEFAULT_QUEUE.to_string())
                .or_insert(DEFAULT_CONCURRENCY);
        }
        queues
    }

    /// Limits this node to `queues` (each must be served by some kind or
    /// configured), optionally overriding their concurrency.
    pub fn restrict_queues(&mut self, queues: &[String], concurrency: Option<usize>) -> Result<()> {
        let known = self.queue_concurrency();
        let mut chosen = BTreeMap::new();
        for q in queues {
            let Some(&c) = known.get(q) else {
                bail!(
                    "--queues: unknown queue {q:?}; configured queues: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            if concurrency == Some(0) {
                bail!("--concurrency: must be at least 1");
            }
            chosen.insert(
                q.clone(),
                QueueSection {
                    concurrency: concurrency.unwrap_or(c),
                },
            );
        }
        self.kinds
            .retain(|_, k| chosen.contains_key(k.queue.as_deref().unwrap_or(DEFAULT_QUEUE)));
        self.queues = chosen;
        self.only_listed_queues = true;
        Ok(())
    }

    /// The database for messages, its password masked
    /// (`postgres://user:secret@host/db` shows as `postgres://user:***@host/db`)
    /// and a SQLite file shown by the absolute path it resolves to, so a
    /// reader sees which file is used whatever the working directory.
    pub fn database_label(&self) -> String {
        match self.database() {
            Ok(Database::Sqlite(path)) => {
                let path = std::path::absolute(&path).unwrap_or(path);
                format!("sqlite://{}", path.display())
            }
            _ => errand_core::redact::urls(&self.database),
        }
    }

    /// A working directory as configured: the config file's directory when
    /// none is given, relative paths resolved against it.
    pub fn resolve(&self, dir: Option<&Path>) -> PathBuf {
        match dir {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => self.base_dir.join(dir),
            None => self.base_dir.clone(),
        }
    }
}

/// A TOML error split into why and the dotted key it names (the message
/// ends with "in `KEY`" when it knows).
fn split_key(e: &toml::de::Error) -> (String, Option<String>) {
    let text = e.to_string();
    let text = text.trim_end();
    match text.rsplit_once("\nin `") {
        Some((why, key)) if key.ends_with('`') => {
            (why.to_string(), Some(key.trim_end_matches('`').to_string()))
        }
        _ => (text.to_string(), None),
    }
}

/// A `[kinds.NAME]` section that does not deserialize, as "[kinds.NAME] KEY:
/// why" when the TOML error says which key.
fn key_error(kind: &str, e: &toml::de::Error) -> anyhow::Error {
    match split_key(e) {
        (why, Some(key)) => anyhow!("[kinds.{kind}] {key}: {why}"),
        (why, None) => anyhow!("[kinds.{kind}]: {why}"),
    }
}

/// Any other key that does not deserialize, on one line as "[SECTION] KEY:
/// why" (or "KEY: why" at the top level).
fn top_level_error(e: &toml::de::Error) -> anyhow::Error {
    match split_key(e) {
        (why, Some(path)) => match path.rsplit_once('.') {
            Some((section, key)) => anyhow!("[{section}] {key}: {why}"),
            None => anyhow!("{path}: {why}"),
        },
        (why, None) => anyhow!("{why}"),
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("errand.toml");
        std::fs::write(&path, text)?;
        Config::load(Some(&path))
    }

    #[test]
    fn a_bad_breaker_names_the_condition_that_failed() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(
            err("[worker.breaker]\nthreshold = 0")
                .contains("[worker.breaker] threshold: must be at least 1")
        );
        assert!(
            err("[worker.breaker]\nbase = \"0s\"")
                .contains("[worker.breaker] base: must be greater than zero")
        );
        let e = err("[worker.breaker]\nbase = \"10s\"\nmax = \"1s\"");
        assert!(
            e.contains("[worker.breaker] max: must be at least base (10s), got 1s"),
            "{e}"
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:7070");
        assert!(matches!(c.database().unwrap(), Database::Sqlite(p) if p.ends_with("errand.db")));
        assert_eq!(
            c.queue_concurrency().get("default"),
            Some(&DEFAULT_CONCURRENCY)
        );
    }

    #[test]
    fn kinds_and_queues_are_read() {
        let c = parse(
            r#"
            [queues.media]
            concurrency = 3
            [kinds.resize]
            command = ["php", "bin/console", "app:resize"]
            queue = "media"
            max_attempts = 5
            timeout = "2m"
            backoff = { base = "2s", max = "1m" }
            [kinds.mail]
            command = ["true"]
            queue = "mail"
            "#,
        )
        .unwrap();
        let p = &c.policies()["resize"];
        assert_eq!((p.queue.as_str(), p.max_attempts), ("media", 5));
        assert_eq!(p.timeout, Some(Duration::from_secs(120)));
        assert_eq!(p.backoff.base, Duration::from_secs(2));
        let q = c.queue_concurrency();
        assert_eq!(
            (q["media"], q["mail"], q["default"]),
            (3, DEFAULT_CONCURRENCY, DEFAULT_CONCURRENCY)
        );
    }

    #[test]
    fn bad_files_name_the_kind_and_key() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("[kinds.resize]\nqueue = \"x\"").contains("[kinds.resize] missing executor"));
        let e = err(
            "[kinds.r]\ncommand = [\"true\"]\nwebhook = { url = \"http://127.0.0.1:1/\", secret = \"s\" }",
        );
        assert!(
            e.contains("both `command` and `webhook` are set: a kind has exactly one executor"),
            "{e}"
        );
        let e = err("[kinds.hook]\nwebhook = { url = \"not a url\", secret = \"s\" }");
        assert!(
            e.contains("[kinds.hook]") && e.contains("webhook.url"),
            "{e}"
        );
        let e = err("[kinds.rep]\npool = { command = [\"python3\"], procesess = 2 }");
        assert!(e.contains("[kinds.rep]") && e.contains("procesess"), "{e}");
        let e = err("[kinds.resize]\ncommand = [\"true\"]\ntimout = \"1s\"");
        assert!(e.contains("timout") && e.contains("resize"), "{e}");
        let e = err("[kinds.resize]\ncommand = [\"true\"]\ntimeout = \"soon\"");
        assert!(
            e.contains("invalid duration") && e.contains("resize"),
            "{e}"
        );
        assert!(err("[queues.q]\nconcurrency = 0").contains("[queues.q] concurrency"));
        assert!(err("[server]\nbody_limit = \"12 parsecs\"").contains("invalid size"));
    }

    #[test]
    fn extreme_durations_are_refused_on_one_line_naming_the_key() {
        let kind = "[kinds.k]\ncommand = [\"true\"]\n";
        let keys = [
            ("[worker]\n", "lease", "[worker] lease"),
            ("[worker]\n", "heartbeat", "[worker] heartbeat"),
            ("[worker]\n", "poll_interval", "[worker] poll_interval"),
            (
                "[worker]\n",
                "shutdown_timeout",
                "[worker] shutdown_timeout",
            ),
            (
                "[worker]\n",
                "maintenance_interval",
                "[worker] maintenance_interval",
            ),
            ("[worker.breaker]\n", "base", "[worker.breaker] base"),
            ("[worker.breaker]\n", "max", "[worker.breaker] max"),
            ("[server]\n", "max_wait", "[server] max_wait"),
            (
                "[postgres]\n",
                "connect_timeout",
                "[postgres] connect_timeout",
            ),
            ("[retention]\n", "completed", "[retention] completed"),
            ("[retention]\n", "failed", "[retention] failed"),
            ("[retention]\n", "cancelled", "[retention] cancelled"),
            (kind, "timeout", "[kinds.k] timeout"),
            (kind, "unique_for", "[kinds.k] unique_for"),
            (kind, "backoff.base", "[kinds.k] backoff.base"),
            (kind, "backoff.max", "[kinds.k] backoff.max"),
        ];
        let values = [
            "1e20",
            "1e300",
            "-1",
            "\"1e20\"",
            "\"-1\"",
            "\"NaN\"",
            "nan",
            "inf",
            "\"9999999999999d\"",
            "\"36501d\"",
            "9223372036854775807",
        ];
        for (section, key, named) in keys {
            for value in values {
                let line = match key.split_once('.') {
                    Some((table, k)) => format!("{table} = {{ {k} = {value} }}"),
                    None => format!("{key} = {value}"),
                };
                let text = format!("{section}{line}\n");
                let e = format!("{:#}", parse(&text).unwrap_err());
                assert!(
                    e.contains(&format!("{named}: invalid duration")),
                    "{text}: {e}"
                );
                assert!(!e.contains('\n'), "{text}: {e}");
            }
        }
    }

    #[test]
    fn worker_times_must_be_usable() {
        let err = |t: &str| format!("{:#}", parse(&format!("[worker]\n{t}")).unwrap_err());
        let e = err("lease = \"500ms\"\nheartbeat = \"100ms\"");
        assert!(
            e.contains("[worker] lease: must be at least 1s (got 500ms)"),
            "{e}"
        );
        for key in ["heartbeat", "poll_interval", "maintenance_interval"] {
            let e = err(&format!("{key} = 0"));
            assert!(
                e.contains(&format!("[worker] {key}: must be greater than zero")),
                "{e}"
            );
        }
        let e = err("lease = \"36500d\"\nheartbeat = \"36500d\"");
        assert!(e.contains("must be longer than heartbeat"), "{e}");
        assert!(parse("[worker]\nlease = \"36500d\"\nshutdown_timeout = \"36500d\"").is_ok());
    }

    #[test]
    fn backoff_that_cannot_be_meant_is_refused() {
        let err = |b: &str| {
            let text = format!("[kinds.k]\ncommand = [\"true\"]\nbackoff = {{ {b} }}\n");
            format!("{:#}", parse(&text).unwrap_err())
        };
        let e = err("base = \"10s\", max = \"1s\", jitter = 5.0");
        assert!(
            e.contains("[kinds.k] backoff.base: must be at most backoff.max (1s), got 10s"),
            "{e}"
        );
        for jitter in ["5.0", "-0.5", "nan", "inf"] {
            let e = err(&format!("jitter = {jitter}"));
            assert!(
                e.contains("[kinds.k] backoff.jitter: must be from 0"),
                "{e}"
            );
        }
        let ok = parse(
            "[kinds.k]\ncommand = [\"true\"]\nbackoff = { base = \"0s\", max = \"0s\", jitter = 1.0 }",
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn command_keys_are_read() {
        let c = parse(
            r#"
            [kinds.import]
            command = ["php", "bin/import.php"]
            permanent_exit_codes = [3]
            deadly_exit_codes = [4, 5]
            retry_exit_codes = [64]
            max_processes = 2
            env_allow = ["HOME", "APP_ENV"]
            "#,
        )
        .unwrap();
        let spec = c.kinds["import"].command_spec().unwrap();
        assert_eq!(
            (
                spec.permanent_exit_codes,
                spec.deadly_exit_codes,
                spec.retry_exit_codes
            ),
            (vec![3], vec![4, 5], vec![64])
        );
        assert_eq!(spec.max_processes, Some(2));
        assert_eq!(
            spec.env_allow,
            Some(vec!["HOME".to_string(), "APP_ENV".to_string()])
        );
        let spec = parse("[kinds.a]\ncommand = [\"true\"]\n").unwrap().kinds["a"]
            .command_spec()
            .unwrap();
        assert_eq!((spec.max_processes, spec.env_allow), (None, None));
    }

    #[test]
    fn missing_programs_are_refused_at_start_up() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err("[kinds.x]\ncommand = [\"nope\", \"arg\"]");
        assert!(
            e.contains("[kinds.x] command: program \"nope\" not found"),
            "{e}"
        );
        let e = err("[kinds.x]\ncommand = [\"./worker.sh\"]");
        assert!(
            e.contains("[kinds.x] command: program \"./worker.sh\" not found"),
            "{e}"
        );
        let e = err("[kinds.x]\npool = { command = [\"nope\"] }");
        assert!(
            e.contains("[kinds.x] pool.command: program \"nope\" not found"),
            "{e}"
        );

        // Relative paths are found where the job runs: the kind's `cwd`,
        // itself relative to the config file, whatever errand's own directory.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/work.sh"), "").unwrap();
        let path = dir.path().join("errand.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::load(Some(&path))
                .map(drop)
                .map_err(|e| format!("{e:#}"))
        };
        load("[kinds.a]\ncommand = [\"./bin/work.sh\"]").unwrap();
        load("[kinds.a]\ncommand = [\"./work.sh\"]\ncwd = \"bin\"").unwrap();
        load("[kinds.a]\npool = { command = [\"./bin/work.sh\"] }").unwrap();
        load("[kinds.a]\npool = { command = [\"./work.sh\"], cwd = \"bin\" }").unwrap();
        let e = load("[kinds.a]\ncommand = [\"./work.sh\"]").unwrap_err();
        assert!(e.contains("program \"./work.sh\" not found"), "{e}");
    }

    #[test]
    fn the_tour_example_configures_every_readme_section() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tour.toml");
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(
            c.event_listeners()["comment.created"],
            ["email_subscribers", "reindex_post"]
        );
        assert!(c.kinds["report_part"].pool.is_some());
        assert!(c.kinds.contains_key("report_done") && c.kinds.contains_key("echo"));
        assert_eq!(c.schedules().unwrap().len(), 1);
    }

    #[test]
    fn bad_command_keys_name_the_kind_and_key() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err(
            "[kinds.imp]\ncommand = [\"true\"]\npermanent_exit_codes = [3]\ndeadly_exit_codes = [3]",
        );
        assert!(
            e.contains(
                "[kinds.imp] deadly_exit_codes: exit code 3 is also in permanent_exit_codes"
            ),
            "{e}"
        );
        let e = err("[kinds.imp]\ncommand = [\"true\"]\nretry_exit_codes = [0]");
        assert!(
            e.contains("[kinds.imp] retry_exit_codes: 0 means success"),
            "{e}"
        );
        let e = err("[kinds.imp]\ncommand = [\"true\"]\ndeadly_exit_codes = [300]");
        assert!(
            e.contains("[kinds.imp] deadly_exit_codes: 300 is not an exit code"),
            "{e}"
        );
        let e = err("[kinds.imp]\ncommand = [\"true\"]\nmax_processes = 0");
        assert!(
            e.contains("[kinds.imp] max_processes: must be at least 1"),
            "{e}"
        );
        let e = err("[kinds.imp]\ncommand = [\"true\"]\nmax_processes = -1");
        assert!(
            e.contains("[kinds.imp]") && e.contains("max_processes"),
            "{e}"
        );
        let e = err("[kinds.imp]\ncommand = [\"true\"]\nenv_allow = [\"A=B\"]");
        assert!(e.contains("[kinds.imp] env_allow: \"A=B\" is not"), "{e}");
        let e = err(
            "[kinds.hook]\nwebhook = { url = \"http://127.0.0.1:1/\", secret = \"s\" }\nmax_processes = 2",
        );
        assert!(
            e.contains("[kinds.hook] max_processes: only valid with `command`, but this kind uses `webhook`"),
            "{e}"
        );
        let e = err("[kinds.rep]\npool = { command = [\"python3\"] }\ndeadly_exit_codes = [69]");
        assert!(
            e.contains("[kinds.rep] deadly_exit_codes: only valid with `command`, but this kind uses `pool`"),
            "{e}"
        );
        let e = err("[kinds.rep]\npool = { command = [\"python3\"] }\nenv_allow = [\"HOME\"]");
        assert!(
            e.contains("[kinds.rep] env_allow: for a pool, set it in the pool's table"),
            "{e}"
        );
        let e = err("[kinds.rep]\npool = { command = [\"python3\"], env_allow = [\"A=B\"] }");
        assert!(
            e.contains("[kinds.rep] pool.env_allow: \"A=B\" is not"),
            "{e}"
        );
    }

    #[test]
    fn database_url_names_the_engine() {
        let with = |url: &str| {
            Config {
                database: url.into(),
                ..Config::default()
            }
            .database()
        };
        assert!(
            with("mysql://x")
                .unwrap_err()
                .to_string()
                .contains("sqlite://PATH")
        );
        let refused = with("mysql://root:hunter2@db/app").unwrap_err().to_string();
        assert!(refused.contains("mysql://root:***@db/app"), "{refused}");
        assert!(!refused.contains("hunter2"), "{refused}");
        assert_eq!(
            with("sqlite:///tmp/x.db").unwrap(),
            Database::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(
            with("postgres://u:p@h/db").unwrap(),
            Database::Postgres("postgres://u:p@h/db".into())
        );
    }

    #[test]
    fn database_label_hides_the_password() {
        let c = Config {
            database: "postgres://errand:s3cret@db:5432/jobs".into(),
            ..Config::default()
        };
        assert_eq!(c.database_label(), "postgres://errand:***@db:5432/jobs");
        let c = Config {
            database: "sqlite://errand.db".into(),
            base_dir: "/srv/app".into(),
            ..Config::default()
        };
        assert_eq!(c.database_label(), "sqlite:///srv/app/errand.db");
        let c = Config {
            database: "sqlite://errand.db".into(),
            base_dir: "conf".into(),
            ..Config::default()
        };
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            c.database_label(),
            format!("sqlite://{}", cwd.join("conf/errand.db").display())
        );
    }

    #[test]
    fn work_can_be_limited_to_some_queues() {
        let mut c = parse(
            "[kinds.a]\ncommand=[\"true\"]\nqueue=\"qa\"\n[kinds.b]\ncommand=[\"true\"]\nqueue=\"qb\"\n",
        )
        .unwrap();
        c.restrict_queues(&["qb".to_string()], Some(3)).unwrap();
        assert_eq!(
            c.queue_concurrency(),
            BTreeMap::from([("qb".to_string(), 3)])
        );
        assert_eq!(c.kinds.keys().collect::<Vec<_>>(), ["b"]);
        let err = c
            .restrict_queues(&["nope".to_string()], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown queue"), "{err}");
    }

    #[test]
    fn limits_and_unique_for_are_read() {
        let c = parse(
            "[kinds.email]\ncommand = [\"true\"]\nmax_running = 4\nrate = \"14/s\"\nunique_for = \"1h\"\n[kinds.report]\ncommand = [\"true\"]\nrate = \"100/m\"\n",
        )
        .unwrap();
        let p = &c.policies()["email"];
        assert_eq!(p.limit.max_running, Some(4));
        assert_eq!(p.limit.rate, Some("14/s".parse().unwrap()));
        assert_eq!(p.unique_for, Some(Duration::from_secs(3600)));
        let p = &c.policies()["report"];
        assert_eq!(p.limit.rate.unwrap().per, Duration::from_secs(60));
        assert_eq!((p.limit.max_running, p.unique_for), (None, None));
    }

    #[test]
    fn bad_limits_name_the_kind_and_key() {
        let err = |extra: &str| {
            let e = parse(&format!("[kinds.email]\ncommand = [\"true\"]\n{extra}\n")).unwrap_err();
            format!("{e:#}")
        };
        for (extra, expected) in [
            (
                "max_running = 0",
                "[kinds.email] max_running: must be at least 1",
            ),
            (
                "max_running = -2",
                "[kinds.email] max_running: invalid value",
            ),
            (
                "max_running = \"4\"",
                "[kinds.email] max_running: invalid type",
            ),
            (
                "concurrency = 4",
                "[kinds.email] concurrency: renamed to max_running (the most jobs of the kind running at once across all nodes); [queues.NAME] concurrency is the per-node setting",
            ),
            ("rate = \"14\"", "[kinds.email] rate: invalid rate \"14\""),
            ("rate = \"0/s\"", "[kinds.email] rate: invalid rate \"0/s\""),
            ("rate = \"14/week\"", "[kinds.email] rate: invalid rate"),
            (
                "unique_for = \"soon\"",
                "[kinds.email] unique_for: invalid duration",
            ),
            (
                "unique_for = \"0s\"",
                "[kinds.email] unique_for: must be greater than zero",
            ),
        ] {
            let e = err(extra);
            assert!(e.contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn events_are_read_with_their_listeners() {
        let c = parse(
            r#"
            [server]
            record_unknown_events = true
            [kinds.email_subscribers]
            command = ["true"]
            [kinds.reindex_post]
            command = ["true"]
            [events."comment.created"]
            listeners = ["reindex_post", "email_subscribers"]
            [events."post.deleted"]
            listeners = []
            "#,
        )
        .unwrap();
        assert!(c.server.record_unknown_events);
        let events = c.event_listeners();
        assert_eq!(
            events["comment.created"],
            ["reindex_post", "email_subscribers"]
        );
        assert!(events["post.deleted"].is_empty());
        assert!(!parse("").unwrap().server.record_unknown_events);
    }

    #[test]
    fn bad_events_name_the_event_and_kind() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err(
            "[kinds.email]\ncommand = [\"true\"]\n[events.\"comment.created\"]\nlisteners = [\"email\", \"reindex\"]",
        );
        assert!(
            e.contains(r#"[events."comment.created"] listeners: "reindex" is not a configured kind (configured: email)"#),
            "{e}"
        );
        let e = err(
            "[kinds.email]\ncommand = [\"true\"]\n[events.\"c\"]\nlisteners = [\"email\", \"email\"]",
        );
        assert!(
            e.contains(r#"[events."c"] listeners: "email" is listed twice"#),
            "{e}"
        );
        let e = err("[events.\"comment created\"]\nlisteners = []");
        assert!(e.contains(r#"[events."comment created"]"#), "{e}");
        let e = err("[events.c]\nlistener = []");
        assert!(e.contains("listener"), "{e}");
    }

    #[test]
    fn schedules_are_read_and_bad_ones_name_the_schedule() {
        let kind = "[kinds.cleanup]\ncommand = [\"true\"]\n";
        let c = parse(&format!(
            "{kind}[[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\nkind = \"cleanup\"\ntimezone = \"Europe/Berlin\"\ncatch_up = true\n"
        ))
        .unwrap();
        let s = &c.schedules().unwrap()[0];
        assert_eq!(
            (s.name.as_str(), s.timezone(), s.catch_up),
            ("nightly", "Europe/Berlin", true)
        );
        let err = |entry: &str| {
            format!(
                "{:#}",
                parse(&format!("{kind}[[schedules]]\n{entry}")).unwrap_err()
            )
        };
        let e = err("name = \"n\"\ncron = \"0 3 * *\"\nkind = \"cleanup\"");
        assert!(e.contains("schedule \"n\": cron \"0 3 * *\""), "{e}");
        let e = err("name = \"n\"\ncron = \"0 3 * * *\"\nkind = \"vacuum\"");
        assert!(
            e.contains(
                "schedule \"n\": kind \"vacuum\" is not a configured kind (configured: cleanup)"
            ),
            "{e}"
        );
        let e = err(
            "name = \"n\"\ncron = \"0 3 * * *\"\nkind = \"cleanup\"\ntimezone = \"Nowhere/City\"",
        );
        assert!(
            e.contains("schedule \"n\": timezone \"Nowhere/City\""),
            "{e}"
        );
        let e = err(
            "name = \"n\"\ncron = \"0 3 * * *\"\nkind = \"cleanup\"\n[[schedules]]\nname = \"n\"\ncron = \"0 4 * * *\"\nkind = \"cleanup\"",
        );
        assert!(e.contains("schedule \"n\": the name is used twice"), "{e}");
    }

    #[test]
    fn server_connection_bounds() {
        let c = parse(
            r#"
            [server]
            max_connections = 20
            header_read_timeout = "2s"
            idle_timeout = "30s"
            body_grace = "5s"
            body_min_rate = "1KiB"
            "#,
        )
        .unwrap();
        let limits = c.server.connections(1024);
        assert_eq!(limits.max_connections, 20);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(2));
        assert_eq!(limits.idle_timeout, Duration::from_secs(30));
        assert_eq!(limits.body_grace, Duration::from_secs(5));
        assert_eq!(limits.body_min_rate, 1024);
        // Unset, the cap follows the open-files limit.
        assert_eq!(
            parse("").unwrap().server.connections(1024).max_connections,
            512
        );
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("[server]\nmax_connections = 0").contains("[server] max_connections"));
        assert!(
            err("[server]\nheader_read_timeout = \"0s\"").contains("[server] header_read_timeout")
        );
        assert!(err("[server]\nidle_timeout = \"soon\"").contains("idle_timeout"));
        assert!(err("[server]\nbody_min_rate = 0").contains("[server] body_min_rate"));
    }
}
