//! Where an app comes from: a directory on disk or a bundle in memory.

use atoll_bundle::{Bundle, Limits, TrustedKeys};
use atoll_caps::files::{DirFiles, MemFiles, StaticFiles};
use atoll_manifest::{Function, MANIFEST_FILE, Manifest, ManifestErrors, SourceText};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub enum AppSource {
    /// A directory holding `atoll.toml` (or the manifest's own path).
    Dir(PathBuf),
    /// A bundle, read and checked; `path` names it in messages.
    Bundle { path: PathBuf, bundle: Arc<Bundle> },
}

impl AppSource {
    /// A directory or manifest path is an app on disk; any other file is
    /// read as a bundle.
    pub fn open(path: &Path, limits: &Limits) -> Result<AppSource, ManifestErrors> {
        let is_manifest = path.extension().is_some_and(|e| e == "toml");
        if path.is_dir() || is_manifest || !path.exists() {
            return Ok(AppSource::Dir(path.to_path_buf()));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| SourceText::new(path, "").file_error(format!("cannot read the bundle: {e}")))?;
        AppSource::from_bundle_bytes(path, &bytes, limits)
    }

    pub fn from_bundle_bytes(path: &Path, bytes: &[u8], limits: &Limits) -> Result<AppSource, ManifestErrors> {
        let bundle = Bundle::read(bytes, limits).map_err(|e| SourceText::new(path, "").file_error(e.to_string()))?;
        Ok(AppSource::Bundle {
            path: path.to_path_buf(),
            bundle: Arc::new(bundle),
        })
    }

    /// Whether a server trusting `trusted` may load this app: a bundle
    /// signed by one of those keys, whose signature holds. Returns the
    /// signer's key id; every refusal names the bundle and what is wrong.
    pub fn check_trust(&self, trusted: &TrustedKeys) -> Result<String, ManifestErrors> {
        match self {
            AppSource::Dir(dir) if !dir.exists() => Err(SourceText::new(dir, "")
                .file_error("does not exist (with --trust, serve a signed bundle)")
                .into()),
            AppSource::Dir(dir) => Err(SourceText::new(dir, "")
                .file_error(
                    "is an app directory, and this server accepts only bundles signed by a trusted key (--trust): \
                     nothing in a directory is signed; serve a bundle made with `atoll bundle --sign KEY`",
                )
                .into()),
            AppSource::Bundle { path, bundle } => bundle
                .verify(trusted)
                .map_err(|e| SourceText::new(path, "").file_error(e.to_string()).into()),
        }
    }

    pub fn manifest(&self) -> Result<Manifest, ManifestErrors> {
        match self {
            AppSource::Dir(dir) => Manifest::load_from(dir),
            AppSource::Bundle { path, bundle } => Manifest::parse(bundle.manifest_text(), &path.join(MANIFEST_FILE)),
        }
    }

    /// The module a function's `source` names.
    pub(crate) fn module(&self, manifest: &Manifest, f: &Function) -> std::io::Result<Vec<u8>> {
        match self {
            AppSource::Dir(_) => std::fs::read(manifest.module_path(f)),
            AppSource::Bundle { bundle, .. } => {
                let name = f.source.to_string_lossy();
                bundle.file(&name).map(|b| b.to_vec()).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("the bundle has no entry \"{name}\""),
                    )
                })
            }
        }
    }

    /// `migrations/`: each file's path relative to it, and its text. On
    /// disk, `migrations/*.sql` and `migrations/NAME/*.sql`, as a bundle
    /// carries them.
    pub(crate) fn migrations(&self, manifest: &Manifest) -> Result<BTreeMap<String, String>, ManifestErrors> {
        let raw: BTreeMap<String, Vec<u8>> = match self {
            AppSource::Dir(_) => {
                let root = manifest.migrations_dir();
                let mut out = BTreeMap::new();
                if root.is_dir() {
                    read_tree(&root, "", &mut out).map_err(|e| {
                        SourceText::new(&root, "").file_error(format!("cannot read the migrations: {e}"))
                    })?;
                }
                out
            }
            AppSource::Bundle { bundle, .. } => bundle.migrations().into_iter().map(|(k, v)| (k, v.to_vec())).collect(),
        };
        raw.into_iter()
            .map(|(name, bytes)| {
                String::from_utf8(bytes).map(|text| (name.clone(), text)).map_err(|_| {
                    SourceText::new(&manifest.migrations_dir().join(&name), "")
                        .file_error("a migration is SQL text, and this file is not UTF-8")
                        .into()
                })
            })
            .collect()
    }

    pub(crate) fn static_files(&self, manifest: &Manifest) -> Option<Arc<dyn StaticFiles>> {
        match self {
            AppSource::Dir(_) => DirFiles::open(&manifest.static_dir()).map(|d| Arc::new(d) as Arc<dyn StaticFiles>),
            AppSource::Bundle { bundle, .. } => {
                let files = bundle.static_files();
                (!files.is_empty()).then(|| Arc::new(MemFiles::new(files)) as Arc<dyn StaticFiles>)
            }
        }
    }

    /// `static/` as a directory on disk, for WASI preopens: the app's own
    /// for a directory, a private copy (removed with the returned
    /// [`tempfile::TempDir`]) for a bundle, whose files live in memory.
    /// Bundle paths were checked when it was read, so the copy stays inside.
    pub(crate) fn static_dir_on_disk(
        &self,
        manifest: &Manifest,
    ) -> std::io::Result<Option<(PathBuf, Option<tempfile::TempDir>)>> {
        match self {
            AppSource::Dir(_) => {
                let dir = manifest.static_dir();
                Ok(dir.is_dir().then(|| (dir, None)))
            }
            AppSource::Bundle { bundle, .. } => {
                let files = bundle.static_files();
                if files.is_empty() {
                    return Ok(None);
                }
                let copy = tempfile::Builder::new().prefix("atoll-static-").tempdir()?;
                for (name, data) in files {
                    let path = copy.path().join(&name);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(path, data)?;
                }
                Ok(Some((copy.path().to_path_buf(), Some(copy))))
            }
        }
    }

    /// Where embedded stores go unless configured: `.atoll` beside the
    /// manifest, or beside the bundle file.
    pub fn default_data_dir(&self) -> PathBuf {
        match self {
            AppSource::Dir(dir) => {
                let base = if dir.is_dir() {
                    dir.as_path()
                } else {
                    dir.parent().unwrap_or(Path::new("."))
                };
                base.join(".atoll")
            }
            AppSource::Bundle { path, .. } => path.parent().unwrap_or(Path::new(".")).join(".atoll"),
        }
    }
}

/// Files under `dir`, by `/`-separated path from the walk's root (`prefix`).
fn read_tree(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, &format!("{name}/"), out)?;
        } else if path.is_file() {
            out.insert(name, std::fs::read(&path)?);
        }
    }
    Ok(())
}
