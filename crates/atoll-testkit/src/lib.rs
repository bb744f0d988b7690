//! Test support shared by Atoll's crates: guest fixtures compiled once per
//! test run, paths every test agrees on, required servers, and the log
//! captured for tests that assert on it.
//!
//! `scripts/test.sh` builds every fixture before the tests start and sets
//! `ATOLL_GUESTS_PREBUILT=1`, so test processes only read files. Run alone
//! (`cargo test -p ...`), the first use in a process builds them with cargo,
//! whose own lock keeps concurrent test binaries from racing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod logs;
mod servers;
mod tls;
pub use logs::{capture_logs, captured};
pub use servers::{NatsServer, NatsServerTls, PostgresServer, PostgresTls, PrometheusServer, RedisServer, free_port};
pub use tls::{Issued, TestCa, localhost_certificate};

/// Rust fixtures under `tests/guests`, with the target each is built for.
const RUST_GUESTS: &[(&str, &str)] = &[
    ("wapc-plain", "wasm32-unknown-unknown"),
    ("sdk-fixture", "wasm32-wasip1"),
    ("caps-fixture", "wasm32-wasip1"),
    // A `[[bin]]` (a WASI command): its file is named after the bin,
    // `wagi_rust.wasm`.
    ("wagi-rust", "wasm32-wasip1"),
    // A component (`wasi:http/incoming-handler`), built as `wasmtime serve`
    // examples are.
    ("wasi-http-rust", "wasm32-wasip2"),
    // The same against WASI 0.2.0 (its std against 0.2.6): older
    // components mix versions.
    ("wasi-http-old", "wasm32-wasip2"),
];

/// C fixtures under `tests/guests`: (name, source), built with clang and
/// wasi-libc into `target/guests/<name>/`.
const C_GUESTS: &[(&str, &str)] = &[("wagi-c", "tests/guests/wagi-c/hello.c")];

/// The checkout being tested: from the `CARGO_MANIFEST_DIR` that cargo and
/// nextest give the running test or binary (every crate sits two levels
/// below the root), else the one this crate was compiled in. Read at run
/// time because a target directory shared by two worktrees of the
/// repository keeps one build of this crate for both, and the path
/// compiled into it would send one worktree's tests to the other's
/// fixtures.
pub fn repo_root() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    dir.ancestors()
        .nth(2)
        .filter(|root| root.join("tests/guests").is_dir())
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("crates/atoll-testkit sits two levels below the root")
        })
        .to_path_buf()
}

/// Where fixture builds go: inside the root `target/`, never committed.
pub fn guests_target_dir() -> PathBuf {
    repo_root().join("target").join("guests")
}

/// A compile cache shared by every test, so a module is compiled once per
/// run rather than once per test.
pub fn shared_cache_dir() -> PathBuf {
    repo_root().join("target").join("atoll-test-cache")
}

/// Path of a built guest fixture: a Rust crate name from `tests/guests`
/// (`wapc-plain`, `sdk-fixture`), a C one (`wagi-c`) or `as-echo`
/// (AssemblyScript).
pub fn guest_path(name: &str) -> PathBuf {
    build_all_once();
    if name == "as-echo" {
        return repo_root().join("tests/guests/assemblyscript/build/echo.wasm");
    }
    if C_GUESTS.iter().any(|(n, _)| *n == name) {
        return c_guest_path(name);
    }
    let (_, target) = RUST_GUESTS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no guest fixture named {name}"));
    guests_target_dir()
        .join(target)
        .join("release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}

pub fn guest(name: &str) -> Vec<u8> {
    let path = guest_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading guest {}: {e}", path.display()))
}

/// A module written in WAT, for hostile or malformed guests.
pub fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("invalid WAT fixture: {e}"))
}

fn build_all_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("ATOLL_GUESTS_PREBUILT").is_some() {
            return;
        }
        build_rust_guests();
        build_c_guests();
        build_assemblyscript_guest();
    });
}

/// Builds every Rust fixture; also called by `scripts/test.sh` through
/// `cargo run -p atoll-testkit --bin build-guests`.
pub fn build_rust_guests() {
    let manifest = repo_root().join("tests/guests/Cargo.toml");
    let mut targets: Vec<&str> = RUST_GUESTS.iter().map(|(_, t)| *t).collect();
    targets.dedup();
    for target in targets {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg("build")
            .arg("--release")
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target")
            .arg(target)
            .env("CARGO_TARGET_DIR", guests_target_dir())
            // Host-side flags (coverage, sanitizers) must not leak into wasm builds.
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
        for (name, t) in RUST_GUESTS {
            if *t == target {
                cmd.arg("-p").arg(name);
            }
        }
        run(&mut cmd, &format!("building guest fixtures for {target}"));
    }
}

fn c_guest_path(name: &str) -> PathBuf {
    guests_target_dir().join(name).join(format!("{name}.wasm"))
}

/// Builds the C fixtures with Debian's clang, lld and wasi-libc (which
/// `scripts/test.sh` installs): clang's `wasm32-wasi` target finds
/// wasi-libc's sysroot by itself there.
pub fn build_c_guests() {
    for (name, source) in C_GUESTS {
        let out = c_guest_path(name);
        std::fs::create_dir_all(out.parent().expect("a file in a directory"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
        run(
            Command::new(std::env::var("ATOLL_CLANG").unwrap_or_else(|_| "clang".into()))
                .args([
                    "--target=wasm32-wasi",
                    "-O2",
                    "-Wall",
                    "-Werror",
                    "-Wl,--strip-debug",
                    "-o",
                ])
                .arg(&out)
                .arg(repo_root().join(source)),
            &format!("building the C guest {name} (needs clang, lld and wasi-libc)"),
        );
    }
}

/// Builds the AssemblyScript waPC guest with the npm registry's compiler.
pub fn build_assemblyscript_guest() {
    let dir = repo_root().join("tests/guests/assemblyscript");
    if !dir.join("node_modules").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "installing the AssemblyScript compiler (npm ci)",
        );
    }
    run(
        Command::new("npm").args(["run", "build"]).current_dir(&dir),
        "building the AssemblyScript guest",
    );
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
