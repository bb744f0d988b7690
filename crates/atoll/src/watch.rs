//! `atoll serve --watch`: rebuild and reload on change.
//!
//! A change to the manifest, a static file, a function's module or a file
//! matching a function's `build.watch` globs triggers, after a short quiet
//! period: the builds whose globs matched, then a reload of the whole app.
//! A failed build or a version that does not load is reported and the
//! running version keeps serving. For a bundle, a change to the bundle file
//! reloads it.

use crate::commands::build;
use crate::supervisor::Supervisor;
use atoll_manifest::Manifest;
use atoll_runtime::AppSource;
use globset::{Glob, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
/// Directories whose changes are build output or data, not sources.
const IGNORED: &[&str] = &["target", ".atoll", ".git", "node_modules"];

/// Starts watching `app`: its watches are in place when this returns, so a
/// change made once the server says it is serving is seen.
pub fn start(supervisor: Arc<Supervisor>, app: PathBuf) -> anyhow::Result<()> {
    let is_bundle = app.is_file() && app.extension().is_none_or(|e| e != "toml");
    let root = if app.is_dir() {
        app.clone()
    } else {
        app.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let root = root.canonicalize().unwrap_or(root);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    let mut watched = Watched {
        watcher,
        dirs: HashSet::new(),
    };
    if is_bundle {
        watched.add_dir(&root)?;
    } else {
        watched.add_tree(&root);
        if let Ok(manifest) = Manifest::load_from(&app) {
            watched.add_module_dirs(&manifest);
        }
    }
    tracing::info!(path = %root.display(), "watching for changes");
    tokio::spawn(async move {
        if let Err(e) = watch(supervisor, app, root, is_bundle, watched, rx).await {
            tracing::error!(error = %e, "watching stopped");
        }
    });
    Ok(())
}

async fn watch(
    supervisor: Arc<Supervisor>,
    app: PathBuf,
    root: PathBuf,
    is_bundle: bool,
    mut watched: Watched,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
) -> anyhow::Result<()> {
    loop {
        let Some(first) = rx.recv().await else { return Ok(()) };
        let mut changed = vec![first];
        // Let a burst of writes (an editor saving, a build finishing) settle.
        loop {
            match tokio::time::timeout(QUIET, rx.recv()).await {
                Ok(Some(p)) => changed.push(p),
                Ok(None) => return Ok(()),
                Err(_) => break,
            }
        }
        if !is_bundle {
            // New directories are watched from now on; the files already in
            // them were written before, so they count as changed.
            let mut found = Vec::new();
            for path in &changed {
                found.extend(watched.follow(&root, path));
            }
            changed.extend(found);
        }
        changed.sort();
        changed.dedup();
        let source = if is_bundle {
            let bundle = app.canonicalize().unwrap_or(app.clone());
            if !changed.contains(&bundle) {
                continue;
            }
            match AppSource::open(&app, &supervisor.config().bundle_limits) {
                Ok(s) => s,
                Err(e) => {
                    crate::logging::error_with_details("the changed bundle cannot be read", &e.to_string());
                    continue;
                }
            }
        } else {
            let manifest = match Manifest::load_from(&app) {
                Ok(m) => m,
                Err(e) => {
                    crate::logging::error_with_details(
                        "the manifest has errors; still serving the previous version",
                        &e.to_string(),
                    );
                    continue;
                }
            };
            watched.add_module_dirs(&manifest);
            let relevant: Vec<&PathBuf> = changed.iter().filter(|p| is_relevant(&root, &manifest, p)).collect();
            if relevant.is_empty() {
                continue;
            }
            let to_build = functions_to_build(&manifest, &relevant);
            if !to_build.is_empty() {
                tracing::info!(functions = %to_build.iter().cloned().collect::<Vec<_>>().join(", "), "rebuilding");
                if let Err(f) = build::run_jobs(build::jobs(&manifest, Some(&to_build))).await {
                    build::show_output(&f);
                    tracing::error!(
                        functions = %f.functions.join(", "),
                        status = %f.status,
                        "the build failed; still serving the previous version"
                    );
                    continue;
                }
                // The build wrote modules: those events are this reload's own.
                while rx.try_recv().is_ok() {}
            }
            AppSource::Dir(app.clone())
        };
        if let Err(e) = supervisor.reload(&source).await {
            crate::logging::error_with_details("the new version does not load; still serving the previous one", &e);
        }
    }
}

/// What is watched: each directory of the app on its own, except build
/// output and data ([`IGNORED`]), and the directory of each module. Not one
/// recursive watch over the app: that also covers `target/`, where a build
/// creates and deletes directories by the hundred, and notify logs an
/// "unable to remove watch descriptor" line for each deleted one.
struct Watched {
    watcher: notify::RecommendedWatcher,
    dirs: HashSet<PathBuf>,
}

impl Watched {
    /// Watches `dir` alone (not what is under it).
    fn add_dir(&mut self, dir: &Path) -> notify::Result<()> {
        if !self.dirs.contains(dir) {
            self.watcher.watch(dir, RecursiveMode::NonRecursive)?;
            self.dirs.insert(dir.to_path_buf());
        }
        Ok(())
    }

    /// Watches every directory under `dir` that is not ignored; returns the
    /// files found in the directories it had not watched before.
    fn add_tree(&mut self, dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let new = !self.dirs.contains(&d);
            if let Err(e) = self.add_dir(&d) {
                tracing::warn!(path = %d.display(), error = %e, "cannot watch this directory");
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() && !IGNORED.iter().any(|i| entry.file_name() == *i) => stack.push(entry.path()),
                    Ok(t) if t.is_dir() => {}
                    Ok(_) if new => files.push(entry.path()),
                    _ => {}
                }
            }
        }
        files
    }

    /// Keeps the watches in step with a changed `path` under `root`: a new
    /// directory is watched (returning the files in it), a deleted one
    /// forgotten (its watch went with it, and it may come back).
    fn follow(&mut self, root: &Path, path: &Path) -> Vec<PathBuf> {
        if !path.exists() {
            self.dirs.retain(|d| !d.starts_with(path));
            return Vec::new();
        }
        let ignored = match path.strip_prefix(root) {
            Ok(rel) => rel.components().any(|c| IGNORED.iter().any(|i| c.as_os_str() == *i)),
            Err(_) => true,
        };
        if path.is_dir() && !ignored && !self.dirs.contains(path) {
            return self.add_tree(path);
        }
        Vec::new()
    }

    /// Watches the directory of each module that exists, so a module built
    /// outside Atoll (inside an ignored `target/`) still reloads the app.
    fn add_module_dirs(&mut self, manifest: &Manifest) {
        for f in manifest.functions.values() {
            let module = manifest.module_path(f);
            let Some(dir) = module.parent().and_then(|d| d.canonicalize().ok()) else {
                continue;
            };
            if let Err(e) = self.add_dir(&dir) {
                tracing::debug!(path = %dir.display(), error = %e, "cannot watch a module's directory");
            }
        }
    }
}

fn is_relevant(root: &Path, manifest: &Manifest, path: &Path) -> bool {
    let modules: Vec<PathBuf> = manifest
        .functions
        .values()
        .filter_map(|f| manifest.module_path(f).canonicalize().ok())
        .collect();
    if modules.iter().any(|m| m == path) {
        return true;
    }
    let Ok(rel) = path.strip_prefix(root) else { return false };
    !rel.components().any(|c| IGNORED.iter().any(|i| c.as_os_str() == *i))
}

/// Functions whose `build.watch` globs match a changed path.
fn functions_to_build(manifest: &Manifest, changed: &[&PathBuf]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in manifest.functions.values() {
        let Some(build) = &f.build else { continue };
        let workdir = manifest.dir.join(build.workdir.as_deref().unwrap_or(Path::new(".")));
        let workdir = workdir.canonicalize().unwrap_or(workdir);
        let mut globs = GlobSetBuilder::new();
        for pattern in &build.watch {
            match Glob::new(pattern) {
                Ok(g) => {
                    globs.add(g);
                }
                Err(e) => tracing::warn!(function = %f.name, pattern = %pattern, error = %e, "invalid watch glob"),
            }
        }
        let Ok(globs) = globs.build() else { continue };
        if changed
            .iter()
            .any(|p| p.strip_prefix(&workdir).is_ok_and(|rel| globs.is_match(rel)))
        {
            out.insert(f.name.clone());
        }
    }
    out
}
