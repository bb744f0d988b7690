//! Embeds the Rust SDK's sources so `atoll new` can vendor them into a new
//! app: the SDK is not on crates.io, and a template must build offline.

use std::path::Path;

fn main() {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust");
    println!("cargo:rerun-if-changed={}", sdk.display());
    let mut files = vec!["Cargo.toml".to_string()];
    let mut sources: Vec<String> = std::fs::read_dir(sdk.join("src"))
        .expect("sdk/rust/src")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rs"))
        .map(|n| format!("src/{n}"))
        .collect();
    sources.sort();
    files.extend(sources);
    let mut out = String::from(
        "/// The SDK's files: path within the crate, contents.\npub const SDK_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let path = sdk.join(f).canonicalize().expect("an SDK file");
        println!("cargo:rerun-if-changed={}", path.display());
        out.push_str(&format!(
            "    ({f:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    std::fs::write(Path::new(&std::env::var("OUT_DIR").unwrap()).join("sdk_files.rs"), out).unwrap();
}
