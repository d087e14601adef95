//! `[kinds.<kind>] pool = { … }`: what a pool runs and the limits it
//! recycles its processes at.

use crate::ConfigError;
use errand_core::size::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most processes one pool may run: a guard against a typo, not a tuning knob.
const MAX_PROCESSES: usize = 1024;

/// Default `max_rss`: far above a worker's usual size (a PHP or Python
/// worker starts at 10–60 MB), low enough to stop a leak before it hurts a
/// small machine (docs/decisions/0040).
const DEFAULT_MAX_RSS: ByteSize = ByteSize(512 << 20);

/// Smallest `max_rss` other than 0: below it every process would be
/// replaced after each job (a bare number is bytes, so `max_rss = 512`
/// is most likely meant as "512MiB").
const MIN_RSS: ByteSize = ByteSize(1 << 20);

/// Configuration of a [`PoolExecutor`](super::PoolExecutor).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Program and arguments of a worker process; run directly, never through a shell.
    pub command: Vec<String>,
    /// Working directory of the processes; errand's when absent.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables, on top of the inherited (or allowed) ones.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// When set, the processes get only these variables of errand's
    /// environment (plus `PATH` and `env`); when absent, all of it but
    /// errand's own `ERRAND_*` settings.
    #[serde(default)]
    pub env_allow: Option<Vec<String>>,
    /// How many processes run at once.
    #[serde(default = "default_processes")]
    pub processes: usize,
    /// Jobs a process runs before it is replaced; 0 = never.
    #[serde(default = "default_max_jobs")]
    pub max_jobs: u64,
    /// Resident memory (the process and its descendants) above which a
    /// process is replaced after its current job; 0 = never.
    #[serde(default = "default_max_rss")]
    pub max_rss: ByteSize,
}

fn default_processes() -> usize {
    4
}

fn default_max_jobs() -> u64 {
    0
}

fn default_max_rss() -> ByteSize {
    DEFAULT_MAX_RSS
}

impl PoolConfig {
    /// A pool running `command` with every other setting at its default.
    pub fn new(command: impl IntoIterator<Item = impl Into<String>>) -> Self {
        PoolConfig {
            command: command.into_iter().map(Into::into).collect(),
            cwd: None,
            env: BTreeMap::new(),
            env_allow: None,
            processes: default_processes(),
            max_jobs: default_max_jobs(),
            max_rss: default_max_rss(),
        }
    }

    /// Checks what serde cannot; the error names the key (`pool.<key>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad =
            |key: &str, message: String| Err(ConfigError::new(format!("pool.{key}"), message));
        crate::process::check_program(&self.command, self.cwd.as_deref())
            .map_err(|e| ConfigError::new("pool.command", e))?;
        if !(1..=MAX_PROCESSES).contains(&self.processes) {
            return bad(
                "processes",
                format!(
                    "must be between 1 and {MAX_PROCESSES}, got {}",
                    self.processes
                ),
            );
        }
        if let Some(names) = &self.env_allow {
            crate::process::check_env_allow(names)
                .map_err(|e| ConfigError::new("pool.env_allow".to_string(), e))?;
        }
        if self.max_rss.0 != 0 && self.max_rss < MIN_RSS {
            return bad(
                "max_rss",
                format!(
                    "must be 0 (never) or at least 1MiB, got {} (a bare number is bytes: write \"{}MiB\" for mebibytes)",
                    self.max_rss, self.max_rss.0
                ),
            );
        }
        if let Some(cwd) = &self.cwd
            && !cwd.is_dir()
        {
            return bad("cwd", format!("{} is not a directory", cwd.display()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<PoolConfig, String> {
        toml::from_str(toml_text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_sizes() {
        let config = parse(r#"command = ["sh", "worker.sh"]"#).unwrap();
        assert_eq!(config.processes, 4);
        assert_eq!(config.max_jobs, 0, "no recycling by job count");
        assert_eq!(
            config.max_rss,
            ByteSize(512 << 20),
            "a memory guard instead"
        );
        assert_eq!(config, PoolConfig::new(["sh", "worker.sh"]));
        let config = parse(
            r#"command = ["sh", "worker.sh"]
max_jobs = 500
max_rss = "256MiB""#,
        )
        .unwrap();
        assert_eq!(config.max_jobs, 500);
        assert_eq!(config.max_rss, ByteSize(256 << 20));
        config.validate().unwrap();
        for never in ["0", "\"0MiB\""] {
            let config = parse(&format!("command = [\"sh\"]\nmax_rss = {never}")).unwrap();
            assert_eq!(config.max_rss, ByteSize(0));
            config.validate().unwrap();
        }
        let smallest = PoolConfig {
            max_rss: MIN_RSS,
            ..PoolConfig::new(["sh"])
        };
        smallest.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (PoolConfig::new(Vec::<String>::new()), "pool.command"),
            (PoolConfig::new([""]), "pool.command"),
            (PoolConfig::new(["no-such-program-errand"]), "pool.command"),
            (PoolConfig::new(["./no/such/worker"]), "pool.command"),
            (
                PoolConfig {
                    processes: 0,
                    ..PoolConfig::new(["sh"])
                },
                "pool.processes",
            ),
            (
                PoolConfig {
                    max_rss: ByteSize(512),
                    ..PoolConfig::new(["sh"])
                },
                "pool.max_rss",
            ),
            (
                PoolConfig {
                    max_rss: ByteSize(MIN_RSS.0 - 1),
                    ..PoolConfig::new(["sh"])
                },
                "pool.max_rss",
            ),
            (
                PoolConfig {
                    env_allow: Some(vec!["A=B".into()]),
                    ..PoolConfig::new(["sh"])
                },
                "pool.env_allow",
            ),
            (
                PoolConfig {
                    cwd: Some("/no/such/dir".into()),
                    ..PoolConfig::new(["sh"])
                },
                "pool.cwd",
            ),
        ];
        for (config, key) in cases {
            assert_eq!(config.validate().unwrap_err().key, key, "{config:?}");
        }
        let bytes = PoolConfig {
            max_rss: ByteSize(512),
            ..PoolConfig::new(["sh"])
        };
        let message = bytes.validate().unwrap_err().message;
        assert!(
            message.contains("at least 1MiB") && message.contains("\"512MiB\""),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_sizes_are_refused() {
        let err = parse(
            r#"command = ["sh"]
procesess = 3"#,
        )
        .unwrap_err();
        assert!(err.contains("procesess"), "{err}");
        let err = parse(
            r#"command = ["sh"]
max_rss = "lots""#,
        )
        .unwrap_err();
        assert!(
            err.contains("max_rss") && err.contains("invalid size"),
            "{err}"
        );
        for bad in ["max_rss = -1", "max_jobs = -1", "max_jobs = \"many\""] {
            let err = parse(&format!("command = [\"sh\"]\n{bad}")).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }
}
