//! errand-executors: executors for real work, each in its own module, all
//! implementing [`errand_worker::Executor`]: a process per job ([`command`]),
//! supervised long-lived processes ([`pool`]), webhooks and SMTP email.
//!
//! One shape for all four: a config type ([`command::CommandSpec`],
//! [`pool::PoolConfig`], [`webhook::WebhookConfig`], [`email::SmtpConfig`])
//! whose `validate()` and the executor's `new(config)` both answer the one
//! [`ConfigError`] (naming the key at fault), so a bad setting stops
//! start-up rather than failing jobs. The pool's
//! `new` also takes the kind, as it names its processes (`ERRAND_POOL`)
//! before any job arrives. The process executors share [`process`]:
//! spawning in a guarded process group, stopping it, describing how it
//! ended, a bounded output tail, and /proc.

pub mod command;
mod config_error;
pub mod email;
mod error_chain;
pub mod pool;
pub mod process;
pub mod webhook;

pub use config_error::ConfigError;
