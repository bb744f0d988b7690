//! `atoll serve`: binds the address first (a port in use is reported before
//! any build), builds if asked, loads the app, logs what it serves (routes,
//! schedules, subscriptions, each store's backend) and serves it until
//! SIGINT or SIGTERM, reloading on change with `--watch`. With `--apps DIR`
//! (or several apps named) it hosts several apps, each at its mount.

use crate::logging::{self, LogFormat};
use crate::options::EngineOptions;
use crate::supervisor::Supervisor;
use anyhow::bail;
use atoll_caps::kv::{KvLocation, kv_location};
use atoll_caps::sql::SqlLocation;
use atoll_http::{HttpConfig, HttpServer};
use atoll_manifest::{When, parse_duration, parse_size, without_password};
use atoll_runtime::{App, AppSource, RuntimeConfig};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// A bundle (.atoll), an app directory (holding atoll.toml), or a
    /// manifest path. Several are served together, each at its mount
    /// (`[app] base` and `hosts`).
    #[arg(default_value = ".")]
    pub app: Vec<PathBuf>,
    /// Serve every app in DIR (each directory holding atoll.toml, each
    /// *.atoll bundle), each at its mount; `PUT /-/apps/NAME` deploys them
    /// one by one.
    #[arg(long, value_name = "DIR", conflicts_with = "app")]
    pub apps: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, short, default_value = "127.0.0.1:3000", env = "ATOLL_LISTEN")]
    pub listen: SocketAddr,
    /// Run every function's build command before serving.
    #[arg(long)]
    pub build: bool,
    /// Rebuild and reload when the app's files change (development).
    #[arg(long)]
    pub watch: bool,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate
    /// chain: PEM, the server's certificate first, then any intermediates.
    /// Needs --tls-key.
    #[arg(long, value_name = "FILE", env = "ATOLL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, value_name = "FILE", env = "ATOLL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Enable `PUT /-/bundle` for requests with `Authorization: Bearer <TOKEN>`.
    #[arg(long, value_name = "TOKEN", env = "ATOLL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Serve only bundles signed by these public keys (files, or
    /// directories of *.pub files; repeatable): at start and on `PUT
    /// /-/bundle`. App directories are refused, as nothing in them is signed.
    /// ATOLL_TRUST gives one path (a directory, for several keys).
    #[arg(long, value_name = "KEY.pub|DIR", env = "ATOLL_TRUST")]
    pub trust: Vec<PathBuf>,
    /// Largest bundle accepted by `PUT /-/bundle`, and unpacked from any bundle.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub max_bundle_size: u64,
    /// Default request body limit for routes without `max_body`.
    #[arg(long, value_name = "SIZE", default_value = "10MiB", value_parser = parse_size)]
    pub max_body: u64,
    /// Requests whose functions run at once; beyond this the server answers 503.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_concurrency: usize,
    /// Connections open at once; beyond this new ones get a 503 and are
    /// closed [default: 10000, or fewer if the open-file limit is lower]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long a request's headers may take, counted from when the
    /// connection waits for them (so also the idle keep-alive timeout).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// How long a request body may pause, and the grace before --min-body-rate applies.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Bytes per second a request body must average once --body-timeout has passed.
    #[arg(long, value_name = "SIZE", default_value = "1KiB", value_parser = parse_size)]
    pub min_body_rate: u64,
    /// How long a response waits for a client that reads nothing.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,
    /// Bytes of request and response bodies held in memory at once (bodies
    /// over 64 KiB count); beyond this the server answers 503.
    #[arg(long, value_name = "SIZE", default_value = "512MiB", value_parser = parse_size)]
    pub max_buffered: u64,
    /// Serve `GET /-/metrics` on this address instead of the app's (so the
    /// metrics need not be public where the app is).
    #[arg(long, value_name = "ADDR", env = "ATOLL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// `/-/ready` answers 503 while a remote backend of the runtime
    /// configuration (a Redis kv store, the cluster coordinator, NATS) does not
    /// answer; probed every 2 s.
    #[arg(long)]
    pub ready_requires_backends: bool,
    /// Record no metrics and answer no `/-/metrics`.
    #[arg(long, conflicts_with = "metrics_listen")]
    pub no_metrics: bool,
    /// Seconds to wait for in-flight requests on shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_grace: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub otlp: crate::otlp::OtlpOptions,
    #[command(flatten)]
    pub engine: EngineOptions,
    #[command(flatten)]
    pub runtime: crate::options::RuntimeOptions,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let _log = logging::init(args.log_format, "info");
    if let Some(token) = &args.admin_token {
        check_admin_token(token)?;
    }
    // Read and checked before anything is loaded: a wrong file is found at
    // once, not after the apps have compiled.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(atoll_http::tls_config(cert, key).map_err(|e| anyhow::anyhow!(e))?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let fd_limit = crate::process::raise_fd_limit();
    let ceiling = fd_limit.map_or(usize::MAX, crate::process::connection_ceiling);
    let max_connections = match args.max_connections {
        Some(n) if n > ceiling => bail!(
            "--max-connections {n} is more than the open-file limit ({}) leaves room for; use at most {ceiling} or raise `ulimit -n`",
            fd_limit.unwrap_or_default()
        ),
        Some(n) => n,
        None => 10_000.min(ceiling),
    };
    let mut config = args.runtime.load()?;
    config.bundle_limits.max_total = args.max_bundle_size;
    config.trust = super::trusted_keys(&args.trust)?;
    let paths = match &args.apps {
        Some(dir) => apps_in(dir)?,
        None => args.app.clone(),
    };
    let several = args.apps.is_some() || paths.len() > 1;
    if several && (args.watch || args.build) {
        bail!("--watch and --build serve one app; serve several apps from bundles or built directories");
    }
    let mut sources = Vec::new();
    for path in &paths {
        let source = AppSource::open(path, &config.bundle_limits).map_err(|e| {
            eprintln!("{e}");
            super::Reported
        })?;
        // Before binding or building: an untrusted app is refused at once.
        if let Some(trusted) = &config.trust {
            source.check_trust(trusted).map_err(|e| {
                eprintln!("{e}");
                super::Reported
            })?;
        }
        sources.push((path.clone(), source));
    }
    if args.build && matches!(sources[0].1, AppSource::Bundle { .. }) {
        bail!("--build needs an app directory: a bundle already holds its built modules");
    }
    // Bound before building, so a port in use is reported at once rather
    // than after a long build; connections wait in the backlog meanwhile.
    let listener = listen(args.listen).await?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(listen(addr).await?),
        None => None,
    };
    if args.no_metrics {
        atoll_metrics::disable();
    }
    if args.build {
        let code = super::build::build_app(&paths[0]).await?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    // Fixed for the life of the server, so every version of an app that is
    // swapped in uses the same stores. With several apps, each has its own
    // directory under this one (`apps/NAME`).
    config.data_dir = config
        .data_dir
        .clone()
        .or_else(|| config.file.data_dir.clone())
        .or_else(|| {
            Some(match (&args.apps, several) {
                (Some(dir), _) => dir.join(".atoll"),
                (None, true) => PathBuf::from(".atoll"),
                (None, false) => sources[0].1.default_data_dir(),
            })
        });

    let engine = super::engine(&args.engine)?;
    atoll_metrics::started(
        env!("CARGO_PKG_VERSION"),
        atoll_engine::WASMTIME_VERSION,
        engine.config().max_instances as usize,
    );
    let started = std::time::Instant::now();
    let names = if several {
        check_names_and_mounts(&sources)?
    } else {
        vec![
            sources[0]
                .1
                .manifest()
                .map_err(|e| {
                    eprintln!("{e}");
                    super::Reported
                })?
                .app
                .name
                .clone(),
        ]
    };
    check_scopes(&config.file, &names, several)?;
    let exporting = crate::otlp::start(&args.otlp, service(&sources, &names, several))?;
    let mut apps = Vec::new();
    for (i, (path, source)) in sources.iter().enumerate() {
        let app_config = crate::supervisor::app_config(&config, several, &names[i]);
        match App::from_source(source, &engine, &app_config).await {
            Ok(app) => apps.push(Arc::new(app)),
            Err(errors) => {
                eprintln!("{errors}");
                if let AppSource::Dir(dir) = source
                    && let Some(hint) = super::unbuilt_hint(dir, "serve")
                {
                    eprintln!("{hint}");
                }
                if several {
                    eprintln!("error: the app at {} does not load; no app is served", path.display());
                }
                return Err(super::Reported.into());
            }
        }
    }
    let load_ms = started.elapsed().as_millis() as u64;
    let http = HttpConfig {
        max_body: args.max_body,
        max_concurrency: args.max_concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        max_connections,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        min_body_rate: args.min_body_rate,
        write_timeout: args.write_timeout,
        max_buffered: args.max_buffered,
        metrics_here: metrics_listener.is_none(),
        tls,
    };
    let server = if several {
        HttpServer::with_apps(apps.clone(), http).map_err(|e| anyhow::anyhow!(e))?
    } else {
        HttpServer::new(apps[0].clone(), http).map_err(|errors| {
            eprintln!("{errors}");
            super::Reported
        })?
    };
    let addr = listener.local_addr()?;
    for app in &apps {
        let app_config = crate::supervisor::app_config(&config, several, &app.manifest.app.name);
        log_app(app, scheme, addr, several);
        log_stores(app, &app_config);
        log_databases(app, &app_config);
    }
    if args.ready_requires_backends {
        // Each app's view: its own `[apps.NAME.kv.*]` may name a server
        // the others do not use.
        let mut backends: Vec<atoll_caps::reachable::RemoteBackend> = Vec::new();
        for name in &names {
            let view = config.file.for_app(name, several);
            for backend in atoll_caps::reachable::remote_backends(&view) {
                if !backends.iter().any(|b| b.url() == backend.url()) {
                    backends.push(backend);
                }
            }
        }
        crate::readiness::follow(server.clone(), backends).await;
    }
    let supervisor = Supervisor::start(engine, config, server.clone()).await?;
    if let Some(token) = args.admin_token {
        server.enable_admin(token, supervisor.deployer(), args.max_bundle_size);
        if several {
            tracing::info!("PUT /-/apps/NAME deploys new versions, DELETE /-/apps/NAME removes one (admin token set)");
        } else {
            tracing::info!("PUT /-/bundle deploys new versions (admin token set)");
        }
    }
    if args.watch {
        crate::watch::start(supervisor.clone(), paths[0].clone())?;
    }
    // One line says it all: what is served, where, and how long loading took.
    let list = |f: fn(&App) -> &str| apps.iter().map(|a| f(a)).collect::<Vec<_>>().join(", ");
    tracing::info!(
        address = %format!("{scheme}://{addr}"),
        app = %list(|a| &a.manifest.app.name),
        version = %list(|a| &a.manifest.app.version),
        functions = apps.iter().map(|a| a.manifest.functions.len()).sum::<usize>(),
        load_ms,
        "serving"
    );
    if let Some(metrics) = metrics_listener {
        let at = metrics.local_addr()?;
        tracing::info!(address = %format!("http://{at}/-/metrics"), "metrics served on their own address");
        // Answering through the drain too: it ends with the process.
        tokio::spawn(atoll_http::serve_metrics(metrics, std::future::pending()));
    }
    server.serve(listener, shutdown_signal()).await?;
    supervisor.shutdown().await;
    if let Some(exporting) = exporting {
        exporting.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The service the exported spans are of: the app when there is one, with
/// its version at start; `atoll` when several apps are hosted.
fn service(sources: &[(PathBuf, AppSource)], names: &[String], several: bool) -> atoll_caps::spans::otlp::Service {
    let version = (!several)
        .then(|| sources[0].1.manifest().ok().map(|m| m.app.version.clone()))
        .flatten();
    atoll_caps::spans::otlp::Service {
        name: if several { "atoll".into() } else { names[0].clone() },
        version,
        apps: names.to_vec(),
    }
}

/// The apps in `dir`: each directory holding `atoll.toml` and each
/// `*.atoll` bundle, by name; hidden entries (the data directory) skipped.
fn apps_in(dir: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--apps {}: {e}", dir.display()))?;
    let mut apps = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let is_app = path.join(atoll_manifest::MANIFEST_FILE).is_file()
            || (path.is_file() && path.extension().is_some_and(|e| e == "atoll"));
        if is_app && !hidden {
            apps.push(path);
        }
    }
    apps.sort();
    if apps.is_empty() {
        bail!(
            "--apps {}: no apps there (an app is a directory holding atoll.toml, or a .atoll bundle)",
            dir.display()
        );
    }
    Ok(apps)
}

/// Each app's `[app] name`, in order, once every manifest is read and no
/// two apps share a name or a mount: refused before anything is opened,
/// naming both apps and where they clash.
fn check_names_and_mounts(sources: &[(PathBuf, AppSource)]) -> anyhow::Result<Vec<String>> {
    let mut seen: Vec<(String, atoll_manifest::Mount, &PathBuf)> = Vec::new();
    for (path, source) in sources {
        let manifest = source.manifest().map_err(|e| {
            eprintln!("{e}");
            super::Reported
        })?;
        let (name, mount) = (manifest.app.name.clone(), manifest.app.mount());
        for (other, other_mount, other_path) in &seen {
            if let Some(clash) = atoll_http::clash((other, other_mount), (&name, &mount)) {
                bail!("{clash} ({} and {})", other_path.display(), path.display());
            }
        }
        seen.push((name, mount, path));
    }
    Ok(seen.into_iter().map(|(name, ..)| name).collect())
}

/// The runtime configuration's `[apps.NAME]` tables and the environment's
/// `ATOLL_VAR_*` and `ATOLL_APP_*_VAR_*` against the apps served, before
/// any loads: what would give one app's values to another is refused; a
/// table or variable naming no app served is a warning.
fn check_scopes(file: &atoll_manifest::RuntimeConfigFile, names: &[String], several: bool) -> anyhow::Result<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let warnings = file.check_served(&names, several).map_err(|errors| {
        eprintln!("{errors}");
        super::Reported
    })?;
    let env: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    let more =
        atoll_caps::vars::check_env(&names, several, env.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    for warning in warnings.into_iter().chain(more) {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Binds `addr`; an address in use says how to choose another.
async fn listen(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let mut other = addr;
            other.set_port(addr.port().wrapping_add(1).max(1));
            bail!(
                "cannot listen on {addr}: the address is in use (another server?); \
                 choose another with --listen {other} (or ATOLL_LISTEN)"
            )
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot listen on {addr}"))),
    }
}

/// The admin token guards deploying code to this server: at least 16
/// characters (not bytes), and not blank.
fn check_admin_token(token: &str) -> anyhow::Result<()> {
    if token.trim().is_empty() {
        bail!("--admin-token is blank: it guards deploying code to this server");
    }
    if token.chars().count() < 16 || token.trim().chars().count() < 16 {
        bail!("--admin-token must be at least 16 characters: it guards deploying code to this server");
    }
    Ok(())
}

/// What the app answers and runs: each route with the URL to try it at,
/// each schedule and subscription.
fn log_app(app: &App, scheme: &str, addr: SocketAddr, several: bool) {
    let info = &app.manifest.app;
    if several || info.base != "/" || !info.hosts.is_empty() {
        tracing::info!(app = %info.name, version = %info.version, mount = %info.mount(), "app");
    }
    let base = info.base.trim_end_matches('/');
    for route in &app.manifest.routes {
        tracing::info!(
            app = %info.name,
            route = %route.describe(),
            url = %format!("{scheme}://{addr}{base}{}", route.path),
            steps = %route.pipeline.describe(),
            "route"
        );
    }
    for s in &app.manifest.schedules {
        let when = match &s.when {
            When::Every(d) => format!("every {d:?}"),
            When::Cron(c) => format!("cron {c}"),
        };
        tracing::info!(app = %info.name, schedule = %s.name, when = %when, steps = %s.pipeline.describe(), "schedule");
    }
    for s in &app.manifest.subscriptions {
        tracing::info!(app = %info.name, topic = %s.topic, steps = %s.pipeline.describe(), reply_to = s.reply_to.as_deref(), "subscription");
    }
}

/// One line per key-value store: which backend serves it and where, so the
/// log says whether data lands on disk, in Redis, or nowhere lasting.
fn log_stores(app: &App, config: &RuntimeConfig) {
    let stores: BTreeSet<&str> = app
        .manifest
        .functions
        .values()
        .flat_map(|f| f.kv_stores.iter().map(String::as_str))
        .collect();
    let data_dir = config.data_dir.clone().unwrap_or_default();
    // The app loaded, so the configuration parsed.
    let backends = atoll_caps::kv::runtime_config::parse(&config.file).unwrap_or_default();
    let app_name = &app.manifest.app.name;
    for store in stores {
        match kv_location(&app.manifest, &backends, &data_dir, store) {
            KvLocation::Redb { file } => {
                tracing::info!(app = %app_name, store = %store, backend = %"redb", at = %file.display(), "kv store");
            }
            KvLocation::Memory => {
                tracing::info!(
                    app = %app_name,
                    store = %store,
                    backend = %"memory",
                    at = %"this process (gone on restart)",
                    "kv store"
                );
            }
            KvLocation::Redis { url, prefix } => {
                tracing::info!(app = %app_name, store = %store, backend = %"redis", at = %without_password(&url), prefix = %prefix, "kv store");
            }
        }
    }
}

/// One line per SQL database, as for key-value stores.
fn log_databases(app: &App, config: &RuntimeConfig) {
    let databases: BTreeSet<&str> = app.manifest.queries.values().map(|q| q.database.as_str()).collect();
    let data_dir = config.data_dir.clone().unwrap_or_default();
    // The app loaded, so the configuration parsed.
    let backends = atoll_caps::sql::runtime_config::parse(&config.file).unwrap_or_default();
    for name in databases {
        match atoll_caps::sql::runtime_config::sql_location(&backends, &data_dir, name) {
            SqlLocation::Sqlite { file, .. } => {
                tracing::info!(app = %app.manifest.app.name, database = %name, backend = %"sqlite", at = %file.display(), "sql database");
            }
            SqlLocation::Postgres { url, .. } => {
                tracing::info!(app = %app.manifest.app.name, database = %name, backend = %"postgres", at = %without_password(&url), "sql database");
            }
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn admin_tokens_are_counted_in_characters_and_must_not_be_blank() {
        assert!(super::check_admin_token("0123456789abcdef").is_ok());
        assert!(
            super::check_admin_token(&"é".repeat(9)).is_err(),
            "18 bytes, 9 characters"
        );
        assert!(super::check_admin_token(&"é".repeat(16)).is_ok());
        assert!(
            super::check_admin_token(&" ".repeat(20))
                .unwrap_err()
                .to_string()
                .contains("blank")
        );
        assert!(
            super::check_admin_token(&format!("{:20}", "short")).is_err(),
            "padding is not length"
        );
    }
}
