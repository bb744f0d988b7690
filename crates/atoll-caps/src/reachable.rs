//! Whether the remote backends a runtime configuration names answer right
//! now: what `/-/ready` follows when a node is told to (`atoll serve
//! --ready-requires-backends`), so a load balancer stops sending requests
//! that would fail to a node that has lost its stores.

use atoll_manifest::{KvBackendConfig, RuntimeConfigFile};
use std::time::Duration;

/// One backend on another machine: a name for messages and what answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackend {
    /// Where it is configured, as the runtime configuration spells it
    /// (`kv.default`, `cluster.coordinator`).
    pub name: String,
    url: String,
}

impl RemoteBackend {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers within `within`, or says why not. A fresh connection each
    /// time: the question is whether a new one can be made now.
    pub async fn answers(&self, within: Duration) -> Result<(), String> {
        let ping = async {
            let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(within, ping).await {
            Ok(answered) => answered,
            Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
        }
    }
}

/// Every backend on another machine the configuration names, once each.
pub fn remote_backends(config: &RuntimeConfigFile) -> Vec<RemoteBackend> {
    let mut all: Vec<RemoteBackend> = config
        .kv
        .iter()
        .filter_map(|(store, backend)| match backend {
            KvBackendConfig::Redis { url, .. } => Some(RemoteBackend {
                name: format!("kv.{store}"),
                url: url.clone(),
            }),
            KvBackendConfig::Redb { .. } | KvBackendConfig::Memory => None,
        })
        .collect();
    if let Some(url) = &config.cluster_coordinator {
        all.push(RemoteBackend {
            name: "cluster.coordinator".into(),
            url: url.clone(),
        });
    }
    all
}
