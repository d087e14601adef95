//! The `[server]` section of the configuration file: the API's settings as
//! an operator writes them, their defaults and their checks, and how they
//! become a [`ServerConfig`].

use crate::{AuthMode, Connections, ServerConfig, TlsFiles};
use errand_core::Catalog;
use errand_core::duration::serde_human;
use errand_core::size::ByteSize;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[server]`: request and connection bounds of the HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Largest request body, e.g. "1MiB".
    pub body_limit: ByteSize,
    /// Longest `?wait=` a request may hold.
    #[serde(with = "serde_human")]
    pub max_wait: Duration,
    /// Record events no `[events.NAME]` section names (with no listeners)
    /// instead of refusing them.
    pub record_unknown_events: bool,
    /// Most HTTP connections open at once; unset: half the open-files limit.
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers.
    #[serde(with = "serde_human")]
    pub header_read_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    #[serde(with = "serde_human")]
    pub idle_timeout: Duration,
    /// Time a request body may take on top of its size at `body_min_rate`.
    #[serde(with = "serde_human")]
    pub body_grace: Duration,
    /// Slowest request body accepted, per second (e.g. "64KiB").
    pub body_min_rate: ByteSize,
    /// Serve HTTPS with these PEM files; unset: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `"required"` or `"off"`; unset: off on a loopback address, required
    /// elsewhere (see [`crate::auth_required`]).
    pub auth: Option<AuthMode>,
    /// How long a dashboard session lasts after login.
    #[serde(with = "serde_human")]
    pub session_ttl: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let defaults = ServerConfig::default();
        let connections = defaults.connections;
        ServerSettings {
            body_limit: ByteSize(defaults.body_limit as u64),
            max_wait: defaults.max_wait,
            record_unknown_events: false,
            max_connections: None,
            header_read_timeout: connections.header_read_timeout,
            idle_timeout: connections.idle_timeout,
            body_grace: connections.body_grace,
            body_min_rate: ByteSize(connections.body_min_rate),
            tls: None,
            auth: None,
            session_ttl: defaults.session_ttl,
        }
    }
}

impl ServerSettings {
    /// Refuses settings the server cannot honour; the message starts with
    /// the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == Some(0) {
            return Err("max_connections: must be at least 1".into());
        }
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("session_ttl", self.session_ttl),
        ] {
            if value.is_zero() {
                return Err(format!("{key}: must be greater than zero"));
            }
        }
        if self.body_min_rate.0 == 0 {
            return Err("body_min_rate: must be greater than zero".into());
        }
        Ok(())
    }

    /// The connection bounds, the cap sized from `fd_limit` (the process's
    /// open-files limit) unless configured.
    pub fn connections(&self, fd_limit: u64) -> Connections {
        Connections {
            max_connections: self
                .max_connections
                .unwrap_or_else(|| Connections::max_for_fd_limit(fd_limit)),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_grace: self.body_grace,
            body_min_rate: self.body_min_rate.0,
        }
    }

    /// The server these settings describe, serving `catalog` (recording
    /// unknown events when configured to) until `shutdown`.
    pub fn config(
        &self,
        catalog: Catalog,
        fd_limit: u64,
        shutdown: CancellationToken,
    ) -> ServerConfig {
        ServerConfig {
            catalog: Arc::new(catalog.record_unknown_events(self.record_unknown_events)),
            body_limit: usize::try_from(self.body_limit.0).unwrap_or(usize::MAX),
            max_wait: self.max_wait,
            connections: self.connections(fd_limit),
            // The node decides with the listen address (`auth_required`).
            auth_required: self.auth == Some(AuthMode::Required),
            session_ttl: self.session_ttl,
            tls: self.tls.is_some(),
            shutdown,
            bulk_starter: None,
            // The node adds its own gauges.
            node_metrics: None,
            // The node sets it from `[worker]`.
            remote: errand_worker::RemoteSettings::default(),
        }
    }
}
