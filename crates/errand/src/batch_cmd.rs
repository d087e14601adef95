//! `errand batch`: enqueue JSON lines of jobs as one batch through the
//! server and, with `--wait`, print every job's result in submission order.

use crate::cli::BatchArgs;
use crate::client_cmd::{connect, print, read_input, read_json};
use crate::output;
use anyhow::{Context, Result, anyhow, bail};
use errand_client::NewBatchRequest;
use errand_core::{EnqueueRequest, JobState};
use std::process::ExitCode;

/// `errand batch`
pub async fn batch(args: BatchArgs) -> Result<ExitCode> {
    args.old_timeout.refuse("each line's \"timeout\"")?;
    let wait_for = errand_core::duration::parse(&args.wait_timeout).context("--wait-timeout")?;
    let jobs = parse_jobs(&read_input(&args.file)?).with_context(|| source_name(&args.file))?;
    let on_complete = match args.on_complete {
        Some(kind) => Some(EnqueueRequest {
            kind,
            payload: read_json("--on-complete-payload", args.on_complete_payload.as_deref())?,
            ..EnqueueRequest::default()
        }),
        None => None,
    };
    let handle = connect(&args.client)?
        .enqueue_batch(&NewBatchRequest { jobs, on_complete })
        .await?;
    if !args.wait {
        print(&args.client, &handle.batch, |b| {
            format!("batch {} enqueued: {} jobs\n", b.id, b.total)
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let results = handle.wait(wait_for).await?;
    print(&args.client, &results, output::batch_results)?;
    let batch = &results.batch;
    if !batch.is_finished() {
        let ended: u64 = batch
            .counts
            .iter()
            .filter(|(s, _)| s.is_terminal())
            .map(|(_, n)| n)
            .sum();
        bail!(
            "batch {} not finished after {}: {ended} of {} jobs ended",
            batch.id,
            args.wait_timeout,
            batch.total
        );
    }
    let completed = batch.counts.get(&JobState::Completed).copied().unwrap_or(0);
    if completed < batch.total {
        bail!(
            "batch {}: {} of {} jobs did not complete",
            batch.id,
            batch.total - completed,
            batch.total
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How errors name the input.
fn source_name(file: &str) -> String {
    if file == "-" {
        "standard input".to_string()
    } else {
        file.to_string()
    }
}

/// One enqueue request per non-blank line.
fn parse_jobs(text: &str) -> Result<Vec<EnqueueRequest>> {
    let jobs = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            parse_job(line)
                .map_err(|e| anyhow!("line {}: not a job (an enqueue request): {e}", i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    if jobs.is_empty() {
        bail!(
            "no jobs: write one JSON object per line, e.g. {{\"kind\": \"resize\", \"payload\": {{\"id\": 1}}}}"
        );
    }
    Ok(jobs)
}

/// One JSON line as a request; errors start with the path of the field at
/// fault ("delay: ..."), which serde_json's own message does not name.
fn parse_job(line: &str) -> Result<EnqueueRequest, String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let job =
        serde_path_to_error::deserialize(&mut de).map_err(|e| match e.path().to_string() {
            path if path == "." => e.into_inner().to_string(),
            path => format!("{path}: {}", e.into_inner()),
        })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_read_one_a_line_skipping_blank_lines() {
        let jobs =
            parse_jobs("{\"kind\": \"a\", \"payload\": 1}\n\n  \n{\"kind\": \"b\"}\n").unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (jobs[0].kind.as_str(), &jobs[0].payload),
            ("a", &serde_json::json!(1))
        );
        assert_eq!(jobs[1].kind, "b");
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_jobs("{\"kind\": \"a\"}\n\n{\"kind\": \"b\", \"colour\": 1}\n").unwrap_err();
        assert!(e.to_string().starts_with("line 3: not a job"), "{e}");
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse_jobs("{\"kind\": \"b\", \"delay\": 1e20}").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 1: not a job (an enqueue request): delay: invalid duration 1e20: must be at most"),
            "{e}"
        );
        assert!(parse_jobs("{\"kind\": \"b\"} x").is_err());
        let e = parse_jobs("\n\n").unwrap_err();
        assert!(e.to_string().contains("no jobs"), "{e}");
    }
}
