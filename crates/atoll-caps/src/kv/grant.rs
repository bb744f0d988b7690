//! What one function holds of `kv`: the stores its `kv_stores` lists.

use super::KvStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Granted key-value stores, by name. A store not listed is not here.
#[derive(Clone, Default)]
pub struct KvGrant {
    pub stores: BTreeMap<String, Arc<dyn KvStore>>,
}

impl KvGrant {
    pub fn store(&self, name: &str) -> Option<&Arc<dyn KvStore>> {
        self.stores.get(name)
    }

    /// The granted names, comma-separated, for messages.
    pub fn names(&self) -> String {
        self.stores.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Debug for KvGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.stores.keys()).finish()
    }
}
