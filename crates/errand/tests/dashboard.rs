//! The dashboard in a real browser: scripts/dashboard.py drives Debian's
//! headless Chromium through chromedriver (selenium, from the venv that
//! scripts/test.sh sets up) against a live `errand serve` on loopback,
//! running real jobs, on SQLite (auth required: the browser logs in with a
//! token, then acts through its session and CSRF token) and on PostgreSQL
//! (auth off): the login page refuses a wrong token, every page loads
//! without console errors, a queue is paused (by keyboard) and resumed
//! from the Queues page, the failed jobs a filter matches are bulk-retried
//! and selected jobs bulk-cancelled from the Jobs page (both in the audit log
//! and its page), a failed job is retried and a scheduled one run now from
//! its page, the Nodes page lists the pool's processes, and the
//! overview's counts move while the page stays open. Screenshots of every
//! page (1280 px and phone width) land in target/tmp/dashboard-screenshots;
//! with ERRAND_UPDATE_SCREENSHOTS=1 the SQLite run also copies them to
//! docs/screenshots. Without chromium, chromedriver or selenium this test
//! fails, saying what is missing.

mod common;

use common::{Server, pg};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A worker runs jobs in the serve process: `ok` succeeds, `boom` fails
/// for good at its first attempt (in queue `fragile`), `report` runs in
/// queue `reports`, `pooled` on a pool of two Python processes; an event
/// and a schedule give those pages content.
const CONFIG: &str = r#"
[server]
max_wait = "5s"

[worker]
enabled = true

[kinds.ok]
command = ["true"]

[kinds.boom]
command = ["sh", "-c", "echo 'disk full <b>' >&2; exit 1"]
queue = "fragile"
max_attempts = 1

[kinds.report]
command = ["true"]
queue = "reports"

[kinds.pooled]
pool = { processes = 2, command = ["python3", "-c", '''
import json, sys
print(json.dumps({"type": "ready"}), flush=True)
for line in sys.stdin:
    print(json.dumps({"type": "result", "id": json.loads(line)["id"]}), flush=True)
'''] }

[events."order.paid"]
listeners = ["ok", "report"]

[[schedules]]
name = "nightly-report"
cron = "0 3 * * *"
kind = "report"
"#;

/// The venv's Python with selenium (ERRAND_DASHBOARD_PYTHON, else `.venv`
/// at the workspace root), after checking the browser and its driver.
fn python() -> PathBuf {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver \
             (scripts/test.sh does)"
        );
    }
    let python = common::venv_python("ERRAND_DASHBOARD_PYTHON");
    let has_selenium = Command::new(&python)
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_selenium,
        "selenium is missing from {}: run scripts/test.sh (it installs it into .venv) or \
         point ERRAND_DASHBOARD_PYTHON at a venv's python that has it",
        python.display()
    );
    python
}

/// Runs the browser script against `server`, saving screenshots under
/// `shots`; panics with its output when a check fails.
/// With `token`, the server requires auth: the script logs in with it at
/// /login and its own API calls send it.
fn run_script(server: &Server, shots: &Path, token: Option<&str>) {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dashboard.py");
    std::fs::create_dir_all(shots).unwrap();
    let mut command = Command::new(python);
    command.arg(script).arg(&server.base).arg(shots);
    if let Some(token) = token {
        command.env("ERRAND_TOKEN", token);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "dashboard run failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.log_text()
    );
    assert!(stdout.contains("dashboard: all checks passed"), "{stdout}");
    assert!(
        !server.log_text().contains("panicked"),
        "{}",
        server.log_text()
    );
}

/// Where a run's screenshots go.
fn shots(engine: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard-screenshots")
        .join(engine)
}

#[test]
fn dashboard_works_in_a_real_browser_on_sqlite() {
    // Auth on: the browser logs in with an admin token (a session cookie
    // and its CSRF token from then on).
    let config = format!("database = \"sqlite://errand.db\"\n{CONFIG}")
        .replace("[server]\n", "[server]\nauth = \"required\"\n");
    let server = Server::start(&config);
    // The script enqueues the jobs it looks at, so the token can enqueue too.
    let token = server.create_token("browser", &["admin", "enqueue"]);
    let dir = shots("sqlite");
    run_script(&server, &dir, Some(&token));
    if std::env::var_os("ERRAND_UPDATE_SCREENSHOTS").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, docs.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn dashboard_works_in_a_real_browser_on_postgres() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let server = pg::serve(tmp.path(), &url, "errand", CONFIG);
    run_script(&server, &shots("postgres"), None);
}
