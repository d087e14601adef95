//! Client commands (`enqueue`, `jobs`, `stats`, `queues`, …): talk to a running server
//! over HTTP and print what it says.

use crate::cli::{ClientArgs, EnqueueArgs, JobsCommand, ListArgs, NodesCommand, QueuesCommand};
use crate::output;
use anyhow::{Context, Result, anyhow, bail};
use errand_client::Client;
use errand_core::store::ListFilter;
use errand_core::{EnqueueRequest, JobState};
use serde::Serialize;
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

/// A client for the server `args` name.
pub(crate) fn connect(args: &ClientArgs) -> Result<Client> {
    let mut builder = Client::builder(&args.server);
    if let Some(ca) = &args.ca_file {
        builder = builder.ca_file(ca);
    }
    let client = builder.build()?;
    Ok(match &args.token {
        Some(token) => client.with_token(token)?,
        None => client,
    })
}

/// Prints `value` as JSON or with `human`.
pub(crate) fn print<T: Serialize>(
    args: &ClientArgs,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<()> {
    let text = if args.json {
        serde_json::to_string_pretty(value)? + "\n"
    } else {
        human(value)
    };
    Ok(crate::logging::print(&text)?)
}

/// Reads a JSON argument (`what` names it in errors): JSON text, `@file`,
/// or `-` for stdin; JSON `null` when absent.
pub(crate) fn read_json(what: &str, arg: Option<&str>) -> Result<serde_json::Value> {
    let Some(arg) = arg else {
        return Ok(serde_json::Value::Null);
    };
    let text = match arg.strip_prefix('@') {
        Some(path) => read_input(path).with_context(|| format!("cannot read the {what}"))?,
        None if arg == "-" => read_input(arg).with_context(|| format!("cannot read the {what}"))?,
        None => arg.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| anyhow!("{what} is not valid JSON: {e}"))
}

/// The text of file `path`, or of standard input for `-`.
pub(crate) fn read_input(path: &str) -> Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))
}

/// A duration flag's value, e.g. `--delay 30s`, when given.
fn duration_flag(flag: &str, value: Option<&str>) -> Result<Option<Duration>> {
    value
        .map(errand_core::duration::parse)
        .transpose()
        .with_context(|| flag.to_string())
}

/// `errand enqueue`
pub async fn enqueue(args: EnqueueArgs) -> Result<ExitCode> {
    args.old_timeout.refuse("--job-timeout")?;
    let delay = duration_flag("--delay", args.delay.as_deref())?;
    let run_at = args
        .at
        .as_deref()
        .map(|t| errand_core::job::parse_run_at(t).map_err(|e| anyhow!("--at: {e}")))
        .transpose()?;
    let timeout = duration_flag("--job-timeout", args.job_timeout.as_deref())?;
    let unique_for = duration_flag("--unique-for", args.unique_for.as_deref())?;
    let wait_for = errand_core::duration::parse(&args.wait_timeout).context("--wait-timeout")?;
    let request = EnqueueRequest {
        kind: args.kind,
        payload: read_json("payload", args.payload.as_deref())?,
        queue: args.queue,
        priority: args.priority,
        run_at,
        delay,
        max_attempts: args.max_attempts,
        timeout,
        unique_key: args.unique_key,
        unique_for,
        tags: args.tags,
    };
    let client = connect(&args.client)?;
    let enqueued = client.enqueue(request).await?;
    if !args.wait {
        print(&args.client, &enqueued, |e| {
            let dup = if e.duplicate {
                " (duplicate: an earlier job has this unique key)"
            } else {
                ""
            };
            format!(
                "enqueued job {} ({}) in queue {}: {}{dup}\n",
                e.job.id, e.job.kind, e.job.queue, e.job.state
            )
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let job = client.wait(enqueued.job.id, wait_for).await?;
    print(&args.client, &job, output::job_details)?;
    match job.state {
        JobState::Completed => Ok(ExitCode::SUCCESS),
        state if state.is_terminal() => {
            let why = job
                .errors
                .last()
                .map(|e| e.error.as_str())
                .unwrap_or("no error recorded");
            bail!("job {} {state}: {}", job.id, why.trim_end())
        }
        state => bail!(
            "job {} still {state} after waiting {}",
            job.id,
            args.wait_timeout
        ),
    }
}

/// `errand jobs …`
pub async fn jobs(cmd: JobsCommand) -> Result<ExitCode> {
    let (args, action) = match cmd {
        JobsCommand::List(args) => {
            list(args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        JobsCommand::Show(args) => (args, "show"),
        JobsCommand::Cancel(args) => (args, "cancel"),
        JobsCommand::Retry(args) => (args, "retry"),
        JobsCommand::Bulk(cmd) => return crate::bulk_cmd::bulk(cmd).await,
    };
    let client = connect(&args.client)?;
    let job = match action {
        "cancel" => client.cancel(args.id).await?,
        "retry" => client.retry(args.id).await?,
        _ => client.get(args.id).await?,
    };
    print(&args.client, &job, output::job_details)?;
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> Result<()> {
    let state = args
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| anyhow!("--state: {e}"))?;
    let time = |flag: &str, value: Option<String>| {
        value
            .map(|t| errand_core::job::parse_run_at(&t).map_err(|e| anyhow!("{flag}: {e}")))
            .transpose()
    };
    let filter = ListFilter {
        state,
        kind: args.kind,
        queue: args.queue,
        before: args.page.cursor,
        limit: args.page.limit,
        tag: args.tag,
        created_after: time("--created-after", args.created_after)?,
        created_before: time("--created-before", args.created_before)?,
        text: args.text,
    };
    let page = connect(&args.client)?.list(&filter).await?;
    print(&args.client, &page, |p| {
        let mut out = output::jobs_table(&p.jobs);
        if let Some(cursor) = p.next_cursor {
            out.push_str(&format!("more: --cursor {cursor}\n"));
        }
        out
    })
}

/// `errand stats`
pub async fn stats(args: ClientArgs) -> Result<ExitCode> {
    let stats = connect(&args)?.stats().await?;
    print(&args, &stats, output::stats_table)?;
    Ok(ExitCode::SUCCESS)
}

/// `errand nodes [list|drain NAME]`
pub async fn nodes(cmd: NodesCommand) -> Result<ExitCode> {
    match cmd {
        NodesCommand::List(args) => {
            let nodes = connect(&args)?.nodes().await?;
            print(&args, &nodes, |n| output::nodes_table(n))?;
        }
        NodesCommand::Drain(args) => {
            connect(&args.client)?.drain_node(&args.name).await?;
            crate::logging::print(&format!(
                "asked {} to drain: it stops claiming, finishes its jobs and exits\n",
                args.name
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `errand schedules`
pub async fn schedules(args: ClientArgs) -> Result<ExitCode> {
    let schedules = connect(&args)?.schedules().await?;
    print(&args, &schedules, |s| output::schedules_table(s))?;
    Ok(ExitCode::SUCCESS)
}

/// `errand queues …`
pub async fn queues(cmd: QueuesCommand) -> Result<ExitCode> {
    let (args, paused) = match cmd {
        QueuesCommand::List(args) => {
            let queues = connect(&args)?.queues().await?;
            print(&args, &queues, |q| output::queues_table(q))?;
            return Ok(ExitCode::SUCCESS);
        }
        QueuesCommand::Pause(args) => (args, true),
        QueuesCommand::Resume(args) => (args, false),
    };
    let client = connect(&args.client)?;
    let queue = if paused {
        client.pause_queue(&args.name).await?
    } else {
        client.resume_queue(&args.name).await?
    };
    print(&args.client, &queue, |q| {
        let now = if q.paused { "paused" } else { "resumed" };
        format!("queue {} {now}\n", q.name)
    })?;
    Ok(ExitCode::SUCCESS)
}
