//! Key-value stores (capability `kv`). Values are bytes.
//!
//! ```ignore
//! let visits = atoll_sdk::kv::increment("visits", 1)?;
//! atoll_sdk::kv::set("last", b"ada")?;
//! let sessions = atoll_sdk::kv::store("sessions");  // another granted store
//! sessions.set_with_ttl("abc", b"{}", std::time::Duration::from_secs(60))?;
//! ```

use crate::Result;
use crate::host::call_msgpack;
use serde::Serialize;
use std::time::Duration;

/// A named store; [`store`] makes one. The free functions use `default`.
#[derive(Debug, Clone, Copy)]
pub struct Store<'a> {
    name: &'a str,
}

/// The store called `name` (it must be in the function's `kv_stores`).
pub fn store(name: &str) -> Store<'_> {
    Store { name }
}

#[derive(Serialize)]
struct Set<'a> {
    key: &'a str,
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_ms: Option<u64>,
}

#[derive(Serialize)]
struct Keys<'a> {
    prefix: &'a str,
    limit: usize,
}

#[derive(Serialize)]
struct Increment<'a> {
    key: &'a str,
    by: i64,
}

impl Store<'_> {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let v: Option<serde_bytes::ByteBuf> = call_msgpack(self.name, "kv", "get", key)?;
        Ok(v.map(|b| b.into_vec()))
    }

    pub fn get_string(&self, key: &str) -> Result<Option<String>> {
        Ok(self.get(key)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        let payload = Set {
            key,
            value,
            ttl_ms: None,
        };
        call_msgpack(self.name, "kv", "set", &payload)
    }

    /// Sets a value that disappears after `ttl`.
    pub fn set_with_ttl(&self, key: &str, value: &[u8], ttl: Duration) -> Result<()> {
        let payload = Set {
            key,
            value,
            ttl_ms: Some(ttl.as_millis().max(1) as u64),
        };
        call_msgpack(self.name, "kv", "set", &payload)
    }

    /// Whether the key existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        call_msgpack(self.name, "kv", "delete", key)
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        call_msgpack(self.name, "kv", "exists", key)
    }

    /// Keys starting with `prefix`, sorted, at most `limit`.
    pub fn keys(&self, prefix: &str, limit: usize) -> Result<Vec<String>> {
        call_msgpack(self.name, "kv", "keys", &Keys { prefix, limit })
    }

    /// Adds `by` atomically (a missing key counts as 0); the new value.
    pub fn increment(&self, key: &str, by: i64) -> Result<i64> {
        call_msgpack(self.name, "kv", "increment", &Increment { key, by })
    }
}

const DEFAULT: Store<'static> = Store { name: "default" };

pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    DEFAULT.get(key)
}
pub fn get_string(key: &str) -> Result<Option<String>> {
    DEFAULT.get_string(key)
}
pub fn set(key: &str, value: &[u8]) -> Result<()> {
    DEFAULT.set(key, value)
}
pub fn set_with_ttl(key: &str, value: &[u8], ttl: Duration) -> Result<()> {
    DEFAULT.set_with_ttl(key, value, ttl)
}
pub fn delete(key: &str) -> Result<bool> {
    DEFAULT.delete(key)
}
pub fn exists(key: &str) -> Result<bool> {
    DEFAULT.exists(key)
}
pub fn keys(prefix: &str, limit: usize) -> Result<Vec<String>> {
    DEFAULT.keys(prefix, limit)
}
pub fn increment(key: &str, by: i64) -> Result<i64> {
    DEFAULT.increment(key, by)
}
