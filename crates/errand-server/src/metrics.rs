//! `GET /metrics`: Prometheus text exposition (format 0.0.4), written
//! here rather than through a metrics crate because every value is read
//! fresh on each scrape (from the store's few grouped queries and the
//! node's own gauges): there is no long-lived registry to keep, only some
//! sixty lines of formatting. docs/metrics.md lists every metric and says
//! which come from the database (alike on every node) and which are the
//! scraped node's own.

use crate::Shared;
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use errand_core::history::{BOUNDS_SECONDS, Counter, Histogram};
use errand_core::load::COMMIT_BOUNDS_SECONDS;
use errand_core::store::NODE_ALIVE_WINDOW;
use errand_core::{BreakerPhase, JobState};
use std::fmt::Write;
use std::sync::Arc;

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One pool process, as the node's pool executors report it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolProcessGauge {
    /// The pool (its kind).
    pub pool: String,
    /// Process id.
    pub pid: u32,
    /// Resident memory of the process and its children, when readable.
    pub rss_bytes: Option<u64>,
    /// Jobs it has answered.
    pub jobs: u64,
    /// Time since it started.
    pub age: std::time::Duration,
}

/// What the node itself (not the database) adds to `/metrics`.
pub trait NodeMetrics: Send + Sync + std::fmt::Debug {
    /// Jobs running on this node now; `None` when it runs no worker.
    fn running_jobs(&self) -> Option<u64>;
    /// The processes of this node's pools.
    fn pool_processes(&self) -> Vec<PoolProcessGauge>;
}

/// Text being written in the exposition format.
struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a metric family with its HELP and TYPE lines.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The samples of one histogram: cumulative buckets, `+Inf`, sum, count.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        buckets: &[u64],
        count: u64,
        sum_seconds: f64,
    ) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (bound, n) in bounds.iter().zip(buckets) {
            cumulative += n;
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&bucket, &with_le, count);
        self.sample(&format!("{name}_sum"), labels, sum_seconds);
        self.sample(&format!("{name}_count"), labels, count);
    }

    fn job_histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        self.histogram(
            name,
            labels,
            &BOUNDS_SECONDS,
            &h.buckets,
            h.count,
            h.sum_seconds(),
        );
    }
}

/// A label value as the format spells it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What each counter's HELP says.
fn counter_help(c: Counter) -> &'static str {
    match c {
        Counter::Enqueued => "Jobs inserted (duplicates refused by a unique key are not).",
        Counter::Completed => "Attempts that succeeded.",
        Counter::Failed => "Jobs that became failed (permanent error or out of attempts).",
        Counter::Retried => "Attempts that failed and will be retried after backoff.",
        Counter::Snoozed => "Attempts that asked to run again later.",
        Counter::Deadly => "Attempts that ended deadly (infrastructure down; attempt not counted).",
        Counter::Cancelled => "Jobs cancelled.",
        Counter::Rescued => "Running jobs taken back after their lease expired.",
    }
}

/// `GET /metrics`: Prometheus metrics of the store (alike on every node)
/// and of this node.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "status",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4 (docs/metrics.md lists every metric)", content_type = "text/plain; version=0.0.4", body = String)),
)]
pub(crate) async fn metrics(State(app): State<Shared>) -> Result<impl IntoResponse, ApiError> {
    // This node's latest counts first, so a scrape right after jobs end
    // sees them (on SQLite they are written already).
    if let Err(e) = app.store.flush_history().await {
        tracing::warn!(error = %e, "history not flushed before a scrape");
    }
    let store = &app.store;
    let (totals, stats, oldest, nodes) = tokio::try_join!(
        store.totals(),
        store.stats(),
        store.oldest_due(),
        store.nodes(NODE_ALIVE_WINDOW),
    )?;
    let now = store.clock().now();
    let mut x = Exposition {
        out: String::with_capacity(16 << 10),
    };

    for c in Counter::ALL {
        let name = format!("errand_jobs_{}_total", c.name());
        x.family(&name, "counter", counter_help(c));
        for t in &totals {
            let labels = [("kind", t.kind.as_str()), ("queue", t.queue.as_str())];
            x.sample(&name, &labels, t.tally.counts.get(c));
        }
    }
    x.family(
        "errand_job_wait_seconds",
        "histogram",
        "Time from when a job could first run to the claim that started it.",
    );
    for t in &totals {
        let labels = [("kind", t.kind.as_str()), ("queue", t.queue.as_str())];
        x.job_histogram("errand_job_wait_seconds", &labels, &t.tally.wait);
    }
    x.family(
        "errand_job_run_seconds",
        "histogram",
        "Time from an attempt's start to its end.",
    );
    for t in &totals {
        let labels = [("kind", t.kind.as_str()), ("queue", t.queue.as_str())];
        x.job_histogram("errand_job_run_seconds", &labels, &t.tally.run);
    }

    x.family(
        "errand_jobs",
        "gauge",
        "Jobs in the store by queue and state.",
    );
    for (queue, states) in &stats.queues {
        for state in JobState::ALL {
            let n = states.get(&state).copied().unwrap_or(0);
            x.sample(
                "errand_jobs",
                &[("queue", queue), ("state", state.as_str())],
                n,
            );
        }
    }
    x.family(
        "errand_queue_oldest_due_age_seconds",
        "gauge",
        "Age of the longest-waiting due job of each queue (from its run_at); 0 with none waiting.",
    );
    for queue in stats.queues.keys() {
        let age = oldest
            .get(queue)
            .map(|at| now.duration_since(*at).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        x.sample(
            "errand_queue_oldest_due_age_seconds",
            &[("queue", queue)],
            age,
        );
    }
    x.family(
        "errand_nodes_live",
        "gauge",
        "Nodes whose heartbeat is recent.",
    );
    x.sample("errand_nodes_live", &[], nodes.len());
    x.family(
        "errand_breaker_open",
        "gauge",
        "1 for each kind whose breaker is not closed on a live node (state open or half_open).",
    );
    for node in &nodes {
        for (kind, breaker) in &node.breakers {
            let state = match breaker.state {
                BreakerPhase::Open => "open",
                BreakerPhase::HalfOpen => "half_open",
            };
            let labels = [
                ("kind", kind.as_str()),
                ("node", &node.name),
                ("state", state),
            ];
            x.sample("errand_breaker_open", &labels, 1);
        }
    }

    node_metrics(&mut x, &app);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], x.out))
}

/// The scraped node's own metrics.
fn node_metrics(x: &mut Exposition, app: &Shared) {
    let load = app.store.load();
    x.family(
        "errand_store_commit_seconds",
        "histogram",
        "This node's store commits (SQLite: group commits; PostgreSQL: enqueue, claim and finish calls).",
    );
    let c = &load.commits;
    x.histogram(
        "errand_store_commit_seconds",
        &[],
        &COMMIT_BOUNDS_SECONDS,
        &c.buckets,
        c.count,
        c.sum_us as f64 / 1e6,
    );
    x.family(
        "errand_store_pending_writes",
        "gauge",
        "This node's writes waiting (SQLite: queued for the writer; PostgreSQL: pooled connections in use or awaited).",
    );
    x.sample("errand_store_pending_writes", &[], load.pending_writes);
    let Some(node) = app.config.node_metrics.as_ref().map(Arc::clone) else {
        return;
    };
    if let Some(running) = node.running_jobs() {
        x.family(
            "errand_node_running_jobs",
            "gauge",
            "Jobs running on this node.",
        );
        x.sample("errand_node_running_jobs", &[], running);
    }
    let processes = node.pool_processes();
    x.family(
        "errand_pool_processes",
        "gauge",
        "Live processes of each of this node's pools.",
    );
    let mut per_pool: std::collections::BTreeMap<&str, u64> = Default::default();
    for p in &processes {
        *per_pool.entry(&p.pool).or_default() += 1;
    }
    for (pool, n) in per_pool {
        x.sample("errand_pool_processes", &[("pool", pool)], n);
    }
    x.family(
        "errand_pool_process_resident_memory_bytes",
        "gauge",
        "Resident memory of each pool process and its children.",
    );
    for p in &processes {
        if let Some(rss) = p.rss_bytes {
            let pid = p.pid.to_string();
            let labels = [("pool", p.pool.as_str()), ("pid", pid.as_str())];
            x.sample("errand_pool_process_resident_memory_bytes", &labels, rss);
        }
    }
}
