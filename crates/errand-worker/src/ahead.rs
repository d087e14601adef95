//! Jobs claimed ahead of a limited kind's executor (a pool's processes),
//! so a process that answered its job gets the next one from memory
//! instead of waiting for a claim's commit (docs/decisions/0037).
//!
//! A queue loop holds, per kind, [`AHEAD`] worth of jobs at the pace the
//! kind's attempts ran so far for each of its processes, or twice the time
//! its claims take to commit when that is longer (a slow disk), up to
//! [`MOST_COVERED`] (none until the first attempt ended, none while
//! attempts take longer than [`AHEAD`]). An attempt that ends takes the
//! next held job of its kind and runs it in its own place; when half the
//! held jobs are gone the loop claims more in the background, so the
//! commit overlaps the work. The held jobs' leases are renewed with the
//! running ones. When no held job of a kind has been taken for [`HOLD`]
//! (every process busy with slower work than the pace promised, or the pool
//! lost its processes) its held jobs go back to the queue without using an
//! attempt, as do all held jobs at shutdown.

use crate::capacity::KindCapacity;
use crate::running::Running;
use errand_core::Job;
use errand_core::pace::{AHEAD, MAX_AHEAD, Pace};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long held jobs may stay untouched (no process of their kind took
/// one) before they go back to the queue for another node: a few times
/// [`AHEAD`], since at the pace a process takes one far sooner.
pub(crate) const HOLD: Duration = Duration::from_millis(AHEAD.as_millis() as u64 * 5);

/// Most work held for a process when claims are slow to commit.
pub(crate) const MOST_COVERED: Duration = Duration::from_millis(AHEAD.as_millis() as u64 * 4);

/// One queue's jobs held ahead, by kind.
#[derive(Debug, Default)]
pub(crate) struct Ahead {
    inner: Mutex<Inner>,
    /// Woken when a kind's held jobs fell to half their target, so the
    /// loop claims more.
    pub(crate) low: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    kinds: HashMap<String, Held>,
    /// How long this queue's claims take to answer: rises at once with a
    /// slow one, decays by a quarter per claim.
    round_trip: Duration,
}

/// One kind's held jobs and pace.
#[derive(Debug, Default)]
struct Held {
    /// The jobs, oldest first.
    jobs: VecDeque<Job>,
    /// When a process last took one of them (or the first was held).
    moved: Option<Instant>,
    pace: Pace,
    /// Jobs asked for ahead by claims still in flight.
    claiming: usize,
}

impl Held {
    /// Jobs to hold for `limit` processes: for each, [`AHEAD`] worth at the
    /// pace, or twice a claim's `round_trip` worth when longer (so a
    /// process does not wait for a slow commit), up to [`MOST_COVERED`] and
    /// 4 × [`MAX_AHEAD`] jobs; none while a job takes about [`AHEAD`] or
    /// longer (each process then waits for a claim of its own).
    fn target(&self, limit: usize, round_trip: Duration) -> usize {
        let per = self.pace.batch() as usize;
        if per <= 1 {
            return 0;
        }
        let cover = (round_trip * 2).clamp(AHEAD, MOST_COVERED);
        let per = (per as f64 * cover.as_secs_f64() / AHEAD.as_secs_f64()) as usize;
        per.min(4 * MAX_AHEAD as usize).saturating_mul(limit)
    }
}

impl Ahead {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain data: a panic while holding the lock leaves it usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many jobs of `kind` a claim should ask for ahead, for `limit`
    /// processes: none until the held and asked-for ones fall to half the
    /// target, then enough to fill it.
    pub(crate) fn want(&self, kind: &str, limit: usize) -> usize {
        let inner = self.lock();
        let Some(held) = inner.kinds.get(kind) else {
            return 0;
        };
        let target = held.target(limit, inner.round_trip);
        let have = held.jobs.len() + held.claiming;
        if have > target / 2 {
            return 0;
        }
        target - have
    }

    /// Records jobs asked for ahead by a claim now in flight.
    pub(crate) fn claiming(&self, asks: &[(String, usize)]) {
        let mut inner = self.lock();
        for (kind, n) in asks {
            inner.kinds.entry(kind.clone()).or_default().claiming += n;
        }
    }

    /// A claim answered after `took`; it had asked for `asks` ahead.
    pub(crate) fn claimed(&self, asks: &[(String, usize)], took: Duration) {
        let mut inner = self.lock();
        inner.round_trip = took.max((inner.round_trip * 3) / 4);
        for (kind, n) in asks {
            if let Some(held) = inner.kinds.get_mut(kind) {
                held.claiming = held.claiming.saturating_sub(*n);
            }
        }
    }

    /// Holds `job` for a process of its kind when the kind's target has
    /// room for it (its lease then renewed with the running ones);
    /// otherwise gives it back to the caller.
    pub(crate) fn hold(&self, job: Job, limit: usize, running: &Running) -> Option<Job> {
        let mut inner = self.lock();
        let round_trip = inner.round_trip;
        let held = inner.kinds.entry(job.kind.clone()).or_default();
        if held.jobs.len() >= held.target(limit, round_trip) {
            return Some(job);
        }
        running.insert(job.lease(), CancellationToken::new());
        if held.jobs.is_empty() {
            held.moved = Some(Instant::now());
        }
        held.jobs.push_back(job);
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
        let mut inner = self.lock();
        let round_trip = inner.round_trip;
        let held = inner.kinds.entry(kind.to_string()).or_default();
        held.pace.ran(took);
        if stopping || capacity.over() {
            return None;
        }
        let target = held.target(capacity.limit(), round_trip);
        let Some(job) = take(held, running) else {
            if target > 0 {
                // The claims did not keep up: this place now waits for one.
                tracing::debug!(
                    kind,
                    ?round_trip,
                    claiming = held.claiming,
                    target,
                    "held jobs ran out"
                );
            }
            return None;
        };
        if held.claiming == 0 && held.jobs.len() <= target / 2 {
            self.low.notify_one();
        }
        Some(job)
    }

    /// The next held job of `kind`, to start in a place that freed up.
    pub(crate) fn take(&self, kind: &str, running: &Running) -> Option<Job> {
        let mut inner = self.lock();
        take(inner.kinds.get_mut(kind)?, running)
    }

    /// The kinds that hold jobs.
    pub(crate) fn kinds(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .kinds
            .iter()
            .filter(|(_, held)| !held.jobs.is_empty())
            .map(|(kind, _)| kind.clone())
            .collect()
    }

    /// Takes every held job of the kinds none of whose held jobs was taken
    /// for [`HOLD`] by `now` (their processes are busy with slower work:
    /// those kinds claim one job per process again until their jobs are
    /// short), and says when the next may expire.
    pub(crate) fn expired(&self, now: Instant, running: &Running) -> (Vec<Job>, Option<Instant>) {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let mut next = None::<Instant>;
        for held in inner.kinds.values_mut() {
            let Some(since) = held.moved.filter(|_| !held.jobs.is_empty()) else {
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
        let mut inner = self.lock();
        let mut out = Vec::new();
        for held in inner.kinds.values_mut() {
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
    while let Some(job) = held.jobs.pop_front() {
        if running.remove(&job.lease()) {
            held.moved = Some(Instant::now());
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

    #[test]
    fn held_jobs_follow_the_pace_run_in_order_and_expire() {
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
                    Duration::from_micros(30),
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
        ahead.claiming(&[("pool".into(), 600)]);
        assert_eq!(ahead.want("pool", 2), 0, "over half asked for already");
        ahead.claimed(&[("pool".into(), 600)], Duration::from_millis(1));
        // Slow commits: enough to cover two claims, at most 80 ms worth.
        ahead.claimed(&[], Duration::from_millis(40));
        assert_eq!(
            ahead.want("pool", 2),
            2 * 4 * errand_core::pace::MAX_AHEAD as usize
        );
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
        assert!(ahead.hold(job(5), 2, &running).is_none());
        // Taking one counts as movement: the rest wait HOLD from then.
        let before = Instant::now();
        assert_eq!(ahead.take("pool", &running).map(|j| j.id), Some(4));
        let (gone, next_at) = ahead.expired(before, &running);
        assert!(gone.is_empty());
        let next_at = next_at.expect("a held job may expire");
        assert!(next_at >= before + HOLD && next_at <= Instant::now() + HOLD);
        let (gone, next_at) = ahead.expired(next_at, &running);
        assert_eq!(gone.iter().map(|j| j.id).collect::<Vec<_>>(), [5]);
        assert_eq!(next_at, None);
        assert_eq!(ahead.want("pool", 2), 0, "slowed: one job per process");
        assert_eq!(running.len(), 0);
    }
}
