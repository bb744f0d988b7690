//! One-file app bundles (`.atoll`).
//!
//! A bundle is a zip holding:
//! - `atoll.toml`: the app's manifest, with each function's `source`
//!   pointing into the bundle and `build` keys removed (comments and layout
//!   kept);
//! - `modules/<sha256>.wasm`: each distinct module once;
//! - `static/...`: the app's static files;
//! - `bundle.json`: the format version and the SHA-256 of every other entry;
//! - `signature.json`, in a signed bundle: an Ed25519 signature over
//!   `bundle.json` (see [`signature`](crate::Signer) and `keys`).
//!
//! [`Bundle::read`] loads one entirely in memory and checks it before
//! anything is used: every entry must be listed in `bundle.json` with a
//! matching hash and every listed entry present; names must be plain
//! relative paths (no `..`, no absolute paths, no backslashes); links and
//! duplicate names are refused; entry count and total size are capped, and
//! a declared size is never trusted. A truncated or tampered bundle is an
//! error that names the entry, never a partial load.
//!
//! ```no_run
//! let bytes = atoll_bundle::write_dir(std::path::Path::new("examples/hello"))?;
//! let bundle = atoll_bundle::Bundle::read(&bytes, &atoll_bundle::Limits::default())?;
//! assert!(bundle.manifest_text().contains("[app]"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod index;
mod keys;
mod read;
mod signature;
mod write;

pub use keys::{KeyError, PublicKey, SecretKey, TrustedKeys, write_key_pair};
pub use read::{Bundle, Limits};
pub use signature::{MAX_SIGNATURE, SIGNATURE, Signer, TrustError};
pub use write::{write_dir, write_dir_signed};

/// The current format; readers refuse newer ones. Unsigned bundles are
/// still written as format 1, which older readers read; signed ones are 2,
/// so an older reader says to upgrade rather than call the signature an
/// unlisted entry.
pub const FORMAT: u32 = 2;
/// The format of unsigned bundles.
pub const FORMAT_UNSIGNED: u32 = 1;
pub const INDEX: &str = "bundle.json";
pub const MANIFEST: &str = "atoll.toml";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a readable bundle (a zip archive): {0}")]
    NotAZip(String),
    #[error("the bundle has no {INDEX}; it was not made by `atoll bundle`")]
    NoIndex,
    #[error("{INDEX} is invalid: {0}")]
    BadIndex(String),
    #[error("the bundle is format {0}, newer than this Atoll reads ({FORMAT}); upgrade Atoll")]
    NewerFormat(u32),
    #[error("entry \"{name}\": {problem}")]
    BadEntry { name: String, problem: String },
    #[error("the bundle lists \"{0}\" but does not contain it (truncated?)")]
    Missing(String),
    #[error("entry \"{0}\" is not listed in {INDEX} (added after the bundle was made?)")]
    Unlisted(String),
    #[error(
        "entry \"{name}\" does not match its SHA-256 in {INDEX} (corrupted or tampered): expected {expected}, found {found}"
    )]
    HashMismatch {
        name: String,
        expected: String,
        found: String,
    },
    #[error("{SIGNATURE} is invalid: {0}")]
    BadSignatureEntry(String),
    #[error("the bundle holds entries with the same name")]
    Duplicates,
    #[error("the bundle is too large: {0}")]
    TooLarge(String),
    #[error("{0}")]
    Manifest(String),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
}
