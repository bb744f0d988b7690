//! `atoll inspect`: what an app (a directory or a bundle) holds and what
//! each function is granted, read without compiling or running anything.
//! For a wasi:http component that includes the interfaces it imports and
//! the grant each one needs (`atoll_wasi_http::import_reach`, which `atoll
//! check` shares).

use crate::logging::{self, LogFormat};
use atoll_manifest::{Abi, Capability, Manifest, Pipeline, QueryBody, When};
use atoll_runtime::AppSource;
use atoll_wasi_http::{Reach, component_imports, import_reach};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A bundle (.atoll), an app directory, or a manifest path.
    #[arg(default_value = ".")]
    pub app: PathBuf,
    /// Refuse the bundle unless it is signed by one of these public keys
    /// (files, or directories of *.pub files; repeatable), as `serve --trust` would.
    #[arg(long, value_name = "KEY.pub|DIR")]
    pub trust: Vec<PathBuf>,
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
    let trusted = match super::trusted_keys(&args.trust)? {
        Some(keys) => Some(source.check_trust(&keys).map_err(report)?),
        None => None,
    };
    let manifest = source.manifest().map_err(report)?;
    let mut info = describe(&source, &manifest);
    if let AppSource::Bundle { bundle, .. } = &source {
        info["bundle"]["signer"] = signer(bundle.signer(), trusted.is_some());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(ExitCode::SUCCESS)
}

/// Who signed the bundle: `null` if nobody; else the key id, whether the
/// signature holds for that key, and whether the key was checked against
/// `--trust` (without it, anyone could have made the key).
fn signer(signer: &atoll_bundle::Signer, trusted: bool) -> Value {
    match signer {
        atoll_bundle::Signer::Unsigned => Value::Null,
        atoll_bundle::Signer::Signed { key, valid } => json!({
            "key_id": key.id(),
            "signature_valid": valid,
            "trusted": trusted,
        }),
    }
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
                "max_concurrency": f.max_concurrency,
                "max_queue_ms": f.max_concurrency.map(|_| f.max_queue.as_millis() as u64),
                "capabilities": f.capabilities.iter().map(|c| c.name()).collect::<Vec<_>>(),
                "kv_stores": if f.capabilities.contains(&Capability::Kv) { json!(f.kv_stores) } else { json!([]) },
                "allowed_hosts": f.allowed_hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                "secrets": f.secrets,
                "publish_topics": f.publish_topics.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "queries": f.queries,
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
                    Err(e) => info["imports_error"] = json!(e.to_string()),
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
    let migrations: Vec<Value> = match source {
        AppSource::Bundle { bundle, .. } => bundle
            .migrations()
            .iter()
            .map(|(p, d)| json!({ "path": p, "size": d.len() }))
            .collect(),
        AppSource::Dir(_) => walk(&m.migrations_dir()),
    };
    json!({
        "app": m.app.name,
        "version": m.app.version,
        "mount": { "base": m.app.base, "hosts": m.app.hosts },
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
        "queries": m.queries.values().map(|q| json!({
            "name": q.name,
            "database": q.database,
            "sql": match &q.body { QueryBody::Sql { sql, .. } => json!(sql), QueryBody::Transaction(_) => Value::Null },
            "transaction": match &q.body { QueryBody::Transaction(members) => json!(members), QueryBody::Sql { .. } => Value::Null },
            "max_rows": q.max_rows,
        })).collect::<Vec<_>>(),
        "migrations": migrations,
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
    let hosts: Vec<String> = v["mount"]["hosts"]
        .as_array()
        .map(|h| h.iter().map(s).collect())
        .unwrap_or_default();
    let on = if hosts.is_empty() {
        "any host".to_string()
    } else {
        hosts.join(", ")
    };
    println!("mount      {} on {on}", s(&v["mount"]["base"]));
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
        let signer = &b["signer"];
        let line = if signer.is_null() {
            "none (not signed)".to_string()
        } else if signer["signature_valid"] == false {
            format!(
                "key {}, but the signature does NOT match the contents (altered after signing)",
                s(&signer["key_id"])
            )
        } else if signer["trusted"] == true {
            format!("key {} (verified: trusted key, signature valid)", s(&signer["key_id"]))
        } else {
            format!(
                "key {} (unverified: signature valid for that key, but no --trust given)",
                s(&signer["key_id"])
            )
        };
        println!("signature  {line}");
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
        let concurrency = match f["max_concurrency"].as_u64() {
            Some(n) => format!(", at most {n} at once (queue {} ms)", f["max_queue_ms"]),
            None => String::new(),
        };
        println!(
            "  {:<16} {}  {}  timeout {} ms, memory {}{concurrency}",
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
            ("queries", "queries"),
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
    section("migrations", "migrations", &|r| s(&r["path"]));
    section("queries", "queries", &|r| {
        let what = match r["transaction"].as_array() {
            Some(members) => format!("transaction [{}]", members.iter().map(s).collect::<Vec<_>>().join(", ")),
            None => s(&r["sql"]),
        };
        format!("{:<16} on {:<10} {what}", s(&r["name"]), s(&r["database"]))
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
