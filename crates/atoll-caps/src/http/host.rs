//! The `http` namespace.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `request` | map `{url: str, method?: str (GET), headers?: [[name, value]], body?: bin, timeout_ms?: uint}` | map `{status: uint, headers: [[name, value]], body: bin}` |

use super::{HttpGrant, OutboundRequest, OutboundResponse};
use crate::wire::{decode, encode};
use crate::{HostCallError, Invocation};
use http::Method;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const OPS: &[&str] = &["request"];

#[derive(Deserialize)]
struct Request {
    url: String,
    method: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default, with = "serde_bytes")]
    body: Vec<u8>,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Response<'a> {
    status: u16,
    headers: &'a [(String, String)],
    #[serde(with = "serde_bytes")]
    body: &'a [u8],
}

pub(super) async fn call(
    inv: &Invocation,
    grant: &HttpGrant,
    op: &str,
    payload: &[u8],
) -> Result<Vec<u8>, HostCallError> {
    if op != "request" {
        return Err(HostCallError::unknown_op("http", op, OPS));
    }
    let Some(client) = grant.client() else {
        return Err(HostCallError::Failed(
            "outbound HTTP is not configured for this function".into(),
        ));
    };
    let req: Request = decode(payload, "{url, method?, headers?, body?, timeout_ms?}")?;
    let method = match req.method.as_deref() {
        None => Method::GET,
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| HostCallError::BadPayload(format!("\"{m}\" is not an HTTP method")))?,
    };
    let injected: Vec<String> = client.injected_names().map(|n| n.to_string()).collect();
    let mut headers: Vec<(String, String)> = req
        .headers
        .into_iter()
        .filter(|(n, _)| !injected.iter().any(|i| i.eq_ignore_ascii_case(n)))
        .collect();
    if let Some(trace) = &inv.request.trace {
        trace_headers(trace, &mut headers);
    }
    let out: OutboundResponse = client
        .send(OutboundRequest {
            method,
            url: req.url,
            headers,
            body: req.body.into(),
            timeout: req.timeout_ms.map(Duration::from_millis),
        })
        .await
        .map_err(|e| HostCallError::Failed(format!("http: {e}")))?;
    Ok(encode(&Response {
        status: out.status,
        headers: &out.headers,
        body: &out.body,
    }))
}

/// The request's trace carried on, unless the function set its own
/// `traceparent`: the rule of [`crate::trace::TraceContext::inject`], on
/// the waPC payload's header list.
fn trace_headers(trace: &crate::trace::TraceContext, headers: &mut Vec<(String, String)>) {
    use crate::trace::{TRACEPARENT, TRACESTATE};
    let has = |headers: &Vec<(String, String)>, name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if has(headers, TRACEPARENT) {
        return;
    }
    headers.push((TRACEPARENT.into(), trace.traceparent()));
    if !has(headers, TRACESTATE)
        && let Some(state) = trace.tracestate().and_then(|v| v.to_str().ok())
    {
        headers.push((TRACESTATE.into(), state.into()));
    }
}
