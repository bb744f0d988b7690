//! The pipeline's state: earlier steps' outputs, by key (no grant needed).
//! A step with `with` sees only its aliases, under those names.
//!
//! ```ignore
//! let order = atoll_sdk::state::get_json::<Order>("order")?;
//! ```

use crate::Result;
use crate::host::call_msgpack;

pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    let v: Option<serde_bytes::ByteBuf> = call_msgpack("", "state", "get", key)?;
    Ok(v.map(|b| b.into_vec()))
}

pub fn get_string(key: &str) -> Result<Option<String>> {
    Ok(get(key)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// The entry parsed as JSON (a failed earlier step's entry is
/// `{"error", "status", "function"}`).
#[cfg(feature = "json")]
pub fn get_json<T: serde::de::DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| crate::Error::msg(format!("state entry \"{key}\" is not the JSON expected: {e}"))),
        None => Ok(None),
    }
}

/// The keys this step can see, sorted.
pub fn keys() -> Result<Vec<String>> {
    call_msgpack("", "state", "keys", &())
}
