//! How many attempts of a kind this node can start right now, for executors
//! that have a limit (a pool's ready processes, a command's `max_processes`).
//! The fetch loops claim no more jobs of such a kind than it has room for, so
//! a claimed job never waits inside an executor for a process: a job waiting
//! there when errand crashed would be rescued with an attempt it never used
//! (docs/decisions/0010).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, watch};

/// One limited kind: the executor's current limit and the attempts running.
#[derive(Debug)]
pub(crate) struct KindCapacity {
    limit: watch::Receiver<usize>,
    running: AtomicUsize,
}

impl KindCapacity {
    pub(crate) fn new(limit: watch::Receiver<usize>) -> Self {
        KindCapacity {
            limit,
            running: AtomicUsize::new(0),
        }
    }

    /// Attempts that may start now.
    pub(crate) fn room(&self) -> usize {
        let limit = *self.limit.borrow();
        limit.saturating_sub(self.running.load(Ordering::Acquire))
    }

    /// Counts one more running attempt if there is room; the guard counts it
    /// out again (and wakes the fetch loops) when dropped.
    pub(crate) fn take(self: &Arc<Self>, freed: &Arc<Notify>) -> Option<Running> {
        let limit = *self.limit.borrow();
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(Running {
            capacity: self.clone(),
            freed: freed.clone(),
        })
    }

    /// The executor's limit now.
    pub(crate) fn limit(&self) -> usize {
        *self.limit.borrow()
    }

    /// Whether more attempts run than the limit allows now (a pool lost a
    /// process): an ending attempt then frees its place instead of
    /// passing it to a held job.
    pub(crate) fn over(&self) -> bool {
        self.running.load(Ordering::Acquire) > self.limit()
    }

    /// A copy of the limit's receiver, to be told when it changes.
    pub(crate) fn watch(&self) -> watch::Receiver<usize> {
        self.limit.clone()
    }
}

/// One running attempt of a limited kind.
#[derive(Debug)]
pub(crate) struct Running {
    capacity: Arc<KindCapacity>,
    freed: Arc<Notify>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.capacity.running.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_follows_the_limit_and_the_running_attempts() {
        let (tx, rx) = watch::channel(2);
        let capacity = Arc::new(KindCapacity::new(rx));
        let freed = Arc::new(Notify::new());
        let a = capacity.take(&freed).expect("room for the first");
        let _b = capacity.take(&freed).expect("room for the second");
        assert_eq!(capacity.room(), 0);
        assert!(capacity.take(&freed).is_none(), "no room for a third");
        drop(a);
        assert_eq!(capacity.room(), 1);
        // A pool losing a process lowers the limit below what runs.
        tx.send(0).unwrap();
        assert_eq!(capacity.room(), 0);
        assert!(capacity.take(&freed).is_none());
    }
}
