//! A bundle's signature: the entry `signature.json`, an Ed25519 signature
//! over the index (`bundle.json`) exactly as stored, with the signer's
//! public key and its id.
//!
//! Signing the index is signing everything: the index holds the SHA-256 of
//! every other entry (manifest, modules, static files) and the format, and
//! [`crate::Bundle::read`] refuses any entry that is missing, extra or does
//! not match its hash. So an entry added, removed or altered after signing
//! — a widened grant in `atoll.toml` included — either fails the hash check
//! or, if the index was rewritten to match, fails the signature. The index
//! is verified as the bytes that were signed, never re-serialised, so no
//! canonical form is needed. The signature entry itself is the one entry
//! the index does not list.
//!
//! Without trusted keys a signed bundle reads as any other, and
//! [`Signer`] says who signed it and whether the signature holds for the
//! key it names (unverified: anyone can sign with a key of their own).

use crate::BundleError;
use crate::keys::{PublicKey, SecretKey, TrustedKeys};
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The entry holding the signature.
pub const SIGNATURE: &str = "signature.json";

/// The most bytes the signature entry may hold; a real one is about 300.
pub const MAX_SIGNATURE: u64 = 4 << 10;

/// Prefixed to the index before signing, so an Atoll bundle signature can
/// never be taken for a signature over anything else.
const CONTEXT: &[u8] = b"atoll bundle index v1\n";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    algorithm: String,
    key_id: String,
    /// The signer's public key, 32 bytes in hex.
    public_key: String,
    /// 64 bytes in hex.
    signature: String,
}

/// Who signed a bundle, as read (not yet checked against any trust).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Unsigned,
    Signed {
        key: PublicKey,
        /// Whether the signature holds over the index for `key`.
        valid: bool,
    },
}

impl Signer {
    pub fn key_id(&self) -> Option<String> {
        match self {
            Signer::Unsigned => None,
            Signer::Signed { key, .. } => Some(key.id()),
        }
    }
}

/// Why a bundle is refused under `--trust`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(
        "the bundle is not signed, and only bundles signed by a trusted key are accepted (sign it with `atoll bundle --sign KEY`)"
    )]
    Unsigned,
    #[error("the bundle is signed by key {signer}, which is not trusted here (trusted: {})", trusted.join(", "))]
    UnknownSigner { signer: String, trusted: Vec<String> },
    #[error(
        "the bundle's signature by key {signer} does not match its contents: {} was altered after signing, or the signature was",
        crate::INDEX
    )]
    BadSignature { signer: String },
}

/// The signature entry for an index, signed with `key`.
pub(crate) fn sign(index: &[u8], key: &SecretKey) -> Vec<u8> {
    let signature = key.0.sign(&message(index));
    let public = key.public();
    let block = Block {
        algorithm: "ed25519".into(),
        key_id: public.id(),
        public_key: hex::encode(public.0.as_bytes()),
        signature: hex::encode(signature.to_bytes()),
    };
    serde_json::to_vec_pretty(&block).expect("the signature block serializes")
}

/// Reads a signature entry and checks it against the index as stored.
/// A block that cannot be read is an error whatever the trust: a damaged
/// bundle is refused, never served as if unsigned.
pub(crate) fn read(entry: &[u8], index: &[u8]) -> Result<Signer, BundleError> {
    let bad = |problem: String| BundleError::BadSignatureEntry(problem);
    let block: Block = serde_json::from_slice(entry).map_err(|e| bad(format!("not a signature block: {e}")))?;
    if block.algorithm != "ed25519" {
        return Err(bad(format!(
            "algorithm \"{}\" is not supported (only ed25519)",
            truncate(&block.algorithm)
        )));
    }
    let public: [u8; 32] =
        decode_hex(&block.public_key).ok_or_else(|| bad("public_key is not 32 bytes of hex".into()))?;
    let key = VerifyingKey::from_bytes(&public)
        .map(PublicKey)
        .map_err(|_| bad("public_key is not a valid Ed25519 key".into()))?;
    if block.key_id != key.id() {
        return Err(bad(format!(
            "key_id \"{}\" is not the id of its public key ({})",
            truncate(&block.key_id),
            key.id()
        )));
    }
    let signature: [u8; 64] =
        decode_hex(&block.signature).ok_or_else(|| bad("signature is not 64 bytes of hex".into()))?;
    let signature = Signature::from_bytes(&signature);
    let valid = key.0.verify_strict(&message(index), &signature).is_ok();
    Ok(Signer::Signed { key, valid })
}

/// Whether `signer` is acceptable to a server trusting `trusted`.
pub(crate) fn check(signer: &Signer, trusted: &TrustedKeys) -> Result<String, TrustError> {
    match signer {
        Signer::Unsigned => Err(TrustError::Unsigned),
        Signer::Signed { key, .. } if !trusted.contains(key) => Err(TrustError::UnknownSigner {
            signer: key.id(),
            trusted: trusted.ids(),
        }),
        Signer::Signed { key, valid: false } => Err(TrustError::BadSignature { signer: key.id() }),
        Signer::Signed { key, valid: true } => Ok(key.id()),
    }
}

fn message(index: &[u8]) -> Vec<u8> {
    [CONTEXT, index].concat()
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// A value from the block, cut short for a message.
fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}
