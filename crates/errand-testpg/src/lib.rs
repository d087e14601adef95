//! A throwaway PostgreSQL cluster for tests.
//!
//! [`TestPg::start`] runs `initdb` into a temporary directory and starts the
//! server with `pg_ctl` on a free loopback port (default durability: fsync
//! on), so tests talk to a real PostgreSQL without any setup. When the tests
//! run as root (containers, CI), the server tools run as the `postgres` user
//! that Debian's postgresql package creates, because initdb refuses root.
//!
//! When PostgreSQL is not installed, `start` panics saying how to install
//! it: a PostgreSQL test that skipped quietly would report green having
//! checked nothing.

use std::ffi::CString;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use tempfile::TempDir;

/// The superuser the cluster is created with (trust authentication).
const SUPERUSER: &str = "postgres";

/// A PostgreSQL server of its own, stopped and deleted on drop.
#[derive(Debug)]
pub struct TestPg {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    database: String,
    /// The server options of the running cluster, for starting it again.
    opts: String,
}

impl TestPg {
    /// Starts a new cluster with one database; panics when PostgreSQL is
    /// not installed.
    pub fn start() -> TestPg {
        let Some(bin) = find_bin_dir() else {
            panic!(
                "PostgreSQL not found: no initdb, pg_ctl, createdb and postgres on PATH \
                 or under /usr/lib/postgresql/*/bin. Install it (`apt-get install postgresql`) \
                 or run scripts/test.sh, which installs it"
            );
        };
        TestPg::start_in(bin)
    }

    /// One cluster shared by every test of this test binary (initdb costs
    /// seconds); give each test its own database with
    /// [`TestPg::fresh_database`]. Stopped and deleted when the process exits.
    pub fn shared() -> &'static TestPg {
        static SHARED: OnceLock<TestPg> = OnceLock::new();
        extern "C" fn stop_shared() {
            // Never unwind into libc.
            let _ = std::panic::catch_unwind(|| {
                if let Some(pg) = SHARED.get() {
                    pg.stop();
                    let _ = std::fs::remove_dir_all(pg.dir.path());
                }
            });
        }
        SHARED.get_or_init(|| {
            let pg = TestPg::start();
            // SAFETY: registering a plain extern "C" fn with no arguments.
            unsafe { libc::atexit(stop_shared) };
            pg
        })
    }

    fn start_in(bin: PathBuf) -> TestPg {
        let dir = tempfile::Builder::new()
            .prefix("errand-testpg-")
            .tempdir()
            .expect("create a temporary directory for PostgreSQL");
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            chown_to_postgres(dir.path());
        }
        let mut pg = TestPg {
            dir,
            bin,
            port: 0,
            as_postgres,
            database: "errand".to_string(),
            opts: String::new(),
        };
        pg.run(
            pg.tool("initdb")
                .arg("-D")
                .arg(pg.data_dir())
                .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"])
                // The cluster's files need no fsync now; the server runs with fsync on.
                .arg("--no-sync"),
        );
        pg.launch();
        pg.database = pg.create_database_named("errand");
        pg
    }

    /// Starts the server on a free port; a port taken between probing and
    /// binding is retried with another.
    fn launch(&mut self) {
        let mut last = None;
        for _ in 0..5 {
            self.port = free_port();
            self.opts = format!(
                "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c max_connections=500 -c fsync=on",
                self.port,
                self.dir.path().display()
            );
            let out = self.output(self.pg_ctl().arg("-o").arg(&self.opts).arg("start"));
            if out.status.success() {
                return;
            }
            last = Some(out);
        }
        panic!(
            "pg_ctl start failed: {}",
            self.describe(&last.expect("tried"))
        );
    }

    /// The URL of this cluster's own database, `postgres://…`.
    pub fn url(&self) -> String {
        self.url_of(&self.database)
    }

    /// Creates a new, empty database and returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "errand_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let name = self.create_database_named(&name);
        self.url_of(&name)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every connection is
    /// closed, and the server is back when this returns.
    pub fn restart(&self) {
        self.run(self.pg_ctl().args(["-m", "fast", "restart"]));
    }

    /// Stops the server (fast shutdown); [`TestPg::resume`] starts it again.
    pub fn stop(&self) {
        let _ = self.output(self.pg_ctl().args(["-m", "fast", "stop"]));
    }

    /// Starts a stopped server again on the same port.
    pub fn resume(&self) {
        self.run(self.pg_ctl().arg("-o").arg(&self.opts).arg("start"));
    }

    fn url_of(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    fn create_database_named(&self, name: &str) -> String {
        self.run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-U", SUPERUSER, "-p"])
                .arg(self.port.to_string())
                .arg(name),
        );
        name.to_string()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.tool("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60"]);
        cmd
    }

    /// A server tool, run as `postgres` when we are root.
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        };
        // The postgres user may not be allowed into the caller's directory.
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn output(&self, cmd: &mut Command) -> Output {
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    fn run(&self, cmd: &mut Command) {
        let out = self.output(cmd);
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            self.describe(&out)
        );
    }

    fn describe(&self, out: &Output) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let tail: Vec<_> = log.lines().rev().take(20).collect();
        format!(
            "{}\n{}\n{}\nserver log (last lines):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let _ = self.output(self.pg_ctl().args(["-m", "immediate", "stop"]));
    }
}

/// The directory holding initdb, pg_ctl, createdb and postgres: from PATH,
/// else the newest /usr/lib/postgresql/<version>/bin.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("initdb"))
            .find(|p| p.is_file())
            // Follow a symlink to the real directory, where pg_ctl finds postgres.
            .and_then(|p| std::fs::canonicalize(p).ok())
            .and_then(|p| p.parent().map(Path::to_path_buf))
    });
    let complete = |dir: &PathBuf| {
        ["initdb", "pg_ctl", "createdb", "postgres"]
            .iter()
            .all(|t| dir.join(t).is_file())
    };
    on_path.filter(complete).or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let version = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, bin)| complete(bin))
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Gives `dir` to the `postgres` user so initdb (run as that user) can use it.
fn chown_to_postgres(dir: &Path) {
    let name = CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to static storage that we
    // read at once; tests call this before spawning anything that could race.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, but there is no `postgres` user to run PostgreSQL as \
         (install Debian's postgresql package)"
    );
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown the PostgreSQL directory");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_starts_creates_databases_restarts_and_stops() {
        let pg = TestPg::start();
        assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
        let url = pg.fresh_database();
        assert_ne!(url, pg.url());
        assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        pg.restart();
        assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        pg.stop();
        assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_err());
        pg.resume();
        assert!(std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_ok());
        let data = pg.dir.path().to_path_buf();
        drop(pg);
        assert!(!data.exists(), "the cluster's directory is deleted on drop");
    }
}
