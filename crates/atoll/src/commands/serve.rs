use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use anyhow::Context;
use atoll_http::{HttpConfig, HttpServer};
use atoll_manifest::parse_size;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    /// Address to listen on.
    #[arg(long, short, default_value = "127.0.0.1:3000", env = "ATOLL_LISTEN")]
    pub listen: SocketAddr,
    /// Run every function's build command before serving.
    #[arg(long)]
    pub build: bool,
    /// Default request body limit for routes without `max_body`.
    #[arg(long, value_name = "SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub max_body: u64,
    /// Requests handled at once; beyond this the server answers 503.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Seconds to wait for in-flight requests on shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_grace: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub engine: EngineOptions,
    #[command(flatten)]
    pub runtime: crate::options::RuntimeOptions,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "info");
    if args.build {
        let code = super::build::build_app(&args.app).await?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    let engine = super::engine(&args.engine)?;
    let app = Arc::new(super::load_app(&args.app, &engine, &args.runtime).await?);
    let config = HttpConfig {
        max_body: args.max_body,
        max_concurrency: args.max_concurrency,
        shutdown_grace: std::time::Duration::from_secs(args.shutdown_grace),
    };
    let server = HttpServer::new(app.clone(), config).map_err(|errors| {
        eprintln!("{errors}");
        super::Reported
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %format!("http://{addr}"), app = %app.manifest.app.name, "serving");
    for route in &app.manifest.routes {
        tracing::info!(route = %route.describe(), steps = %route.pipeline.describe(), "route");
    }
    for s in &app.manifest.schedules {
        let when = match &s.when {
            atoll_manifest::When::Every(d) => format!("every {d:?}"),
            atoll_manifest::When::Cron(c) => format!("cron {c}"),
        };
        tracing::info!(schedule = %s.name, when = %when, steps = %s.pipeline.describe(), "schedule");
    }
    for s in &app.manifest.subscriptions {
        tracing::info!(topic = %s.topic, steps = %s.pipeline.describe(), reply_to = s.reply_to.as_deref(), "subscription");
    }
    let triggers = atoll_triggers::start(app.clone()).await.map_err(anyhow::Error::msg)?;
    server.serve(listener, shutdown_signal()).await?;
    triggers.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
