//! Load-time checks that turn "this is not a waPC guest" into a message a
//! user can act on, before any request reaches it.

use crate::imports::{IMPORTS, MODULE};
use wasmtime::{ExternType, Module, ValType};

pub(crate) const WASI_P1: &str = "wasi_snapshot_preview1";
/// WASI preview 0, which older TinyGo releases import instead of preview 1.
pub(crate) const WASI_P0: &str = "wasi_unstable";

/// A module that cannot be served as a waPC function, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// What a loaded module looks like from the outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Bytes of linear memory the module needs at start.
    pub min_memory: u64,
    pub imports_console_log: bool,
    pub imports_wasi: bool,
    /// Init exports present, in the order they run.
    pub init_funcs: Vec<&'static str>,
}

pub(crate) const INIT_ORDER: [&str; 3] = ["_initialize", "_start", "wapc_init"];

pub(crate) fn check(module: &Module, memory_limit: u64) -> Result<Shape, LoadError> {
    let mut shape = Shape::default();
    for import in module.imports() {
        let (m, name) = (import.module(), import.name());
        match m {
            MODULE => {
                let Some(&(_, params, results)) = IMPORTS.iter().find(|(n, ..)| *n == name) else {
                    return Err(LoadError(format!(
                        "imports \"{m}.{name}\", which is not part of waPC (known: {})",
                        IMPORTS.iter().map(|(n, ..)| *n).collect::<Vec<_>>().join(", ")
                    )));
                };
                let ok = match import.ty() {
                    ExternType::Func(f) => {
                        f.params().len() == params
                            && f.results().len() == results
                            && f.params().chain(f.results()).all(|t| matches!(t, ValType::I32))
                    }
                    _ => false,
                };
                if !ok {
                    return Err(LoadError(format!(
                        "imports \"{m}.{name}\" with the wrong type: waPC expects a function of {params} i32 parameter(s) and {results} i32 result(s)"
                    )));
                }
                shape.imports_console_log |= name == "__console_log";
            }
            WASI_P1 | WASI_P0 => shape.imports_wasi = true,
            _ => {
                return Err(LoadError(format!(
                    "imports \"{m}.{name}\", which Atoll does not provide (a waPC guest may import only \"{MODULE}\", \"{WASI_P1}\" and \"{WASI_P0}\")"
                )));
            }
        }
    }

    match module.get_export("__guest_call") {
        Some(ExternType::Func(f))
            if f.params().map(|t| matches!(t, ValType::I32)).eq([true, true])
                && f.results().map(|t| matches!(t, ValType::I32)).eq([true]) => {}
        Some(_) => {
            return Err(LoadError(
                "exports \"__guest_call\" with the wrong type: waPC expects (i32, i32) -> i32".into(),
            ));
        }
        None => {
            let exports: Vec<_> = module.exports().map(|e| e.name().to_string()).collect();
            return Err(LoadError(format!(
                "does not export \"__guest_call\", so it is not a waPC guest (it exports: {})",
                if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                }
            )));
        }
    }

    match module.get_export("memory") {
        Some(ExternType::Memory(m)) => {
            shape.min_memory = m.minimum().saturating_mul(m.page_size());
            check_memory(&shape, memory_limit)?;
        }
        _ => {
            return Err(LoadError(
                "does not export its memory as \"memory\", which waPC requires".into(),
            ));
        }
    }

    for name in INIT_ORDER {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {
                shape.init_funcs.push(name);
            }
            Some(_) => {
                return Err(LoadError(format!(
                    "exports \"{name}\" with the wrong type: expected () -> ()"
                )));
            }
            None => {}
        }
    }
    Ok(shape)
}

/// Whether a module of this shape fits in `memory_limit`.
pub(crate) fn check_memory(shape: &Shape, memory_limit: u64) -> Result<(), LoadError> {
    if shape.min_memory > memory_limit {
        return Err(LoadError(format!(
            "needs {} of memory at start, more than its limit of {}; raise `memory` in atoll.toml",
            mib(shape.min_memory),
            mib(memory_limit)
        )));
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes.div_ceil(1 << 10))
    }
}
