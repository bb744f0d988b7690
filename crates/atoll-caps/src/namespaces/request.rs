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
use crate::{HostCallError, Invocation, RequestInfo};
use serde::Serialize;
use std::borrow::Cow;

const OPS: &[&str] = &["get", "body", "header", "param"];

/// The `get` result, built only when a function asks for it.
#[derive(Serialize)]
struct Wire<'a> {
    method: &'a str,
    path: &'a str,
    params: &'a [(String, String)],
    query: &'a str,
    headers: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Wire<'a> {
    fn of(req: &'a RequestInfo) -> Wire<'a> {
        Wire {
            method: req.method.as_str(),
            path: req.uri.path(),
            params: &req.params,
            query: req.uri.query().unwrap_or(""),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
                .collect(),
        }
    }
}

pub(crate) fn call(inv: &Invocation, op: &str, payload: &[u8]) -> Result<Vec<u8>, HostCallError> {
    let req = &inv.request;
    match op {
        "get" => Ok(encode(&Wire::of(req))),
        "body" => Ok(encode(serde_bytes::Bytes::new(&req.body))),
        "header" => {
            let name = text(payload);
            let values: Vec<Cow<str>> = req
                .headers
                .get_all(name.to_ascii_lowercase().as_str())
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
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
