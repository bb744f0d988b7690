//! `wasi:http/outgoing-handler` through the same client and policy as the
//! waPC `http` namespace ([`atoll_caps::http::OutboundHttp`]): the
//! function's `allowed_hosts`, the private-address rule, redirects checked
//! hop by hop, `[[http_auth]]` headers, timeouts and the response size
//! limit. A function without the `http` grant gets an error from `handle`
//! naming the grant, never a connection.
//!
//! The request body is gathered before sending and the response body is
//! read whole (within the policy's limit) before the component sees it,
//! as the waPC namespace does: the policy re-sends the body on redirects.

use atoll_caps::http::{OutboundHttp, OutboundRequest};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The largest request body a component may send out.
pub const MAX_OUTBOUND_BODY: usize = 64 << 20;

/// One invocation's outbound HTTP: the function's client if granted.
pub(crate) struct Outbound {
    pub(crate) function: Arc<str>,
    pub(crate) client: Option<OutboundHttp>,
}

type ResponseFuture = Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> ResponseFuture {
        let function = self.function.clone();
        let client = self.client.clone();
        Box::new(async move {
            let Some(client) = client else {
                let why = format!(
                    "function \"{function}\" is not granted outbound HTTP: add \"http\" to its capabilities and the host to its allowed_hosts in atoll.toml"
                );
                tracing::debug!(target: "atoll::http_out", function = &*function, "{why}");
                return Err(Error::InternalError(Some(why)));
            };
            let (parts, body) = request.into_parts();
            let body = Limited::new(body, MAX_OUTBOUND_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::HttpRequestBodySize(Some(MAX_OUTBOUND_BODY as u64))
                    } else {
                        Error::InternalError(Some(format!("reading the request body: {e}")))
                    }
                })?
                .to_bytes();
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| *name != http::header::HOST)
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let timeout = options.and_then(|o| {
                [o.connect_timeout, o.first_byte_timeout, o.between_bytes_timeout]
                    .into_iter()
                    .flatten()
                    .max()
            });
            let sent = client
                .send(OutboundRequest {
                    method: parts.method,
                    url: parts.uri.to_string(),
                    headers,
                    body,
                    timeout,
                })
                .await
                .map_err(|why| {
                    tracing::debug!(target: "atoll::http_out", function = &*function, error = %why, "outbound request refused or failed");
                    Error::InternalError(Some(why))
                })?;
            let mut response = http::Response::builder().status(sent.status);
            for (name, value) in &sent.headers {
                response = response.header(name, value);
            }
            let body: WasiBody = Full::new(sent.body).map_err(|never| match never {}).boxed_unsync();
            let response = response
                .body(body)
                .map_err(|e| Error::InternalError(Some(format!("the upstream's response: {e}"))))?;
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}
