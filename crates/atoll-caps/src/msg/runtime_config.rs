//! Which broker carries the app's messages: the runtime configuration's
//! `[msg]` section.
//!
//! ```toml
//! [msg]
//! backend = "nats"                   # in-process (default) | nats
//! url = "nats://10.0.0.6:4222"       # or tls://; several servers separated by commas
//! credentials = "app.creds"          # optional: a NATS .creds file, relative to this file
//! ca_file = "ca.pem"                 # optional: the CA(s) to trust instead of the system's
//! client_cert = "client.pem"         # optional, with client_key: a certificate to present
//! client_key = "client.key"
//! ```
//!
//! Any of the last three makes TLS required, whatever the URL's scheme.
//! Every file is read when the configuration loads, so a missing or wrong
//! one is an error then, at its key, rather than a node that never connects.

use crate::capability::runtime_sections;
use atoll_manifest::{Location, ManifestError, RuntimeConfigFile, SourceText};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Where messages go between functions and subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MsgBackendConfig {
    /// Within this process only: one node.
    #[default]
    InProcess,
    /// A NATS server (or cluster), shared by every node; durable
    /// subscriptions on JetStream.
    Nats {
        url: String,
        credentials: Option<PathBuf>,
        tls: NatsTls,
        loc: Location,
    },
}

/// TLS settings beyond the URL's `tls://`, their paths resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    pub ca_file: Option<PathBuf>,
    /// A certificate (chain) and its key, for servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl NatsTls {
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some()
    }
}

#[derive(Deserialize, Default)]
struct Sections {
    msg: Option<Spanned<RawMsg>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMsg {
    backend: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    credentials: Option<String>,
    ca_file: Option<Spanned<String>>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
}

/// The `[msg]` section, or where it is wrong. `credentials` is relative to
/// the runtime configuration's own file.
pub fn parse(runtime: &RuntimeConfigFile) -> Result<MsgBackendConfig, Vec<ManifestError>> {
    let (raw, src) = runtime_sections::<Sections>(runtime)?;
    let (Some(m), Some(src)) = (raw.msg, src) else {
        return Ok(MsgBackendConfig::InProcess);
    };
    backend(src, &m)
}

fn backend(src: &SourceText, m: &Spanned<RawMsg>) -> Result<MsgBackendConfig, Vec<ManifestError>> {
    let r = m.get_ref();
    match r.backend.as_ref().map_or("in-process", |b| b.get_ref().as_str()) {
        "in-process" => Ok(MsgBackendConfig::InProcess),
        "nats" => {
            let Some(url) = &r.url else {
                return Err(vec![src.error(
                    src.locate(m.span()),
                    "msg",
                    "the nats backend needs `url = \"nats://host:4222\"`",
                )]);
            };
            let bad = url.get_ref().split(',').map(str::trim).find(|u| {
                !["nats://", "tls://"]
                    .iter()
                    .any(|s| u.starts_with(s) && u.len() > s.len())
            });
            if let Some(bad) = bad {
                return Err(vec![src.error(
                    src.locate(url.span()),
                    "msg.url",
                    format!(
                        "\"{bad}\" is not a NATS server URL: nats://host[:port] or tls://host[:port], several separated by commas"
                    ),
                )]);
            }
            let base = src.path.parent().unwrap_or(Path::new("."));
            Ok(MsgBackendConfig::Nats {
                url: url.get_ref().clone(),
                credentials: r.credentials.as_ref().map(|c| base.join(c)),
                tls: tls(src, m, base)?,
                loc: src.locate(url.span()),
            })
        }
        other => {
            let span = r.backend.as_ref().map_or(m.span(), |b| b.span());
            Err(vec![src.error(
                src.locate(span),
                "msg.backend",
                format!("unknown messaging backend \"{other}\" (expected in-process or nats)"),
            )])
        }
    }
}

/// `ca_file`, `client_cert` and `client_key`, each read now.
fn tls(src: &SourceText, m: &Spanned<RawMsg>, base: &Path) -> Result<NatsTls, Vec<ManifestError>> {
    let r = m.get_ref();
    let mut errors = Vec::new();
    let mut file = |key: &str, value: &Option<Spanned<String>>, read: &dyn Fn(&Path) -> Result<(), String>| {
        let v = value.as_ref()?;
        let path = base.join(v.get_ref());
        match read(&path) {
            Ok(()) => Some(path),
            Err(e) => {
                errors.push(src.error(src.locate(v.span()), format!("msg.{key}"), e));
                None
            }
        }
    };
    let ca_file = file("ca_file", &r.ca_file, &|p| crate::tls::read_roots(p).map(drop));
    let cert = file("client_cert", &r.client_cert, &|p| crate::tls::read_certs(p).map(drop));
    let key = file("client_key", &r.client_key, &|p| {
        crate::tls::read_key(p, None).map(drop).map_err(|e| e.explain(None))
    });
    let client_cert = match (&r.client_cert, &r.client_key) {
        (Some(_), None) | (None, Some(_)) => {
            errors.push(src.error(
                src.locate(m.span()),
                "msg",
                "client_cert and client_key go together: the certificate to present, and its private key",
            ));
            None
        }
        _ => cert.zip(key),
    };
    if let (Some((cert, key)), Some(at)) = (&client_cert, &r.client_key)
        && let Err(e) = crate::tls::read_key(key, None)
            .map_err(|e| e.explain(None))
            .and_then(|k| crate::tls::check_pair(cert, key, k))
    {
        errors.push(src.error(src.locate(at.span()), "msg.client_key", e));
    }
    if errors.is_empty() {
        Ok(NatsTls { ca_file, client_cert })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str, path: &str) -> Result<MsgBackendConfig, String> {
        let file = RuntimeConfigFile::parse(text, Path::new(path)).map_err(|e| e.to_string())?;
        parse(&file).map_err(|e| atoll_manifest::ManifestErrors(e).to_string())
    }

    #[test]
    fn messaging_is_in_process_or_nats() {
        let nats = parsed(
            "[msg]\nbackend = \"nats\"\nurl = \"nats://a:4222, tls://b\"\ncredentials = \"app.creds\"\n",
            "/etc/atoll/rt.toml",
        );
        match nats.unwrap() {
            MsgBackendConfig::Nats { url, credentials, .. } => {
                assert_eq!(url, "nats://a:4222, tls://b");
                assert_eq!(credentials, Some(PathBuf::from("/etc/atoll/app.creds")));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed("", "rt.toml").unwrap(), MsgBackendConfig::InProcess);
        let dir = tempfile::tempdir().unwrap();
        let rt = dir.path().join("rt.toml");
        std::fs::write(
            dir.path().join("key.pem"),
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = parsed(
            "[msg]\nbackend = \"nats\"\nurl = \"tls://a\"\nca_file = \"ca.pem\"\nclient_cert = \"key.pem\"\n",
            rt.to_str().unwrap(),
        )
        .unwrap_err();
        for want in [
            format!(
                "{}:4:11: msg.ca_file: cannot read {}",
                rt.display(),
                dir.path().join("ca.pem").display()
            ),
            format!(
                "{}:5:15: msg.client_cert: {} has no certificate in it",
                rt.display(),
                dir.path().join("key.pem").display()
            ),
            format!("{}:1:1: msg: client_cert and client_key go together", rt.display()),
        ] {
            assert!(err.contains(&want), "missing {want:?} in:\n{err}");
        }
        // A key that is not the certificate's: refused at the key.
        let ca = atoll_testkit::TestCa::new("test CA");
        let (one, other) = (ca.issue(&["localhost"]), ca.issue(&["localhost"]));
        std::fs::write(dir.path().join("client.pem"), &one.cert).unwrap();
        std::fs::write(dir.path().join("other.key"), &other.key).unwrap();
        std::fs::write(dir.path().join("client.key"), &one.key).unwrap();
        let pair = |key: &str| {
            parsed(
                &format!(
                    "[msg]\nbackend = \"nats\"\nurl = \"tls://a\"\nclient_cert = \"client.pem\"\nclient_key = \"{key}\"\n"
                ),
                rt.to_str().unwrap(),
            )
        };
        let err = pair("other.key").unwrap_err();
        let want = format!(
            "{}:5:14: msg.client_key: the private key in {} is not the key of the certificate in {}",
            rt.display(),
            dir.path().join("other.key").display(),
            dir.path().join("client.pem").display()
        );
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
        assert!(pair("client.key").is_ok());
        for (text, want) in [
            (
                "[msg]\nbackend = \"kafka\"\n",
                "rt.toml:2:11: msg.backend: unknown messaging backend \"kafka\" (expected in-process or nats)",
            ),
            (
                "[msg]\nbackend = \"nats\"\n",
                "rt.toml:1:1: msg: the nats backend needs `url",
            ),
            (
                "[msg]\nbackend = \"nats\"\nurl = \"nats://a,http://b\"\n",
                "rt.toml:3:7: msg.url: \"http://b\" is not a NATS server URL",
            ),
        ] {
            let err = parsed(text, "rt.toml").unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
