//! HTTPS on the listener (`atoll serve --tls-cert FILE --tls-key FILE`):
//! the certificate chain and its key read from PEM files and checked at
//! start, HTTP/2 and HTTP/1.1 offered by ALPN, on the same rustls and
//! `ring` as every other TLS connection Atoll makes.

use rustls::ServerConfig;
use std::path::Path;
use std::sync::Arc;

/// The server's TLS configuration for the chain in `cert` (the server's
/// certificate first, then any intermediates) and its key in `key`. Each
/// error names the flag and the file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    use atoll_caps::tls;
    let chain = tls::read_certs(cert).map_err(|e| format!("--tls-cert: {e}"))?;
    let private = tls::read_key(key, None).map_err(|e| format!("--tls-key: {}", e.explain(None)))?;
    // `with_single_cert` pairs the key with the certificate as
    // `tls::check_pair` does, and fails the same way.
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("--tls-key: {}", tls::pair_error(&e, cert, key)))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
