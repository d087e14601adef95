//! A job's processes never outlive errand: kill -9 `errand serve` while a
//! command job, then a pool job, runs a grandchild that ticks into a file;
//! the ticks of attempt 1 must stop at once (before any restart), and after
//! the restart's lease rescue no tick of attempt 1 may follow attempt 2's
//! first. On SQLite and on PostgreSQL. And when the guardian is killed
//! together with errand, the restarted errand kills what it left before
//! attempt 2 starts.

mod common;

use common::*;
use errand_executors::process::procfs;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Settings that make the rescue quick: a dead worker's lease expires in 2 s.
const QUICK_RESCUE: &str = r#"
[worker]
lease = "2s"
heartbeat = "500ms"
maintenance_interval = "200ms"
"#;

/// A command whose group writes its process group id to `pgid-<attempt>`
/// and ticks its attempt into `ticks` from a grandchild every 100 ms;
/// attempt 1 sleeps long, later ones end after a second.
const COMMAND_KIND: &str = r#"
[kinds.tick]
command = ["sh", "-c", 'a=$ERRAND_ATTEMPT; echo $$ > pgid-$a; (while :; do echo $a >> ticks; sleep 0.1; done) & if [ $a = 1 ]; then sleep 25; else sleep 1; fi; kill $!']
"#;

/// The same as a pool worker (docs/pool-protocol.md), in Python.
const POOL_KIND: &str = r#"
[kinds.tick]
pool = { command = ["python3", "tick_worker.py"], processes = 1 }
"#;

const POOL_WORKER: &str = r#"
import json, os, subprocess, sys, time

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

send({"type": "ready"})
for line in sys.stdin:
    job = json.loads(line)
    a = job["attempt"]
    with open("pgid-%d" % a, "w") as f:
        f.write(str(os.getpgid(0)))
    ticker = subprocess.Popen(["sh", "-c", "while :; do echo %d >> ticks; sleep 0.1; done" % a])
    time.sleep(25 if a == 1 else 1)
    ticker.kill()
    ticker.wait()
    send({"type": "result", "id": job["id"]})
"#;

/// The attempts recorded in `dir/ticks`, in order.
fn ticks(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("ticks"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills the job groups a failed run may have left behind.
struct KillGroups<'a>(&'a Path);

impl Drop for KillGroups<'_> {
    fn drop(&mut self) {
        for attempt in 1..=3 {
            if let Ok(pgid) = std::fs::read_to_string(self.0.join(format!("pgid-{attempt}"))) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", "--", &format!("-{}", pgid.trim())])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// The guardian forked by errand process `errand`.
fn guardian_of(errand: u32) -> i32 {
    let found = procfs::children(errand)
        .into_iter()
        .find(|&pid| procfs::stat(pid).is_some_and(|s| s.comm == "errand-guard"));
    found.expect("errand runs a guardian") as i32
}

/// Runs the scenario with `kind` (a `[kinds.tick]` section); `start`
/// starts (and restarts) `errand serve` in the directory with a config.
fn attempt_one_dies_with_errand(kind: &str, start: impl Fn(&Path, &str) -> Server) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("tick_worker.py"), POOL_WORKER).unwrap();
    let _cleanup = KillGroups(dir);
    let config = format!("{QUICK_RESCUE}{kind}");
    let mut server = start(dir, &config);
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "tick", "payload": {}}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "attempt 1 to tick", || {
        (ticks(dir).len() >= 5).then_some(())
    });

    server.kill9();
    let killed = Instant::now();
    // Attempt 1's processes die with errand: its ticks stop within ~2 s,
    // before anything restarts.
    std::thread::sleep(Duration::from_millis(1500));
    let after_kill = ticks(dir).len();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        ticks(dir).len(),
        after_kill,
        "attempt 1 still ticks {:?} after errand was killed",
        killed.elapsed()
    );

    let restarted = start(dir, &config);
    let job = wait_state(&restarted, id, "completed", Duration::from_secs(30));
    assert_eq!(job["attempt"], 2, "{job}");
    let ticks = ticks(dir);
    let first_of_2 = ticks
        .iter()
        .position(|&a| a == 2)
        .expect("attempt 2 ticked");
    assert!(
        ticks[first_of_2..].iter().all(|&a| a != 1),
        "attempt 1 ticked after attempt 2 started: {ticks:?}"
    );
    drop(server);
}

#[test]
fn a_restart_kills_what_errand_left_when_its_guardian_died_too() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _cleanup = KillGroups(dir);
    let config = format!("{QUICK_RESCUE}{COMMAND_KIND}");
    let mut server = Server::start_in(dir, &config);
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "tick", "payload": {}}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    eventually(Duration::from_secs(30), "attempt 1 to tick", || {
        (ticks(dir).len() >= 5).then_some(())
    });
    // As `pkill -9 errand` would: the guardian first, then errand.
    let guardian = guardian_of(server.child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guardian),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    server.kill9();

    let restarted = Server::start_in(dir, &config);
    let job = wait_state(&restarted, id, "completed", Duration::from_secs(30));
    assert_eq!(job["attempt"], 2, "{job}");
    let ticks = ticks(dir);
    let first_of_2 = ticks
        .iter()
        .position(|&a| a == 2)
        .expect("attempt 2 ticked");
    assert!(
        ticks[first_of_2..].iter().all(|&a| a != 1),
        "attempt 1 ticked after attempt 2 started: {ticks:?}"
    );
}

fn sqlite(dir: &Path, config: &str) -> Server {
    Server::start_in(dir, config)
}

#[test]
fn a_command_jobs_processes_die_with_errand_on_sqlite() {
    attempt_one_dies_with_errand(COMMAND_KIND, sqlite);
}

#[test]
fn a_pool_jobs_processes_die_with_errand_on_sqlite() {
    attempt_one_dies_with_errand(POOL_KIND, sqlite);
}

#[test]
fn a_command_jobs_processes_die_with_errand_on_postgres() {
    let (_pg, url) = pg::fresh();
    attempt_one_dies_with_errand(COMMAND_KIND, |dir, config| {
        pg::serve(dir, &url, "errand", config)
    });
}

#[test]
fn a_pool_jobs_processes_die_with_errand_on_postgres() {
    let (_pg, url) = pg::fresh();
    attempt_one_dies_with_errand(POOL_KIND, |dir, config| {
        pg::serve(dir, &url, "errand", config)
    });
}
