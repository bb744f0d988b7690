//! Signed bundles: a signature holds for the bundle as signed, and any
//! change after signing — an entry added, removed or altered, the manifest
//! and its grants included, the index rewritten to match — is caught, with
//! a message that says which.

use atoll_bundle::{
    Bundle, BundleError, Limits, PublicKey, SIGNATURE, SecretKey, Signer, TrustError, TrustedKeys, write_dir_signed,
    write_key_pair,
};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;

fn app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("atoll.toml"),
        r#"[app]
name = "signed"

[functions.one]
source = "one.wasm"
capabilities = ["log"]
"#,
    )
    .unwrap();
    std::fs::write(d.join("one.wasm"), atoll_testkit::wat("(module)")).unwrap();
    dir
}

fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(name.as_str(), SimpleFileOptions::default()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn read(bytes: &[u8]) -> Result<Bundle, BundleError> {
    Bundle::read(bytes, &Limits::default())
}

fn trusting(key: &SecretKey) -> (tempfile::TempDir, TrustedKeys) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("k.pub"), key.public().to_file_text()).unwrap();
    let trusted = TrustedKeys::load(&[dir.path().join("k.pub")]).unwrap();
    (dir, trusted)
}

/// The manifest with a wider grant, and the index rewritten to match it,
/// as someone without the key would have to.
fn widen_grant(bytes: &[u8]) -> Vec<u8> {
    let mut all = entries(bytes);
    let manifest = all.iter_mut().find(|(n, _)| n == "atoll.toml").unwrap();
    manifest.1 = String::from_utf8(manifest.1.clone())
        .unwrap()
        .replace(r#"["log"]"#, r#"["log", "kv"]"#)
        .into_bytes();
    let sha = hex::encode(Sha256::digest(&manifest.1));
    let index = all.iter_mut().find(|(n, _)| n == "bundle.json").unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&index.1).unwrap();
    json["files"]["atoll.toml"] = sha.into();
    index.1 = serde_json::to_vec_pretty(&json).unwrap();
    rezip(&all)
}

#[test]
fn a_signed_bundle_verifies_against_its_key_and_only_its_key() {
    let (key, other) = (SecretKey::generate().unwrap(), SecretKey::generate().unwrap());
    let bytes = write_dir_signed(app().path(), Some(&key)).unwrap();
    let bundle = read(&bytes).unwrap();
    assert_eq!(
        bundle.signer(),
        &Signer::Signed {
            key: key.public(),
            valid: true
        }
    );
    let (_d, trusted) = trusting(&key);
    assert_eq!(bundle.verify(&trusted), Ok(key.public().id()));

    let (_d2, others) = trusting(&other);
    assert_eq!(
        bundle.verify(&others),
        Err(TrustError::UnknownSigner {
            signer: key.public().id(),
            trusted: vec![other.public().id()]
        })
    );
    let unsigned = read(&write_dir_signed(app().path(), None).unwrap()).unwrap();
    assert_eq!(unsigned.signer(), &Signer::Unsigned);
    let refused = unsigned.verify(&trusted).unwrap_err();
    assert!(refused.to_string().contains("not signed"), "{refused}");
}

#[test]
fn a_grant_widened_after_signing_is_caught() {
    let key = SecretKey::generate().unwrap();
    let (_d, trusted) = trusting(&key);
    let bytes = write_dir_signed(app().path(), Some(&key)).unwrap();

    // The manifest alone changed: its hash no longer matches the index.
    let mut all = entries(&bytes);
    all.iter_mut().find(|(n, _)| n == "atoll.toml").unwrap().1 = b"[app]\nname = \"x\"\n".to_vec();
    let e = read(&rezip(&all)).unwrap_err();
    assert!(
        matches!(&e, BundleError::HashMismatch { name, .. } if name == "atoll.toml"),
        "{e}"
    );

    // The index rewritten to match: the bundle reads, the signature fails.
    let widened = read(&widen_grant(&bytes)).unwrap();
    assert!(widened.manifest_text().contains(r#""kv""#));
    assert_eq!(
        widened.signer(),
        &Signer::Signed {
            key: key.public(),
            valid: false
        }
    );
    let e = widened.verify(&trusted).unwrap_err();
    assert_eq!(
        e,
        TrustError::BadSignature {
            signer: key.public().id()
        }
    );
    assert!(e.to_string().contains("altered after signing"), "{e}");
}

#[test]
fn entries_added_or_removed_after_signing_are_refused() {
    let key = SecretKey::generate().unwrap();
    let bytes = write_dir_signed(app().path(), Some(&key)).unwrap();
    let mut extra = entries(&bytes);
    extra.push(("static/evil.js".into(), b"alert(1)".to_vec()));
    let e = read(&rezip(&extra)).unwrap_err();
    assert!(matches!(&e, BundleError::Unlisted(n) if n == "static/evil.js"), "{e}");

    let mut fewer = entries(&bytes);
    fewer.retain(|(n, _)| !n.starts_with("modules/"));
    let e = read(&rezip(&fewer)).unwrap_err();
    assert!(
        matches!(&e, BundleError::Missing(n) if n.starts_with("modules/")),
        "{e}"
    );
}

#[test]
fn garbled_signature_blocks_are_refused_with_what_is_wrong() {
    let key = SecretKey::generate().unwrap();
    let bytes = write_dir_signed(app().path(), Some(&key)).unwrap();
    let block: serde_json::Value =
        serde_json::from_slice(&entries(&bytes).into_iter().find(|(n, _)| n == SIGNATURE).unwrap().1).unwrap();
    let with_block = |block: Vec<u8>| {
        let mut all = entries(&bytes);
        all.iter_mut().find(|(n, _)| n == SIGNATURE).unwrap().1 = block;
        read(&rezip(&all))
    };
    let edited = |key: &str, value: serde_json::Value| {
        let mut b = block.clone();
        b[key] = value;
        with_block(serde_json::to_vec(&b).unwrap())
    };
    let cases: Vec<(Result<Bundle, BundleError>, &str)> = vec![
        (with_block(b"not json".to_vec()), "not a signature block"),
        (with_block(vec![b' '; 1 << 20]), "more than 4096 bytes"),
        (edited("algorithm", "rsa".into()), "\"rsa\" is not supported"),
        (edited("public_key", "abcd".into()), "public_key is not 32 bytes"),
        (edited("signature", "zz".into()), "signature is not 64 bytes"),
        (
            edited("key_id", "0000000000000000".into()),
            "is not the id of its public key",
        ),
        (edited("extra", 1.into()), "unknown field"),
    ];
    for (result, expected) in cases {
        let e = result.unwrap_err();
        assert!(matches!(e, BundleError::BadSignatureEntry(_)), "{e}");
        assert!(e.to_string().contains(expected), "{e} should say {expected}");
        assert!(e.to_string().starts_with("signature.json is invalid"), "{e}");
    }

    // A well-formed block whose signature bytes were changed reads, and is
    // marked invalid.
    let mut sig = hex::decode(block["signature"].as_str().unwrap()).unwrap();
    sig[10] ^= 1;
    let bundle = edited("signature", hex::encode(sig).into()).unwrap();
    assert!(matches!(bundle.signer(), Signer::Signed { valid: false, .. }));
}

#[test]
fn key_files_round_trip_and_wrong_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::generate().unwrap();
    let (private, public) = write_key_pair(&key, &dir.path().join("release")).unwrap();
    assert_eq!(private.extension().unwrap(), "key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&private).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(
        text.contains("-----BEGIN PRIVATE KEY-----") && text.contains(&key.public().id()),
        "{text}"
    );
    assert_eq!(SecretKey::read(&private).unwrap().public(), key.public());
    assert_eq!(PublicKey::read(&public).unwrap(), key.public());

    let again = write_key_pair(&key, &dir.path().join("release")).unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");

    let expect = |e: atoll_bundle::KeyError, path: &Path, says: &str| {
        let text = e.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains(says), "{text} should say {says}");
    };
    expect(SecretKey::read(&public).unwrap_err(), &public, "is a public key");
    expect(PublicKey::read(&private).unwrap_err(), &private, "is a private key");

    let truncated = dir.path().join("truncated.pub");
    let pub_text = std::fs::read_to_string(&public).unwrap();
    std::fs::write(&truncated, &pub_text[..pub_text.len() - 30]).unwrap();
    expect(
        PublicKey::read(&truncated).unwrap_err(),
        &truncated,
        "not an Ed25519 public key",
    );

    let garbage = dir.path().join("garbage.pub");
    std::fs::write(&garbage, "hello").unwrap();
    expect(PublicKey::read(&garbage).unwrap_err(), &garbage, "no -----BEGIN line");

    let huge = dir.path().join("huge.pub");
    std::fs::write(&huge, vec![b'a'; 1 << 20]).unwrap();
    expect(PublicKey::read(&huge).unwrap_err(), &huge, "larger than");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
        expect(SecretKey::read(&private).unwrap_err(), &private, "chmod 600");
    }

    // A directory trusts every .pub in it; one with none is an error.
    let other = SecretKey::generate().unwrap();
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("a.pub"), key.public().to_file_text()).unwrap();
    std::fs::write(keys.path().join("b.pub"), other.public().to_file_text()).unwrap();
    std::fs::write(keys.path().join("README"), "not a key").unwrap();
    let trusted = TrustedKeys::load(&[keys.path().to_path_buf()]).unwrap();
    assert!(trusted.contains(&key.public()) && trusted.contains(&other.public()));
    let empty = tempfile::tempdir().unwrap();
    expect(
        TrustedKeys::load(&[empty.path().to_path_buf()]).unwrap_err(),
        empty.path(),
        "no public key files",
    );
}

#[test]
fn keys_made_by_openssl_are_read() {
    // The PEM forms are OpenSSL's (PKCS#8, SPKI): a fixed key as OpenSSL
    // 3 writes it (`openssl genpkey -algorithm ed25519`, `openssl pkey -pubout`).
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("openssl.key");
    std::fs::write(
        &private,
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let public = dir.path().join("openssl.pub");
    std::fs::write(
        &public,
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    assert_eq!(
        SecretKey::read(&private).unwrap().public(),
        PublicKey::read(&public).unwrap()
    );
}
