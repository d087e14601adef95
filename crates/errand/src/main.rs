//! The `errand` binary: parses the command line, sets up logging and hands
//! over to the module that does the work. Errors end here, as one line on
//! stderr and a non-zero exit code.

mod audit_cmd;
mod batch_cmd;
mod bulk_cmd;
mod cli;
mod client_cmd;
mod config;
mod event_cmd;
mod logging;
mod node;
mod output;
mod plan;
mod token_cmd;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    errand_client::install_tls_provider();
    logging::init(cli.log_format, &cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            logging::print_error(&format!("errand: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => node::serve(args).await,
            Command::Work(args) => node::work(args).await,
            Command::Migrate(args) => node::migrate(args).await,
            Command::Enqueue(args) => client_cmd::enqueue(args).await,
            Command::Jobs(cmd) => client_cmd::jobs(cmd).await,
            Command::Stats(args) => client_cmd::stats(args).await,
            Command::Nodes(args) => client_cmd::nodes(args.command()).await,
            Command::Schedules(args) => client_cmd::schedules(args).await,
            Command::Queues(args) => client_cmd::queues(args.command()).await,
            Command::Publish(args) => event_cmd::publish(args).await,
            Command::Events(cmd) => event_cmd::events(cmd).await,
            Command::Batch(args) => batch_cmd::batch(args).await,
            Command::Tokens(cmd) => token_cmd::tokens(cmd).await,
            Command::Audit(args) => audit_cmd::audit(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            // Whatever layer wrote it, a URL in the message keeps no password.
            logging::print_error(&errand_core::redact::urls(&format!("errand: {e:#}")));
            ExitCode::FAILURE
        }
    }
}
