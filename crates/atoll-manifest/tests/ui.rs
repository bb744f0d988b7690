//! Every `ui/*.toml` must fail to load with exactly the message in the
//! `.stderr` file beside it. Run with `BLESS=1` to rewrite the expectations
//! after an intended change, then review the diff.

use atoll_manifest::Manifest;
use std::path::Path;

#[test]
fn manifest_errors_match_their_expected_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "expected the ui cases to be present");
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases {
        let text = std::fs::read_to_string(&case).unwrap();
        let name = case.file_name().unwrap().to_str().unwrap();
        let got = match Manifest::parse(&text, Path::new(name)) {
            Ok(_) => "(loaded without error)\n".to_string(),
            Err(e) => format!("{e}\n"),
        };
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("--- {name}\nexpected:\n{expected}\ngot:\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
