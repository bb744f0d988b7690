//! The CLI's commands, one module each, and what they share: loading an app
//! with its errors printed, and hints that run as printed.

pub mod build;
pub mod bundle;
pub mod call;
pub mod check;
pub mod inspect;
pub mod keygen;
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
            if let Some(hint) = unbuilt_hint(path, "build") {
                eprintln!("{hint}");
            }
            Err(Reported.into())
        }
    }
}

/// When some of `app`'s modules are missing but have a `build` command,
/// what to run: `atoll build <app>` for `check` and `call`, `atoll serve
/// --build <app>` for `serve` and `atoll bundle --build <app>` for `bundle`
/// (`command` is the one that found them missing). `None` for a bundle, or
/// when every module is there.
pub fn unbuilt_hint(app: &Path, command: &str) -> Option<String> {
    let manifest = atoll_manifest::Manifest::load_from(app).ok()?;
    let unbuilt: Vec<&str> = manifest
        .functions
        .values()
        .filter(|f| f.build.is_some() && !manifest.module_path(f).exists())
        .map(|f| f.name.as_str())
        .collect();
    let run = match command {
        "serve" | "bundle" => format!("{} {command} --build {}", atoll_command(), shell_quote(app)),
        _ => format!("{} build {}", atoll_command(), shell_quote(app)),
    };
    let what = match unbuilt.as_slice() {
        [] => return None,
        [one] => format!("the module of {one} is not built yet; build it"),
        [first @ .., last] => format!(
            "the modules of {} and {last} are not built yet; build them",
            first.join(", ")
        ),
    };
    Some(format!("hint: {what} with `{run}`"))
}

/// How to run this `atoll` in a printed hint: `atoll` when that name on the
/// PATH is this very binary (as after `cargo install --path crates/atoll`),
/// else this binary's path, so the hint runs as printed either way.
pub fn atoll_command() -> String {
    let Ok(me) = std::env::current_exe().and_then(|p| p.canonicalize()) else {
        return "atoll".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .filter_map(|dir| dir.join("atoll").canonicalize().ok())
            .next()
            .is_some_and(|found| found == me)
    });
    if on_path { "atoll".into() } else { shell_quote(&me) }
}

/// `path` as a shell word: as it is when that is safe, else single-quoted.
pub fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%=".contains(&b));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The keys `--trust` names, read; `None` without the flag.
pub fn trusted_keys(paths: &[std::path::PathBuf]) -> anyhow::Result<Option<std::sync::Arc<atoll_bundle::TrustedKeys>>> {
    if paths.is_empty() {
        return Ok(None);
    }
    let keys = atoll_bundle::TrustedKeys::load(paths).context("--trust")?;
    Ok(Some(std::sync::Arc::new(keys)))
}

pub fn engine(options: &crate::options::EngineOptions) -> anyhow::Result<Engine> {
    Engine::new(options.engine_config()).context("starting the WebAssembly engine")
}
