//! `request`: the input of this invocation. Always available: it exposes
//! nothing the function was not already handed.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `get` | none | map `{method, path, params, query, headers}`; `params` and `headers` are arrays of `[name, value]` |
//! | `body` | none | `bin`: the original request body |
//! | `header` | `str` name, any case (raw UTF-8 also accepted) | `str` value, or `nil`; repeated headers joined with `, ` |
//! | `param` | `str` name (raw UTF-8 also accepted) | `str` value, or `nil` |

use crate::wire::{encode, text};
use crate::{HostCallError, Invocation};

const OPS: &[&str] = &["get", "body", "header", "param"];

pub(crate) fn call(inv: &Invocation, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    let req = &inv.request;
    match op {
        "get" => Ok(encode(&**req)),
        "body" => Ok(encode(serde_bytes::Bytes::new(&req.body))),
        "header" => {
            let name = text(payload);
            let values: Vec<&str> = req
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.as_str())
                .collect();
            Ok(encode(&(!values.is_empty()).then(|| values.join(", "))))
        }
        "param" => {
            let name = text(payload);
            let value = req.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
            Ok(encode(&value))
        }
        _ => Err(super::unknown_op("request", op, OPS)),
    }
}
