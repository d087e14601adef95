//! Exclusive use of a database file: an advisory `flock` on `<db>.lock`,
//! which holds the owner's pid. The kernel releases it when the process
//! dies, even by SIGKILL, so a crash never leaves a stale lock.

use errand_core::StoreError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the store is open.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: Flock<File>,
}

/// The lock file beside `db`.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DbLock {
    /// Takes the lock on `db` or says which process holds it.
    pub(crate) fn acquire(db: &Path) -> Result<DbLock, StoreError> {
        let path = lock_path(db);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut file) => {
                let pid = std::process::id().to_string();
                let written = file
                    .set_len(0)
                    .and_then(|_| file.rewind())
                    .and_then(|_| file.write_all(pid.as_bytes()));
                written.map_err(|e| {
                    StoreError::Unavailable(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(DbLock { _file: file })
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut pid = String::new();
                // The holder may be between truncating and writing its pid.
                let _ = file.read_to_string(&mut pid);
                let pid = match pid.trim() {
                    "" => "unknown".to_string(),
                    p => p.to_string(),
                };
                Err(StoreError::Locked(format!(
                    "database {} is in use by another errand process (pid {pid}); \
                     stop it first or use another --database",
                    db.display()
                )))
            }
            Err((_, errno)) => Err(StoreError::Unavailable(format!(
                "cannot lock {}: {errno}",
                path.display()
            ))),
        }
    }
}
