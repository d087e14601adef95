//! Keeping a Gearman worker busy without a commit per packet (decision
//! 0034). A Gearman worker takes one job per round trip (`GRAB_JOB` →
//! `JOB_ASSIGN` → `WORK_COMPLETE` → `GRAB_JOB`…), and waiting for a claim
//! and a finish commit on each would hold it to about one job per
//! millisecond. So a connection claims a few jobs ahead of its worker
//! ([`Pace`], shared with the pool executor, decides how many, from how long its jobs take) and ends
//! attempts in the background ([`Finisher`]): Gearman acknowledges no
//! `WORK_*` report, so the worker's next grab need not wait for the last
//! one's commit, and the reports that arrive while one commit runs share
//! the next.

use super::Hub;
pub(super) use errand_core::pace::{AHEAD, Pace};
use errand_core::remote::{FinishedJob, WorkFinish, WorkerIdentity};
use errand_core::{JobId, Lease, Outcome};
use errand_gearman::Packet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most reports ended by one finish request (errand's per-request bound).
const MAX_FINISH: usize = errand_core::remote::MAX_LEASES;

/// A job claimed ahead that waited this long for its worker says the
/// worker's jobs grew slower than the pace its claim was sized to: at a
/// steady pace the last job of a claim waits about two batches, [`AHEAD`]
/// each.
pub(super) const STALE: Duration = Duration::from_millis(4 * AHEAD.as_millis() as u64);

/// How many of the `ready` jobs claimed ahead (the oldest of which has
/// waited `oldest_waited`) a worker whose claims now take `batch` jobs
/// should hand back, newest first: those beyond two batches, once the
/// oldest is [`STALE`]. Not on the count alone: a pace near a power of two
/// halves and doubles the batch from one job to the next, and handing the
/// surplus back on every dip made most jobs cost a second claim and a
/// hand-back (docs/benchmarks.md, "Gearman listener").
pub(super) fn surplus(ready: usize, oldest_waited: Duration, batch: u32) -> usize {
    if oldest_waited < STALE {
        return 0;
    }
    ready.saturating_sub(2 * batch as usize)
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
    fn a_dip_of_the_batch_hands_nothing_back_until_jobs_wait_too_long() {
        // 512 claimed while one batch of 512 was left; the next report
        // halves the batch to 256.
        let fresh = Duration::from_millis(5);
        assert_eq!(surplus(1023, fresh, 256), 0, "a dip: all kept");
        assert_eq!(surplus(1023, STALE - Duration::from_millis(1), 1), 0);
        // The worker really slowed: the oldest waited past STALE.
        assert_eq!(surplus(1023, STALE, 256), 511, "two batches kept");
        assert_eq!(surplus(1023, STALE * 2, 1), 1021);
        assert_eq!(surplus(300, STALE, 256), 0, "within two batches");
        assert_eq!(surplus(0, STALE, 1), 0);
    }
}
