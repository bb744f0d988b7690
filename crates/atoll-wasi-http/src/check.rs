//! Load-time checks that turn "this is not a wasi:http component" into a
//! message a user can act on, before any request reaches it.

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

/// Turns the linker's "matching implementation was not found" into a
/// sentence naming the interface.
pub(crate) fn unprovided(e: &wasmtime::Error) -> LoadError {
    let text = format!("{e:#}");
    let named = text
        .split('`')
        .nth(1)
        .filter(|_| text.contains("matching implementation was not found"));
    match named {
        Some(name) => LoadError(format!(
            "imports {name}, which Atoll does not provide (components may import wasi:http, wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random, wasi:sockets, wasi:keyvalue, wasi:config and wasi:logging, at 0.2.x)"
        )),
        None => LoadError(format!("cannot link: {text}")),
    }
}
