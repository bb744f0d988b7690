//! `kv`: named key-value stores. Values are bytes; keys are UTF-8 strings.
//!
//! A function reaches only the stores listed in its `kv_stores` (by default
//! `["default"]`), and each store is isolated from the others. Which backend
//! serves a store is the runtime configuration's choice: redb on disk (the
//! default), memory, or Redis. Every backend has the same semantics, which
//! this crate's `tests/kv.rs` checks by running one sequence of operations
//! against each of them (and atoll-runtime's `tests/kv.rs` through a guest):
//!
//! - `set` with a TTL makes the key disappear after it; `set` without one
//!   clears an earlier TTL. A TTL counts whole milliseconds, rounded up (so
//!   a key never expires early), and is at most [`MAX_TTL_MS`] (100 years):
//!   a longer one is refused with [`KvError::TtlTooLong`] and nothing is
//!   written. The limit exists because an expiry is stored as "now + TTL",
//!   which has to fit every backend: Redis refuses a `PX` past
//!   `i64::MAX` ms minus the current time, and a wrapped sum would read
//!   as already expired, losing a write that was acknowledged. A key that
//!   should never expire is set without a TTL;
//! - `increment` treats a missing key as 0, stores the result as decimal
//!   text (so `get` sees `b"5"`), keeps the key's TTL, and fails with
//!   [`KvError::NotInteger`] on a value that is not a canonical decimal
//!   `i64` (the text `increment` itself writes: no `+`, no leading zeros,
//!   no spaces, no `-0`, which is exactly what Redis's `INCRBY` accepts),
//!   and with [`KvError::Overflow`] when the result leaves the `i64`
//!   range; a failed increment leaves the value as it was;
//! - `keys` lists the first `limit` keys with a prefix, in byte-wise
//!   lexicographic order, however many keys match;
//! - `compare_and_swap` writes the new value only if the key's value is
//!   still exactly the one expected (`None`: the key is absent, an expired
//!   key counting as absent), as one atomic step against every other
//!   write, and says whether it wrote. It keeps the key's TTL, as
//!   `increment` does; a key it creates has none. It compares values, not
//!   versions: a value changed and changed back compares equal, which is
//!   what a `wasi:keyvalue` `cas` handle promises (the value it read is
//!   still there) and all every backend can check without a version
//!   column of its own.

mod grant;
mod host;
mod memory;
mod redb_store;
mod redis_store;
pub mod runtime_config;

pub use grant::KvGrant;
pub use memory::MemoryStore;
pub use redb_store::RedbStores;
pub use redis_store::RedisStore;
pub use runtime_config::{KvBackendConfig, KvLocation, kv_location};

use crate::capability::{BuildContext, HostCapability};
use crate::{HostCallError, Invocation};
use async_trait::async_trait;
use atoll_manifest::{Capability, Function, ManifestError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The app's stores, by name: every store some function lists.
pub struct Kv {
    stores: BTreeMap<String, Arc<dyn KvStore>>,
}

impl HostCapability for Kv {
    const KIND: Capability = Capability::Kv;
    type Grant = KvGrant;

    async fn build(ctx: &BuildContext<'_>) -> Result<Kv, Vec<ManifestError>> {
        let config = runtime_config::parse(ctx.runtime)?;
        let stores = runtime_config::open_stores(ctx.manifest, &config, ctx.data_dir)?;
        Ok(Kv { stores })
    }

    fn grant(&self, f: &Function) -> Result<KvGrant, String> {
        Ok(KvGrant {
            stores: f
                .kv_stores
                .iter()
                .filter_map(|s| self.stores.get(s).map(|b| (s.clone(), b.clone())))
                .collect(),
        })
    }

    async fn call(
        inv: &Invocation,
        grant: &KvGrant,
        binding: &str,
        op: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, HostCallError> {
        host::call(inv, grant, binding, op, payload).await
    }
}

/// Largest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 16 << 20;
/// Most keys one `keys` call returns.
pub const MAX_LIST: usize = 10_000;
/// Longest TTL, in milliseconds: 100 years of 365.25 days. Far inside what
/// every backend can hold (the tightest is Redis: `i64::MAX` ms minus the
/// current time), and long enough to mean "effectively never".
pub const MAX_TTL_MS: u64 = 36_525 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("the value of \"{0}\" is not a decimal integer")]
    NotInteger(String),
    #[error("incrementing \"{0}\" would overflow a 64-bit integer")]
    Overflow(String),
    /// The TTL asked for, in milliseconds (rounded up).
    #[error(
        "a TTL of {0} ms is longer than the maximum of {MAX_TTL_MS} ms (100 years); set the key without a TTL for one that never expires"
    )]
    TtlTooLong(u128),
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("backend error: {0}")]
    Backend(String),
}

/// One store. Implementations must be safe to call from many requests at once.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Refuses a TTL longer than [`MAX_TTL_MS`] with [`KvError::TtlTooLong`] before
    /// writing anything.
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError>;
    /// Whether the key existed.
    async fn delete(&self, key: &str) -> Result<bool, KvError>;
    async fn exists(&self, key: &str) -> Result<bool, KvError>;
    async fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>, KvError>;
    async fn increment(&self, key: &str, by: i64) -> Result<i64, KvError>;
    /// Writes `value` if the key's value is exactly `expected` (`None`: the
    /// key is absent); whether it wrote.
    async fn compare_and_swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, KvError>;
    /// Which backend serves the store, for messages: `redb`, `memory`, `redis`.
    fn backend(&self) -> &'static str;
}

/// A TTL as the whole milliseconds every backend stores, or why it is
/// refused. Rounding up keeps a sub-millisecond TTL from meaning "already
/// expired" (or "no TTL", which redb writes as 0).
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, KvError> {
    let ms = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms <= MAX_TTL_MS)
        .ok_or(KvError::TtlTooLong(ms))
}

/// A stored counter, read as Redis's `INCRBY` reads it: only the canonical
/// text of an `i64`, the same text `increment` writes. Rust's own parser
/// also takes `+5` or `05`, which Redis refuses; accepting them here would
/// make a value count on one backend and fail on another.
pub(crate) fn parse_integer(key: &str, bytes: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse::<i64>().ok().filter(|n| n.to_string() == s))
        .ok_or_else(|| KvError::NotInteger(key.to_string()))
}

pub(crate) fn add(key: &str, current: i64, by: i64) -> Result<i64, KvError> {
    current
        .checked_add(by)
        .ok_or_else(|| KvError::Overflow(key.to_string()))
}
