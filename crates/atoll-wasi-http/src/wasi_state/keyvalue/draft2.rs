//! `wasi:keyvalue@0.2.0-draft2` (Spin 3's): the shared operations in this
//! version's types, and its compare-and-swap. Counters are signed, as the
//! backends keep them; the `list-keys` cursor is the number of keys
//! already returned, in decimal; `get-many` answers every key asked for.

use super::{Bucket, Cas, KvFailure};
use crate::state::ComponentState;
use crate::wasi_state::bindings::wasi::keyvalue0_2_0_draft2::{atomics, batch, store};
use wasmtime::component::Resource;

impl store::Host for ComponentState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvFailure> {
        self.kv_open(identifier).await
    }

    fn convert_error(&mut self, e: KvFailure) -> wasmtime::Result<store::Error> {
        Ok(to_error(e))
    }
}

fn to_error(e: KvFailure) -> store::Error {
    match e {
        KvFailure::NoSuchStore => store::Error::NoSuchStore,
        KvFailure::AccessDenied => store::Error::AccessDenied,
        KvFailure::Other(message) => store::Error::Other(message),
    }
}

impl store::HostBucket for ComponentState {
    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, KvFailure> {
        self.kv_get(bucket, key).await
    }

    async fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), KvFailure> {
        self.kv_set(bucket, key, value).await
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), KvFailure> {
        self.kv_delete(bucket, key).await
    }

    async fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, KvFailure> {
        self.kv_exists(bucket, key).await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KvFailure> {
        let skip = match cursor.as_deref() {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| {
                let shown: String = c.chars().take(64).collect();
                KvFailure::Other(format!(
                    "list-keys cursor \"{shown}\" is not one list-keys returned (a decimal count of keys)"
                ))
            })?,
        };
        let (keys, next) = self.kv_list_keys(bucket, skip).await?;
        Ok(store::KeyResponse {
            keys,
            cursor: next.map(|n| n.to_string()),
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for ComponentState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: i64) -> Result<i64, KvFailure> {
        self.kv_increment(bucket, key, delta).await
    }

    /// A failed comparison is `cas-failed` with a handle on the value there
    /// now; every other failure (a bad handle among them) a `store-error`.
    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
        Ok(match self.kv_swap(cas, value).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(fresh)) => Err(atomics::CasError::CasFailed(fresh)),
            Err(e) => Err(atomics::CasError::StoreError(to_error(e))),
        })
    }
}

impl atomics::HostCas for ComponentState {
    async fn new(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Resource<Cas>, KvFailure> {
        self.kv_cas_new(bucket, key).await
    }

    /// The value the handle saw, without reading the store again.
    async fn current(&mut self, cas: Resource<Cas>) -> Result<Option<Vec<u8>>, KvFailure> {
        Ok(self.table.get(&cas)?.seen.clone())
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for ComponentState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, KvFailure> {
        self.kv_get_many(bucket, keys).await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KvFailure> {
        self.kv_set_many(bucket, key_values).await
    }

    async fn delete_many(&mut self, bucket: Resource<Bucket>, keys: Vec<String>) -> Result<(), KvFailure> {
        self.kv_delete_many(bucket, keys).await
    }
}
