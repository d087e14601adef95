//! Reading /proc, written once for errand and its tests: a process's
//! state, parent, group and start time (`/proc/<pid>/stat`), a number from
//! `/proc/<pid>/status` (memory, threads), and its children.

use std::fs;

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Its command name (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Its state letter: `R`, `S`, `Z` for a zombie…
    pub state: char,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its process group.
    pub pgid: i32,
    /// When it started, in clock ticks since boot: with the pid, it tells
    /// a process from a later one that reused its pid.
    pub start_time: u64,
}

/// The stat of process `pid`; `None` once it is gone (or without /proc).
pub fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    // Fields after the name, numbered from 3 (state) as in proc(5).
    let fields: Vec<&str> = text.get(close + 2..)?.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        comm: text.get(open + 1..close)?.to_string(),
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgid: field(5)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// A number of `/proc/<pid>/status`, e.g. `VmRSS` (in KiB, as the file
/// says) or `Threads`; `None` when the process or the field is missing.
pub fn status(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The children of process `pid`, whichever of its threads started them
/// (`/proc/<pid>/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read_whole() {
        let me = std::process::id();
        let stat = stat(me).unwrap();
        // The main thread waits for the test's thread: running or sleeping.
        assert!(matches!(stat.state, 'R' | 'S'), "{stat:?}");
        assert!(stat.comm.starts_with("errand_executor"), "{stat:?}");
        assert_eq!(stat.ppid, nix::unistd::getppid().as_raw() as u32);
        assert_eq!(stat.pgid, nix::unistd::getpgrp().as_raw());
        assert!(stat.start_time > 0);
        assert!(
            status(me, "VmRSS").unwrap() > 1024,
            "more than 1 MiB resident"
        );
        assert!(status(me, "Threads").unwrap() >= 1);
        assert_eq!(status(me, "NoSuchField"), None);
        assert_eq!(super::stat(u32::MAX - 1), None, "no such process");
    }

    #[test]
    fn children_are_listed() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children(std::process::id()).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
