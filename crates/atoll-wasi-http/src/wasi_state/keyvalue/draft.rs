//! `wasi:keyvalue@0.2.0-draft` (Wasmtime's and wasmCloud's): the shared
//! operations in this version's types. Its counters are unsigned, so a
//! delta past `i64::MAX` or a negative stored counter is an error here;
//! its `list-keys` cursor is the number of keys already returned.

use super::{Bucket, KvFailure};
use crate::state::ComponentState;
use crate::wasi_state::bindings::wasi::keyvalue0_2_0_draft::{atomics, batch, store};
use wasmtime::component::Resource;

impl store::Host for ComponentState {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KvFailure> {
        self.kv_open(identifier).await
    }

    fn convert_error(&mut self, e: KvFailure) -> wasmtime::Result<store::Error> {
        Ok(match e {
            KvFailure::NoSuchStore => store::Error::NoSuchStore,
            KvFailure::AccessDenied => store::Error::AccessDenied,
            KvFailure::Other(message) => store::Error::Other(message),
        })
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
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, KvFailure> {
        let skip = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        let (keys, next) = self.kv_list_keys(bucket, skip).await?;
        Ok(store::KeyResponse {
            keys,
            cursor: next.map(|n| n as u64),
        })
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for ComponentState {
    async fn increment(&mut self, bucket: Resource<Bucket>, key: String, delta: u64) -> Result<u64, KvFailure> {
        let by = i64::try_from(delta)
            .map_err(|_| KvFailure::Other(format!("a delta of {delta} does not fit a 64-bit signed counter")))?;
        let value = self.kv_increment(bucket, key.clone(), by).await?;
        u64::try_from(value).map_err(|_| KvFailure::Other(format!("the counter \"{key}\" is negative ({value})")))
    }
}

impl batch::Host for ComponentState {
    /// A missing key is `none` in its place.
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, KvFailure> {
        let found = self.kv_get_many(bucket, keys).await?;
        Ok(found.into_iter().map(|(k, v)| v.map(|v| (k, v))).collect())
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
