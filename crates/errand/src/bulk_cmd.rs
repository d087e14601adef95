//! `errand jobs bulk ACTION`: start a bulk action through the server on the
//! jobs a filter matches (or `--id` ones) and, with `--wait`, follow its
//! progress until it has gone through every job.

use crate::cli::{BulkArgs, BulkCommand};
use crate::client_cmd::{connect, print};
use anyhow::{Result, anyhow, bail};
use errand_core::JobState;
use errand_core::bulk::{BulkAction, BulkOperation, BulkRequest, BulkState};
use errand_core::store::ListFilter;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--wait` reads the operation's progress.
const POLL: Duration = Duration::from_millis(500);

/// `errand jobs bulk …`
pub async fn bulk(cmd: BulkCommand) -> Result<ExitCode> {
    let (action, args) = match cmd {
        BulkCommand::Retry(args) => (BulkAction::Retry, args),
        BulkCommand::Cancel(args) => (BulkAction::Cancel, args),
        BulkCommand::Delete(args) => (BulkAction::Delete, args),
        BulkCommand::RunNow(args) => (BulkAction::RunNow, args),
    };
    let request = request(action, &args)?;
    let client = connect(&args.client)?;
    let mut op = client.start_bulk(&request).await?;
    if args.wait {
        while op.state == BulkState::Running {
            tokio::time::sleep(POLL).await;
            op = client.bulk(op.id).await?;
            if !args.client.json {
                crate::logging::print_error(&progress(&op));
            }
        }
    }
    print(&args.client, &op, |op| format!("{}\n", progress(op)))?;
    if op.state == BulkState::Failed {
        bail!(
            "bulk operation {} failed: {}",
            op.id,
            op.error.as_deref().unwrap_or("no reason recorded")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The request the flags ask for: `--id`s, or a filter (`--all` when empty).
fn request(action: BulkAction, args: &BulkArgs) -> Result<BulkRequest> {
    if !args.ids.is_empty() {
        return Ok(BulkRequest {
            action,
            filter: None,
            ids: Some(args.ids.clone()),
        });
    }
    let state = args
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| anyhow!("--state: {e}"))?;
    let filter = ListFilter {
        state,
        kind: args.kind.clone(),
        queue: args.queue.clone(),
        ..ListFilter::default()
    };
    if filter == ListFilter::default() && !args.all {
        bail!(
            "say which jobs: --state, --kind, --queue or --id; or --all for every job the action applies to"
        );
    }
    Ok(BulkRequest {
        action,
        filter: Some(filter),
        ids: None,
    })
}

/// One line on where an operation stands.
fn progress(op: &BulkOperation) -> String {
    format!(
        "bulk {} {} ({}): {}, {} jobs matched, {} changed",
        op.action,
        op.id,
        op.target.summary(),
        op.state.as_str(),
        op.matched,
        op.changed
    )
}
