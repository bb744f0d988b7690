//! `wasi:keyvalue` (store, atomics, batch) on the function's granted
//! `kv_stores`: `open("name")` is the store of that name, and `""` or
//! `"default"` the default one, so a component and a waPC function
//! granted one store see one set of keys, on whichever backend (memory,
//! redb, Redis) the runtime configuration chose. The same limits hold as
//! for the `kv` namespace: keys up to 1 KiB, values up to 16 MiB, counters
//! in Redis's integer syntax.

use super::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::state::ComponentState;
use atoll_caps::kv::{KvError, KvStore, MAX_KEY, MAX_LIST, MAX_VALUE};
use atoll_manifest::Capability;
use std::sync::Arc;
use wasmtime::component::Resource;

/// Keys returned per `list-keys` call.
const PAGE: usize = 1000;

/// An open store: the `bucket` resource.
pub struct Bucket {
    name: String,
    store: Arc<dyn KvStore>,
}

/// A `wasi:keyvalue/store.error` on its way to the guest, or a trap.
pub struct KvFailure(store::Error);

impl From<wasmtime::component::ResourceTableError> for KvFailure {
    fn from(e: wasmtime::component::ResourceTableError) -> KvFailure {
        KvFailure(store::Error::Other(format!("bad bucket handle: {e}")))
    }
}

impl Bucket {
    fn failed(&self, e: KvError) -> KvFailure {
        KvFailure(store::Error::Other(format!(
            "kv store \"{}\" ({}): {e}",
            self.name,
            self.store.backend()
        )))
    }
}

fn other(message: String) -> KvFailure {
    KvFailure(store::Error::Other(message))
}

fn check_key(key: &str) -> Result<(), KvFailure> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(other(format!(
            "keys are 1 to {MAX_KEY} bytes; this one is {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_value(value: &[u8]) -> Result<(), KvFailure> {
    if value.len() > MAX_VALUE {
        return Err(other(format!(
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
        Err(KvFailure(store::Error::AccessDenied | store::Error::NoSuchStore)) => O::Refused,
        Err(_) => O::Failed,
    };
    atoll_metrics::host_call("kv", outcome, started.elapsed());
    result
}

impl ComponentState {
    fn bucket(&self, bucket: &Resource<Bucket>) -> Result<(String, Arc<dyn KvStore>), KvFailure> {
        let b = self.table.get(bucket)?;
        Ok((b.name.clone(), b.store.clone()))
    }
}

impl store::Host for ComponentState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvFailure> {
        counted(async move {
            let grants = &self.inv.grants;
            if !grants.allows(Capability::Kv) {
                return Err(KvFailure(store::Error::AccessDenied));
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
                return Err(KvFailure(store::Error::NoSuchStore));
            };
            let bucket = Bucket {
                name: name.to_string(),
                store: kv.clone(),
            };
            Ok(self.table.push(bucket)?)
        })
        .await
    }

    fn convert_error(&mut self, e: KvFailure) -> wasmtime::Result<store::Error> {
        Ok(e.0)
    }
}

impl store::HostBucket for ComponentState {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            let got = b.store.get(&key).await;
            got.map_err(|e| b.failed(e))
        })
        .await
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), KvFailure> {
        counted(async move {
            check_key(&key)?;
            check_value(&value)?;
            let b = self.table.get(&bucket)?;
            b.store.set(&key, &value, None).await.map_err(|e| b.failed(e))
        })
        .await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            b.store.delete(&key).await.map(drop).map_err(|e| b.failed(e))
        })
        .await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            b.store.exists(&key).await.map_err(|e| b.failed(e))
        })
        .await
    }

    /// Keys in order, [`PAGE`] at a time; the cursor is how many were
    /// returned before. Like the `kv` namespace's `keys`, at most
    /// [`MAX_LIST`] keys can be listed.
    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX).min(MAX_LIST);
            let limit = (skip + PAGE).min(MAX_LIST);
            let mut keys = b.store.keys("", limit).await.map_err(|e| b.failed(e))?;
            let more = keys.len() == limit && limit < MAX_LIST;
            let keys = keys.split_off(skip.min(keys.len()));
            Ok(store::KeyResponse {
                keys,
                cursor: more.then_some(limit as u64),
            })
        })
        .await
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for ComponentState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Result<u64, KvFailure> {
        counted(async move {
            check_key(&key)?;
            let (name, store) = self.bucket(&bucket)?;
            let by = i64::try_from(delta)
                .map_err(|_| other(format!("a delta of {delta} does not fit a 64-bit signed counter")))?;
            let value = store
                .increment(&key, by)
                .await
                .map_err(|e| Bucket { name, store }.failed(e))?;
            u64::try_from(value).map_err(|_| other(format!("the counter \"{key}\" is negative ({value})")))
        })
        .await
    }
}

impl batch::Host for ComponentState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                let value = b.store.get(&key).await.map_err(|e| b.failed(e))?;
                found.push(value.map(|v| (key, v)));
            }
            Ok(found)
        })
        .await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvFailure> {
        counted(async move {
            for (key, value) in &key_values {
                check_key(key)?;
                check_value(value)?;
            }
            let b = self.table.get(&bucket)?;
            for (key, value) in key_values {
                b.store.set(&key, &value, None).await.map_err(|e| b.failed(e))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<(), KvFailure> {
        counted(async move {
            let b = self.table.get(&bucket)?;
            for key in keys {
                b.store.delete(&key).await.map_err(|e| b.failed(e))?;
            }
            Ok(())
        })
        .await
    }
}
