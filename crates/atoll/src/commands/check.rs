use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use atoll_manifest::Capability;
use atoll_wapc::InitMode;
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
    for f in app.functions() {
        let Some(wapc) = f.wapc() else { continue };
        let info = &wapc.info;
        if info.shape.imports_console_log && !f.grants.allows(Capability::Log) {
            eprintln!(
                "warning: {}: function \"{}\" imports __console_log but is not granted \"log\"; its console output will be dropped",
                m.source.path.display(),
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
    println!(
        "ok: {} {}: {} function(s), {} route(s)",
        m.app.name,
        m.app.version,
        m.functions.len(),
        m.routes.len()
    );
    Ok(ExitCode::SUCCESS)
}
