//! `state`: the outputs of earlier steps in this pipeline (no grant
//! needed: it is the pipeline's own data). When the step has `with`, only
//! its aliases are visible, under those names.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `get` | `str` key | `bin`, or `nil` if there is no such entry |
//! | `keys` | none | array of `str`, sorted |

use crate::wire::{encode, text};
use crate::{HostCallError, Invocation};

pub(crate) fn call(inv: &Invocation, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    match op {
        "get" => {
            let value = inv.state.get(&text(payload));
            Ok(encode(&value.as_deref().map(serde_bytes::Bytes::new)))
        }
        "keys" => Ok(encode(&inv.state.keys())),
        _ => Err(HostCallError::unknown_op("state", op, &["get", "keys"])),
    }
}
