//! The `kv` namespace. `binding` names the store (empty means `default`).
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `get` | `str` key | `bin`, or `nil` if absent |
//! | `set` | map `{key: str, value: bin, ttl_ms?: uint}` (`ttl_ms` from 1 to [`MAX_TTL_MS`](super::MAX_TTL_MS), 100 years) | `nil` |
//! | `delete` | `str` key | `bool`: whether it existed |
//! | `exists` | `str` key | `bool` |
//! | `keys` | map `{prefix?: str, limit?: uint}` (limit defaults to 1000, at most 10000) | array of `str`, sorted |
//! | `increment` | map `{key: str, by?: int}` (by defaults to 1) | `int`: the new value |

use super::{KvError, KvGrant, MAX_KEY, MAX_LIST, MAX_VALUE, ttl_ms};
use crate::wire::{decode, encode, text};
use crate::{HostCallError, Invocation};
use serde::Deserialize;
use std::time::Duration;

const OPS: &[&str] = &["get", "set", "delete", "exists", "keys", "increment"];

#[derive(Deserialize)]
struct Set {
    key: String,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(default)]
    prefix: String,
    limit: Option<usize>,
}

#[derive(Deserialize)]
struct Increment {
    key: String,
    by: Option<i64>,
}

pub(super) async fn call(
    inv: &Invocation,
    grant: &KvGrant,
    binding: &str,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    let name = if binding.is_empty() { "default" } else { binding };
    let Some(store) = grant.store(name) else {
        return Err(HostCallError::Failed(format!(
            "kv store \"{name}\" is not granted to function \"{}\"; add it to its `kv_stores` in atoll.toml (granted: {})",
            inv.function,
            grant.names()
        )));
    };
    let fail = |e: KvError| HostCallError::Failed(format!("kv store \"{name}\" ({}): {e}", store.backend()));
    match op {
        "get" => {
            let key = key(text(payload))?;
            let value = store.get(&key).await.map_err(fail)?;
            Ok(encode(&value.as_deref().map(serde_bytes::Bytes::new)))
        }
        "set" => {
            let set: Set = decode(payload, "{key, value, ttl_ms?}")?;
            let key = key(set.key)?;
            if set.value.len() > MAX_VALUE {
                return Err(HostCallError::BadPayload(format!(
                    "the value is {} bytes; the limit is {MAX_VALUE}",
                    set.value.len()
                )));
            }
            let ttl = match set.ttl_ms {
                Some(0) => return Err(HostCallError::BadPayload("ttl_ms must be greater than 0".into())),
                other => other.map(Duration::from_millis),
            };
            // Every backend refuses it too; refusing here says which field
            // is wrong, and spares a round trip to Redis.
            if let Some(Err(e)) = ttl.map(ttl_ms) {
                return Err(HostCallError::BadPayload(format!("ttl_ms: {e}")));
            }
            store.set(&key, &set.value, ttl).await.map_err(fail)?;
            Ok(encode(&()))
        }
        "delete" => Ok(encode(&store.delete(&key(text(payload))?).await.map_err(fail)?)),
        "exists" => Ok(encode(&store.exists(&key(text(payload))?).await.map_err(fail)?)),
        "keys" => {
            let keys: Keys = if payload.is_empty() {
                Keys {
                    prefix: String::new(),
                    limit: None,
                }
            } else {
                decode(payload, "{prefix?, limit?}")?
            };
            let limit = keys.limit.unwrap_or(1000).min(MAX_LIST);
            Ok(encode(&store.keys(&keys.prefix, limit).await.map_err(fail)?))
        }
        "increment" => {
            let inc: Increment = decode(payload, "{key, by?}")?;
            let key = key(inc.key)?;
            Ok(encode(&store.increment(&key, inc.by.unwrap_or(1)).await.map_err(fail)?))
        }
        _ => Err(HostCallError::unknown_op("kv", op, OPS)),
    }
}

fn key(k: String) -> Result<String, HostCallError> {
    if k.is_empty() {
        return Err(HostCallError::BadPayload("the key is empty".into()));
    }
    if k.len() > MAX_KEY {
        return Err(HostCallError::BadPayload(format!(
            "the key is {} bytes; the limit is {MAX_KEY}",
            k.len()
        )));
    }
    Ok(k)
}
