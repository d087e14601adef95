//! The node plan: the configuration file, flags and environment resolved
//! into everything one node runs with, every setting checked once by the
//! library that owns it. `serve`, `work` and `migrate` act on a plan only.

use crate::config::{ConfigFile, DEFAULT_CONCURRENCY, ExecutorSpec};
use anyhow::{Context, Result, anyhow, bail};
use errand_core::policy::DEFAULT_QUEUE;
use errand_core::{Catalog, Retention};
use errand_postgres::PostgresOptions;
use errand_server::{GearmanSettings, ServerSettings};
use errand_sqlite::SqliteOptions;
use errand_worker::WorkerSettings;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What flags and environment variables change on top of the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen` / `ERRAND_LISTEN`.
    pub listen: Option<String>,
    /// `--database` / `ERRAND_DATABASE`; a relative SQLite path is relative
    /// to the working directory, not the file.
    pub database: Option<String>,
    /// `errand work --queues`: serve only these.
    pub queues: Option<Vec<String>>,
    /// `errand work --concurrency`: each served queue's concurrency.
    pub concurrency: Option<usize>,
    /// `--unsafe-no-auth` / `ERRAND_UNSAFE_NO_AUTH`: allow `auth = "off"`
    /// on a non-loopback address.
    pub unsafe_no_auth: bool,
}

/// Which engine a `database` URL names, and where.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// Everything one node runs with.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// The engine and location of the database.
    pub database: Database,
    /// The database for messages: a password masked, a file path absolute.
    pub database_label: String,
    /// Address of the HTTP API.
    pub listen: String,
    /// HTTP API settings.
    pub server: ServerSettings,
    /// The Gearman listener's settings.
    pub gearman: GearmanSettings,
    /// Allow `[server] auth = "off"` on a non-loopback address.
    pub unsafe_no_auth: bool,
    /// In-process worker and maintenance settings.
    pub worker: WorkerSettings,
    /// SQLite engine settings.
    pub sqlite: SqliteOptions,
    /// PostgreSQL engine settings.
    pub postgres: PostgresOptions,
    /// How long terminal jobs are kept.
    pub retention: Retention,
    /// The queues this node serves, with their concurrency.
    pub queues: BTreeMap<String, usize>,
    /// Kinds, events and schedules; without schedules on a node limited to
    /// some queues (it lacks the other kinds, so it leaves the schedules to
    /// nodes configured with all of them).
    pub catalog: Catalog,
    /// The executor of every kind this node runs.
    pub executors: BTreeMap<String, ExecutorSpec>,
}

impl NodePlan {
    /// Reads the file at `path` (defaults without one) and resolves it with
    /// `overrides`; errors name the file.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<NodePlan> {
        let (file, base_dir) = ConfigFile::read(path)?;
        let plan = NodePlan::resolve(file, &base_dir, overrides);
        match path {
            Some(path) => plan.with_context(|| format!("config file {}", path.display())),
            None => plan,
        }
    }

    /// Resolves a file read from `base_dir` and the `overrides` into a plan,
    /// refusing anything wrong with a message naming section and key.
    pub fn resolve(file: ConfigFile, base_dir: &Path, overrides: Overrides) -> Result<NodePlan> {
        let resolve_dir = |dir: Option<&Path>| match dir {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => base_dir.join(dir),
            None => base_dir.to_path_buf(),
        };
        file.server
            .validate()
            .map_err(|e| anyhow!("[server] {e}"))?;
        file.gearman
            .validate()
            .map_err(|e| anyhow!("[gearman] {e}"))?;
        file.worker
            .validate()
            .map_err(|e| match e.strip_prefix("breaker.") {
                Some(e) => anyhow!("[worker.breaker] {e}"),
                None => anyhow!("[worker] {e}"),
            })?;
        let mut policies = BTreeMap::new();
        let mut executors = BTreeMap::new();
        for (name, kind) in &file.kinds {
            let executor = kind
                .executor(resolve_dir)
                .map_err(|e| anyhow!("[kinds.{name}] {e}"))?;
            executors.insert(name.clone(), executor);
            policies.insert(name.clone(), kind.policy());
        }
        for name in file.gearman.functions.keys() {
            match policies.get(name) {
                Some(policy) if policy.remote => {}
                Some(_) => {
                    return Err(anyhow!(
                        "[gearman.functions.{name}] kind {name:?} is not run by remote workers, so Gearman workers never get its jobs; set remote = true in [kinds.{name}]"
                    ));
                }
                None => {
                    return Err(anyhow!(
                        "[gearman.functions.{name}] no kind {name:?} is configured; add [kinds.{name}] with remote = true"
                    ));
                }
            }
        }
        let events = file
            .events
            .into_iter()
            .map(|(name, e)| (name, e.listeners))
            .collect();
        let mut catalog = Catalog::new(policies, events, file.schedules)?;
        for (name, q) in &file.queues {
            errand_worker::check_queue(name, q.concurrency)
                .map_err(|e| anyhow!("[queues.{name}] {e}"))?;
        }
        let mut queues = queue_concurrency(&file.queues, &catalog);
        if let Some(chosen) = &overrides.queues {
            queues = restrict(&queues, chosen, overrides.concurrency)?;
            catalog = catalog
                .retain_kinds(|_, policy| queues.contains_key(&policy.queue))
                .without_schedules();
            executors.retain(|kind, _| catalog.policy(kind).is_some());
        } else if let Some(n) = overrides.concurrency {
            let all: Vec<String> = queues.keys().cloned().collect();
            queues = restrict(&queues, &all, Some(n))?;
        }
        let (url, from_flags) = match overrides.database {
            Some(url) => (url, true),
            None => (file.database, false),
        };
        let database = database(&url, (!from_flags).then_some(base_dir))?;
        let database_label = match &database {
            Database::Sqlite(path) => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                format!("sqlite://{}", path.display())
            }
            Database::Postgres(url) => errand_core::redact::urls(url),
        };
        let mut server = file.server;
        if let Some(tls) = &mut server.tls {
            tls.cert = resolve_dir(Some(&tls.cert));
            tls.key = resolve_dir(Some(&tls.key));
        }
        Ok(NodePlan {
            database,
            database_label,
            listen: overrides.listen.unwrap_or(file.listen),
            server,
            gearman: file.gearman,
            unsafe_no_auth: overrides.unsafe_no_auth,
            worker: file.worker,
            sqlite: file.sqlite,
            postgres: file.postgres,
            retention: file.retention,
            queues,
            catalog,
            executors,
        })
    }
}

impl NodePlan {
    /// Whether the HTTP API requires tokens on this node's listen address;
    /// `auth = "off"` off loopback without `--unsafe-no-auth` is an error
    /// saying how to make a token. Only a node that serves asks.
    pub fn auth_required(&self) -> Result<bool> {
        errand_server::auth_required(&self.listen, self.server.auth, self.unsafe_no_auth)
            .map_err(|e| anyhow!("[server] {e}"))
    }
}

/// The engine and location a `database` URL names; a relative SQLite path
/// resolves against `base_dir` when given (a path from the file), else the
/// working directory (a path from a flag).
pub fn database(url: &str, base_dir: Option<&Path>) -> Result<Database> {
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
    Ok(Database::Sqlite(match base_dir {
        Some(base) if !path.is_absolute() => base.join(path),
        _ => path.to_path_buf(),
    }))
}

/// Queue concurrency: the configured queues plus every queue a kind sends
/// jobs to and the default queue, so no configured kind is left unserved.
fn queue_concurrency(
    configured: &BTreeMap<String, crate::config::QueueSection>,
    catalog: &Catalog,
) -> BTreeMap<String, usize> {
    let mut queues: BTreeMap<String, usize> = configured
        .iter()
        .map(|(n, q)| (n.clone(), q.concurrency))
        .collect();
    for policy in catalog.kinds().values() {
        queues
            .entry(policy.queue.clone())
            .or_insert(DEFAULT_CONCURRENCY);
    }
    queues
        .entry(DEFAULT_QUEUE.to_string())
        .or_insert(DEFAULT_CONCURRENCY);
    queues
}

/// The `chosen` queues out of `known`, optionally with one `concurrency`.
fn restrict(
    known: &BTreeMap<String, usize>,
    chosen: &[String],
    concurrency: Option<usize>,
) -> Result<BTreeMap<String, usize>> {
    if concurrency == Some(0) {
        bail!("--concurrency: must be at least 1");
    }
    chosen
        .iter()
        .map(|q| match known.get(q) {
            Some(&c) => Ok((q.clone(), concurrency.unwrap_or(c))),
            None => Err(anyhow!(
                "--queues: unknown queue {q:?}; configured queues: {}",
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str, listen: &str, unsafe_no_auth: bool) -> Result<NodePlan> {
        let overrides = Overrides {
            listen: Some(listen.to_string()),
            unsafe_no_auth,
            ..Overrides::default()
        };
        NodePlan::resolve(ConfigFile::parse(text)?, Path::new("."), overrides)
    }

    #[test]
    fn auth_follows_the_listen_address_and_the_setting() {
        let required = |text: &str, listen: &str, unsafe_no_auth: bool| {
            plan(text, listen, unsafe_no_auth)
                .unwrap()
                .auth_required()
                .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(required("", "127.0.0.1:7070", false), Ok(false));
        assert_eq!(required("", "0.0.0.0:7070", false), Ok(true));
        let off = "[server]\nauth = \"off\"\n";
        let refused = required(off, "0.0.0.0:7070", false).unwrap_err();
        assert!(refused.starts_with("[server] auth = \"off\""), "{refused}");
        assert!(refused.contains("errand tokens create"), "{refused}");
        assert_eq!(required(off, "0.0.0.0:7070", true), Ok(false));
        let on = "[server]\nauth = \"required\"\n";
        assert_eq!(required(on, "127.0.0.1:7070", false), Ok(true));
        let bad = format!(
            "{:#}",
            plan("[server]\nauth = \"maybe\"\n", "127.0.0.1:1", false).unwrap_err()
        );
        assert!(bad.contains("auth") && bad.contains("required"), "{bad}");
    }
}
