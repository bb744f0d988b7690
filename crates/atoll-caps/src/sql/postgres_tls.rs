//! libpq's TLS settings that tokio-postgres does not understand:
//! `sslrootcert=FILE`, and `sslmode=verify-ca` / `verify-full`. They are
//! taken out of the URL before tokio-postgres parses it (it refuses them),
//! and become the rustls configuration its connections use.
//!
//! What is checked of the server's certificate, as libpq does:
//!
//! | sslmode                  | without sslrootcert          | with sslrootcert     |
//! |--------------------------|------------------------------|----------------------|
//! | `prefer`, `require`      | system roots, host name      | its CA(s), any name  |
//! | `verify-ca`              | (an error: it needs the CA)  | its CA(s), any name  |
//! | `verify-full`            | system roots, host name      | its CA(s), host name |

use crate::tls::{self, Check};
use rustls::ClientConfig;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A PostgreSQL URL with libpq's TLS settings taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    /// What tokio-postgres is given: `verify-*` become `require`, the
    /// mode it knows that insists on TLS; the checks are rustls's.
    pub client_url: String,
    pub mode: SslMode,
    /// As written (relative to the runtime configuration's file).
    pub root_cert: Option<PathBuf>,
}

/// Splits libpq's TLS settings out of `url`'s query string.
pub fn split(url: &str) -> Result<SplitUrl, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_str() {
            "sslmode" => {
                mode = match decode(value).as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is not supported (expected disable, prefer, require, verify-ca or verify-full)"
                        ));
                    }
                };
                let known = match mode {
                    SslMode::Disable => "disable",
                    SslMode::Prefer => "prefer",
                    _ => "require",
                };
                kept.push(format!("sslmode={known}"));
            }
            "sslrootcert" => {
                let path = decode(value);
                if path.is_empty() {
                    return Err(
                        "sslrootcert is empty: give the PEM file of the CA that signs the server's certificate".into(),
                    );
                }
                root_cert = Some(PathBuf::from(path));
            }
            _ => kept.push(pair.to_string()),
        }
    }
    if mode == SslMode::VerifyCa && root_cert.is_none() {
        return Err(
            "sslmode=verify-ca needs sslrootcert=FILE, the PEM file of the CA to check the server's certificate against"
                .into(),
        );
    }
    let client_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(SplitUrl {
        client_url,
        mode,
        root_cert,
    })
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The rustls configuration for `mode`, trusting `root_cert` (resolved)
/// only if given, else the system's roots.
pub fn client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, String> {
    let Some(file) = root_cert else {
        crate::http::use_ring_for_tls();
        return <ClientConfig as rustls_platform_verifier::ConfigVerifierExt>::with_platform_verifier()
            .map_err(|e| format!("cannot set up TLS: {e}"));
    };
    let roots = tls::read_roots(file).map_err(|e| format!("sslrootcert: {e}"))?;
    let check = if mode == SslMode::VerifyFull {
        Check::ChainAndName
    } else {
        Check::ChainOnly
    };
    tls::client_config(roots, check)
}

/// What the server's certificate was checked against, for errors.
pub fn trusted(root_cert: Option<&Path>) -> String {
    match root_cert {
        Some(file) => format!("the CA in sslrootcert {}", file.display()),
        None => "a CA the system trusts (give sslrootcert=FILE for a private CA)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_out_what_tokio_postgres_refuses() {
        let s =
            split("postgres://u:p@db/shop?sslmode=verify-full&sslrootcert=certs%2Fca.pem&application_name=x").unwrap();
        assert_eq!(
            s.client_url,
            "postgres://u:p@db/shop?sslmode=require&application_name=x"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("certs/ca.pem")));
        let s = split("postgres://db/shop?sslrootcert=ca.pem").unwrap();
        assert_eq!((s.client_url.as_str(), s.mode), ("postgres://db/shop", SslMode::Prefer));
        let s = split("postgres://db/shop?sslmode=disable").unwrap();
        assert_eq!(
            (s.client_url.as_str(), s.mode),
            ("postgres://db/shop?sslmode=disable", SslMode::Disable)
        );
        for url in [
            "postgres://db/shop?sslmode=verify-ca&sslrootcert=ca.pem",
            "postgres://db/shop?sslmode=verify-full",
            "postgres://db/shop?sslmode=require",
        ] {
            assert!(
                split(url).unwrap().client_url.parse::<tokio_postgres::Config>().is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn refuses_what_cannot_be_honoured() {
        for (url, want) in [
            ("postgres://db/x?sslmode=allow", "sslmode=allow is not supported"),
            (
                "postgres://db/x?sslmode=verify-ca",
                "sslmode=verify-ca needs sslrootcert=FILE",
            ),
            ("postgres://db/x?sslrootcert=", "sslrootcert is empty"),
        ] {
            let err = split(url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
