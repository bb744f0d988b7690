//! Triggers beside HTTP: `[[schedules]]` and `[[subscriptions]]`.
//!
//! Each schedule is one task that sleeps until its next tick and runs its
//! pipeline; because the task runs one pipeline at a time, a slow run never
//! overlaps the next one (ticks missed meanwhile are skipped, not queued).
//! Each subscription joins a queue group on the app's broker and runs its
//! pipeline for every message, a bounded number at a time, publishing the
//! result to `reply_to` when one is set.
//!
//! Every node serving an app runs all of its schedules, unless the nodes
//! share a [`Cluster`] (`[cluster] coordinator` in the runtime
//! configuration): then each tick runs on one node of the cluster only.
//!
//! ```no_run
//! # async fn demo(app: std::sync::Arc<atoll_runtime::App>) {
//! let running = atoll_triggers::start(app).await.unwrap();
//! // ... serve ...
//! running.stop().await;
//! # }
//! ```

mod cluster;
mod schedule;
mod subscription;

pub use cluster::Cluster;

use atoll_runtime::App;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The app's schedules and subscriptions, running.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Starts every schedule and subscription of `app`, on this node alone.
pub async fn start(app: Arc<App>) -> Result<Running, String> {
    start_with(app, None).await
}

/// Starts every schedule and subscription of `app`; with a `cluster`, each
/// schedule tick runs on one node of the cluster only.
pub async fn start_with(app: Arc<App>, cluster: Option<Cluster>) -> Result<Running, String> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for s in &app.manifest.schedules {
        tasks.spawn(schedule::run(app.clone(), s.clone(), cluster.clone(), stopped.clone()));
    }
    for s in &app.manifest.subscriptions {
        let sub = subscription::subscribe(&app, s).await?;
        tasks.spawn(subscription::run(app.clone(), s.clone(), sub, stopped.clone()));
    }
    Ok(Running { stop, tasks })
}

impl Running {
    /// Stops taking new ticks and messages, and waits (up to 30 s) for
    /// runs in progress to finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("triggers still running after 30 s; abandoning them");
            self.tasks.abort_all();
        }
    }
}
