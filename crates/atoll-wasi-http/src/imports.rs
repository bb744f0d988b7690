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

/// The versions linked of the packages outside WASI 0.2 proper, exactly
/// (pre-release versions match only themselves), with what to say when a
/// component imports another one. Everything else in [`REACH`] is WASI
/// 0.2, matched as any 0.2.x release, as Wasmtime's linker does.
const DRAFTS: &[(&str, &[&str], &str)] = &[
    (
        "wasi:keyvalue/",
        &["0.2.0-draft", "0.2.0-draft2"],
        "Atoll provides wasi:keyvalue at 0.2.0-draft (Wasmtime's and wasmCloud's) and 0.2.0-draft2 (Spin 3's)",
    ),
    (
        "wasi:config/",
        &["0.2.0-draft", "0.2.0-draft-2024-09-27", "0.2.0-rc.1"],
        "Atoll provides wasi:config at 0.2.0-draft (store and runtime), 0.2.0-draft-2024-09-27 and 0.2.0-rc.1",
    ),
    (
        "wasi:logging/",
        &["0.1.0-draft"],
        "Atoll provides wasi:logging at 0.1.0-draft only",
    ),
];

/// Why a WASI interface at a version other than 0.2.x is not provided.
pub(crate) const NOT_WASI_0_2: &str = "Atoll provides WASI 0.2.x; WASI 0.3 (component-model async, what spin-sdk 6 and later build) is not served yet: build against wasi:http 0.2 (the wasi crate 0.14, or Spin's http-rust-p2 template with spin-sdk 5)";

/// What the interface `name` (as a component imports it, with its
/// version) reaches, and through which grant. A known interface at a
/// version Atoll does not link is unprovided, saying which versions are.
pub fn import_reach(name: &str) -> Reach {
    let unprovided = |gives| Reach {
        kind: ReachKind::Unprovided,
        gives,
        without: "",
    };
    let Some(&(prefix, kind, gives, without)) = REACH.iter().find(|(prefix, ..)| name.starts_with(prefix)) else {
        return unprovided("the function does not load");
    };
    if let Some(version) = name.split_once('@').map(|(_, v)| v) {
        match DRAFTS.iter().find(|(package, ..)| prefix.starts_with(package)) {
            Some((_, versions, why)) if !versions.contains(&version) => return unprovided(why),
            None if !is_wasi_0_2(version) => return unprovided(NOT_WASI_0_2),
            _ => {}
        }
    }
    Reach { kind, gives, without }
}

/// A 0.2.x release (no pre-release part).
fn is_wasi_0_2(version: &str) -> bool {
    version
        .strip_prefix("0.2.")
        .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
}

/// The imports of `names` that Atoll does not provide, for a load error
/// that names them all at once: those sharing a reason (another version
/// of one package) together, followed by it once.
pub(crate) fn unprovided_imports<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut groups: Vec<(&'static str, Vec<&str>)> = Vec::new();
    for name in names {
        let reach = import_reach(name);
        if reach.kind != ReachKind::Unprovided {
            continue;
        }
        match groups.iter_mut().find(|(why, _)| *why == reach.gives) {
            Some((_, group)) => group.push(name),
            None => groups.push((reach.gives, vec![name])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(why, group)| match why {
            "the function does not load" => group.into_iter().map(str::to_string).collect::<Vec<_>>(),
            why => vec![format!("{} ({why})", group.join(", "))],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_outside_those_linked_are_unprovided_and_say_which_are() {
        let provided = [
            "wasi:http/types@0.2.0",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:cli/stderr@0.2.6",
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:keyvalue/atomics@0.2.0-draft2",
            "wasi:keyvalue/batch@0.2.0-draft2",
            "wasi:config/store@0.2.0-draft-2024-09-27",
            "wasi:config/runtime@0.2.0-draft",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:logging/logging@0.1.0-draft",
        ];
        for name in provided {
            assert_ne!(import_reach(name).kind, ReachKind::Unprovided, "{name}");
        }
        assert_eq!(
            import_reach("wasi:keyvalue/atomics@0.2.0-draft2").kind,
            ReachKind::Needs(Capability::Kv)
        );
        let keyvalue = import_reach("wasi:keyvalue/store@0.2.0-draft3");
        assert_eq!(keyvalue.kind, ReachKind::Unprovided);
        assert!(
            keyvalue
                .gives
                .contains("at 0.2.0-draft (Wasmtime's and wasmCloud's) and 0.2.0-draft2 (Spin 3's)"),
            "{}",
            keyvalue.gives
        );
        let p3 = import_reach("wasi:http/types@0.3.0-rc-2026-03-15");
        assert_eq!(p3.kind, ReachKind::Unprovided);
        assert!(p3.gives.contains("WASI 0.3"), "{}", p3.gives);
        assert_eq!(
            import_reach("wasi:cli/stdout@0.2.0-rc-2023-11-10").kind,
            ReachKind::Unprovided
        );
        assert_eq!(
            import_reach("wasi:blobstore/types@0.2.0-draft").kind,
            ReachKind::Unprovided
        );
    }

    #[test]
    fn every_unprovided_import_is_named_once_with_its_reason() {
        let listed = unprovided_imports([
            "wasi:http/types@0.2.4",
            "wasi:blobstore/types@0.2.0-draft",
            "wasi:keyvalue/atomics@0.2.0-draft2",
            "wasi:keyvalue/atomics@0.2.1",
        ]);
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0], "wasi:blobstore/types@0.2.0-draft");
        assert!(
            listed[1].starts_with("wasi:keyvalue/atomics@0.2.1 (Atoll provides wasi:keyvalue at 0.2.0-draft"),
            "{listed:?}"
        );
    }
}
