//! Replaces the served app while the server runs: from `--watch` in
//! development, and from `PUT /-/bundle` in production.
//!
//! A new version is loaded completely (every module compiled, every backend
//! opened, every route checked) before anything changes; only then is it
//! swapped in, atomically. Requests already running finish on the version
//! they started with. A version that fails to load is refused and the
//! current one keeps serving. Schedules and subscriptions are moved to the
//! new version after the swap.

use atoll_engine::Engine;
use atoll_http::HttpServer;
use atoll_runtime::{App, AppSource, RuntimeConfig};
use std::path::Path;
use std::sync::{Arc, Weak};
use tokio::sync::Mutex;

pub struct Supervisor {
    engine: Engine,
    config: RuntimeConfig,
    server: HttpServer,
    /// This node's place in `[cluster]`, kept across versions so that the
    /// node keeps its name.
    cluster: Option<atoll_triggers::Cluster>,
    /// Held for the whole of a reload, so reloads never interleave.
    triggers: Mutex<Option<atoll_triggers::Running>>,
}

impl Supervisor {
    /// Starts `app`'s triggers; `config.data_dir` must already be fixed so
    /// every version of the app uses the same stores.
    pub async fn start(engine: Engine, config: RuntimeConfig, server: HttpServer) -> anyhow::Result<Arc<Supervisor>> {
        let cluster = match &config.file.cluster_coordinator {
            Some(url) => Some(atoll_triggers::Cluster::new(url).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let triggers = atoll_triggers::start_with(server.app(), cluster.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(Supervisor {
            engine,
            config,
            server,
            cluster,
            triggers: Mutex::new(Some(triggers)),
        }))
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Loads the app `source` holds and, if it loads, serves it.
    pub async fn reload(&self, source: &AppSource) -> Result<Arc<App>, String> {
        let reloaded = self.swap_in(source).await;
        atoll_metrics::deploy(reloaded.is_ok());
        reloaded
    }

    async fn swap_in(&self, source: &AppSource) -> Result<Arc<App>, String> {
        let mut triggers = self.triggers.lock().await;
        let started = std::time::Instant::now();
        let app = App::from_source(source, &self.engine, &self.config)
            .await
            .map_err(|e| e.to_string())?;
        let app = Arc::new(app);
        self.server.swap(app.clone()).map_err(|e| e.to_string())?;
        if let Some(old) = triggers.take() {
            old.stop().await;
        }
        match atoll_triggers::start_with(app.clone(), self.cluster.clone()).await {
            Ok(t) => *triggers = Some(t),
            Err(e) => tracing::error!(error = %e, "the new version's triggers did not start"),
        }
        tracing::info!(
            app = %app.manifest.app.name,
            version = %app.manifest.app.version,
            load_ms = started.elapsed().as_millis() as u64,
            "swapped in a new version"
        );
        Ok(app)
    }

    pub async fn shutdown(&self) {
        if let Some(t) = self.triggers.lock().await.take() {
            t.stop().await;
        }
    }

    /// The admin endpoint's handle on this supervisor.
    pub fn deployer(self: &Arc<Self>) -> Arc<dyn atoll_http::Admin> {
        Arc::new(Deployer(Arc::downgrade(self)))
    }
}

/// `PUT /-/bundle`. Weak: the server holds this, and the supervisor holds
/// the server.
struct Deployer(Weak<Supervisor>);

#[async_trait::async_trait]
impl atoll_http::Admin for Deployer {
    async fn deploy(&self, bundle: bytes::Bytes) -> Result<serde_json::Value, String> {
        let supervisor = self.0.upgrade().ok_or("the server is shutting down")?;
        let source =
            AppSource::from_bundle_bytes(Path::new("uploaded.atoll"), &bundle, &supervisor.config.bundle_limits)
                .map_err(|e| e.to_string())?;
        let app = supervisor.reload(&source).await?;
        Ok(serde_json::json!({
            "app": app.manifest.app.name,
            "version": app.manifest.app.version,
            "functions": app.manifest.functions.len(),
            "routes": app.manifest.routes.len(),
        }))
    }
}
