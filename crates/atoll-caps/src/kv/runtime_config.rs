//! Which backend serves each store: the runtime configuration's `[kv.NAME]`
//! sections, and the defaults when a store has none.
//!
//! ```toml
//! [kv.default]
//! backend = "redb"                   # redb (default) | memory | redis
//! path = "kv.redb"                   # redb file, relative to data_dir
//!
//! [kv.sessions]
//! backend = "redis"
//! url = "redis://127.0.0.1:6379/0"
//! prefix = "shop"                    # key prefix (default: "atoll:<app name>")
//! ```

use super::{KvStore, MemoryStore, RedbStores, RedisStore};
use crate::capability::app_runtime_sections;
use atoll_manifest::{Location, Manifest, ManifestError, RuntimeConfigFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// One `[kv.NAME]` section.
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

#[derive(Deserialize, Default)]
struct Sections {
    #[serde(default)]
    kv: BTreeMap<String, Spanned<RawKv>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKv {
    backend: Option<Spanned<String>>,
    path: Option<String>,
    url: Option<Spanned<String>>,
    prefix: Option<String>,
}

/// Every `[kv.NAME]` of the runtime configuration, or where each is wrong.
pub fn parse(runtime: &RuntimeConfigFile) -> Result<BTreeMap<String, KvBackendConfig>, Vec<ManifestError>> {
    let (scoped, src) = app_runtime_sections::<Sections>(runtime)?;
    let Some(src) = src else {
        return Ok(BTreeMap::new());
    };
    let mut errors = Vec::new();
    let mut kv = BTreeMap::new();
    // An app's own `[apps.NAME.kv.*]` come last, so they win.
    for (name, spec, prefix) in scoped
        .into_iter()
        .flat_map(|(p, s)| s.kv.into_iter().map(move |(n, v)| (n, v, p.clone())))
    {
        let key = format!("{prefix}kv.{name}");
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
    if errors.is_empty() { Ok(kv) } else { Err(errors) }
}

/// Where one key-value store lives: what [`open_stores`] opens, and what a
/// log can say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvLocation {
    /// In this process only, gone on restart.
    Memory,
    /// In an embedded redb file.
    Redb { file: PathBuf },
    /// In Redis at `url` (which may hold a password), keys under `prefix`.
    Redis { url: String, prefix: String },
}

/// Where the store `store` lives: as `config` says, else in
/// `<data_dir>/kv.redb`; Redis keys go under `atoll:<app>` unless it names a
/// prefix. The one place these defaults are decided.
pub fn kv_location(
    manifest: &Manifest,
    config: &BTreeMap<String, KvBackendConfig>,
    data_dir: &Path,
    store: &str,
) -> KvLocation {
    match config.get(store) {
        None | Some(KvBackendConfig::Redb { path: None }) => KvLocation::Redb {
            file: data_dir.join("kv.redb"),
        },
        Some(KvBackendConfig::Redb { path: Some(path) }) => KvLocation::Redb {
            file: data_dir.join(path),
        },
        Some(KvBackendConfig::Memory) => KvLocation::Memory,
        Some(KvBackendConfig::Redis { url, prefix, .. }) => KvLocation::Redis {
            url: url.clone(),
            prefix: prefix.clone().unwrap_or_else(|| format!("atoll:{}", manifest.app.name)),
        },
    }
}

/// Opens every store some function lists in `kv_stores`. Stores in one
/// redb file share its handle.
pub(super) fn open_stores(
    manifest: &Manifest,
    config: &BTreeMap<String, KvBackendConfig>,
    data_dir: &Path,
) -> Result<BTreeMap<String, Arc<dyn KvStore>>, Vec<ManifestError>> {
    let mut errors = Vec::new();
    let mut kv: BTreeMap<String, Arc<dyn KvStore>> = BTreeMap::new();
    let mut redb_files: BTreeMap<PathBuf, RedbStores> = BTreeMap::new();
    for f in manifest.functions.values() {
        for store in &f.kv_stores {
            if kv.contains_key(store) {
                continue;
            }
            let built: Result<Arc<dyn KvStore>, String> = match kv_location(manifest, config, data_dir, store) {
                KvLocation::Memory => Ok(Arc::new(MemoryStore::default())),
                KvLocation::Redb { file } => {
                    let stores = match redb_files.get(&file) {
                        Some(s) => Ok(s.clone()),
                        None => RedbStores::open(&file).inspect(|s| {
                            redb_files.insert(file.clone(), s.clone());
                        }),
                    };
                    stores.map(|s| Arc::new(s.store(store)) as Arc<dyn KvStore>)
                }
                KvLocation::Redis { url, prefix } => {
                    RedisStore::new(&url, &prefix, store).map(|s| Arc::new(s) as Arc<dyn KvStore>)
                }
            };
            match built {
                Ok(s) => {
                    kv.insert(store.clone(), s);
                }
                Err(e) => errors.push(manifest.source.error(
                    f.loc,
                    format!("functions.{}.kv_stores", f.name),
                    format!("kv store \"{store}\": {e}"),
                )),
            }
        }
    }
    if errors.is_empty() { Ok(kv) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<BTreeMap<String, KvBackendConfig>, String> {
        let runtime = RuntimeConfigFile::parse(text, Path::new("rt.toml")).map_err(|e| e.to_string())?;
        parse(&runtime).map_err(|e| atoll_manifest::ManifestErrors(e).to_string())
    }

    #[test]
    fn parses_every_backend() {
        let kv = parse_text(
            "[kv.default]\n[kv.cache]\nbackend = \"memory\"\n[kv.sessions]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\nprefix = \"shop\"\n[http]\ntimeout = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(kv["default"], KvBackendConfig::Redb { path: None });
        assert_eq!(kv["cache"], KvBackendConfig::Memory);
        assert!(
            matches!(&kv["sessions"], KvBackendConfig::Redis { url, prefix: Some(p), .. } if url.ends_with("/2") && p == "shop")
        );
    }

    #[test]
    fn errors_are_located() {
        let err = parse_text(
            "[kv.a]\nbackend = \"mongo\"\n[kv.b]\nbackend = \"redis\"\nurl = \"http://x\"\n[kv.c]\nbackend = \"redis\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("rt.toml:2:11: kv.a.backend: unknown key-value backend \"mongo\""),
            "{err}"
        );
        assert!(err.contains("rt.toml:5:7: kv.b.url: a Redis URL starts with"), "{err}");
        assert!(err.contains("kv.c: the redis backend needs `url"), "{err}");
        let err = parse_text("[kv.a]\nbackned = 1\n").unwrap_err();
        assert!(
            err.contains("rt.toml:2:1") && err.contains("unknown field `backned`"),
            "{err}"
        );
    }
}
