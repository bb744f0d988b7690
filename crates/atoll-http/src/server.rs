//! The listening side: accepting connections within the connection limit,
//! hyper's per-connection timeouts, and the app currently served.

use crate::budget::Budget;
use crate::handler;
use crate::router::Router;
use crate::timed_io::TimedIo;
use arc_swap::ArcSwap;
use atoll_manifest::ManifestErrors;
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
        }
    }
}

/// The app being served with its route table; replaced whole on a swap.
pub(crate) struct Served {
    pub(crate) app: Arc<App>,
    pub(crate) router: Router,
}

pub(crate) struct Shared {
    pub(crate) served: ArcSwap<Served>,
    pub(crate) config: HttpConfig,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) budget: Arc<Budget>,
    pub(crate) admin: std::sync::OnceLock<AdminEndpoint>,
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
    /// Returns a summary of what is now served, or why the bundle was refused.
    async fn deploy(&self, bundle: bytes::Bytes) -> Result<serde_json::Value, String>;
}

pub(crate) struct AdminEndpoint {
    pub(crate) token: String,
    pub(crate) admin: Arc<dyn Admin>,
    pub(crate) max_bundle: u64,
}

/// Serves one app over HTTP. Cheap to clone; clones serve the same app.
#[derive(Clone)]
pub struct HttpServer {
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Builds the route table; conflicting routes are reported against the
    /// manifest.
    pub fn new(app: Arc<App>, config: HttpConfig) -> Result<HttpServer, ManifestErrors> {
        let router = Router::build(&app.manifest)?;
        let permits = Arc::new(Semaphore::new(config.max_concurrency));
        Ok(HttpServer {
            shared: Arc::new(Shared {
                served: ArcSwap::from_pointee(Served { app, router }),
                budget: Budget::new(config.max_buffered),
                config,
                permits,
                admin: std::sync::OnceLock::new(),
                draining: AtomicBool::new(false),
                unreachable: std::sync::RwLock::new(Vec::new()),
            }),
        })
    }

    /// The app currently served.
    pub fn app(&self) -> Arc<App> {
        self.shared.served.load().app.clone()
    }

    /// Serves `app` from now on. Requests already running finish on the
    /// version they started with; new ones get `app`. Nothing changes if
    /// `app`'s routes do not form a valid table.
    pub fn swap(&self, app: Arc<App>) -> Result<(), ManifestErrors> {
        let router = Router::build(&app.manifest)?;
        self.shared.served.store(Arc::new(Served { app, router }));
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
        let engine = self.app().engine().clone();
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
        builder: &auto::Builder<TokioExecutor>,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        open: OpenConnection,
    ) {
        let shared = self.shared.clone();
        let service = hyper::service::service_fn(move |req| handler::handle(shared.clone(), req));
        let config = &self.shared.config;
        let io = TokioIo::new(TimedIo::new(stream, config.header_timeout, config.write_timeout));
        let conn = builder.serve_connection(io, service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
            drop(open);
        });
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
