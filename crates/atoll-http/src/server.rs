use crate::handler;
use crate::router::Router;
use arc_swap::ArcSwap;
use atoll_manifest::ManifestErrors;
use atoll_runtime::App;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body for routes that set no `max_body`.
    pub max_body: u64,
    /// Requests handled at once; beyond this the server answers 503.
    pub max_concurrency: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body: 10 << 20,
            max_concurrency: 1024,
            shutdown_grace: Duration::from_secs(30),
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
    pub(crate) admin: std::sync::OnceLock<AdminEndpoint>,
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
                config,
                permits,
                admin: std::sync::OnceLock::new(),
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
        let builder = auto::Builder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Typically EMFILE: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    self.spawn_connection(&builder, &graceful, stream, remote);
                }
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!("shutting down: no longer accepting, draining in-flight requests");
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!("all requests drained"),
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
    ) {
        let shared = self.shared.clone();
        let service = hyper::service::service_fn(move |req| handler::handle(shared.clone(), req));
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
}
