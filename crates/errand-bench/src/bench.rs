//! The benchmark scenarios: runs a server and workers in this process on a
//! temporary SQLite database (or, with `--database postgres://…`, on an
//! empty PostgreSQL database) with the shipped durable settings, and
//! measures HTTP enqueue (with and without a bearer token, on two servers
//! over the same store), batch enqueue, end-to-end throughput, pickup
//! latency and memory.
//! Each scenario runs `--runs` times and the median is reported. On
//! PostgreSQL, `--history` first measures claims against a large history
//! and a long transaction (see [`history`]), once. `--executors` measures
//! the shipped executors instead (see [`executors`]); `--events` and
//! `--limits` measure event publishing and the cost of global kind limits
//! instead (see [`events`] and [`limits`]); `--sqlite-baseline` measures
//! the SQLite end-to-end run against the same work done with SQL alone
//! (see [`baseline`]).

mod baseline;
mod events;
mod executors;
mod history;
mod limits;

use crate::BenchArgs;
use anyhow::{Context, Result, bail};
use errand_core::audit::AuditActor;
use errand_core::{EnqueueRequest, KindPolicy, NewJob, Store};
use errand_postgres::{PostgresOptions, PostgresStore};
use errand_sqlite::{SqliteOptions, SqliteStore};
use errand_worker::{HandlerResult, JobContext, Worker, WorkerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The figures `errand-bench --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    enqueue_jobs_per_s: f64,
    /// The same 32-connection enqueue with a bearer token checked per request.
    enqueue_auth_jobs_per_s: f64,
    /// CPU time of this process (server and clients) per 32-connection
    /// enqueue, without and with a token.
    enqueue_cpu_us: f64,
    enqueue_auth_cpu_us: f64,
    enqueue_sequential_jobs_per_s: f64,
    enqueue_batch_jobs_per_s: f64,
    e2e_jobs_per_s: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
    /// End to end with two worker nodes, each with its own connections
    /// (PostgreSQL only: an SQLite file has one node).
    e2e_two_nodes_jobs_per_s: Option<f64>,
    /// Jobs each end-to-end worker node runs at once.
    e2e_concurrency: usize,
    /// PostgreSQL with `--history` only.
    history: Option<history::HistoryReport>,
    idle_rss_mb: f64,
    peak_rss_mb: f64,
    runs: usize,
    database: &'static str,
}

/// Enqueue without and with a bearer token: jobs/s and this process's CPU
/// µs per request, each `[without, with]`.
struct TokenCost {
    rates: [f64; 2],
    cpu_us: [f64; 2],
}

/// User plus system CPU time this process has used, in seconds.
fn cpu_seconds() -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    use nix::sys::time::TimeValLike;
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    Ok(
        (usage.user_time().num_microseconds() + usage.system_time().num_microseconds()) as f64
            / 1e6,
    )
}

/// A server and store on a benchmark database, torn down on drop.
struct Bench {
    /// The temporary SQLite directory, when there is one.
    _dir: Option<tempfile::TempDir>,
    /// Where `store` lives, to open more nodes on the same database.
    postgres: Option<String>,
    store: Arc<dyn Store>,
    base: String,
    /// The same API over the same store with auth required.
    auth_base: String,
    /// A token with the `enqueue` scope, for `auth_base`.
    token: String,
    http: reqwest::Client,
    stop: CancellationToken,
    /// `--concurrency`: end-to-end slots per node instead of the default.
    concurrency: Option<usize>,
}

const KINDS: [&str; 3] = ["bench_enqueue", "noop", "pickup"];

/// Jobs one end-to-end node runs at once on SQLite.
const E2E_CONCURRENCY: usize = 64;

/// The same on PostgreSQL. A worker claims at most its free slots per
/// claim, and a claim's commit waits for a WAL flush (about 2 ms on this
/// machine's disk), so no-op throughput is capped near concurrency divided
/// by that round trip: 64 slots cap it near 20,000 jobs/s whatever the
/// store does. graphile-worker's own benchmark keeps 500 claimed jobs in a
/// local queue for the same reason; 512 is errand's equivalent (measured:
/// 256 → 43k jobs/s, 512 → 55k jobs/s on one node, same run).
const E2E_CONCURRENCY_POSTGRES: usize = 512;

impl Bench {
    async fn start(database: Option<&str>) -> Result<Bench> {
        let (dir, postgres, store): (_, _, Arc<dyn Store>) = match database {
            None => {
                let dir = tempfile::tempdir()?;
                let store =
                    SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default())
                        .await?;
                (Some(dir), None, Arc::new(store))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let store = PostgresStore::connect(url, PostgresOptions::default()).await?;
                if store.stats().await?.total.values().sum::<u64>() > 0 {
                    bail!(
                        "--database must be an empty database: the benchmark counts every job in it"
                    );
                }
                (None, Some(url.to_string()), Arc::new(store))
            }
            Some(other) => bail!(
                "--database {other:?}: give a postgres:// URL (SQLite benchmarks use a temporary file)"
            ),
        };
        let kinds = KINDS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    KindPolicy {
                        queue: k.to_string(),
                        ..KindPolicy::default()
                    },
                )
            })
            .collect();
        let catalog = errand_core::Catalog::new(kinds, Default::default(), Vec::new())?;
        let config = errand_server::ServerConfig {
            catalog: Arc::new(catalog),
            ..Default::default()
        };
        let stop = CancellationToken::new();
        let auth_config = errand_server::ServerConfig {
            auth_required: true,
            ..config.clone()
        };
        let mut bases = Vec::new();
        for config in [config, auth_config] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            bases.push(format!("http://{}", listener.local_addr()?));
            tokio::spawn(errand_server::serve(
                listener,
                errand_server::router(store.clone(), config),
                stop.clone().cancelled_owned(),
            ));
        }
        let [base, auth_base] = <[String; 2]>::try_from(bases).expect("two servers");
        let secret = errand_core::auth::Secret::generate()?;
        let token = errand_core::auth::NewToken::new(
            &format!("bench-{}", std::process::id()),
            errand_core::auth::Scopes::parse(["enqueue"])?,
            secret.hash(),
        )?;
        store.create_token(token, &AuditActor::Local).await?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Bench {
            _dir: dir,
            postgres,
            store,
            base,
            auth_base,
            token: secret.expose().to_string(),
            http,
            stop,
            concurrency: None,
        })
    }

    /// POSTs one job and returns its id once acknowledged.
    async fn post_one(&self, kind: &str, payload: serde_json::Value) -> Result<i64> {
        self.post_one_via(false, kind, payload).await
    }

    /// [`Bench::post_one`], with a bearer token to the auth server if `auth`.
    async fn post_one_via(
        &self,
        auth: bool,
        kind: &str,
        payload: serde_json::Value,
    ) -> Result<i64> {
        let base = if auth { &self.auth_base } else { &self.base };
        let mut request = self.http.post(format!("{base}/v1/jobs"));
        if auth {
            request = request.bearer_auth(&self.token);
        }
        let resp = request
            .json(&EnqueueRequest {
                kind: kind.into(),
                payload,
                ..Default::default()
            })
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("enqueue answered {}", resp.status());
        }
        let body: serde_json::Value = resp.json().await?;
        body["id"].as_i64().context("enqueue answer has no id")
    }

    /// `total` single-job POSTs from `connections` concurrent clients.
    async fn enqueue_single(self: &Arc<Self>, total: usize, connections: usize) -> Result<f64> {
        self.enqueue_single_via(false, total, connections).await
    }

    /// [`Bench::enqueue_single`], with a bearer token to the auth server if `auth`.
    async fn enqueue_single_via(
        self: &Arc<Self>,
        auth: bool,
        total: usize,
        connections: usize,
    ) -> Result<f64> {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (bench, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    bench
                        .post_one_via(auth, "bench_enqueue", serde_json::json!({"n": 1}))
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    /// `total` single-job POSTs from `connections` clients without a token
    /// and as many with one, in ten alternating slices so that a change in
    /// the machine's load falls on both alike: both rates, and both CPU
    /// times of this process (server and clients) per request, in µs,
    /// which other processes' load disturbs far less.
    async fn enqueue_with_and_without_token(
        self: &Arc<Self>,
        total: usize,
        connections: usize,
    ) -> Result<TokenCost> {
        const SLICES: usize = 10;
        let slice = total.div_ceil(SLICES);
        let mut seconds = [0.0f64; 2];
        let mut cpu = [0.0f64; 2];
        for i in 0..SLICES * 2 {
            // off, on, on, off, off, on, …: neither always goes first.
            let auth = (i % 4 == 1) || (i % 4 == 2);
            let cpu_before = cpu_seconds()?;
            let rate = self.enqueue_single_via(auth, slice, connections).await?;
            cpu[usize::from(auth)] += cpu_seconds()? - cpu_before;
            seconds[usize::from(auth)] += slice as f64 / rate;
        }
        let jobs = (slice * SLICES) as f64;
        Ok(TokenCost {
            rates: [jobs / seconds[0], jobs / seconds[1]],
            cpu_us: [cpu[0] / jobs * 1e6, cpu[1] / jobs * 1e6],
        })
    }

    /// `total` jobs POSTed in batches of 1,000, four requests in flight.
    async fn enqueue_batches(self: &Arc<Self>, total: usize) -> Result<f64> {
        let batches = total.div_ceil(1000);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (bench, next) = (self.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < batches {
                    let jobs: Vec<_> = (0..1000)
                        .map(|i| EnqueueRequest {
                            kind: "bench_enqueue".into(),
                            payload: serde_json::json!({"n": i}),
                            ..Default::default()
                        })
                        .collect();
                    let resp = bench
                        .http
                        .post(format!("{}/v1/jobs/batch", bench.base))
                        .json(&serde_json::json!({ "jobs": jobs }))
                        .send()
                        .await?;
                    if !resp.status().is_success() {
                        bail!("batch enqueue answered {}", resp.status());
                    }
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok((batches * 1000) as f64 / started.elapsed().as_secs_f64())
    }

    /// The engine, as the JSON report names it.
    fn database_name(&self) -> &'static str {
        if self.postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The engine and its durability, for the table's title.
    fn database_label(&self) -> &'static str {
        if self.postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite synchronous=FULL"
        }
    }

    /// Jobs each end-to-end worker node runs at once.
    fn e2e_concurrency(&self) -> usize {
        if let Some(n) = self.concurrency {
            n
        } else if self.postgres.is_some() {
            E2E_CONCURRENCY_POSTGRES
        } else {
            E2E_CONCURRENCY
        }
    }

    /// Enqueues `total` no-op jobs, then runs them on `nodes` worker nodes
    /// at [`Bench::e2e_concurrency`] each, and times first start to last
    /// completion.
    async fn end_to_end(&self, total: usize, nodes: usize) -> Result<f64> {
        self.end_to_end_kind("noop", KindPolicy::default(), total, nodes)
            .await
    }

    /// [`Bench::end_to_end`] for no-op jobs of `kind` (on the queue of the
    /// same name) run under `policy`, whose global limits the workers'
    /// claims carry.
    async fn end_to_end_kind(
        &self,
        kind: &str,
        policy: KindPolicy,
        total: usize,
        nodes: usize,
    ) -> Result<f64> {
        self.enqueue_many(kind, total, |i| serde_json::json!({ "n": i }))
            .await?;
        self.run_enqueued(kind, policy, total, nodes).await
    }

    /// The running part of [`Bench::end_to_end_kind`]: `total` jobs of
    /// `kind` already enqueued (and no others due in its queue) run to
    /// completion; answers jobs/s from first start to last completion.
    async fn run_enqueued(
        &self,
        kind: &str,
        policy: KindPolicy,
        total: usize,
        nodes: usize,
    ) -> Result<f64> {
        let before = self.completed(kind).await?;
        let first = Arc::new(Mutex::new(None::<Instant>));
        let ran = Arc::new(AtomicUsize::new(0));
        let stop = CancellationToken::new();
        let mut running = Vec::new();
        for node in 0..nodes {
            // Every node but the first gets its own store: its own pool and listener.
            let store = match (node, &self.postgres) {
                (0, _) | (_, None) => self.store.clone(),
                (_, Some(url)) => {
                    Arc::new(PostgresStore::connect(url, PostgresOptions::default()).await?)
                        as Arc<dyn Store>
                }
            };
            let mut worker = Worker::new(
                store,
                WorkerConfig {
                    name: format!("bench-node-{node}"),
                    queues: BTreeMap::from([(kind.to_string(), self.e2e_concurrency())]),
                    ..WorkerConfig::default()
                },
            );
            let (first_seen, counter) = (first.clone(), ran.clone());
            worker.handler(
                kind,
                policy.clone(),
                move |_: serde_json::Value, _: JobContext| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    first_seen
                        .lock()
                        .expect("bench lock")
                        .get_or_insert_with(Instant::now);
                    std::future::ready(HandlerResult::Ok(None))
                },
            );
            running.push(tokio::spawn(worker.run(stop.clone())));
        }
        // Watch a counter while jobs run: a stats query scans the table and
        // would compete with the work being measured.
        while ran.load(Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let finished = self.wait_completed(kind, before + total as u64).await?;
        stop.cancel();
        for r in running {
            r.await??;
        }
        let start = first.lock().expect("bench lock").context("no job ran")?;
        Ok(total as f64 / finished.duration_since(start).as_secs_f64())
    }

    /// Enqueues `total` jobs of `kind` with [`enqueue_jobs`].
    async fn enqueue_many(
        &self,
        kind: &str,
        total: usize,
        payload: impl Fn(usize) -> serde_json::Value,
    ) -> Result<()> {
        enqueue_jobs(self.store.as_ref(), kind, total, payload).await
    }

    /// Completed jobs of `kind` so far.
    async fn completed(&self, kind: &str) -> Result<u64> {
        let stats = self.store.stats().await?;
        Ok(stats.of_kind(kind, errand_core::JobState::Completed))
    }

    /// Polls the store until `kind` has `n` completed jobs; returns when.
    async fn wait_completed(&self, kind: &str, n: u64) -> Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let done = self.completed(kind).await?;
            if done >= n {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("only {done} of {n} {kind} jobs completed in time");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// An idle worker; `count` jobs enqueued over HTTP 5 ms apart; the time
    /// from each acknowledgement to its handler's start, in ms, sorted.
    async fn pickup(&self, count: usize) -> Result<Vec<f64>> {
        let before = self.completed("pickup").await?;
        let started: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; count]));
        let mut worker = self.worker(BTreeMap::from([("pickup".to_string(), 4)]));
        let seen = started.clone();
        worker.handler(
            "pickup",
            KindPolicy::default(),
            move |n: usize, _: JobContext| {
                let seen = seen.clone();
                async move {
                    if let Some(slot) = seen.lock().expect("bench lock").get_mut(n) {
                        *slot = Some(Instant::now());
                    }
                    HandlerResult::Ok(None)
                }
            },
        );
        let stop = CancellationToken::new();
        let running = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut acked = Vec::with_capacity(count);
        for n in 0..count {
            self.post_one("pickup", serde_json::json!(n)).await?;
            acked.push(Instant::now());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.wait_completed("pickup", before + count as u64).await?;
        stop.cancel();
        running.await??;
        let started = started.lock().expect("bench lock");
        let mut ms: Vec<f64> = acked
            .iter()
            .zip(started.iter())
            .map(|(ack, start)| {
                // A handler may start before the client has read the
                // acknowledgement: that is a latency of zero, not less.
                start.map_or(f64::NAN, |s| {
                    s.saturating_duration_since(*ack).as_secs_f64() * 1000.0
                })
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        Ok(ms)
    }

    fn worker(&self, queues: BTreeMap<String, usize>) -> Worker {
        Worker::new(
            self.store.clone(),
            WorkerConfig {
                queues,
                ..WorkerConfig::default()
            },
        )
    }
}

/// Enqueues `total` jobs of `kind` on the queue of the same name,
/// straight into `store`, in chunks of 5,000.
async fn enqueue_jobs(
    store: &dyn Store,
    kind: &str,
    total: usize,
    payload: impl Fn(usize) -> serde_json::Value,
) -> Result<()> {
    for chunk in (0..total).collect::<Vec<_>>().chunks(5000) {
        let jobs = chunk
            .iter()
            .map(|&i| NewJob {
                queue: kind.into(),
                ..NewJob::new(kind, payload(i))
            })
            .collect();
        store.enqueue(jobs).await?;
    }
    Ok(())
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The value below which `q` of the sorted samples fall.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The middle value (mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Resident memory of this process now and at its peak, in MB.
fn rss_mb() -> (f64, f64) {
    let field = |name: &str| {
        errand_executors::process::procfs::status(std::process::id(), name)
            .map_or(f64::NAN, |kb| kb as f64 / 1024.0)
    };
    (field("VmRSS"), field("VmHWM"))
}

/// `errand-bench --executors`
async fn run_executors(args: &BenchArgs, runs: usize) -> Result<ExitCode> {
    let report = executors::run(&args.examples, runs).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "errand-bench --executors: medians of {runs} run(s), SQLite synchronous=FULL, {}",
        jiff::Timestamp::now()
    );
    print!(
        "{}",
        errand_client::table(
            &["SCENARIO", "JOBS", "CONCURRENCY", "MEDIAN"],
            &executors::rows(&report)
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// What `errand-bench --e2e-only --json` prints.
#[derive(Debug, Serialize)]
struct E2eReport {
    /// Median of `e2e_runs`.
    e2e_jobs_per_s: f64,
    /// Each run's end-to-end jobs/s, in order.
    e2e_runs: Vec<f64>,
    e2e_concurrency: usize,
    jobs: usize,
    runs: usize,
    database: &'static str,
}

/// `errand-bench --e2e-only`: only the one-node end-to-end scenario, `runs`
/// times, so that a comparison with a peer can alternate single runs.
async fn run_e2e_only(bench: &Bench, args: &BenchArgs, runs: usize) -> Result<ExitCode> {
    let mut e2e = Vec::with_capacity(runs);
    for run in 1..=runs {
        eprintln!("end to end, run {run}/{runs}…");
        e2e.push(bench.end_to_end(args.jobs, 1).await?);
    }
    let report = E2eReport {
        e2e_jobs_per_s: median(&e2e),
        e2e_runs: e2e,
        e2e_concurrency: bench.e2e_concurrency(),
        jobs: args.jobs,
        runs,
        database: bench.database_name(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "end to end on {}, {} no-op jobs, concurrency {}: {:.0} jobs/s (median of {:?})",
            bench.database_label(),
            args.jobs,
            report.e2e_concurrency,
            report.e2e_jobs_per_s,
            report
                .e2e_runs
                .iter()
                .map(|v| v.round())
                .collect::<Vec<_>>()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `errand-bench --events --limits --json` prints.
#[derive(Debug, Serialize)]
struct EventsLimitsReport {
    events: Option<events::EventsReport>,
    limits: Option<limits::LimitsReport>,
    runs: usize,
    database: &'static str,
}

/// `errand-bench --events` and/or `--limits`
async fn run_events_and_limits(args: &BenchArgs, runs: usize) -> Result<ExitCode> {
    let mut bench = Bench::start(args.database.as_deref()).await?;
    bench.concurrency = args.concurrency.map(|n| n as usize);
    let report = EventsLimitsReport {
        events: if args.events {
            Some(events::run(&bench, args.enqueue_jobs, runs).await?)
        } else {
            None
        },
        limits: if args.limits {
            Some(limits::run(&bench, args.jobs, runs).await?)
        } else {
            None
        },
        runs,
        database: bench.database_name(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = report.events.as_ref().map(events::rows).unwrap_or_default();
    if let Some(l) = &report.limits {
        rows.extend(limits::rows(l)?);
    }
    println!(
        "errand-bench: medians of {runs} run(s), {}, {}",
        bench.database_label(),
        jiff::Timestamp::now()
    );
    print!(
        "{}",
        errand_client::table(&["SCENARIO", "MEDIAN", "VS BASELINE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

/// `errand-bench --sqlite-baseline`
async fn run_sqlite_baseline(args: &BenchArgs, runs: usize) -> Result<ExitCode> {
    let batch = match args.baseline_batch {
        Some(b) => usize::try_from(b)?,
        None => E2E_CONCURRENCY,
    };
    let report = baseline::run(args.jobs, batch, runs).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "errand-bench --sqlite-baseline: {} no-op jobs, end to end at concurrency \
         {E2E_CONCURRENCY} against SQL alone in claim batches of {batch}, {runs} \
         alternating run(s), SQLite synchronous=FULL, {}",
        args.jobs,
        jiff::Timestamp::now()
    );
    print!(
        "{}",
        errand_client::table(
            &[
                "RUN",
                "END TO END",
                "STORE-ONLY BASELINE",
                "BASELINE, IDLE",
                "END TO END ÷ BASELINE (÷ IDLE)"
            ],
            &baseline::rows(&report)
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// `errand-bench`: the scenarios `args` ask for.
pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    let runs = args.runs.max(1);
    if args.executors {
        return run_executors(&args, runs).await;
    }
    if args.sqlite_baseline {
        return run_sqlite_baseline(&args, runs).await;
    }
    if args.events || args.limits {
        return run_events_and_limits(&args, runs).await;
    }
    let mut bench = Bench::start(args.database.as_deref()).await?;
    bench.concurrency = args.concurrency.map(|n| n as usize);
    if args.e2e_only {
        return run_e2e_only(&bench, &args, runs).await;
    }
    let bench = Arc::new(bench);
    let database = bench.database_label();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let idle_rss = rss_mb().0;
    let history = match (&bench.postgres, args.history) {
        (Some(url), true) => Some(history::run(&bench.store, url).await?),
        (None, true) => bail!("--history needs --database postgres://…"),
        (_, false) => None,
    };
    let mut single = Vec::new();
    let mut single_auth = Vec::new();
    let (mut cpu_off, mut cpu_on) = (Vec::new(), Vec::new());
    let mut sequential = Vec::new();
    let mut batch = Vec::new();
    let mut e2e = Vec::new();
    let mut e2e_two = Vec::new();
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    for run in 1..=runs {
        eprintln!("run {run}/{runs}…");
        sequential.push(bench.enqueue_single(args.enqueue_jobs / 10, 1).await?);
        let cost = bench
            .enqueue_with_and_without_token(args.enqueue_jobs, 32)
            .await?;
        single.push(cost.rates[0]);
        single_auth.push(cost.rates[1]);
        cpu_off.push(cost.cpu_us[0]);
        cpu_on.push(cost.cpu_us[1]);
        batch.push(bench.enqueue_batches(args.enqueue_jobs * 5).await?);
        e2e.push(bench.end_to_end(args.jobs, 1).await?);
        if bench.postgres.is_some() {
            e2e_two.push(bench.end_to_end(args.jobs, 2).await?);
        }
        let lat = bench.pickup(args.pickup_jobs).await?;
        p50.push(percentile(&lat, 0.50));
        p99.push(percentile(&lat, 0.99));
    }
    let (_, peak_rss) = rss_mb();
    let report = Report {
        enqueue_jobs_per_s: median(&single),
        enqueue_auth_jobs_per_s: median(&single_auth),
        enqueue_cpu_us: median(&cpu_off),
        enqueue_auth_cpu_us: median(&cpu_on),
        enqueue_sequential_jobs_per_s: median(&sequential),
        enqueue_batch_jobs_per_s: median(&batch),
        e2e_jobs_per_s: median(&e2e),
        e2e_two_nodes_jobs_per_s: (!e2e_two.is_empty()).then(|| median(&e2e_two)),
        pickup_p50_ms: median(&p50),
        pickup_p99_ms: median(&p99),
        e2e_concurrency: bench.e2e_concurrency(),
        history,
        idle_rss_mb: idle_rss,
        peak_rss_mb: peak_rss,
        runs,
        database: bench.database_name(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let base = report.enqueue_sequential_jobs_per_s;
    let rate =
        |name: String, v: f64| vec![name, format!("{v:.0} jobs/s"), format!("{:.1}×", v / base)];
    let plain = |name: &str, v: f64, unit: &str| {
        vec![name.to_string(), format!("{v:.2} {unit}"), String::new()]
    };
    let mut rows = vec![
        rate("HTTP enqueue, 1 connection (baseline)".into(), base),
        rate(
            "HTTP enqueue, 32 connections".into(),
            report.enqueue_jobs_per_s,
        ),
        rate(
            "HTTP enqueue, 32 connections, bearer token".into(),
            report.enqueue_auth_jobs_per_s,
        ),
        rate(
            "HTTP enqueue, batches of 1,000".into(),
            report.enqueue_batch_jobs_per_s,
        ),
        rate(
            format!(
                "end to end, {} no-op jobs, concurrency {}",
                args.jobs, report.e2e_concurrency
            ),
            report.e2e_jobs_per_s,
        ),
    ];
    if let Some(two) = report.e2e_two_nodes_jobs_per_s {
        rows.push(rate(
            format!(
                "end to end, {} no-op jobs, 2 worker nodes × {}",
                args.jobs, report.e2e_concurrency
            ),
            two,
        ));
    }
    if let Some(h) = &report.history {
        rows.extend(history::rows(h).into_iter().map(|(name, v)| rate(name, v)));
    }
    rows.extend([
        plain(
            "CPU per enqueue, 32 connections (server + clients)",
            report.enqueue_cpu_us,
            "µs",
        ),
        plain(
            "CPU per enqueue, 32 connections, bearer token",
            report.enqueue_auth_cpu_us,
            "µs",
        ),
        plain("pickup latency p50", report.pickup_p50_ms, "ms"),
        plain("pickup latency p99", report.pickup_p99_ms, "ms"),
        plain("RSS, idle server", report.idle_rss_mb, "MB"),
        plain("RSS, peak", report.peak_rss_mb, "MB"),
    ]);
    println!(
        "errand-bench: medians of {runs} run(s), {database}, {}",
        jiff::Timestamp::now()
    );
    print!(
        "{}",
        errand_client::table(&["SCENARIO", "MEDIAN", "VS BASELINE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
