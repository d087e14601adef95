//! Per-node figures about a store's own work, for `/metrics`: how long its
//! commits take and how many writes wait. Engines record into a
//! [`CommitTimes`] with a few relaxed atomic adds per commit (no lock on
//! the write path) and answer a [`StoreLoad`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the commit-latency histogram, in seconds (commits are
/// far shorter than jobs, so these are not the jobs' bounds).
pub const COMMIT_BOUNDS_SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A lock-free commit-latency histogram over [`COMMIT_BOUNDS_SECONDS`].
#[derive(Debug, Default)]
pub struct CommitTimes {
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; COMMIT_BOUNDS_SECONDS.len()],
}

impl CommitTimes {
    /// Records one commit that took `d`.
    pub fn observe(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        if let Some(i) = COMMIT_BOUNDS_SECONDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> CommitSnapshot {
        CommitSnapshot {
            count: self.count.load(Ordering::Relaxed),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// Commit latencies recorded since the store was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitSnapshot {
    /// Commits.
    pub count: u64,
    /// Their total time, in microseconds.
    pub sum_us: u64,
    /// Commits per bucket of [`COMMIT_BOUNDS_SECONDS`] (not cumulative).
    pub buckets: Vec<u64>,
}

/// A store's own load on this node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreLoad {
    /// Commit latencies (SQLite: each group commit; PostgreSQL: each
    /// enqueue, claim and finish call, its statements' round trips included).
    pub commits: CommitSnapshot,
    /// Writes waiting (SQLite: operations queued for the writer thread;
    /// PostgreSQL: pooled connections in use).
    pub pending_writes: u64,
}
