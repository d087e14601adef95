//! What a command executor runs, and the checks that reject a spec it
//! could not honour (overlapping exit-code lists, a zero process limit, a
//! variable name that cannot be one) before any job runs.

use super::exit_codes::ExitCodes;
use crate::ConfigError;
use crate::process;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The program a [`CommandExecutor`](super::CommandExecutor) runs for each
/// job, and how it reads what the program reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandSpec {
    /// Program and arguments; run directly, never through a shell.
    pub argv: Vec<String>,
    /// Working directory; the worker's when absent.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables, set on top of the inherited (or
    /// allowed) ones.
    pub env: BTreeMap<String, String>,
    /// Exit codes that fail the job at once, besides
    /// [`CommandSpec::DEFAULT_PERMANENT_EXIT_CODES`].
    pub permanent_exit_codes: Vec<i32>,
    /// Exit codes meaning "infrastructure down" (the job is handed back
    /// without using an attempt), besides
    /// [`CommandSpec::DEFAULT_DEADLY_EXIT_CODES`].
    pub deadly_exit_codes: Vec<i32>,
    /// Exit codes retried with backoff even though a default list names
    /// them (every code no list names is retried anyway).
    pub retry_exit_codes: Vec<i32>,
    /// Most processes of this executor alive at once; unlimited when absent.
    pub max_processes: Option<usize>,
    /// When set, the child gets only these variables of errand's
    /// environment (plus `PATH`, `env` and the job's `ERRAND_*`); when
    /// absent, all of it but errand's own `ERRAND_*` settings.
    pub env_allow: Option<Vec<String>>,
}

impl CommandSpec {
    /// Exit codes that fail a job without retry unless configured
    /// otherwise: 64 (EX_USAGE) and 65 (EX_DATAERR) from sysexits.h.
    pub const DEFAULT_PERMANENT_EXIT_CODES: &[i32] = &[64, 65];
    /// Exit codes that hand a job back without using an attempt unless
    /// configured otherwise: 69 (EX_UNAVAILABLE, "a service is unavailable").
    pub const DEFAULT_DEADLY_EXIT_CODES: &[i32] = &[69];

    /// Checks the spec without running anything, as at start-up: the
    /// program must exist (on `PATH`, or as a path relative to `cwd`); the
    /// error names the key. [`CommandExecutor::new`](super::CommandExecutor::new)
    /// checks it too. A program that goes missing later is retried, since
    /// it may come back (a deployment in progress).
    pub fn validate(&self) -> Result<(), ConfigError> {
        process::check_program(&self.argv, self.cwd.as_deref())
            .map_err(|e| ConfigError::new("command", e))?;
        self.checked().map(drop)
    }

    /// The exit-code mapping of a valid spec.
    pub(super) fn checked(&self) -> Result<ExitCodes, ConfigError> {
        if self.max_processes == Some(0) {
            return Err(ConfigError::new("max_processes", "must be at least 1"));
        }
        if let Some(names) = &self.env_allow {
            process::check_env_allow(names).map_err(|e| ConfigError::new("env_allow", e))?;
        }
        ExitCodes::new(
            &self.permanent_exit_codes,
            &self.deadly_exit_codes,
            &self.retry_exit_codes,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> CommandSpec {
        CommandSpec {
            argv: vec!["sh".into()],
            ..CommandSpec::default()
        }
    }

    #[test]
    fn bad_limits_and_names_are_rejected() {
        let err = |spec: CommandSpec| spec.validate().unwrap_err().to_string();
        assert_eq!(
            err(CommandSpec {
                max_processes: Some(0),
                ..sh()
            }),
            "max_processes: must be at least 1"
        );
        assert_eq!(
            err(CommandSpec {
                env_allow: Some(vec!["HOME".into(), "A=B".into()]),
                ..sh()
            }),
            "env_allow: \"A=B\" is not an environment variable name"
        );
        assert!(
            CommandSpec {
                max_processes: Some(1),
                env_allow: Some(vec!["HOME".into()]),
                ..sh()
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn a_missing_program_is_refused() {
        let err = |argv: &[&str], cwd: Option<&str>| {
            CommandSpec {
                argv: argv.iter().map(|a| a.to_string()).collect(),
                cwd: cwd.map(PathBuf::from),
                ..CommandSpec::default()
            }
            .validate()
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            err(&["no-such-program-errand"], None),
            Err("command: program \"no-such-program-errand\" not found".into())
        );
        assert_eq!(
            err(&["./no/such/worker"], Some("/")),
            Err("command: program \"./no/such/worker\" not found".into())
        );
        assert_eq!(err(&[], None), Err("command: must name a program".into()));
        assert_eq!(err(&[""], None), Err("command: must name a program".into()));
        assert_eq!(err(&["sh", "-c", "true"], None), Ok(()));
        assert_eq!(err(&["bin/sh"], Some("/")), Ok(()));
    }
}
