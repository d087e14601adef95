//! Bounded connections, seen from the PostgreSQL server: 10,000 jobs flow
//! through one node at concurrency 200 while `pg_stat_activity` is sampled,
//! and the node never holds more than its pool plus its one listener.

mod common;

use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const POOL_SIZE: i64 = 10;

#[test]
fn ten_thousand_jobs_at_concurrency_200_stay_within_the_pool_and_listener() {
    let (_pg, url) = pg::fresh();
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
[postgres]
pool_size = {POOL_SIZE}
[queues.default]
concurrency = 200
[kinds.noop]
command = ["true"]
"#
    );
    let server = pg::serve(tmp.path(), &url, "errand", &config);

    // Every errand connection to this test's database (the engine names
    // them all `errand`; psql is `psql`).
    let count = "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'errand' AND datname = current_database()";
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (url, done) = (url.clone(), done.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(pg::number(&url, count));
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };
    // Many enqueuers at once, on top of the workers, so the pool is in demand.
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| enqueue_batches_of(&server, "noop", 500, 50));
        }
    });
    wait_completed(&server, "noop", 10_000, Duration::from_secs(180));
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();

    let most = samples.iter().copied().max().unwrap_or(0);
    assert!(
        most <= POOL_SIZE + 1,
        "{most} errand connections at once (pool {POOL_SIZE} + 1 listener); samples: {samples:?}"
    );
    // The sampler did see the node at work, so the bound means something.
    assert!(samples.len() >= 10, "{} samples", samples.len());
    assert!(most >= 2, "samples: {samples:?}");
    assert_eq!(pg::unclean_jobs(&url), Vec::<String>::new());
}
