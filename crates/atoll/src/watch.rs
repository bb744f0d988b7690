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
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);
/// Directories whose changes are build output or data, not sources.
const IGNORED: &[&str] = &["target", ".atoll", ".git", "node_modules"];

pub async fn watch(supervisor: Arc<Supervisor>, app: PathBuf) -> anyhow::Result<()> {
    let is_bundle = app.is_file() && app.extension().is_none_or(|e| e != "toml");
    let root = if app.is_dir() {
        app.clone()
    } else {
        app.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let root = root.canonicalize().unwrap_or(root);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(&root, RecursiveMode::Recursive)?;
    tracing::info!(path = %root.display(), "watching for changes");
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
                    tracing::error!("the changed bundle cannot be read:\n{e}");
                    continue;
                }
            }
        } else {
            let manifest = match Manifest::load_from(&app) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!("the manifest has errors; still serving the previous version:\n{e}");
                    continue;
                }
            };
            let relevant: Vec<&PathBuf> = changed.iter().filter(|p| is_relevant(&root, &manifest, p)).collect();
            if relevant.is_empty() {
                continue;
            }
            let to_build = functions_to_build(&manifest, &relevant);
            if !to_build.is_empty() {
                tracing::info!(functions = %to_build.iter().cloned().collect::<Vec<_>>().join(", "), "rebuilding");
                if let Err(f) = build::run_jobs(build::jobs(&manifest, Some(&to_build))).await {
                    tracing::error!(
                        functions = %f.functions.join(", "),
                        status = %f.status,
                        "the build failed; still serving the previous version:\n{}",
                        f.output.trim_end()
                    );
                    continue;
                }
                // The build wrote modules: those events are this reload's own.
                while rx.try_recv().is_ok() {}
            }
            AppSource::Dir(app.clone())
        };
        if let Err(e) = supervisor.reload(&source).await {
            tracing::error!("the new version does not load; still serving the previous one:\n{e}");
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
