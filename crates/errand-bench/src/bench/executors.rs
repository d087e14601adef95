//! `errand-bench --executors`: no-op jobs per second through the shipped
//! executors on a temporary SQLite store with a real worker: a process per
//! job (`/bin/true`, then PHP), pools of 4 PHP and 4 Python processes (the
//! reference workers under `--examples`), and a webhook to a receiver in
//! this process. A scenario whose program or worker script is missing is
//! skipped with a note; the others still run.

use super::{Bench, median};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use errand_core::{Job, KindPolicy, Outcome};
use errand_executors::command::{CommandExecutor, CommandSpec};
use errand_executors::pool::{PoolConfig, PoolExecutor};
use errand_executors::webhook::{WebhookConfig, WebhookExecutor};
use errand_worker::{Executor, ProgressSink, Worker, WorkerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Processes in each benchmarked pool.
const POOL_PROCESSES: usize = 4;
/// The kinds of the two scenarios the target compares.
const PHP_PER_JOB: &str = "exec_php_process";
const PHP_POOL: &str = "exec_php_pool";
/// The issue's target: a pool of PHP processes against a PHP process per job.
const TARGET_RATIO: f64 = 10.0;

/// What `--executors` reports.
#[derive(Debug, Serialize)]
pub(super) struct ExecutorsReport {
    scenarios: Vec<ScenarioReport>,
    /// Pool of 4 PHP processes ÷ a PHP process per job (target ≥ 10).
    pool_php_vs_php_per_job: Option<f64>,
    runs: usize,
}

/// One scenario's median, or why it was skipped.
#[derive(Debug, Serialize)]
struct ScenarioReport {
    name: &'static str,
    kind: &'static str,
    jobs: usize,
    concurrency: usize,
    jobs_per_s: Option<f64>,
    skipped: Option<String>,
}

/// How a scenario's executor is built.
enum Setup {
    /// A [`CommandExecutor`] running this argv per job.
    Command(Vec<String>),
    /// A [`PoolExecutor`] of [`POOL_PROCESSES`] running this argv.
    Pool(Vec<String>),
    /// A [`WebhookExecutor`] posting to this URL.
    Webhook(String),
}

struct Scenario {
    name: &'static str,
    /// Also the kind and the queue, so each scenario counts only its jobs.
    kind: &'static str,
    jobs: usize,
    concurrency: usize,
    setup: Setup,
}

impl Scenario {
    /// Why the scenario cannot run here, if it cannot.
    fn missing(&self) -> Option<String> {
        let argv = match &self.setup {
            Setup::Command(argv) | Setup::Pool(argv) => argv,
            Setup::Webhook(_) => return None,
        };
        let program = &argv[0];
        if !on_path(program) {
            return Some(format!("{program} is not installed (not found on PATH)"));
        }
        match (&self.setup, argv.get(1)) {
            (Setup::Pool(_), Some(script)) if !Path::new(script).is_file() => Some(format!(
                "{script} not found: run from the repository root or pass --examples DIR"
            )),
            _ => None,
        }
    }

    fn executor(&self) -> Result<Arc<dyn Executor>> {
        Ok(match &self.setup {
            Setup::Command(argv) => Arc::new(CommandExecutor::new(CommandSpec {
                argv: argv.clone(),
                ..CommandSpec::default()
            })?),
            Setup::Pool(argv) => Arc::new(PoolExecutor::new(
                self.kind,
                PoolConfig {
                    processes: POOL_PROCESSES,
                    ..PoolConfig::new(argv.clone())
                },
            )?),
            Setup::Webhook(url) => Arc::new(WebhookExecutor::new(WebhookConfig::new(
                url.clone(),
                "bench-secret",
            ))?),
        })
    }
}

/// Whether `program` names an existing file or one found on `PATH`.
fn on_path(program: &str) -> bool {
    errand_executors::process::program_exists(program, None)
}

fn scenarios(examples: &Path, webhook_url: String) -> Vec<Scenario> {
    let script = |name: &str| -> String {
        let path: PathBuf = examples.join("pool").join(name);
        path.to_string_lossy().into_owned()
    };
    let argv = |parts: &[&str]| parts.iter().map(|p| p.to_string()).collect();
    vec![
        Scenario {
            name: "command per job, /bin/true",
            kind: "exec_true",
            jobs: 3_000,
            concurrency: 16,
            setup: Setup::Command(argv(&["/bin/true"])),
        },
        Scenario {
            name: "PHP process per job, php -r ';'",
            kind: PHP_PER_JOB,
            jobs: 1_000,
            concurrency: 16,
            setup: Setup::Command(argv(&["php", "-r", ";"])),
        },
        Scenario {
            name: "pool of 4 PHP processes, worker.php",
            kind: PHP_POOL,
            jobs: 20_000,
            concurrency: 16,
            setup: Setup::Pool(vec!["php".into(), script("worker.php")]),
        },
        Scenario {
            name: "pool of 4 Python processes, worker.py",
            kind: "exec_python_pool",
            jobs: 20_000,
            concurrency: 16,
            setup: Setup::Pool(vec!["python3".into(), script("worker.py")]),
        },
        Scenario {
            name: "webhook to a local receiver",
            kind: "exec_webhook",
            jobs: 20_000,
            concurrency: 64,
            setup: Setup::Webhook(webhook_url),
        },
    ]
}

/// Wraps an executor to see when attempts end and whether they succeed.
struct Timed {
    inner: Arc<dyn Executor>,
    first_done: Mutex<Option<Instant>>,
    done: AtomicUsize,
    failure: Mutex<Option<String>>,
}

#[async_trait]
impl Executor for Timed {
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        progress: ProgressSink,
    ) -> Outcome {
        let outcome = self.inner.execute(job, cancel, progress).await;
        if let Outcome::Success(_) = outcome {
            self.first_done
                .lock()
                .expect("bench lock")
                .get_or_insert_with(Instant::now);
            self.done.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failure
                .lock()
                .expect("bench lock")
                .get_or_insert_with(|| format!("{outcome:?}"));
        }
        outcome
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    fn capacity(&self) -> Option<tokio::sync::watch::Receiver<usize>> {
        self.inner.capacity()
    }
}

/// Runs `scenario`'s jobs once and returns jobs/s, timed from the first
/// completed attempt (so process start-up is not counted) to the last
/// completion written to the store.
async fn measure(bench: &Bench, scenario: &Scenario) -> Result<f64> {
    let kind = scenario.kind;
    let before = bench.completed(kind).await?;
    bench
        .enqueue_many(kind, scenario.jobs, |_| serde_json::json!({"op": "echo"}))
        .await?;
    let timed = Arc::new(Timed {
        inner: scenario.executor()?,
        first_done: Mutex::new(None),
        done: AtomicUsize::new(0),
        failure: Mutex::new(None),
    });
    let mut worker = Worker::new(
        bench.store.clone(),
        WorkerConfig {
            name: format!("bench-{kind}"),
            queues: BTreeMap::from([(kind.to_string(), scenario.concurrency)]),
            ..WorkerConfig::default()
        },
    );
    let policy = KindPolicy {
        queue: kind.into(),
        ..KindPolicy::default()
    };
    worker.register(kind, policy, timed.clone());
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));
    let outcome = async {
        while timed.done.load(Ordering::Relaxed) < scenario.jobs {
            if let Some(failure) = timed.failure.lock().expect("bench lock").clone() {
                bail!("a {kind} job did not succeed: {failure}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bench
            .wait_completed(kind, before + scenario.jobs as u64)
            .await
    }
    .await;
    stop.cancel();
    running.await??;
    let finished = outcome?;
    let start = timed
        .first_done
        .lock()
        .expect("bench lock")
        .context("no job ran")?;
    Ok((scenario.jobs - 1) as f64 / finished.duration_since(start).as_secs_f64())
}

/// Answers every POST with 200 `{}` until `stop`; returns its URL.
async fn receiver(stop: &CancellationToken) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/job", listener.local_addr()?);
    let router = axum::Router::new().route(
        "/job",
        axum::routing::post(|| async { axum::Json(serde_json::json!({})) }),
    );
    tokio::spawn(errand_server::serve(
        listener,
        router,
        stop.clone().cancelled_owned(),
    ));
    Ok(url)
}

/// Runs every scenario `runs` times on a fresh temporary SQLite store.
pub(super) async fn run(examples: &Path, runs: usize) -> Result<ExecutorsReport> {
    let bench = Bench::start(None).await?;
    let url = receiver(&bench.stop).await?;
    let mut reports = Vec::new();
    for scenario in scenarios(examples, url) {
        let skipped = scenario.missing();
        let mut rates = Vec::new();
        if let Some(why) = &skipped {
            eprintln!("skipping {}: {why}", scenario.name);
        } else {
            for run in 1..=runs {
                eprintln!("{} ({run}/{runs})…", scenario.name);
                rates.push(
                    measure(&bench, &scenario)
                        .await
                        .with_context(|| scenario.name.to_string())?,
                );
            }
        }
        reports.push(ScenarioReport {
            name: scenario.name,
            kind: scenario.kind,
            jobs: scenario.jobs,
            concurrency: scenario.concurrency,
            jobs_per_s: (!rates.is_empty()).then(|| median(&rates)),
            skipped,
        });
    }
    let rate = |kind: &str| {
        reports
            .iter()
            .find(|r| r.kind == kind)
            .and_then(|r| r.jobs_per_s)
    };
    let ratio = rate(PHP_POOL)
        .zip(rate(PHP_PER_JOB))
        .map(|(pool, per_job)| pool / per_job);
    Ok(ExecutorsReport {
        scenarios: reports,
        pool_php_vs_php_per_job: ratio,
        runs,
    })
}

/// The report as table rows: scenario, jobs, concurrency, median.
pub(super) fn rows(report: &ExecutorsReport) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = report
        .scenarios
        .iter()
        .map(|s| {
            let median = match (&s.jobs_per_s, &s.skipped) {
                (Some(v), _) => format!("{v:.0} jobs/s"),
                (None, Some(why)) => format!("skipped: {why}"),
                (None, None) => "-".into(),
            };
            vec![
                s.name.to_string(),
                s.jobs.to_string(),
                s.concurrency.to_string(),
                median,
            ]
        })
        .collect();
    if let Some(ratio) = report.pool_php_vs_php_per_job {
        let verdict = if ratio >= TARGET_RATIO {
            "meets"
        } else {
            "misses"
        };
        rows.push(vec![
            "pool of 4 PHP ÷ PHP process per job".into(),
            String::new(),
            String::new(),
            format!("{ratio:.1}× ({verdict} the {TARGET_RATIO:.0}× target)"),
        ]);
    }
    rows
}
