//! The environment a job's process starts with: errand's own (all of it, or
//! only the allowed variables and `PATH`), then the spec's `env`, then the
//! job's identity (`ERRAND_JOB_ID`, …), which nothing can override.

use errand_core::Job;
use std::collections::BTreeMap;
use tokio::process::Command;

/// Always passed through an allow-list: programs are found through it (by
/// errand and by `#!/usr/bin/env` lines) and it holds no secret. `env` may
/// still replace it.
const ALWAYS_ALLOWED: &str = "PATH";

/// Sets `cmd`'s environment for `job`.
pub(super) fn apply(
    cmd: &mut Command,
    allow: Option<&[String]>,
    env: &BTreeMap<String, String>,
    job: &Job,
) {
    if let Some(allow) = allow {
        cmd.env_clear();
        let names = allow.iter().map(String::as_str);
        for name in names.chain([ALWAYS_ALLOWED]) {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
    }
    cmd.envs(env)
        .env("ERRAND_JOB_ID", job.id.to_string())
        .env("ERRAND_JOB_KIND", &job.kind)
        .env("ERRAND_ATTEMPT", job.attempt.to_string())
        .env("ERRAND_MAX_ATTEMPTS", job.max_attempts.to_string());
}
