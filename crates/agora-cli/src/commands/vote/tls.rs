//! TLS for the members' connections (`--tls-cert`, `--tls-key`): rustls with the ring
//! provider, TLS 1.2 and 1.3, no client certificates. The line protocol runs unchanged inside.
//! A handshake that fails or does not finish in time closes that connection with a log line.

use crate::error::UserError;
use crate::input::{read_text, MAX_CONFIG_BYTES};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for a certificate chain and its private key, both PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, UserError> {
    let cert_pem = read_text(cert, "--tls-cert", MAX_CONFIG_BYTES)?;
    let key_pem = read_text(key, "--tls-key", MAX_CONFIG_BYTES)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| UserError(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(UserError(format!("--tls-cert {}: no CERTIFICATE in it", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| UserError(format!("--tls-key {}: no private key in it ({e})", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UserError(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| UserError(format!("--tls-cert/--tls-key: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
