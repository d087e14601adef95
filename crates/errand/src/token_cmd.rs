//! `errand tokens create|list|revoke`: API tokens, managed on the database
//! itself (like `errand migrate`), so an operator can make the first token
//! before any exists. A secret is printed once and never stored. Creating
//! and revoking are audited with the actor `local CLI`.

use crate::cli::{NodeArgs, TokenCreateArgs, TokenListArgs, TokenRevokeArgs, TokensCommand};
use crate::logging::print;
use crate::node::{load_plan, open_store};
use crate::output::table;
use crate::plan::Database;
use anyhow::{Context, Result, anyhow, bail};
use errand_core::Store;
use errand_core::audit::AuditActor;
use errand_core::auth::{NewToken, Scopes, Secret, Token};
use errand_sqlite::SqliteStore;
use serde::Serialize;
use std::process::ExitCode;
use std::sync::Arc;

/// Runs one `errand tokens` subcommand.
pub async fn tokens(cmd: TokensCommand) -> Result<ExitCode> {
    match cmd {
        TokensCommand::Create(args) => create(args).await,
        TokensCommand::List(args) => list(args).await,
        TokensCommand::Revoke(args) => revoke(args).await,
    }
}

/// The database of `node`'s plan. An SQLite file is opened beside a node
/// that may be serving it (token commands do no job work), so tokens can be
/// made and revoked without stopping it.
async fn store(node: &NodeArgs) -> Result<Arc<dyn Store>> {
    let plan = load_plan(node, None, None)?;
    match &plan.database {
        Database::Sqlite(path) => Ok(Arc::new(
            SqliteStore::open_beside(path, plan.sqlite.clone())
                .await
                .with_context(|| format!("cannot open database {}", path.display()))?,
        )),
        Database::Postgres(_) => open_store(&plan).await,
    }
}

async fn create(args: TokenCreateArgs) -> Result<ExitCode> {
    let scopes =
        Scopes::parse(args.scopes.iter().map(String::as_str)).map_err(|e| anyhow!("--{e}"))?;
    let secret = Secret::generate().context("cannot read the system's random source")?;
    let token = NewToken::new(&args.name, scopes, secret.hash()).map_err(|e| anyhow!("--{e}"))?;
    let created = store(&args.node)
        .await?
        .create_token(token, &AuditActor::Local)
        .await?;
    print(&format!(
        "created token {:?} with scopes: {}\n\n    {}\n\n\
         This secret is shown only once; store it now. Send it as\n  \
         Authorization: Bearer <secret>\n\
         e.g. `curl -H \"Authorization: Bearer $ERRAND_TOKEN\" …` or `ERRAND_TOKEN=<secret> errand stats`.\n",
        created.name,
        created.scopes,
        secret.expose()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// A token as `--json` prints it.
#[derive(Serialize)]
struct TokenView<'a> {
    name: &'a str,
    scopes: &'a Scopes,
    created_at: jiff::Timestamp,
    last_used_at: Option<jiff::Timestamp>,
}

async fn list(args: TokenListArgs) -> Result<ExitCode> {
    let tokens = store(&args.node).await?.tokens().await?;
    let text = if args.json {
        let views: Vec<TokenView> = tokens.iter().map(view).collect();
        serde_json::to_string_pretty(&views)? + "\n"
    } else {
        tokens_table(&tokens)
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn view(t: &Token) -> TokenView<'_> {
    TokenView {
        name: &t.name,
        scopes: &t.scopes,
        created_at: t.created_at,
        last_used_at: t.last_used_at,
    }
}

fn tokens_table(tokens: &[Token]) -> String {
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.scopes.to_string(),
                time(t.created_at),
                t.last_used_at.map_or_else(|| "never".into(), time),
            ]
        })
        .collect();
    table(
        &["NAME", "SCOPES", "CREATED (UTC)", "LAST USED (UTC)"],
        &rows,
    )
}

async fn revoke(args: TokenRevokeArgs) -> Result<ExitCode> {
    if !store(&args.node)
        .await?
        .revoke_token(&args.name, &AuditActor::Local)
        .await?
    {
        bail!(
            "no token named {:?}; `errand tokens list` shows them",
            args.name
        );
    }
    print(&format!(
        "revoked token {:?}; every node refuses it within a second\n",
        args.name
    ))?;
    Ok(ExitCode::SUCCESS)
}
