use crate::index::Index;
use crate::signature::{self, SIGNATURE};
use crate::{BundleError, FORMAT, FORMAT_UNSIGNED, INDEX, MANIFEST, SecretKey};
use atoll_manifest::Manifest;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

/// Bundles the app in `dir` (or at a manifest path): its manifest, every
/// function's module and its static files. The same inputs give the same
/// bytes (fixed timestamps, sorted entries).
pub fn write_dir(dir: &Path) -> Result<Vec<u8>, BundleError> {
    write_dir_signed(dir, None)
}

/// [`write_dir`], and with a key, the bundle signed: the index as written
/// is signed and the signature stored as the last entry.
pub fn write_dir_signed(dir: &Path, key: Option<&SecretKey>) -> Result<Vec<u8>, BundleError> {
    let manifest = Manifest::load_from(dir).map_err(|e| BundleError::Manifest(e.to_string()))?;
    let mut doc: toml_edit::DocumentMut = manifest
        .source
        .text
        .parse()
        .map_err(|e| BundleError::Manifest(format!("{}: {e}", manifest.source.path.display())))?;

    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for f in manifest.functions.values() {
        let path = manifest.module_path(f);
        let wasm = std::fs::read(&path).map_err(|error| BundleError::Io {
            path: format!(
                "{} (functions.{}.source){}",
                path.display(),
                f.name,
                if f.build.is_some() {
                    "; run `atoll build` first"
                } else {
                    ""
                }
            ),
            error,
        })?;
        let name = format!("modules/{}.wasm", hex::encode(Sha256::digest(&wasm)));
        let function = &mut doc["functions"][f.name.as_str()];
        function["source"] = toml_edit::value(name.as_str());
        if let Some(table) = function.as_table_like_mut() {
            // A bundle holds what was built; how it was built stays behind.
            table.remove("build");
        }
        entries.insert(name, wasm);
    }
    for (dir, prefix) in [
        (manifest.static_dir(), "static"),
        (manifest.migrations_dir(), "migrations"),
    ] {
        if dir.is_dir() {
            collect_tree(&dir, &dir, prefix, &mut entries)?;
        }
    }
    entries.insert(MANIFEST.to_string(), doc.to_string().into_bytes());

    let index = Index {
        format: if key.is_some() { FORMAT } else { FORMAT_UNSIGNED },
        app: manifest.app.name.clone(),
        version: manifest.app.version.clone(),
        created_by: concat!("atoll ", env!("CARGO_PKG_VERSION")).to_string(),
        files: entries
            .iter()
            .map(|(n, d)| (n.clone(), hex::encode(Sha256::digest(d))))
            .collect(),
    };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let zip_err = |e: zip::result::ZipError| BundleError::NotAZip(e.to_string());
    let io_err = |error| BundleError::Io {
        path: "the bundle".into(),
        error,
    };
    for (name, data) in &entries {
        zip.start_file(name.as_str(), options).map_err(zip_err)?;
        zip.write_all(data).map_err(io_err)?;
    }
    zip.start_file(INDEX, options).map_err(zip_err)?;
    let json = serde_json::to_vec_pretty(&index).expect("the index serializes");
    zip.write_all(&json).map_err(io_err)?;
    if let Some(key) = key {
        zip.start_file(SIGNATURE, options).map_err(zip_err)?;
        zip.write_all(&signature::sign(&json, key)).map_err(io_err)?;
    }
    Ok(zip.finish().map_err(zip_err)?.into_inner())
}

/// Regular files under `static/` (or `migrations/`), by
/// `<prefix>/<relative path>`. A link is followed only if it stays inside
/// the directory.
fn collect_tree(root: &Path, dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), BundleError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |error| BundleError::Io { path, error }
    };
    let canonical_root = root.canonicalize().map_err(io(root))?;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let real = path.canonicalize().map_err(io(&path))?;
        if !real.starts_with(&canonical_root) {
            return Err(BundleError::BadEntry {
                name: path.display().to_string(),
                problem: format!("is a link to outside the {prefix} directory"),
            });
        }
        if real.is_dir() {
            collect_tree(root, &path, prefix, out)?;
        } else if real.is_file() {
            let rel = path.strip_prefix(root).expect("under the root");
            let name = format!(
                "{prefix}/{}",
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            );
            out.insert(name, std::fs::read(&real).map_err(io(&path))?);
        }
    }
    Ok(())
}
