//! A real SMTP server for the email tests: aiosmtpd started by
//! `email_smtpd.py` (`pip install aiosmtpd`), writing what it accepts to a
//! temporary directory, and readers for what it accepted.

use errand_executors::email::{EmailExecutor, SmtpConfig};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use tempfile::TempDir;

/// The sender of every test message.
pub const FROM: &str = "App <noreply@example.com>";

/// A running aiosmtpd that writes what it accepts to a directory; killed
/// on drop.
pub struct Smtpd {
    child: Child,
    pub port: u16,
    maildir: TempDir,
}

impl Smtpd {
    /// Starts on a free port.
    pub fn start() -> Smtpd {
        Smtpd::start_on(0)
    }

    /// Starts on `port` (0: any) and waits until it accepts connections.
    pub fn start_on(port: u16) -> Smtpd {
        let maildir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/email_smtpd.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(maildir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs (and `pip install aiosmtpd` was done)");
        // The script prints its port once it is listening.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("aiosmtpd did not start (is aiosmtpd installed?): {line:?}"));
        Smtpd {
            child,
            port,
            maildir,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn executor(&self) -> Arc<EmailExecutor> {
        Arc::new(EmailExecutor::new(SmtpConfig::new(self.url(), FROM)).unwrap())
    }

    /// How many raw messages (`.eml` files) the server has written.
    pub fn eml_count(&self) -> usize {
        std::fs::read_dir(self.maildir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "eml")
            })
            .count()
    }

    /// Every message accepted so far, in order, as the server parsed it.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse::<u32>()
                .unwrap()
        });
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of header `name` in a parsed message.
pub fn header(message: &Value, name: &str) -> Vec<String> {
    message["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_string())
        .collect()
}

/// An email executor aimed at a free loopback port where no server listens
/// yet, and that port, so a test can bring a server up on it later.
pub fn email_to_free_port() -> (Arc<EmailExecutor>, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = SmtpConfig::new(format!("smtp://127.0.0.1:{port}"), FROM);
    (Arc::new(EmailExecutor::new(config).unwrap()), port)
}
