//! The real client libraries' workers against the real `errand serve`:
//! PHP (clients/php/bin/errand-worker) and Python (`python -m errand.worker`)
//! processes run the handlers of tests/remote_clients/, which log every run's
//! start and end, so the test can count what ran where.
//!
//! - The kill test: 20,000 jobs, 3 PHP + 2 Python workers, one SIGKILLed at
//!   random every 2–3 s and replaced. Every job completes; a job runs twice
//!   only when the worker holding it was killed, never two attempts at once,
//!   and the re-run starts within the lease + a few seconds of the kill (the
//!   jobs are enqueued in batches as the queue drains, so that a rescued job
//!   does not wait behind all 20,000). On SQLite and on PostgreSQL.
//! - The fencing test: a PHP and a Python worker SIGSTOPped mid-job past
//!   their lease, then resumed: their late outcome changes nothing (the
//!   result is the re-runner's) and they go on working.
//!
//! Needs php-cli (>= 8.1, with curl, pcntl and posix) and python3 (>= 3.9):
//! without them the tests fail, they never skip.

mod common;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The lease of these tests' server, in seconds: short, so kills and stops
/// are rescued quickly, yet long enough that a live worker on a loaded
/// machine (or a finish behind a slow disk write) never loses one.
const LEASE: f64 = 3.0;

/// Remote kinds with a short lease and a fast rescue sweep.
const CONFIG: &str = r#"
[worker]
lease = "3s"
heartbeat = "1s"
maintenance_interval = "250ms"

[kinds.tick]
remote = true

[kinds.stall]
remote = true
"#;

/// The tests are timing-sensitive (leases of 3 s) on a small machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary directory for the workers' logs, kept (and named) when the
/// test fails, to see what each worker did.
struct LogDir(Option<tempfile::TempDir>);

impl LogDir {
    fn new() -> LogDir {
        LogDir(Some(tempfile::tempdir().unwrap()))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let kept = self.0.take().unwrap().keep();
            eprintln!("the workers' logs are in {}", kept.display());
        }
    }
}

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails the test (never skips it) when php with curl, pcntl and posix, or
/// python3, is missing.
fn require_runtimes() {
    let php = Command::new("php")
        .args([
            "-r",
            "foreach (['curl', 'pcntl', 'posix'] as $e) { if (!extension_loaded($e)) { echo $e; exit(1); } } \
             exit(PHP_VERSION_ID >= 80100 ? 0 : 2);",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("php is required (Debian: apt-get install php-cli php-curl): {e}")
        });
    assert!(
        php.status.success(),
        "php >= 8.1 with curl, pcntl and posix is required (Debian: apt-get install php-cli php-curl); \
         missing: {}",
        String::from_utf8_lossy(&php.stdout)
    );
    let python = Command::new("python3")
        .args(["-c", "import sys; sys.exit(sys.version_info < (3, 9))"])
        .status()
        .unwrap_or_else(|e| panic!("python3 (>= 3.9) is required: {e}"));
    assert!(python.success(), "python3 >= 3.9 is required");
}

/// Now, in seconds since the epoch: the clock the handlers' log lines use.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Php,
    Python,
}

/// One `errand-worker` process of either library, with its handler log
/// (`ID.log`) and its own log (`ID.err`) in the test's directory.
struct Worker {
    id: String,
    lang: Lang,
    child: Child,
    log: PathBuf,
    err: PathBuf,
}

impl Worker {
    /// Starts a worker named `id` against `base`; `extra` are more options
    /// of the worker command.
    fn spawn(lang: Lang, id: &str, base: &str, dir: &Path, extra: &[&str]) -> Worker {
        let log = dir.join(format!("{id}.log"));
        let err = dir.join(format!("{id}.err"));
        let handlers = repo().join("crates/errand/tests/remote_clients");
        let (mut cmd, handlers) = match lang {
            Lang::Php => {
                let mut c = Command::new("php");
                c.arg(repo().join("clients/php/bin/errand-worker"));
                (c, handlers.join("handlers.php"))
            }
            Lang::Python => {
                // The package is standard library only: run it from the source tree.
                let mut c = Command::new("python3");
                c.args(["-m", "errand.worker"])
                    .env("PYTHONPATH", repo().join("clients/python/src"))
                    .env("ERRAND_LOG", "INFO");
                (c, handlers.join("handlers.py"))
            }
        };
        cmd.args(["--url", base, "--id", id])
            .args(extra)
            .arg(handlers)
            .env_remove("ERRAND_TOKEN")
            .env_remove("ERRAND_URL")
            .env("ERRAND_TEST_WORKER", id)
            .env("ERRAND_TEST_LOG", &log)
            // Over half of a tick job's time in its handler: most kills land
            // there, few between jobs.
            .env("ERRAND_TEST_SLEEP_MS", "4")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap());
        // Killed when the thread that spawns it (the test's) ends, even if
        // the test process is SIGKILLed; the Drop below covers panics.
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {lang:?} worker {id}: {e}"));
        Worker {
            id: id.to_string(),
            lang,
            child,
            log,
            err,
        }
    }

    /// Sends `sig` to the worker process.
    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// What the worker library logged.
    fn err_text(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The handler's log lines.
    fn runs(&self) -> Vec<Run> {
        read_runs(&self.log)
    }

    /// SIGTERM, then its exit status (the libraries exit 0 on a clean stop).
    fn stop(&mut self, limit: Duration) -> i32 {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {limit:?}; its log:\n{}",
                self.id,
                self.err_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL too; the SIGCONT is for good measure.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of a handler log: `start|end JOB FENCE ATTEMPT WORKER UNIX_TIME`.
#[derive(Debug)]
struct Run {
    end: bool,
    job: i64,
    fence: i64,
    attempt: i64,
    worker: String,
    at: f64,
}

/// Every line of the handler log at `path` (none when it does not exist yet).
fn read_runs(path: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 6, "{}: bad line {line:?}", path.display());
            let n =
                |i: usize| -> i64 { f[i].parse().unwrap_or_else(|_| panic!("bad line {line:?}")) };
            assert!(matches!(f[0], "start" | "end"), "bad line {line:?}");
            Run {
                end: f[0] == "end",
                job: n(1),
                fence: n(2),
                attempt: n(3),
                worker: f[4].to_string(),
                at: f[5].parse().unwrap(),
            }
        })
        .collect()
}

/// A small xorshift generator: which worker dies and when, reproducible from
/// the printed seed.
struct Rng(u64);

impl Rng {
    /// The next number below `n`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every job of `kind`, by id: state, attempt and result (pages of 1,000).
fn all_jobs(server: &Server, kind: &str) -> HashMap<i64, Value> {
    let mut jobs = HashMap::new();
    let mut cursor: Option<i64> = None;
    loop {
        let mut url = server.url(&format!("/v1/jobs?kind={kind}&limit=1000"));
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(&url);
        assert_eq!(status, 200, "{page}");
        for j in page["jobs"].as_array().unwrap() {
            jobs.insert(j["id"].as_i64().unwrap(), j.clone());
        }
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => return jobs,
        }
    }
}

/// An RFC 3339 time of the API in seconds since the epoch.
fn api_time(v: &Value) -> f64 {
    let t: jiff::Timestamp = v
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap();
    t.as_microsecond() as f64 / 1e6
}

/// What a kill test saw, for its report.
#[derive(Debug)]
struct KillReport {
    kills: usize,
    rerun_jobs: usize,
    killed_in_handler: usize,
    killed_before_finish: usize,
    /// Seconds from a kill to the rescue of the job it cut short.
    max_rescue_delay: f64,
    /// Seconds from a kill to the re-run's start.
    max_rerun_delay: f64,
    /// Seconds between a killed run's start and the re-run's.
    min_rerun_gap: f64,
    unstarted_claims: i64,
    elapsed: Duration,
}

/// Jobs waiting in the queue at most: a rescued job goes to the back of it
/// (it is available again from the rescue on, and claims take the oldest
/// first), so a deep backlog would delay every re-run by the time to drain it.
const BACKLOG: u64 = 250;

/// The kill test on `server` (which runs the `tick` kind): `n` jobs,
/// enqueued in batches as the queue drains, 3 PHP and 2 Python workers, one
/// SIGKILLed at random every 2–3 s and replaced by a fresh one of its
/// language until every job completed; then counts every handler run from
/// the logs in `dir`.
fn kill_test(server: &Server, dir: &Path, n: usize) -> KillReport {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill test: seed {seed}");
    let mut rng = Rng(seed);
    let mut ids = Vec::with_capacity(n);
    let started = Instant::now();

    let mut spawned = 0;
    let mut spawn = |lang: Lang| {
        spawned += 1;
        let name = match lang {
            Lang::Php => "php",
            Lang::Python => "py",
        };
        Worker::spawn(lang, &format!("{name}-{spawned}"), &server.base, dir, &[])
    };
    let mut live: Vec<Worker> = [Lang::Php, Lang::Php, Lang::Php, Lang::Python, Lang::Python]
        .into_iter()
        .map(&mut spawn)
        .collect();
    let mut dead: Vec<Worker> = Vec::new();
    // Worker id -> when it was sent SIGKILL.
    let mut kills: HashMap<String, f64> = HashMap::new();
    let next_gap = |rng: &mut Rng| Duration::from_millis(2000 + rng.below(1000));
    let mut next_kill = Instant::now() + next_gap(&mut rng);
    let limit = Duration::from_secs(240);
    loop {
        let now = stats(server);
        let count = |state: &str| now["kinds"]["tick"][state].as_u64().unwrap_or(0);
        assert_eq!(count("failed"), 0, "jobs failed: {now}");
        if count("completed") >= n as u64 {
            break;
        }
        let waiting = count("available");
        if waiting < BACKLOG / 2 && ids.len() < n {
            let more = (n - ids.len()).min((BACKLOG - waiting) as usize);
            ids.extend(enqueue_batches_of(server, "tick", more, more));
        }
        assert!(started.elapsed() < limit, "not done after {limit:?}: {now}");
        for w in live.iter_mut() {
            if let Some(status) = w.child.try_wait().unwrap() {
                panic!(
                    "{} exited on its own ({status}); its log:\n{}",
                    w.id,
                    w.err_text()
                );
            }
        }
        if Instant::now() >= next_kill {
            let i = rng.below(live.len() as u64) as usize;
            kills.insert(live[i].id.clone(), unix_now());
            live[i].child.kill().unwrap();
            live[i].child.wait().unwrap();
            let fresh = spawn(live[i].lang);
            dead.push(std::mem::replace(&mut live[i], fresh));
            next_kill = Instant::now() + next_gap(&mut rng);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    for w in live.iter_mut() {
        let code = w.stop(Duration::from_secs(20));
        assert_eq!(code, 0, "{} did not stop cleanly:\n{}", w.id, w.err_text());
    }

    // Every run, job by job, in claim (fence) order.
    let mut runs: HashMap<i64, Vec<Run>> = HashMap::new();
    let mut ended: HashSet<(i64, i64)> = HashSet::new();
    // Each worker's last start: the job it held when it was killed, if any.
    let mut last_start: HashMap<String, (i64, i64)> = HashMap::new();
    for w in live.iter().chain(&dead) {
        for r in w.runs() {
            assert_eq!(r.worker, w.id, "{r:?} in {}'s log", w.id);
            if let Some(&killed) = kills.get(&w.id) {
                assert!(r.at < killed, "{r:?} logged after {} was killed", w.id);
            }
            if r.end {
                ended.insert((r.job, r.fence));
            } else {
                last_start.insert(w.id.clone(), (r.job, r.fence));
                runs.entry(r.job).or_default().push(r);
            }
        }
    }
    for list in runs.values_mut() {
        list.sort_by_key(|r| r.fence);
    }

    let jobs = all_jobs(server, "tick");
    assert_eq!(jobs.len(), n, "jobs listed");
    let mut report = KillReport {
        kills: kills.len(),
        rerun_jobs: 0,
        killed_in_handler: 0,
        killed_before_finish: 0,
        max_rescue_delay: 0.0,
        max_rerun_delay: 0.0,
        min_rerun_gap: f64::MAX,
        unstarted_claims: 0,
        elapsed,
    };
    for id in &ids {
        let job = &jobs[id];
        assert_eq!(job["state"], "completed", "{job}");
        let list = runs
            .get(id)
            .unwrap_or_else(|| panic!("job {id} completed but its handler never ran: {job}"));
        // A run a kill cut short must have been followed by another.
        let last = list.last().unwrap();
        assert!(
            ended.contains(&(*id, last.fence)),
            "job {id}: its last run did not end: {list:?}"
        );
        assert_eq!(
            job["result"],
            json!({"worker": last.worker}),
            "job {id}: the result is from its last run {list:?}"
        );
        let attempt = job["attempt"].as_i64().unwrap();
        assert_eq!(attempt, last.attempt, "job {id}: {job} {list:?}");
        // Claims that never reached the handler: a worker killed between its
        // claim's answer and the handler's first line.
        report.unstarted_claims += attempt - list.len() as i64;
        assert!(attempt >= list.len() as i64, "job {id}: {job} {list:?}");
        if list.len() > 1 {
            report.rerun_jobs += 1;
        }
        // Every earlier attempt ended by its lease expiring (never by a
        // finish of a run that was not the last), recorded with its time.
        let errors = job["errors"].as_array().unwrap();
        assert_eq!(errors.len() as i64, attempt - 1, "job {id}: {job}");
        let mut rescued_at: HashMap<i64, f64> = HashMap::new();
        for e in errors {
            assert!(
                e["error"].as_str().unwrap().starts_with("lease expired"),
                "job {id}: {job}"
            );
            rescued_at.insert(e["attempt"].as_i64().unwrap(), api_time(&e["at"]));
        }
        for pair in list.windows(2) {
            let (early, next) = (&pair[0], &pair[1]);
            let killed = *kills.get(&early.worker).unwrap_or_else(|| {
                panic!(
                    "job {id} ran again though {} was never killed: {list:?}",
                    early.worker
                )
            });
            assert_eq!(
                last_start[&early.worker],
                (*id, early.fence),
                "job {id} ran again but was not the job {} held when killed: {list:?}",
                early.worker
            );
            if ended.contains(&(*id, early.fence)) {
                report.killed_before_finish += 1;
            } else {
                report.killed_in_handler += 1;
            }
            assert!(next.attempt > early.attempt, "job {id}: {list:?}");
            // Never two attempts at once: the lease expired after the kill
            // (never under a live worker), and the re-run started after that.
            let rescued = rescued_at[&early.attempt];
            assert!(
                rescued > killed,
                "job {id} was rescued from {} before it was killed: {job} {list:?}",
                early.worker
            );
            assert!(
                next.at > rescued,
                "job {id} re-ran before its lease expired: {job} {list:?}"
            );
            assert!(
                rescued - killed <= LEASE + 2.0,
                "job {id} was rescued {:.2} s after the kill: {job} {list:?}",
                rescued - killed
            );
            let delay = next.at - killed;
            assert!(
                delay <= LEASE + 5.0,
                "job {id} re-ran {delay:.2} s after the kill: {list:?}"
            );
            report.max_rescue_delay = report.max_rescue_delay.max(rescued - killed);
            let gap = next.at - early.at;
            assert!(
                gap >= LEASE - 1.0,
                "job {id} re-ran {gap:.2} s after its first start, within the lease: {list:?}"
            );
            report.max_rerun_delay = report.max_rerun_delay.max(delay);
            report.min_rerun_gap = report.min_rerun_gap.min(gap);
        }
    }
    // Each kill interrupts at most one job (every worker runs one at a time).
    assert!(
        report.rerun_jobs as i64 + report.unstarted_claims <= report.kills as i64,
        "{report:?}"
    );
    assert!(
        report.kills >= 3,
        "too few kills to mean anything: {report:?}"
    );
    assert!(
        report.rerun_jobs >= 1,
        "no kill landed while a handler ran: {report:?}"
    );
    eprintln!("kill test: {n} jobs in {:.1?}, {report:?}", report.elapsed);
    report
}

#[test]
fn killed_workers_lose_no_job_on_sqlite() {
    require_runtimes();
    let _serial = serial();
    let server = Server::start(CONFIG);
    let logs = LogDir::new();
    kill_test(&server, logs.path(), 20_000);
}

#[test]
fn killed_workers_lose_no_job_on_postgres() {
    require_runtimes();
    let _serial = serial();
    let (_pg, url) = pg::fresh();
    let logs = LogDir::new();
    let server = pg::serve(logs.path(), &url, "errand", CONFIG);
    kill_test(&server, logs.path(), 20_000);
}

/// How the stopped worker must tell its late outcome was not taken.
enum Refusal {
    /// It reached its finish, which errand refused (PHP without the alarm).
    Finish,
    /// Its heartbeat on resuming said the job was lost: no finish sent (PHP's alarm).
    Lost,
    /// Either, whichever of its threads runs first on resuming (Python).
    Either,
}

/// A `lang` worker (with `extra` options) SIGSTOPped in the middle of a job
/// past its lease, then resumed: another worker re-ran the job and its
/// result stays; the resumed worker logs the refusal and works on.
fn stopped_worker_is_fenced(
    server: &Server,
    dir: &Path,
    lang: Lang,
    name: &str,
    extra: &[&str],
    refusal: Refusal,
) {
    let mut a = Worker::spawn(lang, &format!("{name}-stopped"), &server.base, dir, extra);
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "stall", "payload": {"seconds": 1.5}}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    let first = eventually(Duration::from_secs(30), "the first run to start", || {
        a.runs().into_iter().find(|r| r.job == id)
    });
    a.signal(Signal::SIGSTOP);
    let stopped_at = unix_now();
    assert!(
        !a.runs().iter().any(|r| r.job == id && r.end),
        "{name}: the first run ended before the SIGSTOP (the machine is too slow for this test)"
    );

    let mut b = Worker::spawn(lang, &format!("{name}-rerun"), &server.base, dir, extra);
    let done = wait_state(server, id, "completed", Duration::from_secs(30));
    let rerun = b
        .runs()
        .into_iter()
        .find(|r| r.job == id && !r.end)
        .unwrap_or_else(|| panic!("{name}: the re-runner never ran job {id}: {done}"));
    assert_eq!(
        done["result"],
        json!({"worker": b.id, "attempt": 2}),
        "{done}"
    );
    assert_eq!(done["attempt"], 2, "{done}");
    assert!(rerun.fence > first.fence, "{first:?} {rerun:?}");
    // The re-run waited for the stopped worker's lease to run out.
    assert!(
        rerun.at - first.at >= LEASE - 1.0,
        "{name}: re-ran {:.2} s after the first start",
        rerun.at - first.at
    );
    assert!(rerun.at > stopped_at, "{first:?} {rerun:?}");

    a.signal(Signal::SIGCONT);
    // The resumed handler runs to its end and the library says what it did
    // with its outcome.
    let finish_refused = format!("job {id} finish refused: finished (state completed)");
    let php_lost = format!("job {id} was lost while it ran; its outcome is not reported");
    let py_refused = format!("job {id}: success not applied (finished, now completed)");
    let py_lost = format!("job {id} lost (finished, now completed): abandoning it");
    let said = eventually(
        Duration::from_secs(15),
        "the resumed worker to give up its outcome",
        || {
            let log = a.err_text();
            let ended = a.runs().iter().any(|r| r.job == id && r.end);
            let said = match refusal {
                Refusal::Finish => log.contains(&finish_refused).then_some("finish refused"),
                Refusal::Lost => log.contains(&php_lost).then_some("lost at a heartbeat"),
                Refusal::Either if log.contains(&py_refused) => Some("finish refused"),
                Refusal::Either => log.contains(&py_lost).then_some("lost at a heartbeat"),
            };
            if ended { said } else { None }
        },
    );
    eprintln!("fencing ({name}): the resumed worker's outcome was {said}");
    let after = job(server, id);
    assert_eq!(after["state"], "completed", "{after}");
    assert_eq!(
        after["result"],
        json!({"worker": b.id, "attempt": 2}),
        "{after}"
    );
    assert_eq!(after["attempt"], 2, "{after}");

    // The resumed worker is alive and well: with the re-runner gone, it
    // takes the next job.
    assert_eq!(b.stop(Duration::from_secs(20)), 0, "{}", b.err_text());
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "{name}: the resumed worker exited:\n{}",
        a.err_text()
    );
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &json!({"kind": "stall", "payload": {"seconds": 0}}),
    );
    assert_eq!(status, 201, "{body}");
    let next = body["id"].as_i64().unwrap();
    let next = wait_state(server, next, "completed", Duration::from_secs(30));
    assert_eq!(
        next["result"],
        json!({"worker": a.id, "attempt": 1}),
        "{next}"
    );
    assert_eq!(a.stop(Duration::from_secs(20)), 0, "{}", a.err_text());
}

#[test]
fn workers_stopped_past_their_lease_are_fenced_off() {
    require_runtimes();
    let _serial = serial();
    let server = Server::start(CONFIG);
    let logs = LogDir::new();
    let dir = logs.path();
    // Without the alarm no heartbeat runs beside the handler: on resuming
    // it returns and sends its finish, which the fence refuses.
    stopped_worker_is_fenced(
        &server,
        dir,
        Lang::Php,
        "php-noalarm",
        &["--no-alarm"],
        Refusal::Finish,
    );
    // With it (the default), the SIGALRM that came due while stopped
    // heartbeats first and learns the job is lost.
    stopped_worker_is_fenced(&server, dir, Lang::Php, "php", &[], Refusal::Lost);
    stopped_worker_is_fenced(&server, dir, Lang::Python, "py", &[], Refusal::Either);
}
