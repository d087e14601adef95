//! Command-line arguments. Flags override environment variables, which
//! override the configuration file, which overrides the defaults.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The help heading of the options every command takes, so that they
/// stand apart from the command's own.
const GLOBAL_OPTIONS: &str = "Global options";

/// errand: a durable background-job server and worker runtime.
#[derive(Debug, Parser)]
#[command(name = "errand", version, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "ERRAND_LOG_FORMAT",
        global = true,
        help_heading = GLOBAL_OPTIONS
    )]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `errand=debug`.
    #[arg(
        long,
        default_value = "info",
        env = "ERRAND_LOG",
        global = true,
        help_heading = GLOBAL_OPTIONS
    )]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (HTTP API and an in-process worker).
    Serve(NodeArgs),
    /// Run a worker-only node (no HTTP listener) on a shared database.
    Work(WorkArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(NodeArgs),
    /// Enqueue a job.
    Enqueue(EnqueueArgs),
    /// List, show, cancel or retry jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Job counts by queue, kind and state.
    Stats(ClientArgs),
    /// The live nodes sharing the server's database (remote workers too),
    /// or ask one to drain.
    Nodes(NodesArgs),
    /// The cron schedules with their next run and last tick.
    Schedules(ClientArgs),
    /// List, pause or resume queues (bare `errand queues` lists them).
    Queues(QueuesArgs),
    /// Publish an event: one job per listener kind the server configures.
    Publish(PublishArgs),
    /// List or show published events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Enqueue jobs (JSON lines) as one batch; optionally wait for their results.
    Batch(BatchArgs),
    /// Create, list or revoke API tokens (opens the database directly).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The audit log: who cancelled, retried, paused, resumed, made or
    /// revoked what (needs an admin token when auth is on).
    Audit(AuditArgs),
}

/// Where a node finds its settings.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Configuration file (TOML). Without one, defaults apply.
    #[arg(long, short, env = "ERRAND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "ERRAND_LISTEN")]
    pub listen: Option<String>,
    /// Database URL [default: sqlite://errand.db].
    #[arg(long, env = "ERRAND_DATABASE")]
    pub database: Option<String>,
    /// Serve with `[server] auth = "off"` even on a non-loopback address:
    /// anyone who reaches the port can read and change every job.
    #[arg(long, env = "ERRAND_UNSAFE_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub unsafe_no_auth: bool,
}

/// `errand tokens`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print its secret (once: only a hash is stored).
    Create(TokenCreateArgs),
    /// Name, scopes, creation and last use of every token (never secrets).
    List(TokenListArgs),
    /// Delete a token: every node refuses it within a second.
    Revoke(TokenRevokeArgs),
}

/// `errand tokens create`
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Unique name, shown in logs and listings (e.g. web-app).
    #[arg(long)]
    pub name: String,
    /// enqueue[:KIND_OR_EVENT,...], read, admin, work or metrics; repeatable.
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Where the database is.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `errand tokens list`
#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the database is.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `errand tokens revoke`
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's name.
    pub name: String,
    /// Where the database is.
    #[command(flatten)]
    pub node: NodeArgs,
}

/// `errand work`
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Where the node finds its settings.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Only these queues (comma-separated) [default: every configured queue].
    #[arg(long, value_delimiter = ',')]
    pub queues: Option<Vec<String>>,
    /// Jobs of each queue running at once on this node (overrides the config).
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// How a client command reaches the server.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The errand server (`http://` or `https://`).
    #[arg(long, env = "ERRAND_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// A CA certificate (PEM) to trust for an https:// server, on top of the system's.
    #[arg(long, env = "ERRAND_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// API token (`errand tokens create`), sent as a bearer token.
    #[arg(long, env = "ERRAND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `errand enqueue`
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The kind of job.
    pub kind: String,
    /// Payload: JSON text, @FILE, or - for standard input [default: null].
    pub payload: Option<String>,
    /// Queue (default: the kind's).
    #[arg(long)]
    pub queue: Option<String>,
    /// Priority, lower first (default: the kind's).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i16>,
    /// Run after this long, e.g. 30s or 2h.
    #[arg(long, conflicts_with = "at")]
    pub delay: Option<String>,
    /// Run at this time (RFC 3339, e.g. 2030-01-01T09:00:00Z).
    #[arg(long)]
    pub at: Option<String>,
    /// Deduplicate against live jobs of the kind with this key.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// With --unique-key: also against jobs created this long ago, even
    /// ended ones, e.g. 1h (default: the kind's `unique_for`).
    #[arg(long, requires = "unique_key")]
    pub unique_for: Option<String>,
    /// Attempts the job may use.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt, e.g. 5m.
    #[arg(long)]
    pub job_timeout: Option<String>,
    /// Tags (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Wait for the job to end and print its result.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 2m (the job's own limit is --job-timeout).
    #[arg(long, default_value = "60s", requires = "wait")]
    pub wait_timeout: String,
    /// The old spelling of --wait-timeout, refused naming it.
    #[command(flatten)]
    pub old_timeout: OldTimeout,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List(ListArgs),
    /// Show one job with its errors and result.
    Show(IdArgs),
    /// Cancel a job that has not ended.
    Cancel(IdArgs),
    /// Run a failed or cancelled job again.
    Retry(IdArgs),
    /// Act on many jobs at once: those a filter matches, or --id ones.
    #[command(subcommand)]
    Bulk(BulkCommand),
}

/// `errand jobs bulk …`: the action; the jobs are the options.
#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Run failed and cancelled jobs again.
    Retry(BulkArgs),
    /// Cancel jobs that have not ended (running ones too).
    Cancel(BulkArgs),
    /// Delete ended jobs (completed, failed, cancelled).
    Delete(BulkArgs),
    /// Make scheduled and retryable jobs available now.
    RunNow(BulkArgs),
}

/// Which jobs a bulk action takes, and whether to wait for it.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Only jobs in this state.
    #[arg(long, conflicts_with = "ids")]
    pub state: Option<String>,
    /// Only jobs of this kind.
    #[arg(long, conflicts_with = "ids")]
    pub kind: Option<String>,
    /// Only jobs in this queue.
    #[arg(long, conflicts_with = "ids")]
    pub queue: Option<String>,
    /// Every job, when no filter is given (required then, so that a
    /// forgotten filter never acts on everything).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// These jobs instead of a filter (repeatable, or comma-separated).
    #[arg(long = "id", value_delimiter = ',')]
    pub ids: Vec<i64>,
    /// Wait until the action has gone through every job, printing progress.
    #[arg(long)]
    pub wait: bool,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand jobs list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this state.
    #[arg(long)]
    pub state: Option<String>,
    /// Only this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs with this tag (searched among the newest 10,000 matching the other filters).
    #[arg(long)]
    pub tag: Option<String>,
    /// Only jobs created at or after this RFC 3339 time (searched likewise).
    #[arg(long)]
    pub created_after: Option<String>,
    /// Only jobs created before this RFC 3339 time (searched likewise).
    #[arg(long)]
    pub created_before: Option<String>,
    /// Only jobs whose payload or errors contain this text, ignoring case (searched likewise).
    #[arg(long)]
    pub text: Option<String>,
    /// Page size and cursor.
    #[command(flatten)]
    pub page: PageArgs,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// One page of a newest-first listing.
#[derive(Debug, Args)]
pub struct PageArgs {
    /// Page size.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Continue after this cursor (printed at the end of a full page).
    #[arg(long)]
    pub cursor: Option<i64>,
}

/// `errand audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries of this actor: a token's name, or "local CLI".
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action: job.cancel, job.retry, queue.pause, queue.resume,
    /// token.create or token.revoke.
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries at or after this time (RFC 3339, e.g. 2030-01-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Page size and cursor.
    #[command(flatten)]
    pub page: PageArgs,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// A command about one job.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The job id.
    pub id: i64,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand queues [list|pause|resume]`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueuesArgs {
    /// What to do; listing when absent.
    #[command(subcommand)]
    pub command: Option<QueuesCommand>,
    /// Server and output of the listing a bare `errand queues` prints.
    #[command(flatten)]
    pub client: ClientArgs,
}

impl QueuesArgs {
    /// The command meant: a bare `errand queues` is `errand queues list`.
    pub fn command(self) -> QueuesCommand {
        self.command.unwrap_or(QueuesCommand::List(self.client))
    }
}

/// `errand queues …`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Every queue with jobs or a pause record, with its counts by state.
    List(ClientArgs),
    /// Stop running a queue's jobs on every node (it still accepts jobs).
    Pause(QueueArgs),
    /// Run a paused queue's jobs again.
    Resume(QueueArgs),
}

/// A command about one queue.
#[derive(Debug, Args)]
pub struct QueueArgs {
    /// The queue's name.
    pub name: String,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand nodes [list|drain NAME]`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodesArgs {
    /// What to do; listing when absent.
    #[command(subcommand)]
    pub command: Option<NodesCommand>,
    /// Server and output of the listing a bare `errand nodes` prints.
    #[command(flatten)]
    pub client: ClientArgs,
}

impl NodesArgs {
    /// The command meant: a bare `errand nodes` is `errand nodes list`.
    pub fn command(self) -> NodesCommand {
        self.command.unwrap_or(NodesCommand::List(self.client))
    }
}

/// `errand nodes …`
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// The live nodes and remote workers, with their last heartbeat.
    List(ClientArgs),
    /// Ask a remote worker to stop: its next claim or heartbeat answers
    /// `stop` (it finishes its jobs and exits).
    Drain(NodeNameArgs),
}

/// A command about one node.
#[derive(Debug, Args)]
pub struct NodeNameArgs {
    /// The node's name (a remote worker's id).
    pub name: String,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand publish`
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The event's name, e.g. comment.created.
    pub name: String,
    /// Its data: JSON text, @FILE, or - for standard input [default: null].
    pub data: Option<String>,
    /// Publish once per key: a second publish with it returns the first event.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand events …`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List(EventListArgs),
    /// Show one event and where each listener's job stands.
    Show(IdArgs),
}

/// `errand events list`
#[derive(Debug, Args)]
pub struct EventListArgs {
    /// Only events with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Page size and cursor.
    #[command(flatten)]
    pub page: PageArgs,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `errand batch`
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// JSON lines, one enqueue request each ({"kind": …, "payload": …}),
    /// from this file or - for standard input.
    pub file: String,
    /// Wait for every job to end and print the results in submission order
    /// (exit code 1 unless all completed in time).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, e.g. 2m.
    #[arg(long, default_value = "30s", requires = "wait")]
    pub wait_timeout: String,
    /// The old spelling of --wait-timeout, refused naming it.
    #[command(flatten)]
    pub old_timeout: OldTimeout,
    /// A kind to run once after the last job ends, with the batch's outcome.
    #[arg(long)]
    pub on_complete: Option<String>,
    /// The on-complete job's own payload (JSON), beside the outcome.
    #[arg(long, requires = "on_complete")]
    pub on_complete_payload: Option<String>,
    /// Server and output.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `--timeout`, the old name of `--wait-timeout`. It read like the job's
/// own time limit (`--job-timeout`), so it is not kept as an alias: given,
/// with or without a value, it is refused with a message naming the new flag.
#[derive(Debug, Args)]
pub struct OldTimeout {
    #[arg(long = "timeout", hide = true, num_args = 0..=1, default_missing_value = "")]
    timeout: Option<String>,
}

impl OldTimeout {
    /// Refuses the old spelling when it was given; `job_limit` says where
    /// this command sets a job's own time limit instead.
    pub fn refuse(&self, job_limit: &str) -> anyhow::Result<()> {
        if self.timeout.is_some() {
            anyhow::bail!(
                "--timeout is now --wait-timeout (how long --wait waits); \
                 a job's own time limit is {job_limit}"
            );
        }
        Ok(())
    }
}
