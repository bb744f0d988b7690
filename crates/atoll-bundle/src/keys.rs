//! Signing keys as files: an Ed25519 private key in PKCS#8 PEM
//! (`-----BEGIN PRIVATE KEY-----`, mode 0600) and its public key in SPKI PEM
//! (`-----BEGIN PUBLIC KEY-----`, shareable), each after one `#` line saying
//! what the file is and the key's id. The formats are OpenSSL's, so
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` make keys
//! Atoll reads, and Atoll's keys work with OpenSSL; lines before the PEM
//! block are ignored on reading, as OpenSSL does.
//!
//! Every error names the file and what is wrong with it (a public key where
//! a private one is wanted, a key of another algorithm, a truncated file),
//! since key files are passed around by hand.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest key file read; a PEM Ed25519 key is about 120 bytes.
const MAX_KEY_FILE: u64 = 16 << 10;

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct KeyError {
    pub path: PathBuf,
    pub problem: String,
}

fn key_error(path: &Path, problem: impl Into<String>) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// A public key's short name: the first 16 hex digits of the SHA-256 of its
/// 32 bytes. Shown to people; trust compares whole keys.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A private key to sign bundles with.
pub struct SecretKey(pub(crate) SigningKey);

/// Shows the key's id, never the key.
impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no random source: {e}"))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key file's text: a comment line, then PKCS#8 PEM.
    pub fn to_file_text(&self) -> String {
        // PKCS#8 v1, the seed alone: OpenSSL 3.0 does not read the v2 form
        // (with the public key) that `SigningKey::to_pkcs8_pem` writes.
        let seed = ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        };
        let pem = seed
            .to_pkcs8_pem(LineEnding::LF)
            .expect("an Ed25519 key encodes as PKCS#8");
        format!(
            "# atoll bundle signing key (Ed25519 private key), id {}: keep it secret\n{}",
            self.public().id(),
            pem.as_str()
        )
    }

    /// Reads a private key file; refuses one that others can read, as ssh
    /// does, since whoever reads it can sign bundles this server trusts.
    pub fn read(path: &Path) -> Result<SecretKey, KeyError> {
        let text = read_key_file(path)?;
        let pem = pem_block(path, &text)?;
        if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            return Err(key_error(
                path,
                "is a public key; signing needs the private key (the .key file `atoll keygen` wrote)",
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| key_error(path, e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(key_error(
                    path,
                    format!(
                        "permissions {:04o} let others read this private key; restrict them with `chmod 600 {}`",
                        mode & 0o777,
                        path.display()
                    ),
                ));
            }
        }
        SigningKey::from_pkcs8_pem(pem)
            .map(SecretKey)
            .map_err(|e| key_error(path, format!("is not an Ed25519 private key in PKCS#8 PEM: {e}")))
    }
}

/// A public key: whose signature a bundle carries, or one `--trust` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    pub fn id(&self) -> String {
        key_id(&self.0)
    }

    /// The key file's text: a comment line, then SPKI PEM.
    pub fn to_file_text(&self) -> String {
        let pem = self
            .0
            .to_public_key_pem(LineEnding::LF)
            .expect("an Ed25519 key encodes as SPKI");
        format!(
            "# atoll bundle signing key (Ed25519 public key), id {}\n{pem}",
            self.id()
        )
    }

    pub fn read(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_key_file(path)?;
        let pem = pem_block(path, &text)?;
        if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(key_error(
                path,
                "is a private key; trust takes the public key (the .pub file `atoll keygen` wrote), and the private one should not be on this server",
            ));
        }
        VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey)
            .map_err(|e| key_error(path, format!("is not an Ed25519 public key in SPKI PEM: {e}")))
    }
}

/// Writes `<base>.key` (mode 0600) and `<base>.pub`; refuses to replace
/// either, since a lost private key cannot be recovered.
pub fn write_key_pair(key: &SecretKey, base: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let private = base.with_extension("key");
    let public = base.with_extension("pub");
    for p in [&private, &public] {
        if p.exists() {
            return Err(key_error(p, "already exists; choose another name or remove it first"));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = |p: &Path, text: String, options: &std::fs::OpenOptions| {
        use std::io::Write;
        options
            .open(p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| key_error(p, e.to_string()))
    };
    write(&private, key.to_file_text(), &options)?;
    let mut shareable = std::fs::OpenOptions::new();
    shareable.write(true).create_new(true);
    write(&public, key.public().to_file_text(), &shareable)?;
    Ok((private, public))
}

/// The public keys a server accepts bundles from.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(PublicKey, PathBuf)>,
}

impl TrustedKeys {
    /// Reads each path: a public key file, or a directory whose `*.pub`
    /// files are all trusted (at least one).
    pub fn load(paths: &[PathBuf]) -> Result<TrustedKeys, KeyError> {
        let mut trusted = TrustedKeys::default();
        for path in paths {
            if path.is_dir() {
                let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|e| key_error(path, e.to_string()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "pub") && p.is_file())
                    .collect();
                if files.is_empty() {
                    return Err(key_error(path, "holds no public key files (*.pub) to trust"));
                }
                files.sort();
                for f in files {
                    trusted.add(PublicKey::read(&f)?, f);
                }
            } else {
                trusted.add(PublicKey::read(path)?, path.clone());
            }
        }
        Ok(trusted)
    }

    fn add(&mut self, key: PublicKey, path: PathBuf) {
        if !self.keys.iter().any(|(k, _)| *k == key) {
            self.keys.push((key, path));
        }
    }

    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each trusted key's id, for messages.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|(k, _)| k.id()).collect()
    }
}

/// A key file's text, read up to a bound: it is small, and a path given by
/// mistake (a bundle, a device) must not be read whole.
fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let file = std::fs::File::open(path).map_err(|e| key_error(path, format!("cannot read the key file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| key_error(path, format!("cannot read the key file: {e}")))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(key_error(
            path,
            format!("is larger than {MAX_KEY_FILE} bytes: not a key file"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| key_error(path, "is not text: not a PEM key file"))
}

/// The PEM block in a key file, from its `-----BEGIN` line on.
fn pem_block<'a>(path: &Path, text: &'a str) -> Result<&'a str, KeyError> {
    text.find("-----BEGIN ")
        .map(|at| &text[at..])
        .ok_or_else(|| key_error(path, "is not a PEM key file (no -----BEGIN line)"))
}
