//! `atoll build`: every function's build command, in parallel, with
//! progress; also run by `serve --build`, `bundle --build` and `--watch`.

use crate::logging::{self, LogFormat};
use atoll_manifest::Manifest;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    // info: with --log-format json, progress lines are info events.
    let _log = logging::init(args.log_format, "info");
    build_app(&args.app).await
}

/// One build command, run once for every function that shares it.
#[derive(Debug, Clone)]
pub struct Job {
    pub command: String,
    pub dir: PathBuf,
    pub functions: Vec<String>,
}

/// The build jobs of `manifest` (only those of `only`'s functions, if given):
/// functions with the same command and directory share a job.
pub fn jobs(manifest: &Manifest, only: Option<&BTreeSet<String>>) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    for f in manifest.functions.values() {
        let Some(build) = &f.build else { continue };
        if only.is_some_and(|o| !o.contains(&f.name)) {
            continue;
        }
        // Through components, so `workdir = "."` is shown as `shop`, not `shop/.`.
        let dir: PathBuf = manifest
            .dir
            .join(build.workdir.as_deref().unwrap_or(Path::new(".")))
            .components()
            .collect();
        match jobs.iter_mut().find(|j| j.command == build.command && j.dir == dir) {
            Some(j) => j.functions.push(f.name.clone()),
            None => jobs.push(Job {
                command: build.command.clone(),
                dir,
                functions: vec![f.name.clone()],
            }),
        }
    }
    jobs
}

/// A build that failed: which functions, and everything it printed.
pub struct Failure {
    pub functions: Vec<String>,
    pub dir: PathBuf,
    pub status: String,
    pub output: String,
}

/// Runs `jobs`, as many at once as there are cores. On the first failure
/// the others are stopped (their processes killed) and that failure returned.
///
/// Progress shows as bars on a terminal, each finished job leaving one line
/// above them; off a terminal as one line per start and end, which are log
/// events when the log is JSON.
pub async fn run_jobs(jobs: Vec<Job>) -> Result<(), Failure> {
    let total = jobs.len();
    let progress = logging::Progress::start();
    // The compiler's colours, kept when its output is shown on a terminal.
    let colour = progress.is_some() && !logging::is_json() && std::env::var_os("CARGO_TERM_COLOR").is_none();
    let permits = Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let mut running = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let permits = permits.clone();
        let step = format!("[{}/{total}]", i + 1);
        let bar = progress.as_ref().map(|p| {
            let bar = p.bars().add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})").expect("valid template"),
            );
            bar.set_prefix(step.clone());
            bar.set_message(format!("waiting: {}", job.functions.join(", ")));
            bar
        });
        running.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
            let names = job.functions.join(", ");
            match &bar {
                Some(b) => {
                    b.set_message(format!("building {names}: {}", job.command));
                    b.enable_steady_tick(Duration::from_millis(100));
                }
                None if logging::is_json() => {
                    tracing::info!(functions = %names, command = %job.command, "building")
                }
                None => logging::print_line(&format!("{step} building {names}: {}", job.command)),
            }
            let started = Instant::now();
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&job.command)
                .current_dir(&job.dir)
                // A `source` names the file where the function's own
                // directory builds it (`target/wasm32-wasip1/...`): a target
                // directory set for the user's shell would send cargo's
                // output elsewhere, and the build would "succeed" with
                // nothing to load.
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET_DIR")
                .kill_on_drop(true);
            if colour {
                command.env("CARGO_TERM_COLOR", "always");
            }
            let output = command.output().await;
            let seconds = started.elapsed().as_secs_f64();
            let result = match output {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(Failure {
                    functions: job.functions.clone(),
                    dir: job.dir.clone(),
                    status: out.status.to_string(),
                    output: format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                }),
                Err(e) => Err(Failure {
                    functions: job.functions.clone(),
                    dir: job.dir.clone(),
                    status: "not started".into(),
                    output: format!("cannot run `sh -c {}`: {e}", job.command),
                }),
            };
            match (&result, logging::is_json()) {
                (Ok(()), true) => tracing::info!(functions = %names, seconds = format!("{seconds:.1}"), "built"),
                // The failure itself is reported once, by the caller.
                (Err(_), true) => {}
                (Ok(()), false) => logging::print_line(&format!("{step} built {names} in {seconds:.1}s")),
                (Err(_), false) => logging::print_line(&format!("{step} FAILED {names}")),
            }
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
            result
        });
    }
    while let Some(joined) = running.join_next().await {
        if let Ok(Err(failure)) = joined {
            // Dropping the other tasks kills their build processes.
            running.abort_all();
            return Err(failure);
        }
    }
    Ok(())
}

/// Shows what a failed build printed, readable in either log format: as
/// the compiler wrote it in text, and in JSON one event per line of it
/// (never one event full of `\n` escapes).
pub fn show_output(f: &Failure) {
    let output = f.output.trim_end();
    if logging::is_json() {
        let functions = f.functions.join(", ");
        for line in output.lines() {
            tracing::error!(functions = %functions, "{line}");
        }
    } else {
        logging::print_line(output);
    }
}

/// Runs every function's `build.command` in its `workdir` (default: the
/// manifest's directory), in parallel, and stops at the first failure,
/// showing that build's output.
pub async fn build_app(app: &Path) -> anyhow::Result<ExitCode> {
    let manifest = match Manifest::load_from(app) {
        Ok(m) => m,
        Err(errors) => {
            eprintln!("{errors}");
            return Err(super::Reported.into());
        }
    };
    let jobs = jobs(&manifest, None);
    if jobs.is_empty() {
        logging::print_line("nothing to build: no function declares `build = { command = \"...\" }`");
        return Ok(ExitCode::SUCCESS);
    }
    match run_jobs(jobs).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => {
            show_output(&f);
            let functions = f.functions.join(", ");
            if logging::is_json() {
                tracing::error!(functions = %functions, status = %f.status, dir = %f.dir.display(), "the build failed");
            } else {
                logging::print_line(&format!(
                    "error: the build of {functions} failed ({}) in {}",
                    f.status,
                    f.dir.display()
                ));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
