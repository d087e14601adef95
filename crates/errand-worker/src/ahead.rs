//! Jobs claimed ahead of a limited kind's executor (a pool's processes),
//! so a process that answered its job gets the next one from memory
//! instead of waiting for a claim's commit (docs/decisions/0037).
//!
//! A queue loop holds, per kind, up to [`AHEAD`] worth of jobs at the pace
//! the kind's attempts ran so far, for each of its processes (none until the
//! first attempt ended, none while attempts take longer than [`AHEAD`]).
//! An attempt that ends takes the next held job of its kind and runs it in
//! its own place; when half the held jobs are gone the loop claims more in
//! the background, so the commit overlaps the work. The held jobs' leases
//! are renewed with the running ones. A job held longer than [`HOLD`] (every
//! process busy with slower work than the pace promised, or the pool lost
//! its processes) goes back to the queue without using an attempt, as do
//! all held jobs at shutdown.

use crate::capacity::KindCapacity;
use crate::running::Running;
use errand_core::Job;
use errand_core::pace::{AHEAD, Pace};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest a job waits held ahead before it goes back to the queue for
/// another node: a few times [`AHEAD`], since at the pace none waits
/// longer than about [`AHEAD`].
pub(crate) const HOLD: Duration = Duration::from_millis(AHEAD.as_millis() as u64 * 5);

/// One queue's jobs held ahead, by kind.
#[derive(Debug, Default)]
pub(crate) struct Ahead {
    kinds: Mutex<HashMap<String, Held>>,
    /// Woken when a kind's held jobs fell to half their target, so the
    /// loop claims more.
    pub(crate) low: Notify,
}

/// One kind's held jobs and pace.
#[derive(Debug, Default)]
struct Held {
    /// The jobs, oldest first, with when each was claimed.
    jobs: VecDeque<(Job, Instant)>,
    pace: Pace,
    /// Jobs asked for ahead by claims still in flight.
    claiming: usize,
}

impl Held {
    /// Jobs to hold for `limit` processes: [`AHEAD`] worth at the pace for
    /// each (at most [`MAX_AHEAD`] each, as for a Gearman worker); none
    /// while a job takes about [`AHEAD`] or longer (each process then
    /// waits for a claim of its own).
    fn target(&self, limit: usize) -> usize {
        match self.pace.batch() as usize {
            0 | 1 => 0,
            per => per.saturating_mul(limit),
        }
    }
}

impl Ahead {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // Plain data: a panic while holding the lock leaves it usable.
        self.kinds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many jobs of `kind` a claim should ask for ahead, for `limit`
    /// processes: none until the held and asked-for ones fall to half the
    /// target, then enough to fill it.
    pub(crate) fn want(&self, kind: &str, limit: usize) -> usize {
        let kinds = self.lock();
        let Some(held) = kinds.get(kind) else {
            return 0;
        };
        let target = held.target(limit);
        let have = held.jobs.len() + held.claiming;
        if have > target / 2 {
            return 0;
        }
        target - have
    }

    /// Records jobs asked for ahead by a claim now in flight.
    pub(crate) fn claiming(&self, asks: &[(String, usize)]) {
        let mut kinds = self.lock();
        for (kind, n) in asks {
            kinds.entry(kind.clone()).or_default().claiming += n;
        }
    }

    /// The claim of [`Ahead::claiming`] answered.
    pub(crate) fn claimed(&self, asks: &[(String, usize)]) {
        let mut kinds = self.lock();
        for (kind, n) in asks {
            if let Some(held) = kinds.get_mut(kind) {
                held.claiming = held.claiming.saturating_sub(*n);
            }
        }
    }

    /// Holds `job` for a process of its kind when the kind's target has
    /// room for it (its lease then renewed with the running ones);
    /// otherwise gives it back to the caller.
    pub(crate) fn hold(&self, job: Job, limit: usize, running: &Running) -> Option<Job> {
        let mut kinds = self.lock();
        let held = kinds.entry(job.kind.clone()).or_default();
        if held.jobs.len() >= held.target(limit) {
            return Some(job);
        }
        running.insert(job.lease(), CancellationToken::new());
        held.jobs.push_back((job, Instant::now()));
        None
    }

    /// Counts an attempt of `kind` that took `took` and, unless `stopping`
    /// or its executor lost room meanwhile (a process died), hands over the
    /// next held job of the kind, to run in the ended attempt's place.
    pub(crate) fn next(
        &self,
        kind: &str,
        took: Duration,
        capacity: &KindCapacity,
        running: &Running,
        stopping: bool,
    ) -> Option<Job> {
        let mut kinds = self.lock();
        let held = kinds.entry(kind.to_string()).or_default();
        held.pace.ran(took);
        if stopping || capacity.over() {
            return None;
        }
        let job = take(held, running)?;
        let target = held.target(capacity.limit());
        if held.claiming == 0 && held.jobs.len() <= target / 2 {
            self.low.notify_one();
        }
        Some(job)
    }

    /// The next held job of `kind`, to start in a place that freed up.
    pub(crate) fn take(&self, kind: &str, running: &Running) -> Option<Job> {
        let mut kinds = self.lock();
        take(kinds.get_mut(kind)?, running)
    }

    /// The kinds that hold jobs.
    pub(crate) fn kinds(&self) -> Vec<String> {
        let kinds = self.lock();
        kinds
            .iter()
            .filter(|(_, held)| !held.jobs.is_empty())
            .map(|(kind, _)| kind.clone())
            .collect()
    }

    /// Takes every held job of the kinds whose oldest has waited [`HOLD`]
    /// by `now` (their processes are busy with slower work: those kinds
    /// claim one job per process again until their jobs are short), and
    /// says when the next may expire.
    pub(crate) fn expired(&self, now: Instant, running: &Running) -> (Vec<Job>, Option<Instant>) {
        let mut kinds = self.lock();
        let mut out = Vec::new();
        let mut next = None::<Instant>;
        for held in kinds.values_mut() {
            let Some(&(_, since)) = held.jobs.front() else {
                continue;
            };
            if since + HOLD <= now {
                held.pace.slowed();
                while let Some(job) = take(held, running) {
                    out.push(job);
                }
            } else {
                next = Some(next.map_or(since + HOLD, |at| at.min(since + HOLD)));
            }
        }
        (out, next)
    }

    /// Takes every held job (at shutdown).
    pub(crate) fn drain(&self, running: &Running) -> Vec<Job> {
        let mut kinds = self.lock();
        let mut out = Vec::new();
        for held in kinds.values_mut() {
            while let Some(job) = take(held, running) {
                out.push(job);
            }
        }
        out
    }
}

/// The oldest held job whose lease is still held; jobs whose lease was
/// lost meanwhile (cancelled, rescued elsewhere) are dropped unrun.
fn take(held: &mut Held, running: &Running) -> Option<Job> {
    while let Some((job, _)) = held.jobs.pop_front() {
        if running.remove(&job.lease()) {
            return Some(job);
        }
        tracing::info!(
            job = job.id,
            "lease lost while the job was held ahead; dropping it"
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    fn job(id: i64) -> Job {
        let now = jiff::Timestamp::now();
        serde_json::from_value(serde_json::json!({
            "id": id, "kind": "pool", "queue": "default", "payload": null, "priority": 0,
            "state": "running", "attempt": 1, "max_attempts": 3, "run_at": now, "created_at": now,
        }))
        .expect("a valid job")
    }

    #[tokio::test(start_paused = true)]
    async fn held_jobs_follow_the_pace_run_in_order_and_expire() {
        let ahead = Ahead::default();
        let running = Running::default();
        let (_limit_tx, limit) = watch::channel(2);
        let capacity = KindCapacity::new(limit);
        assert_eq!(ahead.want("pool", 2), 0, "no pace yet: claim none ahead");
        assert!(ahead.hold(job(1), 2, &running).is_some(), "refused");

        // Fast attempts: 20 ms worth for each of 2 processes, at most MAX_AHEAD each.
        assert!(
            ahead
                .next(
                    "pool",
                    Duration::from_micros(100),
                    &capacity,
                    &running,
                    false
                )
                .is_none()
        );
        assert_eq!(
            ahead.want("pool", 2),
            2 * errand_core::pace::MAX_AHEAD as usize
        );
        ahead.claiming(&[("pool".into(), 8)]);
        assert_eq!(ahead.want("pool", 2), 0, "asked for already");
        ahead.claimed(&[("pool".into(), 8)]);
        for id in 1..=3 {
            assert!(ahead.hold(job(id), 2, &running).is_none());
        }
        assert_eq!(running.len(), 3, "held leases are renewed");
        let next = ahead.next(
            "pool",
            Duration::from_micros(100),
            &capacity,
            &running,
            false,
        );
        assert_eq!(next.map(|j| j.id), Some(1), "oldest first");
        assert!(
            ahead
                .next(
                    "pool",
                    Duration::from_micros(100),
                    &capacity,
                    &running,
                    true
                )
                .is_none(),
            "none once stopping"
        );

        // A lost lease: the job is dropped, not run.
        running.lose(&[job(2).lease()]);
        assert_eq!(ahead.take("pool", &running).map(|j| j.id), Some(3));

        // Held past HOLD: all go back and the kind claims none ahead.
        assert!(ahead.hold(job(4), 2, &running).is_none());
        let (gone, next_at) = ahead.expired(Instant::now(), &running);
        assert!(gone.is_empty());
        assert_eq!(next_at, Some(Instant::now() + HOLD));
        tokio::time::advance(HOLD).await;
        let (gone, next_at) = ahead.expired(Instant::now(), &running);
        assert_eq!(gone.iter().map(|j| j.id).collect::<Vec<_>>(), [4]);
        assert_eq!(next_at, None);
        assert_eq!(ahead.want("pool", 2), 0, "slowed: one job per process");
        assert_eq!(running.len(), 0);
    }
}
