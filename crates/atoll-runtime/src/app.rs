//! A loaded app: the validated manifest, its capability backends and every
//! function compiled and pre-linked, ready to run pipelines.

use crate::config::RuntimeConfig;
use crate::guest::Guest;
use crate::load::{self, Modules};
use crate::slots::{Slot, SlotStats, Slots};
use crate::source::AppSource;
use atoll_caps::msg::Broker;
use atoll_caps::{AppFiles, Grants, Services};
use atoll_engine::CallError;
use atoll_engine::Engine;
use atoll_manifest::{Function, Manifest, ManifestErrors};
use atoll_wapc::WapcFunction;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// A function ready to serve: its declaration, grants and compiled guest.
pub struct LoadedFunction {
    /// The app's name, for metrics.
    pub app: Arc<str>,
    pub name: Arc<str>,
    pub decl: Function,
    pub grants: Arc<Grants>,
    pub guest: Guest,
    /// Its `max_concurrency` slots, if it has a limit.
    pub(crate) slots: Option<Slots>,
}

impl LoadedFunction {
    /// A slot to run in: `None` to hold for a function without a limit.
    pub(crate) async fn slot(&self, until: Option<std::time::Instant>) -> Result<Option<Slot>, CallError> {
        match &self.slots {
            Some(slots) => slots.acquire(until).await.map(Some),
            None => Ok(None),
        }
    }

    /// How many of its `max_concurrency` slots are in use, how many calls
    /// wait and how many were refused; `None` for a function without a
    /// limit. For a metrics endpoint.
    pub fn concurrency(&self) -> Option<SlotStats> {
        self.slots.as_ref().map(Slots::stats)
    }

    /// The waPC guest, if the function is one.
    pub fn wapc(&self) -> Option<&WapcFunction> {
        match &self.guest {
            Guest::Wapc(w) => Some(w),
            Guest::Wagi(_) | Guest::WasiHttp(_) => None,
        }
    }
}

/// A loaded app: the validated manifest and every function, compiled,
/// checked and pre-instantiated.
pub struct App {
    pub manifest: Manifest,
    pub(crate) functions: BTreeMap<String, Arc<LoadedFunction>>,
    broker: Arc<dyn Broker>,
    pub(crate) engine: Engine,
    /// A bundle's static files copied to disk for WAGI programs, removed
    /// with the app.
    _static_copy: Option<tempfile::TempDir>,
}

impl App {
    /// The engine the app's functions run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads the app in a directory, at a manifest path, or in a bundle file.
    /// Every problem, in the manifest or in a module, is reported against
    /// the manifest line that declared it.
    pub async fn load(path: &Path, engine: &Engine, config: &RuntimeConfig) -> Result<App, ManifestErrors> {
        let source = AppSource::open(path, &config.bundle_limits)?;
        App::from_source(&source, engine, config).await
    }

    /// Loads the app `source` holds: its manifest, its backends, then every
    /// function, each job in a function of its own (`crate::load`).
    pub async fn from_source(
        source: &AppSource,
        engine: &Engine,
        config: &RuntimeConfig,
    ) -> Result<App, ManifestErrors> {
        // First, so nothing of an untrusted bundle is parsed or compiled.
        if let Some(trusted) = &config.trust {
            let signer = source.check_trust(trusted)?;
            tracing::info!(signer = %signer, "the bundle's signature is trusted");
        }
        let manifest = source.manifest()?;
        let services = build_services(source, &manifest, config).await?;
        let mut errors = Vec::new();
        let modules = Modules::read(source, &manifest, engine.config().max_memory, &mut errors);
        let statics = load::sandbox_static_dir(source, &manifest).map_err(|e| manifest.source.file_error(e))?;
        let compiled = load::compile(modules, engine, config.max_output)
            .await
            .map_err(|e| manifest.source.file_error(e))?;
        let functions = load::assemble(compiled, &manifest, &services, &statics, config.max_output, &mut errors);
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.location.map(|l| l.start).unwrap_or(0));
            return Err(ManifestErrors(errors));
        }
        Ok(App {
            broker: services.broker(),
            manifest,
            functions,
            engine: engine.clone(),
            _static_copy: statics.copy,
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

/// The app's capability backends, with embedded stores under the data
/// directory: the flag's, else the runtime configuration's, else `.atoll`
/// beside the app.
async fn build_services(
    source: &AppSource,
    manifest: &Manifest,
    config: &RuntimeConfig,
) -> Result<Services, ManifestErrors> {
    let data_dir = config
        .data_dir
        .clone()
        .or_else(|| config.file.data_dir.clone())
        .unwrap_or_else(|| source.default_data_dir());
    Services::build(
        manifest,
        config.file.clone(),
        &data_dir,
        |k| std::env::var(k).ok(),
        AppFiles {
            static_files: source.static_files(manifest),
            migrations: source.migrations(manifest)?,
        },
    )
    .await
}
