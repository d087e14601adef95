//! Throughput history and lifetime totals: what jobs did, counted per
//! minute and per (kind, queue). Engines count every enqueue, claim and
//! attempt end in memory ([`Pending`]) and fold the counts into writes they
//! make anyway; the tables' columns, the histogram bounds and the
//! quantiles are defined here once, for both engines, the `/metrics`
//! histograms and the dashboard's charts.

use crate::{JobState, Outcome};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Upper bounds of the duration histograms (wait and run), in seconds:
/// a bucket counts observations above the previous bound up to its own;
/// longer ones are only in the count and sum (Prometheus' `+Inf`).
pub const BOUNDS_SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The width of a history row.
pub const MINUTE_SECONDS: i64 = 60;

/// The events counted, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counter {
    /// A job was inserted (duplicates are not).
    Enqueued,
    /// An attempt succeeded.
    Completed,
    /// A job became failed: permanent error, or out of attempts.
    Failed,
    /// An attempt failed and the job will run again after backoff.
    Retried,
    /// An attempt asked to run again later without using an attempt.
    Snoozed,
    /// An attempt ended deadly (infrastructure down; attempt not counted).
    Deadly,
    /// A job was cancelled.
    Cancelled,
    /// A running job's lease expired and the job was taken back.
    Rescued,
}

impl Counter {
    /// Every counter, in column order.
    pub const ALL: [Counter; 8] = [
        Counter::Enqueued,
        Counter::Completed,
        Counter::Failed,
        Counter::Retried,
        Counter::Snoozed,
        Counter::Deadly,
        Counter::Cancelled,
        Counter::Rescued,
    ];

    /// Its column, field and metric name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::Enqueued => "enqueued",
            Counter::Completed => "completed",
            Counter::Failed => "failed",
            Counter::Retried => "retried",
            Counter::Snoozed => "snoozed",
            Counter::Deadly => "deadly",
            Counter::Cancelled => "cancelled",
            Counter::Rescued => "rescued",
        }
    }

    /// The counters an attempt's end moves, given how it ended and the
    /// job's next state: one per outcome, plus `failed` when a rescue used
    /// the job's last attempt. A handback (shutdown) counts nothing: the
    /// job just runs again.
    pub fn of_end(ending: Ending, next: JobState) -> &'static [Counter] {
        match (ending, next) {
            (Ending::Success, _) => &[Counter::Completed],
            (Ending::Retry, JobState::Failed) => &[Counter::Failed],
            (Ending::Retry, _) => &[Counter::Retried],
            (Ending::Permanent, _) => &[Counter::Failed],
            (Ending::Snooze, _) => &[Counter::Snoozed],
            (Ending::Deadly, _) => &[Counter::Deadly],
            (Ending::Handback, _) => &[],
            (Ending::LeaseExpired, JobState::Failed) => &[Counter::Rescued, Counter::Failed],
            (Ending::LeaseExpired, _) => &[Counter::Rescued],
        }
    }
}

/// How an attempt ended, without the outcome's data: taken before the
/// outcome is consumed by [`crate::outcome::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// [`Outcome::Success`].
    Success,
    /// [`Outcome::Retry`].
    Retry,
    /// [`Outcome::Permanent`].
    Permanent,
    /// [`Outcome::Snooze`].
    Snooze,
    /// [`Outcome::Deadly`].
    Deadly,
    /// [`Outcome::Handback`].
    Handback,
    /// [`Outcome::LeaseExpired`].
    LeaseExpired,
}

impl Ending {
    /// The ending of `outcome`.
    pub fn of(outcome: &Outcome) -> Ending {
        match outcome {
            Outcome::Success(_) => Ending::Success,
            Outcome::Retry(_) => Ending::Retry,
            Outcome::Permanent(_) => Ending::Permanent,
            Outcome::Snooze(_) => Ending::Snooze,
            Outcome::Deadly(_) => Ending::Deadly,
            Outcome::Handback => Ending::Handback,
            Outcome::LeaseExpired => Ending::LeaseExpired,
        }
    }

    /// Whether the attempt's run time is worth observing (a handback or a
    /// lost lease did not finish its work).
    pub fn observes_run(self) -> bool {
        !matches!(self, Ending::Handback | Ending::LeaseExpired)
    }
}

/// Counts of each [`Counter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Jobs inserted.
    pub enqueued: u64,
    /// Attempts that succeeded.
    pub completed: u64,
    /// Jobs that became failed.
    pub failed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Attempts snoozed.
    pub snoozed: u64,
    /// Attempts that ended deadly.
    pub deadly: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// Jobs rescued from an expired lease.
    pub rescued: u64,
}

impl Counts {
    fn slot(&mut self, c: Counter) -> &mut u64 {
        match c {
            Counter::Enqueued => &mut self.enqueued,
            Counter::Completed => &mut self.completed,
            Counter::Failed => &mut self.failed,
            Counter::Retried => &mut self.retried,
            Counter::Snoozed => &mut self.snoozed,
            Counter::Deadly => &mut self.deadly,
            Counter::Cancelled => &mut self.cancelled,
            Counter::Rescued => &mut self.rescued,
        }
    }

    /// The count of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        let mut copy = *self;
        *copy.slot(c)
    }
}

/// A duration histogram over [`BOUNDS_SECONDS`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Histogram {
    /// Observations.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_us: u64,
    /// Observations per bucket (not cumulative), one per bound; those
    /// above the last bound are only in `count`.
    pub buckets: [u64; BOUNDS_SECONDS.len()],
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, d: Duration) {
        self.count += 1;
        self.sum_us = self
            .sum_us
            .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let secs = d.as_secs_f64();
        if let Some(i) = BOUNDS_SECONDS.iter().position(|b| secs <= *b) {
            self.buckets[i] += 1;
        }
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    /// The sum in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }

    /// Estimated `q` quantile (0..=1) by linear interpolation inside the
    /// bucket that holds it, as Prometheus' `histogram_quantile` does;
    /// `None` without observations. Above the last bound it answers the
    /// last bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        let mut lower = 0.0;
        for (n, upper) in self.buckets.iter().zip(BOUNDS_SECONDS) {
            if *n > 0 && (below + n) as f64 >= rank {
                let within = (rank - below as f64) / *n as f64;
                return Some(Duration::from_secs_f64(lower + (upper - lower) * within));
            }
            below += n;
            lower = upper;
        }
        Some(Duration::from_secs_f64(lower))
    }
}

/// What happened to one (kind, queue) in some span of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    /// Event counts.
    pub counts: Counts,
    /// Wait times: from when a job could first run (its `run_at`, or its
    /// creation if later) to the claim that started it.
    pub wait: Histogram,
    /// Run times: from an attempt's start to its end.
    pub run: Histogram,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, other: &Tally) {
        for c in Counter::ALL {
            *self.counts.slot(c) += other.counts.get(c);
        }
        self.wait.merge(&other.wait);
        self.run.merge(&other.run);
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Tally::default()
    }

    /// The stored columns' names, in order ([`Tally::values`] and
    /// [`Tally::from_values`] use the same order): the counters, then for
    /// `wait` and `run` each the count, the sum in microseconds and one
    /// column per bucket (`wait_b00` …).
    pub fn columns() -> Vec<String> {
        let mut cols: Vec<String> = Counter::ALL.iter().map(|c| c.name().to_string()).collect();
        for h in ["wait", "run"] {
            cols.push(format!("{h}_count"));
            cols.push(format!("{h}_sum_us"));
            cols.extend((0..BOUNDS_SECONDS.len()).map(|i| format!("{h}_b{i:02}")));
        }
        cols
    }

    /// The values of [`Tally::columns`], as stored (signed 64-bit).
    pub fn values(&self) -> Vec<i64> {
        let int = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut vals: Vec<i64> = Counter::ALL
            .iter()
            .map(|c| int(self.counts.get(*c)))
            .collect();
        for h in [&self.wait, &self.run] {
            vals.push(int(h.count));
            vals.push(int(h.sum_us));
            vals.extend(h.buckets.iter().map(|v| int(*v)));
        }
        vals
    }

    /// A tally from stored values in [`Tally::columns`] order; `None` when
    /// the number of values is wrong. Negative values read as 0.
    pub fn from_values(vals: &[i64]) -> Option<Tally> {
        if vals.len() != Tally::columns().len() {
            return None;
        }
        let mut it = vals.iter().map(|v| u64::try_from(*v).unwrap_or(0));
        let mut t = Tally::default();
        for c in Counter::ALL {
            *t.counts.slot(c) = it.next()?;
        }
        for h in [&mut t.wait, &mut t.run] {
            h.count = it.next()?;
            h.sum_us = it.next()?;
            for b in h.buckets.iter_mut() {
                *b = it.next()?;
            }
        }
        Some(t)
    }
}

/// Where a count goes: the minute it happened in (Unix seconds of the
/// minute's start), the job's kind and queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Start of the minute, Unix seconds.
    pub minute: i64,
    /// The job's kind.
    pub kind: String,
    /// The job's queue.
    pub queue: String,
}

/// Most keys [`Pending`] searches by a scan before building a key.
const SCAN_KEYS: usize = 8;

/// Counts not yet written: engines add to it as jobs move and write it
/// out (history rows and totals) with a later transaction.
#[derive(Debug, Default)]
pub struct Pending {
    tallies: HashMap<Key, Tally>,
}

/// The start of the minute holding `t`, in Unix seconds.
pub fn minute_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(MINUTE_SECONDS) * MINUTE_SECONDS
}

impl Pending {
    fn at(&mut self, now: Timestamp, kind: &str, queue: &str) -> &mut Tally {
        let minute = minute_of(now);
        // An operation's counts fall under one key or a few: finding it by
        // a scan spares the two strings of a new key per job, which the
        // SQLite writer paid on every claimed and finished job.
        let same = |k: &Key| k.minute == minute && k.kind == kind && k.queue == queue;
        if self.tallies.len() <= SCAN_KEYS && self.tallies.keys().any(same) {
            return self
                .tallies
                .iter_mut()
                .find_map(|(k, t)| same(k).then_some(t))
                .expect("the key was just found");
        }
        let key = Key {
            minute,
            kind: kind.to_string(),
            queue: queue.to_string(),
        };
        self.tallies.entry(key).or_default()
    }

    /// Counts one `counter` event of a job at `now`.
    pub fn count(&mut self, now: Timestamp, kind: &str, queue: &str, counter: Counter) {
        *self.at(now, kind, queue).counts.slot(counter) += 1;
    }

    /// Counts the claim at `now` of each of `jobs`: a job could run from
    /// its `run_at`, or from its creation when that is later (a past
    /// `run_at` only orders it among due jobs).
    pub fn claimed(&mut self, now: Timestamp, jobs: &[crate::Job]) {
        for job in jobs {
            self.started(now, &job.kind, &job.queue, job.run_at.max(job.created_at));
        }
    }

    /// Counts a claim at `now` of a job that could run from `ready`.
    pub fn started(&mut self, now: Timestamp, kind: &str, queue: &str, ready: Timestamp) {
        let wait = Duration::try_from(now.duration_since(ready)).unwrap_or_default();
        self.at(now, kind, queue).wait.observe(wait);
    }

    /// Counts the end at `now` of an attempt started at `started` (if
    /// known) that left the job `next`: its counters and its run time.
    pub fn ended(
        &mut self,
        now: Timestamp,
        kind: &str,
        queue: &str,
        started: Option<Timestamp>,
        ending: Ending,
        next: JobState,
    ) {
        let tally = self.at(now, kind, queue);
        for c in Counter::of_end(ending, next) {
            *tally.counts.slot(*c) += 1;
        }
        if let Some(started) = started
            && ending.observes_run()
        {
            let run = Duration::try_from(now.duration_since(started)).unwrap_or_default();
            tally.run.observe(run);
        }
    }

    /// Adds `tally` under `key`.
    pub fn add(&mut self, key: Key, tally: Tally) {
        self.tallies.entry(key).or_default().merge(&tally);
    }

    /// Adds everything `other` holds.
    pub fn absorb(&mut self, other: Pending) {
        if self.tallies.is_empty() {
            self.tallies = other.tallies;
            return;
        }
        for (key, t) in other.tallies {
            self.tallies.entry(key).or_default().merge(&t);
        }
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    /// Takes everything pending, sorted by key so that every writer locks
    /// rows in the same order.
    pub fn drain(&mut self) -> Vec<(Key, Tally)> {
        let mut all: Vec<(Key, Tally)> = self.tallies.drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// The history table: one row per (minute, kind, queue) with activity.
pub const HISTORY_TABLE: (&str, &[&str]) = ("history", &["minute", "kind", "queue"]);

/// The lifetime totals table: one row per (kind, queue), never pruned.
pub const TOTALS_TABLE: (&str, &[&str]) = ("history_totals", &["kind", "queue"]);

/// SQL that adds one tally to the row of `table` (name and key columns,
/// [`HISTORY_TABLE`] or [`TOTALS_TABLE`]) with the given key, creating
/// the row when missing. `param(i)` spells the i-th (1-based) placeholder;
/// the parameters are the key columns, then [`Tally::values`].
pub fn upsert_sql((table, keys): (&str, &[&str]), param: impl Fn(usize) -> String) -> String {
    let cols = Tally::columns();
    let placeholders: Vec<String> = (1..=keys.len() + cols.len()).map(param).collect();
    let add: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}, {}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        keys.join(", "),
        cols.join(", "),
        placeholders.join(", "),
        keys.join(", "),
        add.join(", ")
    )
}

/// `SUM(col)` of every tally column, comma-separated, for a grouped read.
pub fn sum_columns() -> String {
    Tally::columns()
        .iter()
        .map(|c| format!("SUM({c})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A throughput question: history between two times, in steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputQuery {
    /// Start (inclusive; rounded down to its minute).
    pub from: Timestamp,
    /// End (exclusive).
    pub to: Timestamp,
    /// Width of each answered bucket, a whole number of minutes (at least one).
    pub step: Duration,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
}

impl ThroughputQuery {
    /// The step in whole minutes (at least one), in seconds.
    pub fn step_seconds(&self) -> i64 {
        let minutes = (self.step.as_secs() as i64 / MINUTE_SECONDS).max(1);
        minutes * MINUTE_SECONDS
    }

    /// The bucket start (Unix seconds) holding `minute`: buckets are
    /// aligned on multiples of the step since the Unix epoch.
    pub fn bucket_of(&self, minute: i64) -> i64 {
        minute.div_euclid(self.step_seconds()) * self.step_seconds()
    }

    /// `from` and `to` as Unix seconds, `from` rounded down to its minute.
    pub fn range_seconds(&self) -> (i64, i64) {
        (minute_of(self.from), self.to.as_second())
    }
}

/// One step of a throughput answer (only steps with activity are returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThroughputBucket {
    /// Start of the step.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub start: Timestamp,
    /// Everything counted in it, all matching kinds and queues summed.
    pub tally: Tally,
}

impl ThroughputBucket {
    /// Wait time p50 and p95 in this step.
    pub fn wait_p50_p95(&self) -> (Option<Duration>, Option<Duration>) {
        (
            self.tally.wait.quantile(0.5),
            self.tally.wait.quantile(0.95),
        )
    }

    /// Run time p50 and p95 in this step.
    pub fn run_p50_p95(&self) -> (Option<Duration>, Option<Duration>) {
        (self.tally.run.quantile(0.5), self.tally.run.quantile(0.95))
    }
}

/// Sums rows of (minute, tally) into the query's steps, in time order.
pub fn into_buckets(
    q: &ThroughputQuery,
    rows: impl IntoIterator<Item = (i64, Tally)>,
) -> Result<Vec<ThroughputBucket>, jiff::Error> {
    let mut steps: std::collections::BTreeMap<i64, Tally> = Default::default();
    for (minute, tally) in rows {
        steps.entry(q.bucket_of(minute)).or_default().merge(&tally);
    }
    steps
        .into_iter()
        .map(|(start, tally)| {
            Ok(ThroughputBucket {
                start: Timestamp::from_second(start)?,
                tally,
            })
        })
        .collect()
}

/// Lifetime totals of one (kind, queue): never pruned, so counters made
/// from them only go up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Total {
    /// The kind.
    pub kind: String,
    /// The queue.
    pub queue: String,
    /// Everything counted since the table was created.
    pub tally: Tally,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_of_their_bound() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_millis(6));
        h.observe(Duration::from_secs(7200));
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets.iter().sum::<u64>(), 2);
        assert_eq!(h.sum_us, 5_000 + 6_000 + 7_200_000_000);
    }

    #[test]
    fn quantiles_interpolate_inside_a_bucket() {
        let mut h = Histogram::default();
        for _ in 0..100 {
            h.observe(Duration::from_millis(700)); // bucket (0.5, 1]
        }
        let p50 = h.quantile(0.5).unwrap().as_secs_f64();
        assert!((p50 - 0.75).abs() < 1e-9, "{p50}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    /// Counts land under their own (minute, kind, queue) whether the key
    /// is found by the scan of a few keys or through the map beyond them.
    #[test]
    fn counts_land_under_their_key_with_few_keys_and_many() {
        let now = Timestamp::UNIX_EPOCH;
        let next_minute = now + jiff::SignedDuration::from_secs(MINUTE_SECONDS);
        let mut p = Pending::default();
        let kinds: Vec<String> = (0..2 * SCAN_KEYS).map(|k| format!("k{k}")).collect();
        for round in 1..=3 {
            for kind in &kinds {
                for _ in 0..round {
                    p.count(now, kind, "q", Counter::Enqueued);
                }
                p.count(now, kind, "other", Counter::Cancelled);
                p.count(next_minute, kind, "q", Counter::Enqueued);
            }
        }
        let all = p.drain();
        assert_eq!(all.len(), 3 * kinds.len());
        for (key, tally) in all {
            let expected = match (key.minute, key.queue.as_str()) {
                (0, "q") => (6, 0),
                (0, "other") => (0, 3),
                (MINUTE_SECONDS, "q") => (3, 0),
                other => panic!("unexpected key {other:?}"),
            };
            assert_eq!(
                (tally.counts.enqueued, tally.counts.cancelled),
                expected,
                "{key:?}"
            );
        }
    }

    #[test]
    fn values_round_trip_in_column_order() {
        let mut t = Tally::default();
        t.counts.failed = 3;
        t.wait.observe(Duration::from_secs(2));
        t.run.observe(Duration::from_millis(1));
        assert_eq!(t.values().len(), Tally::columns().len());
        assert_eq!(Tally::from_values(&t.values()), Some(t));
        assert_eq!(Tally::from_values(&[1, 2]), None);
    }

    #[test]
    fn a_rescue_that_uses_the_last_attempt_counts_rescued_and_failed() {
        let b = crate::Backoff::default();
        let now = Timestamp::UNIX_EPOCH;
        let t = crate::outcome::resolve(3, 3, Outcome::LeaseExpired, &b, now);
        assert_eq!(
            Counter::of_end(Ending::LeaseExpired, t.state),
            &[Counter::Rescued, Counter::Failed]
        );
        let t = crate::outcome::resolve(1, 3, Outcome::Retry("x".into()), &b, now);
        assert_eq!(Counter::of_end(Ending::Retry, t.state), &[Counter::Retried]);
    }

    #[test]
    fn steps_sum_the_minutes_they_hold() {
        let q = ThroughputQuery {
            from: Timestamp::UNIX_EPOCH,
            to: Timestamp::from_second(3600).unwrap(),
            step: Duration::from_secs(300),
            kind: None,
            queue: None,
        };
        let mut a = Tally::default();
        a.counts.completed = 2;
        let steps = into_buckets(&q, [(60, a), (240, a), (300, a)]).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].tally.counts.completed, 4);
        assert_eq!(steps[1].start.as_second(), 300);
    }
}
