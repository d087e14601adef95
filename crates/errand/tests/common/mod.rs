//! Test helpers: start the real `errand` binary on a free port and a temp
//! database, talk to it over HTTP, run CLI commands, kill it.

#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod pg;

/// Polls until a check holds (`true` or `Some`), at most `limit`: errand-core's
/// one waiting helper, in its blocking form.
pub use errand_core::testing::eventually_blocking as eventually;

/// The binary under test.
pub fn errand_bin() -> &'static str {
    env!("CARGO_BIN_EXE_errand")
}

/// What `errand work` logs once it runs.
const WORKER_NODE_STARTED: &str = "errand worker node started";

/// A running `errand serve` with its own directory, config and database.
pub struct Server {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub base: String,
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with `config` (TOML) in a fresh temporary directory.
    pub fn start(config: &str) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, config);
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server in `dir`, writing `config` to `dir/errand.toml`.
    pub fn start_in(dir: &Path, config: &str) -> Server {
        let path = dir.join("errand.toml");
        std::fs::write(&path, config).unwrap();
        let mut s = Server::spawn(
            dir,
            &[
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ],
        )
        .unwrap_or_else(|log| panic!("errand serve did not start; log:\n{log}"));
        s.config = path;
        s
    }

    /// Runs `errand ARGS` in `dir` and waits for it to announce its address
    /// (`serve`) or its start (`work`, whose `base` stays empty); on failure
    /// returns what it logged.
    pub fn spawn(dir: &Path, args: &[&str]) -> Result<Server, String> {
        Server::spawn_env(dir, args, &[])
    }

    /// [`Server::spawn`] with extra environment variables.
    pub fn spawn_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<Server, String> {
        let mut child = Command::new(errand_bin())
            .args(args)
            .current_dir(dir)
            .env("ERRAND_LOG", "info")
            .envs(envs.iter().copied())
            .env_remove("ERRAND_CONFIG")
            .env_remove("ERRAND_DATABASE")
            .env_remove("ERRAND_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start errand");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http") {
                    let url: String = line[at + "listening on ".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '/'))
                        .collect();
                    let _ = tx.send(url);
                } else if line.contains(WORKER_NODE_STARTED) {
                    // A worker-only node has no address.
                    let _ = tx.send(String::new());
                }
                sink.lock().unwrap().push(line);
            }
            // stderr closed: the process is gone.
            drop(tx);
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => Ok(Server {
                dir: dir.to_path_buf(),
                config: PathBuf::new(),
                base,
                child,
                log,
                _tmp: None,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let text = log.lock().unwrap().join("\n");
                Err(text)
            }
        }
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal by name (e.g. "TERM") to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "errand did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs an `errand` CLI command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(errand_bin())
            .args(args)
            .env("ERRAND_SERVER", &self.base)
            .output()
            .unwrap()
    }

    /// `errand tokens create` on this server's database (`--config`), with
    /// each of `scopes`; the secret it printed.
    pub fn create_token(&self, name: &str, scopes: &[&str]) -> String {
        let mut args = vec!["tokens", "create", "--name", name];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        args.extend(["--config", self.config.to_str().unwrap()]);
        let out = self.cli(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.split_whitespace()
            .find(|w| w.starts_with("errand_"))
            .unwrap_or_else(|| panic!("no secret in {text}"))
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `errand serve` with the configuration `text`, which must be
/// refused: answers what it printed on stderr.
pub fn refused_config(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(errand_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{text} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A self-signed certificate for 127.0.0.1 written to `dir/server.crt`
/// and `dir/server.key` (where `[server] tls` of the TLS tests points);
/// answers its PEM, which is also what a client trusts.
pub fn self_signed(dir: &Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("server.crt"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), made.signing_key.serialize_pem()).unwrap();
    made.cert.pem()
}

/// A blocking HTTP client for tests.
/// The Python of the venv scripts/test.sh makes (`.venv` at the workspace
/// root), or the one the environment variable `var` names.
pub fn venv_python(var: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/python"))
}

pub fn http() -> reqwest::blocking::Client {
    errand_client::install_tls_provider();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// POSTs JSON; returns status and body.
pub fn post(url: &str, body: &Value) -> (u16, Value) {
    let resp = http().post(url).json(body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// GETs JSON; returns status and body.
pub fn get(url: &str) -> (u16, Value) {
    let resp = http().get(url).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The job's state, via the API.
pub fn job(server: &Server, id: i64) -> Value {
    let (status, body) = get(&server.url(&format!("/v1/jobs/{id}")));
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until job `id` is in `state`.
pub fn wait_state(server: &Server, id: i64, state: &str, limit: Duration) -> Value {
    eventually(limit, &format!("job {id} to be {state}"), || {
        let j = job(server, id);
        (j["state"] == state).then_some(j)
    })
}

/// Stats as JSON.
pub fn stats(server: &Server) -> Value {
    get(&server.url("/v1/stats")).1
}

/// Enqueues `n` jobs of `kind` in batches of 1,000 (payload `{"n": i}`);
/// answers their ids.
pub fn enqueue_batches(server: &Server, kind: &str, n: usize) -> Vec<i64> {
    enqueue_batches_of(server, kind, n, 1000)
}

/// Enqueues `n` jobs of `kind` in batches of `size`; answers their ids.
pub fn enqueue_batches_of(server: &Server, kind: &str, n: usize, size: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(size) {
        let jobs: Vec<Value> = (start..n.min(start + size))
            .map(|i| serde_json::json!({"kind": kind, "payload": {"n": i}}))
            .collect();
        let (status, body) = post(
            &server.url("/v1/jobs/batch"),
            &serde_json::json!({ "jobs": jobs }),
        );
        assert_eq!(status, 201, "{body}");
        ids.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap()),
        );
    }
    ids
}

/// How many jobs of `kind` are in `state`, per the server's stats (0 while
/// the server cannot answer).
pub fn kind_count(server: &Server, kind: &str, state: &str) -> u64 {
    stats(server)["kinds"][kind][state].as_u64().unwrap_or(0)
}

/// Waits until `n` jobs of `kind` have completed; fails at once if any failed.
pub fn wait_completed(server: &Server, kind: &str, n: u64, limit: Duration) {
    eventually(limit, &format!("{n} completed {kind} jobs"), || {
        let failed = kind_count(server, kind, "failed");
        assert_eq!(failed, 0, "{failed} {kind} jobs failed");
        (kind_count(server, kind, "completed") >= n).then_some(())
    });
}
