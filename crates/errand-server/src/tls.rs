//! HTTPS for the API: the PEM certificate chain and key of `[server] tls`,
//! loaded into a rustls configuration whose certificate can be swapped
//! while the server runs. New handshakes get the certificate loaded last;
//! open connections keep the session they negotiated, so a reload drops
//! nothing. A file that fails to load leaves the current certificate in place.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// `[server] tls = { cert = "…", key = "…" }`: where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, server certificate first.
    pub cert: PathBuf,
    /// The server certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the certificate or key could not be loaded; the message names the
/// setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no usable certificate.
    #[error("tls.cert {}: {why}", path.display())]
    Cert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The key file is unreadable, holds no key, or a key that does not
    /// belong to the certificate.
    #[error("tls.key {}: {why}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// The server's TLS state: the files and the certificate in use. Cheap to
/// clone; clones share the certificate, so [`Tls::reload`] on any of them
/// changes what every new handshake gets.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Loads and checks the files: a missing or unreadable file, one
    /// without PEM contents, or a key that does not match the certificate
    /// is refused with a message naming the file.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = load_pair(&files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(certified))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Cert {
                path: files.cert.clone(),
                why: format!("no usable TLS version: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The API speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// Reads the files again and, if they load, serves their certificate
    /// to every new handshake; on error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load_pair(&self.files, self.config.crypto_provider())?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(certified);
        Ok(())
    }

    /// The files this state loads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The acceptor that performs handshakes with the current certificate.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// Answers every handshake with the certificate loaded last.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Plain data: a panic elsewhere cannot leave it half-written.
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The certificate chain and its key from `files`, checked to belong together.
fn load_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_err = |why: String| TlsError::Cert {
        path: files.cert.clone(),
        why,
    };
    let key_err = |why: String| TlsError::Key {
        path: files.key.clone(),
        why,
    };
    let chain = CertificateDer::pem_slice_iter(&read(&files.cert).map_err(cert_err)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(not_pem(&e)))?;
    if chain.is_empty() {
        return Err(cert_err(
            "no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key).map_err(key_err)?).map_err(|e| {
        key_err(match e {
            pem::Error::NoItemsFound => "no private key found (expected PEM: -----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)".into(),
            e => not_pem(&e),
        })
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(key_err(format!(
                "does not match the certificate in {}",
                files.cert.display()
            )))
        }
        Err(e) => Err(cert_err(format!("unusable certificate: {e}"))),
    }
}

/// A file's bytes, or why they cannot be read.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// A PEM parsing failure, worded for an operator.
fn not_pem(e: &pem::Error) -> String {
    format!("not a valid PEM file: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, made.cert.pem()).unwrap();
        std::fs::write(&files.key, made.signing_key.serialize_pem()).unwrap();
        files
    }

    fn load_err(files: TlsFiles) -> String {
        Tls::load(files).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        Tls::load(pair(dir.path(), "a")).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = pair(dir.path(), "a");
        files.cert = dir.path().join("nope.crt");
        let e = load_err(files);
        assert!(
            e.starts_with("tls.cert ") && e.contains("nope.crt: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a");
        std::fs::write(&files.cert, "hello").unwrap();
        let e = load_err(files.clone());
        assert!(e.contains("a.crt: no certificate found"), "{e}");
        let files = pair(dir.path(), "b");
        // A certificate where the key should be.
        std::fs::copy(&files.cert, &files.key).unwrap();
        let e = load_err(files);
        assert!(
            e.starts_with("tls.key ") && e.contains("b.key: no private key found"),
            "{e}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");
        let e = load_err(TlsFiles {
            cert: a.cert,
            key: b.key,
        });
        assert!(
            e.contains("b.key: does not match the certificate in") && e.contains("a.crt"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_reload_keeps_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a");
        let tls = Tls::load(files.clone()).unwrap();
        let before = tls.current.0.read().unwrap().cert.clone();
        std::fs::write(&files.key, "garbage").unwrap();
        let e = tls.reload().unwrap_err().to_string();
        assert!(e.contains("a.key"), "{e}");
        assert_eq!(tls.current.0.read().unwrap().cert, before);
        // A new pair at the same paths.
        pair(dir.path(), "a");
        tls.reload().unwrap();
        assert_ne!(tls.current.0.read().unwrap().cert, before);
    }
}
