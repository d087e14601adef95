//! How client commands print: aligned tables and key/value blocks for
//! people, JSON for scripts.

use errand_core::api::{BatchResults, EventView, StatsResponse};
use errand_core::{BreakerPhase, BreakerState, JobState, QueueInfo};
use errand_core::{Event, Job};
use std::collections::BTreeMap;
use std::fmt::Write;

pub use errand_client::table;

/// One line per job.
pub fn jobs_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.kind.clone(),
                j.queue.clone(),
                j.state.to_string(),
                format!("{}/{}", j.attempt, j.max_attempts),
                j.run_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                match (j.errors.last(), j.omitted.errors) {
                    (Some(e), _) => one_line(&e.error, 60),
                    // Too long to list: `jobs show` has them.
                    (None, Some(bytes)) => format!("({bytes} bytes, see jobs show)"),
                    (None, None) => String::new(),
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "KIND",
            "QUEUE",
            "STATE",
            "ATTEMPT",
            "RUN AT (UTC)",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// Every field of one job, then its errors and result.
pub fn job_details(job: &Job) -> String {
    let mut out = String::new();
    let opt = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "id:           {}", job.id);
    let _ = writeln!(out, "kind:         {}", job.kind);
    let _ = writeln!(out, "queue:        {}", job.queue);
    let _ = writeln!(out, "state:        {}", job.state);
    let _ = writeln!(out, "attempt:      {} of {}", job.attempt, job.max_attempts);
    let _ = writeln!(out, "priority:     {}", job.priority);
    let _ = writeln!(out, "run at:       {}", job.run_at);
    let _ = writeln!(out, "created at:   {}", job.created_at);
    let _ = writeln!(out, "started at:   {}", opt(job.started_at));
    let _ = writeln!(out, "finished at:  {}", opt(job.finished_at));
    if let Some(progress) = &job.progress {
        let _ = writeln!(
            out,
            "progress:     {progress} (at {})",
            opt(job.progress_at)
        );
    }
    if let Some(key) = &job.unique_key {
        let _ = writeln!(out, "unique key:   {key}");
    }
    if !job.tags.is_empty() {
        let _ = writeln!(out, "tags:         {}", job.tags.join(", "));
    }
    let _ = writeln!(out, "payload:      {}", job.payload);
    if let Some(result) = &job.result {
        let _ = writeln!(out, "result:       {result}");
    }
    for e in &job.errors {
        let _ = writeln!(
            out,
            "error (attempt {}, {}): {}",
            e.attempt,
            e.at,
            e.error.trim_end()
        );
    }
    out
}

/// Counts per queue and per kind, one column per state; then the open
/// breakers, if any node holds one.
pub fn stats_table(response: &StatsResponse) -> String {
    let stats = &response.stats;
    let states = errand_core::JobState::ALL;
    let mut headers = vec!["QUEUE/KIND"];
    headers.extend(states.iter().map(|s| s.as_str()));
    let mut rows = Vec::new();
    let mut section = |label: &str,
                       groups: &std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<errand_core::JobState, u64>,
    >| {
        for (name, counts) in groups {
            let mut row = vec![format!("{label} {name}")];
            row.extend(state_counts(counts));
            rows.push(row);
        }
    };
    section("queue", &stats.queues);
    section("kind", &stats.kinds);
    let mut total = vec!["total".to_string()];
    total.extend(state_counts(&stats.total));
    rows.push(total);
    let mut out = table(&headers, &rows);
    if !response.breakers.is_empty() {
        out.push_str("\nopen breakers (these kinds are not being claimed on these nodes):\n");
        out.push_str(&breakers_table(&response.breakers));
    }
    out
}

/// One count per state, in [`JobState::ALL`] order (0 when absent).
fn state_counts(counts: &BTreeMap<JobState, u64>) -> impl Iterator<Item = String> + '_ {
    JobState::ALL
        .iter()
        .map(|s| counts.get(s).copied().unwrap_or(0).to_string())
}

/// One line per queue: paused or running, and its jobs by state.
pub fn queues_table(queues: &[QueueInfo]) -> String {
    let mut headers = vec!["QUEUE", "STATUS"];
    headers.extend(JobState::ALL.iter().map(|s| s.as_str()));
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let status = if q.paused { "paused" } else { "active" };
            let mut row = vec![q.name.clone(), status.to_string()];
            row.extend(state_counts(&q.counts));
            row
        })
        .collect();
    table(&headers, &rows)
}

/// One line per non-closed breaker, by node and kind.
fn breakers_table(breakers: &BTreeMap<String, BTreeMap<String, BreakerState>>) -> String {
    let rows: Vec<Vec<String>> = breakers
        .iter()
        .flat_map(|(node, kinds)| kinds.iter().map(move |(kind, b)| (node, kind, b)))
        .map(|(node, kind, b)| {
            let state = match b.state {
                BreakerPhase::Open => "open",
                BreakerPhase::HalfOpen => "half-open",
            };
            vec![
                node.clone(),
                kind.clone(),
                state.to_string(),
                b.since.to_string(),
                b.retry_at
                    .map_or_else(|| "probing".to_string(), |t| t.to_string()),
                b.consecutive.to_string(),
                one_line(&b.last_error, 80),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "KIND",
            "STATE",
            "SINCE",
            "NEXT PROBE",
            "DEADLY",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// One line per live node.
pub fn nodes_table(nodes: &[errand_core::NodeInfo]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let queues: Vec<String> = n.queues.iter().map(|(q, c)| format!("{q}={c}")).collect();
            vec![
                n.name.clone(),
                node_kind(n),
                n.http.clone().unwrap_or_else(|| "-".into()),
                queues.join(","),
                n.running.to_string(),
                n.last_seen.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                n.started_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "WORKER",
            "HTTP",
            "QUEUES",
            "RUNNING",
            "LAST SEEN (UTC)",
            "STARTED (UTC)",
        ],
        &rows,
    )
}

/// What runs a node's jobs: `errand` for errand's own, else the remote
/// worker's library, version, host and pid; `(draining)` once asked to stop.
fn node_kind(n: &errand_core::NodeInfo) -> String {
    let mut text = match &n.remote {
        None => "errand".to_string(),
        Some(r) => {
            let mut parts = vec![format!(
                "remote {}",
                r.library.as_deref().unwrap_or("(unnamed library)")
            )];
            parts.extend(r.version.clone());
            match (&r.host, r.pid) {
                (Some(host), Some(pid)) => parts.push(format!("{host}:{pid}")),
                (Some(host), None) => parts.push(host.clone()),
                (None, Some(pid)) => parts.push(format!("pid {pid}")),
                (None, None) => {}
            }
            parts.join(" ")
        }
    };
    if n.draining {
        text.push_str(" (draining)");
    }
    text
}

/// One line per schedule; times in UTC, and the next run also on the
/// schedule's own clock.
pub fn schedules_table(schedules: &[errand_core::schedule::ScheduleView]) -> String {
    let utc = |t: Option<jiff::Timestamp>| {
        t.map_or("-".to_string(), |t| {
            t.strftime("%Y-%m-%d %H:%M:%S").to_string()
        })
    };
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let local = match (s.next_run, jiff::tz::TimeZone::get(&s.timezone)) {
                (Some(t), Ok(tz)) => t.to_zoned(tz).strftime("%H:%M:%S %Z").to_string(),
                _ => "-".to_string(),
            };
            vec![
                s.name.clone(),
                s.cron.clone(),
                s.timezone.clone(),
                s.kind.clone(),
                s.queue.clone(),
                utc(s.next_run),
                local,
                utc(s.last_tick),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "CRON",
            "TIMEZONE",
            "KIND",
            "QUEUE",
            "NEXT RUN (UTC)",
            "LOCAL",
            "LAST TICK (UTC)",
        ],
        &rows,
    )
}

/// An event's listener jobs as a table, or a line saying it has none.
pub fn listener_jobs(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "no listener jobs\n".to_string();
    }
    jobs_table(jobs)
}

/// One event's fields, then its listeners' jobs.
pub fn event_details(view: &EventView) -> String {
    let e = &view.event;
    let mut out = String::new();
    let _ = writeln!(out, "id:           {}", e.id);
    let _ = writeln!(out, "name:         {}", e.name);
    let _ = writeln!(out, "published at: {}", e.published_at);
    if let Some(key) = &e.unique_key {
        let _ = writeln!(out, "unique key:   {key}");
    }
    let _ = writeln!(out, "data:         {}", e.data);
    if view.jobs.len() < e.jobs.len() {
        let _ = writeln!(
            out,
            "({} of its {} jobs pruned)",
            e.jobs.len() - view.jobs.len(),
            e.jobs.len()
        );
    }
    out.push_str(&listener_jobs(&view.jobs));
    out
}

/// One line per event.
pub fn events_table(events: &[Event]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.name.clone(),
                e.published_at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                e.jobs.len().to_string(),
                e.unique_key.clone().unwrap_or_default(),
                one_line(&e.data.to_string(), 60),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "PUBLISHED (UTC)",
            "JOBS",
            "UNIQUE KEY",
            "DATA",
        ],
        &rows,
    )
}

/// A batch's jobs in submission order with their results or errors, then
/// its counts.
pub fn batch_results(results: &BatchResults) -> String {
    let rows: Vec<Vec<String>> = results
        .results
        .iter()
        .map(|r| {
            let outcome = match (&r.result, &r.error) {
                (_, Some(error)) => one_line(error, 80),
                (Some(result), None) => one_line(&result.to_string(), 80),
                (None, None) => String::new(),
            };
            vec![
                r.id.to_string(),
                r.kind.clone(),
                r.state.to_string(),
                outcome,
            ]
        })
        .collect();
    let mut out = table(&["ID", "KIND", "STATE", "RESULT / ERROR"], &rows);
    let b = &results.batch;
    let counts: Vec<String> = JobState::ALL
        .iter()
        .filter_map(|s| Some(format!("{} {s}", b.counts.get(s).filter(|n| **n > 0)?)))
        .collect();
    let status = if b.is_finished() {
        "finished"
    } else {
        "not finished"
    };
    let _ = writeln!(
        out,
        "batch {} {status}: {} jobs, {}",
        b.id,
        b.total,
        counts.join(", ")
    );
    out
}

/// The first line of `text`, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() > max {
        format!("{}…", first.chars().take(max).collect::<String>())
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_details_show_the_latest_progress_and_its_time() {
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let mut job: Job = serde_json::from_value(serde_json::json!({
            "id": 7, "kind": "report", "queue": "default", "payload": null, "priority": 0,
            "state": "running", "attempt": 1, "max_attempts": 3, "run_at": now, "created_at": now,
        }))
        .unwrap();
        assert!(!job_details(&job).contains("progress"));
        job.progress = Some(serde_json::json!({"done": 3, "of": 10}));
        job.progress_at = Some(now);
        assert!(
            job_details(&job)
                .contains("progress:     {\"done\":3,\"of\":10} (at 2023-11-14T22:13:20Z)\n"),
            "{}",
            job_details(&job)
        );
    }

    #[test]
    fn stats_list_open_breakers_under_the_counts() {
        let mut response = StatsResponse::default();
        assert!(!stats_table(&response).contains("breakers"));
        let since = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let breaker = BreakerState {
            state: BreakerPhase::Open,
            since,
            retry_at: Some(since),
            last_error: "connection refused\nat line 2".into(),
            consecutive: 3,
        };
        response.breakers.insert(
            "node-a".into(),
            BTreeMap::from([("email".to_string(), breaker)]),
        );
        let out = stats_table(&response);
        let line = out.lines().last().unwrap();
        for part in [
            "node-a",
            "email",
            "open",
            "2023-11-14T22:13:20Z",
            "3",
            "connection refused",
        ] {
            assert!(line.contains(part), "{part} missing from {out}");
        }
        assert!(!out.contains("line 2"), "{out}");
    }

    #[test]
    fn batch_results_show_each_job_in_order_then_the_counts() {
        let job = |id, state, result: Option<serde_json::Value>, error: Option<&str>| {
            errand_core::api::JobResult {
                id,
                kind: "square".into(),
                state,
                result,
                error: error.map(str::to_string),
            }
        };
        let results = BatchResults {
            batch: errand_core::Batch {
                id: 3,
                created_at: jiff::Timestamp::UNIX_EPOCH,
                total: 3,
                counts: BTreeMap::from([
                    (JobState::Completed, 1),
                    (JobState::Failed, 1),
                    (JobState::Running, 1),
                ]),
                finished_at: None,
                on_complete_job: None,
            },
            results: vec![
                job(7, JobState::Completed, Some(serde_json::json!(49)), None),
                job(
                    8,
                    JobState::Failed,
                    None,
                    Some("exit status 3: boom\nstack"),
                ),
                job(9, JobState::Running, None, None),
            ],
        };
        let out = batch_results(&results);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "7   square  completed  49");
        assert_eq!(lines[2], "8   square  failed     exit status 3: boom");
        assert_eq!(lines[3], "9   square  running");
        assert_eq!(
            lines[4],
            "batch 3 not finished: 3 jobs, 1 running, 1 completed, 1 failed"
        );
    }

    #[test]
    fn one_line_cuts() {
        assert_eq!(one_line("abc\ndef", 10), "abc");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
