//! The component ABI driven directly, without a server: what it refuses
//! at load and how it says so (every message names what is wrong and what
//! to do instead), and what a component is handed outside HTTP.

use atoll_caps::{Grants, Invocation, RequestInfo, TriggerKind};
use atoll_engine::{Engine, EngineConfig, Limits};
use atoll_testkit::{guest, shared_cache_dir};
use atoll_wasi_http::WasiHttpAbi;
use std::sync::Arc;
use std::time::Duration;

const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(1),
    memory: 16 << 20,
};

fn abi() -> WasiHttpAbi {
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(shared_cache_dir()),
        max_instances: 8,
        ..EngineConfig::default()
    })
    .unwrap();
    WasiHttpAbi::new(&engine).unwrap()
}

fn refusal(wasm: &[u8]) -> String {
    match abi().load(wasm, LIMITS, 1 << 20) {
        Ok(_) => panic!("loaded a component that should be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_real_component_loads_and_lists_its_imports() {
    let f = abi().load(&guest("wasi-http-rust"), LIMITS, 1 << 20).unwrap();
    assert!(
        f.info.imports.iter().any(|i| i.starts_with("wasi:http/types@0.2.")),
        "{:?}",
        f.info.imports
    );
    assert!(
        f.info.imports.iter().any(|i| i.starts_with("wasi:cli/")),
        "{:?}",
        f.info.imports
    );
    assert_eq!(f.info.sha256.len(), 64);
}

/// `atoll inspect` reads the imports without compiling: it must list
/// exactly what Wasmtime's linker sees.
#[test]
fn imports_read_from_the_binary_are_the_ones_wasmtime_links() {
    for fixture in ["wasi-http-rust", "wasi-http-old"] {
        let wasm = guest(fixture);
        let f = abi().load(&wasm, LIMITS, 1 << 20).unwrap();
        let mut read = atoll_wasi_http::component_imports(&wasm).unwrap();
        let mut linked = f.info.imports.clone();
        read.sort();
        linked.sort();
        assert_eq!(read, linked, "{fixture}");
    }
    let core = atoll_wasi_http::component_imports(&guest("wapc-plain")).unwrap_err();
    assert!(core.to_string().contains("a core WebAssembly module"), "{core}");
}

#[test]
fn a_core_module_is_told_which_abi_fits_it() {
    let msg = refusal(&guest("wapc-plain"));
    assert!(msg.contains("is a core WebAssembly module, not a component"), "{msg}");
    assert!(msg.contains("abi = \"wapc\""), "{msg}");
}

#[test]
fn another_platforms_interfaces_are_refused_by_name_with_the_wasi_one_to_use() {
    let spin = wat::parse_str(r#"(component (import "fermyon:spin/key-value@2.0.0" (instance)))"#).unwrap();
    let msg = refusal(&spin);
    assert!(
        msg.contains("imports fermyon:spin/key-value@2.0.0, which Atoll does not provide"),
        "{msg}"
    );
    assert!(msg.contains("wasi:keyvalue"), "{msg}");

    let bus = wat::parse_str(r#"(component (import "wasmcloud:bus/lattice@1.0.0" (instance)))"#).unwrap();
    let msg = refusal(&bus);
    assert!(msg.contains("imports wasmcloud:bus/lattice@1.0.0"), "{msg}");
}

#[test]
fn an_unknown_interface_is_refused_by_name() {
    let wasm = wat::parse_str(
        r#"(component (import "acme:billing/invoices@1.0.0" (instance (export "total" (func (result u32))))))"#,
    )
    .unwrap();
    let msg = refusal(&wasm);
    assert!(
        msg.contains("imports an interface Atoll does not provide: acme:billing/invoices@1.0.0."),
        "{msg}"
    );
}

#[test]
fn every_missing_import_is_named_at_once_with_the_versions_atoll_has() {
    // A keyvalue version Atoll does not link beside an interface nobody
    // provides: both named, the first with the versions Atoll links.
    let wasm = wat::parse_str(
        r#"(component
            (import "wasi:keyvalue/store@0.3.0-draft" (instance (export "open" (func (result u32)))))
            (import "acme:billing/invoices@1.0.0" (instance (export "total" (func (result u32))))))"#,
    )
    .unwrap();
    let msg = refusal(&wasm);
    assert!(msg.contains("imports interfaces Atoll does not provide: "), "{msg}");
    assert!(
        msg.contains(
            "wasi:keyvalue/store@0.3.0-draft (Atoll provides wasi:keyvalue at 0.2.0-draft (Wasmtime's and wasmCloud's) and 0.2.0-draft2 (Spin 3's))"
        ),
        "{msg}"
    );
    assert!(msg.contains("; acme:billing/invoices@1.0.0."), "{msg}");
}

#[test]
fn a_wasi_0_3_component_is_told_what_to_build_instead() {
    // Linked (no async types in it): refused on the version.
    let wasm = wat::parse_str(
        r#"(component (import "wasi:http/types@0.3.0-rc-2026-03-15" (instance (export "f" (func (result u32))))))"#,
    )
    .unwrap();
    let msg = refusal(&wasm);
    assert!(
        msg.contains("wasi:http/types@0.3.0-rc-2026-03-15 (Atoll provides WASI 0.2.x; WASI 0.3"),
        "{msg}"
    );
    // With a stream type, as real WASI 0.3 components have: Wasmtime
    // cannot even compile it here, and the message still says why.
    let wasm = wat::parse_str(
        r#"(component
            (type $bytes (stream u8))
            (import "wasi:http/types@0.3.0-rc-2026-03-15" (instance (export "body" (type (eq $bytes))))))"#,
    )
    .unwrap();
    let msg = refusal(&wasm);
    assert!(
        msg.contains("is a WASI 0.3 component (it imports wasi:http/types@0.3.0-rc-2026-03-15)"),
        "{msg}"
    );
    assert!(msg.contains("http-rust-p2"), "{msg}");
}

#[test]
fn a_component_without_the_http_handler_is_not_an_http_component() {
    let msg = refusal(&wat::parse_str("(component)").unwrap());
    assert!(
        msg.contains("does not export wasi:http/incoming-handler@0.2.x"),
        "{msg}"
    );
    assert!(msg.contains("abi = \"wagi\""), "{msg}");
}

#[test]
fn garbage_is_not_a_component() {
    let msg = refusal(b"\0asm\x0d\0\x01\0garbage");
    assert!(msg.contains("is not a valid WebAssembly component"), "{msg}");
}

/// A schedule or a message has no request line: the component gets it as
/// `POST /` with the payload as its body and the trigger in two headers.
#[tokio::test]
async fn a_schedule_reaches_a_component_as_a_post_naming_the_trigger() {
    let f = abi().load(&guest("wasi-http-rust"), LIMITS, 1 << 20).unwrap();
    let request = RequestInfo {
        trigger: TriggerKind::Schedule { name: "nightly".into() },
        ..RequestInfo::default()
    };
    let inv = Invocation::new("web", "req-1", Arc::new(Grants::default()), Arc::new(request));
    let out = f.invoke(inv, "tick".into(), None).await;
    let text = String::from_utf8(out.result.unwrap()).unwrap();
    for line in [
        "method=POST",
        "path=/",
        "authority=localhost",
        "header x-atoll-trigger=schedule",
        "header x-atoll-source=nightly",
        "body=4",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
}
