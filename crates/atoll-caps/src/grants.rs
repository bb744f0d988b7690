use crate::files::StaticFiles;
use crate::http::OutboundHttp;
use crate::kv::KvStore;
use crate::msg::Broker;
use crate::vars::Variables;
use atoll_manifest::{Capability, TopicPattern};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What one function may touch: its granted capabilities, and handles to
/// exactly the resources they cover. A resource that was not granted is not
/// here at all, so it cannot be reached by any path.
#[derive(Clone, Default)]
pub struct Grants {
    pub capabilities: BTreeSet<Capability>,
    /// Granted key-value stores, by name.
    pub kv: BTreeMap<String, Arc<dyn KvStore>>,
    pub http: Option<OutboundHttp>,
    pub vars: Option<Arc<Variables>>,
    /// Secret variables the function may read.
    pub secrets: BTreeSet<String>,
    pub files: Option<Arc<dyn StaticFiles>>,
    pub broker: Option<Arc<dyn Broker>>,
    /// Topics it may publish on.
    pub publish_topics: Vec<TopicPattern>,
    /// Namespaces that run another function of the app, and which.
    pub links: BTreeMap<String, Arc<str>>,
}

impl Grants {
    /// Capabilities only, with no resources behind them (tests, tools).
    pub fn with_capabilities(caps: impl IntoIterator<Item = Capability>) -> Grants {
        Grants {
            capabilities: caps.into_iter().collect(),
            ..Grants::default()
        }
    }

    pub fn allows(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("capabilities", &self.capabilities)
            .field("kv", &self.kv.keys().collect::<Vec<_>>())
            .field("http", &self.http.is_some())
            .field("secrets", &self.secrets)
            .field("files", &self.files.is_some())
            .field("publish_topics", &self.publish_topics)
            .field("links", &self.links)
            .finish()
    }
}
