//! Schedules once per cluster: the nodes running one app agree, through a
//! Redis server (the coordinator), on which of them runs each tick.
//!
//! Every tick has an identity all nodes compute alike from the wall clock
//! (`schedule::aligned_tick`). Before running tick `T` of schedule `S`, a
//! node claims it with `SET atoll:<app>:schedule:<S>:<T> <node> NX PX
//! <lease>`: the one whose `SET` succeeds runs it, the others skip it. Each
//! tick has a key of its own that expires by itself, so a node that dies
//! mid-run holds nothing later ticks need. When Redis cannot be reached, no
//! node can claim the tick and every node skips it: a missed tick is the
//! lesser harm, as it already is when a run is slow.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long one claim may wait for Redis; past it the tick is skipped.
const TIMEOUT: Duration = Duration::from_secs(2);

/// This node's membership of a cluster. Cheap to clone; one per process,
/// kept across reloads of the app so the node keeps its name.
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    node: String,
    /// The coordinator as logs show it: address and database, no password.
    coordinator: String,
    client: redis::Client,
    /// Made on the first claim rather than here, so a node starts while
    /// Redis is down; the manager then reconnects by itself after outages.
    manager: Mutex<Option<ConnectionManager>>,
}

impl Cluster {
    /// Joins the cluster `coordinator` (a `redis://` URL) under a new node
    /// name, which is logged. Nothing is connected yet.
    pub fn new(coordinator: &str) -> Result<Cluster, String> {
        let client =
            redis::Client::open(coordinator).map_err(|e| format!("cluster.coordinator: invalid Redis URL: {e}"))?;
        let info = client.get_connection_info();
        let coordinator = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let node = node_name();
        tracing::info!(target: "atoll::schedule", node = %node, coordinator = %coordinator, "schedules run once per cluster");
        Ok(Cluster(Arc::new(Inner {
            node,
            coordinator,
            client,
            manager: Mutex::new(None),
        })))
    }

    /// This node's name: host, process id and a random part, so two
    /// processes on one host (or one process restarted) never share it.
    pub fn node(&self) -> &str {
        &self.0.node
    }

    pub(crate) fn coordinator(&self) -> &str {
        &self.0.coordinator
    }

    /// Claims `key` for this node for `lease`: true if this node won it,
    /// false if another node already holds it.
    ///
    /// A failed claim drops the connection, so the next tick connects
    /// afresh: the manager's own reconnection, started by this failure,
    /// would otherwise still be failing when Redis is back, and cost that
    /// tick too.
    pub(crate) async fn claim(&self, key: &str, lease: Duration) -> Result<bool, redis::RedisError> {
        let result = self.set_nx(key, lease).await;
        if result.is_err() {
            *self.0.manager.lock().await = None;
        }
        result
    }

    async fn set_nx(&self, key: &str, lease: Duration) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn().await?;
        let won: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(&self.0.node)
            .arg("NX")
            .arg("PX")
            .arg(lease.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await?;
        Ok(won.is_some())
    }

    async fn conn(&self) -> Result<ConnectionManager, redis::RedisError> {
        let mut slot = self.0.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        // No retries: a tick is claimed when it is due or not at all, rather
        // than late by a retry's backoff; the next tick connects again.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(0);
        let m = self.0.client.get_connection_manager_with_config(config).await?;
        *slot = Some(m.clone());
        Ok(m)
    }
}

fn node_name() -> String {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{}-{}-{:06x}", hostname(), std::process::id(), random & 0xff_ffff)
}

/// The kernel's host name, as `hostname` prints it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn node_names_differ_within_one_process() {
        let (a, b) = (super::node_name(), super::node_name());
        assert_ne!(a, b);
        let pid = format!("-{}-", std::process::id());
        assert!(a.contains(&pid), "{a}");
    }
}
