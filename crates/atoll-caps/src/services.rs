//! The backends of one app, built once at load from the manifest and the
//! runtime configuration, and the per-function [`Grants`] cut from them.

use crate::Grants;
use crate::files::StaticFiles;
use crate::http::{AuthRule, OutboundHttp};
use crate::kv::{KvStore, MemoryStore, RedbStores, RedisStore};
use crate::msg::{Broker, InProcessBroker, NatsBroker};
use crate::vars::Variables;
use atoll_manifest::{
    Capability, Function, KvBackendConfig, Manifest, ManifestError, ManifestErrors, MsgBackendConfig, RuntimeConfigFile,
};
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where one key-value store lives: what [`Services::build`] opens, and
/// what a log can say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvLocation {
    /// In this process only, gone on restart.
    Memory,
    /// In an embedded redb file.
    Redb { file: PathBuf },
    /// In Redis at `url` (which may hold a password), keys under `prefix`.
    Redis { url: String, prefix: String },
}

/// Where the store `store` lives: as the runtime configuration says, else in
/// `<data_dir>/kv.redb`; Redis keys go under `atoll:<app>` unless it names a
/// prefix. The one place these defaults are decided.
pub fn kv_location(manifest: &Manifest, runtime: &RuntimeConfigFile, data_dir: &Path, store: &str) -> KvLocation {
    match runtime.kv.get(store) {
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

pub struct Services {
    kv: BTreeMap<String, Arc<dyn KvStore>>,
    vars: Arc<Variables>,
    files: Option<Arc<dyn StaticFiles>>,
    auth: Vec<AuthRule>,
    broker: Arc<dyn Broker>,
    runtime: RuntimeConfigFile,
}

impl Services {
    /// Builds every backend the app's functions were granted. `data_dir`
    /// holds embedded stores; `env` reads environment variables.
    pub fn build(
        manifest: &Manifest,
        runtime: RuntimeConfigFile,
        data_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
        files: Option<Arc<dyn StaticFiles>>,
    ) -> Result<Services, ManifestErrors> {
        let mut errors: Vec<ManifestError> = Vec::new();
        let vars = match Variables::resolve(manifest, &runtime.variables, env) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                errors.extend(e);
                Arc::new(Variables::default())
            }
        };

        let mut kv: BTreeMap<String, Arc<dyn KvStore>> = BTreeMap::new();
        let mut redb_files: BTreeMap<PathBuf, RedbStores> = BTreeMap::new();
        for f in manifest.functions.values() {
            for store in &f.kv_stores {
                if kv.contains_key(store) {
                    continue;
                }
                let built: Result<Arc<dyn KvStore>, String> = match kv_location(manifest, &runtime, data_dir, store) {
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

        let mut auth = Vec::new();
        for (i, rule) in manifest.http_auth.iter().enumerate() {
            let mut headers = Vec::new();
            for (name, template) in &rule.headers {
                let key = format!("http_auth[{i}].headers.{name}");
                let rendered = template.render(|n| vars.get(n).flatten().map(|v| v.expose().to_string()));
                let value = rendered.and_then(|v| {
                    HeaderValue::try_from(v).map_err(|_| "the rendered value is not a valid header value".to_string())
                });
                match (HeaderName::try_from(name.as_str()), value) {
                    (Ok(n), Ok(mut v)) => {
                        v.set_sensitive(true);
                        headers.push((n, v));
                    }
                    (_, Err(e)) => errors.push(manifest.source.error(rule.loc, key, e)),
                    (Err(e), _) => errors.push(manifest.source.error(rule.loc, key, e.to_string())),
                }
            }
            auth.push(AuthRule {
                hosts: rule.hosts.clone(),
                headers,
            });
        }

        let broker: Arc<dyn Broker> = match &runtime.msg {
            MsgBackendConfig::InProcess => Arc::new(InProcessBroker::new()),
            MsgBackendConfig::Nats { url, credentials, loc } => match NatsBroker::new(url, credentials.clone()) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    let src = runtime.source.as_ref().expect("a [msg] table comes from a file");
                    errors.push(src.error(*loc, "msg.url", e));
                    Arc::new(InProcessBroker::new())
                }
            },
        };
        if errors.is_empty() {
            Ok(Services {
                kv,
                vars,
                files,
                auth,
                broker,
                runtime,
            })
        } else {
            Err(ManifestErrors(errors))
        }
    }

    /// What `f` may touch. Fails only if its HTTP client cannot be built.
    pub fn grants_for(&self, f: &Function) -> Result<Grants, String> {
        let caps = &f.capabilities;
        let has = |c| caps.contains(&c);
        Ok(Grants {
            capabilities: caps.clone(),
            kv: if has(Capability::Kv) {
                f.kv_stores
                    .iter()
                    .filter_map(|s| self.kv.get(s).map(|b| (s.clone(), b.clone())))
                    .collect()
            } else {
                BTreeMap::new()
            },
            http: if has(Capability::Http) {
                Some(OutboundHttp::new(
                    f.allowed_hosts.clone(),
                    self.auth.clone(),
                    self.runtime.http.clone(),
                )?)
            } else {
                None
            },
            vars: has(Capability::Vars).then(|| self.vars.clone()),
            secrets: if has(Capability::Vars) {
                f.secrets.iter().cloned().collect()
            } else {
                Default::default()
            },
            files: if has(Capability::Files) {
                self.files.clone()
            } else {
                None
            },
            broker: has(Capability::Msg).then(|| self.broker.clone()),
            publish_topics: if has(Capability::Msg) {
                f.publish_topics.clone()
            } else {
                Vec::new()
            },
            links: f
                .links
                .iter()
                .map(|l| (l.namespace.clone(), Arc::from(l.function.as_str())))
                .collect(),
        })
    }

    /// The broker subscriptions are served from and functions publish to.
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }
}
