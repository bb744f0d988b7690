//! `atoll new`: a function crate from a template (SDK, plain waPC, or a
//! wasi:http component), its manifest entries (with a `build` command and
//! `watch` globs) and a route, in a new app or an existing one, and the
//! commands to try it.

use anyhow::{Context, bail};
use atoll_manifest::{FUNCTION_NAME_RULE, is_function_name};
use clap::ValueEnum;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

/// The templates, all in Rust (so named `rust-...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// A Rust function using the Atoll SDK (request, response, capabilities).
    #[value(name = "rust-http")]
    Http,
    /// A plain waPC guest in Rust (wapc-guest only): body in, body out.
    #[value(name = "rust-wapc")]
    Wapc,
    /// A wasi:http component in Rust (the `wasi` crate, wasm32-wasip2), as
    /// `wasmtime serve` and other wasi:http hosts run it.
    #[value(name = "rust-wasi-http")]
    WasiHttp,
}

impl Template {
    /// The Rust target its crate is built for.
    fn target(self) -> &'static str {
        match self {
            Template::Http | Template::Wapc => "wasm32-wasip1",
            Template::WasiHttp => "wasm32-wasip2",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(help = format!("The function's name, also its crate's and directory's: {FUNCTION_NAME_RULE}"))]
    pub name: String,
    #[arg(long, short, value_enum, default_value = "rust-http")]
    pub template: Template,
    /// Add the function to the app in this directory. Without an
    /// atoll.toml there, a new app named after the function is created.
    #[arg(long, default_value = ".")]
    pub app: PathBuf,
}

/// Writes a function crate from a template and its manifest entries.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    if !is_function_name(name) {
        // Worded as the manifest words it, so the rule reads the same wherever it is met.
        let lower = name.to_ascii_lowercase();
        let hint = if is_function_name(&lower) {
            format!("; try \"{lower}\"")
        } else {
            String::new()
        };
        bail!("\"{name}\" is not a valid function name ({FUNCTION_NAME_RULE}){hint}");
    }
    let existing = args.app.join(atoll_manifest::MANIFEST_FILE);
    let (app_dir, crate_dir, crate_rel) = if existing.is_file() {
        (args.app.clone(), args.app.join(name), name.clone())
    } else {
        let dir = args.app.join(name);
        (dir.clone(), dir, ".".to_string())
    };
    if crate_dir.join("Cargo.toml").exists() {
        bail!("{} already holds a crate", crate_dir.display());
    }
    if existing.is_file() {
        let manifest = atoll_manifest::Manifest::load(&existing).map_err(|e| {
            eprintln!("{e}");
            super::Reported
        })?;
        if manifest.functions.contains_key(name) {
            bail!("{} already declares a function \"{name}\"", existing.display());
        }
    }

    let lib = name.replace('-', "_");
    let (dependency, source) = match args.template {
        Template::Http => {
            vendor_sdk(&app_dir)?;
            let sdk_rel = if crate_rel == "." {
                "vendor/atoll-sdk"
            } else {
                "../vendor/atoll-sdk"
            };
            (format!("atoll-sdk = {{ path = \"{sdk_rel}\" }}"), http_source(name))
        }
        Template::Wapc => ("wapc-guest = \"1.2\"".to_string(), wapc_source(name)),
        Template::WasiHttp => ("wasi = \"0.14\"".to_string(), wasi_http_source(name)),
    };
    write(&crate_dir.join("Cargo.toml"), &cargo_toml(name, &dependency))?;
    write(&crate_dir.join("src/lib.rs"), &source)?;

    let (method, path) = match args.template {
        Template::Http | Template::WasiHttp => ("GET", format!("/{name}")),
        Template::Wapc => ("POST", format!("/{name}")),
    };
    let abi = match args.template {
        Template::Http | Template::Wapc => "",
        Template::WasiHttp => "abi = \"wasi-http\"\n",
    };
    let target = args.template.target();
    let prefix = if crate_rel == "." {
        String::new()
    } else {
        format!("{crate_rel}/")
    };
    let entry = format!(
        r#"
[functions.{name}]
{abi}source = "{prefix}target/{target}/release/{lib}.wasm"
build = {{ command = "cargo build --release --target {target}", workdir = "{crate_rel}", watch = ["src/**/*.rs", "Cargo.toml"] }}

[[routes]]
method = "{method}"
path = "{path}"
fn = "{name}"
"#
    );
    if existing.is_file() {
        let mut file = std::fs::OpenOptions::new().append(true).open(&existing)?;
        file.write_all(entry.as_bytes())?;
    } else {
        write(
            &app_dir.join(atoll_manifest::MANIFEST_FILE),
            &format!("[app]\nname = \"{name}\"\nversion = \"0.1.0\"\n{entry}"),
        )?;
        write(&app_dir.join(".gitignore"), "target/\n.atoll/\n*.atoll\n")?;
    }
    let template = args
        .template
        .to_possible_value()
        .map_or_else(|| format!("{:?}", args.template), |v| v.get_name().to_string());
    eprintln!("created function \"{name}\" ({template}) in {}", crate_dir.display());
    // Each line runs as printed, in any shell: the URL is quoted (zsh
    // globs an unquoted `?`), and so is a path that needs it.
    eprintln!("next:");
    eprintln!("  rustup target add {target}");
    eprintln!(
        "  {} serve --build {}",
        super::atoll_command(),
        super::shell_quote(&app_dir)
    );
    match args.template {
        Template::Http | Template::WasiHttp => eprintln!("  curl 'http://127.0.0.1:3000{path}?name=you'"),
        Template::Wapc => eprintln!("  curl -X POST --data hello 'http://127.0.0.1:3000{path}'"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the SDK into `<app>/vendor/atoll-sdk`, unless it is there already.
fn vendor_sdk(app: &Path) -> anyhow::Result<()> {
    let dir = app.join("vendor/atoll-sdk");
    if dir.join("Cargo.toml").exists() {
        return Ok(());
    }
    for (path, contents) in SDK_FILES {
        if *path == "Cargo.toml" {
            write(&dir.join(path), &without_workspace(contents))?;
        } else {
            write(&dir.join(path), contents)?;
        }
    }
    Ok(())
}

/// The SDK's manifest without its `[workspace]` table: the SDK keeps one so
/// it stays out of Atoll's own workspace, but a vendored copy inside an app
/// crate would be a second workspace root there, which Cargo refuses.
fn without_workspace(toml: &str) -> String {
    let lines: Vec<&str> = toml.lines().collect();
    let Some(at) = lines.iter().position(|l| l.trim() == "[workspace]") else {
        return toml.to_string();
    };
    // The comment right above it explains it; it goes too.
    let mut start = at;
    while start > 0 && lines[start - 1].trim_start().starts_with('#') {
        start -= 1;
    }
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(&lines[at + 1..]);
    out.join("\n") + "\n"
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn cargo_toml(name: &str, dependency: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A function is built for wasm on its own, not as part of another workspace.
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
{dependency}

[profile.release]
opt-level = "s"
lto = true
strip = "debuginfo"
"#
    )
}

fn http_source(name: &str) -> String {
    format!(
        r#"//! The `{name}` function, written with the Atoll SDK.

use atoll_sdk::{{Request, Response, Result}};

atoll_sdk::handler!(handle);

/// `GET /{name}?name=you`
fn handle(req: Request) -> Result<Response> {{
    let who = req.query_param("name").unwrap_or_else(|| "world".to_string());
    Ok(Response::text(format!("Hello, {{who}}, from {name}!\n")))
}}
"#
    )
}

fn wapc_source(name: &str) -> String {
    format!(
        r#"//! The `{name}` function: a plain waPC guest. The request body is the
//! payload; what it returns is the response body.

use wapc_guest::{{CallResult, register_function}};

#[unsafe(no_mangle)]
pub extern "C" fn wapc_init() {{
    register_function("handle", handle);
}}

fn handle(payload: &[u8]) -> CallResult {{
    let mut reply = b"{name} got: ".to_vec();
    reply.extend_from_slice(payload);
    Ok(reply)
}}
"#
    )
}

fn wasi_http_source(name: &str) -> String {
    format!(
        r#"//! The `{name}` function: a wasi:http component (it exports
//! `wasi:http/incoming-handler`), built for wasm32-wasip2 with the `wasi`
//! crate. Nothing in it is Atoll's: `wasmtime serve` runs it as it is.

use std::io::Write as _;
use wasi::http::types::{{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
}};

wasi::http::proxy::export!(Component);

struct Component;

impl wasi::exports::http::incoming_handler::Guest for Component {{
    /// `GET /{name}?name=you`
    fn handle(request: IncomingRequest, out: ResponseOutparam) {{
        let path = request.path_with_query().unwrap_or_default();
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let who = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("name="))
            .filter(|who| !who.is_empty())
            .unwrap_or("world");
        let text = format!("Hello, {{who}}, from {name}!\n");

        let headers =
            Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
        let response = OutgoingResponse::new(headers);
        let body = response.body().unwrap();
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        stream.flush().unwrap();
        drop(stream);
        OutgoingBody::finish(body, None).unwrap();
    }}
}}
"#
    )
}
