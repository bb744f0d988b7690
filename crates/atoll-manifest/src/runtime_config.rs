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
//! [variables]                        # one app only; with several, refused (see [apps.NAME])
//! github_token = "ghp_..."           # the environment (ATOLL_VAR_GITHUB_TOKEN) wins over this
//!
//! [apps.shop.variables]              # the app "shop"'s own values (ATOLL_APP_SHOP_VAR_<NAME> wins)
//! api_key = "..."
//!
//! [apps.shop.kv.default]             # the app "shop"'s own [kv.*] and [sql.*], over the server's
//! backend = "memory"
//!
//! [apps.shop.http]                   # the app "shop"'s own outbound limits, key by key over [http]
//! timeout = "5s"
//!
//! [http]
//! timeout = "30s"                    # per outbound request
//! max_response = "10MiB"
//! max_redirects = 5
//!
//! [cluster]
//! coordinator = "redis://10.0.0.5:6379/0"  # schedules run once per cluster, not once per node
//!
//! [msg]                              # read by the msg capability
//! backend = "nats"
//! url = "nats://10.0.0.6:4222"
//! ```

use crate::error::{Location, ManifestErrors, SourceText};
use crate::{parse_duration, parse_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

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
    /// `[variables]`; in an app's view ([`RuntimeConfigFile::for_app`]),
    /// that app's values: its `[apps.NAME.variables]` over these, or those
    /// alone when the server hosts several apps.
    pub variables: BTreeMap<String, String>,
    /// Where `[variables]` is, if the file has it.
    pub variables_loc: Option<Location>,
    /// `[apps.NAME]`: each app's own tables, by app name.
    pub apps: BTreeMap<String, AppTables>,
    /// Whose view of the file this is; `None`: the whole file, as read.
    pub scope: Option<AppScope>,
    pub http: HttpSettings,
    /// `[cluster] coordinator`: the Redis server through which the nodes
    /// running this app agree on which of them runs each schedule tick.
    /// `None`: every node runs every tick.
    pub cluster_coordinator: Option<String>,
}

/// One `[apps.NAME]` table: what the file gives that app alone.
#[derive(Debug, Clone, Default)]
pub struct AppTables {
    pub variables: BTreeMap<String, String>,
    /// `[apps.NAME.http]`: the keys it sets, over the server's `[http]`.
    pub http: HttpOverrides,
    /// Where the table is.
    pub loc: Location,
}

/// The `[http]` keys one table sets, each already checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpOverrides {
    pub timeout: Option<Duration>,
    pub max_response: Option<u64>,
    pub max_redirects: Option<u32>,
}

impl HttpOverrides {
    fn apply(&self, to: &mut HttpSettings) {
        if let Some(t) = self.timeout {
            to.timeout = t;
        }
        if let Some(m) = self.max_response {
            to.max_response = m;
        }
        if let Some(r) = self.max_redirects {
            to.max_redirects = r;
        }
    }
}

/// The app an app's view of the runtime configuration is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppScope {
    pub app: String,
    /// The server hosts several apps: server-wide variables are refused,
    /// and `[kv.*]` and `[sql.*]` are the defaults its own tables override.
    pub several: bool,
}

/// What an `[apps.NAME]` table may hold: an app's own stores, values and
/// outbound limits. The rest (`data_dir`, `[msg]`, `[cluster]`) is the
/// server's: one process has one data directory, one broker and one
/// cluster.
const APP_TABLES: &[&str] = &["variables", "kv", "sql", "http"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    data_dir: Option<String>,
    /// Read by the capabilities (atoll-caps), from `source`.
    #[allow(dead_code)]
    kv: Option<toml::Table>,
    #[allow(dead_code)]
    msg: Option<toml::Table>,
    #[allow(dead_code)]
    sql: Option<toml::Table>,
    variables: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    apps: BTreeMap<String, Spanned<BTreeMap<Spanned<String>, toml::Value>>>,
    #[serde(default)]
    http: RawHttp,
    cluster: Option<Spanned<RawCluster>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    coordinator: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    timeout: Option<Spanned<String>>,
    max_response: Option<Spanned<String>>,
    max_redirects: Option<u32>,
}

/// An `[apps.NAME.http]` table, read from a value that has lost its spans:
/// its errors point at the table's key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppHttp {
    timeout: Option<String>,
    max_response: Option<String>,
    max_redirects: Option<u32>,
}

fn spanned<'a>(src: &SourceText, v: &'a Option<Spanned<String>>) -> Option<(&'a str, Location)> {
    v.as_ref().map(|v| (v.get_ref().as_str(), src.locate(v.span())))
}

/// Checks the `[http]` keys one table sets; each error is `(key, message,
/// where)`, with `key` under `prefix` (`http` or `apps.NAME.http`).
fn http_overrides(
    prefix: &str,
    timeout: Option<(&str, Location)>,
    max_response: Option<(&str, Location)>,
    max_redirects: Option<u32>,
) -> Result<HttpOverrides, Vec<(String, String, Location)>> {
    let mut errors = Vec::new();
    let mut out = HttpOverrides {
        max_redirects,
        ..HttpOverrides::default()
    };
    if let Some((t, at)) = timeout {
        match parse_duration(t) {
            Ok(d) => out.timeout = Some(d),
            Err(e) => errors.push((format!("{prefix}.timeout"), e, at)),
        }
    }
    if let Some((m, at)) = max_response {
        match parse_size(m) {
            Ok(v) => out.max_response = Some(v),
            Err(e) => errors.push((format!("{prefix}.max_response"), e, at)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

impl RuntimeConfigFile {
    pub fn load(path: &Path) -> Result<RuntimeConfigFile, ManifestErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceText::new(path, "").file_error(format!("cannot read the runtime configuration: {e}")))?;
        RuntimeConfigFile::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfigFile, ManifestErrors> {
        let src = SourceText::new(path, text).hiding_variable_values();
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let loc = src.locate(e.span().unwrap_or(0..0));
            src.error(loc, "", e.message().trim())
        })?;
        let mut errors = Vec::new();
        let mut http = HttpSettings::default();
        match http_overrides(
            "http",
            spanned(&src, &raw.http.timeout),
            spanned(&src, &raw.http.max_response),
            raw.http.max_redirects,
        ) {
            Ok(set) => set.apply(&mut http),
            Err(e) => errors.extend(e.into_iter().map(|(key, e, at)| src.error(at, key, e))),
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
        let mut apps = BTreeMap::new();
        for (name, table) in &raw.apps {
            let mut own = AppTables {
                loc: src.locate(table.span()),
                ..AppTables::default()
            };
            for (key, value) in table.get_ref() {
                let at = src.locate(key.span());
                let path = format!("apps.{name}.{}", key.get_ref());
                if !APP_TABLES.contains(&key.get_ref().as_str()) {
                    errors.push(src.error(
                        at,
                        path,
                        format!(
                            "an app's table holds only {}; data_dir, [msg] and [cluster] are the server's",
                            APP_TABLES.join(", ")
                        ),
                    ));
                    continue;
                }
                let is_table = value.is_table();
                if key.get_ref() == "http" && !is_table {
                    errors.push(src.error(at, path, "[apps.NAME.http] is a table like [http]"));
                } else if key.get_ref() == "http" {
                    let checked = value
                        .clone()
                        .try_into::<RawAppHttp>()
                        .map_err(|e| vec![(path.clone(), e.message().trim().to_string(), at)])
                        .and_then(|h| {
                            http_overrides(
                                &path,
                                h.timeout.as_deref().map(|t| (t, at)),
                                h.max_response.as_deref().map(|m| (m, at)),
                                h.max_redirects,
                            )
                        });
                    match checked {
                        Ok(set) => own.http = set,
                        Err(e) => errors.extend(e.into_iter().map(|(key, e, at)| src.error(at, key, e))),
                    }
                } else if key.get_ref() == "variables" {
                    match value.clone().try_into::<BTreeMap<String, String>>() {
                        Ok(v) if is_table => own.variables = v,
                        _ => errors.push(src.error(at, path, "variables are a table of strings: `name = \"value\"`")),
                    }
                } else if !is_table {
                    errors.push(src.error(at, path, format!("[{}.NAME] tables, one per store", key.get_ref())));
                }
            }
            apps.insert(name.clone(), own);
        }
        if !errors.is_empty() {
            return Err(ManifestErrors(errors));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(RuntimeConfigFile {
            data_dir: raw.data_dir.map(|d| base.join(d)),
            variables_loc: raw.variables.as_ref().map(|v| src.locate(v.span())),
            variables: raw.variables.map(Spanned::into_inner).unwrap_or_default(),
            source: Some(src),
            apps,
            scope: None,
            http,
            cluster_coordinator,
        })
    }
}

impl RuntimeConfigFile {
    /// The app `app`'s view of the file: its own `[apps.NAME.variables]`
    /// over the server-wide `[variables]` (alone, when the server hosts
    /// several apps), its own `[apps.NAME.http]` keys over `[http]`, and
    /// its own `[kv.*]` and `[sql.*]` over the server's when the
    /// capabilities read them.
    pub fn for_app(&self, app: &str, several: bool) -> RuntimeConfigFile {
        let mut view = self.clone();
        if several {
            view.variables.clear();
        }
        if let Some(own) = self.apps.get(app) {
            view.variables.extend(own.variables.clone());
            own.http.apply(&mut view.http);
        }
        view.scope = Some(AppScope {
            app: app.to_string(),
            several,
        });
        view
    }

    /// Checks the file against the apps a server starts with. With several
    /// apps, server-wide `[variables]` are refused: a value there would
    /// reach every app declaring a variable of that name, a secret among
    /// them. The answer is a warning for each `[apps.NAME]` naming no app
    /// served: not an error, as `PUT /-/apps/NAME` may deploy it later.
    pub fn check_served(&self, served: &[&str], several: bool) -> Result<Vec<String>, ManifestErrors> {
        if let (true, false, Some(src)) = (several, self.variables.is_empty(), &self.source) {
            let loc = self.variables_loc.unwrap_or_default();
            return Err(ManifestErrors(vec![src.error(
                loc,
                "variables",
                "this server hosts several apps, and a value here would reach every app declaring a variable of that name; give each app its own under [apps.NAME.variables]",
            )]));
        }
        let path = self
            .source
            .as_ref()
            .map(|s| s.path.display().to_string())
            .unwrap_or_default();
        Ok(self
            .apps
            .iter()
            .filter(|(name, _)| !served.contains(&name.as_str()))
            .map(|(name, t)| {
                format!(
                    "{path}:{}: [apps.{name}] names no app served; it applies if an app \"{name}\" is deployed (PUT /-/apps/{name})",
                    t.loc.line
                )
            })
            .collect())
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
    fn an_error_quoting_a_variable_never_shows_its_value() {
        for text in ["[variables]\ntoken = \"s3cret\n", "[variables]\ntoken = 5e3cret\n"] {
            let err = RuntimeConfigFile::parse(text, Path::new("rt.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("rt.toml:2:"), "{err}");
            assert!(!err.contains("3cret"), "{err}");
            assert!(err.contains("token = ***"), "{err}");
        }
    }

    #[test]
    fn an_error_quoting_a_url_never_shows_its_password() {
        let err = RuntimeConfigFile::parse(
            "[cluster]\ncoordinator = \"redis://admin:hunter2@10.0.0.5:99999/3\"\n",
            Path::new("rt.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("port \"99999\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("redis://admin:***@10.0.0.5:99999/3"), "{err}");
    }

    #[test]
    fn parses_the_host_settings_and_accepts_capability_sections() {
        let cfg = RuntimeConfigFile::parse(
            r#"
data_dir = "state"
[kv.cache]
backend = "memory"
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
    fn each_app_sees_its_own_table_and_with_several_apps_nothing_server_wide() {
        let text = "[variables]\ntoken = \"all\"\nregion = \"all\"\n\n[apps.shop.variables]\ntoken = \"shop's\"\n\n[apps.gone.kv.default]\nbackend = \"memory\"\n";
        let cfg = RuntimeConfigFile::parse(text, Path::new("rt.toml")).unwrap();
        let one = cfg.for_app("shop", false);
        assert_eq!(one.variables["token"], "shop's");
        assert_eq!(one.variables["region"], "all", "one app: [variables] is its own");
        let shop = cfg.for_app("shop", true);
        assert_eq!(shop.variables.get("token").map(String::as_str), Some("shop's"));
        assert_eq!(shop.variables.get("region"), None, "several apps: nothing server-wide");
        assert!(cfg.for_app("blog", true).variables.is_empty());
        assert_eq!(shop.scope.as_ref().map(|s| s.app.as_str()), Some("shop"));
        // [variables] with several apps: refused where it is.
        let err = cfg.check_served(&["shop", "blog"], true).unwrap_err().to_string();
        assert!(
            err.contains("rt.toml:1:1: variables: this server hosts several apps"),
            "{err}"
        );
        // A table naming no app served: a warning with its line.
        let warned = cfg.check_served(&["shop"], false).unwrap();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].starts_with("rt.toml:8: [apps.gone] names no app served"),
            "{warned:?}"
        );
    }

    #[test]
    fn an_apps_http_keys_override_the_servers_one_by_one() {
        let text = "[http]\ntimeout = \"10s\"\nmax_redirects = 2\n\n[apps.shop.http]\ntimeout = \"500ms\"\nmax_response = \"1KiB\"\n";
        let cfg = RuntimeConfigFile::parse(text, Path::new("rt.toml")).unwrap();
        let shop = cfg.for_app("shop", true).http;
        assert_eq!(shop.timeout, Duration::from_millis(500));
        assert_eq!(shop.max_response, 1024);
        assert_eq!(shop.max_redirects, 2, "a key the app does not set is the server's");
        let blog = cfg.for_app("blog", true).http;
        assert_eq!(blog.timeout, Duration::from_secs(10));
        assert_eq!(blog.max_response, HttpSettings::default().max_response);
    }

    #[test]
    fn an_apps_table_holds_only_its_variables_stores_and_outbound_limits() {
        for (text, expected) in [
            (
                "[apps.a.msg]\nbackend = \"nats\"\n",
                "rt.toml:1:9: apps.a.msg: an app's table holds only",
            ),
            (
                "[apps.a.http]\ntimeout = \"soon\"\n",
                "rt.toml:1:9: apps.a.http.timeout:",
            ),
            (
                "[apps.a]\nhttp = 3\n",
                "rt.toml:2:1: apps.a.http: [apps.NAME.http] is a table like [http]",
            ),
            (
                "[apps.a.http]\nmax_body = \"1MiB\"\n",
                "rt.toml:1:9: apps.a.http: unknown field `max_body`",
            ),
            (
                "[apps.a]\ndata_dir = \"x\"\n",
                "rt.toml:2:1: apps.a.data_dir: an app's table holds only",
            ),
            (
                "[apps.a]\nkv = 3\n",
                "rt.toml:2:1: apps.a.kv: [kv.NAME] tables, one per store",
            ),
            (
                "[apps.a.variables]\nn = 3\n",
                "rt.toml:1:9: apps.a.variables: variables are a table of strings",
            ),
        ] {
            let err = RuntimeConfigFile::parse(text, Path::new("rt.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
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
    fn errors_are_located() {
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
