use crate::config::RuntimeConfig;
use crate::source::AppSource;
use atoll_caps::msg::Broker;
use atoll_caps::{Grants, Services};
use atoll_engine::{Engine, Limits};
use atoll_manifest::{Function, Manifest, ManifestError, ManifestErrors};
use atoll_wapc::{WapcAbi, WapcFunction};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A function ready to serve: its declaration, grants and compiled module.
pub struct LoadedFunction {
    pub name: Arc<str>,
    pub decl: Function,
    pub grants: Arc<Grants>,
    pub wapc: WapcFunction,
}

/// A loaded app: the validated manifest and every function, compiled,
/// checked and pre-instantiated.
pub struct App {
    pub manifest: Manifest,
    pub(crate) functions: BTreeMap<String, Arc<LoadedFunction>>,
    broker: Arc<dyn Broker>,
    pub(crate) engine: Engine,
}

impl App {
    /// Loads the app in a directory, at a manifest path, or in a bundle file.
    /// Every problem, in the manifest or in a module, is reported against
    /// the manifest line that declared it.
    pub async fn load(path: &Path, engine: &Engine, config: &RuntimeConfig) -> Result<App, ManifestErrors> {
        let source = AppSource::open(path, &config.bundle_limits)?;
        App::from_source(&source, engine, config).await
    }

    /// Loads the app `source` holds: its manifest, then every function.
    pub async fn from_source(
        source: &AppSource,
        engine: &Engine,
        config: &RuntimeConfig,
    ) -> Result<App, ManifestErrors> {
        let manifest = source.manifest()?;
        let abi = WapcAbi::new(engine).map_err(|e| manifest.source.file_error(e.to_string()))?;
        let data_dir = config
            .data_dir
            .clone()
            .or_else(|| config.file.data_dir.clone())
            .unwrap_or_else(|| source.default_data_dir());
        let files = source.static_files(&manifest);
        let services = Services::build(
            &manifest,
            config.file.clone(),
            &data_dir,
            |k| std::env::var(k).ok(),
            files,
        )?;
        let max_memory = engine.config().max_memory;
        let mut errors: Vec<ManifestError> = Vec::new();
        // Functions built from the same module share one compilation.
        let mut modules: BTreeMap<[u8; 32], (Vec<u8>, Vec<Function>)> = BTreeMap::new();
        for f in manifest.functions.values() {
            let key = format!("functions.{}", f.name);
            if f.memory > max_memory {
                errors.push(manifest.source.error(
                    f.memory_loc,
                    format!("{key}.memory"),
                    format!(
                        "{} MiB is more than this server allows ({} MiB); lower it or start the server with a larger --max-memory",
                        f.memory >> 20,
                        max_memory >> 20
                    ),
                ));
                continue;
            }
            match source.module(&manifest, f) {
                Ok(wasm) => {
                    let digest: [u8; 32] = Sha256::digest(&wasm).into();
                    modules
                        .entry(digest)
                        .or_insert_with(|| (wasm, Vec::new()))
                        .1
                        .push(f.clone());
                }
                Err(e) => errors.push(manifest.source.error(
                    f.source_loc,
                    format!("{key}.source"),
                    format!("cannot read {}: {e}", manifest.module_path(f).display()),
                )),
            }
        }
        let limits = |f: &Function| Limits {
            timeout: f.timeout,
            memory: f.memory,
        };
        let max_output = config.max_output;
        let mut pending = tokio::task::JoinSet::new();
        for (wasm, decls) in modules.into_values() {
            // Prepared under the most generous limits of the functions that
            // share it; each function's own limits are checked just after.
            let shared = Limits {
                timeout: decls.iter().map(|d| d.timeout).max().expect("a group is never empty"),
                memory: decls.iter().map(|d| d.memory).max().expect("a group is never empty"),
            };
            let (abi, name) = (abi.clone(), decls[0].name.clone());
            // Compiling is CPU-bound: keep it off the async workers, which may
            // be serving the previous version of the app during a swap.
            let handle = tokio::runtime::Handle::current();
            pending.spawn_blocking(move || {
                let loaded = handle.block_on(abi.load(&name, &wasm, shared, max_output));
                (decls, loaded)
            });
        }
        let mut functions = BTreeMap::new();
        while let Some(joined) = pending.join_next().await {
            let (decls, loaded) = joined.expect("loading a module panicked");
            for decl in decls {
                let wapc = loaded.clone().and_then(|w| w.with_limits(limits(&decl), max_output));
                match wapc {
                    Ok(wapc) => {
                        let grants = match services.grants_for(&decl) {
                            Ok(g) => Arc::new(g),
                            Err(e) => {
                                errors.push(manifest.source.error(decl.loc, format!("functions.{}", decl.name), e));
                                continue;
                            }
                        };
                        tracing::debug!(function = %decl.name, sha256 = %wapc.info.sha256, init = ?wapc.info.init, "function loaded");
                        functions.insert(
                            decl.name.clone(),
                            Arc::new(LoadedFunction {
                                name: Arc::from(decl.name.as_str()),
                                decl,
                                grants,
                                wapc,
                            }),
                        );
                    }
                    Err(e) => errors.push(manifest.source.error(
                        decl.source_loc,
                        format!("functions.{}.source", decl.name),
                        format!("{}: {e}", decl.source.display()),
                    )),
                }
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.location.map(|l| l.start).unwrap_or(0));
            return Err(ManifestErrors(errors));
        }
        Ok(App {
            broker: services.broker(),
            manifest,
            functions,
            engine: engine.clone(),
        })
    }

    pub fn function(&self, name: &str) -> Option<&Arc<LoadedFunction>> {
        self.functions.get(name)
    }

    pub fn functions(&self) -> impl Iterator<Item = &Arc<LoadedFunction>> {
        self.functions.values()
    }

    /// The broker functions publish to and subscriptions listen on.
    pub fn broker(&self) -> Arc<dyn Broker> {
        self.broker.clone()
    }
}
