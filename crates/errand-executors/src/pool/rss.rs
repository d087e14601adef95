//! Resident memory of a process and its descendants, from /proc.

use crate::process::procfs;

/// Deepest descendant level counted: workers rarely nest deeper, and a
/// bound keeps a fork bomb from making this loop long.
const MAX_DEPTH: usize = 4;

/// VmRSS of `pid` plus that of its descendants, in bytes; `None` when the
/// process is gone or /proc is unavailable.
pub(super) fn tree_rss(pid: u32) -> Option<u64> {
    let mut total = vm_rss(pid)?;
    let mut level = procfs::children(pid);
    for _ in 0..MAX_DEPTH {
        if level.is_empty() {
            break;
        }
        total += level.iter().filter_map(|&child| vm_rss(child)).sum::<u64>();
        level = level.into_iter().flat_map(procfs::children).collect();
    }
    Some(total)
}

fn vm_rss(pid: u32) -> Option<u64> {
    Some(procfs::status(pid, "VmRSS")? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_read_and_a_missing_process_has_none() {
        let rss = tree_rss(std::process::id()).unwrap();
        assert!(rss > 1 << 20, "{rss}");
        assert_eq!(tree_rss(u32::MAX - 1), None);
    }
}
