//! The email executor: each job's payload becomes one message sent over a
//! pooled SMTP connection (plain, STARTTLS or implicit TLS, optional AUTH).
//! SMTP 4xx answers retry, 5xx fail the job, and an unreachable or
//! misconfigured server is deadly: the job goes back without using an
//! attempt so an outage cannot burn the queue. The payload format is
//! documented in `payload`, the outcome table in `outcome`.

mod config;
mod outcome;
mod payload;

pub use config::{SmtpConfig, SmtpTls};

use crate::ConfigError;
use async_trait::async_trait;
use errand_core::{Job, Outcome};
use errand_worker::{Executor, ProgressSink};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

/// Sends each job's payload as an email through one SMTP server.
pub struct EmailExecutor {
    from: lettre::message::Mailbox,
    builder: lettre::transport::smtp::AsyncSmtpTransportBuilder,
    timeout: std::time::Duration,
    /// Built on first use: lettre's pool starts a Tokio task, and the
    /// executor may be constructed before the runtime runs.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl EmailExecutor {
    /// Validates `config`; no connection is made until the first job.
    pub fn new(config: SmtpConfig) -> Result<EmailExecutor, ConfigError> {
        let (from, builder) = config.parts()?;
        Ok(EmailExecutor {
            from,
            builder,
            timeout: config.timeout,
            transport: OnceLock::new(),
        })
    }

    async fn send(&self, job: &Job) -> Outcome {
        let (message, message_id) = match payload::message(job, &self.from) {
            Ok(built) => built,
            Err(e) => return Outcome::Permanent(format!("invalid email payload: {e}")),
        };
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        // lettre bounds only the TCP connect; a server that stops talking
        // mid-conversation is bounded here.
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(response)) => outcome::delivered(&message_id, &response),
            Ok(Err(e)) => outcome::failed(&e),
            Err(_) => outcome::timed_out(self.timeout),
        }
    }
}

impl std::fmt::Debug for EmailExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The builder holds the credentials: never print it.
        f.debug_struct("EmailExecutor")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Executor for EmailExecutor {
    async fn execute(
        &self,
        job: &Job,
        cancel: CancellationToken,
        _progress: ProgressSink,
    ) -> Outcome {
        tokio::select! {
            outcome = self.send(job) => outcome,
            // A connection dropped mid-message is found broken (NOOP) before
            // the pool hands it out again; the server discards the message.
            _ = cancel.cancelled() => Outcome::Retry("cancelled".into()),
        }
    }
}
