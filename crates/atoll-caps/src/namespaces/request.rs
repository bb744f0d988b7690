//! `request`: the input of this invocation. Always available: it exposes
//! nothing the function was not already handed.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `get` | none | map `{trigger, source, method, path, params, query, headers}`: `trigger` is `http`, `schedule` or `message`, `source` the schedule's name or the topic; `params` and `headers` are arrays of `[name, value]` |
//! | `body` | none | `bin`: the original request body |
//! | `header` | `str` name, any case (raw UTF-8 also accepted) | `str` value, or `nil`; repeated headers joined with `, ` |
//! | `param` | `str` name (raw UTF-8 also accepted) | `str` value, or `nil` |
//! | `link` | none | map `{caller, binding, namespace, operation, depth}` when a linked call started this invocation, else `nil` |

use crate::wire::{encode, text};
use crate::{HostCallError, Invocation, RequestInfo, TriggerKind};
use serde::Serialize;
use std::borrow::Cow;

const OPS: &[&str] = &["get", "body", "header", "param", "link"];

/// The `link` result.
#[derive(Serialize)]
struct LinkWire<'a> {
    caller: &'a str,
    binding: &'a str,
    namespace: &'a str,
    operation: &'a str,
    depth: u8,
}

/// The `get` result, built only when a function asks for it.
#[derive(Serialize)]
struct Wire<'a> {
    /// `http`, `schedule` or `message`.
    trigger: &'static str,
    /// The schedule's name or the message's topic; empty for HTTP.
    source: &'a str,
    method: &'a str,
    path: &'a str,
    params: &'a [(String, String)],
    query: &'a str,
    headers: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Wire<'a> {
    fn of(req: &'a RequestInfo) -> Wire<'a> {
        let (trigger, source) = match &req.trigger {
            TriggerKind::Http => ("http", ""),
            TriggerKind::Schedule { name } => ("schedule", name.as_str()),
            TriggerKind::Message { topic } => ("message", topic.as_str()),
        };
        let http = req.trigger == TriggerKind::Http;
        Wire {
            trigger,
            source,
            method: if http { req.method.as_str() } else { "" },
            path: if http { req.uri.path() } else { "" },
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
        "link" => Ok(encode(&inv.link.as_ref().map(|l| LinkWire {
            caller: &l.caller,
            binding: &l.binding,
            namespace: &l.namespace,
            operation: &l.operation,
            depth: l.depth,
        }))),
        _ => Err(HostCallError::unknown_op("request", op, OPS)),
    }
}
