//! Property tests for the bundle reader, which reads files someone else
//! made: arbitrary bytes, and a real bundle with bytes flipped, cut short,
//! entries renamed or edited inside the archive. Each must be refused with
//! an error that says what is wrong, or, where a flipped byte lands on
//! something the reader does not use, read as exactly the original bundle.
//! Never a panic, and never a partial or different load.

use atoll_bundle::{Bundle, BundleError, Limits, write_dir};
use proptest::prelude::*;
use std::io::Write;
use std::sync::OnceLock;
use zip::write::SimpleFileOptions;

/// A small real bundle, made once: a manifest, a module, static files.
fn original() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("atoll.toml"),
            "[app]\nname = \"props\"\n\n[functions.one]\nsource = \"one.wasm\"\n\n[[routes]]\npath = \"/\"\nfn = \"one\"\n",
        )
        .unwrap();
        std::fs::write(d.join("one.wasm"), atoll_testkit::wat("(module)")).unwrap();
        std::fs::create_dir_all(d.join("static/css")).unwrap();
        std::fs::write(d.join("static/index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(d.join("static/css/site.css"), "body{}").unwrap();
        write_dir(d).unwrap()
    })
}

fn read(bytes: &[u8]) -> Result<Bundle, BundleError> {
    Bundle::read(bytes, &Limits::default())
}

/// What a reader sees of a bundle, to compare two of them.
fn contents(b: &Bundle) -> (String, Vec<(String, usize, String)>) {
    let entries = b
        .entries()
        .map(|(n, size, sha)| (n.to_string(), size, sha.to_string()))
        .collect();
    (b.manifest_text().to_string(), entries)
}

/// The archive's entries, in order.
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

/// An error must say something beyond its fixed wording.
fn says_what(e: &BundleError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(!text.trim().is_empty(), "{e:?}");
    if let BundleError::NotAZip(detail) | BundleError::BadIndex(detail) | BundleError::TooLarge(detail) = e {
        prop_assert!(!detail.trim().is_empty(), "{e:?}");
    }
    Ok(())
}

/// Names a renamed entry may take: near misses, escapes, and noise.
fn new_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "atoll.toml",
                "bundle.json",
                "static/index.html",
                "static/",
                "../atoll.toml",
                "/atoll.toml",
                "static\\index.html",
                "static//index.html",
                "./atoll.toml",
                "c:/atoll.toml",
                "ATOLL.TOML",
                "atoll.toml/",
                "",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z./\\\\:]{1,24}",
        ".{1,24}",
        Just("a".repeat(600)),
    ]
}

/// Zip signatures (local file, end of central directory, central
/// directory), so random input gets past the first check.
const SIGNATURES: &[&[u8]] = &[b"", b"PK\x03\x04", b"PK\x05\x06", b"PK\x01\x02"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_refused(
        head in prop::sample::select(SIGNATURES),
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut input = head.to_vec();
        input.extend(bytes);
        let err = read(&input).err();
        prop_assert!(err.is_some(), "random bytes read as a bundle");
        says_what(&err.unwrap())?;
    }

    /// A byte flipped anywhere: refused, or the same bundle as before.
    #[test]
    fn flipped_bytes_are_refused_or_harmless(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let original = original();
        let mut bytes = original.to_vec();
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        match read(&bytes) {
            Err(e) => says_what(&e)?,
            Ok(b) => prop_assert_eq!(contents(&b), contents(&read(original).unwrap())),
        }
    }

    /// Any shorter prefix is refused: a bundle cut short never half-loads.
    #[test]
    fn truncated_bundles_are_refused(cut in any::<prop::sample::Index>()) {
        let original = original();
        let len = cut.index(original.len());
        let err = read(&original[..len]).err();
        prop_assert!(err.is_some(), "a bundle cut at {len} of {} bytes was read", original.len());
        says_what(&err.unwrap())?;
    }

    /// Bytes past the end (a second archive, a signature, noise).
    #[test]
    fn trailing_bytes_are_refused_or_harmless(tail in prop::collection::vec(any::<u8>(), 1..256)) {
        let original = original();
        let mut bytes = original.to_vec();
        bytes.extend(tail);
        match read(&bytes) {
            Err(e) => says_what(&e)?,
            Ok(b) => prop_assert_eq!(contents(&b), contents(&read(original).unwrap())),
        }
    }

    /// A renamed entry is refused, and the error names the entry or what is
    /// missing because of it.
    #[test]
    fn renamed_entries_are_refused_by_name(which in any::<prop::sample::Index>(), name in new_name()) {
        let mut e = entries(original());
        // The zip writer refuses a name twice; `tests/bundle.rs` makes such
        // an archive by hand and checks it is refused.
        prop_assume!(e.iter().all(|(n, _)| *n != name));
        let i = which.index(e.len());
        let old = std::mem::replace(&mut e[i].0, name.clone());
        match read(&rezip(&e)) {
            Ok(_) => prop_assert!(false, "\"{old}\" renamed \"{name}\" was read"),
            Err(err) => {
                says_what(&err)?;
                let text = err.to_string();
                let named = text.contains(&format!("\"{old}\""))
                    || text.contains(&format!("\"{name}\""))
                    || matches!(err, BundleError::Duplicates | BundleError::NoIndex);
                prop_assert!(named, "\"{old}\" renamed \"{name}\": {text}");
            }
        }
    }

    /// An entry whose contents changed is caught by its hash, by name.
    #[test]
    fn edited_entries_are_refused_by_name(
        which in any::<prop::sample::Index>(),
        data in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut e = entries(original());
        let i = which.index(e.len());
        prop_assume!(e[i].1 != data);
        e[i].1 = data;
        let name = e[i].0.clone();
        match read(&rezip(&e)) {
            Ok(_) => prop_assert!(false, "\"{name}\" was edited and still read"),
            Err(err) => {
                says_what(&err)?;
                // The index is what the others are checked against, so an
                // edited index is refused as invalid, or as not matching.
                let text = err.to_string();
                prop_assert!(
                    text.contains(&format!("\"{name}\"")) || name == "bundle.json",
                    "\"{name}\" edited: {text}"
                );
            }
        }
    }
}
