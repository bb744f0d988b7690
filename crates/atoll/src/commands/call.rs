//! `atoll call`: one function, or one route's whole pipeline, run locally
//! without a server; the output goes to stdout (with `-i`, after a status
//! line and headers as `curl -i` prints them).

use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use anyhow::{Context, bail};
use atoll_http::{Lookup, Router};
use atoll_runtime::{App, RequestInfo, Trigger, TriggerKind, new_request_id};
use http::{HeaderName, HeaderValue, Method, Uri};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// App directory (holding atoll.toml) or manifest path.
    pub app: PathBuf,
    /// Function to invoke (or use --route to run a route's whole pipeline).
    #[arg(required_unless_present = "route", conflicts_with = "route")]
    pub function: Option<String>,
    /// waPC operation of the function.
    #[arg(long, default_value = "handle", conflicts_with = "route")]
    pub op: String,
    /// Run the pipeline of the route matching "METHOD /path?query", as a
    /// request to the server would.
    #[arg(long, value_name = "\"METHOD /path\"")]
    pub route: Option<String>,
    /// A request header for --route, as "name: value" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", requires = "route")]
    pub headers: Vec<String>,
    /// Print the status line and headers before the body, as `curl -i`
    /// does (with --route).
    #[arg(long, short = 'i', requires = "route")]
    pub include: bool,
    /// Payload: a file, or - for standard input. Empty if omitted.
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Payload given inline, instead of --input.
    #[arg(long, short, conflicts_with = "input")]
    pub data: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub engine: EngineOptions,
    #[command(flatten)]
    pub runtime: crate::options::RuntimeOptions,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "warn");
    let payload = match (&args.input, &args.data) {
        (Some(p), _) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading standard input")?;
            buf
        }
        (Some(p), _) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        (None, Some(d)) => d.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let engine = super::engine(&args.engine)?;
    let app = Arc::new(super::load_app(&args.app, &engine, &args.runtime).await?);
    match (&args.route, &args.function) {
        (Some(route), _) => call_route(&app, route, &args.headers, args.include, payload).await,
        (None, Some(function)) => call_function(&app, function, &args.op, payload).await,
        (None, None) => unreachable!("clap requires one of them"),
    }
}

async fn call_function(app: &Arc<App>, function: &str, op: &str, payload: Vec<u8>) -> anyhow::Result<ExitCode> {
    if app.function(function).is_none() {
        let known: Vec<_> = app.manifest.functions.keys().cloned().collect();
        bail!(
            "no function \"{function}\" in {} (functions: {})",
            app.manifest.source.path.display(),
            known.join(", ")
        );
    }
    let trigger = Trigger::new(
        new_request_id(),
        RequestInfo {
            body: payload.clone().into(),
            ..RequestInfo::default()
        },
    );
    let (mut response, mut spent) = Default::default();
    match app
        .call(function, op, payload.into(), &trigger, &mut response, &mut spent)
        .await
    {
        Ok(out) => {
            std::io::stdout().write_all(&out)?;
            std::io::stdout().flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            eprintln!(
                "error: function \"{}\" failed (status {}): {}",
                failure.function,
                failure.status(),
                failure.message()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn call_route(
    app: &Arc<App>,
    route: &str,
    headers: &[String],
    include: bool,
    payload: Vec<u8>,
) -> anyhow::Result<ExitCode> {
    let (method, target) = route
        .trim()
        .split_once(' ')
        .with_context(|| format!("--route takes \"METHOD /path\", e.g. \"POST /orders\", not \"{route}\""))?;
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("\"{method}\" is not an HTTP method"))?;
    let uri: Uri = target
        .trim()
        .parse()
        .with_context(|| format!("\"{target}\" is not a path"))?;
    let router = Router::build(&app.manifest).map_err(|errors| {
        eprintln!("{errors}");
        super::Reported
    })?;
    let (index, params) = match router.lookup(method.as_str(), uri.path()) {
        Lookup::Found { route, params, .. } => (route, params),
        Lookup::NotFound => bail!("no route matches {method} {}", uri.path()),
        Lookup::MethodNotAllowed { allow } => {
            bail!("{} has no {method} route; it accepts {}", uri.path(), allow.join(", "))
        }
    };
    let mut header_map = http::HeaderMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("a header is \"name: value\", not \"{h}\""))?;
        header_map.append(
            HeaderName::try_from(name.trim()).with_context(|| format!("\"{name}\" is not a header name"))?,
            HeaderValue::try_from(value.trim()).with_context(|| format!("the value of {name} is not valid"))?,
        );
    }
    let request = RequestInfo {
        method,
        uri,
        params,
        trace: Some(atoll_caps::trace::TraceContext::continue_or_start(&header_map)),
        headers: header_map,
        body: payload.into(),
        trigger: TriggerKind::Http,
    };
    let route = &app.manifest.routes[index];
    let outcome = app.run(&route.pipeline, &Trigger::new(new_request_id(), request)).await;
    let (status, body, failed) = match &outcome.result {
        Ok(body) => (outcome.response.status.unwrap_or(200), body.to_vec(), false),
        Err(f) => {
            let json = serde_json::json!({ "error": f.message(), "function": f.function });
            (f.status(), json.to_string().into_bytes(), true)
        }
    };
    let mut out = std::io::stdout();
    if include {
        // A status line as `curl -i` prints it, so the output reads (and
        // diffs) the same as the server's answer.
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        writeln!(out, "HTTP/1.1 {status} {reason}")?;
        for (name, value) in &outcome.response.headers {
            writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        writeln!(out)?;
    }
    out.write_all(&body)?;
    out.flush()?;
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
