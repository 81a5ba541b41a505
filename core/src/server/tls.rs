//! HTTPS for smart HTTP: rustls with ring, the certificate chain and key read from PEM files
//! named in the configuration.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::TlsFiles;
use crate::error::{Error, ErrorKind, Result};

fn invalid(what: &str, path: &std::path::Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("cannot use the TLS {what} {}: {why}", path.display()),
    )
}

/// Reads the PEM files and builds the acceptor (TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
pub(super) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(&files.certificate_chain)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| invalid("certificate chain", &files.certificate_chain, e))?;
    if chain.is_empty() {
        return Err(invalid(
            "certificate chain",
            &files.certificate_chain,
            "no certificate in it",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.private_key)
        .map_err(|e| invalid("private key", &files.private_key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("private key", &files.private_key, e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
