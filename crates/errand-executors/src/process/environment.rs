//! The environment a job's process starts with (command attempts and pool
//! processes alike): errand's own, less errand's `ERRAND_*` settings (or
//! only the allowed variables and `PATH`), then the configured `env`. The
//! executor then adds its own variables (the job's identity, the pool's
//! name), which nothing can override.

use std::collections::BTreeMap;
use tokio::process::Command;

/// Always passed through an allow-list: programs are found through it (by
/// errand and by `#!/usr/bin/env` lines) and it holds no secret. `env` may
/// still replace it.
const ALWAYS_ALLOWED: &str = "PATH";

/// Prefix of errand's own settings (`ERRAND_DATABASE` may hold a password):
/// not inherited unless allowed by name.
const SETTINGS_PREFIX: &str = "ERRAND_";

/// Sets `cmd`'s environment: with `allow`, only those variables of
/// errand's environment (and `PATH`); without, all of it but errand's
/// `ERRAND_*` settings; then `env` on top.
pub fn set_environment(
    cmd: &mut Command,
    allow: Option<&[String]>,
    env: &BTreeMap<String, String>,
) {
    match allow {
        Some(allow) => {
            cmd.env_clear();
            let names = allow.iter().map(String::as_str);
            for name in names.chain([ALWAYS_ALLOWED]) {
                if let Some(value) = std::env::var_os(name) {
                    cmd.env(name, value);
                }
            }
        }
        None => {
            for (name, _) in std::env::vars_os() {
                if name
                    .as_encoded_bytes()
                    .starts_with(SETTINGS_PREFIX.as_bytes())
                {
                    cmd.env_remove(name);
                }
            }
        }
    }
    cmd.envs(env);
}

/// Checks the names of an allow-list; the error names the bad one.
pub fn check_env_allow(names: &[String]) -> Result<(), String> {
    match names
        .iter()
        .find(|name| name.is_empty() || name.contains(['=', '\0']))
    {
        Some(name) => Err(format!("{name:?} is not an environment variable name")),
        None => Ok(()),
    }
}
