//! `kv`: named key-value stores. Values are bytes; keys are UTF-8 strings.
//!
//! A function reaches only the stores listed in its `kv_stores` (by default
//! `["default"]`), and each store is isolated from the others. Which backend
//! serves a store is the runtime configuration's choice: redb on disk (the
//! default), memory, or Redis. Every backend has the same semantics, which
//! `tests/kv.rs` checks against each of them:
//!
//! - `set` with a TTL makes the key disappear after it; `set` without one
//!   clears an earlier TTL;
//! - `increment` treats a missing key as 0, stores the result as decimal
//!   text (so `get` sees `b"5"`), keeps the key's TTL, and fails on a value
//!   that is not a decimal integer;
//! - `keys` lists keys with a prefix in lexicographic order, at most `limit`.

mod host;
mod memory;
mod redb_store;
mod redis_store;

pub(crate) use host::call;
pub use memory::MemoryStore;
pub use redb_store::RedbStores;
pub use redis_store::RedisStore;

use async_trait::async_trait;
use std::time::Duration;

/// Largest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 16 << 20;
/// Most keys one `keys` call returns.
pub const MAX_LIST: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("the value of \"{0}\" is not a decimal integer")]
    NotInteger(String),
    #[error("incrementing \"{0}\" would overflow a 64-bit integer")]
    Overflow(String),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("backend error: {0}")]
    Backend(String),
}

/// One store. Implementations must be safe to call from many requests at once.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError>;
    /// Whether the key existed.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;
    async fn exists(&self, key: &str) -> Result<bool, KvError>;
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError>;
    async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError>;
    /// Which backend serves the store, for messages: `redb`, `memory`, `redis`.
    fn backend(&self) -> &'static str;
}

pub(crate) fn parse_integer(key: &str, bytes: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| KvError::NotInteger(key.to_string()))
}

pub(crate) fn add(key: &str, current: i64, by: i64) -> Result<i64, KvError> {
    current
        .checked_add(by)
        .ok_or_else(|| KvError::Overflow(key.to_string()))
}
