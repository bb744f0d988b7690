//! `wasi:keyvalue` on the function's granted `kv_stores`, at both versions
//! components import: 0.2.0-draft (Wasmtime, wasmCloud) in `draft` and
//! 0.2.0-draft2 (Spin 3) in `draft2`. Each version only translates its
//! types; the operations are here once, so the two cannot drift.
//! `open("name")` is the store of that name, and `""` or `"default"` the
//! default one, so a component (of either version) and a waPC function
//! granted one store see one set of keys, on whichever backend (memory,
//! redb, Redis) the runtime configuration chose. The same limits hold as
//! for the `kv` namespace: keys up to 1 KiB, values up to 16 MiB, counters
//! in Redis's integer syntax.

mod draft;
mod draft2;

use crate::state::ComponentState;
use atoll_caps::kv::{KvError, KvStore, MAX_KEY, MAX_LIST, MAX_VALUE};
use atoll_manifest::Capability;
use std::sync::Arc;
use wasmtime::component::Resource;

/// Keys returned per `list-keys` call.
const PAGE: usize = 1000;

/// An open store: the `bucket` resource of both versions.
pub struct Bucket {
    name: String,
    store: Arc<dyn KvStore>,
}

/// A draft2 `cas` handle: the key and the value it had when the handle
/// was made (`None`: absent), which a `swap` must still find there.
pub struct Cas {
    bucket: Bucket,
    key: String,
    seen: Option<Vec<u8>>,
}

/// A `wasi:keyvalue/store.error` on its way to the guest, as either
/// version spells it.
pub enum KvFailure {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<wasmtime::component::ResourceTableError> for KvFailure {
    fn from(e: wasmtime::component::ResourceTableError) -> KvFailure {
        KvFailure::Other(format!("bad bucket handle: {e}"))
    }
}

impl Bucket {
    fn failed(&self, e: KvError) -> KvFailure {
        KvFailure::Other(format!("kv store \"{}\" ({}): {e}", self.name, self.store.backend()))
    }

    fn share(&self) -> Bucket {
        Bucket {
            name: self.name.clone(),
            store: self.store.clone(),
        }
    }
}

fn check_key(key: &str) -> Result<(), KvFailure> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(KvFailure::Other(format!(
            "keys are 1 to {MAX_KEY} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), KvFailure> {
    if value.len() > MAX_VALUE {
        return Err(KvFailure::Other(format!(
            "the value is {} bytes; the limit is {MAX_VALUE}",
            value.len()
        )));
    }
    Ok(())
}

/// A component's key-value call in the metrics, as the `kv` namespace's
/// host calls are: refused when the store is not granted, failed when the
/// backend or the input is.
async fn counted<T>(call: impl Future<Output = Result<T, KvFailure>>) -> Result<T, KvFailure> {
    use atoll_metrics::HostCallOutcome as O;
    let started = std::time::Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => O::Ok,
        Err(KvFailure::AccessDenied | KvFailure::NoSuchStore) => O::Refused,
        Err(_) => O::Failed,
    };
    atoll_metrics::host_call("kv", outcome, started.elapsed());
    result
}

/// The operations of both versions, in the types they share.
impl ComponentState {
    fn kv_bucket(&self, bucket: &Resource<Bucket>) -> Result<Bucket, KvFailure> {
        Ok(self.table.get(bucket)?.share())
    }

    async fn kv_open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvFailure> {
        counted(async move {
            let grants = &self.inv.grants;
            if !grants.allows(Capability::Kv) {
                return Err(KvFailure::AccessDenied);
            }
            // Wasmtime's tests open "", wasmCloud's examples "default".
            let name = if identifier.is_empty() {
                "default"
            } else {
                identifier.as_str()
            };
            let Some(kv) = grants.kv.store(name) else {
                tracing::debug!(
                    function = &*self.inv.function,
                    store = name,
                    "wasi:keyvalue open of a store not granted"
                );
                return Err(KvFailure::NoSuchStore);
            };
            let bucket = Bucket {
                name: name.to_string(),
                store: kv.clone(),
            };
            Ok(self.table.push(bucket)?)
        })
        .await
    }

    async fn kv_get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            b.store.get(&key).await.map_err(|e| b.failed(e))
        })
        .await
    }

    async fn kv_set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), KvFailure> {
        counted(async move {
            check_key(&key)?;
            check_value(&value)?;
            let b = self.kv_bucket(&bucket)?;
            b.store.set(&key, &value, None).await.map_err(|e| b.failed(e))
        })
        .await
    }

    async fn kv_delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            b.store.delete(&key).await.map(drop).map_err(|e| b.failed(e))
        })
        .await
    }

    async fn kv_exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            b.store.exists(&key).await.map_err(|e| b.failed(e))
        })
        .await
    }

    /// Keys in order, [`PAGE`] at a time, after the first `skip`; with the
    /// `skip` of the next page if there is one. Like the `kv` namespace's
    /// `keys`, at most [`MAX_LIST`] keys can be listed.
    async fn kv_list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        skip: usize,
    ) -> Result<(Vec<String>, Option<usize>), KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            let skip = skip.min(MAX_LIST);
            let limit = (skip + PAGE).min(MAX_LIST);
            let mut keys = b.store.keys("", limit).await.map_err(|e| b.failed(e))?;
            let more = keys.len() == limit && limit < MAX_LIST;
            let keys = keys.split_off(skip.min(keys.len()));
            Ok((keys, more.then_some(limit)))
        })
        .await
    }

    async fn kv_increment(&mut self, bucket: Resource<Bucket>, key: String, by: i64) -> Result<i64, KvFailure> {
        counted(async move {
            check_key(&key)?;
            let b = self.kv_bucket(&bucket)?;
            b.store.increment(&key, by).await.map_err(|e| b.failed(e))
        })
        .await
    }

    /// Every key asked for, in order, with its value if it has one.
    async fn kv_get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                let value = b.store.get(&key).await.map_err(|e| b.failed(e))?;
                found.push((key, value));
            }
            Ok(found)
        })
        .await
    }

    /// Checks every pair before writing any, so a bad one writes nothing.
    async fn kv_set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvFailure> {
        counted(async move {
            for (key, value) in &key_values {
                check_key(key)?;
                check_value(value)?;
            }
            let b = self.kv_bucket(&bucket)?;
            for (key, value) in key_values {
                b.store.set(&key, &value, None).await.map_err(|e| b.failed(e))?;
            }
            Ok(())
        })
        .await
    }

    async fn kv_delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<(), KvFailure> {
        counted(async move {
            let b = self.kv_bucket(&bucket)?;
            for key in keys {
                b.store.delete(&key).await.map_err(|e| b.failed(e))?;
            }
            Ok(())
        })
        .await
    }

    /// A `cas` handle holding the key's value as it is now.
    async fn kv_cas_new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>, KvFailure> {
        counted(async move {
            check_key(&key)?;
            let bucket = self.kv_bucket(&bucket)?;
            let seen = bucket.store.get(&key).await.map_err(|e| bucket.failed(e))?;
            Ok(self.table.push(Cas { bucket, key, seen })?)
        })
        .await
    }

    /// Writes `value` if the handle's key still holds the value the handle
    /// saw; if it does not, `Ok(Err(..))` with a fresh handle on the value
    /// there now, for the guest's retry. The handle is consumed either way.
    async fn kv_swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> Result<Result<(), Resource<Cas>>, KvFailure> {
        counted(async move {
            let Cas { bucket, key, seen } = self.table.delete(cas)?;
            check_value(&value)?;
            let swapped = bucket
                .store
                .compare_and_swap(&key, seen.as_deref(), &value)
                .await
                .map_err(|e| bucket.failed(e))?;
            if swapped {
                return Ok(Ok(()));
            }
            let seen = bucket.store.get(&key).await.map_err(|e| bucket.failed(e))?;
            Ok(Err(self.table.push(Cas { bucket, key, seen })?))
        })
        .await
    }
}
