//! Raw access to host capabilities: `(binding, namespace, operation,
//! payload)` with MessagePack payloads. The typed modules are built on this;
//! use it directly for namespaces this SDK version does not wrap yet.

use crate::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};

/// Calls the host; a refused or failed call is an `Err` with the host's words.
pub fn call(binding: &str, namespace: &str, operation: &str, payload: &[u8]) -> Result<Vec<u8>> {
    wapc_guest::host_call(binding, namespace, operation, payload).map_err(|e| {
        // wapc-guest wraps the host's message; keep only the host's words.
        let text = e.to_string();
        Error::msg(text.strip_prefix("Host error: ").unwrap_or(&text).to_string())
    })
}

/// [`call`] with a MessagePack payload and result.
pub fn call_msgpack<P: Serialize + ?Sized, R: DeserializeOwned>(
    binding: &str,
    namespace: &str,
    operation: &str,
    payload: &P,
) -> Result<R> {
    let bytes =
        rmp_serde::to_vec_named(payload).map_err(|e| Error::msg(format!("encoding {namespace}.{operation}: {e}")))?;
    let out = call(binding, namespace, operation, &bytes)?;
    decode(&out, namespace, operation)
}

pub(crate) fn decode<R: DeserializeOwned>(bytes: &[u8], namespace: &str, operation: &str) -> Result<R> {
    if bytes.is_empty() {
        // Operations with no result answer with nothing; decode that as nil.
        return rmp_serde::from_slice(&[0xc0])
            .map_err(|e| Error::msg(format!("decoding {namespace}.{operation}: {e}")));
    }
    rmp_serde::from_slice(bytes).map_err(|e| Error::msg(format!("decoding {namespace}.{operation}: {e}")))
}
