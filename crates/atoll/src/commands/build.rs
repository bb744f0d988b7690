use crate::logging::{self, LogFormat};
use atoll_manifest::Manifest;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeSet;
use std::io::IsTerminal;
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
    let _log = logging::init(args.log_format, "warn");
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
        let dir = manifest.dir.join(build.workdir.as_deref().unwrap_or(Path::new(".")));
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
pub async fn run_jobs(jobs: Vec<Job>) -> Result<(), Failure> {
    let total = jobs.len();
    let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
    let permits = Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    ));
    let mut running = tokio::task::JoinSet::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let permits = permits.clone();
        let bar = bars.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{prefix}] {msg} ({elapsed})").expect("valid template"),
            );
            bar.set_prefix(format!("{}/{total}", i + 1));
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
                None => eprintln!("[{}/{total}] building {names}: {}", i + 1, job.command),
            }
            let started = Instant::now();
            let output = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&job.command)
                .current_dir(&job.dir)
                .kill_on_drop(true)
                .output()
                .await;
            let done = format!("built {names} in {:.1}s", started.elapsed().as_secs_f64());
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
            match (&bar, &result) {
                (Some(b), Ok(())) => b.finish_with_message(done),
                (Some(b), Err(_)) => b.finish_with_message(format!("FAILED {names}")),
                (None, Ok(())) => eprintln!("[{}/{total}] {done}", i + 1),
                (None, Err(_)) => eprintln!("[{}/{total}] FAILED {names}", i + 1),
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
        eprintln!("nothing to build: no function declares `build = {{ command = \"...\" }}`");
        return Ok(ExitCode::SUCCESS);
    }
    match run_jobs(jobs).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => {
            eprintln!("{}", f.output.trim_end());
            eprintln!(
                "error: the build of {} failed ({}) in {}",
                f.functions.join(", "),
                f.status,
                f.dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
