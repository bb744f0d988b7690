pub mod build;
pub mod bundle;
pub mod call;
pub mod check;
pub mod inspect;
pub mod new;
pub mod serve;

use anyhow::Context;
use atoll_engine::Engine;
use atoll_runtime::{App, RuntimeConfig};
use std::path::Path;
use std::time::Instant;

/// An error already printed in full (manifest errors carry their own
/// `error:` lines and source snippets); `main` only sets the exit code.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors reported above")
    }
}

impl std::error::Error for Reported {}

/// Loads an app for any command; manifest and module errors are printed
/// with their file, line and key.
pub async fn load_app(path: &Path, engine: &Engine, runtime: &crate::options::RuntimeOptions) -> anyhow::Result<App> {
    let config: RuntimeConfig = runtime.load()?;
    let start = Instant::now();
    match App::load(path, engine, &config).await {
        Ok(app) => {
            tracing::info!(
                app = %app.manifest.app.name,
                version = %app.manifest.app.version,
                functions = app.manifest.functions.len(),
                routes = app.manifest.routes.len(),
                load_ms = start.elapsed().as_millis() as u64,
                "app loaded"
            );
            Ok(app)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Err(Reported.into())
        }
    }
}

pub fn engine(options: &crate::options::EngineOptions) -> anyhow::Result<Engine> {
    Engine::new(options.engine_config()).context("starting the WebAssembly engine")
}
