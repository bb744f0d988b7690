//! libpq's TLS settings that tokio-postgres does not understand:
//! `sslrootcert=FILE|system`, `sslcert=FILE` with `sslkey=FILE`, and
//! `sslmode=verify-ca` / `verify-full`. They are taken out of the URL
//! before tokio-postgres parses it (it refuses them), and become the
//! rustls configuration its connections use.
//!
//! What is checked of the server's certificate, as libpq does:
//!
//! | sslmode                  | without sslrootcert          | with sslrootcert=FILE |
//! |--------------------------|------------------------------|-----------------------|
//! | `prefer`, `require`      | system roots, host name      | its CA(s), any name   |
//! | `verify-ca`              | (an error: it needs the CA)  | its CA(s), any name   |
//! | `verify-full`            | system roots, host name      | its CA(s), host name  |
//!
//! `sslrootcert=system` (libpq 16) is the system's roots with
//! `verify-full`, the only mode it allows. `sslcert` and `sslkey` are
//! the certificate presented to a server that asks for one.

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

impl SslMode {
    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PostgreSQL URL with libpq's TLS settings taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    /// What tokio-postgres is given: `verify-*` become `require`, the
    /// mode it knows that insists on TLS; the checks are rustls's.
    pub client_url: String,
    pub mode: SslMode,
    /// The files the URL names, as written (relative to the runtime
    /// configuration's file); `sslrootcert=system` is none.
    pub files: TlsFiles,
}

/// `sslrootcert`, and `sslcert` with `sslkey`: as written in the URL, or
/// resolved against the runtime configuration's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub root_cert: Option<PathBuf>,
    pub client_cert: Option<ClientCert>,
}

/// A certificate to present, and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `sslpassword`, if the key is encrypted.
    pub passphrase: Option<Passphrase>,
}

/// libpq's `sslpassword`: the passphrase of an encrypted `sslkey`. Its
/// `Debug` hides it, so no error or log line can show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

/// Where an encrypted `sslkey`'s passphrase goes, for errors.
const UNLOCK: &str = "sslpassword=PASSPHRASE in the URL (percent-encoded)";

impl ClientCert {
    fn passphrase(&self) -> Option<&str> {
        self.passphrase.as_ref().map(|p| p.0.as_str())
    }
}

impl TlsFiles {
    /// Each file joined to `base`.
    pub fn resolve(&self, base: &Path) -> TlsFiles {
        TlsFiles {
            root_cert: self.root_cert.as_ref().map(|f| base.join(f)),
            client_cert: self.client_cert.as_ref().map(|c| ClientCert {
                cert: base.join(&c.cert),
                key: base.join(&c.key),
                passphrase: c.passphrase.clone(),
            }),
        }
    }
}

/// Splits libpq's TLS settings out of `url`'s query string.
pub fn split(url: &str) -> Result<SplitUrl, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut mode = None;
    // Where sslmode was, to put what tokio-postgres is told there.
    let mut mode_at = None;
    let mut root_cert = None;
    let mut system_roots = false;
    let (mut cert, mut key, mut passphrase) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key_name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key_name).as_str() {
            "sslmode" => {
                if mode_at.is_none() {
                    mode_at = Some(kept.len());
                    kept.push(String::new());
                }
                mode = Some(match decode(value).as_str() {
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
                });
            }
            "sslrootcert" => {
                let path = decode(value);
                if path.is_empty() {
                    return Err(
                        "sslrootcert is empty: give the PEM file of the CA that signs the server's certificate, or system".into(),
                    );
                }
                // As in libpq, a file named so is `./system`.
                system_roots = path == "system";
                root_cert = (!system_roots).then(|| PathBuf::from(path));
            }
            "sslcert" => cert = Some(file_value("sslcert", value, "the client certificate")?),
            "sslkey" => key = Some(file_value("sslkey", value, "the client certificate's private key")?),
            "sslpassword" => passphrase = Some(Passphrase(decode(value))),
            _ => kept.push(pair.to_string()),
        }
    }
    let mode = match (mode, system_roots) {
        (None | Some(SslMode::VerifyFull), true) => SslMode::VerifyFull,
        (Some(weaker), true) => {
            return Err(format!(
                "sslmode={} is weaker than sslrootcert=system allows: use sslmode=verify-full, or leave sslmode out",
                weaker.name()
            ));
        }
        (mode, false) => mode.unwrap_or(SslMode::Prefer),
    };
    if mode == SslMode::VerifyCa && root_cert.is_none() {
        return Err(
            "sslmode=verify-ca needs sslrootcert=FILE, the PEM file of the CA to check the server's certificate against"
                .into(),
        );
    }
    if passphrase.is_some() && key.is_none() {
        return Err("sslpassword needs sslkey=FILE: it is the passphrase of an encrypted sslkey".into());
    }
    let client_cert = match (cert, key) {
        (Some(cert), Some(key)) => Some(ClientCert { cert, key, passphrase }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(
                "sslcert needs sslkey=FILE: sslcert and sslkey go together, the client certificate and its private key (PEM)"
                    .into(),
            );
        }
        (None, Some(_)) => {
            return Err(
                "sslkey needs sslcert=FILE: sslcert and sslkey go together, the client certificate and its private key (PEM)"
                    .into(),
            );
        }
    };
    let known = match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    };
    match mode_at {
        Some(at) => kept[at] = format!("sslmode={known}"),
        // `sslrootcert=system` alone: TLS is required.
        None if mode != SslMode::Prefer => kept.push(format!("sslmode={known}")),
        None => {}
    }
    let client_url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(SplitUrl {
        client_url,
        mode,
        files: TlsFiles { root_cert, client_cert },
    })
}

fn file_value(name: &str, value: &str, what: &str) -> Result<PathBuf, String> {
    let path = decode(value);
    if path.is_empty() {
        return Err(format!("{name} is empty: give the PEM file of {what}"));
    }
    Ok(PathBuf::from(path))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Reads each of `files` (resolved) and checks them: their certificates
/// and keys, and that the key is the client certificate's. Each error
/// names the URL's setting, as written, and the file.
pub fn check_files(written: &TlsFiles, files: &TlsFiles) -> Result<(), String> {
    if let (Some(w), Some(file)) = (&written.root_cert, &files.root_cert) {
        tls::read_roots(file).map_err(|e| format!("sslrootcert \"{}\": {e}", w.display()))?;
    }
    if let (Some(w), Some(c)) = (&written.client_cert, &files.client_cert) {
        tls::read_certs(&c.cert).map_err(|e| format!("sslcert \"{}\": {e}", w.cert.display()))?;
        let key = tls::read_key(&c.key, c.passphrase())
            .map_err(|e| format!("sslkey \"{}\": {}", w.key.display(), e.explain(Some(UNLOCK))))?;
        tls::check_pair(&c.cert, &c.key, key).map_err(|e| format!("sslkey \"{}\": {e}", w.key.display()))?;
    }
    Ok(())
}

/// The rustls configuration for `mode`, trusting `files.root_cert`
/// (resolved) only if given, else the system's roots, and presenting
/// `files.client_cert` if given.
pub fn client_config(mode: SslMode, files: &TlsFiles) -> Result<ClientConfig, String> {
    let verifier = match &files.root_cert {
        None => tls::platform_verifier()?,
        Some(file) => {
            let roots = tls::read_roots(file).map_err(|e| format!("sslrootcert: {e}"))?;
            let check = if mode == SslMode::VerifyFull {
                Check::ChainAndName
            } else {
                Check::ChainOnly
            };
            tls::verifier(roots, check)?
        }
    };
    let builder = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let Some(client) = &files.client_cert else {
        return Ok(builder.with_no_client_auth());
    };
    builder
        .with_client_auth_cert(
            tls::read_certs(&client.cert).map_err(|e| format!("sslcert: {e}"))?,
            tls::read_key(&client.key, client.passphrase())
                .map_err(|e| format!("sslkey: {}", e.explain(Some(UNLOCK))))?,
        )
        .map_err(|e| format!("sslcert and sslkey do not make a pair: {e}"))
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
        assert_eq!(s.files.root_cert, Some(PathBuf::from("certs/ca.pem")));
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
            "postgres://db/shop?sslrootcert=system",
            "postgres://db/shop?sslcert=c.pem&sslkey=c.key&sslmode=verify-ca&sslrootcert=ca.pem",
        ] {
            assert!(
                split(url).unwrap().client_url.parse::<tokio_postgres::Config>().is_ok(),
                "{url}"
            );
        }
    }

    #[test]
    fn client_certificates_and_the_system_roots() {
        let s = split("postgres://db/x?sslcert=certs%2Fme.pem&application_name=x&sslkey=me.key").unwrap();
        assert_eq!(
            (s.client_url.as_str(), s.mode),
            ("postgres://db/x?application_name=x", SslMode::Prefer)
        );
        let want = ClientCert {
            cert: "certs/me.pem".into(),
            key: "me.key".into(),
            passphrase: None,
        };
        assert_eq!(s.files.client_cert, Some(want.clone()));
        let resolved = s.files.resolve(Path::new("/etc/atoll"));
        assert_eq!(
            resolved.client_cert,
            Some(ClientCert {
                cert: "/etc/atoll/certs/me.pem".into(),
                key: "/etc/atoll/me.key".into(),
                passphrase: None,
            })
        );
        // sslpassword goes with the key, percent-decoded, never to the
        // driver, and never shown.
        let s = split("postgres://db/x?sslcert=me.pem&sslkey=me.key&sslpassword=p%40ss%20w0rd").unwrap();
        assert_eq!(s.client_url, "postgres://db/x");
        let cert = s.files.client_cert.unwrap();
        assert_eq!(cert.passphrase(), Some("p@ss w0rd"));
        assert!(!format!("{cert:?}").contains("w0rd"), "{cert:?}");
        // libpq 16: the system's roots, and verify-full unless said.
        for url in [
            "postgres://db/x?sslrootcert=system",
            "postgres://db/x?sslmode=verify-full&sslrootcert=system",
            "postgres://db/x?sslrootcert=system&sslmode=verify-full",
        ] {
            let s = split(url).unwrap();
            assert_eq!(
                (s.client_url.as_str(), s.mode, &s.files.root_cert),
                ("postgres://db/x?sslmode=require", SslMode::VerifyFull, &None),
                "{url}"
            );
        }
        // A file that happens to be called so is written as libpq has it.
        let s = split("postgres://db/x?sslrootcert=.%2Fsystem").unwrap();
        assert_eq!((s.mode, s.files.root_cert), (SslMode::Prefer, Some("./system".into())));
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
            ("postgres://db/x?sslcert=", "sslcert is empty"),
            (
                "postgres://db/x?sslcert=c.pem",
                "sslcert needs sslkey=FILE: sslcert and sslkey go together",
            ),
            (
                "postgres://db/x?sslkey=c.key&sslmode=require",
                "sslkey needs sslcert=FILE: sslcert and sslkey go together",
            ),
            (
                "postgres://db/x?sslpassword=secret",
                "sslpassword needs sslkey=FILE: it is the passphrase of an encrypted sslkey",
            ),
            (
                "postgres://db/x?sslrootcert=system&sslmode=require",
                "sslmode=require is weaker than sslrootcert=system allows: use sslmode=verify-full, or leave sslmode out",
            ),
            (
                "postgres://db/x?sslmode=verify-ca&sslrootcert=system",
                "sslmode=verify-ca is weaker than sslrootcert=system allows",
            ),
            (
                "postgres://db/x?sslmode=disable&sslrootcert=system",
                "sslmode=disable is weaker than sslrootcert=system allows",
            ),
        ] {
            let err = split(url).unwrap_err();
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
