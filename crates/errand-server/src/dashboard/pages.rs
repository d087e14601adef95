//! The dashboard's pages. Each reads the store through the same calls as
//! the `/v1` handler that answers the same question, and renders HTML with
//! every piece of user data escaped ([`esc`]).

use super::chart::{self, Bucket};
use super::html::{
    Viewer, action, action_with_body, age, esc, json, layout, short_duration, state, time,
    time_or_dash, url_part,
};
use super::{PageError, page};
use crate::params::{AuditParams, IdParam, ListParams, MAX_SEARCH, Params, next_cursor};
use crate::problem::ApiError;
use crate::{Shared, schedules};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use errand_core::audit::AuditAction;
use errand_core::bulk::BulkAction;
use errand_core::event::EventFilter;
use errand_core::history::{Counter, ThroughputQuery};
use errand_core::store::{NODE_ALIVE_WINDOW, SCAN_LIMIT};
use errand_core::{Job, JobState};
use jiff::Timestamp;
use serde::Deserialize;
use std::fmt::Write;
use std::time::Duration;

type PageResult = Result<Response, PageError>;

/// A table: a header row of `columns` and the `rows` (already HTML), in a
/// box that scrolls sideways on a narrow screen; `empty` when no rows.
fn table(columns: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"muted\">{}</p>", esc(empty));
    }
    let head: String = columns
        .iter()
        .map(|c| format!("<th scope=\"col\">{c}</th>"))
        .collect();
    format!(
        "<div class=\"table-wrap\"><table><thead><tr>{head}</tr></thead><tbody>{}</tbody></table></div>",
        rows.concat()
    )
}

/// A count of `state` in `counts`, linked to the jobs page filtered by it
/// (and `extra` query parameters).
fn count_link(
    counts: &std::collections::BTreeMap<JobState, u64>,
    s: JobState,
    extra: &str,
) -> String {
    let n = counts.get(&s).copied().unwrap_or(0);
    if n == 0 {
        return "<span class=\"muted\">0</span>".into();
    }
    format!("<a href=\"/jobs?state={}{extra}\">{n}</a>", s.as_str())
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The stored throughput history of the last `span`, every kind and queue
/// summed, in steps of `step`, as chart buckets (steps without activity
/// are left out).
async fn history(
    app: &Shared,
    now: Timestamp,
    span: Duration,
    step: Duration,
) -> Result<Vec<Bucket>, PageError> {
    let query = ThroughputQuery {
        from: now.saturating_sub(span).unwrap_or(now),
        to: now,
        step,
        kind: None,
        queue: None,
    };
    let buckets = app.store.throughput(&query).await?;
    Ok(buckets
        .iter()
        .map(|b| {
            let (p50, p95) = b.wait_p50_p95();
            Bucket {
                at: b.start,
                completed: b.tally.counts.get(Counter::Completed),
                failed: b.tally.counts.get(Counter::Failed),
                retried: b.tally.counts.get(Counter::Retried),
                wait_p50: p50.unwrap_or_default(),
                wait_p95: p95.unwrap_or_default(),
            }
        })
        .collect())
}

/// `GET /`: counts by state, queues with depth and wait, nodes, breakers
/// and the throughput and wait charts; the `live` section refreshes itself.
pub(crate) async fn overview(State(app): State<Shared>, viewer: Viewer) -> PageResult {
    // The queues hold every job's count: summing them saves reading the
    // stored counts twice.
    let queues = app.store.queues().await?;
    let mut totals = std::collections::BTreeMap::<JobState, u64>::new();
    for q in queues.iter() {
        for (state, n) in &q.counts {
            *totals.entry(*state).or_default() += n;
        }
    }
    let nodes = app.store.nodes(NODE_ALIVE_WINDOW).await?;
    let now = app.store.clock().now();

    let mut body =
        String::from("<section id=\"live\" data-live data-poll aria-label=\"Live figures\">");
    body.push_str("<ul class=\"cards\">");
    for s in JobState::ALL {
        let n = totals.get(&s).copied().unwrap_or(0);
        let _ = write!(
            body,
            "<li class=\"card s-{s}\"><a href=\"/jobs?state={s}\"><span class=\"n\" data-state=\"{s}\">{n}</span> <span class=\"label\">{s}</span></a></li>",
            s = s.as_str()
        );
    }
    body.push_str("</ul>");

    let mut rows = Vec::new();
    for q in queues.iter() {
        let waiting = q.counts.get(&JobState::Available).copied().unwrap_or(0);
        let oldest = if waiting > 0 {
            app.store.oldest_available(&q.name).await?
        } else {
            None
        };
        rows.push(format!(
            "<tr><th scope=\"row\"><a href=\"/jobs?queue={qu}\">{name}</a></th><td>{waiting}</td><td>{run}</td><td>{wait}</td><td>{paused}</td></tr>",
            qu = url_part(&q.name),
            name = esc(&q.name),
            run = q.counts.get(&JobState::Running).copied().unwrap_or(0),
            wait = oldest.map(|t| age(now, t)).unwrap_or_else(|| "–".into()),
            paused = if q.paused { "<strong class=\"paused\">paused</strong>" } else { "no" },
        ));
    }
    body.push_str("<h2>Queues</h2>");
    body.push_str(&table(
        &["Queue", "Waiting", "Running", "Oldest waiting", "Paused"],
        &rows,
        "No queue has jobs yet.",
    ));

    let _ = write!(
        body,
        "<h2>Nodes</h2><p><a href=\"/nodes\">{} live node{}</a>{}</p>",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        if nodes.is_empty() {
            " <strong class=\"warn\">(none: no job runs)</strong>"
        } else {
            ""
        }
    );
    let mut breakers = Vec::new();
    for node in &nodes {
        for (kind, b) in &node.breakers {
            breakers.push(format!(
                "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
                esc(kind),
                esc(&node.name),
                b.state,
                age(now, b.since),
                esc(&b.last_error)
            ));
        }
    }
    body.push_str("<h2>Open breakers</h2>");
    body.push_str(&table(
        &["Kind", "Node", "State", "Open for", "Last error"],
        &breakers,
        "None: every kind's breaker is closed.",
    ));
    body.push_str("</section>");

    let hour = history(&app, now, HOUR, MINUTE).await?;
    let week = history(&app, now, 7 * 24 * HOUR, HOUR).await?;
    body.push_str("<h2>Throughput and wait</h2><div class=\"charts\">");
    body.push_str(&chart::throughput("Jobs per minute, last hour", &hour));
    body.push_str(&chart::wait("Wait (p50, p95), last hour", &hour));
    body.push_str(&chart::throughput("Jobs per hour, last 7 days", &week));
    body.push_str(&chart::wait("Wait (p50, p95), last 7 days", &week));
    body.push_str("</div>");
    Ok(page(layout("Overview", "/", &viewer, &body)))
}

/// `GET /jobs`: the `/v1/jobs` listing (same parameters, same query), with
/// a filter form, selectable rows and cursor pagination.
pub(crate) async fn jobs(
    State(app): State<Shared>,
    viewer: Viewer,
    Params(params): Params<ListParams>,
) -> PageResult {
    let filter = params.clone().filter()?;
    let (jobs, next) = app.list_page(&filter).await?;
    let now = app.store.clock().now();

    let mut body = String::from("<form class=\"filters\" method=\"get\" action=\"/jobs\">");
    let mut options = String::from("<option value=\"\">any</option>");
    for s in JobState::ALL {
        let selected = if filter.state == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, "<option{selected}>{}</option>", s.as_str());
    }
    let _ = write!(
        body,
        "<label>State <select name=\"state\">{options}</select></label>"
    );
    let mut kinds = String::from("<option value=\"\">any</option>");
    for kind in &app.known_kinds {
        let selected = if filter.kind.as_deref() == Some(kind.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(kinds, "<option{selected}>{}</option>", esc(kind));
    }
    let raw = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let _ = write!(
        body,
        "<label>Kind <select name=\"kind\">{kinds}</select></label>\
         <label>Queue <input name=\"queue\" value=\"{}\" size=\"10\"></label>\
         <label>Tag <input name=\"tag\" value=\"{}\" size=\"10\"></label>\
         <label>Created from (UTC) <input type=\"datetime-local\" name=\"created_after\" value=\"{}\"></label>\
         <label>Created before (UTC) <input type=\"datetime-local\" name=\"created_before\" value=\"{}\"></label>\
         <label>Text in payload or errors <input type=\"search\" name=\"text\" value=\"{}\" size=\"16\" maxlength=\"{MAX_SEARCH}\"></label>\
         <button type=\"submit\">Filter</button> <a href=\"/jobs\">Clear</a></form>\
         <form class=\"filters\" method=\"get\" action=\"/jobs/go\"><label>Job id \
         <input name=\"id\" inputmode=\"numeric\" size=\"8\" required></label><button type=\"submit\">Open</button></form>",
        raw(&params.queue),
        raw(&params.tag),
        filter.created_after.map(local).unwrap_or_default(),
        filter.created_before.map(local).unwrap_or_default(),
        raw(&params.text),
    );
    if filter.is_scanned() {
        let _ = write!(
            body,
            "<p class=\"muted\" data-scan-note>Tag, time and text filters searched the newest {SCAN_LIMIT} jobs \
             that match the other filters{}; “Older jobs” searches the next {SCAN_LIMIT}.</p>",
            if filter.before.is_some() {
                " below the cursor"
            } else {
                ""
            }
        );
    }

    // Bulk actions (POST /v1/jobs/bulk) on the selected rows or on every
    // job the filter matches (the filter without its page); the script
    // asks for confirmation, then shows the operation's progress.
    let mut whole = filter.clone();
    whole.before = None;
    // From the stored counts: exact for state, kind and queue; an upper
    // bound when tag, time or text filters narrow it further.
    let counts = app.store.list_counts(&whole).await?;
    let matching = if whole.state.is_some() || whole.kind.is_some() || whole.queue.is_some() {
        counts.matching
    } else {
        counts.total
    };
    let (bound, matching_text) = if filter.is_scanned() {
        (
            "up to ",
            format!("Up to {matching} jobs match (before the tag, time and text filters)."),
        )
    } else {
        ("", format!("{matching} jobs match."))
    };
    let _ = write!(body, "<p data-matching>{}</p>", esc(&matching_text));
    let mut choices = String::new();
    for action in BulkAction::ALL {
        let _ = write!(
            choices,
            "<option value=\"{}\">{}</option>",
            action.as_str(),
            action.as_str().replace('_', " ")
        );
    }
    let _ = write!(
        body,
        "<div class=\"bulk\" id=\"bulk\" role=\"region\" aria-label=\"Bulk actions\" data-filter=\"{}\" \
         data-count=\"{bound}{matching}\">\
         <span data-selected>0 selected</span> \
         <label>Action <select data-bulk-action>{choices}</select></label> \
         <button type=\"button\" data-bulk=\"selected\">Apply to selected</button> \
         <button type=\"button\" data-bulk=\"filter\">Apply to every job matching the filter</button> \
         <span data-bulk-progress role=\"status\" aria-live=\"polite\"></span></div>",
        esc(&serde_json::to_string(&whole).unwrap_or_default())
    );

    let mut rows = Vec::new();
    for job in &jobs {
        rows.push(format!(
            "<tr><td><input type=\"checkbox\" name=\"select\" value=\"{id}\" aria-label=\"Select job {id}\"></td>\
             <th scope=\"row\"><a href=\"/jobs/{id}\">{id}</a></th><td>{kind}</td><td>{queue}</td><td>{st}</td>\
             <td>{attempt}/{max}</td><td title=\"{created}\">{ago} ago</td><td>{tags}</td></tr>",
            id = job.id,
            kind = esc(&job.kind),
            queue = esc(&job.queue),
            st = state(job.state),
            attempt = job.attempt,
            max = job.max_attempts,
            created = job.created_at,
            ago = age(now, job.created_at),
            tags = esc(&job.tags.join(", ")),
        ));
    }
    body.push_str(&table(
        &[
            "<input type=\"checkbox\" data-select-all aria-label=\"Select all on this page\">",
            "Id",
            "Kind",
            "Queue",
            "State",
            "Attempt",
            "Created",
            "Tags",
        ],
        &rows,
        "No job matches.",
    ));
    if let Some(cursor) = next {
        let mut query = format!("cursor={cursor}");
        for (name, value) in [
            ("state", &params.state),
            ("kind", &params.kind),
            ("queue", &params.queue),
            ("tag", &params.tag),
            ("created_after", &params.created_after),
            ("created_before", &params.created_before),
            ("text", &params.text),
            ("limit", &params.limit),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(query, "&amp;{name}={}", url_part(v));
            }
        }
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/jobs?{query}\">Older jobs →</a></p>"
        );
    }
    Ok(page(layout("Jobs", "/jobs", &viewer, &body)))
}

/// `t` as a `datetime-local` input's value (UTC, to the second).
fn local(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The "job id" box of the jobs page.
#[derive(Deserialize)]
pub(crate) struct GoTo {
    id: Option<String>,
}

/// `GET /jobs/go?id=N`: to that job's page (a bad id is answered 400).
pub(crate) async fn go_to_job(Query(q): Query<GoTo>) -> Result<Response, PageError> {
    let raw = q.id.unwrap_or_default();
    match raw.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(Redirect::to(&format!("/jobs/{id}")).into_response()),
        _ => Err(ApiError::param(
            "id",
            format!("{raw:?} is not a job id (a positive integer)"),
        )
        .into()),
    }
}

/// `GET /jobs/{id}`: everything about one job, and its actions.
pub(crate) async fn job(
    State(app): State<Shared>,
    viewer: Viewer,
    IdParam(id): IdParam,
) -> PageResult {
    let job = crate::wait::fetch(&*app.store, id).await?;
    let now = app.store.clock().now();
    let body = format!(
        "<section id=\"job\" data-live aria-label=\"Job state\">{}</section>{}",
        job_state(&job, now),
        job_data(&job)
    );
    Ok(page(layout(&format!("Job {id}"), "/jobs", &viewer, &body)))
}

/// The part of a job's page that changes: state, attempts, timeline, actions.
fn job_state(job: &Job, now: jiff::Timestamp) -> String {
    let mut out = format!(
        "<dl class=\"facts\"><dt>State</dt><dd data-job-state>{}</dd><dt>Kind</dt><dd><a href=\"/jobs?kind={}\">{}</a></dd>\
         <dt>Queue</dt><dd><a href=\"/jobs?queue={}\">{}</a></dd><dt>Attempt</dt><dd>{} of {}</dd>\
         <dt>Priority</dt><dd>{}</dd><dt>Worker</dt><dd>{}</dd><dt>Tags</dt><dd>{}</dd>",
        state(job.state),
        url_part(&job.kind),
        esc(&job.kind),
        url_part(&job.queue),
        esc(&job.queue),
        job.attempt,
        job.max_attempts,
        job.priority,
        esc(job.worker.as_deref().unwrap_or("–")),
        esc(&job.tags.join(", ")),
    );
    if let Some(batch) = job.batch_id {
        let _ = write!(
            out,
            "<dt>Batch</dt><dd><a href=\"/batches?id={batch}\">{batch}</a></dd>"
        );
    }
    if let (Some(progress), Some(at)) = (&job.progress, job.progress_at) {
        let _ = write!(
            out,
            "<dt>Progress</dt><dd><code>{}</code> ({})</dd>",
            esc(&progress.to_string()),
            age(now, at)
        );
    }
    out.push_str("</dl><h2>Timeline</h2><ol class=\"timeline\">");
    let _ = write!(out, "<li>Created {}</li>", time(job.created_at));
    let _ = write!(
        out,
        "<li>Due {} ({})</li>",
        time(job.run_at),
        age(now, job.run_at)
    );
    if let Some(t) = job.started_at {
        let _ = write!(out, "<li>Started {}</li>", time(t));
    }
    if let Some(t) = job.finished_at {
        let took = job
            .started_at
            .map(|s| {
                format!(
                    " after {}",
                    short_duration(t.duration_since(s).unsigned_abs())
                )
            })
            .unwrap_or_default();
        let _ = write!(out, "<li>Finished {}{took}</li>", time(t));
    }
    out.push_str("</ol><div class=\"actions\">");
    if !job.state.is_terminal() {
        out.push_str(&action(
            &format!("/v1/jobs/{}/cancel", job.id),
            "Cancel",
            "danger",
            "job-action",
        ));
    }
    if matches!(job.state, JobState::Failed | JobState::Cancelled) {
        out.push_str(&action(
            &format!("/v1/jobs/{}/retry", job.id),
            "Retry",
            "primary",
            "job-action",
        ));
    }
    if BulkAction::RunNow.applies_to(job.state) {
        // A bulk run-now of this one job (audited as such).
        let body = serde_json::json!({ "action": "run_now", "ids": [job.id] });
        out.push_str(&action_with_body(
            "/v1/jobs/bulk",
            &body.to_string(),
            "Run now",
            "primary",
            "job-action",
        ));
    }
    out.push_str("</div>");
    if !job.errors.is_empty() {
        out.push_str("<h2>Errors</h2>");
        let rows: Vec<String> = job
            .errors
            .iter()
            .map(|e| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td><pre class=\"error-text\">{}</pre></td></tr>",
                    e.attempt,
                    time(e.at),
                    esc(&e.error)
                )
            })
            .collect();
        out.push_str(&table(&["Attempt", "At", "Error"], &rows, ""));
    }
    out
}

/// The payload and result of a job.
fn job_data(job: &Job) -> String {
    let mut out = String::from("<h2>Payload</h2>");
    out.push_str(&json("payload", &job.payload));
    if let Some(result) = &job.result {
        out.push_str("<h2>Result</h2>");
        out.push_str(&json("result", result));
    }
    out
}

/// `GET /queues`: each queue's jobs by state, its wait and pause button.
pub(crate) async fn queues(State(app): State<Shared>, viewer: Viewer) -> PageResult {
    let queues = app.store.queues().await?;
    let now = app.store.clock().now();
    let mut rows = Vec::new();
    for q in queues.iter() {
        let extra = format!("&amp;queue={}", url_part(&q.name));
        let counts: String = JobState::ALL
            .iter()
            .map(|s| format!("<td>{}</td>", count_link(&q.counts, *s, &extra)))
            .collect();
        let waiting = q.counts.get(&JobState::Available).copied().unwrap_or(0);
        let oldest = if waiting > 0 {
            app.store.oldest_available(&q.name).await?
        } else {
            None
        };
        let key = format!("queue-{}", url_part(&q.name));
        let (status, button) = if q.paused {
            (
                "<strong class=\"paused\" data-queue-state>paused</strong>",
                action(
                    &format!("/v1/queues/{}/resume", url_part(&q.name)),
                    &format!("Resume {}", q.name),
                    "primary",
                    &key,
                ),
            )
        } else {
            (
                "<span data-queue-state>running</span>",
                action(
                    &format!("/v1/queues/{}/pause", url_part(&q.name)),
                    &format!("Pause {}", q.name),
                    "",
                    &key,
                ),
            )
        };
        rows.push(format!(
            "<tr data-queue=\"{}\"><th scope=\"row\">{}</th><td>{status}</td><td>{button}</td><td>{}</td>{counts}</tr>",
            esc(&q.name),
            esc(&q.name),
            oldest.map(|t| age(now, t)).unwrap_or_else(|| "–".into()),
        ));
    }
    // Status and action first: on a phone they stay in view.
    let mut columns = vec!["Queue", "Status", "Action", "Oldest waiting"];
    columns.extend(JobState::ALL.iter().map(|s| s.as_str()));
    let body = format!(
        "<section id=\"queues\" data-live aria-label=\"Queues\">{}</section>",
        table(&columns, &rows, "No queue has jobs or a pause record yet.")
    );
    Ok(page(layout("Queues", "/queues", &viewer, &body)))
}

/// `GET /kinds`: each configured kind's policy and limits, with its jobs
/// running and waiting now.
pub(crate) async fn kinds(State(app): State<Shared>, viewer: Viewer) -> PageResult {
    let stats = app.store.stats().await?;
    let mut rows = Vec::new();
    for (name, policy) in app.config.catalog.kinds() {
        let running = stats.of_kind(name, JobState::Running);
        let max = policy
            .limit
            .max_running
            .map(|m| format!("{running} of {m}"))
            .unwrap_or_else(|| format!("{running} (no limit)"));
        rows.push(format!(
            "<tr><th scope=\"row\"><a href=\"/jobs?kind={}\">{}</a></th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{} → {} (jitter {})</td><td>{}</td><td>{max}</td><td>{}</td><td>{}</td></tr>",
            url_part(name),
            esc(name),
            esc(&policy.queue),
            policy.priority,
            policy.max_attempts,
            policy.timeout.map(short_duration).unwrap_or_else(|| "none".into()),
            short_duration(policy.backoff.base),
            short_duration(policy.backoff.max),
            policy.backoff.jitter,
            policy.unique_for.map(short_duration).unwrap_or_else(|| "–".into()),
            policy.limit.rate.map(|r| r.to_string()).unwrap_or_else(|| "–".into()),
            stats.of_kind(name, JobState::Available),
        ));
    }
    let body = table(
        &[
            "Kind",
            "Queue",
            "Priority",
            "Attempts",
            "Timeout",
            "Backoff",
            "Unique for",
            "Running",
            "Rate",
            "Waiting",
        ],
        &rows,
        "No kind is configured.",
    );
    Ok(page(layout("Kinds", "/kinds", &viewer, &body)))
}

/// `GET /nodes`: the live nodes (the `/v1/nodes` answer).
pub(crate) async fn nodes(State(app): State<Shared>, viewer: Viewer) -> PageResult {
    let nodes = app.store.nodes(NODE_ALIVE_WINDOW).await?;
    let now = app.store.clock().now();
    let rows: Vec<String> = nodes
        .iter()
        .map(|n| {
            let queues: Vec<String> = n.queues.iter().map(|(q, c)| format!("{q} ×{c}")).collect();
            let breakers: Vec<String> = n.breakers.iter().map(|(k, b)| format!("{k} ({:?})", b.state)).collect();
            // A remote worker: its library and process, and a drain button.
            let (worker, drain) = match &n.remote {
                None => ("errand".to_string(), String::new()),
                Some(r) => {
                    let mut what = format!("remote: {}", r.library.as_deref().unwrap_or("?"));
                    for part in [r.version.clone(), r.host.clone(), r.pid.map(|p| format!("pid {p}"))]
                        .into_iter()
                        .flatten()
                    {
                        what.push(' ');
                        what.push_str(&part);
                    }
                    let drain = if n.draining {
                        "<strong class=\"paused\">draining</strong>".to_string()
                    } else {
                        action(
                            &format!("/v1/nodes/{}/drain", url_part(&n.name)),
                            &format!("Drain {}", n.name),
                            "",
                            &format!("node-{}", url_part(&n.name)),
                        )
                    };
                    (what, drain)
                }
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{drain}</td></tr>",
                esc(&n.name),
                esc(&worker),
                time(n.started_at),
                age(now, n.last_seen),
                esc(&queues.join(", ")),
                n.running,
                esc(n.http.as_deref().unwrap_or("–")),
                esc(&breakers.join(", ")),
            )
        })
        .collect();
    let mut body = table(
        &[
            "Node",
            "Worker",
            "Started",
            "Last heartbeat",
            "Queues",
            "Running",
            "HTTP",
            "Breakers not closed",
            "",
        ],
        &rows,
        "No live node: nothing claims jobs.",
    );
    // Pool processes are this node's own (each node serves its own page).
    if let Some(node) = &app.config.node_metrics {
        let processes: Vec<String> = node
            .pool_processes()
            .iter()
            .map(|p| {
                format!(
                    "<tr><th scope=\"row\">{}</th><td data-pid>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&p.pool),
                    p.pid,
                    p.jobs,
                    p.rss_bytes.map_or("–".to_string(), mebibytes),
                    short_duration(p.age),
                )
            })
            .collect();
        body.push_str("<h2>Pool processes on this node</h2>");
        body.push_str(&table(
            &["Pool", "Pid", "Jobs done", "Memory (RSS)", "Age"],
            &processes,
            "This node runs no pool.",
        ));
    }
    Ok(page(layout("Nodes", "/nodes", &viewer, &body)))
}

/// `GET /schedules`: the `/v1/schedules` answer.
pub(crate) async fn schedules(State(app): State<Shared>, viewer: Viewer) -> PageResult {
    let views = schedules::views(&app).await?;
    let now = app.store.clock().now();
    let rows: Vec<String> = views
        .iter()
        .map(|s| {
            format!(
                "<tr><th scope=\"row\">{}</th><td><code>{}</code> {}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                esc(&s.name),
                esc(&s.cron),
                esc(&s.timezone),
                esc(&s.kind),
                esc(&s.queue),
                time_or_dash(s.next_run),
                s.next_run.map(|t| format!(" ({})", age(now, t))).unwrap_or_default(),
                time_or_dash(s.last_tick),
            )
        })
        .collect();
    let body = table(
        &["Schedule", "Cron", "Kind", "Queue", "Next run", "Last tick"],
        &rows,
        "No schedule is configured.",
    );
    Ok(page(layout("Schedules", "/schedules", &viewer, &body)))
}

/// `GET /events` parameters: a name filter and the cursor.
#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    name: Option<String>,
    cursor: Option<String>,
}

/// How many events a page shows.
const EVENTS_PAGE: u32 = 50;

/// `GET /events`: recent events, newest first, with their listeners' jobs.
pub(crate) async fn events(
    State(app): State<Shared>,
    viewer: Viewer,
    Query(q): Query<EventsQuery>,
) -> PageResult {
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| ApiError::param("cursor", format!("{c:?} is not an id")))?,
        ),
    };
    let name = q.name.filter(|n| !n.is_empty());
    let filter = EventFilter {
        name: name.clone(),
        before,
        limit: EVENTS_PAGE,
    };
    let events = app.store.events(&filter).await?;
    let next = next_cursor(&events, EVENTS_PAGE, |e| e.id);
    let mut rows = Vec::new();
    for event in &events {
        let mut jobs = Vec::new();
        for id in &event.jobs {
            let st = match app.store.get(*id).await? {
                Some(job) => state(job.state),
                None => "<span class=\"muted\">pruned</span>".into(),
            };
            jobs.push(format!("<a href=\"/jobs/{id}\">{id}</a> {st}"));
        }
        rows.push(format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            event.id,
            esc(&event.name),
            time(event.published_at),
            esc(event.unique_key.as_deref().unwrap_or("–")),
            if jobs.is_empty() {
                "none".into()
            } else {
                jobs.join("<br>")
            },
        ));
    }
    let mut names = String::from("<option value=\"\">any</option>");
    for n in &app.known_events {
        let selected = if name.as_deref() == Some(n.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(names, "<option{selected}>{}</option>", esc(n));
    }
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/events\"><label>Event <select name=\"name\">{names}</select></label>\
         <button type=\"submit\">Filter</button></form>{}",
        table(
            &["Id", "Name", "Published", "Unique key", "Listener jobs"],
            &rows,
            "No event matches."
        )
    );
    if let Some(cursor) = next {
        let extra = name
            .map(|n| format!("&amp;name={}", url_part(&n)))
            .unwrap_or_default();
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/events?cursor={cursor}{extra}\">Older events →</a></p>"
        );
    }
    Ok(page(layout("Events", "/events", &viewer, &body)))
}

/// `GET /batches` parameters.
#[derive(Deserialize)]
pub(crate) struct BatchQuery {
    id: Option<String>,
}

/// Most jobs of a batch the page lists.
const BATCH_JOBS_SHOWN: usize = 200;

/// `GET /batches[?id=N]`: one batch's progress and jobs (the store keeps no
/// listing of batches; a batch is found by its id, as in the API).
pub(crate) async fn batches(
    State(app): State<Shared>,
    viewer: Viewer,
    Query(q): Query<BatchQuery>,
) -> PageResult {
    let raw = q.id.unwrap_or_default();
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/batches\"><label>Batch id \
         <input name=\"id\" inputmode=\"numeric\" size=\"10\" value=\"{}\"></label><button type=\"submit\">Show</button></form>",
        esc(&raw)
    );
    if raw.trim().is_empty() {
        return Ok(page(layout("Batches", "/batches", &viewer, &body)));
    }
    let id = raw
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::param(
                "id",
                format!("{raw:?} is not a batch id (a positive integer)"),
            )
        })?;
    let batch = app
        .store
        .batch(id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("batch {id} not found")))?;
    let done: u64 = batch
        .counts
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let _ = write!(
        body,
        "<h2>Batch {id}</h2><p><progress max=\"{total}\" value=\"{done}\">{done} of {total}</progress> {done} of {total} ended; \
         created {}; {}</p>",
        time(batch.created_at),
        match batch.finished_at {
            Some(t) => format!("finished {}", time(t)),
            None => "not finished".into(),
        },
        total = batch.total,
    );
    let jobs = app.store.batch_jobs(id).await?;
    let rows: Vec<String> = jobs
        .iter()
        .take(BATCH_JOBS_SHOWN)
        .map(|j| {
            format!(
                "<tr><th scope=\"row\"><a href=\"/jobs/{id}\">{id}</a></th><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&j.kind),
                state(j.state),
                esc(j.errors.last().map(|e| e.error.as_str()).unwrap_or("")),
                id = j.id,
            )
        })
        .collect();
    body.push_str(&table(
        &["Job", "Kind", "State", "Latest error"],
        &rows,
        "No jobs.",
    ));
    if jobs.len() > BATCH_JOBS_SHOWN {
        let _ = write!(
            body,
            "<p class=\"muted\">The first {BATCH_JOBS_SHOWN} of {} jobs.</p>",
            jobs.len()
        );
    }
    Ok(page(layout("Batches", "/batches", &viewer, &body)))
}

/// `GET /login`: a form that trades a token for a session (`POST
/// /v1/session`, by the script), then goes to the overview.
pub(crate) async fn login(viewer: Viewer) -> Response {
    let body = "<form id=\"login\" class=\"login\" method=\"post\" action=\"/v1/session\">\
        <label for=\"token\">API token</label>\
        <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required placeholder=\"errand_…\">\
        <button type=\"submit\" class=\"primary\">Log in</button>\
        <p class=\"muted\">Make one with <code>errand tokens create --name NAME --scope read</code> \
        (<code>admin</code> to pause, cancel and retry).</p></form>";
    page(layout("Log in", "", &viewer, body))
}

/// `GET /audit`: the audit log, newest first, filtered by actor and action
/// (admin only, as `GET /v1/audit`: it names every token and what it did).
pub(crate) async fn audit(
    State(app): State<Shared>,
    viewer: Viewer,
    Params(params): Params<AuditParams>,
) -> PageResult {
    let filter = params.clone().filter()?;
    let entries = app.store.audit(&filter).await?;
    let now = app.store.clock().now();
    let raw = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let mut actions = String::from("<option value=\"\">any</option>");
    for a in AuditAction::ALL {
        let selected = if filter.action == Some(a) {
            " selected"
        } else {
            ""
        };
        let _ = write!(actions, "<option{selected}>{a}</option>");
    }
    let mut body = format!(
        "<form class=\"filters\" method=\"get\" action=\"/audit\">\
         <label>Actor <input name=\"actor\" value=\"{}\" size=\"12\"></label>\
         <label>Action <select name=\"action\">{actions}</select></label>\
         <button type=\"submit\">Filter</button> <a href=\"/audit\">Clear</a></form>",
        raw(&params.actor)
    );
    let rows: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "<tr><td title=\"{at}\">{ago} ago</td><td>{actor}</td><td>{action}</td>\
                 <td>{target}</td><td><code>{change}</code></td></tr>",
                at = e.at,
                ago = age(now, e.at),
                actor = esc(&e.actor),
                action = e.action,
                target = esc(&e.target),
                change = esc(&e.change.to_string()),
            )
        })
        .collect();
    body.push_str(&table(
        &["Time", "Actor", "Action", "Target", "Change"],
        &rows,
        "No admin action recorded.",
    ));
    if let Some(cursor) = next_cursor(&entries, filter.limit, |e| e.id) {
        let mut query = format!("cursor={cursor}");
        for (name, value) in [("actor", &params.actor), ("action", &params.action)] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let _ = write!(query, "&{name}={}", url_part(v));
            }
        }
        let _ = write!(
            body,
            "<p><a class=\"next\" href=\"/audit?{query}\">Older entries</a></p>"
        );
    }
    Ok(page(layout("Audit log", "/audit", &viewer, &body)))
}

/// A byte count in MiB with one decimal.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
