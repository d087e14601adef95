//! `smtp = { url, from, tls?, timeout? }`: where and how to send, checked
//! key by key before any job runs.
//!
//! The URL says where (`smtp://[user:password@]host[:port]`, or
//! `smtps://…` for implicit TLS); the separate `tls` key says how, so the
//! choice is spelled out instead of hidden in a query string.

use crate::ConfigError;
use errand_core::duration::serde_human;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

/// The SMTP server and sender of an email kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://[user:password@]host[:port]` or `smtps://…`; credentials
    /// (percent-encoded) turn on AUTH.
    pub url: String,
    /// The sender, e.g. `App <noreply@example.com>`.
    pub from: String,
    /// Transport security; `none` for `smtp://`, `implicit` for `smtps://`
    /// when absent.
    #[serde(default)]
    pub tls: Option<SmtpTls>,
    /// Limit for one delivery: connecting, the SMTP conversation and the
    /// message.
    #[serde(with = "serde_human", default = "default_timeout")]
    pub timeout: Duration,
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: for a relay on the same host or a trusted network.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SmtpConfig {
    /// A configuration with the default TLS mode and timeout.
    pub fn new(url: impl Into<String>, from: impl Into<String>) -> Self {
        SmtpConfig {
            url: url.into(),
            from: from.into(),
            tls: None,
            timeout: default_timeout(),
        }
    }

    /// Checks every key; the error names the first bad one (`smtp.url`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.parts().map(|_| ())
    }

    /// The sender and a transport builder, or the first bad key.
    pub(super) fn parts(&self) -> Result<(Mailbox, AsyncSmtpTransportBuilder), ConfigError> {
        let bad_url = |message: String| ConfigError::new("smtp.url", message);
        let url = reqwest::Url::parse(&self.url).map_err(|e| bad_url(e.to_string()))?;
        let implied = match url.scheme() {
            "smtp" => SmtpTls::None,
            "smtps" => SmtpTls::Implicit,
            other => {
                return Err(bad_url(format!(
                    "scheme {other:?}: use smtp:// or smtps://"
                )));
            }
        };
        let tls = match self.tls {
            None => implied,
            Some(tls) if implied == SmtpTls::Implicit && tls != SmtpTls::Implicit => {
                return Err(ConfigError::new(
                    "smtp.tls",
                    "an smtps:// URL is always implicit TLS; use smtp:// for none or starttls",
                ));
            }
            Some(tls) => tls,
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad_url("no host".into()))?
            .trim_matches(['[', ']'])
            .to_string();
        if url.query().is_some() || !matches!(url.path(), "" | "/") {
            return Err(bad_url(
                "a path or query string is not read; set TLS with the tls key".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "smtp.timeout",
                "must be greater than zero",
            ));
        }
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| ConfigError::new("smtp.from", format!("{:?}: {e}", self.from)))?;

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(url.port().unwrap_or(tls.default_port()))
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new());
        builder = match tls {
            SmtpTls::None => builder.tls(Tls::None),
            SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters(&host)?)),
            SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls_parameters(&host)?)),
        };
        if let Some(credentials) = credentials(&url)? {
            if tls == SmtpTls::None && !is_loopback(&host) {
                return Err(bad_url(
                    "credentials would cross the network in clear text; set tls = \"starttls\" or \"implicit\"".into(),
                ));
            }
            builder = builder.credentials(credentials);
        }
        Ok((from, builder))
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, ConfigError> {
    TlsParameters::new(host.to_string())
        .map_err(|e| ConfigError::new("smtp.tls", format!("cannot set up TLS: {e}")))
}

/// AUTH credentials from the URL's user info, percent-decoded.
fn credentials(url: &reqwest::Url) -> Result<Option<Credentials>, ConfigError> {
    let Some(password) = url.password() else {
        return Ok(None);
    };
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| {
                ConfigError::new(
                    "smtp.url",
                    "credentials are not valid percent-encoded UTF-8",
                )
            })
    };
    Ok(Some(Credentials::new(
        decode(url.username())?,
        decode(password)?,
    )))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(config: SmtpConfig) -> String {
        config.validate().unwrap_err().key
    }

    fn with_tls(url: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            tls: Some(tls),
            ..SmtpConfig::new(url, "App <noreply@example.com>")
        }
    }

    #[test]
    fn good_configurations_pass() {
        for config in [
            SmtpConfig::new("smtp://localhost:25", "App <noreply@example.com>"),
            SmtpConfig::new(
                "smtps://user:p%40ss@mail.example.com",
                "noreply@example.com",
            ),
            SmtpConfig::new("smtp://user:pw@127.0.0.1:2525", "noreply@example.com"),
            with_tls("smtp://user:pw@mail.example.com", SmtpTls::Starttls),
            with_tls("smtp://mail.example.com", SmtpTls::Implicit),
        ] {
            config.validate().unwrap();
        }
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let cfg = |url: &str| SmtpConfig::new(url, "noreply@example.com");
        assert_eq!(key_of(cfg("localhost:25")), "smtp.url");
        assert_eq!(key_of(cfg("http://mail.example.com")), "smtp.url");
        assert_eq!(
            key_of(cfg("smtp://mail.example.com?tls=required")),
            "smtp.url"
        );
        assert_eq!(key_of(cfg("smtp://user:pw@mail.example.com")), "smtp.url");
        assert_eq!(
            key_of(SmtpConfig::new("smtp://localhost", "not an address")),
            "smtp.from"
        );
        assert_eq!(
            key_of(with_tls("smtps://mail.example.com", SmtpTls::Starttls)),
            "smtp.tls"
        );
        let zero = SmtpConfig {
            timeout: Duration::ZERO,
            ..cfg("smtp://localhost")
        };
        assert_eq!(key_of(zero), "smtp.timeout");
    }

    #[test]
    fn reads_the_documented_toml() {
        let config: SmtpConfig = toml::from_str(
            "url = \"smtp://localhost:25\"\nfrom = \"App <noreply@example.com>\"\ntls = \"starttls\"\ntimeout = \"5s\"",
        )
        .unwrap();
        assert_eq!(config.tls, Some(SmtpTls::Starttls));
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert!(
            toml::from_str::<SmtpConfig>("url = \"smtp://x\"\nfrom = \"a@b.c\"\ntls = \"maybe\"")
                .is_err()
        );
        assert!(
            toml::from_str::<SmtpConfig>("url = \"smtp://x\"\nfrom = \"a@b.c\"\nport = 25")
                .is_err()
        );
    }
}
