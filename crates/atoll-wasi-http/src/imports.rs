//! What a component imports, read from its binary without compiling it,
//! and what each interface reaches of the host through which grant: the
//! table `atoll inspect` and `atoll check` show, kept beside the linker
//! that makes it true.

use crate::check::{LoadError, is_core_module};
use atoll_manifest::Capability;
use wasmparser::{Parser, Payload};

/// The names a component's own import sections give its imports (nested
/// components and core modules are skipped), as the linker matches them.
pub fn component_imports(wasm: &[u8]) -> Result<Vec<String>, LoadError> {
    if is_core_module(wasm) {
        return Err(LoadError(
            "a core WebAssembly module, not a component (abi = \"wasi-http\" needs a component, built for wasm32-wasip2)".into(),
        ));
    }
    if !Parser::is_component(wasm) {
        return Err(LoadError("not a WebAssembly component".into()));
    }
    let malformed = |e: wasmparser::BinaryReaderError| LoadError(format!("a malformed component ({e})"));
    let mut names = Vec::new();
    // Nested modules and components come as their own payloads, between
    // their section and their `End`.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let name = import.map_err(malformed)?.name;
                    names.push(match name.version_suffix {
                        Some(suffix) if name.implements.is_none() && name.name.contains('@') => {
                            format!("{}{suffix}", name.name)
                        }
                        _ => name.name.to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// What one interface a component imports reaches of the host.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    /// How it relates to a grant.
    pub kind: ReachKind,
    /// What it gives, beyond its grant's name (may be empty).
    pub gives: &'static str,
    /// What the component sees without the grant.
    pub without: &'static str,
}

/// How an imported interface relates to the grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReachKind {
    /// Not provided by Atoll: the function does not load.
    Unprovided,
    /// Imported by code that means to use it, and refused or dropped
    /// without the grant.
    Needs(Capability),
    /// Imported by every program's standard library (stderr, the
    /// filesystem), so also by components that never use it; the grant
    /// opens it to something of the host.
    Opens(Capability),
    /// Provided to every component, nothing of the host behind it.
    Provided,
}

impl Reach {
    /// The grant it needs, if any.
    pub fn grant(&self) -> Option<Capability> {
        match self.kind {
            ReachKind::Needs(g) | ReachKind::Opens(g) => Some(g),
            ReachKind::Unprovided | ReachKind::Provided => None,
        }
    }

    /// Most consequential first: unprovided, needed, opened, provided.
    pub fn rank(&self) -> u8 {
        match self.kind {
            ReachKind::Unprovided => 0,
            ReachKind::Needs(_) => 1,
            ReachKind::Opens(_) => 2,
            ReachKind::Provided => 3,
        }
    }

    /// The grant it needs (or that nothing does), and what it gives.
    pub fn note(&self) -> String {
        let gives = if self.gives.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.gives)
        };
        match self.kind {
            ReachKind::Unprovided => format!("not provided by Atoll{gives}"),
            ReachKind::Needs(g) | ReachKind::Opens(g) => format!("needs \"{}\"{gives}", g.name()),
            ReachKind::Provided => format!("provided, {}", self.gives),
        }
    }
}

/// The grant behind each interface a component may import (by prefix, the
/// first match wins), as `atoll-wasi-http` links them: outbound HTTP
/// through the `http` policy, `wasi:keyvalue` on `kv_stores`,
/// `wasi:config` on the app's variables, `wasi:logging` and stderr into
/// the host log, `wasi:filesystem` on `static/` read-only; the rest of
/// WASI 0.2 answers without touching the host.
const REACH: &[(&str, ReachKind, &str, &str)] = {
    use Capability::*;
    use ReachKind::*;
    &[
        (
            "wasi:http/outgoing-handler",
            Needs(Http),
            "",
            "every request is refused",
        ),
        ("wasi:http/types", Provided, "the request and response", ""),
        ("wasi:keyvalue/", Needs(Kv), "", "every open is refused"),
        ("wasi:config/", Needs(Vars), "", "it sees no variables"),
        ("wasi:logging/", Needs(Log), "", "its messages are dropped"),
        (
            "wasi:cli/stderr",
            Opens(Log),
            "stderr into the host log",
            "its stderr is dropped",
        ),
        (
            "wasi:filesystem/",
            Opens(Files),
            "static/ only, read-only at /static",
            "it sees no directories at all",
        ),
        ("wasi:cli/", Provided, "nothing of the host", ""),
        ("wasi:clocks/", Provided, "nothing of the host", ""),
        ("wasi:random/", Provided, "nothing of the host", ""),
        ("wasi:io/", Provided, "nothing of the host", ""),
        ("wasi:sockets/", Provided, "every address refused", ""),
    ]
};

/// What the interface `name` (as a component imports it, with its
/// version) reaches, and through which grant.
pub fn import_reach(name: &str) -> Reach {
    match REACH.iter().find(|(prefix, ..)| name.starts_with(prefix)) {
        Some(&(_, kind, gives, without)) => Reach { kind, gives, without },
        None => Reach {
            kind: ReachKind::Unprovided,
            gives: "the function does not load",
            without: "",
        },
    }
}
