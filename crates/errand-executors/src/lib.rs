//! errand-executors: executors for real work, each in its own module, all
//! implementing [`errand_worker::Executor`]: a process per job (`command`),
//! supervised long-lived processes (`pool`), webhooks and SMTP email. Each
//! is configured by a `Deserialize` config type with a `validate()` and
//! built by `new(kind, config)`; both answer the one [`ConfigError`]. The
//! process executors share [`process`]: spawning in a guarded process
//! group, signalling it, describing how it ended, and bounded output.

pub mod command;
mod config_error;
pub mod email;
mod error_chain;
pub mod pool;
pub mod process;
pub mod webhook;

pub use config_error::ConfigError;
