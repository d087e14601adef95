//! errand-executors: executors for real work, each in its own module, all
//! implementing [`errand_worker::Executor`] and configured from the binary's
//! TOML through a `Deserialize` config struct and a validating constructor.

mod config_error;
pub mod email;
mod error_chain;
pub mod pool;
pub mod webhook;

pub use config_error::ExecutorConfigError;
