//! Clock skew between this node and the database. Every deadline is read
//! from the node's clock (docs/decisions/0014-one-clock.md), so nodes must
//! agree on the time; each node heartbeat measures how far the database
//! server's clock is from the node's, and a node out of step says so once
//! when it drifts past [`SKEW_BOUND`] and once when it is back.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

/// How far the two clocks may differ before a node warns.
pub const SKEW_BOUND: SignedDuration = SignedDuration::from_secs(1);

/// The latest measured offset, and whether it was past the bound.
#[derive(Debug, Default)]
pub(crate) struct SkewWatch {
    latest: Mutex<Option<(SignedDuration, bool)>>,
}

impl SkewWatch {
    /// Takes in one measurement (the database's time and the node's, at
    /// about the same instant) and logs when it crosses the bound; answers
    /// whether it did.
    pub(crate) fn observe(&self, database: Timestamp, node: Timestamp) -> bool {
        let offset = database.duration_since(node);
        let skewed = offset.abs() > SKEW_BOUND;
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let was_skewed = latest.is_some_and(|(_, skewed)| skewed);
        if skewed && !was_skewed {
            tracing::warn!(
                database_ahead_by = %offset,
                bound = %SKEW_BOUND,
                "this node's clock disagrees with the database server's: leases, \
                 schedules and limits are timed by each node's clock, so keep nodes \
                 synchronised (NTP)"
            );
        } else if was_skewed && !skewed {
            tracing::info!(database_ahead_by = %offset, "this node's clock agrees with the database server's again");
        }
        *latest = Some((offset, skewed));
        skewed != was_skewed
    }

    /// The latest offset measured, if any.
    pub(crate) fn latest(&self) -> Option<SignedDuration> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(offset, _)| offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_change_not_per_beat() {
        let watch = SkewWatch::default();
        let node: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let at = |ms: i64| node + SignedDuration::from_millis(ms);
        assert!(!watch.observe(at(300), node), "within the bound");
        assert!(watch.observe(at(-1500), node), "drifted past it");
        assert!(
            !watch.observe(at(-2000), node),
            "still past it: no new warning"
        );
        assert_eq!(watch.latest(), Some(SignedDuration::from_millis(-2000)));
        assert!(watch.observe(at(1000), node), "back in step");
        assert!(!watch.observe(at(0), node));
    }
}
