//! One queue's fetch loop: claims as many jobs as there are free slots in
//! one store call (a second claim may be in flight for slots freed
//! meanwhile), spawns a task per job, and when the queue is empty sleeps
//! until an enqueue event for this queue, or the poll interval, wakes it.
//! Kinds whose breaker is open are left out of claims; a due probe is one
//! claim of one job of its kind. When a global kind limit held jobs back,
//! it sleeps until a job ends somewhere (a finish event), the rate window
//! reopens, or the poll interval passes. Kinds whose executor has no room
//! on this node (every pool process busy) are left out of claims too, and a
//! claim of only such kinds asks for no more jobs than they have room for,
//! plus the jobs it holds ahead for them once their attempts proved short
//! (`ahead`, docs/decisions/0037): an ended attempt then runs the next held
//! job in its place without waiting for a claim.

use crate::ahead::Ahead;
use crate::breaker::Breakers;
use crate::execution::{Attempts, Registration};
use crate::retry_delay::RetryDelay;
use errand_core::store::{ClaimRequest, Claimed};
use errand_core::{Job, KindLimit, Outcome, Store, StoreError, StoreEvent};
use jiff::Timestamp;
use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Claims a queue may have waiting on the store at once: a second claim for
/// the slots freed while the first is being committed keeps the writer busy
/// and lets claims share commits with completions.
const CLAIMS_IN_FLIGHT: usize = 2;
/// The same when every kind claimed has a capacity: such claims ask only for
/// the room one ended attempt left (often one job), so more of them in
/// flight share commits instead of leaving processes idle.
const LIMITED_CLAIMS_IN_FLIGHT: usize = 4;

/// Jobs a claim asked for ahead, by kind.
type Asks = Vec<(String, usize)>;

/// What a claim task answers: the jobs, the slots reserved for them, the
/// kind when the claim was that kind's breaker probe, the jobs it asked
/// for ahead, and how long it took.
type ClaimAnswer = (
    Result<Claimed, StoreError>,
    OwnedSemaphorePermit,
    Option<String>,
    Asks,
    Duration,
);

/// Why the loop stopped claiming, which says what may wake it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Idle {
    /// Claiming: there may be work.
    No,
    /// The last claim found nothing: wait for an enqueue or the poll.
    Empty,
    /// A kind limit held due jobs back: also wake when any job ends, or
    /// when the rate window reopens (`retry_at`, by the store's clock).
    Held(Option<Timestamp>),
}

/// Everything one queue's loop needs.
pub(crate) struct QueueLoop {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) queue: String,
    pub(crate) concurrency: usize,
    pub(crate) worker: String,
    pub(crate) lease: Duration,
    pub(crate) poll_interval: Duration,
    /// Global limits of the registered kinds that have any.
    pub(crate) limits: BTreeMap<String, KindLimit>,
    pub(crate) registrations: Arc<HashMap<String, Arc<Registration>>>,
    pub(crate) breakers: Arc<Breakers>,
    /// Notified when a limited kind's attempt ends or its executor's
    /// capacity changes.
    pub(crate) room_freed: Arc<Notify>,
    pub(crate) attempts: Arc<Attempts>,
    /// Jobs held ahead of limited kinds' executors.
    pub(crate) ahead: Arc<Ahead>,
    pub(crate) tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

impl QueueLoop {
    /// Claims and spawns until `shutdown` fires, then hands back whatever
    /// the claims still in flight bring.
    pub(crate) async fn run(self) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        // Subscribed before the first claim: an enqueue that lands between an
        // empty claim and the wait below is still seen.
        let mut events = self.store.subscribe();
        let mut kinds: Vec<String> = self.registrations.keys().cloned().collect();
        kinds.sort();
        let mut delay = RetryDelay::new();
        let mut claims: JoinSet<ClaimAnswer> = JoinSet::new();
        // Set by an empty or held-back claim: no new claim until an event or
        // the poll interval says there may be work.
        let mut idle = Idle::No;
        loop {
            let stopping = self.shutdown.is_cancelled();
            if stopping {
                self.hand_back(self.ahead.drain(&self.attempts.running));
            }
            if stopping && claims.is_empty() {
                return;
            }
            // Armed before room is read, so room freed after the read still wakes us.
            let room_freed = self.room_freed.notified();
            tokio::pin!(room_freed);
            room_freed.as_mut().enable();
            let ahead_low = self.ahead.low.notified();
            tokio::pin!(ahead_low);
            ahead_low.as_mut().enable();
            // Held jobs whose processes stayed busy go back; room that
            // appeared (a process became ready) takes held jobs first.
            let (expired, hold_until) = self.ahead.expired(Instant::now(), &self.attempts.running);
            if !expired.is_empty() {
                tracing::debug!(
                    queue = self.queue,
                    jobs = expired.len(),
                    "jobs held ahead waited too long; handing them back"
                );
                self.hand_back(expired);
            }
            if !stopping {
                self.start_held(&slots);
            }
            // Held jobs start when room appears, so its freeing must wake us.
            let holding = !self.ahead.kinds().is_empty();
            if idle != Idle::No && claims.is_empty() {
                let full = holding || kinds.iter().any(|kind| self.room(kind) == Some(0));
                self.wait_for_work(&mut events, idle, full.then_some(room_freed), hold_until)
                    .await;
                idle = Idle::No;
                continue;
            }
            let now = Instant::now();
            let mut plan = self.breakers.plan(&kinds, now);
            let (closed, full): (Vec<String>, Vec<String>) = plan
                .closed
                .into_iter()
                .partition(|kind| self.room(kind) != Some(0) || self.want(kind) > 0);
            plan.closed = closed;
            plan.probe = plan.probe.filter(|kind| self.room(kind) != Some(0));
            let in_flight = if plan.closed.iter().all(|kind| self.room(kind).is_some()) {
                LIMITED_CLAIMS_IN_FLIGHT
            } else {
                CLAIMS_IN_FLIGHT
            };
            let may_claim = !stopping && idle == Idle::No && claims.len() < in_flight;
            let claimable = !plan.closed.is_empty() || plan.probe.is_some();
            // Every kind's breaker is open: sleep until a probe is due, or
            // a poll interval (an attempt still running may close one).
            let blocked = (may_claim && !claimable).then(|| {
                plan.wake_at
                    .map_or(self.poll_interval, |at| at.saturating_duration_since(now))
                    .min(self.poll_interval)
            });
            tokio::select! {
                Some(claimed) = claims.join_next() => {
                    let Ok((result, permits, probe, asks, took)) = claimed else {
                        tracing::error!(queue = self.queue, "a claim task failed");
                        continue;
                    };
                    self.ahead.claimed(&asks, took);
                    if let Some(kind) = &probe
                        && !matches!(&result, Ok(claimed) if !claimed.jobs.is_empty())
                    {
                        // No job to probe with: try again a poll interval later.
                        self.breakers.probe_unused(kind, Instant::now() + self.poll_interval);
                    }
                    match result {
                        Ok(claimed) => {
                            delay.reset();
                            // An empty probe says nothing about other kinds.
                            if probe.is_none() {
                                idle = idle_after(&claimed);
                            }
                            self.start(claimed.jobs, permits, &slots);
                        }
                        Err(e) => {
                            drop(permits);
                            let pause = delay.next();
                            tracing::warn!(queue = self.queue, error = %e, ?pause, "claim failed; retrying");
                            self.sleep(pause).await;
                        }
                    }
                }
                permit = slots.clone().acquire_owned(), if may_claim && claimable => {
                    let mut permits = permit.expect("the slot semaphore is never closed");
                    // Every slot free now goes into this one claim.
                    let more = slots.available_permits();
                    if let Ok(extra) = slots.clone().try_acquire_many_owned(more as u32) {
                        permits.merge(extra);
                    }
                    if let Some(kind) = plan.probe
                        && self.breakers.take_probe(&kind, Instant::now())
                    {
                        let probe = permits.split(1).expect("at least one slot reserved");
                        self.claim(&mut claims, vec![kind.clone()], probe, Some(kind), Vec::new());
                    }
                    if !plan.closed.is_empty() {
                        // Only limited kinds: ask for no more than they have
                        // room for, plus what they want held ahead.
                        let room = plan.closed.iter().map(|kind| self.room(kind)).sum::<Option<usize>>();
                        let mut asks = Vec::new();
                        if let Some(room) = room {
                            if permits.num_permits() > room {
                                drop(permits.split(permits.num_permits() - room));
                            }
                            asks = plan.closed.iter()
                                .map(|kind| (kind.clone(), self.want(kind)))
                                .filter(|(_, n)| *n > 0)
                                .collect();
                        }
                        if permits.num_permits() > 0 || !asks.is_empty() {
                            self.claim(&mut claims, plan.closed, permits, None, asks);
                        }
                    }
                }
                _ = tokio::time::sleep(blocked.unwrap_or_default()), if blocked.is_some() => {}
                _ = &mut room_freed, if !full.is_empty() || holding => {}
                _ = &mut ahead_low => {}
                _ = tokio::time::sleep_until(hold_until.unwrap_or_else(Instant::now)), if hold_until.is_some() => {}
                _ = self.shutdown.cancelled(), if !stopping => {}
            }
        }
    }

    /// Claims up to one job per reserved slot, plus those asked for ahead,
    /// of `kinds`, in a task.
    fn claim(
        &self,
        claims: &mut JoinSet<ClaimAnswer>,
        kinds: Vec<String>,
        permits: OwnedSemaphorePermit,
        probe: Option<String>,
        asks: Asks,
    ) {
        self.ahead.claiming(&asks);
        let wanted = permits.num_permits() + asks.iter().map(|(_, n)| n).sum::<usize>();
        let request = ClaimRequest {
            queue: self.queue.clone(),
            kinds,
            limit: u32::try_from(wanted).unwrap_or(u32::MAX),
            worker: self.worker.clone(),
            lease: self.lease,
            limits: self.limits.clone(),
        };
        let store = self.store.clone();
        claims.spawn(async move {
            let sent = Instant::now();
            let claimed = store.claim(&request).await;
            (claimed, permits, probe, asks, sent.elapsed())
        });
    }

    /// Runs claimed jobs, one slot each, or hands them back once shutdown
    /// has begun; slots left over are freed. Jobs claimed ahead (beyond the
    /// slots reserved) start when a slot and room are free, else are held.
    fn start(&self, jobs: Vec<Job>, mut permits: OwnedSemaphorePermit, slots: &Arc<Semaphore>) {
        if self.shutdown.is_cancelled() {
            self.hand_back(jobs);
            return;
        }
        for job in jobs {
            match permits
                .split(1)
                .or_else(|| slots.clone().try_acquire_owned().ok())
            {
                Some(permit) => self.spawn(job, permit),
                None => self.hold(job),
            }
        }
    }

    /// Starts held jobs of the kinds that have room and slots for them.
    fn start_held(&self, slots: &Arc<Semaphore>) {
        for kind in self.ahead.kinds() {
            while self.room(&kind).unwrap_or(0) > 0 {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    return;
                };
                let Some(job) = self.ahead.take(&kind, &self.attempts.running) else {
                    break;
                };
                self.spawn(job, permit);
            }
        }
    }

    /// Holds a job claimed ahead for its kind's executor, or hands it back
    /// when the kind wants none held.
    fn hold(&self, job: Job) {
        let limit = self
            .registrations
            .get(&job.kind)
            .and_then(|reg| reg.capacity.as_ref())
            .map(|capacity| capacity.limit());
        let refused = match limit {
            Some(limit) => self.ahead.hold(job, limit, &self.attempts.running),
            None => Some(job),
        };
        if let Some(job) = refused {
            tracing::debug!(
                job = job.id,
                kind = job.kind,
                "no room for the job on this node; handing it back"
            );
            self.hand_back(vec![job]);
        }
    }

    /// Jobs of `kind` to claim ahead now (none for unlimited kinds).
    fn want(&self, kind: &str) -> usize {
        self.registrations
            .get(kind)
            .and_then(|reg| reg.capacity.as_ref())
            .map_or(0, |capacity| self.ahead.want(kind, capacity.limit()))
    }

    fn spawn(&self, job: Job, permit: OwnedSemaphorePermit) {
        let Some(reg) = self.registrations.get(&job.kind).cloned() else {
            // The store returned a kind we did not ask for: give it back untouched.
            tracing::warn!(
                job = job.id,
                kind = job.kind,
                "claimed a kind with no executor; handing it back"
            );
            self.hand_back(vec![job]);
            return;
        };
        let running = match &reg.capacity {
            None => None,
            Some(capacity) => match capacity.take(&self.room_freed) {
                Some(running) => Some(running),
                None => {
                    // One claim over several limited kinds (or two queues
                    // sharing a kind) brought more than the kind has room
                    // for: hold the rest for its next free place when it
                    // wants jobs ahead, else give them back at once, no
                    // attempt used, rather than let them wait for a process.
                    drop(permit);
                    self.hold(job);
                    return;
                }
            },
        };
        let attempts = self.attempts.clone();
        let ahead = self.ahead.clone();
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let mut job = job;
            loop {
                let kind = job.kind.clone();
                let started = Instant::now();
                attempts.run(job, reg.clone()).await;
                // A limited kind's place passes to its next held job, with
                // the slot: no claim, no wake-up of the fetch loop.
                let Some(capacity) = &reg.capacity else {
                    break;
                };
                let took = started.elapsed();
                let stopping = shutdown.is_cancelled();
                match ahead.next(&kind, took, capacity, &attempts.running, stopping) {
                    Some(next) => job = next,
                    None => break,
                }
            }
            drop(running);
            drop(permit);
        });
    }

    /// Attempts of `kind` that may start now on this node; `None` when its
    /// executor has no limit.
    fn room(&self, kind: &str) -> Option<usize> {
        self.registrations
            .get(kind)
            .and_then(|reg| reg.capacity.as_ref())
            .map(|capacity| capacity.room())
    }

    /// Returns jobs claimed after shutdown began without running them.
    fn hand_back(&self, jobs: Vec<Job>) {
        for job in jobs {
            let backoff = self
                .registrations
                .get(&job.kind)
                .map(|r| r.policy.backoff)
                .unwrap_or_default();
            self.attempts
                .finish(job.lease(), Outcome::Handback, backoff);
        }
    }

    /// Waits for an enqueue into this queue, the poll interval, shutdown,
    /// and when held back by a limit, any job's end or the rate window.
    /// With `room_freed` (a kind was left out for want of room), also when
    /// room frees up.
    /// With `hold_until`, also when a held job may have waited too long.
    async fn wait_for_work(
        &self,
        events: &mut broadcast::Receiver<StoreEvent>,
        idle: Idle,
        room_freed: Option<Pin<&mut Notified<'_>>>,
        hold_until: Option<Instant>,
    ) {
        let (on_finish, retry_at) = match idle {
            Idle::Held(retry_at) => (true, retry_at),
            Idle::No | Idle::Empty => (false, None),
        };
        let clock = self.store.clock();
        let window_reopens = async {
            match retry_at {
                Some(at) => clock.sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let room = async {
            match room_freed {
                Some(notified) => notified.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(self.poll_interval) => {}
            _ = window_reopens => {}
            _ = work_event(events, &self.queue, on_finish) => {}
            _ = room => {}
            _ = tokio::time::sleep_until(hold_until.unwrap_or_else(Instant::now)), if hold_until.is_some() => {}
        }
    }

    async fn sleep(&self, pause: Duration) {
        tokio::select! {
            _ = self.shutdown.cancelled() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// What to do after a claim: claim again at once if it may find more, else
/// wait; held-back jobs wait for room under their kind's limit.
fn idle_after(claimed: &Claimed) -> Idle {
    match claimed.held {
        Some(held) => Idle::Held(held.retry_at),
        None if claimed.jobs.is_empty() => Idle::Empty,
        None => Idle::No,
    }
}

/// Resolves when an event says jobs became available in `queue`, or (with
/// `on_finish`) that some job ended, or events were missed, which may have
/// included one.
async fn work_event(events: &mut broadcast::Receiver<StoreEvent>, queue: &str, on_finish: bool) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::Enqueued(queues)) if queues.iter().any(|q| q == queue) => return,
            Ok(StoreEvent::Finished(_)) if on_finish => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            // No more events: only the poll interval can wake us now.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
