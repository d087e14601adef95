//! The configuration file (TOML) as an operator writes it. Each section is
//! the settings type of the library it configures (`[server]` is
//! errand-server's, `[worker]` errand-worker's, `[sqlite]`/`[postgres]` the
//! engines'), so a setting's name, default and check live there; this module
//! only reads the file and names the section in errors. [`crate::plan`]
//! then resolves the file, flags and environment into the node's plan.

use anyhow::{Context, Result, anyhow, bail};
use errand_core::duration::serde_human;
use errand_core::limit::{KindLimit, Rate};
use errand_core::schedule::ScheduleSpec;
use errand_core::{Backoff, KindPolicy, Retention};
use errand_executors::command::CommandSpec;
use errand_executors::email::SmtpConfig;
use errand_executors::pool::PoolConfig;
use errand_executors::webhook::WebhookConfig;
use errand_postgres::PostgresOptions;
use errand_server::{GearmanSettings, ServerSettings};
use errand_sqlite::SqliteOptions;
use errand_worker::WorkerSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database a node uses when nothing names one.
pub const DEFAULT_DATABASE: &str = "sqlite://errand.db";

/// The HTTP address a node listens on when nothing names one.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Where jobs live: `sqlite://PATH` or `postgres://…`.
    pub database: String,
    /// Address of the HTTP API.
    pub listen: String,
    /// `[server]`: HTTP API settings.
    pub server: ServerSettings,
    /// `[gearman]`: the Gearman listener (off by default).
    pub gearman: GearmanSettings,
    /// `[worker]`: in-process worker settings.
    pub worker: WorkerSettings,
    /// `[sqlite]`: SQLite engine settings.
    pub sqlite: SqliteOptions,
    /// `[postgres]`: PostgreSQL engine settings.
    pub postgres: PostgresOptions,
    /// `[retention]`: how long terminal jobs are kept.
    pub retention: Retention,
    /// `[queues.NAME]`: queues and their per-node concurrency.
    pub queues: BTreeMap<String, QueueSection>,
    /// `[kinds.NAME]`: kinds of work and how each runs.
    pub kinds: BTreeMap<String, KindSection>,
    /// `[events."NAME"]`: events and the kinds that listen to each.
    pub events: BTreeMap<String, EventSection>,
    /// `[[schedules]]`: cron schedules, each enqueueing a kind.
    pub schedules: Vec<ScheduleSpec>,
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            database: DEFAULT_DATABASE.into(),
            listen: DEFAULT_LISTEN.into(),
            server: ServerSettings::default(),
            gearman: GearmanSettings::default(),
            worker: WorkerSettings::default(),
            sqlite: SqliteOptions::default(),
            postgres: PostgresOptions::default(),
            retention: Retention::default(),
            queues: BTreeMap::new(),
            kinds: BTreeMap::new(),
            events: BTreeMap::new(),
            schedules: Vec::new(),
        }
    }
}

/// `[events."NAME"]`: the kinds that get a job each time the event is published.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSection {
    /// Configured kinds, one job each, in this order.
    pub listeners: Vec<String>,
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
/// Exactly one executor key (`command`, `pool`, `webhook`, `smtp`, or
/// `remote = true` for remote workers) is set.
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
    /// Run by remote workers over the HTTP worker protocol
    /// (docs/worker-protocol.md) instead of an executor of this node.
    #[serde(default)]
    pub remote: bool,
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

/// A kind's executor, its working directory resolved and its settings checked.
#[derive(Debug, Clone)]
pub enum ExecutorSpec {
    /// A process per job.
    Command(CommandSpec),
    /// A supervised pool of long-lived processes.
    Pool(PoolConfig),
    /// An HTTP endpoint.
    Webhook(WebhookConfig),
    /// An SMTP server.
    Smtp(SmtpConfig),
    /// Remote workers claim the jobs over HTTP: nothing runs on this node.
    Remote,
}

impl KindSection {
    /// The one executor this kind names, valid where it will run
    /// (`resolve` turns a configured working directory into the real one),
    /// so a program that cannot be found is refused at start-up.
    pub fn executor(
        &self,
        resolve: impl Fn(Option<&Path>) -> PathBuf,
    ) -> Result<ExecutorSpec, String> {
        let set: Vec<&str> = [
            ("command", self.command.is_some()),
            ("pool", self.pool.is_some()),
            ("webhook", self.webhook.is_some()),
            ("smtp", self.smtp.is_some()),
            ("remote", self.remote),
        ]
        .into_iter()
        .filter_map(|(key, on)| on.then_some(key))
        .collect();
        match set.as_slice() {
            [] => return Err("missing executor: set one of `command` (a process per job, e.g. command = [\"php\", \"bin/console\", \"app:job\"]), `pool`, `webhook`, `smtp`, or `remote = true` for remote workers".into()),
            [_] => {}
            [a, "remote"] => return Err(format!("both `{a}` and `remote = true` are set: a kind runs either on this node's `{a}` or on remote workers, not both")),
            [a, b] => return Err(format!("both `{a}` and `{b}` are set: a kind has exactly one executor")),
            many => return Err(format!("`{}` are all set: a kind has exactly one executor", many.join("`, `"))),
        }
        if let Some(spec) = self.command_spec() {
            let spec = CommandSpec {
                cwd: Some(resolve(spec.cwd.as_deref())),
                ..spec
            };
            spec.validate().map_err(|e| e.to_string())?;
            return Ok(ExecutorSpec::Command(spec));
        }
        self.check_no_command_keys(set[0])?;
        let spec = if let Some(pool) = &self.pool {
            let pool = PoolConfig {
                cwd: Some(resolve(pool.cwd.as_deref())),
                ..pool.clone()
            };
            pool.validate().map_err(|e| e.to_string())?;
            ExecutorSpec::Pool(pool)
        } else if let Some(webhook) = &self.webhook {
            webhook.validate().map_err(|e| e.to_string())?;
            ExecutorSpec::Webhook(webhook.clone())
        } else if self.remote {
            ExecutorSpec::Remote
        } else {
            let smtp = self.smtp.clone().expect("one executor is set");
            smtp.validate().map_err(|e| e.to_string())?;
            ExecutorSpec::Smtp(smtp)
        };
        Ok(spec)
    }

    /// The command executor's spec, when this kind runs a command; `cwd`
    /// is as written (the caller resolves it against the config file).
    fn command_spec(&self) -> Option<CommandSpec> {
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
            remote: self.remote,
        }
    }
}

impl ConfigFile {
    /// Reads `path` (the defaults when there is none) and answers it with
    /// the directory its relative paths resolve against.
    pub fn read(path: Option<&Path>) -> Result<(ConfigFile, PathBuf)> {
        let Some(path) = path else {
            return Ok((ConfigFile::default(), PathBuf::from(".")));
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let file =
            ConfigFile::parse(&text).with_context(|| format!("config file {}", path.display()))?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok((file, base_dir))
    }

    /// Parses the file's text. Each kind is read on its own so that an
    /// error names the kind it is about.
    pub fn parse(text: &str) -> Result<ConfigFile> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        let kinds = match table.remove("kinds") {
            None => toml::Table::new(),
            Some(toml::Value::Table(kinds)) => kinds,
            Some(_) => bail!("`kinds` must be a table of [kinds.NAME] sections"),
        };
        let mut file: ConfigFile = table.try_into().map_err(|e| top_level_error(&e))?;
        for (name, value) in kinds {
            // The key meant a global limit while `[queues.X] concurrency` is
            // per node; refuse it by name rather than as an unknown field.
            if value.get("concurrency").is_some() {
                bail!(
                    "[kinds.{name}] concurrency: renamed to max_running (the most jobs of the kind running at once across all nodes); [queues.NAME] concurrency is the per-node setting"
                );
            }
            let kind = KindSection::deserialize(value).map_err(|e| key_error(&name, &e))?;
            file.kinds.insert(name, kind);
        }
        Ok(file)
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
    use crate::plan::{Database, NodePlan, Overrides};

    fn parse(text: &str) -> Result<NodePlan> {
        plan_with(text, Overrides::default())
    }

    /// The command spec of `kind` in a plan.
    fn command(c: &NodePlan, kind: &str) -> CommandSpec {
        match &c.executors[kind] {
            ExecutorSpec::Command(spec) => spec.clone(),
            other => panic!("{kind} runs {other:?}"),
        }
    }

    /// The kinds that get a job when `event` is published.
    fn listeners(c: &NodePlan, event: &str) -> Vec<String> {
        let jobs = c
            .catalog
            .listener_jobs(event, jiff::Timestamp::now())
            .unwrap();
        jobs.into_iter().map(|j| j.kind).collect()
    }

    fn plan_with(text: &str, overrides: Overrides) -> Result<NodePlan> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("errand.toml");
        std::fs::write(&path, text)?;
        NodePlan::load(Some(&path), overrides)
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
    fn engine_sections_set_only_their_documented_keys() {
        let c = parse("[postgres]\npool_size = 3\n[sqlite]\nsynchronous = \"normal\"").unwrap();
        let defaults = PostgresOptions::default();
        assert_eq!(c.postgres.pool_size, 3);
        assert_eq!(c.postgres.pool_timeout, defaults.pool_timeout);
        assert_eq!(c.postgres.application_name, defaults.application_name);
        assert_eq!(c.sqlite.synchronous, errand_sqlite::Synchronous::Normal);
        assert_eq!(c.sqlite.readers, SqliteOptions::default().readers);
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("[postgres]\npool_timeout = \"1s\"").contains("unknown field"));
        assert!(err("[sqlite]\nreaders = 2").contains("unknown field"));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:7070");
        assert!(matches!(c.database.clone(), Database::Sqlite(p) if p.ends_with("errand.db")));
        assert_eq!(c.queues.clone().get("default"), Some(&DEFAULT_CONCURRENCY));
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
        let p = &c.catalog.kinds()["resize"];
        assert_eq!((p.queue.as_str(), p.max_attempts), ("media", 5));
        assert_eq!(p.timeout, Some(Duration::from_secs(120)));
        assert_eq!(p.backoff.base, Duration::from_secs(2));
        let q = c.queues.clone();
        assert_eq!(
            (q["media"], q["mail"], q["default"]),
            (3, DEFAULT_CONCURRENCY, DEFAULT_CONCURRENCY)
        );
    }

    #[test]
    fn remote_kinds_have_no_local_executor() {
        let c = parse("[kinds.resize]\nremote = true\nmax_running = 3\n").unwrap();
        assert!(matches!(c.executors["resize"], ExecutorSpec::Remote));
        let policy = c.catalog.policy("resize").unwrap();
        assert!(policy.remote && policy.limit.max_running == Some(3));
        assert_eq!(c.catalog.remote_kinds().collect::<Vec<_>>(), ["resize"]);
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        let e = err("[kinds.resize]\ncommand = [\"true\"]\nremote = true");
        assert!(
            e.contains("[kinds.resize] both `command` and `remote = true` are set: a kind runs either on this node's `command` or on remote workers, not both"),
            "{e}"
        );
        let e = err("[kinds.resize]\nremote = false");
        assert!(e.contains("[kinds.resize] missing executor"), "{e}");
        let e = err("[kinds.resize]\nremote = true\nmax_processes = 2");
        assert!(
            e.contains("max_processes: only valid with `command`"),
            "{e}"
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
            ("[retention]\n", "audit", "[retention] audit"),
            ("[retention]\n", "history", "[retention] history"),
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
        assert!(
            e.contains("[worker] heartbeat: must be shorter than lease"),
            "{e}"
        );
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
        let spec = command(&c, "import");
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
        let spec = command(&parse("[kinds.a]\ncommand = [\"true\"]\n").unwrap(), "a");
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
            NodePlan::load(Some(&path), Overrides::default())
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
        let c = NodePlan::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(
            listeners(&c, "comment.created"),
            ["email_subscribers", "reindex_post"]
        );
        assert!(matches!(c.executors["report_part"], ExecutorSpec::Pool(_)));
        assert!(c.executors.contains_key("report_done") && c.executors.contains_key("echo"));
        assert_eq!(c.catalog.schedules().len(), 1);
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
        let with = |url: &str| crate::plan::database(url, Some(Path::new(".")));
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
        let label = |database: &str, base_dir: &str| {
            let file = ConfigFile {
                database: database.into(),
                ..ConfigFile::default()
            };
            NodePlan::resolve(file, Path::new(base_dir), Overrides::default())
                .unwrap()
                .database_label
        };
        assert_eq!(
            label("postgres://errand:s3cret@db:5432/jobs", "."),
            "postgres://errand:***@db:5432/jobs"
        );
        assert_eq!(
            label("sqlite://errand.db", "/srv/app"),
            "sqlite:///srv/app/errand.db"
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            label("sqlite://errand.db", "conf"),
            format!("sqlite://{}", cwd.join("conf/errand.db").display())
        );
    }

    #[test]
    fn work_can_be_limited_to_some_queues() {
        let text = "[kinds.a]\ncommand=[\"true\"]\nqueue=\"qa\"\n[kinds.b]\ncommand=[\"true\"]\nqueue=\"qb\"\n[[schedules]]\nname = \"s\"\ncron = \"* * * * *\"\nkind = \"b\"\n";
        let only = |queues: &[&str], concurrency| {
            let overrides = Overrides {
                queues: Some(queues.iter().map(|q| q.to_string()).collect()),
                concurrency,
                ..Overrides::default()
            };
            plan_with(text, overrides)
        };
        let c = only(&["qb"], Some(3)).unwrap();
        assert_eq!(c.queues, BTreeMap::from([("qb".to_string(), 3)]));
        assert_eq!(c.executors.keys().collect::<Vec<_>>(), ["b"]);
        assert_eq!(c.catalog.kinds().keys().collect::<Vec<_>>(), ["b"]);
        assert!(
            c.catalog.schedules().is_empty(),
            "schedules are left to full nodes"
        );
        let err = format!("{:#}", only(&["nope"], None).unwrap_err());
        assert!(err.contains("unknown queue"), "{err}");
        let err = format!("{:#}", only(&["qa"], Some(0)).unwrap_err());
        assert!(err.contains("--concurrency: must be at least 1"), "{err}");
        let all = plan_with(
            text,
            Overrides {
                concurrency: Some(2),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(all.queues.values().collect::<Vec<_>>(), [&2, &2, &2]);
        assert_eq!(all.catalog.schedules().len(), 1);
    }

    #[test]
    fn limits_and_unique_for_are_read() {
        let c = parse(
            "[kinds.email]\ncommand = [\"true\"]\nmax_running = 4\nrate = \"14/s\"\nunique_for = \"1h\"\n[kinds.report]\ncommand = [\"true\"]\nrate = \"100/m\"\n",
        )
        .unwrap();
        let p = &c.catalog.kinds()["email"];
        assert_eq!(p.limit.max_running, Some(4));
        assert_eq!(p.limit.rate, Some("14/s".parse().unwrap()));
        assert_eq!(p.unique_for, Some(Duration::from_secs(3600)));
        let p = &c.catalog.kinds()["report"];
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
        assert_eq!(
            listeners(&c, "comment.created"),
            ["reindex_post", "email_subscribers"]
        );
        assert!(listeners(&c, "post.deleted").is_empty());
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
        let s = &c.catalog.schedules()[0];
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

    #[test]
    fn server_tls_paths_are_relative_to_the_file() {
        let c = parse("[server]\ntls = { cert = \"tls/cert.pem\", key = \"/etc/errand/key.pem\" }")
            .unwrap();
        let tls = c.server.tls.unwrap();
        assert!(tls.cert.is_absolute() && tls.cert.ends_with("tls/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/errand/key.pem"));
        assert!(parse("").unwrap().server.tls.is_none());
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(err("[server]\ntls = { cert = \"c.pem\" }").contains("missing field `key`"));
    }
}
