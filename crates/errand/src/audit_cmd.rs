//! `errand audit`: the audit log, read through the API like the other
//! client commands, so it works from any machine that reaches the server
//! and needs an `admin` token when auth is on (the log names every token
//! and what it did).

use crate::cli::AuditArgs;
use crate::client_cmd::{connect, print};
use crate::output::table;
use anyhow::{Result, anyhow};
use errand_client::AuditPage;
use errand_core::audit::{AuditAction, AuditFilter};
use std::process::ExitCode;

/// Runs `errand audit`: one page, newest first.
pub async fn audit(args: AuditArgs) -> Result<ExitCode> {
    let action = args
        .action
        .as_deref()
        .map(str::parse::<AuditAction>)
        .transpose()
        .map_err(|e| anyhow!("--{e}"))?;
    let since = args
        .since
        .as_deref()
        .map(|s| {
            s.parse::<jiff::Timestamp>()
                .map_err(|e| anyhow!("--since: {s:?} is not an RFC 3339 time: {e}"))
        })
        .transpose()?;
    let filter = AuditFilter {
        actor: args.actor,
        action,
        since,
        before: args.page.cursor,
        limit: args.page.limit,
    };
    let page = connect(&args.client)?.audit(&filter).await?;
    print(&args.client, &page, audit_table)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per entry, and the cursor of the next page when there is one.
fn audit_table(page: &AuditPage) -> String {
    let rows: Vec<Vec<String>> = page
        .entries
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
                e.actor.clone(),
                e.action.to_string(),
                e.target.clone(),
                e.change.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &["ID", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "CHANGE"],
        &rows,
    );
    if let Some(cursor) = page.next_cursor {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}
