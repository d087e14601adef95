//! The `errand` binary: parses the command line, sets up logging and hands
//! over to the module that does the work. Errors end here, as one line on
//! stderr and a non-zero exit code.

mod batch_cmd;
mod bench;
mod cli;
mod client_cmd;
mod config;
mod event_cmd;
mod node;
mod output;

use clap::Parser;
use cli::{Cli, Command, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    errand_client::install_tls_provider();
    init_logging(cli.log_format, &cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("errand: cannot start the async runtime: {e}");
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
            Command::Nodes(args) => client_cmd::nodes(args).await,
            Command::Schedules(args) => client_cmd::schedules(args).await,
            Command::Queues(cmd) => client_cmd::queues(cmd).await,
            Command::Publish(args) => event_cmd::publish(args).await,
            Command::Events(cmd) => event_cmd::events(cmd).await,
            Command::Batch(args) => batch_cmd::batch(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("errand: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // When stderr cannot be written (a log file on a full disk), the
        // report of that failure would panic the task that logged: drop the line.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}
