//! The pool executor with real PHP and Python worker processes (the
//! reference workers of examples/pool) and a real SQLite store: every
//! outcome of the protocol, crashes, hangs and protocol violations
//! (retried, process replaced), recycling by job count and by memory,
//! payload integrity, and that nothing outlives the pool.

mod common;
mod pool_support;

use common::*;
use errand_core::{Job, JobState};
use errand_executors::pool::{PoolConfig, PoolExecutor};
use pool_support::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Defines one test per reference worker for each `async fn(Lang)`.
macro_rules! for_both_workers {
    ($($body:ident => $php:ident, $python:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $php() {
            $body(Lang::Php).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $python() {
            $body(Lang::Python).await
        }
    )*};
}

for_both_workers! {
    every_answer_maps_to_its_outcome => outcomes_php, outcomes_python;
    a_deadly_answer_hands_the_job_back_and_restarts_the_process => deadly_php, deadly_python;
    a_crash_mid_job_is_retried_and_the_pool_keeps_its_size => crash_php, crash_python;
    a_hung_process_is_killed_at_the_timeout_and_replaced => hang_php, hang_python;
    a_protocol_violation_replaces_the_process => garbage_php, garbage_python;
    processes_are_recycled_after_max_jobs => max_jobs_php, max_jobs_python;
    a_process_over_max_rss_is_recycled => max_rss_php, max_rss_python;
    large_unicode_payloads_with_newlines_arrive_intact => payload_php, payload_python;
}

/// The pid of the process that ran a completed job.
fn pid_of(job: &Job) -> u32 {
    let pid = job.result.as_ref().and_then(|r| r["pid"].as_u64());
    pid.unwrap_or_else(|| panic!("no pid in {job:?}")) as u32
}

/// Enqueues a job and waits for its first attempt to end.
async fn run_job(run: &PoolRun, payload: Value) -> Job {
    let id = enqueue(&run.store, KIND, payload).await;
    wait_attempted(&run.store, id).await
}

/// Enqueues a job and waits until it completed.
async fn complete_job(run: &PoolRun, payload: Value) -> Job {
    let id = enqueue(&run.store, KIND, payload).await;
    wait_for(&run.store, id, |j| j.state == JobState::Completed).await
}

async fn every_answer_maps_to_its_outcome(lang: Lang) {
    let run = PoolRun::start(lang, "outcomes", hour_backoff(None), |c| c.processes = 2).await;

    let done = run_job(&run, json!({"op": "echo", "data": {"n": 1}})).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_ref().unwrap()["data"], json!({"n": 1}));

    let progress = run_job(&run, json!({"op": "progress", "data": "p"})).await;
    assert_eq!(
        progress.state,
        JobState::Completed,
        "progress lines precede the result"
    );

    let failed = run_job(&run, json!({"op": "fail", "message": "partner said no"})).await;
    assert_eq!(failed.state, JobState::Retryable);
    assert_eq!(failed.errors[0].error, "partner said no");

    let permanent = run_job(&run, json!({"op": "permanent", "message": "bad address"})).await;
    assert_eq!(permanent.state, JobState::Failed);
    assert_eq!(permanent.errors[0].error, "bad address");

    let snoozed = run_job(&run, json!({"op": "snooze", "seconds": 3600})).await;
    assert_eq!(snoozed.state, JobState::Scheduled);
    let delay = snoozed.run_at.duration_since(jiff::Timestamp::now());
    assert!(
        delay.as_secs() > 3500,
        "snoozed for about an hour, got {delay:?}"
    );
    assert!(snoozed.errors.is_empty());

    // Answers that are not outcomes did not break any process: both served the jobs.
    assert_eq!(live_with(&run.tag).len(), 2);
    run.stop().await;
}

async fn a_deadly_answer_hands_the_job_back_and_restarts_the_process(lang: Lang) {
    let run = PoolRun::start(lang, "deadly", quick_retry_policy(None), |c| {
        c.processes = 1
    })
    .await;
    let before = pid_of(&complete_job(&run, json!({"op": "echo"})).await);

    // The attempt number repeats after a deadly answer: a file marks it done.
    let once = tempfile::tempdir().unwrap();
    let job = complete_job(
        &run,
        json!({"op": "deadly", "once_file": once.path().join("done"), "message": "db down"}),
    )
    .await;
    assert_eq!(
        (job.attempt, job.max_attempts),
        (1, errand_core::KindPolicy::default().max_attempts),
        "attempt refunded"
    );
    assert!(job.errors[0].error.contains("db down"), "{:?}", job.errors);
    let after = pid_of(&job);
    assert_ne!(
        before, after,
        "the process that reported deadly was replaced"
    );
    assert_eq!(proc_of(before), None, "and reaped");
    run.stop().await;
}

async fn a_crash_mid_job_is_retried_and_the_pool_keeps_its_size(lang: Lang) {
    let run = PoolRun::start(lang, "crash", quick_retry_policy(None), |c| c.processes = 2).await;
    let job = complete_job(&run, json!({"op": "crash", "once": true, "code": 3})).await;
    assert_eq!(job.attempt, 2);
    let error = &job.errors[0].error;
    assert!(
        error.contains("worker process") && error.contains("exited (exit status 3)"),
        "{error}"
    );

    // Three more crashes in a row: the pool restarts each process and stays at two.
    for _ in 0..3 {
        let job = run_job(&run, json!({"op": "crash", "once": true})).await;
        assert_ne!(job.state, JobState::Failed, "{job:?}");
    }
    eventually(DEADLINE, "two live processes again", || async {
        live_with(&run.tag).len() == 2
    })
    .await;
    let zombies: Vec<_> = processes_with(&run.tag)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .collect();
    assert_eq!(zombies, vec![], "crashed processes are reaped");
    run.stop().await;
}

async fn a_hung_process_is_killed_at_the_timeout_and_replaced(lang: Lang) {
    let timeout = Some(Duration::from_secs(1));
    let run = PoolRun::start(lang, "hang", quick_retry_policy(timeout), |c| {
        c.processes = 1
    })
    .await;
    let hung = live_with(&run.tag);

    let job = complete_job(&run, json!({"op": "sleep", "seconds": 300, "once": true})).await;
    assert_eq!(job.attempt, 2);
    assert!(
        job.errors[0].error.contains("timed out after 1s"),
        "{:?}",
        job.errors
    );
    assert!(!hung.contains(&pid_of(&job)), "a new process ran the retry");
    assert_eq!(
        proc_of(hung[0]),
        None,
        "the hung process was killed and reaped"
    );
    run.stop().await;
}

async fn a_protocol_violation_replaces_the_process(lang: Lang) {
    let run = PoolRun::start(lang, "garbage", quick_retry_policy(None), |c| {
        c.processes = 1
    })
    .await;
    let broken = live_with(&run.tag);
    let job = complete_job(&run, json!({"op": "garbage", "once": true})).await;
    assert_eq!(job.attempt, 2);
    assert!(
        job.errors[0].error.contains("not a protocol message"),
        "{:?}",
        job.errors
    );
    assert_ne!(broken, vec![pid_of(&job)]);
    assert_eq!(proc_of(broken[0]), None);
    run.stop().await;
}

async fn processes_are_recycled_after_max_jobs(lang: Lang) {
    let run = PoolRun::start(lang, "max-jobs", hour_backoff(None), |c| {
        c.processes = 2;
        c.max_jobs = 10;
    })
    .await;
    let mut per_pid = std::collections::BTreeMap::<u32, u32>::new();
    let mut grandchildren = Vec::new();
    for i in 0..25 {
        let op = if i == 0 { "spawn" } else { "echo" };
        let job = complete_job(&run, json!({"op": op})).await;
        *per_pid.entry(pid_of(&job)).or_default() += 1;
        grandchildren.extend(job.result.unwrap()["child"].as_u64().map(|p| p as u32));
    }
    assert!(
        per_pid.len() >= 3,
        "25 jobs at 10 a process need 3 processes: {per_pid:?}"
    );
    assert!(per_pid.values().all(|&n| n <= 10), "{per_pid:?}");
    let pids: BTreeSet<u32> = per_pid.keys().copied().collect();
    eventually(DEADLINE, "recycled processes are gone", || async {
        let live: BTreeSet<u32> = live_with(&run.tag).into_iter().collect();
        // Two places, each with at most one replacement started early
        // (its process nears max_jobs).
        (2..=4).contains(&live.len())
            && pids
                .iter()
                .filter(|p| !live.contains(p))
                .all(|&p| proc_of(p).is_none())
    })
    .await;
    // The grandchild a worker started died with its group (a zombie awaiting
    // its new parent's reaping is dead too).
    let grandchild = grandchildren[0];
    eventually(DEADLINE, "the worker's own child is gone", || async {
        dead(grandchild)
    })
    .await;
    run.stop().await;
}

async fn a_process_over_max_rss_is_recycled(lang: Lang) {
    let run = PoolRun::start(lang, "max-rss", hour_backoff(None), |c| {
        c.processes = 1;
        c.max_rss = "64MiB".parse().unwrap();
    })
    .await;
    let small = pid_of(&complete_job(&run, json!({"op": "echo"})).await);
    assert_eq!(
        pid_of(&complete_job(&run, json!({"op": "echo"})).await),
        small,
        "under the limit: kept"
    );
    // Memory is read at most every 50 ms: after this pause the grow job's
    // end is sure to be checked.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = complete_job(&run, json!({"op": "grow", "mib": 100})).await;
    assert_eq!(
        pid_of(&grown),
        small,
        "the job that grew it completes on it"
    );
    assert_eq!((grown.attempt, grown.errors.len()), (1, 0));
    // Replaced after its job, with none lost or run twice: every job after
    // it completes at its first attempt, on the new process.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(enqueue(&run.store, KIND, json!({"op": "echo", "data": i})).await);
    }
    for id in ids {
        let job = wait_for(&run.store, id, |j| j.state == JobState::Completed).await;
        assert_eq!((job.attempt, job.errors.len()), (1, 0), "{job:?}");
        assert_ne!(pid_of(&job), small, "the process over max_rss was replaced");
    }
    eventually(DEADLINE, "the grown process is gone", || async {
        proc_of(small).is_none()
    })
    .await;
    run.stop().await;
}

async fn large_unicode_payloads_with_newlines_arrive_intact(lang: Lang) {
    let run = PoolRun::start(lang, "payload", hour_backoff(None), |c| c.processes = 1).await;
    let unit = "héllo wörld ✓ 🚀 \"quoted\" \\ back\\slash\ttab\r\nnew line ünïcödé 日本語\n";
    let data = unit.repeat((1 << 20) / unit.len() + 1);
    assert!(data.len() > 1 << 20);
    let job = complete_job(&run, json!({"op": "echo", "data": data})).await;
    assert_eq!(job.result.unwrap()["data"], json!(data));
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_and_starts_nothing() {
    let tag = tag("bad-config", Lang::Python);
    let mut config = PoolConfig::new(worker_command(Lang::Python, &tag));
    config.processes = 0;
    let err = PoolExecutor::new(KIND, config).err().expect("refused");
    assert_eq!(err.key, "pool.processes");
    let err = PoolExecutor::new(KIND, PoolConfig::new(["/no/such/worker", &tag]))
        .err()
        .expect("refused");
    assert_eq!(err.key, "pool.command");
    assert!(err.to_string().contains("/no/such/worker"), "{err}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(processes_with(&tag), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_fails_its_handshake_is_retried_with_backoff() {
    // A program that exits at once never becomes ready; the pool keeps
    // trying (with backoff) and, with no process ready, the job is not
    // claimed at all: it waits for one, its attempts untouched.
    let tag = tag("no-handshake", Lang::Python);
    let config = PoolConfig {
        processes: 1,
        ..PoolConfig::new(["sh", "-c", "echo not-ready; exit 1", &tag])
    };
    let pool = std::sync::Arc::new(PoolExecutor::new(KIND, config).unwrap());
    let (store, _dir) = store().await;
    let running = run_executor(
        &store,
        KIND,
        hour_backoff(Some(Duration::from_secs(1))),
        pool.clone(),
        1,
    );
    let id = enqueue(&store, KIND, json!({})).await;
    // Longer than the job's timeout and several restart backoffs.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let job = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Available, 0),
        "{job:?}"
    );
    running.stop().await;
    use errand_worker::Executor;
    pool.shutdown().await;
    assert_eq!(processes_with(&tag), vec![]);
}

/// kill -9 of a process while jobs are claimed ahead of the pool: only the
/// job it held is retried (on another process, after the first attempt
/// ended: never two attempts of one job at once); the jobs held ahead run
/// once each on the survivors and the replacement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_batch_costs_only_its_own_job() {
    let run = PoolRun::start(Lang::Php, "kill-mid-batch", quick_retry_policy(None), |c| {
        c.processes = 2;
        c.max_jobs = 0;
    })
    .await;
    let jobs = (0..2000)
        .map(|_| errand_core::NewJob::new(KIND, json!({"op": "sleep", "seconds": 0.001})))
        .collect();
    let ids: Vec<i64> = run
        .store
        .enqueue(jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    // Mid-run: some jobs done, many claimed ahead.
    wait_state(&run.store, ids[200], JobState::Completed).await;
    let victim = live_with(&run.tag)[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let mut retried = Vec::new();
    for &id in &ids {
        let job = wait_state(&run.store, id, JobState::Completed).await;
        if job.errors.is_empty() {
            assert_eq!(job.attempt, 1, "{job:?}");
        } else {
            retried.push(job);
        }
    }
    assert!(
        retried.len() <= 1,
        "only the killed process's job: {retried:?}"
    );
    for job in &retried {
        assert_eq!(job.attempt, 2, "{job:?}");
        assert!(
            job.errors[0]
                .error
                .contains(&format!("worker process {victim}")),
            "{:?}",
            job.errors
        );
        assert_ne!(pid_of(job), victim, "rerun elsewhere");
    }
    run.stop().await;
}
