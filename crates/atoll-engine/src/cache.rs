//! Compiled modules on disk, so a restart skips Cranelift entirely.
//!
//! An entry is named by SHA-256 over (module SHA-256, preparation variant,
//! engine compatibility hash): a different Wasmtime version or configuration
//! simply misses. A `.tag` file beside each artifact records how the module
//! was prepared (for instance whether pre-initialisation succeeded), so the
//! outcome of an expensive preparation is cached too.
//!
//! Loading an artifact is `unsafe` in Wasmtime because it is native code: the
//! cache directory is created private to the user (0700) and must not be
//! writable by anyone less trusted than the server itself.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Identifies one preparation of one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleKey {
    pub module_sha256: [u8; 32],
    /// How the module is prepared before compiling, e.g. `wapc-preinit-v1`.
    pub variant: String,
}

impl ModuleKey {
    pub fn new(wasm: &[u8], variant: &str) -> ModuleKey {
        ModuleKey {
            module_sha256: Sha256::digest(wasm).into(),
            variant: variant.to_string(),
        }
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.module_sha256)
    }
}

/// A module ready to instantiate, with the tag its preparation recorded.
pub struct CachedModule {
    pub module: wasmtime::Module,
    pub tag: String,
}

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_hash: [u8; 32],
}

impl DiskCache {
    pub(crate) fn open(dir: &Path, engine: &wasmtime::Engine) -> std::io::Result<DiskCache> {
        create_private_dir(dir)?;
        let mut hasher = Sha256Hasher(Sha256::new());
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            engine_hash: hasher.0.finalize().into(),
        })
    }

    fn entry(&self, key: &ModuleKey) -> PathBuf {
        let mut h = Sha256::new();
        h.update(key.module_sha256);
        h.update([0]);
        h.update(key.variant.as_bytes());
        h.update([0]);
        h.update(self.engine_hash);
        self.dir.join(hex::encode(h.finalize()))
    }

    pub(crate) fn load(&self, engine: &wasmtime::Engine, key: &ModuleKey) -> Option<CachedModule> {
        // SAFETY: see `load_artifact`.
        self.load_artifact(key, |bytes| unsafe { wasmtime::Module::deserialize(engine, bytes) })
            .map(|(module, tag)| CachedModule { module, tag })
    }

    /// A component compiled earlier for `key`.
    pub(crate) fn load_component(
        &self,
        engine: &wasmtime::Engine,
        key: &ModuleKey,
    ) -> Option<wasmtime::component::Component> {
        // SAFETY: see `load_artifact`.
        self.load_artifact(key, |bytes| unsafe {
            wasmtime::component::Component::deserialize(engine, bytes)
        })
        .map(|(component, _)| component)
    }

    /// Reads the artifact for `key` and its tag, deserialising it with
    /// `deserialize`, which must be Wasmtime's own: the artifact was written
    /// by `store` from Wasmtime's serialisation, into a directory only this
    /// user can write, and its name commits to the engine's compatibility
    /// hash. Wasmtime still validates the header and refuses artifacts from
    /// another engine. An unreadable entry is removed.
    fn load_artifact<A>(
        &self,
        key: &ModuleKey,
        deserialize: impl FnOnce(&[u8]) -> wasmtime::Result<A>,
    ) -> Option<(A, String)> {
        let base = self.entry(key);
        let tag = std::fs::read_to_string(base.with_extension("tag")).ok()?;
        let artifact = base.with_extension("cwasm");
        // Read, not mmap: a mapped artifact that someone truncates on disk
        // would kill the server with SIGBUS the next time its code runs.
        let bytes = std::fs::read(&artifact).ok()?;
        match deserialize(&bytes) {
            Ok(a) => Some((a, tag.trim().to_string())),
            Err(e) => {
                tracing::warn!(path = %artifact.display(), error = %e, "discarding an unreadable compile-cache entry");
                let _ = std::fs::remove_file(&artifact);
                let _ = std::fs::remove_file(base.with_extension("tag"));
                None
            }
        }
    }

    /// Writes the entry atomically (temp file + rename) so a crash or a
    /// concurrent writer never leaves a half-written artifact under the real name.
    pub(crate) fn store(&self, key: &ModuleKey, tag: &str, bytes: &[u8]) -> std::io::Result<()> {
        let base = self.entry(key);
        atomic_write(&base.with_extension("cwasm"), bytes)?;
        atomic_write(&base.with_extension("tag"), tag.as_bytes())
    }
}

fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}.{:?}", std::process::id(), std::thread::current().id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Feeds `Hash` output into SHA-256 so the key is stable across runs, which
/// `DefaultHasher` does not promise.
struct Sha256Hasher(Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is used")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
