//! The on-disk record of the job process groups each errand process
//! started, for the case the guardian cannot cover: errand and its guardian
//! killed together (`pkill -9 errand`). The first time an errand process on
//! this machine is about to start a job process, it kills the groups that
//! dead errand processes left recorded, before any new attempt starts.
//!
//! One file per errand process in `$TMPDIR/errand-groups-<uid>/`, named by
//! its pid and start time; lines `+<pgid> <leader start time>` and `-<pgid>`
//! appended as groups start and end. A group is killed only while its
//! leader is the very process recorded (same pid, same start time), so a
//! reused process id is never hit.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// Appended lines past which the file is rewritten with the live groups only.
const COMPACT_AFTER: usize = 4096;

struct Record {
    path: PathBuf,
    file: File,
    /// Live groups and their leaders' start times.
    live: BTreeMap<i32, u64>,
    lines: usize,
}

static RECORD: Mutex<Option<Record>> = Mutex::new(None);
static SWEEP: Once = Once::new();

/// Where the records live.
fn dir() -> PathBuf {
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { nix::libc::getuid() };
    std::env::temp_dir().join(format!("errand-groups-{uid}"))
}

/// The start time (in clock ticks since boot) and process group of `pid`.
fn stat(pid: i32) -> Option<(u64, i32)> {
    let stat = super::procfs::stat(u32::try_from(pid).ok()?)?;
    Some((stat.start_time, stat.pgid))
}

/// Once per errand process, before its first job process: kills the groups
/// that dead errand processes recorded, and opens this process's record.
pub(super) fn sweep_once() {
    SWEEP.call_once(|| {
        let dir = dir();
        if let Err(e) = sweep(&dir) {
            tracing::warn!(dir = %dir.display(), "cannot check for job processes left by a dead errand: {e}");
        }
        match open(&dir) {
            Ok(record) => *RECORD.lock().unwrap_or_else(|e| e.into_inner()) = Some(record),
            Err(e) => tracing::warn!(dir = %dir.display(), "cannot record job process groups: {e}"),
        }
    });
}

fn sweep(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<i32>(), start.parse::<u64>()) else {
            continue;
        };
        if stat(pid).is_some_and(|(s, _)| s == start) {
            continue; // its errand still runs
        }
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (pgid, leader_start) in live_in(&text) {
            if stat(pgid) == Some((leader_start, pgid)) {
                tracing::warn!(
                    pgid,
                    "killing a job process group left running by a dead errand process (pid {pid})"
                );
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(())
}

/// The groups a record's text leaves live.
fn live_in(text: &str) -> BTreeMap<i32, u64> {
    let mut live = BTreeMap::new();
    for line in text.lines() {
        if let Some(added) = line.strip_prefix('+') {
            let mut parts = added.split(' ');
            if let (Some(Ok(pgid)), Some(Ok(start))) =
                (parts.next().map(str::parse), parts.next().map(str::parse))
            {
                live.insert(pgid, start);
            }
        } else if let Some(Ok(pgid)) = line.strip_prefix('-').map(str::parse::<i32>) {
            live.remove(&pgid);
        }
    }
    live
}

fn open(dir: &Path) -> io::Result<Record> {
    std::fs::create_dir_all(dir)?;
    let me = std::process::id() as i32;
    let (start, _) = stat(me).ok_or_else(|| io::Error::other("no /proc entry for errand"))?;
    let path = dir.join(format!("{me}.{start}"));
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    Ok(Record {
        path,
        file,
        live: BTreeMap::new(),
        lines: 0,
    })
}

/// Records that group `pgid` started.
pub(super) fn add(pgid: i32) {
    let Some((start, _)) = stat(pgid) else {
        return; // already gone: nothing to kill later
    };
    with_record(|record| {
        record.live.insert(pgid, start);
        record.append(&format!("+{pgid} {start}\n"))
    });
}

/// Records that group `pgid` ended.
pub(super) fn remove(pgid: i32) {
    with_record(|record| {
        if record.live.remove(&pgid).is_none() {
            return Ok(());
        }
        record.append(&format!("-{pgid}\n"))
    });
}

fn with_record(f: impl FnOnce(&mut Record) -> io::Result<()>) {
    let mut guard = RECORD.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(record) = guard.as_mut()
        && let Err(e) = f(record)
    {
        tracing::warn!(path = %record.path.display(), "cannot record job process groups any more: {e}");
        *guard = None;
    }
}

impl Record {
    /// Appends `line` (one write, so a kill leaves whole lines), rewriting
    /// the file with the live groups only once it has grown long.
    fn append(&mut self, line: &str) -> io::Result<()> {
        self.file.write_all(line.as_bytes())?;
        self.lines += 1;
        if self.lines < COMPACT_AFTER {
            return Ok(());
        }
        let text: String = self
            .live
            .iter()
            .map(|(pgid, start)| format!("+{pgid} {start}\n"))
            .collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.live.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_leaves_the_groups_added_and_not_removed() {
        let live = live_in("+10 5\n+11 6\n-10\n+12 7\ngarbage\n-99\n+13");
        assert_eq!(live, BTreeMap::from([(11, 6), (12, 7)]));
    }

    #[test]
    fn this_process_has_a_start_time_and_group() {
        let (start, pgid) = stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert_eq!(pgid, nix::unistd::getpgrp().as_raw());
    }
}
