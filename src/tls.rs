//! TLS set-up from PEM files: the client listener's acceptor (`tls.cert_file`, `tls.key_file`)
//! and the trust roots for `https://` upstreams (the public web roots plus `upstream.ca_file`).
//! Everything is read once at start; a missing or unusable file stops the start with a message
//! naming it.

use crate::config::TlsConfig;
use crate::error::Error;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The acceptor for the client listener, or None when TLS is off.
pub fn acceptor(config: &TlsConfig) -> Result<Option<TlsAcceptor>, Error> {
    let (Some(cert_file), Some(key_file)) = (&config.cert_file, &config.key_file) else {
        return Ok(None);
    };
    let certs = certificates(cert_file, "tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        Error::Config(format!(
            "tls.key_file {}: no usable PEM private key ({e})",
            key_file.display()
        ))
    })?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Internal(format!("TLS set-up: {e}")))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        Error::Config(format!(
            "tls.cert_file {} and tls.key_file {} do not make a usable certificate: {e}",
            cert_file.display(),
            key_file.display()
        ))
    })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// The roots an `https://` upstream's certificate is checked against.
pub fn upstream_roots(ca_file: Option<&Path>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in certificates(path, "upstream.ca_file")? {
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "upstream.ca_file {}: a certificate is not a usable CA: {e}",
                    path.display()
                ))
            })?;
        }
    }
    Ok(roots)
}

/// Every certificate in a PEM file; none at all is an error.
fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |e: String| Error::Config(format!("{key} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    Ok(certs)
}
