//! `atoll bundle`: the app (manifest, modules, static files) packed into one
//! checked `.atoll` file, with both its sizes reported.

use crate::logging::{self, LogFormat};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    /// Where to write the bundle [default: <app name>.atoll].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Sign the bundle with this private key (made by `atoll keygen`), for
    /// servers that `--trust` its public key.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Run every function's build command first.
    #[arg(long)]
    pub build: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Packs the app (manifest, modules, static files) into one `.atoll` file.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    // Read before any build, so a wrong key file is reported at once.
    let key = match &args.sign {
        Some(path) => Some(atoll_bundle::SecretKey::read(path).context("--sign")?),
        None => None,
    };
    if args.build {
        let code = super::build::build_app(&args.app).await?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    } else if let Some(hint) = super::unbuilt_hint(&args.app, "bundle") {
        eprintln!("error: {} cannot be bundled before it is built", args.app.display());
        eprintln!("{hint}");
        return Err(super::Reported.into());
    }
    let bytes = match atoll_bundle::write_dir_signed(&args.app, key.as_ref()) {
        Ok(b) => b,
        Err(atoll_bundle::BundleError::Manifest(errors)) => {
            eprintln!("{errors}");
            return Err(super::Reported.into());
        }
        Err(e) => return Err(e.into()),
    };
    let bundle = atoll_bundle::Bundle::read(&bytes, &atoll_bundle::Limits::default())
        .context("the bundle just written does not read back")?;
    let output = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("{}.atoll", bundle.app())));
    std::fs::write(&output, &bytes).with_context(|| format!("writing {}", output.display()))?;
    let count = |prefix: &str| bundle.entries().filter(|(n, ..)| n.starts_with(prefix)).count();
    // Both sizes, named: the file is what is shipped, the unpacked size what
    // `--max-bundle-size` limits (and what `inspect` reports first).
    let unpacked: usize = bundle.entries().map(|(_, size, _)| size).sum();
    let signed = match bundle.signer().key_id() {
        Some(id) => format!(", signed by key {id}"),
        None => String::new(),
    };
    eprintln!(
        "bundled {} {}: {} module(s), {} static file(s), {} unpacked, {} file{signed} -> {}",
        bundle.app(),
        bundle.version(),
        count("modules/"),
        count("static/"),
        human(unpacked as u64),
        human(bytes.len() as u64),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / (1 << 10) as f64),
        b => format!("{b} B"),
    }
}
