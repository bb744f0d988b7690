use crate::index::Index;
use crate::signature::{self, MAX_SIGNATURE, SIGNATURE, Signer, TrustError};
use crate::{BundleError, FORMAT, INDEX, MANIFEST, TrustedKeys};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;

/// The most one entry's declared size may reserve before anything is read.
const PREALLOCATE: u64 = 1 << 20;

/// What a bundle may unpack to. Checked against what is actually read,
/// never against the sizes the archive declares.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total uncompressed bytes.
    pub max_total: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_total: 512 << 20,
            max_entries: 10_000,
        }
    }
}

/// A bundle, read and checked, held in memory.
#[derive(Debug, Clone)]
pub struct Bundle {
    manifest_text: String,
    files: BTreeMap<String, Bytes>,
    index: Index,
    signer: Signer,
}

impl Bundle {
    pub fn read(bytes: &[u8], limits: &Limits) -> Result<Bundle, BundleError> {
        let mut zip =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| BundleError::NotAZip(e.to_string()))?;
        if zip.has_duplicate_names() {
            return Err(BundleError::Duplicates);
        }
        if zip.len() > limits.max_entries {
            return Err(BundleError::TooLarge(format!(
                "{} entries, more than the limit of {}",
                zip.len(),
                limits.max_entries
            )));
        }
        let mut files: BTreeMap<String, Bytes> = BTreeMap::new();
        let mut total: u64 = 0;
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| BundleError::NotAZip(e.to_string()))?;
            let name = entry
                .name()
                .map_err(|e| BundleError::BadEntry {
                    name: format!("#{i}"),
                    problem: format!("unreadable name: {e}"),
                })?
                .to_string();
            let bad = |problem: String| BundleError::BadEntry {
                name: name.clone(),
                problem,
            };
            check_name(&name).map_err(bad)?;
            if entry.is_symlink() {
                return Err(bad("links are not allowed in a bundle".into()));
            }
            if entry.is_dir() {
                continue;
            }
            // Read at most one byte past what is left, whatever the entry declares.
            let mut left = limits.max_total.saturating_sub(total);
            if name == SIGNATURE {
                left = left.min(MAX_SIGNATURE);
            }
            // The declared size is only a hint for the first allocation: a
            // few bytes of archive can declare hundreds of megabytes, so
            // beyond `PREALLOCATE` the buffer grows with what is really read.
            let mut data = Vec::with_capacity(entry.size().min(left).min(PREALLOCATE) as usize);
            (&mut entry)
                .take(left + 1)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("cannot be read ({e}); the bundle is damaged")))?;
            total += data.len() as u64;
            if name == SIGNATURE && data.len() as u64 > MAX_SIGNATURE {
                return Err(BundleError::BadSignatureEntry(format!(
                    "it holds more than {MAX_SIGNATURE} bytes; a signature is a few hundred"
                )));
            }
            if total > limits.max_total {
                return Err(BundleError::TooLarge(format!(
                    "its contents exceed the limit of {} bytes (at \"{name}\")",
                    limits.max_total
                )));
            }
            if data.len() as u64 != entry.size() {
                return Err(bad(format!(
                    "holds {} bytes but declares {}; the bundle is damaged",
                    data.len(),
                    entry.size()
                )));
            }
            files.insert(name, Bytes::from(data));
        }

        let raw_index = files.remove(INDEX).ok_or(BundleError::NoIndex)?;
        let index: Index = serde_json::from_slice(&raw_index).map_err(|e| BundleError::BadIndex(e.to_string()))?;
        if index.format > FORMAT {
            return Err(BundleError::NewerFormat(index.format));
        }
        let signer = match files.remove(SIGNATURE) {
            Some(entry) => signature::read(&entry, &raw_index)?,
            None => Signer::Unsigned,
        };
        for (name, data) in &files {
            let expected = index
                .files
                .get(name)
                .ok_or_else(|| BundleError::Unlisted(name.clone()))?;
            let found = hex::encode(Sha256::digest(data));
            if !found.eq_ignore_ascii_case(expected) {
                return Err(BundleError::HashMismatch {
                    name: name.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        if let Some(missing) = index.files.keys().find(|n| !files.contains_key(*n)) {
            return Err(BundleError::Missing(missing.clone()));
        }
        let manifest_text = files
            .get(MANIFEST)
            .ok_or_else(|| BundleError::Missing(MANIFEST.into()))
            .and_then(|m| {
                String::from_utf8(m.to_vec()).map_err(|_| BundleError::BadEntry {
                    name: MANIFEST.into(),
                    problem: "is not UTF-8".into(),
                })
            })?;
        Ok(Bundle {
            manifest_text,
            files,
            index,
            signer,
        })
    }

    /// Who signed the bundle, and whether the signature holds for the key
    /// it names: not whether that key is to be trusted (see [`Bundle::verify`]).
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Checks the bundle against the keys a server trusts: it must be
    /// signed, by one of them, and the signature must hold. Returns the
    /// signer's key id.
    pub fn verify(&self, trusted: &TrustedKeys) -> Result<String, TrustError> {
        signature::check(&self.signer, trusted)
    }

    pub fn manifest_text(&self) -> &str {
        &self.manifest_text
    }

    pub fn app(&self) -> &str {
        &self.index.app
    }

    pub fn version(&self) -> &str {
        &self.index.version
    }

    pub fn created_by(&self) -> &str {
        &self.index.created_by
    }

    /// An entry's contents.
    pub fn file(&self, name: &str) -> Option<&Bytes> {
        self.files.get(name)
    }

    /// Every entry but the index: name, size, SHA-256.
    pub fn entries(&self) -> impl Iterator<Item = (&str, usize, &str)> {
        self.files
            .iter()
            .map(|(n, d)| (n.as_str(), d.len(), self.index.files.get(n).map_or("", String::as_str)))
    }

    /// The migrations, by path relative to `migrations/`.
    pub fn migrations(&self) -> BTreeMap<String, Bytes> {
        self.files
            .iter()
            .filter_map(|(n, d)| n.strip_prefix("migrations/").map(|rel| (rel.to_string(), d.clone())))
            .collect()
    }

    /// The static files, by path relative to `static/`.
    pub fn static_files(&self) -> BTreeMap<String, Bytes> {
        self.files
            .iter()
            .filter_map(|(n, d)| n.strip_prefix("static/").map(|rel| (rel.to_string(), d.clone())))
            .collect()
    }
}

/// A plain relative path of `/`-separated names: nothing that could reach
/// outside wherever the bundle's entries are looked up.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 512 {
        return Err("the name is empty or longer than 512 bytes".into());
    }
    if name.contains('\0') || name.contains('\\') {
        return Err("the name contains a NUL or a backslash".into());
    }
    if name.starts_with('/') {
        return Err("absolute paths are not allowed".into());
    }
    let body = name.strip_suffix('/').unwrap_or(name);
    for (i, part) in body.split('/').enumerate() {
        match part {
            "" => return Err("the name has an empty component (//)".into()),
            "." | ".." => return Err(format!("\"{part}\" components are not allowed")),
            p if i == 0 && p.len() == 2 && p.ends_with(':') => return Err("drive paths are not allowed".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_that_could_escape_are_refused() {
        for ok in ["atoll.toml", "modules/abc.wasm", "static/css/site.css", "static/"] {
            assert!(super::check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "../evil",
            "static/../../x",
            "/etc/passwd",
            "a\\b",
            "c:/x",
            "a//b",
            "./a",
            "",
        ] {
            assert!(super::check_name(bad).is_err(), "{bad:?}");
        }
    }
}
