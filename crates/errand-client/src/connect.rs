//! How a [`Client`] connects: the base URL (`http://` or `https://`) and,
//! for a server whose certificate a private CA signed, that CA's
//! certificate, trusted on top of the system's CAs.

use crate::{Client, ClientError, install_tls_provider};
use reqwest::{Certificate, Url};
use std::path::PathBuf;
use std::time::Duration;

/// How long to try opening a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a [`Client`] being made; see [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    cas: Vec<Ca>,
}

/// A CA certificate (PEM) to trust, as given.
#[derive(Debug, Clone)]
enum Ca {
    Pem(Vec<u8>),
    File(PathBuf),
}

impl ClientBuilder {
    pub(crate) fn new(base_url: &str) -> Self {
        ClientBuilder {
            base_url: base_url.to_string(),
            cas: Vec::new(),
        }
    }

    /// Also trusts the CA certificates in `pem` (one or more PEM blocks).
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.cas.push(Ca::Pem(pem.into()));
        self
    }

    /// Also trusts the CA certificates in the PEM file at `path`, read by
    /// [`ClientBuilder::build`].
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.cas.push(Ca::File(path.into()));
        self
    }

    /// The client; fails on a URL that is not `http(s)://host[:port][/path]`
    /// or a CA that cannot be read or holds no certificate.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = base_url(&self.base_url)?;
        install_tls_provider();
        let mut http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
        for ca in &self.cas {
            http = http.tls_certs_merge(ca.certificates()?);
        }
        let http = http
            .build()
            .map_err(|e| ClientError::Transport(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            auth: None,
        })
    }
}

impl Ca {
    /// The certificates, at least one.
    fn certificates(&self) -> Result<Vec<Certificate>, ClientError> {
        let (source, pem) = match self {
            Ca::Pem(pem) => ("PEM".to_string(), pem.clone()),
            Ca::File(path) => {
                let source = format!("file {}", path.display());
                let pem = std::fs::read(path)
                    .map_err(|e| ClientError::BadCa(format!("{source}: cannot read: {e}")))?;
                (source, pem)
            }
        };
        match Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Ok(certs),
            Ok(_) => Err(ClientError::BadCa(format!(
                "{source}: no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)"
            ))),
            Err(e) => Err(ClientError::BadCa(format!("{source}: {e}"))),
        }
    }
}

/// The checked base URL, ending with a slash so that paths join below it.
fn base_url(given: &str) -> Result<Url, ClientError> {
    let bad = |why: &str| ClientError::BadUrl(format!("{given:?}: {why}"));
    let mut base = Url::parse(given).map_err(|e| bad(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
        return Err(bad("expected http://host:port or https://host:port"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(b: ClientBuilder) -> String {
        b.build().unwrap_err().to_string()
    }

    #[test]
    fn a_bad_ca_is_refused_by_name() {
        let b = || Client::builder("https://127.0.0.1:7070");
        let e = err(b().ca_file("/nonexistent/ca.pem"));
        assert!(e.contains("file /nonexistent/ca.pem: cannot read"), "{e}");
        let e = err(b().ca_pem("not a certificate"));
        assert!(e.contains("PEM: no certificate found"), "{e}");
    }

    #[test]
    fn https_urls_are_accepted() {
        Client::new("https://errand.internal:7070").unwrap();
        let e = err(Client::builder("ftp://x"));
        assert!(
            e.contains("expected http://host:port or https://host:port"),
            "{e}"
        );
    }
}
