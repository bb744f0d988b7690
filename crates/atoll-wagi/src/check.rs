//! Load-time checks that turn "this is not a CGI program" into a message a
//! user can act on, before any request reaches it.

use wasmtime::{ExternType, Module};

/// WASI preview 1 and, for programs built by older toolchains, preview 0.
pub(crate) const WASI_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

/// A module that cannot be served as a WAGI function, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Checks that `module` is a WASI command that fits in `memory_limit`, and
/// returns the bytes of memory it needs at start.
pub(crate) fn check(module: &Module, memory_limit: u64) -> Result<u64, LoadError> {
    for import in module.imports() {
        if !WASI_MODULES.contains(&import.module()) {
            return Err(LoadError(format!(
                "imports \"{}.{}\", which Atoll does not provide (a WAGI program may import only \"{}\" and \"{}\")",
                import.module(),
                import.name(),
                WASI_MODULES[0],
                WASI_MODULES[1]
            )));
        }
    }
    match module.get_export("_start") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        Some(_) => {
            return Err(LoadError(
                "exports \"_start\" with the wrong type: expected () -> ()".into(),
            ));
        }
        None => {
            return Err(LoadError(
                "does not export \"_start\", so it is not a WASI command; a WAGI function is a program with a `main` (a Rust bin or a C program built for wasm32-wasip1), not a library or reactor".into(),
            ));
        }
    }
    let min_memory = match module.get_export("memory") {
        Some(ExternType::Memory(m)) => m.minimum().saturating_mul(m.page_size()),
        _ => {
            return Err(LoadError(
                "does not export its memory as \"memory\", which WASI requires".into(),
            ));
        }
    };
    check_memory(min_memory, memory_limit)?;
    Ok(min_memory)
}

/// Whether a module needing `min_memory` at start fits in `memory_limit`.
pub(crate) fn check_memory(min_memory: u64, memory_limit: u64) -> Result<(), LoadError> {
    if min_memory > memory_limit {
        return Err(LoadError(format!(
            "needs {} KiB of memory at start, more than its limit of {} KiB; raise `memory` in atoll.toml",
            min_memory.div_ceil(1024),
            memory_limit / 1024
        )));
    }
    Ok(())
}
