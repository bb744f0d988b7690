//! Builds every guest fixture once, before the test binaries run.
fn main() {
    eprintln!("building guest fixtures (Rust)...");
    atoll_testkit::build_rust_guests();
    eprintln!("building guest fixtures (C)...");
    atoll_testkit::build_c_guests();
    eprintln!("building guest fixtures (AssemblyScript)...");
    atoll_testkit::build_assemblyscript_guest();
    eprintln!(
        "guest fixtures ready in {}",
        atoll_testkit::guests_target_dir().display()
    );
}
