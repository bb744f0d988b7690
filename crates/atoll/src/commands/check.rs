//! `atoll check`: loads an app as `serve` would (manifest, every module
//! compiled for its ABI, the route table) without serving it, and warns
//! about what loads but will not work as its author may expect: output
//! dropped or calls refused for want of a grant.

use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use atoll_manifest::Capability;
use atoll_runtime::{Guest, LoadedFunction};
use atoll_wapc::{InitMode, WapcFunction};
use atoll_wasi_http::{ReachKind, import_reach};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub engine: EngineOptions,
    #[command(flatten)]
    pub runtime: crate::options::RuntimeOptions,
}

/// Everything `serve` would check before accepting a request: the manifest,
/// every module, and the route table.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    let engine = super::engine(&args.engine)?;
    let app = std::sync::Arc::new(super::load_app(&args.app, &engine, &args.runtime).await?);
    if let Err(errors) = atoll_http::HttpServer::new(app.clone(), Default::default()) {
        eprintln!("{errors}");
        return Ok(ExitCode::FAILURE);
    }
    let m = &app.manifest;
    let manifest = m.source.path.display();
    for f in app.functions() {
        match &f.guest {
            Guest::Wapc(wapc) => wapc_notes(f, wapc, &manifest),
            Guest::WasiHttp(component) => {
                for (grant, imports, without) in ungranted(f, &component.info.imports) {
                    eprintln!(
                        "warning: {manifest}: function \"{}\" imports {} but is not granted \"{}\"; {without}",
                        f.name,
                        imports.join(", "),
                        grant.name()
                    );
                }
            }
            // A CGI program's imports are WASI's, whose reach the sandbox
            // decides, not its grants.
            Guest::Wagi(_) => {}
        }
    }
    println!(
        "ok: {} {}: {} function(s), {} route(s)",
        m.app.name,
        m.app.version,
        m.functions.len(),
        m.routes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// A waPC guest's console output dropped for want of `log`, and an init
/// that could not be snapshotted.
fn wapc_notes(f: &LoadedFunction, wapc: &WapcFunction, manifest: &impl std::fmt::Display) {
    let info = &wapc.info;
    if info.shape.imports_console_log && !f.grants.allows(Capability::Log) {
        eprintln!(
            "warning: {manifest}: function \"{}\" imports __console_log but is not granted \"log\"; its console output will be dropped",
            f.name
        );
    }
    if let InitMode::PerInstance { reason } = &info.init {
        eprintln!(
            "note: function \"{}\" runs its init on every instance (slower): {reason}",
            f.name
        );
    }
}

/// The grants a component's imports need and its function lacks, each
/// with the imports that need it and what they do without it. Imports
/// every program's standard library makes (stderr, the filesystem) are
/// left to `atoll inspect`: most components never use them.
fn ungranted<'a>(f: &LoadedFunction, imports: &'a [String]) -> Vec<(Capability, Vec<&'a str>, &'static str)> {
    let mut lacking: Vec<(Capability, Vec<&str>, &str)> = Vec::new();
    for name in imports {
        let reach = import_reach(name);
        let ReachKind::Needs(grant) = reach.kind else { continue };
        if f.grants.allows(grant) {
            continue;
        }
        match lacking.iter_mut().find(|(g, ..)| *g == grant) {
            Some((_, names, _)) => names.push(name),
            None => lacking.push((grant, vec![name], reach.without)),
        }
    }
    lacking
}
