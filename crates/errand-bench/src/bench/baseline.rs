//! `errand-bench --sqlite-baseline`: errand end to end on SQLite against
//! what the store itself allows, in the same run (issue 15, goal 4).
//!
//! The baseline does the durable work of the end-to-end run with SQL
//! alone, on one connection, in the largest transactions a perfect group
//! commit would make. A fresh database gets `--jobs` no-op jobs through
//! errand's own store (same schema, same rows, same job counts as the end
//! to end run), which is then closed; the writer connection is reopened as
//! the store opens it ([`errand_sqlite::baseline::open_writer`]: WAL,
//! `synchronous=FULL`, its cache and plans) and drained: each transaction
//! finishes the batch claimed by the one before (errand's fenced finish
//! `UPDATE`, state `completed`, `finished_at`, no result), claims the next
//! `--baseline-batch` jobs with errand's claim statements (due ids in claim
//! order, then `UPDATE … RETURNING` to running with attempt, fence, lease
//! and worker), adds its net job-count changes to `job_counts` as errand's
//! commits do, and commits: one fsync per batch. It runs twice per run:
//! with a second thread spinning meanwhile (the baseline proper: on this
//! project's virtual machine an fsync that leaves every vCPU idle costs
//! 2–4 ms instead of about 0.1 ms, and errand's runtime threads keep a
//! vCPU busy end to end) and alone (`baseline_idle`).
//!
//! Left out, because they are errand's runtime rather than the store's
//! work: the writer thread and its queue, its savepoints, the
//! fenced point read before each finish (which the baseline knows from
//! its claim), decoding claimed rows into jobs, the throughput history
//! (written about once a second), batch settling, the async runtime, the
//! worker's fetch loop, per-job tasks and handler calls, and the
//! completions channel. Timed from the first claim's BEGIN to the last
//! finish's COMMIT; the end-to-end run is timed from its first handler
//! start to its last completion committed.

use super::{Bench, cpu_seconds, enqueue_jobs, median};
use anyhow::{Context, Result, bail, ensure};
use errand_sqlite::baseline::{
    COUNTS_SQL, FINISH_SQL, claim_due_sql, claim_start_sql, open_writer,
};
use errand_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use rusqlite::{Connection, named_params};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// The kind (and queue) of the jobs, as in the end-to-end run.
const KIND: &str = "noop";
/// The worker name the baseline's claims record, as the end-to-end node's.
const WORKER: &str = "bench-node-0";
/// The target for end to end ÷ baseline.
const TARGET_RATIO: f64 = 0.7;

/// What one baseline drain did.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Drained {
    /// Jobs claimed and finished.
    pub jobs: usize,
    /// Transactions committed (one fsync each).
    pub commits: usize,
    pub seconds: f64,
    /// CPU time the draining thread used, in seconds.
    pub cpu_seconds: f64,
}

impl Drained {
    pub fn jobs_per_s(&self) -> f64 {
        self.jobs as f64 / self.seconds
    }
}

/// Creates the database at `path` with errand's store and enqueues `jobs`
/// no-op jobs as the end-to-end run does, then closes the store.
pub(super) async fn prepare(path: &Path, jobs: usize) -> Result<()> {
    let store = SqliteStore::open(path, SqliteOptions::default()).await?;
    enqueue_jobs(&store, KIND, jobs, |i| serde_json::json!({ "n": i })).await?;
    // Dropping the store lets its writer finish and releases the file's lock.
    drop(store);
    Ok(())
}

/// Claims and finishes every due job of the no-op queue on `conn`, `batch`
/// per transaction, each transaction finishing the batch before it.
pub(super) fn drain(conn: &Connection, batch: usize, lease: Duration) -> Result<Drained> {
    ensure!(batch > 0, "--baseline-batch must be at least 1");
    let mut due = conn.prepare(&claim_due_sql())?;
    let mut start = conn.prepare(&claim_start_sql())?;
    let mut finish = conn.prepare(FINISH_SQL)?;
    let mut counts = conn.prepare(COUNTS_SQL)?;
    let mut begin = conn.prepare("BEGIN IMMEDIATE")?;
    let mut commit = conn.prepare("COMMIT")?;
    let kinds = serde_json::json!([KIND]).to_string();
    let lease_us = i64::try_from(lease.as_micros())?;
    // (id, fence) of the jobs the previous transaction claimed.
    let mut held: Vec<(i64, i64)> = Vec::new();
    let (mut jobs, mut commits) = (0, 0);
    let cpu_before = thread_cpu_seconds()?;
    let started = Instant::now();
    loop {
        let now = jiff::Timestamp::now().as_microsecond();
        begin.execute([])?;
        for &(id, fence) in &held {
            let changed = finish.execute((
                id,
                fence,
                "completed",
                None::<i64>,
                None::<String>,
                None::<String>,
                None::<String>,
                0,
                now,
            ))?;
            ensure!(changed == 1, "job {id} (fence {fence}) was not running");
        }
        let chosen: Vec<(i64, String)> = due
            .query_map(
                named_params! {
                    ":queue": KIND,
                    ":now": now,
                    ":kinds": &kinds,
                    ":exclude": None::<String>,
                    ":limit": i64::try_from(batch)?,
                },
                |r| Ok((r.get::<_, i64>(2)?, r.get::<_, String>(3)?)),
            )?
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::with_capacity(chosen.len());
        if !chosen.is_empty() {
            let ids = serde_json::to_string(&chosen.iter().map(|c| c.0).collect::<Vec<_>>())?;
            let mut rows = start.query(named_params! {
                ":now": now,
                ":lease": now.saturating_add(lease_us),
                ":worker": WORKER,
                ":ids": ids,
            })?;
            while let Some(row) = rows.next()? {
                claimed.push((row.get::<_, i64>("id")?, row.get::<_, i64>("fence")?));
            }
        }
        ensure!(
            claimed.len() == chosen.len(),
            "started {} of {} chosen jobs",
            claimed.len(),
            chosen.len()
        );
        // The net changes, one upsert per (queue, kind, state) that moved,
        // as errand's commits write them.
        let mut deltas: Vec<(String, i64)> = Vec::new();
        let mut add = |state: &str, n: i64| match deltas.iter_mut().find(|d| d.0 == state) {
            Some(d) => d.1 += n,
            None => deltas.push((state.to_string(), n)),
        };
        add("running", -(held.len() as i64));
        add("completed", held.len() as i64);
        for (_, state) in &chosen {
            add(state, -1);
        }
        add("running", chosen.len() as i64);
        for (state, n) in deltas.iter().filter(|d| d.1 != 0) {
            counts.execute((KIND, KIND, state, n))?;
        }
        commit.execute([])?;
        commits += 1;
        jobs += held.len();
        if claimed.is_empty() {
            break;
        }
        held = claimed;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Drained {
        jobs,
        commits,
        seconds,
        cpu_seconds: thread_cpu_seconds()? - cpu_before,
    })
}

/// User plus system CPU time the calling thread has used, in seconds.
fn thread_cpu_seconds() -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_THREAD)?;
    Ok(
        (usage.user_time().num_microseconds() + usage.system_time().num_microseconds()) as f64
            / 1e6,
    )
}

/// Checks that every job in the database is completed, `n` of them, and
/// that the stored job counts say so too.
pub(super) fn check_all_completed(conn: &Connection, n: usize) -> Result<()> {
    let by_state = |sql: &str| -> Result<Vec<(String, i64)>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let jobs = by_state("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")?;
    let counted = by_state(
        "SELECT state, SUM(n) FROM job_counts GROUP BY state HAVING SUM(n) != 0 ORDER BY state",
    )?;
    let expected = vec![("completed".to_string(), i64::try_from(n)?)];
    ensure!(
        jobs == expected,
        "jobs by state {jobs:?}, expected {expected:?}"
    );
    ensure!(
        counted == expected,
        "job_counts by state {counted:?}, expected {expected:?}"
    );
    Ok(())
}

/// One baseline measurement on a fresh database in a temporary directory.
/// With `awake`, a second thread spins meanwhile: on this project's virtual
/// machine an fsync whose caller leaves every vCPU idle takes 2–4 ms
/// against about 0.1 ms while another vCPU stays busy (a vCPU's halt and
/// wake-up), and errand's runtime threads keep one busy end to end.
async fn baseline_once(jobs: usize, batch: usize, awake: bool) -> Result<Drained> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("baseline.db");
    prepare(&path, jobs).await?;
    let lease = errand_worker::WorkerConfig::default().lease;
    tokio::task::spawn_blocking(move || {
        let conn = open_writer(&path, Synchronous::Full)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinner = awake.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        });
        let drained = drain(&conn, batch, lease);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = spinner {
            let _ = s.join();
        }
        let drained = drained?;
        check_all_completed(&conn, jobs)?;
        ensure!(
            drained.jobs == jobs,
            "drained {} of {jobs} jobs",
            drained.jobs
        );
        drop(dir);
        Ok(drained)
    })
    .await
    .context("the baseline's thread")?
}

/// One end-to-end measurement on a fresh database (a new server and store).
struct EndToEnd {
    jobs_per_s: f64,
    /// The writer's group commits while the jobs ran.
    commits: u64,
    /// Their time from BEGIN to COMMIT, summed, in seconds.
    commit_seconds: f64,
    /// CPU time this process used while the jobs ran (server, worker and
    /// writer), in seconds.
    cpu_seconds: f64,
}

async fn end_to_end_once(jobs: usize) -> Result<EndToEnd> {
    let bench = Bench::start(None).await?;
    bench
        .enqueue_many(KIND, jobs, |i| serde_json::json!({ "n": i }))
        .await?;
    let before = bench.store.load().commits;
    let cpu_before = cpu_seconds()?;
    let jobs_per_s = bench
        .run_enqueued(KIND, errand_core::KindPolicy::default(), jobs, 1)
        .await?;
    let cpu = cpu_seconds()? - cpu_before;
    let after = bench.store.load().commits;
    Ok(EndToEnd {
        cpu_seconds: cpu,
        jobs_per_s,
        commits: after.count - before.count,
        commit_seconds: (after.sum_us - before.sum_us) as f64 / 1e6,
    })
}

/// A baseline measurement, as reported.
#[derive(Debug, Serialize)]
pub(super) struct BaselineFigures {
    jobs_per_s: f64,
    commits: usize,
    /// CPU time of the draining thread per job, in µs.
    cpu_us_per_job: f64,
}

impl From<Drained> for BaselineFigures {
    fn from(d: Drained) -> Self {
        BaselineFigures {
            jobs_per_s: d.jobs_per_s(),
            commits: d.commits,
            cpu_us_per_job: d.cpu_seconds / d.jobs.max(1) as f64 * 1e6,
        }
    }
}

/// One run: the three measurements and the order they took.
#[derive(Debug, Serialize)]
pub(super) struct RunFigures {
    /// What went first: 0 end to end, 1 baseline, 2 baseline idle; the
    /// others follow in that rotation.
    first: usize,
    e2e_jobs_per_s: f64,
    /// The end-to-end run's group commits (the odd maintenance commit
    /// included) and the share of its time the writer spent between
    /// BEGIN and COMMIT.
    e2e_commits: u64,
    e2e_writer_busy: f64,
    /// CPU time of this process (server, worker, writer) per job, in µs.
    e2e_cpu_us_per_job: f64,
    /// With a second thread keeping a vCPU busy, as errand's runtime does.
    baseline: BaselineFigures,
    /// Alone on its thread: every vCPU may idle during its fsyncs.
    baseline_idle: BaselineFigures,
    /// End to end ÷ baseline, and ÷ the idle baseline.
    ratio: f64,
    ratio_idle: f64,
}

/// What `--sqlite-baseline` reports; medians over the runs.
#[derive(Debug, Serialize)]
pub(super) struct BaselineReport {
    jobs: usize,
    /// Jobs the end-to-end node runs at once.
    concurrency: usize,
    /// Jobs the baseline claims (and finishes) per transaction.
    batch: usize,
    runs: Vec<RunFigures>,
    e2e_jobs_per_s: f64,
    e2e_cpu_us_per_job: f64,
    baseline_jobs_per_s: f64,
    baseline_cpu_us_per_job: f64,
    baseline_idle_jobs_per_s: f64,
    /// The median of the runs' ratios to the baseline; the target is ≥ 0.7.
    ratio: f64,
    ratio_idle: f64,
}

/// Measures the end-to-end run and both baselines `runs` times each,
/// rotating which goes first, each on a fresh database.
pub(super) async fn run(jobs: usize, batch: usize, runs: usize) -> Result<BaselineReport> {
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let mut all = Vec::with_capacity(runs);
    for run in 0..runs {
        let first = run % 3;
        let (mut e2e, mut awake, mut idle) = (None, None, None);
        for step in 0..3 {
            match (first + step) % 3 {
                0 => {
                    eprintln!("end to end ({}/{runs})…", run + 1);
                    e2e = Some(end_to_end_once(jobs).await?);
                }
                1 => {
                    eprintln!("store-only baseline, batch {batch} ({}/{runs})…", run + 1);
                    awake = Some(baseline_once(jobs, batch, true).await?);
                }
                _ => {
                    eprintln!(
                        "store-only baseline, batch {batch}, idle ({}/{runs})…",
                        run + 1
                    );
                    idle = Some(baseline_once(jobs, batch, false).await?);
                }
            }
        }
        let (e2e, awake, idle) = (
            e2e.expect("measured"),
            BaselineFigures::from(awake.expect("measured")),
            BaselineFigures::from(idle.expect("measured")),
        );
        all.push(RunFigures {
            first,
            e2e_jobs_per_s: e2e.jobs_per_s,
            e2e_commits: e2e.commits,
            e2e_writer_busy: e2e.commit_seconds / (jobs as f64 / e2e.jobs_per_s),
            e2e_cpu_us_per_job: e2e.cpu_seconds / jobs as f64 * 1e6,
            ratio: e2e.jobs_per_s / awake.jobs_per_s,
            ratio_idle: e2e.jobs_per_s / idle.jobs_per_s,
            baseline: awake,
            baseline_idle: idle,
        });
    }
    let of = |f: fn(&RunFigures) -> f64| median(&all.iter().map(f).collect::<Vec<_>>());
    Ok(BaselineReport {
        jobs,
        concurrency: super::E2E_CONCURRENCY,
        batch,
        e2e_jobs_per_s: of(|r| r.e2e_jobs_per_s),
        e2e_cpu_us_per_job: of(|r| r.e2e_cpu_us_per_job),
        baseline_jobs_per_s: of(|r| r.baseline.jobs_per_s),
        baseline_cpu_us_per_job: of(|r| r.baseline.cpu_us_per_job),
        baseline_idle_jobs_per_s: of(|r| r.baseline_idle.jobs_per_s),
        ratio: of(|r| r.ratio),
        ratio_idle: of(|r| r.ratio_idle),
        runs: all,
    })
}

/// Table rows: one per run, then the medians with the verdict.
pub(super) fn rows(r: &BaselineReport) -> Vec<Vec<String>> {
    let base = |b: &BaselineFigures| {
        format!(
            "{:.0} jobs/s ({} commits, {:.1} µs CPU/job)",
            b.jobs_per_s, b.commits, b.cpu_us_per_job
        )
    };
    let mut rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            vec![
                format!(
                    "{} ({} first)",
                    i + 1,
                    ["end to end", "baseline", "idle baseline"][f.first]
                ),
                format!(
                    "{:.0} jobs/s ({} commits, writer busy {:.0}%, {:.1} µs CPU/job)",
                    f.e2e_jobs_per_s,
                    f.e2e_commits,
                    f.e2e_writer_busy * 100.0,
                    f.e2e_cpu_us_per_job
                ),
                base(&f.baseline),
                format!("{:.0} jobs/s", f.baseline_idle.jobs_per_s),
                format!("{:.2}× ({:.2}×)", f.ratio, f.ratio_idle),
            ]
        })
        .collect();
    let word = if r.ratio >= TARGET_RATIO {
        "meets"
    } else {
        "misses"
    };
    rows.push(vec![
        "median".into(),
        format!(
            "{:.0} jobs/s ({:.1} µs CPU/job)",
            r.e2e_jobs_per_s, r.e2e_cpu_us_per_job
        ),
        format!(
            "{:.0} jobs/s ({:.1} µs CPU/job)",
            r.baseline_jobs_per_s, r.baseline_cpu_us_per_job
        ),
        format!("{:.0} jobs/s", r.baseline_idle_jobs_per_s),
        format!(
            "{:.2}× ({:.2}×): {word} the ≥ {TARGET_RATIO:.1}× target",
            r.ratio, r.ratio_idle
        ),
    ]);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database of `n` jobs and its writer connection.
    async fn prepared(n: usize) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("baseline.db");
        prepare(&path, n).await.unwrap();
        let conn = open_writer(&path, Synchronous::Off).unwrap();
        (dir, conn)
    }

    #[tokio::test]
    async fn drains_every_job_once_in_batches() {
        for (n, batch, commits) in [(1000, 64, 17), (128, 64, 3), (5, 512, 2), (1, 1, 2)] {
            let (_dir, conn) = prepared(n).await;
            let drained = drain(&conn, batch, Duration::from_secs(15)).unwrap();
            assert_eq!(drained.jobs, n, "{n} jobs in batches of {batch}");
            // One per batch claimed, and the last that finishes it.
            assert_eq!(drained.commits, commits, "{n} jobs in batches of {batch}");
            check_all_completed(&conn, n).unwrap();
            let (attempts, fences, open): (i64, i64, i64) = conn
                .query_row(
                    "SELECT SUM(attempt), SUM(fence), COUNT(lease_expires_at) + COUNT(worker) \
                     FROM jobs WHERE finished_at IS NOT NULL AND started_at IS NOT NULL",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!((attempts, fences, open), (n as i64, n as i64, 0));
        }
    }

    #[tokio::test]
    async fn an_empty_queue_takes_one_empty_commit() {
        let (_dir, conn) = prepared(0).await;
        let drained = drain(&conn, 64, Duration::from_secs(15)).unwrap();
        assert_eq!((drained.jobs, drained.commits), (0, 1));
    }

    #[tokio::test]
    async fn the_check_sees_jobs_left_and_counts_off() {
        let (_dir, conn) = prepared(10).await;
        assert!(check_all_completed(&conn, 10).is_err(), "nothing ran yet");
        drain(&conn, 4, Duration::from_secs(15)).unwrap();
        check_all_completed(&conn, 10).unwrap();
        conn.execute(
            "UPDATE job_counts SET n = n + 1 WHERE state = 'completed'",
            [],
        )
        .unwrap();
        assert!(check_all_completed(&conn, 10).is_err(), "counts are off");
    }

    #[test]
    fn a_batch_of_zero_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(drain(&conn, 0, Duration::from_secs(15)).is_err());
    }
}
