use atoll_manifest::{Capability, Function};
use std::collections::BTreeSet;

/// What one function was granted in the manifest. Anything absent is denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub capabilities: BTreeSet<Capability>,
}

impl Grants {
    pub fn from_function(f: &Function) -> Grants {
        Grants {
            capabilities: f.capabilities.clone(),
        }
    }

    pub fn allows(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }
}
