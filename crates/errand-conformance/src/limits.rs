//! Checks of global kind limits in the claim: a kind's running jobs never
//! exceed its concurrency and its starts never exceed its rate in any
//! window, across queues and concurrent claimers, while unlimited kinds
//! run on and held-back jobs stay available.

use crate::support::{LONG_LEASE, claim_req, count_kind_in, finish, job_in};
use errand_core::store::{ClaimRequest, Claimed, Held};
use errand_core::{Job, JobState, KindLimit, NewJob, Outcome, Rate, Store};
use jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Held back by concurrency alone: only an ending job frees room.
const HELD_BY_CONCURRENCY: Option<Held> = Some(Held { retry_at: None });

fn concurrency(n: u32) -> KindLimit {
    KindLimit {
        max_running: Some(n),
        rate: None,
    }
}

fn rate(spec: &str) -> KindLimit {
    KindLimit {
        max_running: None,
        rate: Some(spec.parse().expect("a valid rate")),
    }
}

/// `n` due jobs of `kind` in `queue`.
fn jobs(n: usize, queue: &str, kind: &str) -> Vec<NewJob> {
    (0..n).map(|_| job_in(queue, kind)).collect()
}

/// A claim of up to `limit` from `queue`, of `kinds` (empty: any), under
/// the limit of `kind`.
fn limited(queue: &str, limit: u32, kinds: &[&str], kind: &str, l: KindLimit) -> ClaimRequest {
    ClaimRequest {
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        limits: BTreeMap::from([(kind.to_string(), l)]),
        ..claim_req(queue, limit)
    }
}

async fn claim(store: &dyn Store, req: &ClaimRequest) -> Claimed {
    store.claim(req).await.expect("claim")
}

fn of_kind<'a>(jobs: &'a [Job], kind: &str) -> Vec<&'a Job> {
    jobs.iter().filter(|j| j.kind == kind).collect()
}

async fn succeed(store: &dyn Store, jobs: &[&Job]) {
    for j in jobs {
        assert!(finish(store, j.lease(), Outcome::Success(None)).await);
    }
}

/// With concurrency 3 and 10 due jobs, claims hand out 3, then one per
/// ended job, holding the rest back (no retry time) while unlimited kinds
/// of the queue are claimed alongside; `held` is unset once no due job of
/// the kind is left.
async fn concurrency_limit_caps_running_jobs(store: Arc<dyn Store>) {
    let mut new = jobs(10, "lim", "email");
    new.extend(jobs(4, "lim", "other"));
    store.enqueue(new).await.unwrap();
    let req = limited("lim", 20, &[], "email", concurrency(3));

    let first = claim(&*store, &req).await;
    let emails = of_kind(&first.jobs, "email");
    assert_eq!(emails.len(), 3, "no more than the concurrency");
    assert_eq!(
        of_kind(&first.jobs, "other").len(),
        4,
        "unlimited kinds run on"
    );
    assert_eq!(first.held, HELD_BY_CONCURRENCY);
    assert_eq!(count_kind_in(&*store, "email", JobState::Running).await, 3);
    assert_eq!(
        count_kind_in(&*store, "email", JobState::Available).await,
        7,
        "held jobs stay available"
    );

    let full = claim(&*store, &req).await;
    assert!(full.jobs.is_empty(), "no room: nothing claimed");
    assert_eq!(full.held, HELD_BY_CONCURRENCY);

    succeed(&*store, &emails[..1]).await;
    let one = claim(&*store, &req).await;
    assert_eq!(
        of_kind(&one.jobs, "email").len(),
        1,
        "one ended, one starts"
    );
    assert_eq!(one.jobs.len(), 1);
    assert_eq!(one.held, HELD_BY_CONCURRENCY);

    let mut running: Vec<Job> = emails[1..].iter().map(|j| (*j).clone()).collect();
    running.extend(one.jobs);
    for (due_left, held) in [(3, HELD_BY_CONCURRENCY), (0, None)] {
        succeed(&*store, &running.iter().collect::<Vec<_>>()).await;
        let next = claim(&*store, &req).await;
        assert_eq!(next.jobs.len(), 3);
        assert_eq!(
            count_kind_in(&*store, "email", JobState::Available).await,
            due_left
        );
        assert_eq!(next.held, held, "{due_left} due jobs left");
        running = next.jobs;
    }
}

/// The limit is per kind across queues, with explicit kinds as with none,
/// and a claim that does not ask for the limited kind is not held.
async fn concurrency_limit_spans_queues_and_explicit_kinds(store: Arc<dyn Store>) {
    let mut new = jobs(3, "qa", "email");
    new.extend(jobs(3, "qb", "email"));
    new.extend(jobs(1, "qb", "other"));
    store.enqueue(new).await.unwrap();
    let limit = concurrency(2);

    let a = claim(&*store, &limited("qa", 10, &["email"], "email", limit)).await;
    assert_eq!(a.jobs.len(), 2);
    assert_eq!(a.held, HELD_BY_CONCURRENCY);
    let b = claim(
        &*store,
        &limited("qb", 10, &["email", "other"], "email", limit),
    )
    .await;
    let kinds: Vec<&str> = b.jobs.iter().map(|j| j.kind.as_str()).collect();
    assert_eq!(kinds, ["other"], "the other queue's emails share the limit");
    assert_eq!(b.held, HELD_BY_CONCURRENCY);
    let c = claim(&*store, &limited("qb", 10, &[], "email", limit)).await;
    assert!(c.jobs.is_empty());
    assert_eq!(c.held, HELD_BY_CONCURRENCY);
    assert_eq!(count_kind_in(&*store, "email", JobState::Running).await, 2);

    succeed(&*store, &[&a.jobs[0]]).await;
    let d = claim(&*store, &limited("qb", 10, &["email"], "email", limit)).await;
    assert_eq!((d.jobs.len(), d.jobs[0].queue.as_str()), (1, "qb"));
}

/// A running job whose lease ran out still counts until it is rescued.
async fn expired_leases_count_until_rescued(store: Arc<dyn Store>) {
    store.enqueue(jobs(2, "lim", "solo")).await.unwrap();
    let lease = Duration::from_millis(50);
    let req = limited("lim", 10, &[], "solo", concurrency(1));
    let short = ClaimRequest {
        lease,
        ..req.clone()
    };
    let first = claim(&*store, &short).await;
    assert_eq!(first.jobs.len(), 1);
    store.clock().advance(lease * 4);
    let blocked = claim(&*store, &req).await;
    assert!(
        blocked.jobs.is_empty(),
        "an expired lease still holds its slot"
    );
    assert_eq!(store.rescue_expired().await.unwrap(), [first.jobs[0].id]);
    let after = claim(&*store, &req).await;
    assert_eq!(after.jobs.len(), 1, "rescue frees the slot");
    assert_eq!(count_kind_in(&*store, "solo", JobState::Running).await, 1);
}

/// Six claimers racing over 30 jobs with concurrency 3: after every claim,
/// no more than 3 run, by the store's count and by the claimers' own.
async fn concurrent_claimers_never_exceed_concurrency(store: Arc<dyn Store>) {
    const JOBS: u64 = 30;
    const LIMIT: u32 = 3;
    store
        .enqueue(jobs(JOBS as usize, "lim", "email"))
        .await
        .unwrap();
    let holding = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let (store, holding) = (store.clone(), holding.clone());
            tokio::spawn(async move {
                let req = limited("lim", 2, &[], "email", concurrency(LIMIT));
                while count_kind_in(&*store, "email", JobState::Completed).await < JOBS {
                    assert!(tokio::time::Instant::now() < deadline, "claimers stalled");
                    let got = claim(&*store, &req).await.jobs;
                    if got.is_empty() {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    // Counted after the claim and released before the finish,
                    // so this never exceeds what the store has running.
                    let now = holding.fetch_add(got.len(), Ordering::SeqCst) + got.len();
                    assert!(now <= LIMIT as usize, "{now} claimed at once");
                    let running = count_kind_in(&*store, "email", JobState::Running).await;
                    assert!(running <= u64::from(LIMIT), "{running} running at once");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    holding.fetch_sub(got.len(), Ordering::SeqCst);
                    succeed(&*store, &got.iter().collect::<Vec<_>>()).await;
                }
            })
        })
        .collect();
    for c in claimers {
        c.await.unwrap();
    }
}

/// Asserts no window of `rate.per` holds more than `rate.count` starts.
fn assert_rate_bound(starts: &mut [Timestamp], rate: Rate) {
    starts.sort();
    let per = SignedDuration::try_from(rate.per).unwrap();
    let n = rate.count as usize;
    for w in starts.windows(n + 1) {
        let span = w[n].duration_since(w[0]);
        assert!(span >= per, "{} starts within {span} (rate {rate})", n + 1);
    }
}

fn started(jobs: &[Job]) -> Vec<Timestamp> {
    jobs.iter()
        .map(|j| j.started_at.expect("a claimed job has started"))
        .collect()
}

/// With rate 5/s and 20 due jobs, a claim gets 5 and is held until the
/// oldest start leaves the window; a claim before then gets none; after
/// it, more start; every start of the 20 keeps the bound. A limited kind
/// with fewer due jobs than its room is not held.
async fn rate_limit_holds_starts_and_names_retry_at(store: Arc<dyn Store>) {
    let five: KindLimit = rate("5/s");
    store.enqueue(jobs(3, "small", "api_small")).await.unwrap();
    let small = claim(&*store, &limited("small", 10, &[], "api_small", five)).await;
    assert_eq!(small.jobs.len(), 3);
    assert_eq!(small.held, None, "no due job of the kind was left behind");

    store.enqueue(jobs(20, "lim", "api")).await.unwrap();
    let req = limited("lim", 20, &[], "api", five);
    let first = claim(&*store, &req).await;
    assert_eq!(first.jobs.len(), 5, "the rate's count");
    let oldest = *started(&first.jobs).iter().min().unwrap();
    let retry_at = first
        .held
        .and_then(|h| h.retry_at)
        .expect("held with a retry time by the rate");
    let expected = oldest + SignedDuration::from_secs(1);
    assert!(
        retry_at.duration_since(expected).abs() <= SignedDuration::from_millis(50),
        "retry_at {retry_at} is the oldest start {oldest} + 1 s"
    );
    store.clock().set(retry_at - SignedDuration::from_millis(10));
    let early = claim(&*store, &req).await;
    assert!(early.jobs.is_empty(), "no start before retry_at");
    assert!(early.held.and_then(|h| h.retry_at).is_some());

    let mut all = first.jobs;
    let mut next_at = retry_at;
    for _ in 0..20 {
        if all.len() == 20 {
            break;
        }
        // Just past the time the held claim was told to come back.
        store.clock().set(next_at + SignedDuration::from_millis(10));
        let got = claim(&*store, &req).await;
        assert!(got.jobs.len() <= 5);
        assert!(
            !got.jobs.is_empty() || got.held.is_some(),
            "due jobs left but not held"
        );
        let remaining = 20 - all.len() - got.jobs.len();
        if remaining > 0 {
            next_at = got.held.and_then(|h| h.retry_at).expect("held by the rate");
        }
        all.extend(got.jobs);
    }
    assert_eq!(all.len(), 20, "the rate let every job start in turn");
    assert_rate_bound(&mut started(&all), "5/s".parse().unwrap());
}

/// Four claimers racing over 15 jobs of a 5/s kind (asked for by name):
/// no window of a second ever holds more than 5 starts.
async fn concurrent_claimers_never_exceed_rate(store: Arc<dyn Store>) {
    const JOBS: usize = 15;
    store.enqueue(jobs(JOBS, "lim", "api")).await.unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let (store, taken) = (store.clone(), taken.clone());
            tokio::spawn(async move {
                let req = ClaimRequest {
                    lease: LONG_LEASE,
                    ..limited("lim", 3, &["api"], "api", rate("5/s"))
                };
                let mut starts = Vec::new();
                while taken.load(Ordering::SeqCst) < JOBS {
                    assert!(tokio::time::Instant::now() < deadline, "claimers stalled");
                    let got = claim(&*store, &req).await;
                    taken.fetch_add(got.jobs.len(), Ordering::SeqCst);
                    starts.extend(started(&got.jobs));
                    if got.jobs.is_empty() {
                        // Time passes only while the rate holds claimers back.
                        store.clock().advance(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                }
                starts
            })
        })
        .collect();
    let mut starts = Vec::new();
    for c in claimers {
        starts.extend(c.await.unwrap());
    }
    assert_eq!(starts.len(), JOBS, "every job started once");
    assert_rate_bound(&mut starts, "5/s".parse().unwrap());
}

crate::checks![
    concurrency_limit_caps_running_jobs,
    concurrency_limit_spans_queues_and_explicit_kinds,
    expired_leases_count_until_rescued,
    concurrent_claimers_never_exceed_concurrency,
    rate_limit_holds_starts_and_names_retry_at,
    concurrent_claimers_never_exceed_rate,
];
