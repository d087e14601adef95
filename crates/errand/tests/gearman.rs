//! The Gearman listener end to end (issue 14, docs/gearman.md): the real
//! binary on SQLite (and, at the end, two nodes sharing one PostgreSQL
//! database), driven by the real tools as separate processes: the
//! `gearman` CLI and `gearadmin` (Debian `gearman-tools`) and PHP scripts on
//! the `gearman` extension (Debian `php-gearman`), plus raw packets for bad
//! input. The tools are required: a missing one fails the test, saying what
//! to install.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const CONFIG: &str = r#"
[gearman]
listen = "127.0.0.1:0"

[worker]
poll_interval = "200ms"
lease = "3s"
heartbeat = "1s"

[kinds.reverse]
remote = true
backoff = { base = "200ms", max = "1s", jitter = 0.0 }

[kinds.slow]
remote = true
timeout = "1s"
max_attempts = 1
"#;

/// Fails (never skips) when a tool the tests drive is missing.
fn require_tools() {
    let php = Command::new("php").arg("-m").output();
    let has_ext = php.as_ref().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "gearman")
    });
    assert!(
        has_ext,
        "the Gearman tests need PHP with the gearman extension: apt-get install php-cli php-gearman"
    );
    for tool in ["gearman", "gearadmin"] {
        let found = Command::new(tool).arg("-H").output().is_ok();
        assert!(
            found,
            "the Gearman tests need `{tool}`: apt-get install gearman-tools"
        );
    }
}

/// A server with `CONFIG` and its Gearman port.
fn start(dir: &Path) -> (Server, u16) {
    let server = Server::start_in(dir, CONFIG);
    let port = gearman_port(&server);
    (server, port)
}

/// The port the server's log announces for the Gearman listener.
fn gearman_port(server: &Server) -> u16 {
    eventually(Duration::from_secs(10), "the Gearman listener", || {
        let log = server.log_text();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("Gearman listener on "))?;
        let at = line.find("Gearman listener on ")? + "Gearman listener on ".len();
        let addr: String = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
            .collect();
        addr.rsplit(':').next()?.parse().ok()
    })
}

/// The PHP worker: `worker.php PORT FUNCTION MODE COUNT`.
const WORKER_PHP: &str = r#"<?php
[$_, $port, $fn, $mode, $count] = $argv;
$w = new GearmanWorker();
$w->addServer('127.0.0.1', (int)$port);
$w->setId("php-$mode");
$ran = 0;
$w->addFunction($fn, function (GearmanJob $job) use ($mode, &$ran) {
    $ran++;
    switch ($mode) {
        case 'reverse':
            return strrev($job->workload());
        case 'data':
            $job->sendData('d1');
            $job->sendStatus(1, 2);
            $job->sendData('d2');
            return 'done';
        case 'fail-once':
            $marker = getenv('MARKER');
            if (!file_exists($marker)) {
                touch($marker);
                $job->setReturn(GEARMAN_WORK_FAIL);
                return null;
            }
            return 'second';
        case 'exception':
            $job->sendException('boom');
            return null;
        case 'hang':
            file_put_contents(getenv('MARKER'), $job->handle());
            sleep(120);
            return 'late';
        case 'log':
            // One line per run: "pid handle workload"; "slow" first
            // touches the marker and sleeps 3 s.
            if ($job->workload() === 'slow') {
                touch(getenv('MARKER'));
                sleep(3);
            }
            $line = getmypid() . ' ' . $job->handle() . ' ' . $job->workload() . "\n";
            file_put_contents(getenv('LOG'), $line, FILE_APPEND | LOCK_EX);
            return 'ok';
    }
});
// Counted in the callback: after a failed job, work() answers false
// (WORK_FAIL) and then once true without running anything.
while ($ran < (int)$count) {
    if (!$w->work() && $w->returnCode() != GEARMAN_WORK_FAIL) {
        fwrite(STDERR, "work failed: " . $w->returnCode() . " " . $w->error() . "\n");
        exit(1);
    }
}
"#;

/// Scripts and spawned processes of one test, killed when it ends.
struct Php {
    dir: PathBuf,
    port: u16,
    children: Vec<Child>,
}

impl Php {
    fn new(dir: &Path, port: u16) -> Php {
        std::fs::write(dir.join("worker.php"), WORKER_PHP).unwrap();
        Php {
            dir: dir.to_path_buf(),
            port,
            children: Vec::new(),
        }
    }

    /// Starts a worker of `function` in `mode` for `count` jobs; answers
    /// its index in `children`.
    fn worker(&mut self, function: &str, mode: &str, count: u32) -> usize {
        let child = Command::new("php")
            .arg(self.dir.join("worker.php"))
            .args([&self.port.to_string(), function, mode, &count.to_string()])
            .env("MARKER", self.dir.join(format!("marker-{mode}")))
            .env("LOG", self.dir.join("runs.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start php");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for worker `i` to exit successfully.
    fn wait_ok(&mut self, i: usize, limit: Duration) {
        let child = &mut self.children[i];
        let status = eventually(limit, "the PHP worker to exit", || {
            child.try_wait().unwrap()
        });
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "PHP worker failed: {err}");
    }

    /// Runs a PHP client script (`$c` is a client of the server) to its end.
    fn client(&self, body: &str) -> Output {
        self.client_with(true, body)
    }

    /// [`Php::client`], with the `exceptions` option on or off.
    fn client_with(&self, exceptions: bool, body: &str) -> Output {
        let script = format!(
            "<?php\n$port = {};\n$c = new GearmanClient();\n$c->addServer('127.0.0.1', $port, {exceptions});\n{body}\n",
            self.port
        );
        let path = self.dir.join("client.php");
        std::fs::write(&path, script).unwrap();
        let out = Command::new("timeout")
            .args(["30", "php"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PHP client failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Php {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn gearman_cli(port: u16, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .args(["30", "gearman", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gearman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn gearadmin(port: u16, arg: &str) -> String {
    let out = Command::new("timeout")
        .args([
            "10",
            "gearadmin",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            arg,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "gearadmin {arg} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The errand job id in a handle `H:<node>:<id>`.
fn id_of(handle: &str) -> i64 {
    handle.trim().rsplit(':').next().unwrap().parse().unwrap()
}

fn jobs_of(server: &Server, kind: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(&server.url(&format!("/v1/jobs?kind={kind}&limit=1000")));
    assert_eq!(status, 200, "{body}");
    body["jobs"].as_array().unwrap().clone()
}

#[test]
fn cli_background_job_runs_on_a_php_worker_and_completes_in_errand() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    gearman_cli(port, &["-b", "-f", "reverse", "hello"]);
    // Durable before JOB_CREATED: the job is in the store already.
    let jobs = jobs_of(&server, "reverse");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["payload"], "hello");
    assert!(
        jobs[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "gearman")
    );
    let id = jobs[0]["id"].as_i64().unwrap();
    let mut php = Php::new(tmp.path(), port);
    let w = php.worker("reverse", "reverse", 1);
    let job = wait_state(&server, id, "completed", Duration::from_secs(20));
    assert_eq!(job["result"], "olleh");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn php_client_background_normal_tasks_status_and_ping() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    // Background first, with no worker yet: queued, status known, not running.
    let out = php.client(
        r#"$h = $c->doBackground('reverse', 'bg1');
echo $h, "\n";
$s = $c->jobStatus($h);
echo json_encode($s), "\n";
var_export($c->ping('x'));"#,
    );
    let out = text(&out);
    let mut lines = out.lines();
    let handle = lines.next().unwrap();
    assert!(handle.starts_with("H:"), "{out}");
    assert_eq!(lines.next().unwrap(), "[true,false,0,0]", "{out}");
    assert_eq!(lines.next().unwrap(), "true", "{out}");
    let id = id_of(handle);
    assert_eq!(job(&server, id)["state"], "available");

    let w = php.worker("reverse", "reverse", 5);
    wait_state(&server, id, "completed", Duration::from_secs(20));
    // doNormal round trip, then three tasks on one connection.
    let out = php.client(
        r#"echo $c->doNormal('reverse', 'normal'), "|", $c->returnCode(), "\n";
$c->setCompleteCallback(function ($t) { echo $t->unique(), '=', $t->data(), "\n"; });
$c->addTask('reverse', 'abc', null, 'u1');
$c->addTaskHigh('reverse', 'def', null, 'u2');
$c->addTaskLow('reverse', 'ghi', null, 'u3');
var_export($c->runTasks());
echo "\n";
$s = $c->jobStatus('H:nowhere:999999');
echo json_encode($s), "\n";"#,
    );
    let out = text(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lamron|0", "{out}");
    let mut results: Vec<&str> = lines[1..4].to_vec();
    results.sort();
    assert_eq!(results, ["u1=cba", "u2=fed", "u3=ihg"], "{out}");
    assert_eq!(lines[4], "true", "{out}");
    assert_eq!(lines[5], "[false,false,0,0]", "{out}");
    php.wait_ok(w, Duration::from_secs(20));
    let jobs = jobs_of(&server, "reverse");
    assert_eq!(jobs.len(), 5);
    assert!(jobs.iter().all(|j| j["state"] == "completed"));
    // Priorities map onto errand's: high below normal below low.
    let prio = |u: &str| {
        jobs.iter().find(|j| j["unique_key"] == u).unwrap()["priority"]
            .as_i64()
            .unwrap()
    };
    assert!(prio("u2") < prio("u1") && prio("u1") < prio("u3"));
}

#[test]
fn foreground_client_gets_data_status_and_the_result_in_order() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    let w = php.worker("reverse", "data", 1);
    let out = php.client(
        r#"$c->setDataCallback(function ($t) { echo "data:", $t->data(), "\n"; });
$c->setStatusCallback(function ($t) { echo "status:", $t->taskNumerator(), "/", $t->taskDenominator(), "\n"; });
$c->setCompleteCallback(function ($t) { echo "complete:", $t->data(), "\n"; });
$c->addTask('reverse', 'x');
$c->runTasks();"#,
    );
    assert_eq!(text(&out), "data:d1\nstatus:1/2\ndata:d2\ncomplete:done\n");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn a_work_fail_on_a_background_job_is_retried() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    let out = gearman_cli(port, &["-b", "-f", "reverse", "again"]);
    drop(out);
    let id = jobs_of(&server, "reverse")[0]["id"].as_i64().unwrap();
    let w = php.worker("reverse", "fail-once", 2);
    let job = wait_state(&server, id, "completed", Duration::from_secs(20));
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"], "second");
    let error = job["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("WORK_FAIL"), "{job}");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn each_functions_failures_end_its_background_jobs_as_configured() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{CONFIG}\n[gearman.functions.reverse]\non_fail = \"permanent\"\non_exception = \"deadly\"\non_disconnect = \"permanent\"\n"
    );
    let server = Server::start_in(tmp.path(), &config);
    let port = gearman_port(&server);
    let mut php = Php::new(tmp.path(), port);
    // WORK_FAIL → permanent: failed after one attempt, no retry.
    gearman_cli(port, &["-b", "-f", "reverse", "once"]);
    let id = jobs_of(&server, "reverse")[0]["id"].as_i64().unwrap();
    let w = php.worker("reverse", "fail-once", 1);
    let job = wait_state(&server, id, "failed", Duration::from_secs(20));
    assert_eq!(job["attempt"], 1, "{job}");
    php.wait_ok(w, Duration::from_secs(10));
    // WORK_EXCEPTION → deadly: back at once, the attempt not counted.
    gearman_cli(port, &["-b", "-f", "reverse", "deadly"]);
    let id = newest_id(&server, "reverse");
    let w = php.worker("reverse", "exception", 1);
    php.wait_ok(w, Duration::from_secs(20));
    let job = wait_state(&server, id, "available", Duration::from_secs(20));
    assert_eq!(job["attempt"], 0, "deadly refunds the attempt: {job}");
    let error = job["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("deadly") && error.contains("boom"), "{job}");
    let w = php.worker("reverse", "reverse", 1);
    let job = wait_state(&server, id, "completed", Duration::from_secs(20));
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["result"], "yldaed");
    php.wait_ok(w, Duration::from_secs(10));
    // A disconnect mid-job → permanent: failed at once, not run again.
    let hang = php.worker("reverse", "hang", 1);
    gearman_cli(port, &["-b", "-f", "reverse", "cut"]);
    let id = newest_id(&server, "reverse");
    eventually(Duration::from_secs(20), "the job to start", || {
        tmp.path().join("marker-hang").exists().then_some(())
    });
    php.children[hang].kill().unwrap();
    let _ = php.children[hang].wait();
    let job = wait_state(&server, id, "failed", Duration::from_secs(10));
    assert_eq!(job["attempt"], 1, "{job}");
    let error = job["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("connection closed"), "{job}");
}

#[test]
fn outcome_settings_for_unknown_or_local_kinds_are_refused() {
    let err = refused_config("[gearman.functions.nope]\non_fail = \"permanent\"\n");
    assert!(
        err.contains("[gearman.functions.nope]") && err.contains("no kind"),
        "{err}"
    );
    let err = refused_config(
        "[kinds.local]\ncommand = [\"true\"]\n[gearman.functions.local]\non_fail = \"retry\"\n",
    );
    assert!(err.contains("remote = true"), "{err}");
    let err =
        refused_config("[kinds.r]\nremote = true\n[gearman.functions.r]\non_fail = \"ignore\"\n");
    assert!(err.contains("on_fail") || err.contains("ignore"), "{err}");
}

/// The id of the newest job of `kind`.
fn newest_id(server: &Server, kind: &str) -> i64 {
    jobs_of(server, kind)
        .iter()
        .filter_map(|j| j["id"].as_i64())
        .max()
        .unwrap()
}

#[test]
fn jobs_whose_foreground_client_left_still_run() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    // A foreground job whose client leaves before any worker took it
    // (gearmand drops it).
    let mut a = connect(port);
    let handle = submit_foreground(&mut a, b"", b"alone");
    drop(a);
    let alone = id_of(std::str::from_utf8(&handle).unwrap());
    // A background job a foreground client attached to by unique, and left
    // (gearmand drops that one too).
    let mut b = connect(port);
    let (_, created) = submit_bg(&mut b, SUBMIT_JOB_BG, "reverse", b"shared", b"attached");
    let mut c = connect(port);
    let attached = submit_foreground(&mut c, b"shared", b"attached");
    assert_eq!(created, attached, "the foreground submit coalesced");
    drop(c);
    drop(b);
    let shared = id_of(std::str::from_utf8(&attached).unwrap());
    let mut php = Php::new(tmp.path(), port);
    let w = php.worker("reverse", "reverse", 2);
    let job = wait_state(&server, alone, "completed", Duration::from_secs(20));
    assert_eq!(job["result"], "enola");
    let job = wait_state(&server, shared, "completed", Duration::from_secs(20));
    assert_eq!(job["result"], "dehcatta");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn a_worker_killed_mid_job_has_its_job_run_by_another() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    let hang = php.worker("reverse", "hang", 1);
    gearman_cli(port, &["-b", "-f", "reverse", "rescue"]);
    let id = jobs_of(&server, "reverse")[0]["id"].as_i64().unwrap();
    wait_state(&server, id, "running", Duration::from_secs(20));
    let marker = tmp.path().join("marker-hang");
    eventually(Duration::from_secs(10), "the job to start", || {
        marker.exists().then_some(())
    });
    // kill -9: the socket closes without a word.
    php.children[hang].kill().unwrap();
    let _ = php.children[hang].wait();
    let w = php.worker("reverse", "reverse", 1);
    let job = wait_state(&server, id, "completed", Duration::from_secs(30));
    assert_eq!(job["result"], "eucser");
    assert_eq!(job["attempt"], 2, "{job}");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn background_jobs_survive_kill_9_of_errand() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    survive_kill_9(tmp.path(), || start(tmp.path()));
}

/// 1,000 background submits acknowledged by the server `start` starts
/// survive its `kill -9` and all run once it is started again.
fn survive_kill_9(dir: &Path, start: impl Fn() -> (Server, u16)) {
    let (mut server, port) = start();
    let php = Php::new(dir, port);
    php.client(r#"for ($i = 0; $i < 1000; $i++) { $c->doBackground('reverse', "job$i"); if ($c->returnCode() != GEARMAN_SUCCESS) { exit(1); } }"#);
    server.kill9();
    let (server, port) = start();
    // Every acknowledged submit is there.
    assert_eq!(kind_count(&server, "reverse", "available"), 1000);
    let mut php = Php::new(dir, port);
    let w = php.worker("reverse", "reverse", 1000);
    wait_completed(&server, "reverse", 1000, Duration::from_secs(120));
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn admin_status_workers_and_version() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    gearman_cli(port, &["-b", "-f", "reverse", "a"]);
    gearman_cli(port, &["-b", "-f", "reverse", "b"]);
    assert_eq!(
        gearadmin(port, "--status"),
        "reverse\t2\t0\t0\nslow\t0\t0\t0\n.\n"
    );
    assert!(gearadmin(port, "--server-version").starts_with("errand-"));
    assert_eq!(
        gearadmin(port, "--getpid").trim(),
        _server.child.id().to_string()
    );
    let w = php.worker("reverse", "hang", 1);
    eventually(Duration::from_secs(10), "the worker's job to start", || {
        let status = gearadmin(port, "--status");
        (status == "reverse\t2\t1\t1\nslow\t0\t0\t0\n.\n").then_some(())
    });
    let workers = gearadmin(port, "--workers");
    assert!(
        workers
            .lines()
            .any(|l| l.contains(" 127.0.0.1 php-hang : reverse")),
        "{workers}"
    );
    let _ = w;
    // An unknown command line, raw.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"frobnicate\r\n").unwrap();
    let mut line = [0u8; 64];
    let n = s.read(&mut line).unwrap();
    assert_eq!(
        &line[..n],
        b"ERR UNKNOWN_COMMAND Unknown+server+commandfrobnicate\r\n"
    );
}

/// A request packet: `\0REQ`, type, size, the arguments joined by NULs.
fn req(kind: u32, args: &[&[u8]]) -> Vec<u8> {
    let body = args.join(&0u8);
    let mut out = b"\0REQ".to_vec();
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one response packet: its type and body; `None` when the server
/// closed the connection.
fn res(s: &mut TcpStream) -> Option<(u32, Vec<u8>)> {
    let mut header = [0u8; 12];
    s.read_exact(&mut header).ok()?;
    assert_eq!(&header[..4], b"\0RES");
    let kind = u32::from_be_bytes(header[4..8].try_into().unwrap());
    let size = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
    let mut body = vec![0; size];
    s.read_exact(&mut body).ok()?;
    Some((kind, body))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the server closed `s` (EOF, or a reset).
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

const ERROR: u32 = 19;

#[test]
fn bad_input_gets_an_error_or_a_close_and_changes_nothing() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    // A worker holds a job.
    let mut worker = connect(port);
    worker.write_all(&req(1, &[b"reverse"])).unwrap();
    let mut client = connect(port);
    client
        .write_all(&req(18, &[b"reverse", b"", b"payload"]))
        .unwrap();
    let (kind, handle) = res(&mut client).unwrap();
    assert_eq!(kind, 8, "JOB_CREATED");
    worker.write_all(&req(9, &[])).unwrap();
    let (kind, body) = res(&mut worker).unwrap();
    assert_eq!(kind, 11, "JOB_ASSIGN");
    assert!(body.starts_with(&handle));
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    assert_eq!(job(&server, id)["state"], "running");
    // WORK_STATUS is stored with the next lease renewal; GET_STATUS from
    // any connection reads it.
    worker.write_all(&req(12, &[&handle, b"3", b"10"])).unwrap();
    let mut expected = handle.clone();
    expected.extend_from_slice(b"\x001\x001\x003\x0010");
    eventually(Duration::from_secs(10), "the stored status", || {
        client.write_all(&req(15, &[&handle])).unwrap();
        let (kind, body) = res(&mut client).unwrap();
        assert_eq!(kind, 20, "STATUS_RES");
        (body == expected).then_some(())
    });

    // WORK_COMPLETE for another connection's job: ERROR, nothing changes.
    client.write_all(&req(13, &[&handle, b"stolen"])).unwrap();
    let (kind, body) = res(&mut client).unwrap();
    assert_eq!(kind, ERROR);
    assert!(body.starts_with(b"JOB_NOT_FOUND\0"), "{body:?}");
    assert_eq!(job(&server, id)["state"], "running");

    // An unknown function: ERROR, nothing stored.
    client.write_all(&req(18, &[b"nope", b"", b"x"])).unwrap();
    assert_eq!(res(&mut client).unwrap().0, ERROR);

    // An oversized size field: ERROR before any body is read.
    let mut big = b"\0REQ".to_vec();
    big.extend_from_slice(&18u32.to_be_bytes());
    big.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let mut s = connect(port);
    s.write_all(&big).unwrap();
    let (kind, body) = res(&mut s).unwrap();
    assert_eq!(kind, ERROR, "{body:?}");

    // Bad magic, and an unknown packet type: the connection is closed.
    let mut s = connect(port);
    s.write_all(b"\0XYZ\0\0\0\x01\0\0\0\0").unwrap();
    assert!(closed(&mut s));
    let mut s = connect(port);
    s.write_all(&req(99, &[])).unwrap();
    assert!(closed(&mut s));

    // The server is fine, and the job finishes for its real worker.
    worker.write_all(&req(13, &[&handle, b"daolyap"])).unwrap();
    let job = wait_state(&server, id, "completed", Duration::from_secs(10));
    assert_eq!(job["result"], "daolyap");
    assert_eq!(jobs_of(&server, "reverse").len(), 1);
    assert!(gearadmin(port, "--server-version").starts_with("errand-"));
}

#[test]
fn a_non_loopback_listen_address_is_refused() {
    let err = refused_config("[gearman]\nlisten = \"0.0.0.0:4730\"\n");
    assert!(
        err.contains("[gearman]") && err.contains("loopback"),
        "{err}"
    );
}

#[test]
fn exceptions_reach_clients_with_the_option_and_others_get_a_clean_fail() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    let w = php.worker("reverse", "exception", 2);
    let tasks = r#"$c->setFailCallback(function ($t) { echo "fail\n"; });
$c->setCompleteCallback(function ($t) { echo "complete\n"; });
$c->addTask('reverse', 'x');
$c->runTasks();"#;
    let with = format!(
        "$c->setExceptionCallback(function ($t) {{ echo 'exception:', $t->data(), \"\\n\"; }});\n{tasks}"
    );
    assert_eq!(text(&php.client(&with)), "exception:boom\n");
    assert_eq!(text(&php.client_with(false, tasks)), "fail\n");
    php.wait_ok(w, Duration::from_secs(10));
    // A foreground job ends failed (its client was told), not retried.
    let jobs = jobs_of(&server, "reverse");
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        assert_eq!(j["state"], "failed", "{j}");
        assert!(
            j["errors"][0]["error"]
                .as_str()
                .unwrap()
                .contains("WORK_EXCEPTION: boom")
        );
    }
}

#[test]
fn a_repeated_unique_coalesces_onto_the_live_job() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let php = Php::new(tmp.path(), port);
    let out = php.client(
        r#"echo $c->doBackground('reverse', 'one', 'same-key'), "\n";
echo $c->doBackground('reverse', 'two', 'same-key'), "\n";
echo $c->doBackground('reverse', 'three', 'other-key'), "\n";
echo json_encode($c->jobStatusByUniqueKey('same-key')), "\n";"#,
    );
    let out = text(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], lines[1], "{out}");
    assert_ne!(lines[0], lines[2], "{out}");
    assert_eq!(lines[3], "[true,false,0,0]", "{out}");
    let jobs = jobs_of(&server, "reverse");
    assert_eq!(jobs.len(), 2);
    let first = job(&server, id_of(lines[0]));
    assert_eq!(first["payload"], "one");
}

#[test]
fn an_epoch_job_is_scheduled_for_its_time_and_runs_then() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let epoch = (now + 2).to_string();
    let mut s = connect(port);
    s.write_all(&req(36, &[b"reverse", b"", epoch.as_bytes(), b"later"]))
        .unwrap();
    let (kind, handle) = res(&mut s).unwrap();
    assert_eq!(kind, 8, "JOB_CREATED");
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    let j = job(&server, id);
    assert_eq!(j["state"], "scheduled", "{j}");
    // A sleeping worker is woken when it falls due, with no other job.
    let mut php = Php::new(tmp.path(), port);
    let w = php.worker("reverse", "reverse", 1);
    let j = wait_state(&server, id, "completed", Duration::from_secs(20));
    let started = j["started_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert!(started.as_second() >= (now + 2) as i64, "{j}");
    php.wait_ok(w, Duration::from_secs(10));
}

#[test]
fn a_foreground_client_learns_of_a_cancel_over_http() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut s = connect(port);
    s.write_all(&req(7, &[b"reverse", b"", b"waiting"]))
        .unwrap();
    let (kind, handle) = res(&mut s).unwrap();
    assert_eq!(kind, 8, "JOB_CREATED");
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    let (status, body) = post(
        &server.url(&format!("/v1/jobs/{id}/cancel")),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (kind, body) = res(&mut s).unwrap();
    assert_eq!(kind, 14, "WORK_FAIL");
    assert_eq!(body, handle);

    // The admin `cancel job`, as gearadmin sends it.
    s.write_all(&req(18, &[b"reverse", b"", b"queued"]))
        .unwrap();
    let (_, handle) = res(&mut s).unwrap();
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    let h = std::str::from_utf8(&handle).unwrap();
    assert_eq!(gearadmin_args(port, &["--cancel-job", h]).trim(), "OK");
    assert_eq!(job(&server, id)["state"], "cancelled");
    let again = gearadmin_args(port, &["--cancel-job", h]);
    assert!(!again.contains("OK"), "{again}");
}

fn gearadmin_args(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .args([
            "10",
            "gearadmin",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_gearman_worker_past_the_kinds_timeout_loses_the_job() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut php = Php::new(tmp.path(), port);
    let _hang = php.worker("slow", "hang", 1);
    gearman_cli(port, &["-b", "-f", "slow", "forever"]);
    let id = jobs_of(&server, "slow")[0]["id"].as_i64().unwrap();
    // Its only attempt ends at the timeout although the worker is alive.
    let j = wait_state(&server, id, "failed", Duration::from_secs(20));
    let error = j["errors"][0]["error"].as_str().unwrap();
    assert!(error.contains("timeout"), "{j}");
}

#[test]
fn every_acknowledged_submit_survives_kill_9_mid_stream() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, port) = start(tmp.path());
    let handles = tmp.path().join("handles.txt");
    let script = tmp.path().join("stream.php");
    std::fs::write(
        &script,
        format!(
            r#"<?php
$c = new GearmanClient();
$c->addServer('127.0.0.1', {port});
$f = fopen('{}', 'w');
for ($i = 0; $i < 100000; $i++) {{
    $h = @$c->doBackground('reverse', "job$i");
    if ($c->returnCode() != GEARMAN_SUCCESS) {{ exit(0); }}
    fwrite($f, "$h\n");
    fflush($f);
}}
"#,
            handles.display()
        ),
    )
    .unwrap();
    let mut client = Command::new("php")
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(30), "200 acknowledged submits", || {
        let n = std::fs::read_to_string(&handles)
            .unwrap_or_default()
            .lines()
            .count();
        (n >= 200).then_some(())
    });
    server.kill9();
    let _ = client.wait();
    let acknowledged: Vec<i64> = std::fs::read_to_string(&handles)
        .unwrap()
        .lines()
        .map(id_of)
        .collect();
    assert!(acknowledged.len() >= 200);
    let (server, _) = start(tmp.path());
    for id in acknowledged {
        assert_eq!(job(&server, id)["kind"], "reverse");
    }
}

#[test]
fn the_cli_worker_runs_http_and_gearman_jobs_and_the_cli_client_gets_its_result() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    // A job enqueued over HTTP, for a kind Gearman workers serve.
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &serde_json::json!({"kind": "reverse", "payload": "from http"}),
    );
    assert_eq!(status, 201, "{body}");
    let http_id = body["id"].as_i64().unwrap();
    let mut worker = Command::new("gearman")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-w", "-c", "2", "-f", "reverse", "--", "tr", "a-z", "A-Z"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let j = wait_state(&server, http_id, "completed", Duration::from_secs(20));
    assert_eq!(j["result"], "FROM HTTP");
    // A foreground round trip through the CLI on both ends.
    let out = gearman_cli(port, &["-f", "reverse", "shout"]);
    assert_eq!(text(&out).trim(), "SHOUT");
    let status = eventually(Duration::from_secs(10), "the CLI worker to exit", || {
        worker.try_wait().unwrap()
    });
    assert!(status.success());
}

// Several nodes on one PostgreSQL database act as one Gearman server.

/// Node `name` (its handles `H:<name>:…`) on the PostgreSQL database
/// `url`, with `CONFIG`, and its Gearman port.
fn pg_node(dir: &Path, url: &str, name: &str) -> (Server, u16) {
    let config = CONFIG.replacen("[worker]\n", &format!("[worker]\nname = \"{name}\"\n"), 1);
    let server = pg::serve(dir, url, name, &config);
    let port = gearman_port(&server);
    (server, port)
}

/// Submits a foreground job on `s`: answers its handle.
fn submit_foreground(s: &mut TcpStream, unique: &[u8], data: &[u8]) -> Vec<u8> {
    s.write_all(&req(7, &[b"reverse", unique, data])).unwrap();
    let (kind, handle) = res(s).unwrap();
    assert_eq!(
        kind,
        8,
        "JOB_CREATED: {:?}",
        String::from_utf8_lossy(&handle)
    );
    handle
}

/// `handle` NUL `data`: the body of a `WORK_COMPLETE` or `WORK_EXCEPTION`.
fn with_data(handle: &[u8], data: &[u8]) -> Vec<u8> {
    [handle, data].join(&0u8)
}

const WORK_COMPLETE: u32 = 13;
const WORK_FAIL: u32 = 14;

#[test]
fn a_client_on_one_postgres_node_gets_the_outcome_of_a_job_that_ends_on_another() {
    require_tools();
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let (_a, port_a) = pg_node(tmp.path(), &url, "a");
    let (b, port_b) = pg_node(tmp.path(), &url, "b");
    // The CLI client on a; the only worker on b.
    let mut on_b = Php::new(tmp.path(), port_b);
    let w = on_b.worker("reverse", "reverse", 1);
    let out = gearman_cli(port_a, &["-f", "reverse", "across"]);
    assert_eq!(text(&out).trim(), "ssorca");
    on_b.wait_ok(w, Duration::from_secs(10));

    // WORK_EXCEPTION on b reaches a PHP client on a with its text, and one
    // without the option as a clean WORK_FAIL.
    let w = on_b.worker("reverse", "exception", 2);
    let on_a = Php::new(tmp.path(), port_a);
    let tasks = r#"$c->setFailCallback(function ($t) { echo "fail\n"; });
$c->setCompleteCallback(function ($t) { echo "complete\n"; });
$c->addTask('reverse', 'x');
$c->runTasks();"#;
    let with = format!(
        "$c->setExceptionCallback(function ($t) {{ echo 'exception:', $t->data(), \"\\n\"; }});\n{tasks}"
    );
    assert_eq!(text(&on_a.client(&with)), "exception:boom\n");
    assert_eq!(text(&on_a.client_with(false, tasks)), "fail\n");
    on_b.wait_ok(w, Duration::from_secs(10));

    // A cancel on b: the client waiting on a gets WORK_FAIL.
    let mut client = connect(port_a);
    let handle = submit_foreground(&mut client, b"", b"waiting");
    assert!(handle.starts_with(b"H:a:"));
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    let (status, body) = post(
        &b.url(&format!("/v1/jobs/{id}/cancel")),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(res(&mut client).unwrap(), (WORK_FAIL, handle));

    // An end no node announces (here an UPDATE behind errand's back, as a
    // NOTIFY lost while a's LISTEN connection reconnects): the waiting
    // client still learns it, from the re-read.
    let handle = submit_foreground(&mut client, b"", b"unannounced");
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    pg::sql(
        &url,
        &format!(
            "UPDATE jobs SET state = 'completed', result = '\"by hand\"', finished_at = now() \
             WHERE id = {id}"
        ),
    );
    assert_eq!(
        res(&mut client).unwrap(),
        (WORK_COMPLETE, with_data(&handle, b"by hand"))
    );
}

#[test]
fn a_unique_coalesces_across_postgres_nodes_and_both_clients_get_the_result() {
    require_tools();
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let (a, port_a) = pg_node(tmp.path(), &url, "a");
    let (_b, port_b) = pg_node(tmp.path(), &url, "b");
    let mut client_a = connect(port_a);
    let mut client_b = connect(port_b);
    let handle_a = submit_foreground(&mut client_a, b"same-key", b"first");
    let handle_b = submit_foreground(&mut client_b, b"same-key", b"second");
    // One job, each node naming it with its own prefix.
    let id = id_of(std::str::from_utf8(&handle_a).unwrap());
    assert!(handle_a.starts_with(b"H:a:"));
    assert!(handle_b.starts_with(b"H:b:"));
    assert_eq!(id_of(std::str::from_utf8(&handle_b).unwrap()), id);
    // A worker on b runs it once: its client hears on b, a's across nodes.
    let mut on_b = Php::new(tmp.path(), port_b);
    let w = on_b.worker("reverse", "reverse", 1);
    assert_eq!(
        res(&mut client_b).unwrap(),
        (WORK_COMPLETE, with_data(&handle_b, b"tsrif"))
    );
    assert_eq!(
        res(&mut client_a).unwrap(),
        (WORK_COMPLETE, with_data(&handle_a, b"tsrif"))
    );
    on_b.wait_ok(w, Duration::from_secs(10));
    let jobs = jobs_of(&a, "reverse");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["attempt"], 1, "{jobs:?}");
    assert_eq!(jobs[0]["result"], "tsrif");
}

#[test]
fn background_jobs_survive_kill_9_of_errand_on_postgres() {
    require_tools();
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    survive_kill_9(tmp.path(), || pg_node(tmp.path(), &url, "a"));
}

#[test]
fn a_job_whose_worker_on_one_postgres_node_is_killed_runs_on_another() {
    require_tools();
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let (a, port_a) = pg_node(tmp.path(), &url, "a");
    let (_b, port_b) = pg_node(tmp.path(), &url, "b");
    let mut on_b = Php::new(tmp.path(), port_b);
    let hang = on_b.worker("reverse", "hang", 1);
    // A foreground client on a waits through both attempts.
    let mut client = connect(port_a);
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let handle = submit_foreground(&mut client, b"", b"rescue");
    let id = id_of(std::str::from_utf8(&handle).unwrap());
    let marker = tmp.path().join("marker-hang");
    eventually(Duration::from_secs(20), "the job to start on b", || {
        marker.exists().then_some(())
    });
    assert_eq!(job(&a, id)["state"], "running");
    let holder = pg::sql(&url, &format!("SELECT worker FROM jobs WHERE id = {id}"));
    assert!(holder.starts_with("b.gearman."), "{holder}");
    // kill -9: the socket closes without a word.
    on_b.children[hang].kill().unwrap();
    let _ = on_b.children[hang].wait();
    let mut on_a = Php::new(tmp.path(), port_a);
    let w = on_a.worker("reverse", "reverse", 1);
    assert_eq!(
        res(&mut client).unwrap(),
        (WORK_COMPLETE, with_data(&handle, b"eucser"))
    );
    on_a.wait_ok(w, Duration::from_secs(10));
    let j = job(&a, id);
    assert_eq!(j["attempt"], 2, "{j}");
    let error = j["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("connection closed"), "{j}");
}

/// Sends one admin line on a new connection and reads the reply: one
/// line, or a list up to its `.` line.
fn admin_line(port: u16, line: &str) -> String {
    let mut s = connect(port);
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&b[..n]);
        let text = String::from_utf8_lossy(&out);
        let single = text.starts_with("OK") || text.starts_with("ERR");
        if (single && text.ends_with('\n')) || text == ".\n" || text.ends_with("\n.\n") {
            return text.into_owned();
        }
    }
}

/// A background submit (SUBMIT_JOB_BG, or _HIGH_BG / _LOW_BG) on `s`:
/// the reply's type and body.
fn submit_bg(
    s: &mut TcpStream,
    kind: u32,
    function: &str,
    unique: &[u8],
    data: &[u8],
) -> (u32, Vec<u8>) {
    s.write_all(&req(kind, &[function.as_bytes(), unique, data]))
        .unwrap();
    res(s).unwrap()
}

const SUBMIT_JOB_BG: u32 = 18;
const SUBMIT_JOB_HIGH_BG: u32 = 32;
const SUBMIT_JOB_LOW_BG: u32 = 34;
const JOB_CREATED: u32 = 8;

#[test]
fn maxqueue_caps_a_functions_jobs_until_reset() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    assert_eq!(
        admin_line(port, "maxqueue"),
        "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+maxqueue\r\n"
    );
    // An unknown function: OK, and nothing changes (as gearmand).
    assert_eq!(admin_line(port, "maxqueue nope 1"), "OK\r\n");
    assert_eq!(admin_line(port, "maxqueue reverse 2"), "OK\r\n");
    let mut s = connect(port);
    let (kind, first) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"k1", b"a");
    assert_eq!(kind, JOB_CREATED);
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_LOW_BG, "reverse", b"", b"b").0,
        JOB_CREATED
    );
    // Full: gearmand's error, nothing stored.
    let (kind, body) = submit_bg(&mut s, SUBMIT_JOB_HIGH_BG, "reverse", b"", b"c");
    assert_eq!(kind, ERROR);
    assert_eq!(body, b"QUEUE_ERROR\0Job queue is full");
    // A unique that coalesces onto a live job adds none: accepted.
    let (kind, again) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"k1", b"x");
    assert_eq!(kind, JOB_CREATED);
    assert_eq!(again, first);
    // Another function is not capped.
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_BG, "slow", b"", b"s").0,
        JOB_CREATED
    );
    assert_eq!(jobs_of(&server, "reverse").len(), 2);
    // Per priority (HIGH NORMAL LOW; 0 is no cap): only normal is full.
    assert_eq!(admin_line(port, "maxqueue reverse 0 2 3"), "OK\r\n");
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"", b"n").0,
        ERROR
    );
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_LOW_BG, "reverse", b"", b"l").0,
        JOB_CREATED
    );
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_LOW_BG, "reverse", b"", b"l2").0,
        ERROR
    );
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_HIGH_BG, "reverse", b"", b"h").0,
        JOB_CREATED
    );
    // `maxqueue F` alone resets; so does a cap of 0.
    assert_eq!(admin_line(port, "maxqueue reverse"), "OK\r\n");
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"", b"free").0,
        JOB_CREATED
    );
    assert_eq!(admin_line(port, "maxqueue reverse 1"), "OK\r\n");
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"", b"no").0,
        ERROR
    );
    assert_eq!(admin_line(port, "MAXQUEUE reverse 0"), "OK\r\n");
    assert_eq!(
        submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"", b"yes").0,
        JOB_CREATED
    );
    assert_eq!(jobs_of(&server, "reverse").len(), 6);
}

#[test]
fn priority_status_and_show_jobs_list_the_waiting_and_running_jobs() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    assert_eq!(
        gearadmin(port, "--priority-status"),
        "reverse\t0\t0\t0\t0\nslow\t0\t0\t0\t0\n.\n"
    );
    assert_eq!(gearadmin(port, "--show-jobs"), ".\n");
    let mut s = connect(port);
    let mut handles = Vec::new();
    for (kind, unique, data) in [
        (SUBMIT_JOB_HIGH_BG, &b"u-high"[..], &b"h"[..]),
        (SUBMIT_JOB_BG, b"u-normal", b"n1"),
        (SUBMIT_JOB_BG, b"", b"n2"),
        (SUBMIT_JOB_LOW_BG, b"u-low", b"l"),
    ] {
        let (k, handle) = submit_bg(&mut s, kind, "reverse", unique, data);
        assert_eq!(k, JOB_CREATED);
        handles.push(String::from_utf8(handle).unwrap());
    }
    // A job enqueued over HTTP below the kind's priority counts as high.
    let (status, body) = post(
        &server.url("/v1/jobs"),
        &serde_json::json!({"kind": "reverse", "payload": "p", "priority": -5}),
    );
    assert_eq!(status, 201, "{body}");
    handles.push(format!(
        "{}:{}",
        handles[0].rsplit_once(':').unwrap().0,
        body["id"]
    ));
    assert_eq!(
        gearadmin(port, "--priority-status"),
        "reverse\t2\t2\t1\t0\nslow\t0\t0\t0\t0\n.\n"
    );
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(lines.pop().as_deref(), Some("."), "{text}");
        lines.sort();
        lines
    };
    let mut expected: Vec<String> = handles.iter().map(|h| format!("{h}\t0\t0\t1")).collect();
    expected.sort();
    assert_eq!(sorted(&gearadmin(port, "--show-jobs")), expected);
    assert_eq!(
        sorted(&gearadmin(port, "--show-unique-jobs")),
        ["u-high", "u-low", "u-normal"]
    );
    // A worker takes one (the HTTP job, first in claim order): running,
    // listed, no longer waiting.
    let mut worker = connect(port);
    worker.write_all(&req(1, &[b"reverse"])).unwrap();
    worker.write_all(&req(9, &[])).unwrap();
    let (kind, _) = res(&mut worker).unwrap();
    assert_eq!(kind, 11, "JOB_ASSIGN");
    assert_eq!(
        gearadmin(port, "--priority-status"),
        "reverse\t1\t2\t1\t1\nslow\t0\t0\t0\t0\n.\n"
    );
    assert_eq!(sorted(&gearadmin(port, "--show-jobs")), expected);
    // An ended job is not listed.
    let h = handles[3].as_str();
    assert_eq!(gearadmin_args(port, &["--cancel-job", h]).trim(), "OK");
    let listed = gearadmin(port, "--show-jobs");
    assert!(!listed.contains(&format!("{h}\t")), "{listed}");
    assert_eq!(sorted(&listed).len(), 4, "{listed}");
    assert_eq!(
        sorted(&gearadmin(port, "--show-unique-jobs")),
        ["u-high", "u-normal"]
    );
}

#[test]
fn create_and_drop_function_answer_for_configured_kinds_and_shutdown_is_refused() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, port) = start(tmp.path());
    assert_eq!(admin_line(port, "create function reverse"), "OK\r\n");
    assert_eq!(
        gearadmin_args(port, &["--create-function", "reverse"]).trim(),
        "OK"
    );
    let created = admin_line(port, "create function nope");
    assert!(
        created.starts_with("ERR INVALID_FUNCTION_NAME nope+is+not+an+errand+kind")
            && created.ends_with("\r\n"),
        "{created:?}"
    );
    let dropped = admin_line(port, "drop function reverse");
    assert!(
        dropped.starts_with("ERR INVALID_FUNCTION_NAME reverse+is+a+configured+errand+kind"),
        "{dropped:?}"
    );
    assert_eq!(
        admin_line(port, "drop function ghost"),
        "ERR function not found\r\n"
    );
    // A name a connected worker registered: gearmand's busy answer.
    let mut worker = connect(port);
    worker.write_all(&req(1, &[b"ghost"])).unwrap();
    eventually(Duration::from_secs(10), "the registration", || {
        gearadmin(port, "--status")
            .contains("ghost\t")
            .then_some(())
    });
    assert_eq!(
        admin_line(port, "drop function ghost"),
        "ERR there are still connected workers or executing clients\r\n"
    );
    assert_eq!(
        admin_line(port, "drop function"),
        "ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+drop\r\n"
    );
    assert_eq!(
        admin_line(port, "shutdown graceful"),
        "ERR UNKNOWN_COMMAND Unknown+server+commandshutdown\r\n"
    );
    // Nothing changed: the configured kinds are still served.
    assert!(gearadmin(port, "--status").starts_with("ghost\t0\t0\t1\nreverse\t0\t0\t0\n"));
}

#[test]
fn get_status_unique_reads_the_store_across_a_restart() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, port) = start(tmp.path());
    let php = Php::new(tmp.path(), port);
    let out = php.client(
        r#"echo $c->doBackground('reverse', 'kept', 'keep-me'), "\n";
echo $c->doBackground('slow', 'other', 'slow-key'), "\n";"#,
    );
    let id = id_of(text(&out).lines().next().unwrap());
    server.kill9();
    let (server, port) = start(tmp.path());
    let php = Php::new(tmp.path(), port);
    let status = r#"echo json_encode($c->jobStatusByUniqueKey('keep-me')), "\n";
echo json_encode($c->jobStatusByUniqueKey('slow-key')), "\n";
echo json_encode($c->jobStatusByUniqueKey('never-seen')), "\n";"#;
    assert_eq!(
        text(&php.client(status)),
        "[true,false,0,0]\n[true,false,0,0]\n[false,false,0,0]\n"
    );
    // Running: known and running, with the stored WORK_STATUS.
    let mut worker = connect(port);
    worker.write_all(&req(1, &[b"reverse"])).unwrap();
    worker.write_all(&req(9, &[])).unwrap();
    let (kind, body) = res(&mut worker).unwrap();
    assert_eq!(kind, 11, "JOB_ASSIGN");
    // The handle names the node, which restarted; the job is the same.
    let handle = body.split(|&b| b == 0).next().unwrap();
    let handle = String::from_utf8(handle.to_vec()).unwrap();
    assert_eq!(id_of(&handle), id);
    worker
        .write_all(&req(12, &[handle.as_bytes(), b"1", b"4"]))
        .unwrap();
    let one = r#"echo json_encode($c->jobStatusByUniqueKey('keep-me')), "\n";"#;
    eventually(Duration::from_secs(10), "the stored status", || {
        (text(&php.client(one)) == "[true,true,1,4]\n").then_some(())
    });
    // Ended: unknown again, as in gearmand.
    worker
        .write_all(&req(13, &[handle.as_bytes(), b"tpek"]))
        .unwrap();
    wait_state(
        &server,
        id_of(&handle),
        "completed",
        Duration::from_secs(10),
    );
    assert_eq!(text(&php.client(one)), "[false,false,0,0]\n");
    // Raw: STATUS_RES_UNIQUE's six fields, for a live job of another kind.
    let mut s = connect(port);
    s.write_all(&req(41, &[b"slow-key"])).unwrap();
    let (kind, body) = res(&mut s).unwrap();
    assert_eq!(kind, 42, "STATUS_RES_UNIQUE");
    assert_eq!(body, b"slow-key\x001\x000\x000\x000\x000");
}

#[test]
fn a_dash_unique_coalesces_on_the_workload() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let (server, port) = start(tmp.path());
    let mut s = connect(port);
    let (kind, a) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", b"same");
    assert_eq!(kind, JOB_CREATED);
    let (_, b) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", b"same");
    let (_, c) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", b"different");
    assert_eq!(a, b, "the same workload: one job");
    assert_ne!(a, c, "another workload: another job");
    let key = |h: &[u8]| job(&server, id_of(std::str::from_utf8(h).unwrap()))["unique_key"].clone();
    assert_eq!(key(&a), "same");
    // The same workload under an explicit unique is the same job too.
    let (_, d) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"same", b"whatever");
    assert_eq!(d, a);
    // A long or binary workload: keyed by its SHA-256.
    let long = vec![b'x'; 100];
    let (_, e) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", &long);
    let (_, f) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", &long);
    let (_, g) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", &[0xff, 0, 1]);
    assert_eq!(e, f);
    assert_ne!(e, g);
    let e_key = key(&e);
    let e_key = e_key.as_str().unwrap();
    assert_eq!(e_key.len(), 64, "{e_key}");
    assert!(e_key.chars().all(|c| c.is_ascii_hexdigit()), "{e_key}");
    assert_ne!(key(&g), e_key);
    // An empty workload has no unique: never coalesced.
    let (_, h1) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", b"");
    let (_, h2) = submit_bg(&mut s, SUBMIT_JOB_BG, "reverse", b"-", b"");
    assert_ne!(h1, h2);
    assert!(key(&h1).is_null());
    assert_eq!(jobs_of(&server, "reverse").len(), 6);
    // GET_STATUS_UNIQUE with the workload as the unique finds it.
    s.write_all(&req(41, &[b"same"])).unwrap();
    let (kind, body) = res(&mut s).unwrap();
    assert_eq!(kind, 42, "STATUS_RES_UNIQUE");
    assert_eq!(body, b"same\x001\x000\x000\x000\x000");
}

/// Claim ahead (decision 0034): a lease far longer than the tests, so
/// only a hand-back frees a claimed job promptly.
const AHEAD_CONFIG: &str = r#"
[gearman]
listen = "127.0.0.1:0"

[worker]
poll_interval = "200ms"
lease = "60s"
heartbeat = "1s"

[kinds.ahead]
remote = true
"#;

/// Enqueues one job of `kind` per payload, in order, in one batch;
/// answers their ids.
fn enqueue_payloads(server: &Server, kind: &str, payloads: &[String]) -> Vec<i64> {
    let jobs: Vec<serde_json::Value> = payloads
        .iter()
        .map(|p| serde_json::json!({"kind": kind, "payload": p}))
        .collect();
    let (status, body) = post(
        &server.url("/v1/jobs/batch"),
        &serde_json::json!({ "jobs": jobs }),
    );
    assert_eq!(status, 201, "{body}");
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

/// How many jobs of `kind` are in `state`, from the job list.
fn in_state(jobs: &[serde_json::Value], state: &str) -> usize {
    jobs.iter().filter(|j| j["state"] == state).count()
}

/// One run the `log` workers wrote to `runs.log`: pid, job id, workload.
struct Run {
    pid: u32,
    id: i64,
    workload: String,
}

/// The runs in `runs.log`, in the order they ended.
fn runs(dir: &Path) -> Vec<Run> {
    std::fs::read_to_string(dir.join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            Run {
                pid: parts.next().unwrap().parse().unwrap(),
                id: id_of(parts.next().unwrap()),
                workload: parts.next().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Asserts every job in `ids` ran exactly once, and nothing else ran.
fn ran_once_each(runs: &[Run], ids: &[i64]) {
    let mut count: std::collections::HashMap<i64, usize> = Default::default();
    for r in runs {
        *count.entry(r.id).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    let mut ran: Vec<i64> = count.into_keys().collect();
    ran.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(ran, want, "the jobs run are not the jobs enqueued");
}

#[test]
fn jobs_claimed_ahead_go_back_unrun_when_the_worker_leaves() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), AHEAD_CONFIG);
    let port = gearman_port(&server);
    let payloads: Vec<String> = (0..60).map(|i| format!("j{i}")).collect();
    let ids = enqueue_payloads(&server, "ahead", &payloads);
    let (w, ran, jobs) = raw_worker_until_claimed_ahead(&server, port);
    assert_eq!(in_state(&jobs, "completed"), ran.len());

    // It leaves (closes its connection; Gearman has no goodbye): long
    // before the 60 s lease could run out, every job it did not run is
    // available again, no attempt counted.
    drop(w);
    let left = 60 - ran.len();
    let jobs = eventually(
        Duration::from_secs(10),
        "the jobs claimed ahead back",
        || {
            let jobs = jobs_of(&server, "ahead");
            (in_state(&jobs, "available") == left).then_some(jobs)
        },
    );
    for j in &jobs {
        let id = j["id"].as_i64().unwrap();
        if ran.contains(&id) {
            assert_eq!(j["state"], "completed", "{j}");
            assert_eq!(j["attempt"], 1, "{j}");
        } else {
            assert_eq!(j["state"], "available", "{j}");
            assert_eq!(j["attempt"], 0, "a hand-back counted an attempt: {j}");
        }
    }

    // A PHP worker runs the rest: every job ran once, in one attempt.
    let mut php = Php::new(tmp.path(), port);
    let second = php.worker("ahead", "log", left as u32);
    wait_completed(&server, "ahead", 60, Duration::from_secs(30));
    php.wait_ok(second, Duration::from_secs(10));
    let mut all = runs(tmp.path());
    all.extend(ran.iter().map(|&id| Run {
        pid: 0,
        id,
        workload: String::new(),
    }));
    ran_once_each(&all, &ids);
    for j in jobs_of(&server, "ahead") {
        assert_eq!(j["state"], "completed", "{j}");
        assert_eq!(j["attempt"], 1, "{j}");
    }
}

/// A worker in raw packets on `port` runs one no-op `ahead` job at a time
/// until jobs are claimed ahead of it; answers its connection (holding no
/// job), the jobs it ran and the jobs as the API then listed them.
fn raw_worker_until_claimed_ahead(
    server: &Server,
    port: u16,
) -> (TcpStream, Vec<i64>, Vec<serde_json::Value>) {
    // A worker in raw packets, one no-op job at a time, until jobs are
    // claimed ahead of it: between its jobs it holds none, so once its
    // reports are committed, any running job is one claimed ahead (its
    // pace grows above one job as its jobs take well under 20 ms; how
    // soon depends on the machine's load).
    let mut w = connect(port);
    w.write_all(&req(1, &[b"ahead"])).unwrap();
    let mut ran: Vec<i64> = Vec::new();
    let jobs = loop {
        assert!(ran.len() < 40, "no job claimed ahead in 40 jobs");
        w.write_all(&req(9, &[])).unwrap();
        let (kind, body) = res(&mut w).unwrap();
        assert_eq!(kind, 11, "JOB_ASSIGN");
        let handle = body.split(|b| *b == 0).next().unwrap().to_vec();
        w.write_all(&req(13, &[&handle, b"ok"])).unwrap();
        ran.push(id_of(std::str::from_utf8(&handle).unwrap()));
        let jobs = eventually(Duration::from_secs(10), "its reports committed", || {
            let jobs = jobs_of(server, "ahead");
            (in_state(&jobs, "completed") == ran.len()).then_some(jobs)
        });
        if in_state(&jobs, "running") > 0 {
            break jobs;
        }
    };
    (w, ran, jobs)
}

#[test]
fn jobs_claimed_ahead_go_back_when_the_worker_stops_asking() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), AHEAD_CONFIG);
    let port = gearman_port(&server);
    let payloads: Vec<String> = (0..60).map(|i| format!("j{i}")).collect();
    enqueue_payloads(&server, "ahead", &payloads);
    let (w, ran, _) = raw_worker_until_claimed_ahead(&server, port);
    // Connected, holding nothing, not asking: after about a second (the
    // lease is 60 s) the jobs claimed ahead are available to others.
    let left = 60 - ran.len();
    let jobs = eventually(
        Duration::from_secs(10),
        "the idle worker's jobs back",
        || {
            let jobs = jobs_of(&server, "ahead");
            (in_state(&jobs, "available") == left).then_some(jobs)
        },
    );
    for j in jobs.iter().filter(|j| j["state"] == "available") {
        assert_eq!(j["attempt"], 0, "a hand-back counted an attempt: {j}");
    }
    drop(w);
}

#[test]
fn a_slow_job_hands_the_jobs_claimed_ahead_to_another_worker() {
    require_tools();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_in(tmp.path(), AHEAD_CONFIG);
    let port = gearman_port(&server);
    let mut php = Php::new(tmp.path(), port);
    // A alone: 20 fast jobs grow its pace, so it claims jobs after "slow"
    // ahead (claim order is enqueue order here). Should they stay with
    // A, B would wait for the 60 s lease.
    let a = php.worker("ahead", "log", 21);
    let mut payloads: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    payloads.push("slow".into());
    payloads.extend((20..60).map(|i| format!("f{i}")));
    let ids = enqueue_payloads(&server, "ahead", &payloads);
    let slow = ids[20];
    let marker = tmp.path().join("marker-log");
    eventually(Duration::from_secs(20), "A to start the slow job", || {
        marker.exists().then_some(())
    });
    // 20 ms into it, A hands back what it claimed ahead; B, started
    // now, runs all 40 while A sleeps its 3 s (the lease is 60 s).
    let b = php.worker("ahead", "log", 40);
    eventually(
        Duration::from_secs(30),
        "the 40 jobs after the slow one",
        || (runs(tmp.path()).len() >= 60).then_some(()),
    );
    php.wait_ok(b, Duration::from_secs(10));
    php.wait_ok(a, Duration::from_secs(30));
    wait_completed(&server, "ahead", 61, Duration::from_secs(10));
    let runs = runs(tmp.path());
    ran_once_each(&runs, &ids);
    let a_pid = php.children[a].id();
    let at = runs.iter().position(|r| r.id == slow).unwrap();
    assert_eq!(runs[at].pid, a_pid);
    assert_eq!(at, runs.len() - 1, "a fast job ended after the slow one");
    for r in &runs[..at] {
        let n: usize = r.workload[1..].parse().unwrap();
        let by_a = r.pid == a_pid;
        assert_eq!(by_a, n < 20, "{} ran on the wrong worker", r.workload);
    }
    for j in jobs_of(&server, "ahead") {
        assert_eq!(j["attempt"], 1, "{j}");
    }
}
