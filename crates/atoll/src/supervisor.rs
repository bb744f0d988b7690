//! Replaces the served apps while the server runs: from `--watch` in
//! development, and from `PUT /-/bundle` and `PUT /-/apps/NAME` in
//! production.
//!
//! A new version is loaded completely (every module compiled, every backend
//! opened, every route checked) before anything changes; only then is it
//! swapped in, atomically. Requests already running finish on the version
//! they started with. A version that fails to load is refused and the
//! current one keeps serving. Schedules and subscriptions are moved to the
//! new version after the swap. With several apps, each is deployed on its
//! own: a deploy of one never touches the others.

use atoll_engine::Engine;
use atoll_http::{HttpServer, Refused};
use atoll_runtime::{App, AppSource, RuntimeConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use tokio::sync::Mutex;

pub struct Supervisor {
    engine: Engine,
    config: RuntimeConfig,
    server: HttpServer,
    /// This node's place in `[cluster]`, kept across versions so that the
    /// node keeps its name.
    cluster: Option<atoll_triggers::Cluster>,
    /// Each app's schedules and subscriptions, by app name. Held for the
    /// whole of a deploy, so deploys never interleave.
    triggers: Mutex<BTreeMap<String, atoll_triggers::Running>>,
}

impl Supervisor {
    /// Starts the triggers of every app served; `config.data_dir` must
    /// already be fixed so every version of an app uses the same stores.
    pub async fn start(engine: Engine, config: RuntimeConfig, server: HttpServer) -> anyhow::Result<Arc<Supervisor>> {
        let cluster = match &config.file.cluster_coordinator {
            Some(url) => Some(atoll_triggers::Cluster::new(url).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let mut triggers = BTreeMap::new();
        for app in server.apps() {
            let running = atoll_triggers::start_with(app.clone(), cluster.clone())
                .await
                .map_err(anyhow::Error::msg)?;
            triggers.insert(app.manifest.app.name.clone(), running);
        }
        Ok(Arc::new(Supervisor {
            engine,
            config,
            server,
            cluster,
            triggers: Mutex::new(triggers),
        }))
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Loads the app `source` holds and, if it loads, serves it in place
    /// of the one app served (`--watch`, `PUT /-/bundle`).
    pub async fn reload(&self, source: &AppSource) -> Result<Arc<App>, String> {
        let reloaded = self.swap_in(source, None).await.map_err(|r| r.message);
        atoll_metrics::deploy(reloaded.is_ok());
        reloaded
    }

    /// Loads the app `source` holds and serves it as the app `name`: in
    /// place of the app of that name, or beside the others if there is
    /// none. Refused if its `[app] name` is another, or its mount clashes.
    pub async fn deploy_app(&self, name: &str, source: &AppSource) -> Result<Arc<App>, Refused> {
        let deployed = self.swap_in(source, Some(name)).await;
        atoll_metrics::deploy(deployed.is_ok());
        deployed
    }

    /// Stops serving the app `name`: no new requests reach it, its
    /// triggers stop, and requests already running finish.
    pub async fn remove_app(&self, name: &str) -> Result<(), Refused> {
        let mut triggers = self.triggers.lock().await;
        if !self.server.hosts_several() {
            return Err(Refused::conflict(
                "this server serves one app, which cannot be removed; start it with --apps DIR to host several",
            ));
        }
        if self.server.remove(name).is_none() {
            return Err(Refused {
                status: 404,
                message: format!("no app \"{name}\" is served"),
            });
        }
        if let Some(running) = triggers.remove(name) {
            running.stop().await;
        }
        atoll_metrics::forget_app(name);
        tracing::info!(app = %name, "app removed");
        Ok(())
    }

    async fn swap_in(&self, source: &AppSource, expected: Option<&str>) -> Result<Arc<App>, Refused> {
        let mut triggers = self.triggers.lock().await;
        let started = std::time::Instant::now();
        // The trust check before the manifest is read, as at start.
        if let Some(trusted) = &self.config.trust {
            source
                .check_trust(trusted)
                .map_err(|e| Refused::invalid(e.to_string()))?;
        }
        let manifest = source.manifest().map_err(|e| Refused::invalid(e.to_string()))?;
        let name = manifest.app.name.clone();
        if let Some(expected) = expected
            && name != expected
        {
            return Err(Refused::conflict(format!(
                "the bundle's [app] name is \"{name}\", not \"{expected}\": deploy it with PUT /-/apps/{name}"
            )));
        }
        let several = self.server.hosts_several();
        let served: Vec<String> = self.server.apps().iter().map(|a| a.manifest.app.name.clone()).collect();
        if expected.is_some() && !several && !served.contains(&name) {
            return Err(Refused::conflict(format!(
                "this server serves one app (\"{}\"); start it with --apps DIR to host several",
                served.join(", ")
            )));
        }
        // Before anything is opened: a clash is known from the manifest.
        self.server
            .check_mount(&name, &manifest.app.mount())
            .map_err(Refused::conflict)?;
        if several && !served.contains(&name) {
            // A newcomer's name must not make an environment variable
            // meant for another app look like its own, nor the reverse.
            let mut names: Vec<&str> = served.iter().map(String::as_str).collect();
            names.push(&name);
            let env: Vec<String> = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
            atoll_caps::vars::check_env(&names, several, env.iter().map(String::as_str)).map_err(Refused::conflict)?;
        }
        let config = app_config(&self.config, several, &name);
        let app = App::from_source(source, &self.engine, &config)
            .await
            .map_err(|e| Refused::invalid(e.to_string()))?;
        let app = Arc::new(app);
        self.server.swap(app.clone()).map_err(Refused::invalid)?;
        // With one app, its triggers are the only ones, whatever its name.
        let old = if several {
            triggers.remove(&name).into_iter().collect()
        } else {
            std::mem::take(&mut *triggers).into_values().collect::<Vec<_>>()
        };
        for running in old {
            running.stop().await;
        }
        match atoll_triggers::start_with(app.clone(), self.cluster.clone()).await {
            Ok(t) => {
                triggers.insert(name, t);
            }
            Err(e) => tracing::error!(app = %name, error = %e, "the new version's triggers did not start"),
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
        let triggers = std::mem::take(&mut *self.triggers.lock().await);
        for running in triggers.into_values() {
            running.stop().await;
        }
    }

    /// The admin endpoint's handle on this supervisor.
    pub fn deployer(self: &Arc<Self>) -> Arc<dyn atoll_http::Admin> {
        Arc::new(Deployer(Arc::downgrade(self)))
    }
}

/// `config` for the app `name`: its view of the runtime configuration
/// (its own `[apps.NAME]` tables; with several apps, no server-wide
/// variables), and with several apps its own data directory,
/// `DATA/apps/NAME` (names are letters, digits, `-` and `_`, so the
/// directory stays inside `DATA`).
pub fn app_config(config: &RuntimeConfig, several: bool, name: &str) -> RuntimeConfig {
    let mut config = config.clone();
    config.file = config.file.for_app(name, several);
    if several {
        let root = config.data_dir.clone().unwrap_or_else(|| PathBuf::from(".atoll"));
        config.data_dir = Some(root.join("apps").join(name));
    }
    config
}

/// `PUT /-/bundle`, `PUT` and `DELETE /-/apps/NAME`. Weak: the server
/// holds this, and the supervisor holds the server.
struct Deployer(Weak<Supervisor>);

impl Deployer {
    fn supervisor(&self) -> Result<Arc<Supervisor>, Refused> {
        self.0.upgrade().ok_or(Refused {
            status: 503,
            message: "the server is shutting down".into(),
        })
    }
}

fn summary(app: &App) -> serde_json::Value {
    serde_json::json!({
        "app": app.manifest.app.name,
        "version": app.manifest.app.version,
        "base": app.manifest.app.base,
        "hosts": app.manifest.app.hosts,
        "functions": app.manifest.functions.len(),
        "routes": app.manifest.routes.len(),
    })
}

#[async_trait::async_trait]
impl atoll_http::Admin for Deployer {
    async fn deploy(&self, bundle: bytes::Bytes) -> Result<serde_json::Value, String> {
        let supervisor = self.supervisor().map_err(|r| r.message)?;
        let source =
            AppSource::from_bundle_bytes(Path::new("uploaded.atoll"), &bundle, &supervisor.config.bundle_limits)
                .map_err(|e| e.to_string())?;
        let app = supervisor.reload(&source).await?;
        Ok(summary(&app))
    }

    async fn deploy_app(&self, name: &str, bundle: bytes::Bytes) -> Result<serde_json::Value, Refused> {
        let supervisor = self.supervisor()?;
        let source = AppSource::from_bundle_bytes(
            Path::new(&format!("{name}.atoll")),
            &bundle,
            &supervisor.config.bundle_limits,
        )
        .map_err(|e| {
            atoll_metrics::deploy(false);
            Refused::invalid(e.to_string())
        })?;
        let app = supervisor.deploy_app(name, &source).await?;
        Ok(summary(&app))
    }

    async fn remove_app(&self, name: &str) -> Result<serde_json::Value, Refused> {
        self.supervisor()?.remove_app(name).await?;
        Ok(serde_json::json!({ "removed": name }))
    }
}
