//! Whether the remote backends a runtime configuration names answer right
//! now: what `/-/ready` follows when a node is told to (`atoll serve
//! --ready-requires-backends`), so a load balancer stops sending requests
//! that would fail to a node that has lost its stores.

use crate::kv::KvBackendConfig;
use crate::msg::MsgBackendConfig;
use atoll_manifest::RuntimeConfigFile;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// One backend on another machine: a name for messages and what answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBackend {
    /// Where it is configured, as the runtime configuration spells it
    /// (`kv.default`, `cluster.coordinator`, `msg`).
    pub name: String,
    url: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    /// Any one of its servers greeting a new connection is enough: the
    /// client fails over between them.
    Nats,
}

impl RemoteBackend {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers within `within`, or says why not. A fresh connection each
    /// time: the question is whether a new one can be made now.
    pub async fn answers(&self, within: Duration) -> Result<(), String> {
        if self.kind == Kind::Nats {
            return match tokio::time::timeout(within, nats_greets(&self.url)).await {
                Ok(answered) => answered,
                Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
            };
        }
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
/// (A section that does not parse names none: the app refused to load.)
pub fn remote_backends(config: &RuntimeConfigFile) -> Vec<RemoteBackend> {
    let kv = crate::kv::runtime_config::parse(config).unwrap_or_default();
    let msg = crate::msg::runtime_config::parse(config).unwrap_or_default();
    let mut all: Vec<RemoteBackend> = kv
        .iter()
        .filter_map(|(store, backend)| match backend {
            KvBackendConfig::Redis { url, .. } => Some(RemoteBackend {
                name: format!("kv.{store}"),
                url: url.clone(),
                kind: Kind::Redis,
            }),
            KvBackendConfig::Redb { .. } | KvBackendConfig::Memory => None,
        })
        .collect();
    if let Some(url) = &config.cluster_coordinator {
        all.push(RemoteBackend {
            name: "cluster.coordinator".into(),
            url: url.clone(),
            kind: Kind::Redis,
        });
    }
    if let MsgBackendConfig::Nats { url, .. } = &msg {
        all.push(RemoteBackend {
            name: "msg".into(),
            url: url.clone(),
            kind: Kind::Nats,
        });
    }
    all
}

/// A NATS server greets each new connection with `INFO {...}`.
async fn nats_greets(urls: &str) -> Result<(), String> {
    let mut last = String::from("no server");
    for url in urls.split(',').map(str::trim) {
        // What the error says of this URL: it may hold a user's password.
        let shown = atoll_manifest::without_password(url);
        let addr: async_nats::ServerAddr = match url.parse() {
            Ok(a) => a,
            Err(e) => {
                last = format!("{shown}: {e}");
                continue;
            }
        };
        match tokio::net::TcpStream::connect((addr.host(), addr.port())).await {
            Ok(mut stream) => {
                let mut greeting = [0u8; 5];
                match stream.read_exact(&mut greeting).await {
                    Ok(_) if &greeting == b"INFO " => return Ok(()),
                    Ok(_) => last = format!("{shown}: not a NATS server"),
                    Err(e) => last = format!("{shown}: {e}"),
                }
            }
            Err(e) => last = format!("{shown}: {e}"),
        }
    }
    Err(last)
}
