//! The runtime configuration: what backs an app's capabilities on this
//! machine. It belongs to whoever runs the app, not to the app: the same
//! `atoll.toml` runs on embedded defaults on a laptop and on Redis in
//! production by changing only this file.
//!
//! ```toml
//! data_dir = "/var/lib/atoll"        # embedded stores (default: .atoll beside the manifest)
//!
//! [kv.default]
//! backend = "redb"                   # redb (default) | memory | redis
//! path = "kv.redb"                   # redb file, relative to data_dir
//!
//! [kv.sessions]
//! backend = "redis"
//! url = "redis://127.0.0.1:6379/0"
//! prefix = "shop"                    # key prefix (default: "atoll:<app name>")
//!
//! [variables]
//! github_token = "ghp_..."           # the environment (ATOLL_VAR_GITHUB_TOKEN) wins over this
//!
//! [http]
//! timeout = "30s"                    # per outbound request
//! max_response = "10MiB"
//! max_redirects = 5
//!
//! [cluster]
//! coordinator = "redis://10.0.0.5:6379/0"  # schedules run once per cluster, not once per node
//!
//! [msg]
//! backend = "nats"                   # in-process (default) | nats
//! url = "nats://10.0.0.6:4222"       # several servers: "nats://a:4222,nats://b:4222"
//! credentials = "/etc/atoll/app.creds"   # optional, a NATS .creds file
//! ```

use crate::error::{ManifestErrors, SourceText};
use crate::{Location, parse_duration, parse_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvBackendConfig {
    /// On disk, in one redb file; each store is a table of its own.
    Redb { path: Option<PathBuf> },
    /// In this process only; lost on restart.
    Memory,
    /// A Redis server; each store is a key prefix of its own.
    Redis {
        url: String,
        prefix: Option<String>,
        loc: Location,
    },
}

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
        loc: Location,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub max_response: u64,
    pub max_redirects: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(30),
            max_response: 10 << 20,
            max_redirects: 5,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeConfigFile {
    /// `None` when no file was given: everything is a default.
    pub source: Option<SourceText>,
    pub data_dir: Option<PathBuf>,
    pub kv: BTreeMap<String, KvBackendConfig>,
    pub variables: BTreeMap<String, String>,
    pub http: HttpSettings,
    /// `[cluster] coordinator`: the Redis server through which the nodes
    /// running this app agree on which of them runs each schedule tick.
    /// `None`: every node runs every tick.
    pub cluster_coordinator: Option<String>,
    /// `[msg]`: the in-process broker, or NATS.
    pub msg: MsgBackendConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: Option<String>,
    #[serde(default)]
    kv: BTreeMap<String, Spanned<RawKv>>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    http: RawHttp,
    cluster: Option<Spanned<RawCluster>>,
    msg: Option<Spanned<RawMsg>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMsg {
    backend: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    credentials: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    coordinator: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKv {
    backend: Option<Spanned<String>>,
    path: Option<String>,
    url: Option<Spanned<String>>,
    prefix: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    timeout: Option<Spanned<String>>,
    max_response: Option<Spanned<String>>,
    max_redirects: Option<u32>,
}

impl RuntimeConfigFile {
    pub fn load(path: &Path) -> Result<RuntimeConfigFile, ManifestErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceText::new(path, "").file_error(format!("cannot read the runtime configuration: {e}")))?;
        RuntimeConfigFile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfigFile, ManifestErrors> {
        let src = SourceText::new(path, text);
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let loc = src.locate(e.span().unwrap_or(0..0));
            src.error(loc, "", e.message().trim())
        })?;
        let mut errors = Vec::new();
        let mut kv = BTreeMap::new();
        for (name, spec) in raw.kv {
            let key = format!("kv.{name}");
            let r = spec.get_ref();
            let backend = r.backend.as_ref().map_or("redb", |b| b.get_ref().as_str());
            let config = match backend {
                "redb" => KvBackendConfig::Redb {
                    path: r.path.as_ref().map(PathBuf::from),
                },
                "memory" => KvBackendConfig::Memory,
                "redis" => match &r.url {
                    Some(url)
                        if ["redis://", "rediss://", "unix://"]
                            .iter()
                            .any(|s| url.get_ref().starts_with(s)) =>
                    {
                        KvBackendConfig::Redis {
                            url: url.get_ref().clone(),
                            prefix: r.prefix.clone(),
                            loc: src.locate(url.span()),
                        }
                    }
                    Some(url) => {
                        errors.push(src.error(
                            src.locate(url.span()),
                            format!("{key}.url"),
                            "a Redis URL starts with redis://, rediss:// or unix://",
                        ));
                        continue;
                    }
                    None => {
                        errors.push(src.error(
                            src.locate(spec.span()),
                            &key,
                            "the redis backend needs `url = \"redis://host:port/db\"`",
                        ));
                        continue;
                    }
                },
                other => {
                    let span = r.backend.as_ref().map_or(spec.span(), |b| b.span());
                    errors.push(src.error(
                        src.locate(span),
                        format!("{key}.backend"),
                        format!("unknown key-value backend \"{other}\" (expected redb, memory or redis)"),
                    ));
                    continue;
                }
            };
            kv.insert(name, config);
        }
        let mut http = HttpSettings::default();
        if let Some(t) = &raw.http.timeout {
            match parse_duration(t.get_ref()) {
                Ok(d) => http.timeout = d,
                Err(e) => errors.push(src.error(src.locate(t.span()), "http.timeout", e)),
            }
        }
        if let Some(m) = &raw.http.max_response {
            match parse_size(m.get_ref()) {
                Ok(v) => http.max_response = v,
                Err(e) => errors.push(src.error(src.locate(m.span()), "http.max_response", e)),
            }
        }
        if let Some(r) = raw.http.max_redirects {
            http.max_redirects = r;
        }
        let mut cluster_coordinator = None;
        if let Some(cluster) = &raw.cluster {
            match &cluster.get_ref().coordinator {
                Some(url) => match check_coordinator(url.get_ref()) {
                    Ok(()) => cluster_coordinator = Some(url.get_ref().clone()),
                    Err(e) => errors.push(src.error(src.locate(url.span()), "cluster.coordinator", e)),
                },
                None => errors.push(src.error(
                    src.locate(cluster.span()),
                    "cluster",
                    "a cluster needs `coordinator = \"redis://host:port/db\"`",
                )),
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let msg = match &raw.msg {
            None => MsgBackendConfig::InProcess,
            Some(m) => match msg_backend(&src, m, base) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(*e);
                    MsgBackendConfig::InProcess
                }
            },
        };
        if !errors.is_empty() {
            return Err(ManifestErrors(errors));
        }
        Ok(RuntimeConfigFile {
            data_dir: raw.data_dir.map(|d| base.join(d)),
            source: Some(src),
            kv,
            variables: raw.variables,
            http,
            cluster_coordinator,
            msg,
        })
    }
}

/// `[msg]`: `backend = "nats"` needs a `url` of `nats://` (or `tls://`)
/// servers, separated by commas; `credentials` is a file, relative to this
/// one.
fn msg_backend(
    src: &SourceText,
    m: &Spanned<RawMsg>,
    base: &Path,
) -> Result<MsgBackendConfig, Box<crate::error::ManifestError>> {
    let r = m.get_ref();
    match r.backend.as_ref().map_or("in-process", |b| b.get_ref().as_str()) {
        "in-process" => Ok(MsgBackendConfig::InProcess),
        "nats" => {
            let Some(url) = &r.url else {
                return Err(Box::new(src.error(
                    src.locate(m.span()),
                    "msg",
                    "the nats backend needs `url = \"nats://host:4222\"`",
                )));
            };
            let bad = url.get_ref().split(',').map(str::trim).find(|u| {
                !["nats://", "tls://"]
                    .iter()
                    .any(|s| u.starts_with(s) && u.len() > s.len())
            });
            if let Some(bad) = bad {
                return Err(Box::new(src.error(
                    src.locate(url.span()),
                    "msg.url",
                    format!("\"{bad}\" is not a NATS server URL: nats://host[:port] or tls://host[:port], several separated by commas"),
                )));
            }
            Ok(MsgBackendConfig::Nats {
                url: url.get_ref().clone(),
                credentials: r.credentials.as_ref().map(|c| base.join(c)),
                loc: src.locate(url.span()),
            })
        }
        other => {
            let span = r.backend.as_ref().map_or(m.span(), |b| b.span());
            Err(Box::new(src.error(
                src.locate(span),
                "msg.backend",
                format!("unknown messaging backend \"{other}\" (expected in-process or nats)"),
            )))
        }
    }
}

/// The coordinator URL is checked here, with the rest of the file, so that
/// `atoll check` refuses what `serve` could not connect to. Only plain
/// `redis://` over TCP: the coordinator must be reachable by every node (a
/// Unix socket is not), and the Redis client is built without TLS.
fn check_coordinator(url: &str) -> Result<(), String> {
    const FORM: &str = "redis://[user:password@]host[:port][/db]";
    let Some(rest) = url.strip_prefix("redis://") else {
        return Err(format!(
            "the coordinator is a Redis server every node can reach: {FORM}"
        ));
    };
    if rest.contains(['?', '#']) {
        return Err(format!("nothing may follow the database number: {FORM}"));
    }
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let address = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port, host_ok) = match address.strip_prefix('[') {
        Some(v6) => {
            let Some((h, p)) = v6.split_once(']') else {
                return Err(format!(
                    "\"{address}\" opens an IPv6 address with [ but never closes it"
                ));
            };
            let port = (!p.is_empty()).then(|| p.strip_prefix(':').unwrap_or(p));
            (
                h,
                port,
                h.chars().all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.')),
            )
        }
        None => {
            let (h, port) = match address.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (address, None),
            };
            (
                h,
                port,
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')),
            )
        }
    };
    if host.is_empty() {
        return Err(format!("no host: {FORM}"));
    }
    if !host_ok {
        return Err(format!("\"{host}\" is not a host name or address"));
    }
    if matches!(host, "0.0.0.0" | "::") {
        return Err(format!("\"{host}\" is every address, not one a node can connect to"));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0)
    {
        return Err(format!("port \"{port}\" is not a number from 1 to 65535"));
    }
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!("database \"{db}\" is not a number (redis://host:port/0)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_backend() {
        let cfg = RuntimeConfigFile::parse(
            r#"
data_dir = "state"
[kv.default]
[kv.cache]
backend = "memory"
[kv.sessions]
backend = "redis"
url = "redis://127.0.0.1:6379/2"
prefix = "shop"
[variables]
token = "abc"
[http]
timeout = "2s"
max_response = "1MiB"
max_redirects = 0
[cluster]
coordinator = "redis://:pw@10.0.0.5:6380/3"
"#,
            Path::new("conf/runtime.toml"),
        )
        .unwrap();
        assert_eq!(cfg.data_dir, Some(PathBuf::from("conf/state")));
        assert_eq!(cfg.kv["default"], KvBackendConfig::Redb { path: None });
        assert_eq!(cfg.kv["cache"], KvBackendConfig::Memory);
        assert!(
            matches!(&cfg.kv["sessions"], KvBackendConfig::Redis { url, prefix: Some(p), .. } if url.ends_with("/2") && p == "shop")
        );
        assert_eq!(cfg.variables["token"], "abc");
        assert_eq!(cfg.http.timeout, Duration::from_secs(2));
        assert_eq!(cfg.http.max_response, 1 << 20);
        assert_eq!(cfg.http.max_redirects, 0);
        assert_eq!(cfg.cluster_coordinator.as_deref(), Some("redis://:pw@10.0.0.5:6380/3"));
        let none = RuntimeConfigFile::parse("", Path::new("rt.toml")).unwrap();
        assert_eq!(
            none.cluster_coordinator, None,
            "no [cluster]: every node runs every tick"
        );
    }

    #[test]
    fn a_coordinator_is_a_redis_url_every_node_can_reach() {
        for good in [
            "redis://redis",
            "redis://127.0.0.1:6379",
            "redis://redis.internal:6379/2",
            "redis://user:s3cret@redis:6379/0",
            "redis://[::1]:6379/0",
        ] {
            assert_eq!(check_coordinator(good), Ok(()), "{good}");
        }
        let cases = [
            (
                "http://redis:6379",
                "the coordinator is a Redis server every node can reach",
            ),
            (
                "rediss://redis:6379",
                "the coordinator is a Redis server every node can reach",
            ),
            (
                "unix:///run/redis.sock",
                "the coordinator is a Redis server every node can reach",
            ),
            ("redis://", "no host"),
            ("redis://:6379/0", "no host"),
            ("redis://red is:6379", "\"red is\" is not a host name or address"),
            ("redis://0.0.0.0:6379", "\"0.0.0.0\" is every address"),
            ("redis://redis:port", "port \"port\" is not a number from 1 to 65535"),
            ("redis://redis:0", "port \"0\" is not a number"),
            ("redis://redis:70000", "port \"70000\" is not a number"),
            ("redis://[::1:6379", "never closes it"),
            ("redis://redis:6379/zero", "database \"zero\" is not a number"),
            (
                "redis://redis:6379/0?protocol=3",
                "nothing may follow the database number",
            ),
        ];
        for (url, expected) in cases {
            let err = check_coordinator(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn messaging_is_in_process_or_nats() {
        let cfg = RuntimeConfigFile::parse(
            "[msg]\nbackend = \"nats\"\nurl = \"nats://a:4222, tls://b\"\ncredentials = \"app.creds\"\n",
            Path::new("/etc/atoll/rt.toml"),
        )
        .unwrap();
        match cfg.msg {
            MsgBackendConfig::Nats { url, credentials, .. } => {
                assert_eq!(url, "nats://a:4222, tls://b");
                assert_eq!(credentials, Some(PathBuf::from("/etc/atoll/app.creds")));
            }
            other => panic!("{other:?}"),
        }
        let cfg = RuntimeConfigFile::parse("", Path::new("rt.toml")).unwrap();
        assert_eq!(cfg.msg, MsgBackendConfig::InProcess);
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
            let err = RuntimeConfigFile::parse(text, Path::new("rt.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn errors_are_located() {
        let err = RuntimeConfigFile::parse(
            "[kv.a]\nbackend = \"mongo\"\n[kv.b]\nbackend = \"redis\"\nurl = \"http://x\"\n[kv.c]\nbackend = \"redis\"\n",
            Path::new("rt.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rt.toml:2:11: kv.a.backend: unknown key-value backend \"mongo\""),
            "{err}"
        );
        assert!(err.contains("rt.toml:5:7: kv.b.url: a Redis URL starts with"), "{err}");
        assert!(err.contains("kv.c: the redis backend needs `url"), "{err}");
        let err = RuntimeConfigFile::parse(
            "[http]\ntimeout = \"99999999999999999999999h\"\nmax_response = \"2000GiB\"\n",
            Path::new("rt.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "rt.toml:2:11: http.timeout: \"99999999999999999999999h\" is too long: the longest duration is 8760h"
            ),
            "{err}"
        );
        assert!(
            err.contains("rt.toml:3:16: http.max_response: \"2000GiB\" is too large: the largest size is 1024GiB"),
            "{err}"
        );
        let err = RuntimeConfigFile::parse("[http]\ntimeout = \"0.0000001ms\"\n", Path::new("rt.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rt.toml:2:11: http.timeout: \"0.0000001ms\" is shorter than the smallest duration, 1ns"),
            "{err}"
        );
        let err = RuntimeConfigFile::parse("[kv.a]\nbackned = 1\n", Path::new("rt.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rt.toml:2:1") && err.contains("unknown field `backned`"),
            "{err}"
        );
        let err = RuntimeConfigFile::parse(
            "[http]\ntimeout = \"1s\"\n\n[cluster]\ncoordinator = \"redis://redis:637900\"\n",
            Path::new("rt.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rt.toml:5:15: cluster.coordinator: port \"637900\" is not a number from 1 to 65535"),
            "{err}"
        );
        let err = RuntimeConfigFile::parse("[cluster]\n", Path::new("rt.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster: a cluster needs `coordinator"), "{err}");
        let err = RuntimeConfigFile::parse("[cluster]\ncoordinater = \"redis://r\"\n", Path::new("rt.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rt.toml:2:1") && err.contains("unknown field `coordinater`"),
            "{err}"
        );
    }
}
