use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `bundle.json`: what the bundle holds, and the hash of each entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Index {
    pub format: u32,
    pub app: String,
    pub version: String,
    pub created_by: String,
    /// Entry name to lower-case hex SHA-256.
    pub files: BTreeMap<String, String>,
}
