//! `atoll inspect`: what an app (a directory or a bundle) holds and what
//! each function is granted, read without compiling or running anything.
//! For a wasi:http component that includes the interfaces it imports and
//! the grant each one needs ([`import_reach`], which `atoll check` shares).

use crate::logging::{self, LogFormat};
use atoll_manifest::{Abi, Capability, Manifest, Pipeline, When};
use atoll_runtime::AppSource;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A bundle (.atoll), an app directory, or a manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// What an app holds and what each function is granted, without running it.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    let report = |e: atoll_manifest::ManifestErrors| {
        eprintln!("{e}");
        super::Reported
    };
    let source = AppSource::open(&args.app, &atoll_bundle::Limits::default()).map_err(report)?;
    let manifest = source.manifest().map_err(report)?;
    let info = describe(&source, &manifest);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(source: &AppSource, m: &Manifest) -> Value {
    let bytes = |f: &atoll_manifest::Function| match source {
        AppSource::Dir(_) => std::fs::read(m.module_path(f)).ok(),
        AppSource::Bundle { bundle, .. } => bundle.file(&f.source.to_string_lossy()).map(|b| b.to_vec()),
    };
    let module = |bytes: &Option<Vec<u8>>| match bytes {
        Some(b) => json!({ "size": b.len(), "sha256": hex::encode(Sha256::digest(b)) }),
        None => json!({ "missing": true }),
    };
    let functions: Vec<Value> = m
        .functions
        .values()
        .map(|f| {
            let bytes = bytes(f);
            let mut info = json!({
                "name": f.name,
                "abi": f.abi.to_string(),
                "source": f.source.display().to_string(),
                "module": module(&bytes),
                "timeout_ms": f.timeout.as_millis() as u64,
                "memory": f.memory,
                "capabilities": f.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>(),
                "kv_stores": if f.capabilities.contains(&Capability::Kv) { json!(f.kv_stores) } else { json!([]) },
                "allowed_hosts": f.allowed_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "secrets": f.secrets,
                "publish_topics": f.publish_topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "links": f.links.iter().map(|l| if l.namespace == l.function {
                    l.function.clone()
                } else {
                    format!("{} → {}", l.namespace, l.function)
                }).collect::<Vec<_>>(),
            });
            if f.abi == Abi::WasiHttp
                && let Some(wasm) = &bytes
            {
                match component_imports(wasm) {
                    Ok(names) => info["imports"] = describe_imports(names, f),
                    Err(e) => info["imports_error"] = json!(e),
                }
            }
            info
        })
        .collect();
    let pipeline = |p: &Pipeline| p.describe();
    let bundle = match source {
        AppSource::Bundle { path, bundle } => json!({
            "path": path.display().to_string(),
            "created_by": bundle.created_by(),
            "entries": bundle.entries().count(),
            "size": bundle.entries().map(|(_, s, _)| s).sum::<usize>(),
            "file_size": std::fs::metadata(path).ok().map(|m| m.len()),
        }),
        AppSource::Dir(_) => Value::Null,
    };
    let statics: Vec<Value> = match source {
        AppSource::Bundle { bundle, .. } => bundle
            .static_files()
            .iter()
            .map(|(p, d)| json!({ "path": p, "size": d.len() }))
            .collect(),
        AppSource::Dir(_) => walk(&m.static_dir()),
    };
    json!({
        "app": m.app.name,
        "version": m.app.version,
        "bundle": bundle,
        "functions": functions,
        "routes": m.routes.iter().map(|r| json!({ "route": r.describe(), "steps": pipeline(&r.pipeline) })).collect::<Vec<_>>(),
        "schedules": m.schedules.iter().map(|s| json!({
            "name": s.name,
            "when": match &s.when { When::Every(d) => format!("every {d:?}"), When::Cron(c) => format!("cron {c}") },
            "steps": pipeline(&s.pipeline),
        })).collect::<Vec<_>>(),
        "subscriptions": m.subscriptions.iter().map(|s| json!({
            "topic": s.topic.to_string(), "steps": pipeline(&s.pipeline), "reply_to": s.reply_to,
        })).collect::<Vec<_>>(),
        "variables": m.variables.values().map(|v| json!({
            "name": v.name, "secret": v.secret, "required": v.required,
            // A secret has no default, so this never shows one.
            "default": v.default,
        })).collect::<Vec<_>>(),
        "static_files": statics,
    })
}

/// A component's imports, most consequential first (the ones Atoll does
/// not provide, then those a grant opens), each with the grant it needs and
/// whether `f` has it.
fn describe_imports(names: Vec<String>, f: &atoll_manifest::Function) -> Value {
    let mut imports: Vec<(String, Reach)> = names
        .into_iter()
        .map(|name| {
            let reach = import_reach(&name);
            (name, reach)
        })
        .collect();
    imports.sort_by(|(a, ra), (b, rb)| (ra.rank(), a).cmp(&(rb.rank(), b)));
    let imports: Vec<Value> = imports
        .iter()
        .map(|(name, reach)| {
            let grant = reach.grant();
            json!({
                "name": name,
                "grant": grant.map(|g| g.name()),
                "granted": grant.map(|g| f.capabilities.contains(&g)),
                "note": reach.note(),
                "without_grant": grant.map(|_| reach.without),
            })
        })
        .collect();
    json!(imports)
}

/// What one interface a component imports reaches of the host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reach {
    pub kind: ReachKind,
    /// What it gives, beyond its grant's name (may be empty).
    gives: &'static str,
    /// What the component sees without the grant.
    pub without: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReachKind {
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
    fn grant(&self) -> Option<Capability> {
        match self.kind {
            ReachKind::Needs(g) | ReachKind::Opens(g) => Some(g),
            ReachKind::Unprovided | ReachKind::Provided => None,
        }
    }

    fn rank(&self) -> u8 {
        match self.kind {
            ReachKind::Unprovided => 0,
            ReachKind::Needs(_) => 1,
            ReachKind::Opens(_) => 2,
            ReachKind::Provided => 3,
        }
    }

    /// The grant it needs (or that nothing does), and what it gives.
    fn note(&self) -> String {
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
pub(super) fn import_reach(name: &str) -> Reach {
    match REACH.iter().find(|(prefix, ..)| name.starts_with(prefix)) {
        Some(&(_, kind, gives, without)) => Reach { kind, gives, without },
        None => Reach {
            kind: ReachKind::Unprovided,
            gives: "the function does not load",
            without: "",
        },
    }
}

/// The names a component's top-level import sections give its imports,
/// as the loader links them, read without compiling it: nested components
/// and core modules are skipped whole.
fn component_imports(wasm: &[u8]) -> Result<Vec<String>, String> {
    const IMPORT_SECTION: u8 = 10;
    let mut r = Bytes(wasm);
    match r.take(8) {
        Ok([0, b'a', b's', b'm', 1, 0, 0, 0]) => {
            return Err(
                "a core WebAssembly module, not a component (abi = \"wasi-http\" needs a component, built for wasm32-wasip2)"
                    .into(),
            );
        }
        Ok([0, b'a', b's', b'm', _, _, 1, 0]) => {}
        _ => return Err("not a WebAssembly component".into()),
    }
    let malformed = |e: &str| format!("a malformed component ({e})");
    let mut names = Vec::new();
    while !r.0.is_empty() {
        let id = r.byte().map_err(malformed)?;
        let size = r.u32().map_err(malformed)? as usize;
        let mut section = Bytes(r.take(size).map_err(malformed)?);
        if id == IMPORT_SECTION {
            for _ in 0..section.u32().map_err(malformed)? {
                names.push(section.extern_name().map_err(malformed)?);
                section.extern_desc().map_err(malformed)?;
            }
        }
    }
    Ok(names)
}

/// A cursor over the component binary format, reading just enough of it
/// for [`component_imports`].
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("it ends early");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 number of at most 32 bits.
    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut n: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(n).map_err(|_| "a number too large");
            }
        }
        Err("a number too long")
    }

    fn string(&mut self) -> Result<&'a str, &'static str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| "a name that is not UTF-8")
    }

    /// An import's name: `0x00` or `0x01` and the name, or `0x02`, the
    /// name and options, of which a version suffix completes it (as
    /// `wasmparser`'s `ComponentExternName::full_name` does).
    fn extern_name(&mut self) -> Result<String, &'static str> {
        let tag = self.byte()?;
        let name = self.string()?;
        let (mut implements, mut suffix) = (false, None);
        match tag {
            0x00 | 0x01 => {}
            0x02 => {
                for _ in 0..self.u32()? {
                    let option = self.byte()?;
                    let value = self.string()?;
                    match option {
                        0x00 => implements = true,
                        0x01 => suffix = Some(value),
                        0x02 => {}
                        _ => return Err("an unknown name option"),
                    }
                }
            }
            _ => return Err("an unknown kind of name"),
        }
        Ok(match suffix {
            Some(suffix) if !implements && name.contains('@') => format!("{name}{suffix}"),
            _ => name.to_string(),
        })
    }

    /// Skips an import's type: its kind and a type index or bound.
    fn extern_desc(&mut self) -> Result<(), &'static str> {
        match self.byte()? {
            // A core module: 0x00 0x11 and a core type index.
            0x00 => {
                self.byte()?;
                self.u32()?;
            }
            // A function, a component or an instance: a type index.
            0x01 | 0x04 | 0x05 => {
                self.u32()?;
            }
            // A value: equal to a value index, or of a value type (a
            // primitive's byte or a type index, both one LEB number).
            0x02 => match self.byte()? {
                0x00 | 0x01 => {
                    self.u32()?;
                }
                _ => return Err("an unknown value bound"),
            },
            // A type: equal to a type index, or a fresh resource.
            0x03 => match self.byte()? {
                0x00 => {
                    self.u32()?;
                }
                0x01 => {}
                _ => return Err("an unknown type bound"),
            },
            _ => return Err("an unknown kind of import"),
        }
        Ok(())
    }
}

fn walk(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(meta) = p.metadata() {
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().replace('\\', "/");
                out.push(json!({ "path": rel, "size": meta.len() }));
            }
        }
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

fn print_text(v: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    println!("app        {} {}", s(&v["app"]), s(&v["version"]));
    if !v["bundle"].is_null() {
        let b = &v["bundle"];
        let file = b["file_size"]
            .as_u64()
            .map(|n| format!(", {} file", super::bundle::human(n)))
            .unwrap_or_default();
        println!(
            "bundle     {} ({}; {} entries, {} unpacked{file})",
            s(&b["path"]),
            s(&b["created_by"]),
            b["entries"],
            super::bundle::human(b["size"].as_u64().unwrap_or(0))
        );
    }
    println!("functions");
    for f in v["functions"].as_array().into_iter().flatten() {
        let module = &f["module"];
        let size = if module["missing"] == true {
            "MISSING (not built?)".to_string()
        } else {
            format!(
                "{}, sha256 {}",
                super::bundle::human(module["size"].as_u64().unwrap_or(0)),
                &s(&module["sha256"])[..12]
            )
        };
        println!(
            "  {:<16} {}  {}  timeout {} ms, memory {}",
            s(&f["name"]),
            s(&f["abi"]),
            size,
            f["timeout_ms"],
            super::bundle::human(f["memory"].as_u64().unwrap_or(0))
        );
        let list = |k: &str| {
            f[k].as_array()
                .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let caps = list("capabilities");
        println!(
            "  {:<16} grants: {}",
            "",
            if caps.is_empty() { "nothing".into() } else { caps }
        );
        for (key, label) in [
            ("kv_stores", "kv stores"),
            ("allowed_hosts", "hosts"),
            ("secrets", "secrets"),
            ("publish_topics", "topics"),
            ("links", "calls"),
        ] {
            let l = list(key);
            if !l.is_empty() {
                println!("  {:<16}   {label}: {l}", "");
            }
        }
        if let Some(e) = f["imports_error"].as_str() {
            println!("  {:<16}   imports: cannot be read: {e}", "");
        }
        match f["imports"].as_array() {
            Some(imports) if imports.is_empty() => println!("  {:<16}   imports: none", ""),
            Some(imports) => {
                println!("  {:<16}   imports:", "");
                let width = imports.iter().map(|i| s(&i["name"]).len()).max().unwrap_or(0);
                for i in imports {
                    let lacking = if i["granted"] == false {
                        format!("  NOT GRANTED: {}", s(&i["without_grant"]))
                    } else {
                        String::new()
                    };
                    println!("  {:<16}     {:<width$}  {}{lacking}", "", s(&i["name"]), s(&i["note"]));
                }
            }
            None => {}
        }
    }
    let section = |title: &str, key: &str, line: &dyn Fn(&Value) -> String| {
        let items = v[key].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            println!("{title}");
            for i in &items {
                println!("  {}", line(i));
            }
        }
    };
    section("routes", "routes", &|r| {
        format!("{:<28} {}", s(&r["route"]), s(&r["steps"]))
    });
    section("schedules", "schedules", &|r| {
        format!("{:<12} {:<16} {}", s(&r["name"]), s(&r["when"]), s(&r["steps"]))
    });
    section("subscriptions", "subscriptions", &|r| {
        let reply = r["reply_to"]
            .as_str()
            .map(|t| format!(" (reply to {t})"))
            .unwrap_or_default();
        format!("{:<28} {}{reply}", s(&r["topic"]), s(&r["steps"]))
    });
    section("variables", "variables", &|r| {
        let mut tags = Vec::new();
        if r["secret"] == true {
            tags.push("secret".to_string());
        }
        if r["required"] == true {
            tags.push("required".to_string());
        }
        if let Some(d) = r["default"].as_str() {
            tags.push(format!("default \"{d}\""));
        }
        format!("{:<20} {}", s(&r["name"]), tags.join(", "))
    });
    let statics = v["static_files"].as_array().cloned().unwrap_or_default();
    if !statics.is_empty() {
        let total: u64 = statics.iter().filter_map(|f| f["size"].as_u64()).sum();
        println!("static     {} file(s), {}", statics.len(), super::bundle::human(total));
    }
}
