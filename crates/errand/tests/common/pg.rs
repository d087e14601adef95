//! PostgreSQL for the binary's tests: a fresh database on a throwaway
//! cluster, SQL run with `psql` to look at the server from outside errand,
//! and `errand serve` / `errand work` nodes pointed at it.

use super::Server;
use errand_testpg::TestPg;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh database on this test binary's shared cluster; panics when
/// PostgreSQL is not installed.
pub fn fresh() -> (&'static TestPg, String) {
    let pg = TestPg::shared();
    let url = pg.fresh_database();
    (pg, url)
}

/// A cluster of the test's own, for tests that stop or restart the server
/// (which would disturb every other test on a shared one), with its database URL.
pub fn own() -> (TestPg, String) {
    let pg = TestPg::start();
    let url = pg.url();
    (pg, url)
}

/// Runs `query` with psql; answers its output (unaligned, no headers) or why it failed.
pub fn try_sql(url: &str, query: &str) -> Result<String, String> {
    let out = Command::new(psql())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            query,
        ])
        // Give up fast while the server is down instead of hanging.
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `query` with psql and answers its output; panics when it fails.
pub fn sql(url: &str, query: &str) -> String {
    try_sql(url, query).unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The one integer `query` answers.
pub fn number(url: &str, query: &str) -> i64 {
    let out = sql(url, query);
    out.parse()
        .unwrap_or_else(|_| panic!("{query}: expected a number, got {out:?}"))
}

/// The integers `query` answers, one a row.
pub fn numbers(url: &str, query: &str) -> Vec<i64> {
    sql(url, query)
        .lines()
        .map(|l| l.trim().parse().expect("a number a row"))
        .collect()
}

/// Jobs that did not run exactly once cleanly: not completed, retried, or with errors.
pub fn unclean_jobs(url: &str) -> Vec<String> {
    sql(
        url,
        "SELECT id || ' ' || state || ' attempt ' || attempt || ' ' || errors::text FROM jobs \
         WHERE state <> 'completed' OR attempt <> 1 OR errors <> '[]'::jsonb ORDER BY id LIMIT 20",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// `errand serve` on `url` with `config` written to `dir/NAME.toml`.
pub fn serve(dir: &Path, url: &str, name: &str, config: &str) -> Server {
    node(
        dir,
        url,
        name,
        config,
        "serve",
        &["--listen", "127.0.0.1:0"],
    )
}

/// `errand work` on `url` with `config` written to `dir/NAME.toml`.
pub fn work(dir: &Path, url: &str, name: &str, config: &str) -> Server {
    node(dir, url, name, config, "work", &[])
}

fn node(dir: &Path, url: &str, name: &str, config: &str, command: &str, extra: &[&str]) -> Server {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let config_arg = path.to_str().unwrap();
    let mut args = vec![command, "--config", config_arg, "--database", url];
    args.extend_from_slice(extra);
    let mut node = Server::spawn(dir, &args)
        .unwrap_or_else(|log| panic!("errand {command} ({name}) did not start; log:\n{log}"));
    node.config = path;
    node
}

/// psql from PATH, else from the newest Debian server installation.
fn psql() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("psql"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .filter_map(|e| Some(e.ok()?.path().join("bin/psql")))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            found.pop()
        })
        .expect("psql not found (Debian's postgresql-client package)")
}
