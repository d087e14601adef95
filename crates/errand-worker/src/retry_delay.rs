//! Exponential pause between attempts to reach a store that is failing, so
//! an outage is not hammered yet recovery is noticed quickly.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(5);

/// The next pause after consecutive failures; reset after a success.
#[derive(Debug)]
pub(crate) struct RetryDelay {
    next: Duration,
}

impl RetryDelay {
    pub(crate) fn new() -> Self {
        RetryDelay { next: FIRST }
    }

    /// The pause to take now; each call doubles the following one.
    pub(crate) fn next(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX);
        now
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}
