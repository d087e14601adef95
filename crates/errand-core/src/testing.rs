//! Helpers for errand's tests (feature `test-util`), written once for the
//! tests of every crate: waiting until something holds, in async tests and
//! in blocking ones. Compiled only into tests: core itself never waits.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen: long enough for
/// a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What a check answers: `true`, or `Some` with the value waited for.
pub trait Done {
    /// What [`eventually`] returns once the check holds.
    type Value;
    /// The value, once the check holds.
    fn done(self) -> Option<Self::Value>;
}

impl Done for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Done for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Runs `check` every 20 ms until it holds, and answers its value; panics
/// naming `what` once `limit` has passed.
pub async fn eventually<D, F, Fut>(limit: Duration, what: &str, mut check: F) -> D::Value
where
    D: Done,
    F: FnMut() -> Fut,
    Fut: Future<Output = D>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await.done() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for blocking tests (threads, blocking HTTP, child
/// processes): polls every 50 ms, as each check may be a request.
pub fn eventually_blocking<D: Done>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> D,
) -> D::Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().done() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_the_check_holds_and_answers_its_value() {
        let mut calls = 0;
        let got = eventually(DEADLINE, "the third call", || {
            calls += 1;
            let now = calls;
            async move { (now == 3).then_some(now) }
        })
        .await;
        assert_eq!(got, 3);
        let mut calls = 0;
        eventually_blocking(DEADLINE, "the second call", || {
            calls += 1;
            calls == 2
        });
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for nothing")]
    async fn gives_up_after_the_limit() {
        eventually(Duration::from_millis(50), "nothing", || async { false }).await;
    }
}
