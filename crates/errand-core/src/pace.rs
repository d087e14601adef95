//! How far ahead of a worker to claim: a worker that runs no-op jobs one
//! at a time is held to one commit round trip per job unless the jobs it
//! will run next are claimed before it asks, and a worker whose jobs take
//! seconds must not hoard jobs another worker could run. [`Pace`] keeps a
//! moving average of how long a worker's jobs take and sizes a claim to
//! [`AHEAD`] worth of them (decisions 0034 and 0037).

use std::time::Duration;

/// The work claimed for a worker beyond the job it runs: about this long
/// at the pace its jobs ran so far. Short enough that jobs wait behind a
/// busy worker no longer than this when another is idle, long enough that
/// a no-op worker claims in batches.
pub const AHEAD: Duration = Duration::from_millis(20);

/// Most jobs claimed at once for one worker.
pub const MAX_AHEAD: u32 = 512;

/// How long a worker's jobs take, and so how many to claim at once.
#[derive(Debug, Default, Clone)]
pub struct Pace {
    /// Moving average of the time from a job's hand-over to its answer;
    /// none before the first answer (claim one job).
    average: Option<Duration>,
}

impl Pace {
    /// Counts one job that took `took` from hand-over to answer.
    pub fn ran(&mut self, took: Duration) {
        self.average = Some(match self.average {
            None => took,
            // A quarter of the newest, itself at most 4× the average: a
            // change shows within a few jobs, one scheduling hiccup barely.
            Some(avg) => (avg * 3 + took.min(avg * 4)) / 4,
        });
    }

    /// A job ran (or jobs waited) past [`AHEAD`]: claim one at a time
    /// until jobs are short again.
    pub fn slowed(&mut self) {
        self.average = Some(self.average.unwrap_or_default().max(AHEAD));
    }

    /// How many jobs the next claim takes: [`AHEAD`]'s worth at the
    /// average pace, 1 to [`MAX_AHEAD`], rounded down to a power of two
    /// (so the size changes seldom).
    pub fn batch(&self) -> u32 {
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
