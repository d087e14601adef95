//! `[kinds.<kind>] pool = { … }`: what a pool runs and the limits it
//! recycles its processes at.

use crate::ConfigError;
use errand_core::size::ByteSize;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Most processes one pool may run: a guard against a typo, not a tuning knob.
const MAX_PROCESSES: usize = 1024;

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
    /// Resident memory (the process and its children) above which a process
    /// is replaced after its current job.
    #[serde(default)]
    pub max_rss: Option<ByteSize>,
}

fn default_processes() -> usize {
    4
}

fn default_max_jobs() -> u64 {
    1000
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
            max_rss: None,
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
        if self.max_rss == Some(ByteSize(0)) {
            return bad("max_rss", "must be more than 0 bytes".into());
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
        let config = parse(
            r#"command = ["sh", "worker.sh"]
max_rss = "256MiB""#,
        )
        .unwrap();
        assert_eq!(config.processes, 4);
        assert_eq!(config.max_jobs, 1000);
        assert_eq!(config.max_rss, Some(ByteSize(256 << 20)));
        config.validate().unwrap();
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
                    max_rss: Some(ByteSize(0)),
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
    }
}
