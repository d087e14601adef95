//! Checks of the throughput history and lifetime totals: every enqueue,
//! claim and attempt end is counted once, in the minute it happened (the
//! manual clock puts events in chosen minutes), under its kind and queue;
//! pruning removes old minutes but never lowers a total.

use crate::support::{claim, claim_req, enqueue, finish, job_in, running};
use errand_core::audit::AuditActor;
use errand_core::history::{Tally, ThroughputQuery, Total};
use errand_core::{NewJob, Outcome, Retention, Store};
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

/// The start of the next whole hour after the clock's time, where each
/// check puts its first event (so steps of up to an hour line up).
fn next_hour(store: &dyn Store) -> Timestamp {
    let now = store.clock().now().as_second();
    Timestamp::from_second((now / 3600 + 1) * 3600).unwrap()
}

fn at(start: Timestamp, secs: u64) -> Timestamp {
    crate::support::plus(start, Duration::from_secs(secs))
}

/// The history of the hour from `start`, per `step`, after a flush.
async fn hour(store: &dyn Store, start: Timestamp, step: Duration) -> Vec<(i64, Tally)> {
    store.flush_history().await.expect("flush history");
    store
        .throughput(&ThroughputQuery {
            from: start,
            to: at(start, 3600),
            step,
            kind: None,
            queue: None,
        })
        .await
        .expect("throughput")
        .into_iter()
        .map(|b| ((b.start.as_second() - start.as_second()) / 60, b.tally))
        .collect()
}

/// The lifetime totals, after a flush.
async fn totals(store: &dyn Store) -> Vec<Total> {
    store.flush_history().await.expect("flush history");
    store.totals().await.expect("totals")
}

/// Enqueues in minute 0, claims in minute 1 (a wait of exactly 60 s),
/// ends attempts in minute 1 (5 s runs) and cancels in minute 2: each
/// count is in its minute, wait and run times in their buckets, and the
/// totals hold the sum.
async fn counts_land_in_the_minute_they_happened(store: Arc<dyn Store>) {
    let clock = store.clock();
    let start = next_hour(&*store);
    clock.set(at(start, 10));
    let three = vec![job_in("q1", "a"), job_in("q1", "a"), job_in("q1", "a")];
    enqueue(&*store, three).await;
    clock.set(at(start, 70));
    let jobs = claim(&*store, "q1", 3).await;
    assert_eq!(jobs.len(), 3);
    clock.set(at(start, 75));
    assert!(finish(&*store, jobs[0].lease(), Outcome::Success(None)).await);
    assert!(finish(&*store, jobs[1].lease(), Outcome::Retry("again".into())).await);
    assert!(finish(&*store, jobs[2].lease(), Outcome::Permanent("no".into())).await);
    clock.set(at(start, 130));
    let b = enqueue(&*store, vec![job_in("q2", "b")]).await[0];
    store.cancel(b, &AuditActor::Local).await.unwrap();

    let minutes = hour(&*store, start, MINUTE).await;
    let by_minute: Vec<i64> = minutes.iter().map(|(m, _)| *m).collect();
    assert_eq!(by_minute, [0, 1, 2], "only minutes with activity: {minutes:?}");
    let (m0, m1, m2) = (minutes[0].1, minutes[1].1, minutes[2].1);
    assert_eq!(m0.counts.enqueued, 3);
    assert_eq!(m0.wait.count + m0.run.count, 0);
    let c = m1.counts;
    assert_eq!(
        (c.enqueued, c.completed, c.retried, c.failed, c.cancelled),
        (0, 1, 1, 1, 0)
    );
    assert_eq!(m1.wait.count, 3);
    assert_eq!(m1.wait.sum_us, 3 * 60_000_000, "each waited 60 s");
    let sixty = errand_core::history::BOUNDS_SECONDS
        .iter()
        .position(|b| *b == 60.0)
        .unwrap();
    assert_eq!(m1.wait.buckets[sixty], 3, "60 s is in the bucket up to 60 s");
    assert_eq!((m1.run.count, m1.run.sum_us), (3, 3 * 5_000_000));
    assert_eq!(
        (m2.counts.enqueued, m2.counts.cancelled),
        (1, 1),
        "the cancel"
    );

    let whole = hour(&*store, start, Duration::from_secs(3600)).await;
    assert_eq!(whole.len(), 1, "one step of an hour");
    assert_eq!(whole[0].1.counts.enqueued, 4);
    assert_eq!(whole[0].1.counts.completed, 1);

    store.flush_history().await.unwrap();
    let only_b = store
        .throughput(&ThroughputQuery {
            from: start,
            to: at(start, 3600),
            step: MINUTE,
            kind: Some("b".into()),
            queue: None,
        })
        .await
        .unwrap();
    assert_eq!(only_b.len(), 1);
    assert_eq!(only_b[0].start, at(start, 120));
    let only_q1 = store
        .throughput(&ThroughputQuery {
            from: at(start, 60),
            to: at(start, 120),
            step: MINUTE,
            kind: None,
            queue: Some("q1".into()),
        })
        .await
        .unwrap();
    assert_eq!(only_q1.len(), 1, "from and to bound the minutes");
    assert_eq!(only_q1[0].tally, m1);

    let totals = totals(&*store).await;
    let names: Vec<(&str, &str)> = totals
        .iter()
        .map(|t| (t.kind.as_str(), t.queue.as_str()))
        .collect();
    assert_eq!(names, [("a", "q1"), ("b", "q2")]);
    let mut a = m0;
    a.merge(&m1);
    assert_eq!(totals[0].tally, a, "totals are the sum of the minutes");
    assert_eq!(totals[1].tally, m2);
}

/// Pruning deletes minutes older than `[retention] history`, keeps newer
/// ones, and leaves the totals as they were.
async fn pruning_history_never_lowers_the_totals(store: Arc<dyn Store>) {
    let clock = store.clock();
    let start = next_hour(&*store);
    clock.set(start);
    enqueue(&*store, vec![job_in("q", "old")]).await;
    clock.set(at(start, 3 * 3600));
    enqueue(&*store, vec![job_in("q", "new")]).await;
    let before = totals(&*store).await;
    assert_eq!(before.len(), 2);

    let keep_two_hours = Retention {
        history: Duration::from_secs(2 * 3600),
        ..Retention::default()
    };
    store.prune(&keep_two_hours).await.unwrap();
    assert!(
        hour(&*store, start, MINUTE).await.is_empty(),
        "the old minute is gone"
    );
    assert_eq!(
        hour(&*store, at(start, 3 * 3600), MINUTE).await.len(),
        1,
        "the new minute stays"
    );
    assert_eq!(totals(&*store).await, before, "totals are never pruned");
}

/// Every way an attempt ends moves its counter: snooze, deadly, a rescue
/// (which also fails a job out of attempts); a handback counts nothing;
/// a duplicate enqueue is not an enqueue.
async fn each_ending_moves_its_counter(store: Arc<dyn Store>) {
    let clock = store.clock();
    let start = next_hour(&*store);
    clock.set(start);
    // Each in its own queue: a deadly or handed back job is due again at
    // once and would be claimed before the next one.
    let s = running(&*store, job_in("snooze", "k")).await;
    assert!(finish(&*store, s.lease(), Outcome::Snooze(Duration::from_secs(3600))).await);
    let d = running(&*store, job_in("deadly", "k")).await;
    assert!(finish(&*store, d.lease(), Outcome::Deadly("db down".into())).await);
    let h = running(&*store, job_in("handback", "k")).await;
    assert!(finish(&*store, h.lease(), Outcome::Handback).await);
    let once = NewJob {
        unique_key: Some("u".into()),
        ..job_in("unique", "k")
    };
    enqueue(&*store, vec![once.clone()]).await;
    let dup = store.enqueue(vec![once]).await.unwrap();
    assert!(dup[0].duplicate);

    // Two jobs whose leases run out: one has attempts left, one has not.
    let short = |max_attempts| NewJob {
        max_attempts,
        ..job_in("short", "k")
    };
    enqueue(&*store, vec![short(3), short(1)]).await;
    let mut req = claim_req("short", 2);
    req.lease = Duration::from_secs(1);
    assert_eq!(store.claim(&req).await.unwrap().jobs.len(), 2);
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.rescue_expired().await.unwrap().len(), 2);

    let all = totals(&*store).await;
    let of = |queue: &str| all.iter().find(|t| t.queue == queue).unwrap().tally;
    let (sn, de, hb) = (of("snooze"), of("deadly"), of("handback"));
    assert_eq!((sn.counts.snoozed, sn.run.count, sn.wait.count), (1, 1, 1));
    assert_eq!((de.counts.deadly, de.run.count), (1, 1));
    assert_eq!(
        (hb.counts, hb.run.count, hb.wait.count),
        (
            errand_core::history::Counts {
                enqueued: 1,
                ..Default::default()
            },
            0,
            1
        ),
        "a handback counts nothing but its claim"
    );
    assert_eq!(of("unique").counts.enqueued, 1, "a duplicate is not counted");
    let r = all.iter().find(|t| t.queue == "short").unwrap().tally;
    assert_eq!((r.counts.rescued, r.counts.failed), (2, 1));
    assert_eq!(r.run.count, 0, "a lost lease's time is not a run time");
}

/// Jobs made by a batch, an event's listeners and a batch's on-complete
/// job count as enqueued like any other.
async fn every_path_that_makes_jobs_counts_them(store: Arc<dyn Store>) {
    let batch = errand_core::NewBatch {
        jobs: vec![job_in("b", "part"), job_in("b", "part")],
        on_complete: Some(job_in("b", "done")),
    };
    store.create_batch(batch).await.unwrap();
    let event = errand_core::NewEvent {
        name: "e".into(),
        data: serde_json::json!({}),
        unique_key: None,
    };
    store
        .publish(event, vec![job_in("l", "listener")])
        .await
        .unwrap();
    for j in claim(&*store, "b", 2).await {
        assert!(finish(&*store, j.lease(), Outcome::Success(None)).await);
    }
    let all = totals(&*store).await;
    let count = |kind: &str| {
        all.iter()
            .find(|t| t.kind == kind)
            .map(|t| t.tally.counts.enqueued)
    };
    assert_eq!(count("part"), Some(2));
    assert_eq!(count("listener"), Some(1));
    assert_eq!(count("done"), Some(1), "the on-complete job");
}

crate::checks![
    counts_land_in_the_minute_they_happened,
    pruning_history_never_lowers_the_totals,
    each_ending_moves_its_counter,
    every_path_that_makes_jobs_counts_them,
];
