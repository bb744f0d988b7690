//! Bundles round-trip, and every damaged or hostile bundle is refused with
//! an error that names the problem.

use atoll_bundle::{Bundle, BundleError, Limits, write_dir};
use std::io::Write;
use zip::write::SimpleFileOptions;

fn app() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("atoll.toml"),
        r#"# the app's own comment survives bundling
[app]
name = "bundled"
version = "2.0.0"

[functions.one]
source = "build/one.wasm"
build = { command = "make one" }

[functions.two]
source = "build/one.wasm"   # same module, a second function

[[routes]]
path = "/"
fn = "one"
"#,
    )
    .unwrap();
    std::fs::create_dir_all(d.join("build")).unwrap();
    std::fs::write(d.join("build/one.wasm"), atoll_testkit::wat("(module)")).unwrap();
    std::fs::create_dir_all(d.join("static/css")).unwrap();
    std::fs::write(d.join("static/index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(d.join("static/css/site.css"), "body{}").unwrap();
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

#[test]
fn a_bundle_round_trips_with_its_manifest_rewritten() {
    let dir = app();
    let bytes = write_dir(dir.path()).unwrap();
    let bundle = read(&bytes).unwrap();
    assert_eq!((bundle.app(), bundle.version()), ("bundled", "2.0.0"));
    let text = bundle.manifest_text();
    assert!(text.contains("# the app's own comment survives bundling"), "{text}");
    assert!(!text.contains("build"), "build keys are dropped: {text}");
    let module_entries: Vec<_> = bundle.entries().filter(|(n, ..)| n.starts_with("modules/")).collect();
    assert_eq!(module_entries.len(), 1, "a module two functions share is stored once");
    let (name, size, sha) = module_entries[0];
    assert_eq!(name, format!("modules/{sha}.wasm"));
    assert_eq!(size, 8);
    assert_eq!(text.matches(name).count(), 2, "{text}");
    let statics = bundle.static_files();
    assert_eq!(statics["index.html"], "<h1>hi</h1>");
    assert_eq!(statics["css/site.css"], "body{}");
    // And the rewritten manifest is a valid manifest.
    atoll_manifest::Manifest::parse(text, std::path::Path::new("app.atoll/atoll.toml")).unwrap();
}

#[test]
fn the_same_app_gives_the_same_bytes() {
    let dir = app();
    assert_eq!(write_dir(dir.path()).unwrap(), write_dir(dir.path()).unwrap());
}

#[test]
fn a_missing_module_says_to_build_first() {
    let dir = app();
    std::fs::remove_file(dir.path().join("build/one.wasm")).unwrap();
    let err = write_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("functions.one.source") && err.contains("run `atoll build` first"),
        "{err}"
    );
}

#[test]
fn a_tampered_entry_is_caught_by_its_hash() {
    let mut e = entries(&write_dir(app().path()).unwrap());
    let css = e.iter_mut().find(|(n, _)| n == "static/css/site.css").unwrap();
    css.1 = b"body{display:none}".to_vec();
    match read(&rezip(&e)) {
        Err(BundleError::HashMismatch { name, .. }) => assert_eq!(name, "static/css/site.css"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_truncated_bundle_is_refused_never_half_loaded() {
    let bytes = write_dir(app().path()).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 100, 10, 0] {
        assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Entries dropped from the archive: the index still lists them.
    let mut e = entries(&bytes);
    e.retain(|(n, _)| n != "static/index.html");
    assert!(matches!(read(&rezip(&e)), Err(BundleError::Missing(n)) if n == "static/index.html"));
}

#[test]
fn entries_that_could_escape_are_refused() {
    let bytes = write_dir(app().path()).unwrap();
    for evil in [
        "../evil.txt",
        "static/../../evil.txt",
        "/etc/cron.d/evil",
        "static\\..\\evil",
    ] {
        let mut e = entries(&bytes);
        e.push((evil.to_string(), b"x".to_vec()));
        match read(&rezip(&e)) {
            Err(BundleError::BadEntry { name, problem }) => assert_eq!(name, evil, "{problem}"),
            other => panic!("{evil}: unexpected {other:?}"),
        }
    }
}

#[test]
fn links_are_refused() {
    let mut e = entries(&write_dir(app().path()).unwrap());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in e.drain(..) {
        zip.start_file(name.as_str(), SimpleFileOptions::default()).unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.add_symlink("static/passwd", "/etc/passwd", SimpleFileOptions::default())
        .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    match read(&bytes) {
        Err(BundleError::BadEntry { name, problem }) => {
            assert_eq!(name, "static/passwd");
            assert!(problem.contains("links"), "{problem}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn duplicate_names_are_refused() {
    let mut e = entries(&write_dir(app().path()).unwrap());
    e.push(("static/dup-a.txt".into(), b"first".to_vec()));
    e.push(("static/dup-b.txt".into(), b"second".to_vec()));
    let mut bytes = rezip(&e);
    // The writer refuses duplicates, so rename the second entry in place,
    // in both the local header and the central directory.
    let (from, to) = (b"static/dup-b.txt", b"static/dup-a.txt");
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
    assert!(
        matches!(read(&bytes), Err(BundleError::Duplicates)),
        "{:?}",
        read(&bytes).err()
    );
}

#[test]
fn oversize_bundles_are_refused() {
    let bytes = write_dir(app().path()).unwrap();
    let tight = Limits {
        max_total: 100,
        ..Limits::default()
    };
    assert!(matches!(Bundle::read(&bytes, &tight), Err(BundleError::TooLarge(_))));
    let few = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert!(matches!(Bundle::read(&bytes, &few), Err(BundleError::TooLarge(_))));

    // Zeros compress to almost nothing: the limit is on what unpacks.
    let mut e = entries(&bytes);
    e.push(("static/zeros.bin".into(), vec![0u8; 4 << 20]));
    let bomb = rezip(&e);
    assert!(bomb.len() < 64 << 10, "the test bundle is small on disk");
    let limit = Limits {
        max_total: 1 << 20,
        ..Limits::default()
    };
    assert!(matches!(Bundle::read(&bomb, &limit), Err(BundleError::TooLarge(_))));
}

#[test]
fn unlisted_entries_and_foreign_files_are_refused() {
    let bytes = write_dir(app().path()).unwrap();
    let mut e = entries(&bytes);
    e.push(("static/added-later.js".into(), b"alert(1)".to_vec()));
    assert!(matches!(read(&rezip(&e)), Err(BundleError::Unlisted(n)) if n == "static/added-later.js"));

    assert!(matches!(read(b"definitely not a zip"), Err(BundleError::NotAZip(_))));
    let no_index: Vec<_> = entries(&bytes)
        .into_iter()
        .filter(|(n, _)| n != "bundle.json")
        .collect();
    assert!(matches!(read(&rezip(&no_index)), Err(BundleError::NoIndex)));

    let mut newer = entries(&bytes);
    let index = newer.iter_mut().find(|(n, _)| n == "bundle.json").unwrap();
    index.1 = String::from_utf8(index.1.clone())
        .unwrap()
        .replace("\"format\": 1", "\"format\": 99")
        .into_bytes();
    assert!(matches!(read(&rezip(&newer)), Err(BundleError::NewerFormat(99))));
}
