//! Loading an app's functions, one job per function: reading the modules
//! and grouping the functions that share one, compiling each module once
//! for its ABI, and assembling every function with its own limits, grants
//! and (for WAGI) what its program sees around a request.

use crate::app::LoadedFunction;
use crate::guest::Guest;
use crate::slots::Slots;
use crate::source::AppSource;
use atoll_caps::Services;
use atoll_engine::{Engine, Limits};
use atoll_manifest::{Abi, Capability, Function, Manifest, ManifestError};
use atoll_wagi::{Setting, WagiAbi, WagiFunction};
use atoll_wapc::{WapcAbi, WapcFunction};
use atoll_wasi_http::{WasiHttpAbi, WasiHttpFunction};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The app's modules, each read once, with the functions built from it.
pub(crate) struct Modules(Vec<Module>);

struct Module {
    abi: Abi,
    wasm: Vec<u8>,
    decls: Vec<Function>,
}

impl Modules {
    /// Reads every function's module. Functions built from the same module
    /// for the same ABI share one entry, so it is compiled once. A module
    /// that cannot be read, or a memory limit beyond the server's, is an
    /// error at the function's line.
    pub(crate) fn read(
        source: &AppSource,
        manifest: &Manifest,
        max_memory: u64,
        errors: &mut Vec<ManifestError>,
    ) -> Modules {
        let mut modules: Vec<Module> = Vec::new();
        let mut index: HashMap<(Abi, [u8; 32]), usize> = HashMap::new();
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
            match source.module(manifest, f) {
                Ok(wasm) => {
                    let digest: [u8; 32] = Sha256::digest(&wasm).into();
                    let i = *index.entry((f.abi, digest)).or_insert_with(|| {
                        modules.push(Module {
                            abi: f.abi,
                            wasm,
                            decls: Vec::new(),
                        });
                        modules.len() - 1
                    });
                    modules[i].decls.push(f.clone());
                }
                Err(e) => errors.push(manifest.source.error(
                    f.source_loc,
                    format!("{key}.source"),
                    format!("cannot read {}: {e}", manifest.module_path(f).display()),
                )),
            }
        }
        Modules(modules)
    }
}

/// One module compiled for its ABI, or why it could not be.
pub(crate) enum Compiled {
    Wapc(Result<WapcFunction, atoll_wapc::LoadError>),
    Wagi(Result<WagiFunction, atoll_wagi::LoadError>),
    WasiHttp(Result<WasiHttpFunction, atoll_wasi_http::LoadError>),
}

/// Compiles (or fetches from the compile cache) every module, in parallel
/// and off the async workers, which may be serving the previous version of
/// the app during a swap. Each is prepared under the most generous limits
/// of the functions that share it; each function's own are checked in
/// [`assemble`].
pub(crate) async fn compile(
    modules: Modules,
    engine: &Engine,
    max_output: usize,
) -> Result<Vec<(Vec<Function>, Compiled)>, String> {
    let wapc = WapcAbi::new(engine).map_err(|e| e.to_string())?;
    let wagi = WagiAbi::new(engine).map_err(|e| e.to_string())?;
    let components = WasiHttpAbi::new(engine).map_err(|e| e.to_string())?;
    let mut pending = tokio::task::JoinSet::new();
    for Module { abi, wasm, decls } in modules.0 {
        let shared = Limits {
            timeout: decls.iter().map(|d| d.timeout).max().expect("a group is never empty"),
            memory: decls.iter().map(|d| d.memory).max().expect("a group is never empty"),
        };
        let (wapc, wagi, components) = (wapc.clone(), wagi.clone(), components.clone());
        let name = decls[0].name.clone();
        let handle = tokio::runtime::Handle::current();
        pending.spawn_blocking(move || {
            let compiled = match abi {
                Abi::Wapc => Compiled::Wapc(handle.block_on(wapc.load(&name, &wasm, shared, max_output))),
                Abi::Wagi => Compiled::Wagi(wagi.load(&wasm, shared, max_output)),
                Abi::WasiHttp => Compiled::WasiHttp(components.load(&wasm, shared, max_output)),
            };
            (decls, compiled)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = pending.join_next().await {
        done.push(joined.expect("loading a module panicked"));
    }
    Ok(done)
}

/// `static/` on disk for WAGI programs and components granted `files`
/// (preopened read-only), and the private copy of a bundle's that must
/// live as long as the app.
pub(crate) struct StaticDir {
    path: Option<Arc<Path>>,
    pub(crate) copy: Option<tempfile::TempDir>,
}

/// Finds or makes `static/` on disk, only if some WAGI or wasi-http
/// function is granted `files`.
pub(crate) fn sandbox_static_dir(source: &AppSource, manifest: &Manifest) -> Result<StaticDir, String> {
    let needed = manifest
        .functions
        .values()
        .any(|f| f.abi != Abi::Wapc && f.capabilities.contains(&Capability::Files));
    if !needed {
        return Ok(StaticDir { path: None, copy: None });
    }
    match source.static_dir_on_disk(manifest) {
        Ok(Some((path, copy))) => Ok(StaticDir {
            path: Some(Arc::from(path.as_path())),
            copy,
        }),
        Ok(None) => Ok(StaticDir { path: None, copy: None }),
        Err(e) => Err(format!(
            "cannot copy the bundle's static files to disk for WAGI programs and components: {e}"
        )),
    }
}

/// Every function with its own limits and grants, from its compiled
/// module; problems go to `errors` at the function's line.
pub(crate) fn assemble(
    compiled: Vec<(Vec<Function>, Compiled)>,
    manifest: &Manifest,
    services: &Services,
    statics: &StaticDir,
    max_output: usize,
    errors: &mut Vec<ManifestError>,
) -> BTreeMap<String, Arc<LoadedFunction>> {
    let mut functions = BTreeMap::new();
    let app: Arc<str> = Arc::from(manifest.app.name.as_str());
    for (decls, module) in compiled {
        for decl in decls {
            let limits = Limits {
                timeout: decl.timeout,
                memory: decl.memory,
            };
            let guest = match &module {
                Compiled::Wapc(w) => w
                    .clone()
                    .and_then(|w| w.with_limits(limits, max_output))
                    .map(Guest::Wapc)
                    .map_err(|e| e.to_string()),
                Compiled::Wagi(w) => w
                    .clone()
                    .and_then(|w| w.with_limits(limits, max_output))
                    .map(|w| Guest::Wagi(w.with_setting(wagi_setting(manifest, &decl, statics))))
                    .map_err(|e| e.to_string()),
                Compiled::WasiHttp(c) => c
                    .as_ref()
                    .map(|c| {
                        let setting = atoll_wasi_http::Setting {
                            static_dir: statics.path.clone(),
                        };
                        Guest::WasiHttp(c.with_limits(limits, max_output).with_setting(setting))
                    })
                    .map_err(|e| e.to_string()),
            };
            let guest = match guest {
                Ok(g) => g,
                Err(e) => {
                    errors.push(manifest.source.error(
                        decl.source_loc,
                        format!("functions.{}.source", decl.name),
                        format!("{}: {e}", decl.source.display()),
                    ));
                    continue;
                }
            };
            let grants = match services.grants_for(&decl) {
                Ok(g) => Arc::new(g),
                Err(e) => {
                    errors.push(manifest.source.error(decl.loc, format!("functions.{}", decl.name), e));
                    continue;
                }
            };
            tracing::debug!(function = %decl.name, abi = %decl.abi, sha256 = %guest.sha256(), "function loaded");
            functions.insert(
                decl.name.clone(),
                Arc::new(LoadedFunction {
                    app: app.clone(),
                    name: Arc::from(decl.name.as_str()),
                    slots: decl
                        .max_concurrency
                        .map(|n| Slots::new(app.clone(), Arc::from(decl.name.as_str()), n, decl.max_queue)),
                    decl,
                    grants,
                    guest,
                }),
            );
        }
    }
    functions
}

/// What a WAGI program sees around each request: `static/` (used only with
/// the `files` grant) and the routes that call it.
fn wagi_setting(manifest: &Manifest, decl: &Function, statics: &StaticDir) -> Setting {
    let routes = manifest
        .routes
        .iter()
        .filter(|r| r.pipeline.calls().any(|c| c.function == decl.name))
        .map(|r| r.path.clone())
        .collect();
    Setting {
        static_dir: statics.path.clone(),
        routes,
    }
}
