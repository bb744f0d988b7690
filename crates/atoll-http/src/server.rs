//! The listening side: accepting connections within the connection limit,
//! hyper's per-connection timeouts, and the apps currently served, each at
//! its mount.

use crate::budget::Budget;
use crate::handler;
use crate::router::Router;
use crate::timed_io::TimedIo;
use arc_swap::ArcSwap;
use atoll_manifest::{ManifestErrors, Mount};
use atoll_runtime::App;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits that protect the server from its clients. Every one has a flag
/// on `atoll serve` and a row in the README's "Limits and timeouts" table.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body for routes that set no `max_body`.
    pub max_body: u64,
    /// Requests whose functions run at once; beyond this the server answers 503.
    pub max_concurrency: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Connections open at once; beyond this new ones get a 503 and are closed.
    pub max_connections: usize,
    /// How long a request's headers may take to arrive, counted from the
    /// moment the connection waits for them: so also how long an idle
    /// keep-alive connection is kept.
    pub header_timeout: Duration,
    /// How long a request body may pause between two pieces, and the grace
    /// before `min_body_rate` applies.
    pub body_timeout: Duration,
    /// Bytes per second a request body must average once `body_timeout`
    /// has passed.
    pub min_body_rate: u64,
    /// How long a response may wait for a client that reads nothing.
    pub write_timeout: Duration,
    /// Bytes of request and response bodies held in memory at once (bodies
    /// over 64 KiB count); beyond this the server answers 503.
    pub max_buffered: u64,
    /// Whether `GET /-/metrics` is answered on this server's port (it is
    /// not when the metrics have a listener of their own).
    pub metrics_here: bool,
    /// HTTPS with this configuration ([`crate::tls_config`]); plain HTTP
    /// without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 10 << 20,
            max_concurrency: 1024,
            shutdown_grace: Duration::from_secs(30),
            max_connections: 10_000,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            min_body_rate: 1024,
            write_timeout: Duration::from_secs(30),
            max_buffered: 512 << 20,
            metrics_here: true,
            tls: None,
        }
    }
}

/// One app with its route table and mount.
pub(crate) struct Mounted {
    pub(crate) app: Arc<App>,
    pub(crate) router: Router,
    pub(crate) mount: Mount,
    /// `[app] name`, the `app` label of its metrics.
    pub(crate) name: Arc<str>,
}

impl Mounted {
    fn new(app: Arc<App>) -> Result<Mounted, ManifestErrors> {
        let router = Router::build(&app.manifest)?;
        Ok(Mounted {
            mount: app.manifest.app.mount(),
            name: Arc::from(app.manifest.app.name.as_str()),
            router,
            app,
        })
    }
}

/// The apps being served; replaced whole on a deploy.
pub(crate) struct Served {
    pub(crate) apps: Vec<Arc<Mounted>>,
}

impl Served {
    /// The app a request for `host` and `path` goes to, and the path its
    /// routes see (the base taken off): the closest host match first, then
    /// the longest base.
    pub(crate) fn pick<'p>(&self, host: &str, path: &'p str) -> Option<(&Arc<Mounted>, &'p str)> {
        self.apps
            .iter()
            .filter_map(|m| {
                let rank = m.mount.host_rank(host)?;
                let rest = m.mount.strip(path)?;
                Some(((rank, m.mount.base.len()), m, rest))
            })
            .max_by_key(|(rank, _, _)| *rank)
            .map(|(_, m, rest)| (m, rest))
    }

    /// The table with `app` in place of the app of the same name (or
    /// added): refused if the name or mount conflicts.
    fn with(&self, app: Mounted) -> Result<Served, String> {
        let others: Vec<Arc<Mounted>> = self.apps.iter().filter(|m| m.name != app.name).cloned().collect();
        check_mounts(&others, &app)?;
        let mut apps = others;
        apps.push(Arc::new(app));
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Served { apps })
    }
}

/// Whether `app` can be served beside `others`: a name of its own, and
/// a mount no rule confuses with another's.
fn check_mounts(others: &[Arc<Mounted>], app: &Mounted) -> Result<(), String> {
    for other in others {
        if let Some(clash) = clash((&other.name, &other.mount), (&app.name, &app.mount)) {
            return Err(clash);
        }
    }
    Ok(())
}

/// Why apps `a` and `b` (name and mount) cannot be served together, if
/// they cannot: the same name, or mounts that no rule tells apart.
pub fn clash(a: (&str, &Mount), b: (&str, &Mount)) -> Option<String> {
    if a.0 == b.0 {
        return Some(format!(
            "two apps are named \"{}\"; each app needs its own [app] name",
            a.0
        ));
    }
    a.1.conflict(b.1).map(|both| {
        format!(
            "apps \"{}\" and \"{}\" are mounted at the same place ({both}); give one of them another [app] base or hosts",
            a.0, b.0
        )
    })
}

pub(crate) struct Shared {
    pub(crate) served: ArcSwap<Served>,
    pub(crate) config: HttpConfig,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) budget: Arc<Budget>,
    pub(crate) admin: std::sync::OnceLock<AdminEndpoint>,
    /// Whether the server hosts several apps (`serve --apps`): then apps
    /// are added and removed by name, and `PUT /-/bundle` is refused.
    pub(crate) several: bool,
    /// The engine every app runs on, for the drain.
    engine: atoll_runtime::Engine,
    /// Set once, when `serve`'s shutdown future completes; `/-/ready`
    /// answers 503 from then on.
    pub(crate) draining: AtomicBool,
    /// Required backends that did not answer their last probe; `/-/ready`
    /// answers 503 naming them while there are any.
    pub(crate) unreachable: std::sync::RwLock<Vec<String>>,
}

/// Deploys a new version of the app from a bundle: implemented by whoever
/// owns the server (the CLI), which loads it fully and then swaps.
#[async_trait::async_trait]
pub trait Admin: Send + Sync {
    /// `PUT /-/bundle`: returns a summary of what is now served, or why
    /// the bundle was refused.
    async fn deploy(&self, bundle: bytes::Bytes) -> Result<serde_json::Value, String>;
    /// `PUT /-/apps/NAME`: serves the bundle as the app `name` (added if
    /// new), or says why not.
    async fn deploy_app(&self, name: &str, bundle: bytes::Bytes) -> Result<serde_json::Value, Refused>;
    /// `DELETE /-/apps/NAME`: stops serving the app `name`.
    async fn remove_app(&self, name: &str) -> Result<serde_json::Value, Refused>;
}

/// Why an admin request was refused, with its HTTP status.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

impl Refused {
    /// 422: the bundle itself is wrong.
    pub fn invalid(message: impl Into<String>) -> Refused {
        Refused {
            status: 422,
            message: message.into(),
        }
    }

    /// 409: the bundle is fine, and clashes with what is served.
    pub fn conflict(message: impl Into<String>) -> Refused {
        Refused {
            status: 409,
            message: message.into(),
        }
    }
}

pub(crate) struct AdminEndpoint {
    pub(crate) token: String,
    pub(crate) admin: Arc<dyn Admin>,
    pub(crate) max_bundle: u64,
}

/// Serves one app, or several, over HTTP. Cheap to clone; clones serve
/// the same apps.
#[derive(Clone)]
pub struct HttpServer {
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Serves one app. Builds the route table; conflicting routes are
    /// reported against the manifest.
    pub fn new(app: Arc<App>, config: HttpConfig) -> Result<HttpServer, ManifestErrors> {
        let engine = app.engine().clone();
        let served = Served {
            apps: vec![Arc::new(Mounted::new(app)?)],
        };
        Ok(HttpServer::from_table(served, false, engine, config))
    }

    /// Serves several apps, each at its mount: refused (naming both apps)
    /// if two share a name or a mount, or if an app's routes conflict.
    pub fn with_apps(apps: Vec<Arc<App>>, config: HttpConfig) -> Result<HttpServer, String> {
        let engine = apps.first().ok_or("no apps to serve")?.engine().clone();
        let mut served = Served { apps: Vec::new() };
        for app in apps {
            let mounted = Mounted::new(app).map_err(|e| e.to_string())?;
            served = served.with(mounted)?;
        }
        Ok(HttpServer::from_table(served, true, engine, config))
    }

    fn from_table(served: Served, several: bool, engine: atoll_runtime::Engine, config: HttpConfig) -> HttpServer {
        let permits = Arc::new(Semaphore::new(config.max_concurrency));
        HttpServer {
            shared: Arc::new(Shared {
                served: ArcSwap::from_pointee(served),
                budget: Budget::new(config.max_buffered),
                config,
                permits,
                admin: std::sync::OnceLock::new(),
                several,
                engine,
                draining: AtomicBool::new(false),
                unreachable: std::sync::RwLock::new(Vec::new()),
            }),
        }
    }

    /// Whether the server hosts several apps (made by [`Self::with_apps`]).
    pub fn hosts_several(&self) -> bool {
        self.shared.several
    }

    /// Every app served, by name.
    pub fn apps(&self) -> Vec<Arc<App>> {
        self.shared.served.load().apps.iter().map(|m| m.app.clone()).collect()
    }

    /// Serves `app` from now on. Requests already running finish on the
    /// version they started with; new ones get `app`. Nothing changes if
    /// `app`'s routes do not form a valid table. With several apps, `app`
    /// replaces the app of its name, or is added, unless its mount
    /// conflicts with another's.
    pub fn swap(&self, app: Arc<App>) -> Result<(), String> {
        let mounted = Mounted::new(app).map_err(|e| e.to_string())?;
        let served = if self.shared.several {
            self.shared.served.load().with(mounted)?
        } else {
            Served {
                apps: vec![Arc::new(mounted)],
            }
        };
        self.shared.served.store(Arc::new(served));
        Ok(())
    }

    /// Stops routing requests to the app `name` (those running finish);
    /// the app removed, if there was one.
    pub fn remove(&self, name: &str) -> Option<Arc<App>> {
        let served = self.shared.served.load_full();
        let gone = served.apps.iter().find(|m| &*m.name == name)?.app.clone();
        let apps = served.apps.iter().filter(|m| &*m.name != name).cloned().collect();
        self.shared.served.store(Arc::new(Served { apps }));
        Some(gone)
    }

    /// Whether an app `name` at `mount` could replace (or join) the apps
    /// served, changing nothing: with one app, always.
    pub fn check_mount(&self, name: &str, mount: &Mount) -> Result<(), String> {
        if !self.shared.several {
            return Ok(());
        }
        let served = self.shared.served.load();
        for other in served.apps.iter().filter(|m| &*m.name != name) {
            if let Some(clash) = clash((&other.name, &other.mount), (name, mount)) {
                return Err(clash);
            }
        }
        Ok(())
    }

    /// The required backends that do not answer now (empty: all do):
    /// `/-/ready` says 503 and names them until they answer again.
    pub fn set_unreachable(&self, backends: Vec<String>) {
        *self.shared.unreachable.write().unwrap_or_else(|e| e.into_inner()) = backends;
    }

    /// Enables `PUT /-/bundle` for requests bearing `token`. Without this
    /// the endpoint does not exist.
    pub fn enable_admin(&self, token: String, admin: Arc<dyn Admin>, max_bundle: u64) {
        let _ = self.shared.admin.set(AdminEndpoint {
            token,
            admin,
            max_bundle,
        });
    }

    /// Accepts connections until `shutdown` completes, then stops accepting
    /// and waits (up to the grace period) for in-flight requests to finish.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let config = &self.shared.config;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(256)
            .keep_alive_interval(config.header_timeout)
            .keep_alive_timeout(config.write_timeout);
        // Shared with each connection's task, which serves it after any
        // TLS handshake.
        let builder = Arc::new(builder);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let open = Arc::new(AtomicUsize::new(0));
        let mut failures = AcceptFailures::default();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tokio::time::sleep(failures.failed(&e)).await;
                            continue;
                        }
                    };
                    failures.succeeded();
                    if open.load(Ordering::Relaxed) >= config.max_connections {
                        refuse(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.spawn_connection(&builder, &graceful, stream, remote, OpenConnection::new(&open));
                }
                _ = &mut shutdown => break,
            }
        }
        // Before the listener closes and connections are asked to finish,
        // so that no request is answered "ready" once the drain has begun.
        self.shared.draining.store(true, Ordering::Relaxed);
        drop(listener);
        tracing::info!("shutting down: no longer accepting, draining in-flight requests");
        // Components may carry on after their response went out; they
        // finish (or meet their deadline) before the drain is over.
        let engine = self.shared.engine.clone();
        let drained = async {
            graceful.shutdown().await;
            engine.settled().await;
        };
        tokio::select! {
            _ = drained => tracing::info!("all requests drained"),
            _ = tokio::time::sleep(self.shared.config.shutdown_grace) => {
                tracing::warn!(grace = ?self.shared.config.shutdown_grace, "grace period over; closing remaining connections")
            }
        }
        Ok(())
    }

    fn spawn_connection(
        &self,
        builder: &Arc<auto::Builder<TokioExecutor>>,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        open: OpenConnection,
    ) {
        let shared = self.shared.clone();
        let service = hyper::service::service_fn(move |req| handler::handle(shared.clone(), req));
        let config = &self.shared.config;
        let (first_byte, write) = (config.header_timeout, config.write_timeout);
        let timed = TimedIo::new(stream, first_byte, write);
        let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let builder = builder.clone();
        // Taken now, so a drain that begins during a TLS handshake waits for
        // this connection too.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _open = open;
            let ended = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(timed), service).into_owned();
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let Some(tls) = handshake(acceptor, timed, first_byte, remote).await else {
                        return;
                    };
                    // Timed again inside TLS: the first request's bytes have
                    // the same deadline as on a plain connection.
                    let io = TokioIo::new(TimedIo::new(tls, first_byte, write));
                    watcher.watch(builder.serve_connection(io, service).into_owned()).await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
}

/// The server's side of a TLS handshake, held to `limit` (the time a
/// request's headers get): a client that starts one and stops would
/// otherwise keep its connection for ever. `None`, logged, if it fails.
async fn handshake<T>(
    acceptor: tokio_rustls::TlsAcceptor,
    io: T,
    limit: Duration,
    remote: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<T>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(limit, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            None
        }
    }
}

/// One connection counted against `max_connections` while it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection beyond `max_connections` gets a short answer instead of
/// silence, without a task or a buffer of its own: one non-blocking write,
/// then the socket is closed.
fn refuse(stream: tokio::net::TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n{\"error\":\"the server has too many open connections\"}";
    let _ = stream.try_write(BUSY);
    tracing::debug!("connection refused: at the connection limit");
}

/// Accepting fails when the process is out of file descriptors (or the
/// kernel of memory). Retrying at once would spin, and a log line per
/// failure would flood the log: back off, doubling up to a second, and
/// say so once per streak with how many failed.
#[derive(Default)]
struct AcceptFailures {
    streak: u32,
}

impl AcceptFailures {
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.streak += 1;
        if self.streak == 1 {
            tracing::warn!(%error, "accepting connections failed; backing off until it works again");
        }
        Duration::from_millis(10u64 << self.streak.min(7)).min(Duration::from_secs(1))
    }

    fn succeeded(&mut self) {
        if self.streak > 0 {
            tracing::info!(failures = self.streak, "accepting connections again");
            self.streak = 0;
        }
    }
}
