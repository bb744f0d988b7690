use crate::logging::{self, LogFormat};
use anyhow::Context;
use atoll_manifest::Manifest;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    build_app(&args.app).await
}

/// Runs each function's `build.command` in its `workdir` (default: the
/// manifest's directory). Functions sharing a command and directory build
/// once. Stops at the first failure and shows that build's output.
pub async fn build_app(app: &Path) -> anyhow::Result<ExitCode> {
    let manifest = match Manifest::load_from(app) {
        Ok(m) => m,
        Err(errors) => {
            eprintln!("{errors}");
            return Err(super::Reported.into());
        }
    };
    let mut jobs: Vec<(String, PathBuf, Vec<&str>)> = Vec::new();
    for f in manifest.functions.values() {
        let Some(build) = &f.build else { continue };
        let dir = manifest.dir.join(build.workdir.as_deref().unwrap_or(Path::new(".")));
        match jobs.iter_mut().find(|(c, d, _)| *c == build.command && *d == dir) {
            Some((_, _, names)) => names.push(&f.name),
            None => jobs.push((build.command.clone(), dir, vec![&f.name])),
        }
    }
    if jobs.is_empty() {
        eprintln!("nothing to build: no function declares `build = {{ command = \"...\" }}`");
        return Ok(ExitCode::SUCCESS);
    }
    let total = jobs.len();
    for (i, (command, dir, names)) in jobs.iter().enumerate() {
        eprintln!("[{}/{total}] building {}: {command}", i + 1, names.join(", "));
        let start = Instant::now();
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(dir)
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run the build command of {} in {}",
                    names.join(", "),
                    dir.display()
                )
            })?;
        if !output.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&output.stdout));
            eprintln!("{}", String::from_utf8_lossy(&output.stderr));
            eprintln!(
                "error: the build of {} failed ({}) in {}",
                names.join(", "),
                output.status,
                dir.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!(
            "[{}/{total}] built {} in {:.1}s",
            i + 1,
            names.join(", "),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
