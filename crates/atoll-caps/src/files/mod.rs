//! `files`: the app's static files (`static/` beside the manifest), read-only.
//!
//! Paths are relative and `/`-separated. `..`, absolute paths, backslashes
//! and NUL are refused before touching the file system, and the resolved
//! file must still lie inside the static directory after following links,
//! so no path reaches outside it.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `read` | `str` path | `bin`, or `nil` if there is no such file |
//! | `exists` | `str` path | `bool` |
//! | `list` | `str` directory (`""` for the root) | array of `str` names, directories ending in `/` |

use crate::capability::{BuildContext, HostCapability};
use crate::wire::{encode, text};
use crate::{HostCallError, Invocation};
use async_trait::async_trait;
use atoll_manifest::{Capability, Function, ManifestError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The app's static files, if it has a `static/` directory.
pub struct Files {
    files: Option<Arc<dyn StaticFiles>>,
}

/// The static files, for a function granted `files`.
#[derive(Clone, Default)]
pub struct FilesGrant(pub Option<Arc<dyn StaticFiles>>);

impl std::fmt::Debug for FilesGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "static/" } else { "none" })
    }
}

impl HostCapability for Files {
    const KIND: Capability = Capability::Files;
    type Grant = FilesGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Files, Vec<ManifestError>> {
        Ok(Files {
            files: ctx.files.cloned(),
        })
    }

    fn grant(&self, _: &Function) -> Result<FilesGrant, String> {
        Ok(FilesGrant(self.files.clone()))
    }

    async fn call(
        _: &Invocation,
        grant: &FilesGrant,
        _: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        call(grant, op, payload).await
    }
}

/// Largest file `read` returns.
pub const MAX_FILE: u64 = 32 << 20;

/// A read-only tree of files.
#[async_trait]
pub trait StaticFiles: Send + Sync {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String>;
    async fn list(&self, dir: &str) -> Result<Option<Vec<String>>, String>;
}

/// Files held in memory: a bundle's `static/`.
pub struct MemFiles {
    files: std::collections::BTreeMap<String, bytes::Bytes>,
}

impl MemFiles {
    /// `files` by path relative to the static root, `/`-separated.
    pub fn new(files: std::collections::BTreeMap<String, bytes::Bytes>) -> MemFiles {
        MemFiles { files }
    }
}

#[async_trait]
impl StaticFiles for MemFiles {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let key = clean(path)?.join("/");
        Ok(self.files.get(&key).map(|b| b.to_vec()))
    }

    async fn list(&self, dir: &str) -> Result<Option<Vec<String>>, String> {
        let prefix = clean(dir)?.join("/");
        let prefix = if prefix.is_empty() {
            prefix
        } else {
            format!("{prefix}/")
        };
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(prefix.as_str()))
            .map(|rest| match rest.split_once('/') {
                Some((d, _)) => format!("{d}/"),
                None => rest.to_string(),
            })
            .collect();
        names.dedup();
        Ok((!names.is_empty()).then_some(names))
    }
}

/// Files in a directory on disk.
pub struct DirFiles {
    root: PathBuf,
}

impl DirFiles {
    /// `None` if the directory does not exist.
    pub fn open(root: &Path) -> Option<DirFiles> {
        let root = root.canonicalize().ok()?;
        root.is_dir().then_some(DirFiles { root })
    }

    /// The file's real path, if it exists inside the root.
    fn resolve(&self, path: &str) -> Result<Option<PathBuf>, String> {
        let mut full = self.root.clone();
        for part in clean(path)? {
            full.push(part);
        }
        match full.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(Some(real)),
            Ok(_) => Err(format!("\"{path}\" leads outside the static directory")),
            Err(_) => Ok(None),
        }
    }
}

/// The path's components, or why it is refused.
pub fn clean(path: &str) -> Result<Vec<&str>, String> {
    if path.contains('\0') || path.contains('\\') {
        return Err(format!("\"{}\" contains a NUL or a backslash", path.escape_debug()));
    }
    if path.starts_with('/') {
        return Err(format!("\"{path}\" is absolute; static paths are relative to static/"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("\"{path}\" contains \"..\"")),
            p if p.len() > 1 && p.as_bytes()[1] == b':' => {
                return Err(format!("\"{path}\" looks like a drive path"));
            }
            p => parts.push(p),
        }
    }
    Ok(parts)
}

#[async_trait]
impl StaticFiles for DirFiles {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let Some(real) = self.resolve(path)? else {
            return Ok(None);
        };
        let meta = tokio::fs::metadata(&real).await.map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > MAX_FILE {
            return Err(format!("\"{path}\" is {} bytes; the limit is {MAX_FILE}", meta.len()));
        }
        tokio::fs::read(&real).await.map(Some).map_err(|e| e.to_string())
    }

    async fn list(&self, dir: &str) -> Result<Option<Vec<String>>, String> {
        let Some(real) = self.resolve(dir)? else {
            return Ok(None);
        };
        let mut entries = match tokio::fs::read_dir(&real).await {
            Ok(e) => e,
            Err(_) => return Ok(None),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                name.push('/');
            }
            names.push(name);
        }
        names.sort();
        Ok(Some(names))
    }
}

async fn call(grant: &FilesGrant, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    let Some(files) = &grant.0 else {
        return Err(HostCallError::Failed(
            "this app has no static files (create a static/ directory beside atoll.toml)".into(),
        ));
    };
    let path = text(payload);
    let fail = |e: String| HostCallError::Failed(format!("files: {e}"));
    match op {
        "read" => {
            let data = files.read(&path).await.map_err(fail)?;
            Ok(encode(&data.as_deref().map(serde_bytes::Bytes::new)))
        }
        "exists" => Ok(encode(&files.read(&path).await.map_err(fail)?.is_some())),
        "list" => Ok(encode(&files.list(&path).await.map_err(fail)?.unwrap_or_default())),
        _ => Err(HostCallError::unknown_op("files", op, &["read", "exists", "list"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_way_out() {
        assert_eq!(clean("css/site.css").unwrap(), vec!["css", "site.css"]);
        assert_eq!(clean("./a//b/").unwrap(), vec!["a", "b"]);
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a\\..\\b",
            "a\0b",
            "C:/windows",
        ] {
            assert!(clean(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[tokio::test]
    async fn reads_inside_and_never_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("static");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(root.join("css/site.css"), "body{}").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "top secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();

        let files = DirFiles::open(&root).unwrap();
        assert_eq!(files.read("index.html").await.unwrap().unwrap(), b"<h1>hi</h1>");
        assert_eq!(files.read("css/site.css").await.unwrap().unwrap(), b"body{}");
        assert_eq!(files.read("missing.txt").await.unwrap(), None);
        assert_eq!(files.read("css").await.unwrap(), None);
        assert!(files.read("../secret.txt").await.is_err());
        #[cfg(unix)]
        assert!(files.read("link.txt").await.unwrap_err().contains("outside"));

        let mem = MemFiles::new(
            [
                ("index.html", "<h1>hi</h1>"),
                ("css/site.css", "body{}"),
                ("css/x/y.css", ""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), bytes::Bytes::from(v)))
            .collect(),
        );
        assert_eq!(mem.read("css/site.css").await.unwrap().unwrap(), b"body{}");
        assert_eq!(mem.read("./css//site.css").await.unwrap().unwrap(), b"body{}");
        assert!(mem.read("../index.html").await.is_err());
        assert_eq!(mem.read("nope").await.unwrap(), None);
        assert_eq!(mem.list("").await.unwrap().unwrap(), vec!["css/", "index.html"]);
        assert_eq!(mem.list("css").await.unwrap().unwrap(), vec!["site.css", "x/"]);
        assert_eq!(
            files.list("").await.unwrap().unwrap(),
            vec!["css/", "index.html", "link.txt"]
        );
        assert_eq!(files.list("css").await.unwrap().unwrap(), vec!["site.css"]);
    }
}
