use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use anyhow::{Context, bail};
use atoll_runtime::{RequestInfo, Trigger, new_request_id};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    pub app: PathBuf,
    /// Function to invoke.
    pub function: String,
    /// waPC operation.
    #[arg(long, default_value = "handle")]
    pub op: String,
    /// Payload: a file, or - for standard input. Empty if omitted.
    #[arg(long, short, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Payload given inline, instead of --input.
    #[arg(long, short, conflicts_with = "input")]
    pub data: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub engine: EngineOptions,
    #[command(flatten)]
    pub runtime: crate::options::RuntimeOptions,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    let payload = match (&args.input, &args.data) {
        (Some(p), _) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            buf
        }
        (Some(p), _) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        (None, Some(d)) => d.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let engine = super::engine(&args.engine)?;
    let app = super::load_app(&args.app, &engine, &args.runtime).await?;
    if app.function(&args.function).is_none() {
        let known: Vec<_> = app.manifest.functions.keys().cloned().collect();
        bail!(
            "no function \"{}\" in {} (functions: {})",
            args.function,
            app.manifest.source.path.display(),
            known.join(", ")
        );
    }
    let trigger = Trigger {
        request_id: Arc::from(new_request_id()),
        request: Arc::new(RequestInfo {
            body: payload.clone().into(),
            ..RequestInfo::default()
        }),
    };
    let (mut response, mut spent) = Default::default();
    match app
        .call(
            &args.function,
            &args.op,
            payload.into(),
            &trigger,
            &mut response,
            &mut spent,
        )
        .await
    {
        Ok(out) => {
            std::io::stdout().write_all(&out)?;
            std::io::stdout().flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!(
                "error: function \"{}\" failed (status {}): {}",
                failure.function,
                failure.status(),
                failure.message()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
