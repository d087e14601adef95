//! Keeping a Gearman worker busy without a commit per packet (decision
//! 0034). A Gearman worker takes one job per round trip (`GRAB_JOB` →
//! `JOB_ASSIGN` → `WORK_COMPLETE` → `GRAB_JOB`…), and waiting for a claim
//! and a finish commit on each would hold it to about one job per
//! millisecond. So a connection claims a few jobs ahead of its worker
//! ([`Pace`] decides how many, from how long its jobs take) and ends
//! attempts in the background ([`Finisher`]): Gearman acknowledges no
//! `WORK_*` report, so the worker's next grab need not wait for the last
//! one's commit, and the reports that arrive while one commit runs share
//! the next.

use super::Hub;
use errand_core::remote::{FinishedJob, WorkFinish, WorkerIdentity};
use errand_core::{JobId, Lease, Outcome};
use errand_gearman::Packet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The work a connection holds claimed for its worker beyond the job it
/// runs: about this long at the pace its jobs ran so far. Short enough
/// that jobs wait behind a busy worker no longer than this when another
/// worker is idle, long enough that a no-op worker claims in batches.
pub(super) const AHEAD: Duration = Duration::from_millis(20);

/// Most jobs claimed at once for one connection.
pub(super) const MAX_AHEAD: u32 = 512;

/// Most reports ended by one finish request (errand's per-request bound).
const MAX_FINISH: usize = errand_core::remote::MAX_LEASES;

/// How long a connection's jobs take, and so how many to claim at once.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Moving average of the time from assignment to the worker's report;
    /// none before the first report (claim one job).
    average: Option<Duration>,
}

impl Pace {
    /// Counts one job that took `took` from assignment to report.
    pub(super) fn ran(&mut self, took: Duration) {
        self.average = Some(match self.average {
            None => took,
            // A quarter of the newest, itself at most 4× the average: a
            // change shows within a few jobs, one scheduling hiccup barely.
            Some(avg) => (avg * 3 + took.min(avg * 4)) / 4,
        });
    }

    /// A job ran past [`AHEAD`]: claim one at a time until jobs are short
    /// again.
    pub(super) fn slowed(&mut self) {
        self.average = Some(self.average.unwrap_or_default().max(AHEAD));
    }

    /// How many jobs the next claim takes: [`AHEAD`]'s worth at the
    /// average pace, 1 to [`MAX_AHEAD`], rounded down to a power of two
    /// (so the size a worker registers with changes seldom).
    pub(super) fn batch(&self) -> u32 {
        let Some(avg) = self.average else {
            return 1;
        };
        let per = avg.as_nanos().max(1);
        let n = u32::try_from(AHEAD.as_nanos() / per)
            .unwrap_or(MAX_AHEAD)
            .clamp(1, MAX_AHEAD);
        1 << n.ilog2()
    }
}

/// One attempt to end, and what to tell its foreground clients once the
/// end is applied.
pub(super) struct Ending {
    pub lease: Lease,
    pub outcome: Outcome,
    /// Sent to the job's foreground clients (and forgets them) when
    /// applied; `None` when the job may not be over (a retry, a deadly
    /// end, a disconnect) or was handed back unrun.
    pub tell: Option<Packet>,
}

/// Ends a connection's attempts in the background, batching those that
/// arrive while a commit runs.
pub(super) struct Finisher {
    tx: mpsc::UnboundedSender<Ending>,
    task: JoinHandle<()>,
}

impl Finisher {
    /// Starts ending attempts as `worker`.
    pub(super) fn start(hub: Arc<Hub>, worker: WorkerIdentity) -> Finisher {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(hub, worker, rx));
        Finisher { tx, task }
    }

    /// Queues `ending`; its job counts as finishing (the store watcher
    /// leaves its clients to this finisher) until it is applied or refused.
    pub(super) fn end(&self, hub: &Hub, ending: Ending) {
        super::lock(&hub.finishing).insert(ending.lease.id);
        let id = ending.lease.id;
        if self.tx.send(ending).is_err() {
            // Only after a panic in the task: the lease runs out and the
            // job runs again.
            super::lock(&hub.finishing).remove(&id);
        }
    }

    /// Waits until every queued ending is applied or refused.
    pub(super) async fn close(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

async fn run(hub: Arc<Hub>, worker: WorkerIdentity, mut rx: mpsc::UnboundedReceiver<Ending>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_FINISH).await > 0 {
        let req = WorkFinish {
            worker: worker.clone(),
            jobs: batch
                .iter()
                .map(|e| FinishedJob::new(e.lease, &e.outcome))
                .collect(),
        };
        let applied: Vec<bool> = match hub.remote.finish(req).await {
            Ok(results) => results.iter().map(|r| r.applied).collect(),
            Err(e) => {
                // The leases run out and the jobs run again.
                tracing::warn!(error = %e, jobs = batch.len(), "gearman finish failed");
                Vec::new()
            }
        };
        // Ended without a packet of their own (a retry, a deadly end, a
        // disconnect): if that was their last attempt, their clients learn
        // it from the store.
        let mut retried: Vec<JobId> = Vec::new();
        for (i, ending) in batch.drain(..).enumerate() {
            let id = ending.lease.id;
            let ok = applied.get(i).copied().unwrap_or(false);
            if ok && let Some(packet) = &ending.tell {
                hub.forward(id, packet, true);
            }
            super::lock(&hub.finishing).remove(&id);
            if !ok {
                // Cancelled or timed out meanwhile: the store refused it,
                // and Gearman has no answer to a report to send.
                tracing::debug!(job = id, "gearman report refused: the lease was gone");
            } else if ending.tell.is_none() && !matches!(ending.outcome, Outcome::Handback) {
                retried.push(id);
            }
        }
        if !retried.is_empty() {
            // The watcher skipped them while they were finishing here.
            hub.ended(&retried).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_follows_the_pace() {
        let mut pace = Pace::default();
        assert_eq!(pace.batch(), 1, "nothing known: one job");
        pace.ran(Duration::from_micros(30));
        assert_eq!(pace.batch(), MAX_AHEAD, "no-op jobs: the most");
        pace.ran(Duration::from_millis(30));
        assert_eq!(pace.batch(), 256, "one hiccup: barely");
        for _ in 0..20 {
            pace.ran(Duration::from_millis(5));
        }
        assert_eq!(pace.batch(), 4, "5 ms jobs: 20 ms worth");
        pace.ran(Duration::from_micros(3500));
        assert_eq!(pace.batch(), 4, "rounded down to a power of two");
        pace.slowed();
        assert_eq!(pace.batch(), 1, "a slow job: one at a time");
        pace.ran(Duration::from_secs(3));
        assert_eq!(pace.batch(), 1);
    }

    #[test]
    fn after_a_slow_job_short_ones_grow_the_batch_back() {
        let mut pace = Pace::default();
        pace.slowed();
        assert_eq!(pace.batch(), 1, "slow before any report: one at a time");
        let mut sizes = Vec::new();
        for _ in 0..30 {
            pace.ran(Duration::from_micros(30));
            sizes.push(pace.batch());
        }
        assert_eq!(sizes[..3], [1, 1, 2], "back above one within a few jobs");
        assert!(sizes.is_sorted(), "{sizes:?}");
        assert_eq!(sizes[29], MAX_AHEAD, "{sizes:?}");
    }
}
