//! Load-time checks that turn "this is not a wasi:http component" into a
//! message a user can act on, before any request reaches it.

use crate::imports::{NOT_WASI_0_2, component_imports, unprovided_imports};
use wasmtime::component::Component;

/// A component that cannot be served as a wasi:http function, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Another platform's own interfaces, which Atoll does not provide, with
/// the WASI interface that does the same job.
const FOREIGN: &[(&str, &str)] = &[
    (
        "fermyon:spin/",
        "Spin's SDK interfaces; build against the WASI ones instead (wasi:http/outgoing-handler, wasi:keyvalue, wasi:config, wasi:logging)",
    ),
    (
        "wasmcloud:bus/",
        "wasmCloud's lattice interfaces; call other functions through an Atoll pipeline or wasi:http/outgoing-handler instead",
    ),
    (
        "wasmcloud:",
        "a wasmCloud interface; use the WASI interface for the same job (wasi:keyvalue, wasi:config, wasi:logging, wasi:http)",
    ),
];

/// Whether `wasm` is a core module (WebAssembly 1.0 layer) rather than a
/// component, so the error can say what to do instead of a parser error.
pub(crate) fn is_core_module(wasm: &[u8]) -> bool {
    wasm.get(..8) == Some(&[0, b'a', b's', b'm', 1, 0, 0, 0])
}

/// Refuses imports of other platforms' interfaces by name. Anything else
/// the linker lacks is reported by [`unprovided`] from the linker's error.
pub(crate) fn foreign_imports(component: &Component) -> Result<(), LoadError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(component.engine()) {
        if let Some((_, instead)) = FOREIGN.iter().find(|(prefix, _)| name.starts_with(prefix)) {
            return Err(LoadError(format!(
                "imports {name}, which Atoll does not provide: it is {instead}"
            )));
        }
    }
    Ok(())
}

/// Turns the linker's refusal into a sentence naming every import Atoll
/// does not provide, each with why (another version is linked, or the
/// interface is unknown), from the table `atoll inspect` shows. Should the
/// table and the linker ever disagree, the linker's own words are given.
pub(crate) fn unprovided(e: &wasmtime::Error, imports: &[String]) -> LoadError {
    let missing = unprovided_imports(imports.iter().map(String::as_str));
    if !missing.is_empty() {
        let (what, list) = match missing.as_slice() {
            [one] => ("an interface", one.clone()),
            many => ("interfaces", many.join("; ")),
        };
        return LoadError(format!(
            "imports {what} Atoll does not provide: {list}. Components may import wasi:http, wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random and wasi:sockets at 0.2.x, and wasi:keyvalue, wasi:config and wasi:logging at the versions `atoll inspect` lists"
        ));
    }
    let text = format!("{e:#}");
    let named = text
        .split('`')
        .nth(1)
        .filter(|_| text.contains("matching implementation was not found"));
    match named {
        Some(name) => LoadError(format!("imports {name}, which Atoll does not provide ({text})")),
        None => LoadError(format!("cannot link: {text}")),
    }
}

/// Why Wasmtime could not compile `wasm`. A WASI 0.3 component fails here,
/// on its async types, before its imports can be checked: say so.
pub(crate) fn uncompilable(wasm: &[u8], e: &dyn std::fmt::Display) -> LoadError {
    let wasi_0_3 = component_imports(wasm).ok().and_then(|names| {
        names
            .into_iter()
            .find(|n| n.starts_with("wasi:") && n.contains("@0.3."))
    });
    match wasi_0_3 {
        Some(name) => LoadError(format!("is a WASI 0.3 component (it imports {name}): {NOT_WASI_0_2}")),
        None => LoadError(format!("is not a valid WebAssembly component: {e}")),
    }
}
