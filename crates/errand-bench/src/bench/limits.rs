//! `errand-bench --limits`: what a global kind limit costs when it never
//! binds. The same no-op end-to-end workload runs unlimited, with a rate far
//! above the load and with a concurrency far above the worker's slots, in
//! the same run; the limited kinds should stay within 10% of unlimited
//! (docs/decisions/0008).

use super::{Bench, median};
use anyhow::Result;
use errand_core::{KindLimit, KindPolicy};
use serde::Serialize;

/// A rate no benchmark reaches.
const FAR_RATE: &str = "10000000/s";
/// A concurrency far above any node's slots.
const FAR_CONCURRENCY: u32 = 1_000_000;
/// Limited kinds may be this much slower than unlimited, at most.
const TARGET_RATIO: f64 = 0.9;

/// One variant of the workload: its kind (and queue) and limit.
struct Variant {
    name: String,
    kind: &'static str,
    limit: KindLimit,
}

fn variants() -> Result<[Variant; 3]> {
    Ok([
        Variant {
            name: "unlimited (baseline)".into(),
            kind: "limit_none",
            limit: KindLimit::default(),
        },
        Variant {
            name: format!("rate = \"{FAR_RATE}\""),
            kind: "limit_rate",
            limit: KindLimit {
                rate: Some(FAR_RATE.parse()?),
                ..KindLimit::default()
            },
        },
        Variant {
            name: format!("max_running = {FAR_CONCURRENCY}"),
            kind: "limit_concurrency",
            limit: KindLimit {
                max_running: Some(FAR_CONCURRENCY),
                ..KindLimit::default()
            },
        },
    ])
}

/// What `--limits` reports: medians over the runs.
#[derive(Debug, Serialize)]
pub(super) struct LimitsReport {
    jobs: usize,
    /// Jobs the worker node runs at once.
    concurrency: usize,
    unlimited_jobs_per_s: f64,
    rate_jobs_per_s: f64,
    concurrency_jobs_per_s: f64,
    /// Limited ÷ unlimited; the target is ≥ 0.9.
    rate_vs_unlimited: f64,
    concurrency_vs_unlimited: f64,
}

/// Runs every variant `runs` times, rotating which goes first so neither
/// the table's growth nor a warming cache favours one.
pub(super) async fn run(bench: &Bench, jobs: usize, runs: usize) -> Result<LimitsReport> {
    let variants = variants()?;
    let mut rates: [Vec<f64>; 3] = Default::default();
    for run in 0..runs {
        for step in 0..variants.len() {
            let i = (run + step) % variants.len();
            let v = &variants[i];
            eprintln!("end to end, {} ({}/{runs})…", v.name, run + 1);
            let policy = KindPolicy {
                limit: v.limit,
                ..KindPolicy::default()
            };
            rates[i].push(bench.end_to_end_kind(v.kind, policy, jobs, 1).await?);
        }
    }
    let [none, rate, concurrency] = rates.map(|r| median(&r));
    Ok(LimitsReport {
        jobs,
        concurrency: bench.e2e_concurrency(),
        unlimited_jobs_per_s: none,
        rate_jobs_per_s: rate,
        concurrency_jobs_per_s: concurrency,
        rate_vs_unlimited: rate / none,
        concurrency_vs_unlimited: concurrency / none,
    })
}

/// Table rows: scenario, median, ratio to unlimited with the verdict.
pub(super) fn rows(r: &LimitsReport) -> Result<Vec<Vec<String>>> {
    let verdict = |ratio: f64| {
        let word = if ratio >= TARGET_RATIO {
            "meets"
        } else {
            "misses"
        };
        format!("{ratio:.2}× ({word} the ≥ {TARGET_RATIO:.1}× target)")
    };
    let [none, rate, concurrency] = variants()?;
    let label = |v: &Variant| {
        format!(
            "end to end, {} no-op jobs, concurrency {}, {}",
            r.jobs, r.concurrency, v.name
        )
    };
    Ok(vec![
        vec![
            label(&none),
            format!("{:.0} jobs/s", r.unlimited_jobs_per_s),
            "1.00×".into(),
        ],
        vec![
            label(&rate),
            format!("{:.0} jobs/s", r.rate_jobs_per_s),
            verdict(r.rate_vs_unlimited),
        ],
        vec![
            label(&concurrency),
            format!("{:.0} jobs/s", r.concurrency_jobs_per_s),
            verdict(r.concurrency_vs_unlimited),
        ],
    ])
}
