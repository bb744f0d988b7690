//! The `http` namespace.
//!
//! | operation | payload | result |
//! |---|---|---|
//! | `request` | map `{url: str, method?: str (GET), headers?: [[name, value]], body?: bin, timeout_ms?: uint}` | map `{status: uint, headers: [[name, value]], body: bin}` |

use super::{Caller, HttpGrant, OutboundRequest, OutboundResponse};
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
    let headers: Vec<(String, String)> = req
        .headers
        .into_iter()
        .filter(|(n, _)| !injected.iter().any(|i| i.eq_ignore_ascii_case(n)))
        .collect();
    let caller = Caller {
        trace: inv.request.trace.as_ref(),
        span: inv.span,
    };
    let out: OutboundResponse = client
        .send(
            OutboundRequest {
                method,
                url: req.url,
                headers,
                body: req.body.into(),
                timeout: req.timeout_ms.map(Duration::from_millis),
            },
            caller,
        )
        .await
        .map_err(|e| HostCallError::Failed(format!("http: {e}")))?;
    Ok(encode(&Response {
        status: out.status,
        headers: &out.headers,
        body: &out.body,
    }))
}
